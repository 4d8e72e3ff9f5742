//! Tests of the coordinator over a real `__consumer_offsets`: loading,
//! replay after a restart, expiry, forged batches and group placement.

use super::*;
use crate::group::messages::JoinRequest;
use crate::group::records::{self, RecordKey};
use crate::group::store::encode_batch;
use prometheus::Opts;

fn setup(dir: &std::path::Path) -> (BrokerConfig, Arc<TopicRegistry>) {
    let config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        offsets_topic_num_partitions: 2,
        group_initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let topics = Arc::new(TopicRegistry::open(dir, &config).unwrap());
    let state = crate::topics::single_node_state(
        config.node_id,
        &[
            (OFFSETS_TOPIC, config.offsets_topic_num_partitions),
            ("t", 2),
        ],
    );
    topics.sync(&state, config.node_id);
    (config, topics)
}

fn coordinator(config: &BrokerConfig, topics: &Arc<TopicRegistry>) -> Coordinator {
    let counter = IntCounterVec::new(Opts::new("r", "r"), &["group"]).unwrap();
    Coordinator::new(config, topics.clone(), counter, watch::channel(false).1)
}

fn entry(partition: i32, offset: i64, metadata: &str) -> CommitEntry {
    CommitEntry {
        topic: "t".into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some(metadata.into()),
    }
}

fn fetched(c: &Coordinator, group: &str) -> Vec<(i32, i64)> {
    c.fetch_offsets(group, Some(vec![("t".into(), vec![0, 1])]), None)
        .unwrap()
        .remove(0)
        .1
        .into_iter()
        .map(|(p, o)| (p, o.map_or(-1, |o| o.offset)))
        .collect()
}

/// A transaction marker for a `__consumer_offsets` partition is refused
/// until the coordinator serves that partition: appended during the replay it
/// could be missed by it, and the transaction's offsets would stay pending.
#[tokio::test]
async fn transaction_completion_waits_until_the_partition_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    assert_eq!(
        c.check_txn_completion(0),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    c.load().unwrap();
    *c.served.write() = Some(BTreeSet::new());
    c.loading.write().insert(1);
    assert_eq!(
        c.check_txn_completion(1),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    assert_eq!(c.check_txn_completion(0), Err(GroupError::NotCoordinator));
    c.loading.write().remove(&1);
    c.served.write().as_mut().unwrap().extend([0, 1]);
    assert_eq!(c.check_txn_completion(0), Ok(()));
    assert_eq!(c.check_txn_completion(1), Ok(()));
}

#[tokio::test]
async fn requests_before_loading_get_load_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    let load = Err(GroupError::CoordinatorLoadInProgress);
    assert_eq!(c.heartbeat("g", "m", None, 1), load);
    assert_eq!(c.fetch_offsets("g", None, None).map(|_| ()), load);
    assert_eq!(c.list().map(|_| ()), load);
    assert_eq!(
        c.commit("g", "", None, -1, vec![entry(0, 1, "")]).err(),
        Some(GroupError::CoordinatorLoadInProgress)
    );
    assert_eq!(c.delete_group("g").await, load);
    assert!(matches!(
        c.join(
            "g",
            JoinRequest {
                member_id: String::new(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 10_000,
                protocol_type: "consumer".into(),
                protocols: vec![],
                require_known_member_id: false,
                new_member_id: String::new(),
            }
        )
        .resolve(JoinResult::Failed(GroupError::CoordinatorNotAvailable))
        .await,
        JoinResult::Failed(GroupError::CoordinatorLoadInProgress)
    ));
    c.load().unwrap();
    assert!(c.list().unwrap().is_empty());
}

#[tokio::test]
async fn replay_restores_latest_offsets_and_honours_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    c.load().unwrap();
    let results = c
        .commit("a", "", None, -1, vec![entry(0, 1, "x"), entry(1, 2, "y")])
        .unwrap()
        .finish()
        .await;
    assert_eq!(results, vec![Ok(()), Ok(())]);
    c.commit("a", "", None, -1, vec![entry(0, 10, "z")])
        .unwrap()
        .finish()
        .await;
    c.commit("b", "", None, -1, vec![entry(0, 5, "")])
        .unwrap()
        .finish()
        .await;
    c.commit("gone", "", None, -1, vec![entry(0, 5, "")])
        .unwrap()
        .finish()
        .await;
    c.delete_group("gone").await.unwrap();
    let deleted = c.delete_offsets("b", vec![("t".into(), 0)]).await.unwrap();
    assert_eq!(deleted, vec![Ok(())]);

    let again = coordinator(&config, &topics);
    again.load().unwrap();
    assert_eq!(fetched(&again, "a"), vec![(0, 10), (1, 2)]);
    let a0 = again.fetch_offsets("a", None, None).unwrap();
    assert_eq!(a0[0].1[0].1.as_ref().unwrap().metadata, "z");
    assert_eq!(fetched(&again, "b"), vec![(0, -1), (1, -1)]);
    assert_eq!(fetched(&again, "gone"), vec![(0, -1), (1, -1)]);
    let listed: Vec<String> = again
        .list()
        .unwrap()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(
        listed,
        vec!["a".to_string()],
        "b has no offsets left, gone was deleted"
    );
}

#[tokio::test]
async fn expiry_writes_tombstones_and_removes_empty_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    c.load().unwrap();
    c.commit("old", "", None, -1, vec![entry(0, 1, "")])
        .unwrap()
        .finish()
        .await;
    let retention = config.offsets_retention_minutes * 60_000;
    assert_eq!(c.expire_offsets(now_ms() + retention - 60_000).await, 0);
    assert_eq!(c.expire_offsets(now_ms() + retention + 1).await, 1);
    assert!(c.list().unwrap().is_empty());
    let again = coordinator(&config, &topics);
    again.load().unwrap();
    assert_eq!(fetched(&again, "old"), vec![(0, -1), (1, -1)]);
    assert!(again.list().unwrap().is_empty());
}

/// CRC-32C (Castagnoli), bit by bit: enough to forge a test batch.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A batch at `offset` whose header announces `i32::MAX` records, with a
/// valid CRC (the decoder used before reserved room for all of them).
fn forged_batch(offset: i64) -> Bytes {
    let key = records::encode_key(&RecordKey::Group { group: "x".into() });
    let mut batch = encode_batch(&[(key, None)], 0, now_ms(), None)
        .unwrap()
        .to_vec();
    batch[..8].copy_from_slice(&offset.to_be_bytes());
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

#[tokio::test]
async fn replay_skips_a_forged_batch_without_aborting() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    c.load().unwrap();
    c.commit("a", "", None, -1, vec![entry(0, 1, "")])
        .unwrap()
        .finish()
        .await;
    // Written as a follower would (a leader's keys check refuses it now).
    let log = topics
        .get(OFFSETS_TOPIC)
        .unwrap()
        .partition(c.partition_of("a"))
        .unwrap()
        .log
        .clone();
    log.append_as_follower(forged_batch(log.log_end_offset()))
        .unwrap();
    c.commit("a", "", None, -1, vec![entry(0, 10, "")])
        .unwrap()
        .finish()
        .await;

    let again = coordinator(&config, &topics);
    again.load().unwrap();
    assert_eq!(fetched(&again, "a"), vec![(0, 10), (1, -1)]);
}

#[test]
fn group_placement_uses_the_topic_partition_count() {
    let dir = tempfile::tempdir().unwrap();
    let (config, topics) = setup(dir.path());
    let c = coordinator(&config, &topics);
    assert_eq!(c.partition_of("group"), partition_for("group", 2));
}
