//! Named listeners and TLS: each listener's clients are given the brokers'
//! addresses on that listener, followers replicate through the inter-broker
//! listener, and SSL listeners serve TLS clients (with client certificates
//! when required), refuse plaintext and untrusted clients, and pick up a
//! replaced certificate without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use runnel_server::BrokerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::harness::*;

/// The bound address of `broker`'s listener `name`.
pub(crate) fn listener(broker: &TestBroker, name: &str) -> SocketAddr {
    broker
        .listeners
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, addr)| *addr)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", broker.listeners))
}

/// Named listeners replace `listen`, which must then keep its default.
pub(crate) fn with_listeners(c: &mut BrokerConfig, listeners: &[&str]) {
    c.listen = BrokerConfig::default().listen;
    c.listeners = listeners.iter().map(|l| l.to_string()).collect();
}

/// Sends one request on any stream (plain or TLS) and reads its response.
async fn roundtrip<S, R>(stream: &mut S, request: &R, version: i16) -> std::io::Result<R::Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Request,
    R::Response: Decodable + HeaderVersion,
{
    let key = ApiKey::try_from(R::KEY).expect("known api key");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("it")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .expect("encode header");
    request.encode(&mut body, version).expect("encode request");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let mut size = [0u8; 4];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut size))
        .await
        .expect("no response within the deadline")?;
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).await?;
    let mut response = bytes::Bytes::from(response);
    ResponseHeader::decode(&mut response, R::Response::header_version(version))
        .expect("response header");
    Ok(R::Response::decode(&mut response, version).expect("response body"))
}

/// The brokers a Metadata request on `stream` lists, as (id, host, port).
async fn metadata_brokers<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Vec<(i32, String, i32)> {
    let meta = roundtrip(
        stream,
        &MetadataRequest::default().with_topics(Some(vec![])),
        12,
    )
    .await
    .expect("metadata");
    meta.brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect()
}

#[tokio::test]
async fn each_listener_is_answered_with_the_addresses_of_that_listener() {
    let broker = TestBroker::start_with(|c| {
        with_listeners(
            c,
            &[
                "PLAINTEXT://127.0.0.1:0",
                "EXTERNAL://127.0.0.1:0",
                "SASL_PLAINTEXT://127.0.0.1:0",
            ],
        );
        c.listener_security_protocol_map = vec!["EXTERNAL:PLAINTEXT".into()];
        c.advertised_listeners = vec!["EXTERNAL://kafka.example.com:19092".into()];
    })
    .await;
    // Every listener is registered with its protocol.
    let cluster = broker.broker.cluster();
    let endpoints: Vec<(&str, &str)> = cluster.brokers[&0]
        .endpoints
        .iter()
        .map(|e| (e.listener.as_str(), e.security_protocol.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            ("PLAINTEXT", "PLAINTEXT"),
            ("EXTERNAL", "PLAINTEXT"),
            ("SASL_PLAINTEXT", "SASL_PLAINTEXT")
        ]
    );
    let plain = listener(&broker, "PLAINTEXT");
    let external = listener(&broker, "EXTERNAL");
    assert_eq!(broker.addr, plain, "the first listener is the ready line's");
    assert_ne!(plain.port(), external.port());

    let mut on_plain = TcpStream::connect(plain).await.expect("connect PLAINTEXT");
    let mut on_external = TcpStream::connect(external)
        .await
        .expect("connect EXTERNAL");
    assert_eq!(
        metadata_brokers(&mut on_plain).await,
        vec![(0, "127.0.0.1".to_string(), i32::from(plain.port()))]
    );
    assert_eq!(
        metadata_brokers(&mut on_external).await,
        vec![(0, "kafka.example.com".to_string(), 19092)]
    );

    let cluster = roundtrip(&mut on_external, &DescribeClusterRequest::default(), 0)
        .await
        .expect("describe cluster");
    let described: Vec<(String, i32)> = cluster
        .brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port))
        .collect();
    assert_eq!(described, vec![("kafka.example.com".to_string(), 19092)]);

    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_static_str("a-group")]);
    for (stream, host, port) in [
        (&mut on_plain, "127.0.0.1", i32::from(plain.port())),
        (&mut on_external, "kafka.example.com", 19092),
    ] {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        // The first lookup creates __consumer_offsets; ask until it has a leader.
        let coordinator = loop {
            let response = roundtrip(stream, &find, 4).await.expect("find coordinator");
            let c = response.coordinators[0].clone();
            if c.error_code == 0 || tokio::time::Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(coordinator.error_code, 0, "{coordinator:?}");
        assert_eq!((coordinator.host.as_str(), coordinator.port), (host, port));
    }
}

#[tokio::test]
async fn a_broker_without_the_listener_is_left_out_and_followers_fetch_on_the_inter_broker_listener(
) {
    let session = |c: &mut BrokerConfig| {
        c.broker_heartbeat_interval_ms = 100;
        c.broker_session_timeout_ms = 1500;
    };
    // Broker 0's first listener advertises an address nothing listens on: a
    // follower that fetched there instead of on PLAINTEXT would never catch up.
    let first = TestBroker::start_with(|c| {
        session(c);
        with_listeners(c, &["EXTERNAL://127.0.0.1:0", "PLAINTEXT://127.0.0.1:0"]);
        c.listener_security_protocol_map = vec!["EXTERNAL:PLAINTEXT".into()];
        c.advertised_listeners = vec!["EXTERNAL://127.0.0.1:1".into()];
        c.inter_broker_listener_name = Some("PLAINTEXT".into());
    })
    .await;
    let seed = first.broker.controller_addr().to_string();
    // Broker 1 has the one PLAINTEXT listener of a broker configured with `listen`.
    let second = TestBroker::start_with(|c| {
        session(c);
        c.node_id = 1;
        c.seeds = vec![seed];
    })
    .await;
    let plain0 = listener(&first, "PLAINTEXT");
    let plain1 = second.addr;

    let mut on_external = TcpStream::connect(listener(&first, "EXTERNAL"))
        .await
        .expect("connect EXTERNAL");
    let mut on_plain = TcpStream::connect(plain0).await.expect("connect PLAINTEXT");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let both = vec![
        (0, "127.0.0.1".to_string(), i32::from(plain0.port())),
        (1, "127.0.0.1".to_string(), i32::from(plain1.port())),
    ];
    while metadata_brokers(&mut on_plain).await != both {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker 1 never listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metadata_brokers(&mut on_external).await,
        vec![(0, "127.0.0.1".to_string(), 1)],
        "broker 1 has no EXTERNAL listener"
    );

    // Two partitions on both brokers: each broker leads one and follows the other.
    let mut conn = Conn::from_stream(TcpStream::connect(plain0).await.expect("connect"));
    let mut request = create_topic_request("replicated", 2, &[]);
    request.topics[0].replication_factor = 2;
    let created = conn.send(&request, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let meta = loop {
        let meta = user_topics(&mut conn).await;
        let led = meta
            .topics
            .first()
            .is_some_and(|t| t.partitions.iter().all(|p| p.leader_id.0 >= 0));
        if led {
            break meta;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leaders: {meta:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for p in &meta.topics[0].partitions {
        let leader = if p.leader_id.0 == 0 { plain0 } else { plain1 };
        let mut conn = Conn::from_stream(TcpStream::connect(leader).await.expect("connect"));
        // acks=all is answered once the follower has fetched the batch.
        let (error, offset) = produce(
            &mut conn,
            "replicated",
            p.partition_index,
            batch(&["v"], 1_700_000_000_000),
        )
        .await;
        assert_eq!(
            (error, offset),
            (0, 0),
            "partition {} led by {}",
            p.partition_index,
            p.leader_id.0
        );
    }
    // On EXTERNAL, the partition broker 1 leads has no leader a client could reach.
    let external_view = roundtrip(
        &mut on_external,
        &MetadataRequest::default().with_topics(None),
        12,
    )
    .await
    .expect("metadata");
    let topic = external_view
        .topics
        .iter()
        .find(|t| t.name == Some(name("replicated")))
        .expect("the topic on EXTERNAL");
    let seen: Vec<(i32, i16)> = topic
        .partitions
        .iter()
        .map(|p| (p.leader_id.0, p.error_code))
        .collect();
    let expected: Vec<(i32, i16)> = meta.topics[0]
        .partitions
        .iter()
        .map(|p| match p.leader_id.0 {
            0 => (0, 0),
            _ => (-1, kafka_protocol::ResponseError::ListenerNotFound.code()),
        })
        .collect();
    assert_eq!(seen, expected);

    let cluster = second.broker.cluster();
    let registered = &cluster.brokers[&0];
    assert_eq!(
        (registered.host.as_str(), registered.port),
        ("127.0.0.1", plain0.port()),
        "the registration's host and port are the inter-broker listener's"
    );
    let endpoints: Vec<(&str, u16, &str)> = registered
        .endpoints
        .iter()
        .map(|e| (e.listener.as_str(), e.port, e.security_protocol.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            ("EXTERNAL", 1, "PLAINTEXT"),
            ("PLAINTEXT", plain0.port(), "PLAINTEXT")
        ]
    );
}

/// A CA for the tests and the certificates it signs.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
    der: CertificateDer<'static>,
}

/// A certificate and its key, as PEM and as rustls takes them.
pub(crate) struct Signed {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            der: cert.der().clone(),
        }
    }

    pub(crate) fn sign(&self, common_name: &str, names: &[&str]) -> Signed {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Signed {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        }
    }
}

/// Writes the broker's certificate and key where the config points (by
/// renaming complete files into place, as certificate tools do).
fn install(dir: &Path, server: &Signed) {
    for (name, text) in [
        ("broker.pem", &server.cert_pem),
        ("broker.key", &server.key_pem),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
}

/// A broker with a PLAINTEXT and an SSL listener using the files in `dir`.
async fn tls_broker(dir: &Path, client_auth: &str) -> TestBroker {
    let dir = dir.to_path_buf();
    let client_auth = client_auth.to_string();
    TestBroker::start_with(move |c| {
        with_listeners(c, &["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0"]);
        let path = |name: &str| Some(dir.join(name).display().to_string());
        c.ssl_certificate_location = path("broker.pem");
        c.ssl_key_location = path("broker.key");
        c.ssl_truststore_location = path("clients-ca.pem");
        c.ssl_client_auth = client_auth;
    })
    .await
}

/// A TLS client trusting `ca`, presenting `identity` when given.
fn connector(ca: &Ca, identity: Option<&Signed>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).expect("CA root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(vec![id.der.clone()], id.key.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

/// Whether the broker refuses a TLS client: the handshake fails, or (TLS 1.3,
/// where the client finishes before the server has checked its certificate)
/// its first request is never answered.
async fn refused(connector: &TlsConnector, addr: SocketAddr) -> bool {
    let Ok(mut stream) = tls_connect(connector, addr).await else {
        return true;
    };
    roundtrip(&mut stream, &ApiVersionsRequest::default(), 0)
        .await
        .is_err()
}

/// The value of `runnel_tls_handshake_failures_total` for `listener`.
async fn handshake_failures(broker: &TestBroker, listener: &str) -> u64 {
    let (_, body) = http_get(broker.admin, "/metrics").await;
    let prefix = format!("runnel_tls_handshake_failures_total{{listener=\"{listener}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a counter value"))
}

#[tokio::test]
async fn a_tls_listener_serves_tls_clients_and_refuses_plaintext_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Runnel test CA");
    std::fs::write(dir.path().join("clients-ca.pem"), &ca.pem).expect("write CA");
    install(dir.path(), &ca.sign("broker", &["localhost"]));
    let broker = tls_broker(dir.path(), "none").await;
    let ssl = listener(&broker, "SSL");

    let mut tls = tls_connect(&connector(&ca, None), ssl)
        .await
        .expect("TLS handshake");
    assert_eq!(
        metadata_brokers(&mut tls).await,
        vec![(0, "127.0.0.1".to_string(), i32::from(ssl.port()))],
        "a TLS client is given the SSL listener's address"
    );
    assert_eq!(handshake_failures(&broker, "SSL").await, 0);

    // A Kafka request in plaintext on the TLS port gets no answer: the broker closes.
    let mut plain = Conn::from_stream(TcpStream::connect(ssl).await.expect("connect"));
    plain.write(&ApiVersionsRequest::default(), 0).await;
    assert!(
        plain.closed_by_broker().await,
        "plaintext client on the SSL port"
    );
    assert_eq!(handshake_failures(&broker, "SSL").await, 1);
    // The plaintext listener is unaffected.
    let mut plain = TcpStream::connect(listener(&broker, "PLAINTEXT"))
        .await
        .expect("connect");
    assert_eq!(metadata_brokers(&mut plain).await.len(), 1);
}

#[tokio::test]
async fn required_client_auth_admits_certificates_of_the_truststore_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Runnel test CA");
    let other_ca = Ca::new("Someone else's CA");
    std::fs::write(dir.path().join("clients-ca.pem"), &ca.pem).expect("write CA");
    install(dir.path(), &ca.sign("broker", &["localhost"]));
    let broker = tls_broker(dir.path(), "required").await;
    let ssl = listener(&broker, "SSL");

    let alice = ca.sign("alice", &[]);
    let mut stream = tls_connect(&connector(&ca, Some(&alice)), ssl)
        .await
        .expect("handshake with a trusted client certificate");
    assert_eq!(metadata_brokers(&mut stream).await.len(), 1);

    assert!(
        refused(&connector(&ca, None), ssl).await,
        "a client without a certificate"
    );
    let mallory = other_ca.sign("mallory", &[]);
    assert!(
        refused(&connector(&ca, Some(&mallory)), ssl).await,
        "a client certificate from another CA"
    );
    assert_eq!(handshake_failures(&broker, "SSL").await, 2);
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Runnel test CA");
    std::fs::write(dir.path().join("clients-ca.pem"), &ca.pem).expect("write CA");
    let old = ca.sign("broker-old", &["localhost"]);
    install(dir.path(), &old);
    let broker = tls_broker(dir.path(), "none").await;
    let ssl = listener(&broker, "SSL");
    let client = connector(&ca, None);
    let served = |stream: &TlsStream<TcpStream>| {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first().cloned())
            .expect("a server certificate")
    };
    let mut before = tls_connect(&client, ssl).await.expect("handshake");
    assert_eq!(served(&before), old.der);

    let new = ca.sign("broker-new", &["localhost"]);
    install(dir.path(), &new);
    let mut after = tls_connect(&client, ssl).await.expect("handshake");
    assert_eq!(served(&after), new.der, "the new certificate is served");
    assert_eq!(metadata_brokers(&mut after).await.len(), 1);
    // The connection opened before keeps working.
    assert_eq!(metadata_brokers(&mut before).await.len(), 1);
}
