//! Integration tests of the metadata quorum: real `MetaNode`s on port 0 in
//! one process, with their Raft storage in temporary directories.

#![allow(clippy::unwrap_used)]

mod cluster;
mod single;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use runnel_meta::{BrokerInfo, MetaConfig, MetaNode};
use uuid::Uuid;

/// Generous deadline for anything that waits on elections or replication.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A config with short timers so tests run fast.
pub fn config(node_id: i32, dir: &Path, seeds: Vec<String>) -> MetaConfig {
    let mut config = MetaConfig::new(node_id, dir.to_path_buf());
    config.listen = "127.0.0.1:0".into();
    config.seeds = seeds;
    config.election_timeout = Duration::from_millis(200);
    config.heartbeat_interval = Duration::from_millis(100);
    config.session_timeout = Duration::from_secs(2);
    config
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `node` is ready.
pub async fn ready(node: &MetaNode) {
    tokio::time::timeout(DEADLINE, node.wait_ready())
        .await
        .expect("node ready in time")
        .expect("node ready");
}

/// A broker registration for `id`.
pub fn broker(id: i32, node: &MetaNode) -> BrokerInfo {
    BrokerInfo {
        id,
        host: "127.0.0.1".into(),
        port: 9092 + u16::try_from(id).unwrap(),
        endpoints: Vec::new(),
        rack: None,
        controller_addr: node.listen_addr().to_string(),
        incarnation: Uuid::new_v4(),
        fenced: false,
    }
}
