//! Mutual TLS on the metadata quorum's port: brokers with certificates of the
//! cluster's CA form the quorum; a broker presenting a certificate of another
//! CA cannot join, and a peer that does not speak TLS gets no frame read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_server::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;
use crate::listeners::{Ca, Signed};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// Node `node_id` of the quorum, presenting `identity` and trusting `ca_file`.
fn quorum_tls(c: &mut BrokerConfig, dir: &Path, node_id: i32, identity: &Signed, ca_file: &str) {
    c.node_id = node_id;
    c.broker_heartbeat_interval_ms = 100;
    c.broker_session_timeout_ms = 1500;
    c.controller_ssl_certificate_location = Some(write(
        dir,
        &format!("node{node_id}.pem"),
        &identity.cert_pem,
    ));
    c.controller_ssl_key_location =
        Some(write(dir, &format!("node{node_id}.key"), &identity.key_pem));
    c.controller_ssl_truststore_location = Some(ca_file.to_string());
}

#[tokio::test]
async fn the_quorum_admits_only_peers_with_certificates_of_the_cluster_ca() {
    let files = tempfile::tempdir().expect("tempdir");
    let cluster = Ca::new("cluster CA");
    let intruder = Ca::new("another CA");
    let ca_file = write(files.path(), "cluster-ca.pem", &cluster.pem);
    let node = |n: i32| cluster.sign(&format!("broker-{n}"), &["127.0.0.1"]);

    let first =
        TestBroker::start_with(|c| quorum_tls(c, files.path(), 0, &node(0), &ca_file)).await;
    let seed = first.broker.controller_addr().to_string();
    let _second = TestBroker::start_with(|c| {
        quorum_tls(c, files.path(), 1, &node(1), &ca_file);
        c.seeds = vec![seed.clone()];
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while first.broker.cluster().brokers.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker 1 never joined over TLS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broker whose certificate another CA signed never joins.
    let stranger = intruder.sign("broker-2", &["127.0.0.1"]);
    let attempt = tokio::time::timeout(
        Duration::from_secs(8),
        TestBroker::try_start_with(|c| {
            quorum_tls(c, files.path(), 2, &stranger, &ca_file);
            c.seeds = vec![seed.clone()];
        }),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a broker with a foreign certificate started"
    );
    assert_eq!(first.broker.cluster().brokers.len(), 2);

    // A peer speaking plain TCP: its frame is never answered, the connection closes.
    let mut raw = TcpStream::connect(first.broker.controller_addr())
        .await
        .expect("connect");
    let frame = br#"{"id":1,"body":{"Heartbeat":{"broker_id":0,"incarnation":"00000000-0000-0000-0000-000000000000"}}}"#;
    raw.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .expect("write");
    raw.write_all(frame).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(15), raw.read(&mut buf))
        .await
        .expect("the server closes the connection");
    // A reset, a close, or a TLS alert; never a JSON answer (whose length prefix starts 0 0).
    if let Ok(n) = read {
        assert!(
            n == 0 || !buf[..n].starts_with(b"\0\0"),
            "answered: {:?}",
            &buf[..n]
        );
    }
}
