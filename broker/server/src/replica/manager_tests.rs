//! Unit tests of `manager.rs`: role changes and what they do to appends in flight.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use runnel_meta::MetaError;

use super::*;
use crate::config::BrokerConfig;
use crate::topics::single_node_state;

/// Refuses every ISR change: these tests drive roles through the metadata alone.
struct NoProposals;

impl IsrProposer for NoProposals {
    fn alter_isr(
        &self,
        _command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<(), MetaError>> + Send + '_>> {
        Box::pin(async { Err(MetaError::ShuttingDown) })
    }
}

/// One idempotent batch of one record from producer 7 with sequence `seq`.
fn produced(seq: i32) -> Bytes {
    let record = runnel_testkit::record(None, Some(b"v"), 0);
    runnel_testkit::producer_batch(vec![record], Compression::None, 7, 0, seq)
}

/// `leader` leads `t-0` (replicas 0 and 1, both in sync) under `epoch`.
fn led_by(leader: BrokerId, epoch: i32) -> ClusterState {
    let mut state = single_node_state(0, &[("t", 1)]);
    let p = &mut std::sync::Arc::make_mut(state.topics.get_mut("t").unwrap()).partitions[0];
    p.replicas = vec![0, 1];
    p.isr = vec![0, 1];
    p.leader = leader;
    p.leader_epoch = epoch;
    state
}

/// Broker 0's replica manager over one partition `t-0` with the metadata `initial`.
struct Setup {
    _dir: tempfile::TempDir,
    state: watch::Sender<Arc<ClusterState>>,
    shutdown: watch::Receiver<bool>,
    _shutdown_tx: watch::Sender<bool>,
    manager: Arc<ReplicaManager>,
    log: Arc<Log>,
}

fn setup(initial: ClusterState) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let topics = Arc::new(TopicRegistry::open(dir.path(), &config).unwrap());
    let (state, state_rx) = watch::channel(Arc::new(initial));
    topics.sync(&state_rx.borrow(), 0);
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let manager = ReplicaManager::new(
        ReplicaSettings::new(0),
        topics.clone(),
        state_rx,
        Arc::new(NoProposals),
        &prometheus::Registry::new(),
        shutdown.clone(),
    );
    let log = topics.get("t").unwrap().partition(0).unwrap().log.clone();
    Setup {
        _dir: dir,
        state,
        shutdown,
        _shutdown_tx,
        manager,
        log,
    }
}

#[tokio::test]
async fn an_append_admitted_before_leadership_moved_is_refused_and_its_wait_fails() {
    // Every field bound: a `..` would drop the temporary directory at once.
    let Setup {
        _dir,
        state: state_tx,
        shutdown,
        _shutdown_tx,
        manager,
        log,
    } = setup(led_by(0, 1));
    let replica = manager.replica("t", 0, &log);
    // Produce admits two batches as leader of epoch 1; the first is written.
    let epoch = replica.check_produce(-1, 1).unwrap();
    assert_eq!(epoch, 1);
    let first = log.append(produced(0), epoch, 0).unwrap();
    // The controller moves the leadership to broker 1 (epoch 2) before the
    // second batch reaches the log.
    state_tx.send_replace(Arc::new(led_by(1, 2)));
    manager.reconcile_now();
    assert!(!replica.is_leader());
    let late = log.append(produced(1), epoch, 0);
    assert!(
        matches!(
            late,
            Err(runnel_log::Error::LeadershipEnded { fence: 2, got: 1 })
        ),
        "{late:?}"
    );
    assert_eq!(log.log_end_offset(), 1, "nothing written after the move");
    assert_eq!(
        crate::errors::log_error_code(&late.unwrap_err()),
        ResponseError::NotLeaderOrFollower
    );
    // The first batch's acks=all wait ends: its leadership is over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waited = replica
        .wait_committed(first.last_offset + 1, epoch, 1, deadline, shutdown.clone())
        .await;
    assert_eq!(waited.unwrap_err().code, ResponseError::NotLeaderOrFollower);
    // Leading again under epoch 3 does not answer a wait of epoch 1, even
    // once the high watermark passes its offset: that record may be gone.
    state_tx.send_replace(Arc::new({
        let mut s = led_by(0, 3);
        std::sync::Arc::make_mut(s.topics.get_mut("t").unwrap()).partitions[0].isr = vec![0];
        s
    }));
    manager.reconcile_now();
    assert!(replica.is_leader());
    let again = log.append(produced(1), 3, 0).unwrap();
    manager.leader_appended(&replica, again.last_offset + 1);
    log.sync(again.last_offset + 1).unwrap();
    manager.leader_synced(&replica);
    assert!(log.high_watermark() > first.last_offset);
    let waited = replica
        .wait_committed(first.last_offset + 1, epoch, 1, deadline, shutdown.clone())
        .await;
    assert_eq!(waited.unwrap_err().code, ResponseError::NotLeaderOrFollower);
    replica
        .wait_committed(again.last_offset + 1, 3, 1, deadline, shutdown)
        .await
        .expect("the new epoch's append is committed");
}

#[test]
fn a_follower_write_runs_only_while_following_that_epoch() {
    let Setup {
        _dir,
        state,
        manager,
        log,
        ..
    } = setup(led_by(1, 2));
    let replica = manager.replica("t", 0, &log);
    assert_eq!(replica.while_following(2, |_| "written"), Some("written"));
    assert_eq!(
        replica.while_following(1, |_| "written"),
        None,
        "an older epoch's fetch"
    );
    // Leader now: a fetch planned as follower of epoch 2 must not touch the log.
    state.send_replace(Arc::new(led_by(0, 3)));
    manager.reconcile_now();
    assert!(replica.is_leader());
    let mut called = false;
    assert_eq!(replica.while_following(2, |_| called = true), None);
    assert!(!called);
}

/// Every request handler brings a replica's role in line with the metadata
/// snapshot it read before taking the role lock, and the manager's pass walks
/// every partition with the snapshot it read at its start, so an older
/// snapshot can arrive after a newer one was applied. Applying it would take
/// back a leadership (and fence the log against the very epoch this broker
/// leads, so every produce there fails as NOT_LEADER_OR_FOLLOWER until the
/// next election), or make a new leader's predecessor lead its old epoch again.
#[test]
fn metadata_older_than_the_role_is_ignored() {
    let Setup {
        _dir,
        state,
        manager,
        log,
        ..
    } = setup(led_by(1, 2));
    let replica = manager.replica("t", 0, &log);
    let stale = led_by(1, 2).partition("t", 0).cloned().unwrap();
    state.send_replace(Arc::new(led_by(0, 3)));
    manager.reconcile_now();
    assert_eq!((replica.is_leader(), replica.leader_epoch()), (true, 3));
    // A handler that read the snapshot of epoch 2 applies it only now.
    manager.reconcile("t", 0, &log, Some(&stale));
    assert_eq!(
        (replica.is_leader(), replica.leader_epoch()),
        (true, 3),
        "the leadership of epoch 3 stands"
    );
    let epoch = replica.check_produce(-1, 1).unwrap();
    let appended = log.append(produced(0), epoch, 0);
    assert!(appended.is_ok(), "{appended:?}");

    // Within one leader epoch, an ISR of an older partition epoch is stale too.
    let with_isr = |partition_epoch: i32, isr: Vec<BrokerId>| {
        let mut s = led_by(0, 3);
        let p = &mut std::sync::Arc::make_mut(s.topics.get_mut("t").unwrap()).partitions[0];
        p.partition_epoch = partition_epoch;
        p.isr = isr;
        s
    };
    let stale = with_isr(1, vec![0, 1]).partition("t", 0).cloned().unwrap();
    state.send_replace(Arc::new(with_isr(2, vec![0])));
    manager.reconcile_now();
    assert!(!replica.is_in_sync(1));
    manager.reconcile("t", 0, &log, Some(&stale));
    assert!(!replica.is_in_sync(1), "the shrunk ISR stands");

    // The same for a follower: the stale leadership of epoch 3 is not taken up again.
    let stale = led_by(0, 3).partition("t", 0).cloned().unwrap();
    state.send_replace(Arc::new(led_by(1, 4)));
    manager.reconcile_now();
    assert_eq!(replica.follower_view(), Some((1, 4, true)));
    manager.reconcile("t", 0, &log, Some(&stale));
    assert_eq!(replica.follower_view(), Some((1, 4, true)));
    assert!(replica.check_produce(-1, 1).is_err());
}

/// Records whether a future's waker was called.
struct WakeFlag(std::sync::atomic::AtomicBool);

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The acks=all wait ends when the HW advance it waits for happens (the
/// follower's fetch carrying the new offset): that advance wakes it, and it
/// is ready at its next poll; no timer or polling loop stands in between.
#[tokio::test]
async fn an_acks_all_wait_is_woken_by_the_hw_advance_not_a_timer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Waker};

    let Setup {
        _dir,
        state: _state,
        shutdown,
        _shutdown_tx,
        manager,
        log,
    } = setup(led_by(0, 1));
    let replica = manager.replica("t", 0, &log);
    let epoch = replica.check_produce(-1, 2).unwrap();
    let appended = log.append(produced(0), epoch, 0).unwrap();
    let end = appended.last_offset + 1;
    manager.leader_appended(&replica, end);
    log.sync(end).unwrap();
    manager.leader_synced(&replica);
    assert!(log.high_watermark() < end, "follower 1 has not fetched yet");

    let flag = Arc::new(WakeFlag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut wait = std::pin::pin!(replica.wait_committed(end, epoch, 2, deadline, shutdown));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    assert!(!flag.0.load(Ordering::SeqCst));
    // Follower 1's next fetch says it holds the batch durably.
    manager.follower_fetch(&replica, 1, end).unwrap();
    assert!(
        flag.0.load(Ordering::SeqCst),
        "the HW advance itself wakes the wait"
    );
    match wait.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("committed at the advance, got {other:?}"),
    }
    assert_eq!(log.high_watermark(), end);
}

/// A produce starts the leader's fsync when it appends; its completion
/// advances the HW by itself, so an acks=all batch behind another in the
/// connection's answer order is committed without its own response being
/// polled first (the handle is dropped here and nobody awaits it).
#[tokio::test]
async fn the_leaders_fsync_started_at_append_advances_the_hw_unawaited() {
    let Setup {
        _dir,
        state: _state,
        shutdown,
        _shutdown_tx,
        manager,
        log,
    } = setup(led_by(0, 1));
    let replica = manager.replica("t", 0, &log);
    let epoch = replica.check_produce(-1, 2).unwrap();
    let appended = log.append(produced(0), epoch, 0).unwrap();
    let end = appended.last_offset + 1;
    manager.leader_appended(&replica, end);
    // The follower already holds the batch; only the leader's fsync is missing.
    manager.follower_fetch(&replica, 1, end).unwrap();
    assert!(log.high_watermark() < end);

    drop(manager.sync_leader(replica.clone(), end));
    let deadline = Instant::now() + Duration::from_secs(30);
    replica
        .wait_committed(end, epoch, 2, deadline, shutdown)
        .await
        .expect("committed by the fsync started at the append");
    assert!(log.synced_offset() >= end);
    assert_eq!(log.high_watermark(), end);
}
