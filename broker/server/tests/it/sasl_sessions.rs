//! KIP-368 with runnel-client: a broker that limits SASL sessions
//! (`connections_max_reauth_ms`) gives their lifetime in SaslAuthenticate, and
//! the client authenticates again on the same connection before it ends, so a
//! connection outlives several sessions without being closed.

use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;
use runnel_client::{Connection, SaslCredentials};

use crate::harness::*;
use crate::listeners::{listener, with_listeners};

#[tokio::test]
async fn runnel_client_reauthenticates_before_its_session_ends() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let password = secrets.path().join("admin");
    std::fs::write(&password, "s3cret\n").expect("write");
    let file = password.display().to_string();
    let broker = TestBroker::start_with(move |c| {
        with_listeners(
            c,
            &["PLAINTEXT://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0"],
        );
        c.sasl_bootstrap_user = Some("admin".into());
        c.sasl_bootstrap_password_file = Some(file);
        c.connections_max_reauth_ms = 1000;
    })
    .await;
    let addr = listener(&broker, "SASL_PLAINTEXT").to_string();
    let mut conn = Connection::connect(&addr, "it", DEADLINE, DEADLINE)
        .await
        .expect("connect");
    conn.authenticate(&SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        username: "admin".into(),
        password: "s3cret".into(),
    })
    .await
    .expect("authenticate");
    let reauthentications = || {
        broker
            .broker
            .metrics()
            .sasl_authentications
            .with_label_values(&["reauthentication"])
            .get()
    };
    // Requests for three session lifetimes, all on this connection.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_millis(3200) {
        let version = conn.version::<MetadataRequest>().expect("metadata version");
        conn.send(
            &MetadataRequest::default().with_topics(Some(Vec::new())),
            version,
        )
        .await
        .unwrap_or_else(|e| panic!("after {:?}: {e}", start.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reauthentications() >= 2,
        "{} re-authentications",
        reauthentications()
    );
    broker.stop().await;
}
