//! The group coordinator runtime: holds every [`Group`], runs the state
//! machine's transitions under one lock, parks JoinGroup and SyncGroup
//! responses on oneshot channels until the barrier completes, drives session
//! and rebalance timeouts from a timer task, and persists group metadata and
//! offsets as records of `__consumer_offsets`, which it replays at start-up
//! before answering (requests meanwhile get COORDINATOR_LOAD_IN_PROGRESS).
//!
//! Every state change and its log append happen under the lock, so records
//! reach the log in the order the state changed (the latest record per key
//! is the state). Fsyncs happen outside the lock; answers that depend on a
//! record (OffsetCommit, SyncGroup after the leader's assignment) wait for it.
//! Reading and writing the records is `store.rs`'s part.
//!
//! This file keeps the [`Coordinator`], its groups lock and parked answers,
//! the execution of a transition's actions, leadership and loading of
//! `__consumer_offsets`, the timers, offset expiry and the metrics. The
//! requests add `impl Coordinator` blocks by concept: `membership.rs`
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), `offsets.rs` (OffsetCommit,
//! OffsetFetch, OffsetDelete, a deleted topic's offsets) and `admin.rs`
//! (ListGroups, DescribeGroups, DeleteGroups). They use this file, never
//! each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use prometheus::IntCounterVec;
use runnel_meta::{BrokerId, ClusterState};
use tokio::sync::{oneshot, watch, Notify};

use super::consumer::{Assignor, ConsumerConfig};
use super::error::GroupError;
use super::messages::{Action, GroupState, SyncOutcome};
use super::placement::{partition_for, OFFSETS_TOPIC};
use super::state::{Group, GroupConfig};
use super::store::{self, Durable, OffsetsLog};
use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::runtime::{now_ms, wait_shutdown};
use crate::topics::TopicRegistry;

// Also named `group::coordinator::…` by the API handlers, the replication
// layer and the topic registry.
pub(crate) use super::messages::{CommitEntry, JoinResult};
pub(crate) use super::store::{offsets_topic_configs, OffsetsReplication};

mod admin;
mod consumer;
mod membership;
mod offsets;

/// An answer that is ready now or arrives when the group moves on.
pub(crate) enum Waiting<T> {
    /// Answered.
    Ready(T),
    /// Parked until the barrier completes.
    Parked(oneshot::Receiver<T>, watch::Receiver<bool>),
}

impl<T> Waiting<T> {
    /// Waits for the answer; `on_shutdown` if the broker stops first or the
    /// parked request was abandoned.
    pub(crate) async fn resolve(self, on_shutdown: T) -> T {
        match self {
            Waiting::Ready(v) => v,
            Waiting::Parked(rx, mut shutdown) => tokio::select! {
                answer = rx => answer.unwrap_or(on_shutdown),
                _ = wait_shutdown(&mut shutdown) => on_shutdown,
            },
        }
    }
}

/// A group with the answers parked on it.
struct Entry {
    group: Group,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<Result<SyncOutcome, GroupError>>>,
}

impl Entry {
    fn new(group: Group) -> Entry {
        Entry {
            group,
            joins: HashMap::new(),
            syncs: HashMap::new(),
        }
    }
}

/// An answer held back until a group record is durable.
enum Deferred {
    Join(oneshot::Sender<JoinResult>, JoinResult),
    Sync(
        oneshot::Sender<Result<SyncOutcome, GroupError>>,
        Result<SyncOutcome, GroupError>,
    ),
}

/// The consumer group protocol's settings from the broker's.
fn consumer_config(config: &BrokerConfig) -> ConsumerConfig {
    let assignors: Vec<Assignor> = config
        .group_consumer_assignors
        .split(',')
        .filter_map(|a| Assignor::from_name(a.trim()))
        .collect();
    ConsumerConfig {
        session_timeout_ms: config.group_consumer_session_timeout_ms,
        heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
        max_size: config.group_consumer_max_size,
        default_assignor: assignors.first().copied().unwrap_or(Assignor::Uniform),
        range_enabled: assignors.contains(&Assignor::Range),
        uniform_enabled: assignors.contains(&Assignor::Uniform),
    }
}

/// The group coordinator of this broker (every group: a single broker
/// coordinates all partitions of `__consumer_offsets`).
pub(crate) struct Coordinator {
    config: GroupConfig,
    retention_ms: i64,
    retention_check_ms: u64,
    flush: bool,
    topics: Arc<TopicRegistry>,
    rebalances: IntCounterVec,
    shutdown: watch::Receiver<bool>,
    /// False until `__consumer_offsets` has been replayed.
    loaded: AtomicBool,
    /// Every group; the state machine and its appends run under this lock.
    groups: Mutex<HashMap<String, Entry>>,
    /// Wakes the timer task when a deadline may have moved earlier.
    wake: Notify,
    /// Partitions of `__consumer_offsets` this broker leads and has loaded;
    /// `None` = every partition (no metadata view: unit tests). Written by `run`.
    served: RwLock<Option<BTreeSet<i32>>>,
    /// Partitions this broker leads whose groups are being loaded.
    loading: RwLock<BTreeSet<i32>>,
    /// `__consumer_offsets`, where every group change is appended.
    store: OffsetsLog,
    /// Metadata index the served partitions reflect (after loading).
    followed: watch::Sender<u64>,
    /// The applied cluster metadata, which says which partitions exist (set
    /// by `run` with leadership); `None` = the local partitions are all there
    /// is (a fixed single-broker view: unit tests).
    catalog: RwLock<Option<watch::Receiver<Arc<ClusterState>>>>,
}

impl Coordinator {
    /// A coordinator that answers COORDINATOR_LOAD_IN_PROGRESS until [`Coordinator::load`] ran.
    pub(crate) fn new(
        config: &BrokerConfig,
        topics: Arc<TopicRegistry>,
        rebalances: IntCounterVec,
        shutdown: watch::Receiver<bool>,
    ) -> Coordinator {
        Coordinator {
            config: GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                consumer: consumer_config(config),
            },
            retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            retention_check_ms: config.offsets_retention_check_interval_ms.max(1),
            flush: config.log_flush_on_ack,
            store: OffsetsLog::new(topics.clone(), config.offsets_topic_num_partitions),
            topics,
            rebalances,
            shutdown,
            loaded: AtomicBool::new(false),
            groups: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            served: RwLock::new(None),
            loading: RwLock::new(BTreeSet::new()),
            followed: watch::channel(0).0,
            catalog: RwLock::new(None),
        }
    }

    /// True once `__consumer_offsets` has been replayed.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The `__consumer_offsets` partition holding this group.
    pub(crate) fn partition_of(&self, group_id: &str) -> i32 {
        self.store.partition_of(group_id)
    }

    /// Installs how writes to `__consumer_offsets` are replicated (see [`OffsetsReplication`]).
    pub(crate) fn set_replication(&self, replication: Arc<dyn OffsetsReplication>) {
        self.store.set_replication(replication);
    }

    /// Whether `topic` has a partition `partition` in the cluster: the
    /// applied metadata's answer (offsets of a partition hosted on other
    /// brokers are stored here as well), the local registry's without it.
    pub(crate) fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        match &*self.catalog.read() {
            Some(state) => state.borrow().partition(topic, partition).is_some(),
            None => self
                .topics
                .get(topic)
                .and_then(|t| t.partition(partition))
                .is_some(),
        }
    }

    /// Refuses requests before loading finished, empty group ids, and groups
    /// whose `__consumer_offsets` partition this broker does not lead.
    pub(crate) fn check(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.check_loaded()?;
        self.check_served(group_id)
    }

    /// NOT_COORDINATOR unless this broker leads the group's partition
    /// (COORDINATOR_LOAD_IN_PROGRESS while its groups are being loaded).
    fn check_served(&self, group_id: &str) -> Result<(), GroupError> {
        if self.topics.get(OFFSETS_TOPIC).is_none() {
            // No group exists anywhere yet: reads answer empty, and writes
            // create the topic first (and fail if they cannot).
            return Ok(());
        }
        self.check_partition_served(self.partition_of(group_id))
    }

    /// NOT_COORDINATOR unless this broker leads `__consumer_offsets`
    /// partition `partition` (COORDINATOR_LOAD_IN_PROGRESS while its groups
    /// are being loaded).
    fn check_partition_served(&self, partition: i32) -> Result<(), GroupError> {
        match &*self.served.read() {
            None => Ok(()),
            Some(served) if served.contains(&partition) => Ok(()),
            Some(_) if self.loading.read().contains(&partition) => {
                Err(GroupError::CoordinatorLoadInProgress)
            }
            Some(_) => Err(GroupError::NotCoordinator),
        }
    }

    /// COORDINATOR_LOAD_IN_PROGRESS until loading finished.
    pub(crate) fn check_loaded(&self) -> Result<(), GroupError> {
        if self.is_loaded() {
            Ok(())
        } else {
            Err(GroupError::CoordinatorLoadInProgress)
        }
    }

    /// Runs a transition's actions: answers parked requests, persists the
    /// group; answers that follow a persist wait for its fsync.
    fn execute(&self, entry: &mut Entry, actions: Vec<Action>, now: i64) {
        let mut durable: Option<Result<Durable, GroupError>> = None;
        let mut deferred = Vec::new();
        for action in actions {
            match action {
                Action::PersistGroup => {
                    let record = store::group_record(&entry.group);
                    durable = Some(self.store.append(entry.group.id(), &[record], now));
                }
                Action::RebalanceCompleted { generation_id } => {
                    self.rebalances.with_label_values(&[entry.group.id()]).inc();
                    tracing::info!(
                        group = entry.group.id(),
                        generation = generation_id,
                        members = entry.group.member_count(),
                        protocol = entry.group.protocol_name().unwrap_or_default(),
                        leader = entry.group.leader().unwrap_or_default(),
                        "group rebalanced"
                    );
                }
                Action::JoinResponse { member_id, result } => {
                    let Some(tx) = entry.joins.remove(&member_id) else {
                        continue;
                    };
                    let answer = match result {
                        Ok(outcome) => JoinResult::Joined(outcome),
                        Err(err) => JoinResult::Failed(err),
                    };
                    if durable.is_some() {
                        deferred.push(Deferred::Join(tx, answer));
                    } else {
                        let _ = tx.send(answer);
                    }
                }
                Action::SyncResponse { member_id, result } => {
                    let Some(tx) = entry.syncs.remove(&member_id) else {
                        continue;
                    };
                    if durable.is_some() {
                        deferred.push(Deferred::Sync(tx, result));
                    } else {
                        let _ = tx.send(result);
                    }
                }
            }
        }
        let flush = self.flush;
        match durable {
            None => {}
            Some(Err(err)) => {
                for d in deferred {
                    match d {
                        Deferred::Join(tx, _) => {
                            let _ = tx.send(JoinResult::Failed(err));
                        }
                        Deferred::Sync(tx, _) => {
                            let _ = tx.send(Err(err));
                        }
                    }
                }
            }
            Some(Ok(durable)) if !deferred.is_empty() => {
                tokio::spawn(async move {
                    let synced = durable.wait(flush).await;
                    for d in deferred {
                        match (d, synced) {
                            (Deferred::Join(tx, answer), Ok(())) => {
                                let _ = tx.send(answer);
                            }
                            (Deferred::Sync(tx, answer), Ok(())) => {
                                let _ = tx.send(answer);
                            }
                            (Deferred::Join(tx, _), Err(err)) => {
                                let _ = tx.send(JoinResult::Failed(err));
                            }
                            (Deferred::Sync(tx, _), Err(err)) => {
                                let _ = tx.send(Err(err));
                            }
                        }
                    }
                });
            }
            Some(Ok(durable)) => {
                // Nobody waits on it, but the record should still reach the disk soon.
                tokio::spawn(async move {
                    let _ = durable.wait(flush).await;
                });
            }
        }
    }

    /// Expires committed offsets past the retention (see
    /// [`Group::expire_offsets`]), writing their tombstones; groups left
    /// empty without offsets are deleted. Returns the number of offsets removed.
    pub(crate) async fn expire_offsets(&self, now: i64) -> usize {
        let mut removed = 0;
        let mut durables = Vec::new();
        let mut dead = Vec::new();
        {
            let mut groups = self.groups.lock();
            for (id, entry) in groups.iter_mut() {
                let mut probe = entry.group.clone();
                let expired = probe.expire_offsets(now, self.retention_ms);
                let gone = probe.state() == GroupState::Dead;
                if expired.is_empty() && !gone {
                    continue;
                }
                let mut recs: Vec<(Bytes, Option<Bytes>)> = expired
                    .iter()
                    .map(|(t, p)| store::offset_tombstone(id, t, *p))
                    .collect();
                if gone {
                    recs.push(store::group_tombstone(id));
                }
                match self.store.append(id, &recs, now) {
                    Ok(d) => {
                        removed += expired.len();
                        entry.group = probe;
                        durables.push(d);
                        if gone {
                            dead.push(id.clone());
                        }
                    }
                    Err(err) => {
                        tracing::warn!(group = %id, error = %err, "writing offset expiry tombstones failed");
                    }
                }
            }
            for id in &dead {
                groups.remove(id);
            }
        }
        for id in &dead {
            let _ = self.rebalances.remove_label_values(&[id.as_str()]);
        }
        for d in durables {
            let _ = d.wait(self.flush).await;
        }
        if removed > 0 || !dead.is_empty() {
            tracing::info!(
                offsets = removed,
                groups = dead.len(),
                "expired committed offsets"
            );
        }
        removed
    }

    /// Runs due timeouts of every group.
    pub(crate) fn on_timer(&self, now: i64) {
        let mut groups = self.groups.lock();
        for entry in groups.values_mut() {
            if entry.group.next_deadline().is_some_and(|d| d <= now) {
                let before = entry.group.member_count();
                let actions = entry.group.on_timer(now);
                let after = entry.group.member_count();
                if after < before {
                    tracing::info!(
                        group = entry.group.id(),
                        removed = before - after,
                        "members removed after their session or rebalance timeout"
                    );
                }
                self.execute(entry, actions, now);
            }
        }
    }

    fn next_deadline(&self) -> Option<i64> {
        self.groups
            .lock()
            .values()
            .filter_map(|e| e.group.next_deadline())
            .min()
    }

    /// Replays every local partition of `__consumer_offsets` (latest record
    /// per key wins) and starts answering. Blocking.
    pub(crate) fn load(&self) -> Result<usize, runnel_log::Error> {
        self.load_partitions(None)
    }

    /// Replays the local partitions of `__consumer_offsets` in `only` (all
    /// when `None`) and adds their groups. Blocking.
    fn load_partitions(&self, only: Option<&BTreeSet<i32>>) -> Result<usize, runnel_log::Error> {
        let now = now_ms();
        let replayed = self.store.replay(only, self.config, now)?;
        let mut groups = self.groups.lock();
        for group in replayed.groups {
            groups.insert(group.id().to_string(), Entry::new(group));
        }
        let loaded = groups.len();
        drop(groups);
        self.loaded.store(true, Ordering::Release);
        self.wake.notify_one();
        tracing::info!(
            groups = loaded,
            records = replayed.records,
            partitions = ?only,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
        Ok(loaded)
    }

    /// The `__consumer_offsets` partitions `node` leads in `state`.
    fn led_partitions(state: &ClusterState, node: BrokerId) -> BTreeSet<i32> {
        state
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.leader == node)
                    .map(|(i, _)| i as i32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Serves exactly the partitions in `led`: unloads the groups of
    /// partitions no longer led here (they answer NOT_COORDINATOR) and loads
    /// those of newly led ones, once their logs are open (`synced_to`).
    async fn follow_leadership(self: &Arc<Self>, led: BTreeSet<i32>, synced_to: u64) {
        let served = self.served.read().clone().unwrap_or_default();
        let removed: BTreeSet<i32> = served.difference(&led).copied().collect();
        let added: BTreeSet<i32> = led.difference(&served).copied().collect();
        if !removed.is_empty() {
            if let Some(served) = self.served.write().as_mut() {
                served.retain(|p| !removed.contains(p));
            }
            let count = self.store.partition_count();
            let mut groups = self.groups.lock();
            let before = groups.len();
            groups.retain(|id, _| !removed.contains(&partition_for(id, count)));
            tracing::info!(partitions = ?removed, groups = before - groups.len(),
                "no longer leading {OFFSETS_TOPIC} partitions; unloaded their groups");
        }
        if !added.is_empty() {
            self.loading.write().extend(added.iter().copied());
            let mut shutdown = self.shutdown.clone();
            tokio::select! {
                _ = self.topics.wait_synced(synced_to) => {}
                _ = wait_shutdown(&mut shutdown) => return,
            }
            let me = self.clone();
            let partitions = added.clone();
            match tokio::task::spawn_blocking(move || me.load_partitions(Some(&partitions))).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::error!(error = %err, partitions = ?added, "loading {OFFSETS_TOPIC} partitions failed")
                }
                Err(err) => {
                    tracing::error!(error = %err, "loading {OFFSETS_TOPIC} partitions panicked")
                }
            }
            if let Some(served) = self.served.write().as_mut() {
                served.extend(added.iter().copied());
            }
            self.loading.write().retain(|p| !added.contains(p));
        }
        self.loaded.store(true, Ordering::Release);
        self.followed.send_if_modified(|v| {
            let newer = synced_to > *v;
            *v = (*v).max(synced_to);
            newer
        });
    }

    /// Waits until the served partitions reflect the metadata up to `index`
    /// (a group request right after creating `__consumer_offsets` must not
    /// get NOT_COORDINATOR).
    pub(crate) async fn wait_following(&self, index: u64) {
        let mut rx = self.followed.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = rx.wait_for(|v| *v >= index) => {}
            _ = wait_shutdown(&mut shutdown) => {}
        }
    }

    /// Loads `__consumer_offsets`, then runs session/rebalance timeouts and
    /// offset expiry until shutdown.
    ///
    /// With `leadership` (the applied metadata and this broker's id) it
    /// serves only the partitions this broker leads and follows leadership
    /// changes; without it, every local partition (a fixed single-broker view).
    pub(crate) async fn run(
        self: Arc<Self>,
        leadership: Option<(watch::Receiver<Arc<ClusterState>>, BrokerId)>,
    ) {
        let mut leadership = leadership;
        match leadership.as_mut() {
            Some((state, node)) => {
                *self.catalog.write() = Some(state.clone());
                *self.served.write() = Some(BTreeSet::new());
                let current = state.borrow_and_update().clone();
                self.follow_leadership(
                    Self::led_partitions(&current, *node),
                    current.applied_index,
                )
                .await;
            }
            None => {
                let me = self.clone();
                match tokio::task::spawn_blocking(move || me.load()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        tracing::error!(error = %err, "loading {OFFSETS_TOPIC} failed; group requests will get COORDINATOR_LOAD_IN_PROGRESS");
                        return;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "loading {OFFSETS_TOPIC} panicked");
                        return;
                    }
                }
            }
        }
        let mut shutdown = self.shutdown.clone();
        let mut next_expiry = now_ms() + self.retention_check_ms as i64;
        loop {
            let now = now_ms();
            let until = self
                .next_deadline()
                .unwrap_or(i64::MAX)
                .min(next_expiry)
                .min(now + 1000);
            // At least a few milliseconds, so a deadline that a transition
            // cannot move (a bug) costs a little CPU instead of a spinning core.
            let sleep = Duration::from_millis(until.saturating_sub(now).max(5) as u64);
            let leadership_changed = async {
                match leadership.as_mut() {
                    Some((state, _)) => state.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wait_shutdown(&mut shutdown) => return,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                changed = leadership_changed => {
                    match (changed, leadership.as_mut()) {
                        (true, Some((state, node))) => {
                            let current = state.borrow_and_update().clone();
                            self.follow_leadership(
                                Self::led_partitions(&current, *node),
                                current.applied_index,
                            )
                            .await;
                        }
                        // The metadata is gone (shutdown): keep serving timers.
                        _ => leadership = None,
                    }
                }
            }
            let now = now_ms();
            self.on_timer(now);
            if now >= next_expiry {
                self.expire_offsets(now).await;
                next_expiry = now + self.retention_check_ms as i64;
            }
        }
    }

    /// Sets the group gauges (members, committed offset, lag) from the current
    /// state; series of groups that no longer exist disappear.
    pub(crate) fn refresh_metrics(&self, metrics: &Metrics) {
        metrics.group_members.reset();
        metrics.group_committed_offset.reset();
        metrics.group_lag.reset();
        #[allow(clippy::type_complexity)]
        let snapshot: Vec<(String, usize, Vec<((String, i32), i64)>)> = self
            .groups
            .lock()
            .values()
            .map(|e| {
                (
                    e.group.id().to_string(),
                    e.group.member_count(),
                    e.group
                        .offsets()
                        .iter()
                        .map(|(k, o)| (k.clone(), o.offset))
                        .collect(),
                )
            })
            .collect();
        for (group, members, offsets) in snapshot {
            metrics
                .group_members
                .with_label_values(&[group.as_str()])
                .set(members as i64);
            for ((topic, partition), committed) in offsets {
                let p = partition.to_string();
                let labels = [group.as_str(), topic.as_str(), p.as_str()];
                metrics
                    .group_committed_offset
                    .with_label_values(&labels)
                    .set(committed);
                if let Some(part) = self.topics.get(&topic).and_then(|t| t.partition(partition)) {
                    let lag = (part.log.log_end_offset() - committed).max(0);
                    metrics.group_lag.with_label_values(&labels).set(lag);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "../coordinator_tests.rs"]
mod tests;
