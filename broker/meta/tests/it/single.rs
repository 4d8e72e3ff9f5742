//! A one-voter quorum: the same code path as a cluster.

use runnel_meta::{Applied, Command, MetaNode};

use crate::{broker, config, ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_elects_itself_applies_commands_and_keeps_state_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(0, dir.path(), Vec::new());
    cfg.cluster_id = Some("MkU3OEVBNTcwNTJENDM2Qk".into());
    let node = MetaNode::start(cfg.clone()).await.unwrap();
    ready(&node).await;

    let quorum = node.quorum();
    assert_eq!(quorum.leader, Some(0));
    assert_eq!(quorum.voters, vec![0]);
    assert!(quorum.learners.is_empty());
    assert_eq!(
        node.state().borrow().cluster_id.as_deref(),
        Some("MkU3OEVBNTcwNTJENDM2Qk")
    );

    let first = node
        .propose(Command::AllocateProducerIds { count: 10 })
        .await
        .unwrap();
    let Applied::ProducerIds(first) = first else {
        panic!("unexpected reply {first:?}");
    };
    let info = broker(0, &node);
    node.register(info.clone()).await.unwrap();
    // propose/register return after the local apply: the state shows it at once.
    let state = node.state().borrow().clone();
    assert_eq!(
        state.brokers.get(&0).map(|b| (b.incarnation, b.fenced)),
        Some((info.incarnation, false))
    );
    assert!(node.quorum().applied >= state.applied_index);

    node.shutdown().await.unwrap();
    // Clean shutdown fenced the broker on its way out.
    assert!(node.state().borrow().brokers[&0].fenced);

    // Restart from the same directory, with another configured id: the
    // stored cluster keeps its own.
    cfg.cluster_id = Some("AAAAAAAAAAAAAAAAAAAAAA".into());
    let node = MetaNode::start(cfg).await.unwrap();
    ready(&node).await;
    let state = node.state().borrow().clone();
    assert_eq!(state.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
    assert_eq!(
        state.brokers.get(&0).map(|b| b.incarnation),
        Some(info.incarnation)
    );
    let next = node
        .propose(Command::AllocateProducerIds { count: 10 })
        .await
        .unwrap();
    assert_eq!(next, Applied::ProducerIds(first + 10));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_without_a_configured_id_generates_a_kafka_style_one() {
    let dir = tempfile::tempdir().unwrap();
    let node = MetaNode::start(config(3, dir.path(), Vec::new()))
        .await
        .unwrap();
    ready(&node).await;
    let id = node.state().borrow().cluster_id.clone().unwrap();
    assert_eq!(id.len(), 22);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    node.shutdown().await.unwrap();
}
