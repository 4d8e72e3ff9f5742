//! Brokers reach each other over TLS when the inter-broker listener is SSL:
//! each presents its own certificate to the leader it fetches from, so a
//! listener that requires client certificates replicates to the brokers the
//! cluster's CA signed and to no other. runnel-client's TLS (`ClientConfig.tls`)
//! reaches the same listener.

use std::path::Path;
use std::time::Duration;

use runnel_client::{Client, ClientConfig, ClientTls, TlsFiles};
use runnel_server::BrokerConfig;
use tokio::net::TcpStream;

use crate::harness::*;
use crate::inter_broker_sasl::{create_on_three, wait_isr};
use crate::listeners::{listener, with_listeners, Ca};

/// Writes `ca`'s certificate and a certificate it signs for broker `node_id`.
fn broker_files(dir: &Path, trusted: &Ca, signer: &Ca, node_id: i32) {
    let signed = signer.sign(&format!("broker-{node_id}"), &["127.0.0.1", "localhost"]);
    std::fs::write(dir.join("ca.pem"), &trusted.pem).expect("write");
    std::fs::write(dir.join("broker.pem"), &signed.cert_pem).expect("write");
    std::fs::write(dir.join("broker.key"), &signed.key_pem).expect("write");
}

fn ssl_inter_broker(c: &mut BrokerConfig, node_id: i32, dir: &Path) {
    c.node_id = node_id;
    c.broker_heartbeat_interval_ms = 100;
    c.broker_session_timeout_ms = 1500;
    c.replica_lag_time_max_ms = 1500;
    with_listeners(c, &["PLAINTEXT://127.0.0.1:0", "INTERNAL://127.0.0.1:0"]);
    c.listener_security_protocol_map = vec!["INTERNAL:SSL".into()];
    c.inter_broker_listener_name = Some("INTERNAL".into());
    let path = |name: &str| Some(dir.join(name).display().to_string());
    c.ssl_certificate_location = path("broker.pem");
    c.ssl_key_location = path("broker.key");
    c.ssl_truststore_location = path("ca.pem");
    c.ssl_client_auth = "required".into();
}

#[tokio::test]
async fn followers_replicate_over_mutual_tls_only_with_a_certificate_the_cluster_trusts() {
    let cluster_ca = Ca::new("cluster CA");
    let stranger_ca = Ca::new("another CA");
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    broker_files(dirs[0].path(), &cluster_ca, &cluster_ca, 0);
    broker_files(dirs[1].path(), &cluster_ca, &cluster_ca, 1);
    // Broker 2 trusts the cluster's CA, but its own certificate is signed by another.
    broker_files(dirs[2].path(), &cluster_ca, &stranger_ca, 2);

    let d0 = dirs[0].path().to_path_buf();
    let first = TestBroker::start_with(move |c| ssl_inter_broker(c, 0, &d0)).await;
    let seed = first.broker.controller_addr().to_string();
    let (d1, s1) = (dirs[1].path().to_path_buf(), seed.clone());
    let second = TestBroker::start_with(move |c| {
        ssl_inter_broker(c, 1, &d1);
        c.seeds = vec![s1];
    })
    .await;
    let (d2, s2) = (dirs[2].path().to_path_buf(), seed.clone());
    let third = TestBroker::start_with(move |c| {
        ssl_inter_broker(c, 2, &d2);
        c.seeds = vec![s2];
    })
    .await;

    let plain0 = listener(&first, "PLAINTEXT");
    let mut conn = Conn::from_stream(TcpStream::connect(plain0).await.expect("connect"));
    create_on_three(&mut conn, "tls-replicated").await;

    // runnel-client over the SSL listener, with a client certificate the
    // listener requires: the produce is acknowledged once the ISR has it.
    let client_dir = tempfile::tempdir().expect("tempdir");
    let me = cluster_ca.sign("it-client", &[]);
    let (ca, cert, key) = (
        client_dir.path().join("ca.pem"),
        client_dir.path().join("client.pem"),
        client_dir.path().join("client.key"),
    );
    std::fs::write(&ca, &cluster_ca.pem).expect("write");
    std::fs::write(&cert, &me.cert_pem).expect("write");
    std::fs::write(&key, &me.key_pem).expect("write");
    let mut config = ClientConfig::new(listener(&first, "INTERNAL").to_string());
    config.tls = Some(
        ClientTls::from_files(&TlsFiles {
            ca_location: Some(ca.clone()),
            certificate_location: Some(cert),
            key_location: Some(key),
        })
        .expect("client TLS"),
    );
    let client = Client::connect(config).await.expect("TLS client connects");
    let brokers = client
        .metadata(Some(&[]), false)
        .await
        .expect("metadata")
        .brokers;
    assert_eq!(brokers.len(), 3, "{brokers:?}");
    let (error, offset) = produce(
        &mut conn,
        "tls-replicated",
        0,
        batch(&["v"], 1_700_000_000_000),
    )
    .await;
    assert_eq!((error, offset), (0, 0));

    // Broker 2's certificate is refused by the leader: it falls out of the ISR.
    wait_isr(&mut conn, &[0, 1]).await;
    let end = |b: &TestBroker| {
        b.broker
            .partition_log("tls-replicated", 0)
            .map(|l| l.log_end_offset())
    };
    assert_eq!(end(&second), Some(1), "broker 1 replicated the record");
    assert_eq!(end(&third), Some(0), "broker 2 could not fetch");

    // Without a client certificate the listener refuses runnel-client too.
    let mut config = ClientConfig::new(listener(&first, "INTERNAL").to_string());
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(5);
    config.tls = Some(
        ClientTls::from_files(&TlsFiles {
            ca_location: Some(ca),
            ..TlsFiles::default()
        })
        .expect("client TLS"),
    );
    let refused = Client::connect(config)
        .await
        .expect_err("a client without a certificate is refused");
    assert!(
        matches!(
            refused,
            runnel_client::Error::Connect { .. } | runnel_client::Error::Io { .. }
        ),
        "{refused}"
    );
    drop(client);
    for b in [third, second, first] {
        b.stop().await;
    }
}
