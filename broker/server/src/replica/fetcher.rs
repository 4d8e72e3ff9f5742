//! The follower side: one task per source broker fetches every partition this
//! broker follows from it, with Kafka Fetch requests carrying `replica_id` and
//! the current leader epoch. Before a partition's first fetch under a new
//! leader epoch it truncates its log by OffsetForLeaderEpoch (to the high
//! watermark when the leader cannot answer). Fetched batches are appended as
//! they are and fsynced before the next fetch reports the new offset, since
//! the leader counts a follower's fetch offset as durably replicated; the
//! partitions of one response are fsynced together, not one after another,
//! and the next fetch leaves at once.
//! Out-of-sync partitions listed in `follower.replication.throttled.replicas`
//! share this broker's follower quota: while it is spent they are left out of
//! the request, and the task sleeps until it refills when nothing else is left.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId as KBrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_client::Connection;
use runnel_log::Log;
use runnel_meta::BrokerId;
use tokio::task::JoinHandle;

use super::{Replica, ReplicaManager, ThrottleSide};

/// The Fetch version followers send (topic names, current leader epoch, replica_id field).
const FETCH_VERSION: i16 = 12;

/// Keeps one fetcher task per broker that leads a local follower replica:
/// on every role change the manager announces, and on the manager's tick
/// (a task that died is restarted on demand), starts a task for a followed
/// leader that has none (or whose task ended because it had nothing left to
/// fetch); at shutdown, stops them all. Runs until shutdown.
///
/// The supervisor, not the manager, owns the tasks, so the manager does not
/// depend on the fetcher that depends on it.
pub(crate) async fn supervise(manager: Arc<ReplicaManager>) {
    let mut changes = manager.subscribe_follower_changes();
    let mut shutdown = manager.shutdown_signal();
    let mut tasks: HashMap<BrokerId, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(manager.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        changes.borrow_and_update();
        for leader in manager.followed_leaders() {
            if tasks.get(&leader).is_none_or(|t| t.is_finished()) {
                tasks.insert(leader, tokio::spawn(run(manager.clone(), leader)));
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
            _ = crate::runtime::wait_shutdown(&mut shutdown) => break,
        }
    }
    for task in tasks.into_values() {
        task.abort();
    }
}

/// Runs until no partition follows `leader` or shutdown.
async fn run(manager: Arc<ReplicaManager>, leader: BrokerId) {
    let me = manager.settings.node_id;
    let backoff = manager.settings.retry_backoff;
    let mut shutdown = manager.shutdown_signal();
    let mut conn: Option<Connection> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = manager.wait_unpaused() => {}
            _ = crate::runtime::wait_shutdown(&mut shutdown) => return,
        }
        let partitions = manager.following(leader);
        if partitions.is_empty() {
            return;
        }
        let Some(addr) = manager.broker_addr(leader) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.is_broken() || c.addr() != addr)
        {
            let timeout = Duration::from_millis(
                u64::try_from(manager.settings.fetch_wait_ms).unwrap_or(500) + 10_000,
            );
            let connected = manager
                .settings
                .inter_broker
                .connect(
                    &addr,
                    &format!("runnel-replica-{me}"),
                    Duration::from_secs(5),
                    timeout,
                )
                .await;
            match connected {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    tracing::debug!(leader, %addr, error = %err, "cannot connect to leader");
                    conn = None;
                    sleep_or_shutdown(backoff, &mut shutdown).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let result = async {
            truncate_diverged(&manager, c, &partitions).await?;
            fetch_once(&manager, c, leader, &partitions).await
        }
        .await;
        match result {
            Ok(Round::Progressed) => {}
            Ok(Round::Idle) => sleep_or_shutdown(backoff, &mut shutdown).await,
            Ok(Round::Throttled(wait)) => sleep_or_shutdown(wait, &mut shutdown).await,
            // The abandoned request's answer would arrive on this connection.
            Ok(Round::Regrouped) => conn = None,
            Err(err) => {
                tracing::debug!(leader, error = %err, "follower fetch failed");
                conn = None;
                sleep_or_shutdown(backoff, &mut shutdown).await;
            }
        }
    }
}

/// Resolves once the partitions this broker follows from `leader` are no
/// longer `fetching` (one became a follower of it, or stopped being one).
async fn followed_set_changes(
    manager: &ReplicaManager,
    leader: BrokerId,
    fetching: &[Arc<Replica>],
) {
    let mut roles = manager.subscribe_follower_changes();
    roles.borrow_and_update();
    loop {
        let now = manager.following(leader);
        let same = now.len() == fetching.len()
            && now
                .iter()
                .all(|r| fetching.iter().any(|f| Arc::ptr_eq(r, f)));
        if !same {
            return;
        }
        if roles.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = crate::runtime::wait_shutdown(shutdown) => {}
    }
}

/// Truncates the partitions that became followers of a new leader epoch:
/// asks the leader for the end offset of our latest epoch and cuts the log
/// there (Kafka's epoch-based truncation); without an epoch answer, to the
/// high watermark.
async fn truncate_diverged(
    manager: &ReplicaManager,
    conn: &mut Connection,
    partitions: &[Arc<Replica>],
) -> Result<(), runnel_client::Error> {
    let pending: Vec<(Arc<Replica>, i32, Option<i32>)> = partitions
        .iter()
        .filter_map(|r| {
            let (_, epoch, needs) = r.follower_view()?;
            needs.then(|| (r.clone(), epoch, r.log.latest_epoch()))
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (r, epoch, latest) in &pending {
        let part = OffsetForLeaderPartition::default()
            .with_partition(r.partition)
            .with_current_leader_epoch(*epoch)
            .with_leader_epoch(latest.unwrap_or(-1));
        match topics.iter_mut().find(|t| t.topic.0.as_str() == r.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(r.topic.clone())))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let version = conn.version::<OffsetForLeaderEpochRequest>()?.min(4);
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(KBrokerId(manager.settings.node_id))
        .with_topics(topics);
    let response = conn.send(&request, version).await?;
    for (replica, epoch, latest) in pending {
        let answer = response
            .topics
            .iter()
            .filter(|t| t.topic.0.as_str() == replica.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition == replica.partition);
        let Some(answer) = answer else { continue };
        if answer.error_code != 0 {
            // FENCED/UNKNOWN_LEADER_EPOCH, NOT_LEADER: wait for newer metadata (retried).
            tracing::debug!(topic = %replica.topic, partition = replica.partition,
                error = ?ResponseError::try_from_code(answer.error_code), "OffsetForLeaderEpoch refused");
            continue;
        }
        let log = replica.log.clone();
        let ours = log
            .end_offset_for_epoch(answer.leader_epoch)
            .map(|(_, end)| end);
        let target = truncation_target(
            latest,
            (answer.leader_epoch, answer.end_offset),
            ours,
            log.high_watermark(),
        );
        let before = log.log_end_offset();
        let following = replica.clone();
        let cut = tokio::task::spawn_blocking(move || {
            following.while_following(epoch, |log| log.truncate_to(target))
        })
        .await;
        match cut {
            // No longer a follower of this epoch: nothing cut, the new role decides.
            Ok(None) => {}
            Ok(Some(Ok(()))) => {
                if target < before {
                    tracing::info!(topic = %replica.topic, partition = replica.partition,
                        from = before, to = replica.log.log_end_offset(), leader_epoch = epoch,
                        "truncated diverged follower log");
                }
                replica.set_needs_truncation(epoch, false);
            }
            Ok(Some(Err(err))) => {
                tracing::error!(topic = %replica.topic, partition = replica.partition, error = %err, "truncation failed")
            }
            Err(err) => tracing::error!(error = %err, "truncation task failed"),
        }
    }
    Ok(())
}

/// Where a follower cuts its log, given its latest epoch, the leader's
/// OffsetForLeaderEpoch answer `(epoch, end offset)` for it, the follower's
/// own end offset for the answered epoch, and its high watermark. Kafka's
/// rule: the same epoch -> the leader's end offset; an older epoch (the
/// leader never had ours) -> the smaller of both ends of that epoch; no
/// answer (UNDEFINED, or no epoch here) -> the high watermark. Truncating to
/// an offset at or past the log end changes nothing.
fn truncation_target(
    latest: Option<i32>,
    answer: (i32, i64),
    ours_for_answered_epoch: Option<i64>,
    high_watermark: i64,
) -> i64 {
    let (epoch, end) = answer;
    match latest {
        None => high_watermark,
        Some(_) if end < 0 => high_watermark,
        Some(latest) if latest == epoch => end,
        Some(_) => end.min(ours_for_answered_epoch.unwrap_or(end)),
    }
}

/// What one fetch round achieved.
enum Round {
    /// Some partition got an answer.
    Progressed,
    /// Nothing could be fetched (all partitions waiting or refused): back off.
    Idle,
    /// Every ready partition is throttled and the quota is spent: sleep this long.
    Throttled(Duration),
    /// The partitions followed from this leader changed while the fetch waited
    /// at the leader; it was abandoned (the connection with it) so the new
    /// partitions are fetched at once rather than after the long poll.
    Regrouped,
}

/// Longest sleep for a spent quota before looking at the config again (a
/// rate of 0 never refills, but may be changed).
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// One Fetch round for every truncated partition.
async fn fetch_once(
    manager: &ReplicaManager,
    conn: &mut Connection,
    leader: BrokerId,
    partitions: &[Arc<Replica>],
) -> Result<Round, runnel_client::Error> {
    let settings = &manager.settings;
    let view = manager.throttle();
    let quota = manager.quota(ThrottleSide::Follower);
    let budget = quota.available(std::time::Instant::now());
    // (replica, epoch, fetch offset, throttled)
    let mut ready: Vec<(Arc<Replica>, i32, i64, bool)> = Vec::new();
    let mut held_back = false;
    let mut untruncated = false;
    for r in partitions {
        let Some((_, epoch, needs)) = r.follower_view() else {
            continue;
        };
        if needs {
            untruncated = true;
            continue;
        }
        let throttled = budget.is_some() && manager.follower_throttled(&view, r);
        if throttled && budget.is_some_and(|b| b <= 0) {
            held_back = true;
            manager.held_back(ThrottleSide::Follower);
            continue;
        }
        ready.push((r.clone(), epoch, r.log.log_end_offset(), throttled));
    }
    let throttle_wait = quota.wait(std::time::Instant::now(), MAX_THROTTLE_WAIT);
    if ready.is_empty() {
        return Ok(if held_back {
            Round::Throttled(throttle_wait.max(Duration::from_millis(1)))
        } else {
            Round::Idle
        });
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (r, epoch, offset, throttled) in &ready {
        // A throttled partition asks for no more than the quota allows now
        // (the leader still sends a first batch that is larger; the debt is
        // paid by waiting).
        let max_bytes = match budget {
            Some(b) if *throttled => i32::try_from(b.max(1))
                .unwrap_or(i32::MAX)
                .min(settings.fetch_max_bytes),
            _ => settings.fetch_max_bytes,
        };
        let part = FetchPartition::default()
            .with_partition(r.partition)
            .with_current_leader_epoch(*epoch)
            .with_fetch_offset(*offset)
            .with_log_start_offset(r.log.log_start_offset())
            .with_partition_max_bytes(max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == r.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(r.topic.clone())))
                    .with_partitions(vec![part]),
            ),
        }
    }
    // Held-back partitions are asked for again once the quota refills, not
    // only after a full long poll of the others.
    let max_wait_ms = if held_back {
        settings.fetch_wait_ms.min(
            i32::try_from(throttle_wait.as_millis())
                .unwrap_or(i32::MAX)
                .max(1),
        )
    } else if untruncated {
        // A partition whose truncation failed (its leader did not know it
        // yet) is tried again after a short wait, not a full long poll.
        settings
            .fetch_wait_ms
            .min(i32::try_from(settings.retry_backoff.as_millis()).unwrap_or(i32::MAX))
    } else {
        settings.fetch_wait_ms
    };
    let request = FetchRequest::default()
        .with_replica_id(KBrokerId(settings.node_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(settings.fetch_max_bytes.saturating_mul(4).max(1))
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let regrouped = followed_set_changes(manager, leader, partitions);
    let response = tokio::select! {
        response = conn.send(&request, FETCH_VERSION) => response?,
        () = regrouped => return Ok(Round::Regrouped),
    };
    if *manager.fetch_paused.borrow() {
        // Paused while the fetch was in flight: apply nothing.
        return Ok(Round::Idle);
    }
    let mut progressed = false;
    let mut answered: Vec<Fetched> = Vec::with_capacity(ready.len());
    for (replica, epoch, offset, throttled) in ready {
        let data = response
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == replica.topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == replica.partition);
        let Some(data) = data else { continue };
        if data.error_code != 0 {
            let code = ResponseError::try_from_code(data.error_code);
            if code == Some(ResponseError::OffsetOutOfRange) {
                handle_out_of_range(&replica, epoch, offset, data.log_start_offset).await;
            } else {
                tracing::debug!(topic = %replica.topic, partition = replica.partition,
                    error = ?code, "follower fetch refused; waiting for newer metadata");
            }
            continue;
        }
        progressed = true;
        // The role may have changed while the fetch was in flight.
        if replica.follower_view().map(|v| v.1) != Some(epoch) {
            continue;
        }
        let records = data.records.clone().unwrap_or_default();
        if throttled {
            manager.record_throttled(ThrottleSide::Follower, records.len() as u64);
        }
        answered.push(Fetched {
            replica,
            epoch,
            records,
            high_watermark: data.high_watermark,
        });
    }
    if apply_fetched(answered).await {
        manager.notify_hw();
    }
    Ok(if progressed {
        Round::Progressed
    } else {
        Round::Idle
    })
}

/// One partition's answer in a follower fetch response.
struct Fetched {
    replica: Arc<Replica>,
    /// The leader epoch the fetch was sent under.
    epoch: i32,
    records: Bytes,
    /// The leader's high watermark in the answer.
    high_watermark: i64,
}

/// Applies one fetch response: appends every partition's batches, fsyncs
/// the logs that grew together ([`sync_together`]: one grouped fsync for the
/// response rather than one per partition in series, so the next fetch, which
/// tells the leader the new offsets, leaves after about one fsync), then
/// copies the leader's high watermark into every durable partition. Returns
/// true when some partition was answered without error.
async fn apply_fetched(fetched: Vec<Fetched>) -> bool {
    if fetched.is_empty() {
        return false;
    }
    // Appended only while still following the fetch's epoch: a replica that
    // became leader meanwhile keeps its log as it was.
    let appended = tokio::task::spawn_blocking(move || {
        fetched
            .into_iter()
            .filter_map(|f| {
                let result = if f.records.is_empty() {
                    Ok(())
                } else {
                    let records = f.records.clone();
                    f.replica
                        .while_following(f.epoch, |log| log.append_as_follower(records))?
                        .map(|_| ())
                };
                Some((f, result))
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut appended = match appended {
        Ok(appended) => appended,
        Err(err) => {
            tracing::error!(error = %err, "follower append task failed");
            return false;
        }
    };
    // Outside the role lock: an fsync can take a while.
    let (to_sync, slots): (Vec<(Arc<Log>, i64)>, Vec<usize>) = appended
        .iter()
        .enumerate()
        .filter(|(_, (f, result))| result.is_ok() && !f.records.is_empty())
        .map(|(slot, (f, _))| {
            let log = f.replica.log.clone();
            let end = log.log_end_offset();
            ((log, end), slot)
        })
        .unzip();
    for (slot, synced) in slots.into_iter().zip(sync_together(to_sync).await) {
        if let (Err(err), Some((_, result))) = (synced, appended.get_mut(slot)) {
            *result = Err(err);
        }
    }
    let mut any = false;
    for (f, result) in appended {
        match result {
            Ok(()) => {
                f.replica
                    .while_following(f.epoch, |log| log.set_high_watermark(f.high_watermark));
                any = true;
            }
            Err(err) => {
                tracing::error!(topic = %f.replica.topic, partition = f.replica.partition, error = %err,
                    "follower append failed; truncating again before the next fetch");
                f.replica.set_needs_truncation(f.epoch, true);
            }
        }
    }
    any
}

/// Fsyncs every log up to its offset at once: the fdatasyncs run in parallel
/// on the blocking pool, and the filesystem commits concurrent ones together
/// (a journal commit is shared), so a group costs about one fsync instead of
/// one per log in series. Results in the order given; each log's
/// [`Log::sync`] still does its own group commit and poisoning.
async fn sync_together(logs: Vec<(Arc<Log>, i64)>) -> Vec<Result<(), runnel_log::Error>> {
    sync_each(logs, |log: &Log, end| log.sync(end)).await
}

/// [`sync_together`] over any sync function (tests substitute one that shows
/// whether the calls overlap).
async fn sync_each<T, F>(items: Vec<(Arc<T>, i64)>, sync: F) -> Vec<Result<(), runnel_log::Error>>
where
    T: Send + Sync + 'static,
    F: Fn(&T, i64) -> Result<(), runnel_log::Error> + Clone + Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|(item, end)| {
            let sync = sync.clone();
            tokio::task::spawn_blocking(move || sync(&item, end))
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(join_sync(task.await));
    }
    results
}

fn join_sync(
    joined: Result<Result<(), runnel_log::Error>, tokio::task::JoinError>,
) -> Result<(), runnel_log::Error> {
    joined.unwrap_or_else(|err| {
        Err(runnel_log::Error::Io {
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(format!("fsync task failed: {err}")),
        })
    })
}

/// The leader does not have our fetch offset: below its log start we start
/// over at its log start; otherwise we are ahead of it, so truncate by epoch again.
async fn handle_out_of_range(replica: &Arc<Replica>, epoch: i32, offset: i64, leader_start: i64) {
    if leader_start >= 0 && offset < leader_start {
        let following = replica.clone();
        let result = tokio::task::spawn_blocking(move || {
            following.while_following(epoch, |log| log.truncate_fully_and_start_at(leader_start))
        })
        .await;
        if let Ok(Some(Err(err))) = result {
            tracing::error!(topic = %replica.topic, partition = replica.partition, error = %err, "cannot restart the log at the leader's start");
        }
    } else {
        replica.set_needs_truncation(epoch, true);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::{Condvar, Mutex};

    use super::{sync_each, truncation_target};

    /// Counts the syncs that have started; each waits until `expected` have.
    struct Rendezvous {
        started: Mutex<usize>,
        all_in: Condvar,
        expected: usize,
    }

    impl Rendezvous {
        /// Refuses (after a long bound that only a serial caller reaches)
        /// unless every sync of the group is in flight at the same time.
        fn sync(&self, _end: i64) -> Result<(), runnel_log::Error> {
            let mut started = self.started.lock();
            *started += 1;
            self.all_in.notify_all();
            let timed_out = self
                .all_in
                .wait_while_for(
                    &mut started,
                    |n| *n < self.expected,
                    Duration::from_secs(30),
                )
                .timed_out();
            if timed_out {
                return Err(runnel_log::Error::Io {
                    path: std::path::PathBuf::new(),
                    source: std::io::Error::other("synced alone: the group ran in series"),
                });
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_fetch_responses_fsyncs_run_together_not_in_series() {
        let group = Arc::new(Rendezvous {
            started: Mutex::new(0),
            all_in: Condvar::new(),
            expected: 3,
        });
        let items = (0..3).map(|i| (group.clone(), i)).collect();
        let results = sync_each(items, |r: &Rendezvous, end| r.sync(end)).await;
        assert_eq!(results.len(), 3);
        for result in results {
            assert!(result.is_ok(), "{result:?}");
        }
    }

    #[test]
    fn same_epoch_truncates_to_the_leaders_end_of_it() {
        // Follower has epoch 3 up to 120; the leader's epoch 3 ended at 100.
        assert_eq!(truncation_target(Some(3), (3, 100), Some(120), 50), 100);
        // The leader has more of epoch 3 than we do: nothing to cut (>= our end).
        assert_eq!(truncation_target(Some(3), (3, 150), Some(120), 50), 150);
    }

    #[test]
    fn unknown_epoch_at_the_leader_cuts_at_the_older_epochs_common_end() {
        // We wrote epoch 4 (as a deposed leader) that the new leader never saw;
        // its largest epoch <= 4 is 2, which ended at 80 there and 90 here.
        assert_eq!(truncation_target(Some(4), (2, 80), Some(90), 10), 80);
        assert_eq!(truncation_target(Some(4), (2, 95), Some(90), 10), 90);
    }

    #[test]
    fn undefined_answer_or_no_epoch_falls_back_to_the_high_watermark() {
        assert_eq!(truncation_target(Some(4), (-1, -1), None, 42), 42);
        assert_eq!(truncation_target(None, (-1, -1), None, 7), 7);
    }
}
