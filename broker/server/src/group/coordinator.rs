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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::{Mutex, RwLock};
use prometheus::IntCounterVec;
use runnel_log::Log;
use runnel_meta::{BrokerId, ClusterState};
use tokio::sync::{oneshot, watch, Notify};

use super::error::GroupError;
use super::messages::{
    Action, GroupState, JoinOutcome, JoinReply, JoinRequest, LeavingMember, SyncOutcome, SyncReply,
    SyncRequest,
};
use super::offsets::{CommittedOffset, MAX_OFFSET_METADATA_BYTES};
use super::placement::{partition_for, OFFSETS_TOPIC};
use super::records::{self, RecordKey};
use super::state::{Group, GroupConfig};
use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::runtime::{now_ms, wait_shutdown, LEADER_EPOCH};
use crate::topics::TopicRegistry;

/// How a JoinGroup ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinResult {
    /// Joined a generation.
    Joined(JoinOutcome),
    /// JoinGroup v4+: retry with this member id.
    MemberIdRequired(String),
    /// Refused.
    Failed(GroupError),
}

/// An answer that is ready now or arrives when the group moves on.
pub enum Waiting<T> {
    /// Answered.
    Ready(T),
    /// Parked until the barrier completes.
    Parked(oneshot::Receiver<T>, watch::Receiver<bool>),
}

impl<T> Waiting<T> {
    /// Waits for the answer; `on_shutdown` if the broker stops first or the
    /// parked request was abandoned.
    pub async fn resolve(self, on_shutdown: T) -> T {
        match self {
            Waiting::Ready(v) => v,
            Waiting::Parked(rx, mut shutdown) => tokio::select! {
                answer = rx => answer.unwrap_or(on_shutdown),
                _ = wait_shutdown(&mut shutdown) => on_shutdown,
            },
        }
    }
}

/// How the coordinator's writes to `__consumer_offsets` are replicated. The
/// replication layer installs one with [`Coordinator::set_replication`]; without
/// it a write is stamped with [`LEADER_EPOCH`] and complete once fsynced here
/// (a single broker). This is the hook where acks=all-style waiting for the
/// ISR goes.
pub trait OffsetsReplication: Send + Sync + 'static {
    /// The leader epoch to stamp on a batch appended to `partition` of
    /// `__consumer_offsets`, or `None` when this broker does not lead it.
    fn leader_epoch(&self, partition: i32) -> Option<i32>;
    /// Resolves once the partition's records below `end_offset` are committed
    /// (on every ISR member, as an acks=all produce); called after the local fsync.
    fn wait_committed(
        &self,
        partition: i32,
        log: Arc<Log>,
        end_offset: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GroupError>> + Send>>;
}

/// A write to `__consumer_offsets` that an answer must wait for.
struct Durable {
    log: Arc<Log>,
    partition: i32,
    end_offset: i64,
    replication: Option<Arc<dyn OffsetsReplication>>,
}

impl Durable {
    async fn wait(self, flush: bool) -> Result<(), GroupError> {
        let Durable {
            log,
            partition,
            end_offset,
            replication,
        } = self;
        if flush {
            Self::fsync(log.clone(), end_offset).await?;
        }
        match replication {
            Some(replication) => replication.wait_committed(partition, log, end_offset).await,
            None => Ok(()),
        }
    }

    async fn fsync(log: Arc<Log>, end_offset: i64) -> Result<(), GroupError> {
        match tokio::task::spawn_blocking(move || log.sync(end_offset)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::error!(error = %err, "fsync of __consumer_offsets failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
            Err(err) => {
                tracing::error!(error = %err, "fsync task of __consumer_offsets failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }
}

/// Per-partition results of an OffsetCommit, completed once the records are durable.
pub struct CommitWait {
    results: Vec<Result<(), GroupError>>,
    durable: Option<Durable>,
    flush: bool,
}

impl CommitWait {
    /// Waits for the fsync of the commit records; returns one result per
    /// committed partition in request order.
    pub async fn finish(self) -> Vec<Result<(), GroupError>> {
        let CommitWait {
            mut results,
            durable,
            flush,
        } = self;
        if let Some(durable) = durable {
            if let Err(err) = durable.wait(flush).await {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(err);
                }
            }
        }
        results
    }
}

/// One partition to commit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset, leader epoch and metadata (timestamp set by the coordinator).
    pub offset: i64,
    /// Leader epoch the client saw.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// A group in ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" for offset-only groups).
    pub protocol_type: String,
    /// State.
    pub state: GroupState,
}

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

/// The group coordinator of this broker (every group: a single broker
/// coordinates all partitions of `__consumer_offsets`).
pub struct Coordinator {
    config: GroupConfig,
    partitions: i32,
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
    /// Set by the replication layer; see [`OffsetsReplication`].
    replication: RwLock<Option<Arc<dyn OffsetsReplication>>>,
    /// Metadata index the served partitions reflect (after loading).
    followed: watch::Sender<u64>,
}

/// Overrides of `__consumer_offsets`: compacted, 100 MiB segments (Kafka's
/// `offsets.topic.segment.bytes`).
pub fn offsets_topic_configs() -> crate::topic_config::TopicOverrides {
    let mut configs = crate::topic_config::TopicOverrides::new();
    configs.insert("cleanup.policy".into(), "compact".into());
    configs.insert("segment.bytes".into(), "104857600".into());
    configs
}

fn encode_batch(records: &[(Bytes, Option<Bytes>)], epoch: i32, now: i64) -> Option<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    match RecordBatchEncoder::encode(&mut buf, &records, &options) {
        Ok(()) => Some(buf.freeze()),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode a __consumer_offsets batch");
            None
        }
    }
}

impl Coordinator {
    /// A coordinator that answers COORDINATOR_LOAD_IN_PROGRESS until [`Coordinator::load`] ran.
    pub fn new(
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
            },
            partitions: config.offsets_topic_num_partitions,
            retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            retention_check_ms: config.offsets_retention_check_interval_ms.max(1),
            flush: config.log_flush_on_ack,
            topics,
            rebalances,
            shutdown,
            loaded: AtomicBool::new(false),
            groups: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            served: RwLock::new(None),
            loading: RwLock::new(BTreeSet::new()),
            replication: RwLock::new(None),
            followed: watch::channel(0).0,
        }
    }

    /// True once `__consumer_offsets` has been replayed.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn partition_count(&self) -> i32 {
        self.topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partition_count())
            .unwrap_or(self.partitions)
    }

    /// The `__consumer_offsets` partition holding this group.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.partition_count())
    }

    /// Installs how writes to `__consumer_offsets` are replicated (see [`OffsetsReplication`]).
    pub fn set_replication(&self, replication: Arc<dyn OffsetsReplication>) {
        *self.replication.write() = Some(replication);
    }

    /// Refuses requests before loading finished, empty group ids, and groups
    /// whose `__consumer_offsets` partition this broker does not lead.
    pub fn check(&self, group_id: &str) -> Result<(), GroupError> {
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
        let partition = self.partition_of(group_id);
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
    pub fn check_loaded(&self) -> Result<(), GroupError> {
        if self.is_loaded() {
            Ok(())
        } else {
            Err(GroupError::CoordinatorLoadInProgress)
        }
    }

    fn log_of(&self, group_id: &str) -> Option<Arc<Log>> {
        let topic = self.topics.get(OFFSETS_TOPIC)?;
        let partition = topic.partition(partition_for(group_id, topic.partition_count()))?;
        Some(partition.log.clone())
    }

    /// Appends records for one group (under the groups lock, so records keep
    /// the order of the state changes).
    fn append(
        &self,
        group_id: &str,
        records: &[(Bytes, Option<Bytes>)],
        now: i64,
    ) -> Result<Durable, GroupError> {
        let log = self.log_of(group_id).ok_or_else(|| {
            tracing::error!("internal topic {OFFSETS_TOPIC} is missing");
            GroupError::CoordinatorNotAvailable
        })?;
        let partition = self.partition_of(group_id);
        let replication = self.replication.read().clone();
        let epoch = match &replication {
            Some(r) => r
                .leader_epoch(partition)
                .ok_or(GroupError::NotCoordinator)?,
            None => LEADER_EPOCH,
        };
        let batch = encode_batch(records, epoch, now).ok_or(GroupError::CoordinatorNotAvailable)?;
        match log.append(batch, epoch, now) {
            Ok(info) => Ok(Durable {
                log,
                partition,
                end_offset: info.last_offset + 1,
                replication,
            }),
            Err(err) => {
                tracing::error!(group = group_id, error = %err, "append to {OFFSETS_TOPIC} failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    fn group_record(group: &Group) -> (Bytes, Option<Bytes>) {
        (
            records::encode_key(&RecordKey::Group {
                group: group.id().to_string(),
            }),
            Some(records::encode_group(&group.to_metadata())),
        )
    }

    fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
        records::encode_key(&RecordKey::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        })
    }

    /// Runs a transition's actions: answers parked requests, persists the
    /// group; answers that follow a persist wait for its fsync.
    fn execute(&self, entry: &mut Entry, actions: Vec<Action>, now: i64) {
        let mut durable: Option<Result<Durable, GroupError>> = None;
        let mut deferred = Vec::new();
        for action in actions {
            match action {
                Action::PersistGroup => {
                    let record = Self::group_record(&entry.group);
                    durable = Some(self.append(entry.group.id(), &[record], now));
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

    /// Handles JoinGroup (the transition runs now; the answer may be parked).
    pub fn join(&self, group_id: &str, mut req: JoinRequest) -> Waiting<JoinResult> {
        if let Err(err) = self.check(group_id) {
            return Waiting::Ready(JoinResult::Failed(err));
        }
        let now = now_ms();
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        req.new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        let mut groups = self.groups.lock();
        if !groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                return Waiting::Ready(JoinResult::Failed(GroupError::UnknownMemberId));
            }
            groups.insert(
                group_id.to_string(),
                Entry::new(Group::new(group_id, self.config, now)),
            );
        }
        let Some(entry) = groups.get_mut(group_id) else {
            return Waiting::Ready(JoinResult::Failed(GroupError::CoordinatorNotAvailable));
        };
        let (sent, instance) = (req.member_id.clone(), req.group_instance_id.clone());
        let (reply, actions) = entry.group.join(req, now);
        tracing::debug!(group = group_id, member = %sent, instance = ?instance, reply = ?reply,
            state = entry.group.state().as_str(), "JoinGroup");
        let waiting = match reply {
            JoinReply::Now(Ok(outcome)) => Waiting::Ready(JoinResult::Joined(outcome)),
            JoinReply::Now(Err(err)) => Waiting::Ready(JoinResult::Failed(err)),
            JoinReply::MemberIdRequired { member_id } => {
                Waiting::Ready(JoinResult::MemberIdRequired(member_id))
            }
            JoinReply::Parked { member_id } => {
                let (tx, rx) = oneshot::channel();
                if let Some(older) = entry.joins.insert(member_id, tx) {
                    let _ = older.send(JoinResult::Failed(GroupError::RebalanceInProgress));
                }
                Waiting::Parked(rx, self.shutdown.clone())
            }
        };
        self.execute(entry, actions, now);
        if entry.group.is_removable() && !entry.group.has_pending_members() {
            // A refused first join must not leave an empty group behind.
            groups.remove(group_id);
        }
        drop(groups);
        self.wake.notify_one();
        waiting
    }

    /// Handles SyncGroup.
    pub fn sync(
        &self,
        group_id: &str,
        req: SyncRequest,
    ) -> Waiting<Result<SyncOutcome, GroupError>> {
        if let Err(err) = self.check(group_id) {
            return Waiting::Ready(Err(err));
        }
        let now = now_ms();
        let mut groups = self.groups.lock();
        let Some(entry) = groups.get_mut(group_id) else {
            return Waiting::Ready(Err(GroupError::UnknownMemberId));
        };
        let member_id = req.member_id.clone();
        let generation = req.generation_id;
        let (reply, actions) = entry.group.sync(req, now);
        tracing::debug!(group = group_id, member = %member_id, generation, reply = ?reply,
            state = entry.group.state().as_str(), "SyncGroup");
        let waiting = match reply {
            SyncReply::Now(result) => Waiting::Ready(result),
            SyncReply::Parked => {
                let (tx, rx) = oneshot::channel();
                if let Some(older) = entry.syncs.insert(member_id, tx) {
                    let _ = older.send(Err(GroupError::RebalanceInProgress));
                }
                Waiting::Parked(rx, self.shutdown.clone())
            }
        };
        self.execute(entry, actions, now);
        drop(groups);
        self.wake.notify_one();
        waiting
    }

    /// Handles Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut groups = self.groups.lock();
        let entry = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let result = entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, now);
        if result.is_err() {
            tracing::debug!(group = group_id, member = member_id, generation_id, result = ?result, "Heartbeat");
        }
        result
    }

    /// Handles LeaveGroup: one result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut groups = self.groups.lock();
        let Some(entry) = groups.get_mut(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        let (results, actions) = entry.group.leave(members, now);
        tracing::debug!(group = group_id, members = ?members, results = ?results, "LeaveGroup");
        self.execute(entry, actions, now);
        drop(groups);
        self.wake.notify_one();
        Ok(results)
    }

    /// Handles OffsetCommit: validates, appends the records and applies them
    /// (in order, under the lock); the returned wait completes after the fsync.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: Vec<CommitEntry>,
    ) -> Result<CommitWait, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut results: Vec<Result<(), GroupError>> = entries
            .iter()
            .map(|e| {
                let known = self
                    .topics
                    .get(&e.topic)
                    .and_then(|t| t.partition(e.partition))
                    .is_some();
                if !known {
                    Err(GroupError::UnknownTopicOrPartition)
                } else if e.metadata.as_ref().map_or(0, |m| m.len()) > MAX_OFFSET_METADATA_BYTES {
                    Err(GroupError::OffsetMetadataTooLarge)
                } else {
                    Ok(())
                }
            })
            .collect();
        let mut groups = self.groups.lock();
        let created = !groups.contains_key(group_id);
        if created {
            if generation_id >= 0 {
                // Not a standalone commit, and no such group: a stale member.
                return Ok(CommitWait {
                    results: results
                        .into_iter()
                        .map(|r| r.and(Err(GroupError::IllegalGeneration)))
                        .collect(),
                    durable: None,
                    flush: self.flush,
                });
            }
            groups.insert(
                group_id.to_string(),
                Entry::new(Group::new(group_id, self.config, now)),
            );
        }
        let Some(entry) = groups.get_mut(group_id) else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        if let Err(err) =
            entry
                .group
                .validate_commit(member_id, group_instance_id, generation_id, now)
        {
            for r in results.iter_mut() {
                *r = r.and(Err(err));
            }
        }
        let accepted: Vec<(usize, CommittedOffset)> = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_ok())
            .map(|(i, e)| {
                (
                    i,
                    CommittedOffset {
                        offset: e.offset,
                        leader_epoch: e.leader_epoch,
                        metadata: e.metadata.clone().unwrap_or_default(),
                        commit_timestamp_ms: now,
                    },
                )
            })
            .collect();
        let mut durable = None;
        if !accepted.is_empty() {
            let recs: Vec<(Bytes, Option<Bytes>)> = accepted
                .iter()
                .map(|(i, o)| {
                    let e = &entries[*i];
                    (
                        Self::offset_key(group_id, &e.topic, e.partition),
                        Some(records::encode_offset(o)),
                    )
                })
                .collect();
            match self.append(group_id, &recs, now) {
                Ok(d) => {
                    for (i, o) in accepted {
                        let e = &entries[i];
                        entry.group.commit_offset(&e.topic, e.partition, o);
                    }
                    durable = Some(d);
                }
                Err(err) => {
                    for (i, _) in accepted {
                        results[i] = Err(err);
                    }
                }
            }
        }
        if created && entry.group.is_removable() {
            groups.remove(group_id);
        }
        Ok(CommitWait {
            results,
            durable,
            flush: self.flush,
        })
    }

    /// Committed offsets of a group: for each requested topic the requested
    /// partitions (`None` = every committed offset of the group).
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, GroupError> {
        self.check_loaded()?;
        self.check_served(group_id)?;
        let groups = self.groups.lock();
        let group = groups.get(group_id).map(|e| &e.group);
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, group.and_then(|g| g.offset(&topic, p)).cloned()))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                if let Some(g) = group {
                    for ((topic, p), o) in g.offsets() {
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*p, Some(o.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// Every live group.
    pub fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        self.check_loaded()?;
        let groups = self.groups.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|e| e.group.state() != GroupState::Dead)
            .map(|e| GroupListing {
                group_id: e.group.id().to_string(),
                protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                state: e.group.state(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// A copy of a group (DescribeGroups); `None` if it does not exist.
    pub fn snapshot(&self, group_id: &str) -> Result<Option<Group>, GroupError> {
        self.check(group_id)?;
        Ok(self.groups.lock().get(group_id).map(|e| e.group.clone()))
    }

    /// Handles DeleteGroups for one group: only an empty group may go; its
    /// offsets and metadata get tombstones.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let durable = {
            let mut groups = self.groups.lock();
            let entry = groups
                .get_mut(group_id)
                .ok_or(GroupError::GroupIdNotFound)?;
            if entry.group.state() != GroupState::Empty {
                return Err(if entry.group.state() == GroupState::Dead {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::NonEmptyGroup
                });
            }
            let mut recs: Vec<(Bytes, Option<Bytes>)> = entry
                .group
                .offsets()
                .keys()
                .map(|(t, p)| (Self::offset_key(group_id, t, *p), None))
                .collect();
            recs.push((
                records::encode_key(&RecordKey::Group {
                    group: group_id.to_string(),
                }),
                None,
            ));
            let durable = self.append(group_id, &recs, now)?;
            entry.group.delete(now)?;
            groups.remove(group_id);
            durable
        };
        let _ = self.rebalances.remove_label_values(&[group_id]);
        tracing::info!(group = group_id, "deleted group");
        durable.wait(self.flush).await
    }

    /// Handles OffsetDelete: per partition, NONE or the reason it stays.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut results: Vec<Result<(), GroupError>> = partitions
            .iter()
            .map(
                |(t, p)| match self.topics.get(t).and_then(|topic| topic.partition(*p)) {
                    Some(_) => Ok(()),
                    None => Err(GroupError::UnknownTopicOrPartition),
                },
            )
            .collect();
        let durable = {
            let mut groups = self.groups.lock();
            let entry = groups
                .get_mut(group_id)
                .ok_or(GroupError::GroupIdNotFound)?;
            let known: Vec<(usize, (String, i32))> = partitions
                .iter()
                .cloned()
                .enumerate()
                .filter(|(i, _)| results[*i].is_ok())
                .collect();
            // Check first, without removing: tombstones must be written before
            // the offsets disappear from memory.
            let mut probe = entry.group.clone();
            let keys: Vec<(String, i32)> = known.iter().map(|(_, k)| k.clone()).collect();
            let outcome = probe.delete_offsets(&keys)?;
            let mut recs = Vec::new();
            let mut removed = Vec::new();
            for ((i, key), result) in known.iter().zip(outcome) {
                match result {
                    Ok(true) => {
                        recs.push((Self::offset_key(group_id, &key.0, key.1), None));
                        removed.push(key.clone());
                    }
                    Ok(false) => {}
                    Err(err) => results[*i] = Err(err),
                }
            }
            if recs.is_empty() {
                None
            } else {
                let durable = self.append(group_id, &recs, now)?;
                for (t, p) in &removed {
                    entry.group.remove_offset(t, *p);
                }
                Some(durable)
            }
        };
        if let Some(durable) = durable {
            durable.wait(self.flush).await?;
        }
        Ok(results)
    }

    /// Deletes every group's committed offsets of a deleted topic (tombstones).
    pub async fn remove_topic_offsets(&self, topic: &str) -> usize {
        let now = now_ms();
        let mut removed = 0;
        let mut durables = Vec::new();
        {
            let mut groups = self.groups.lock();
            for (id, entry) in groups.iter_mut() {
                let keys: Vec<(String, i32)> = entry
                    .group
                    .offsets()
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .cloned()
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                let recs: Vec<(Bytes, Option<Bytes>)> = keys
                    .iter()
                    .map(|(t, p)| (Self::offset_key(id, t, *p), None))
                    .collect();
                match self.append(id, &recs, now) {
                    Ok(d) => {
                        for (t, p) in &keys {
                            entry.group.remove_offset(t, *p);
                        }
                        removed += keys.len();
                        durables.push(d);
                    }
                    Err(err) => {
                        tracing::warn!(group = %id, topic, error = %err, "removing offsets of a deleted topic failed");
                    }
                }
            }
        }
        for d in durables {
            let _ = d.wait(self.flush).await;
        }
        removed
    }

    /// Expires committed offsets past the retention (see
    /// [`Group::expire_offsets`]), writing their tombstones; groups left
    /// empty without offsets are deleted. Returns the number of offsets removed.
    pub async fn expire_offsets(&self, now: i64) -> usize {
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
                    .map(|(t, p)| (Self::offset_key(id, t, *p), None))
                    .collect();
                if gone {
                    recs.push((
                        records::encode_key(&RecordKey::Group { group: id.clone() }),
                        None,
                    ));
                }
                match self.append(id, &recs, now) {
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
    pub fn on_timer(&self, now: i64) {
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
    pub fn load(&self) -> Result<usize, runnel_log::Error> {
        self.load_partitions(None)
    }

    /// Replays the local partitions of `__consumer_offsets` in `only` (all
    /// when `None`) and adds their groups. Blocking.
    fn load_partitions(&self, only: Option<&BTreeSet<i32>>) -> Result<usize, runnel_log::Error> {
        let now = now_ms();
        let mut metadata: HashMap<String, Option<records::GroupMetadata>> = HashMap::new();
        let mut offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>> = HashMap::new();
        let partitions: Vec<_> = self
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partitions())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| only.is_none_or(|only| only.contains(&p.index)))
            .collect();
        let mut count = 0usize;
        for partition in partitions {
            let log = &partition.log;
            // Anyone allowed to produce to the topic could have written its
            // batches: decoding is bounded (a forged count or a compression
            // bomb is skipped with a warning, not an abort).
            let max_uncompressed = log.uncompressed_limit();
            let mut next = log.log_start_offset();
            let end = log.log_end_offset();
            while next < end {
                let read = log.read(next, 4 * 1024 * 1024, true, end)?;
                if read.records.is_empty() {
                    break;
                }
                let mut pos = 0usize;
                let bytes = read.records;
                while bytes.len() >= pos + 61 {
                    let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap_or([0; 8]));
                    let len =
                        i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap_or([0; 4]));
                    let delta =
                        i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap_or([0; 4]));
                    let total = 12 + len.max(0) as usize;
                    if len < 49 || bytes.len() < pos + total {
                        break;
                    }
                    let batch = bytes.slice(pos..pos + total);
                    match runnel_log::records::decode_batch(batch, max_uncompressed) {
                        Ok(decoded) => {
                            for r in decoded.into_iter().filter(|r| !r.control) {
                                count += 1;
                                let Some(key) = r.key else { continue };
                                let key = match records::decode_key(key) {
                                    Ok(k) => k,
                                    Err(err) => {
                                        tracing::warn!(partition = partition.index, offset = r.offset,
                                            error = %err, "skipping undecodable key in {OFFSETS_TOPIC}");
                                        continue;
                                    }
                                };
                                Self::replay(
                                    &mut metadata,
                                    &mut offsets,
                                    key,
                                    r.value,
                                    partition.index,
                                    r.offset,
                                );
                            }
                        }
                        Err(err) => {
                            tracing::warn!(partition = partition.index, offset = base, error = %err,
                                "skipping undecodable batch in {OFFSETS_TOPIC}");
                        }
                    }
                    next = base.saturating_add(i64::from(delta)).saturating_add(1);
                    pos += total;
                }
                if pos == 0 {
                    // Not even one whole batch: give up on this partition.
                    break;
                }
            }
        }
        let mut groups = self.groups.lock();
        let mut ids: Vec<String> = metadata.keys().chain(offsets.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let group_offsets = offsets.remove(&id).unwrap_or_default();
            let mut group = match metadata.remove(&id).flatten() {
                Some(m) => Group::from_metadata(id.clone(), self.config, now, m),
                None if group_offsets.is_empty() => continue,
                None => Group::new(id.clone(), self.config, now),
            };
            for ((t, p), o) in group_offsets {
                group.commit_offset(&t, p, o);
            }
            groups.insert(id, Entry::new(group));
        }
        let loaded = groups.len();
        drop(groups);
        self.loaded.store(true, Ordering::Release);
        self.wake.notify_one();
        tracing::info!(
            groups = loaded,
            records = count,
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
            let count = self.partition_count();
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
    pub async fn wait_following(&self, index: u64) {
        let mut rx = self.followed.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = rx.wait_for(|v| *v >= index) => {}
            _ = wait_shutdown(&mut shutdown) => {}
        }
    }

    fn replay(
        metadata: &mut HashMap<String, Option<records::GroupMetadata>>,
        offsets: &mut HashMap<String, BTreeMap<(String, i32), CommittedOffset>>,
        key: RecordKey,
        value: Option<Bytes>,
        partition: i32,
        offset: i64,
    ) {
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition: p,
            } => {
                let entry = offsets.entry(group).or_default();
                match value.map(records::decode_offset) {
                    None => {
                        entry.remove(&(topic, p));
                    }
                    Some(Ok(v)) => {
                        entry.insert((topic, p), v);
                    }
                    Some(Err(err)) => tracing::warn!(partition, offset, error = %err,
                        "skipping undecodable offset in {OFFSETS_TOPIC}"),
                }
            }
            RecordKey::Group { group } => match value.map(records::decode_group) {
                None => {
                    metadata.insert(group, None);
                }
                Some(Ok(v)) => {
                    metadata.insert(group, Some(v));
                }
                Some(Err(err)) => tracing::warn!(partition, offset, error = %err,
                    "skipping undecodable group metadata in {OFFSETS_TOPIC}"),
            },
        }
    }

    /// Loads `__consumer_offsets`, then runs session/rebalance timeouts and
    /// offset expiry until shutdown.
    ///
    /// With `leadership` (the applied metadata and this broker's id) it
    /// serves only the partitions this broker leads and follows leadership
    /// changes; without it, every local partition (a fixed single-broker view).
    pub async fn run(
        self: Arc<Self>,
        leadership: Option<(watch::Receiver<Arc<ClusterState>>, BrokerId)>,
    ) {
        let mut leadership = leadership;
        match leadership.as_mut() {
            Some((state, node)) => {
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
    pub fn refresh_metrics(&self, metrics: &Metrics) {
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
mod tests {
    use super::*;
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
        c.fetch_offsets(group, Some(vec![("t".into(), vec![0, 1])]))
            .unwrap()
            .remove(0)
            .1
            .into_iter()
            .map(|(p, o)| (p, o.map_or(-1, |o| o.offset)))
            .collect()
    }

    #[tokio::test]
    async fn requests_before_loading_get_load_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (config, topics) = setup(dir.path());
        let c = coordinator(&config, &topics);
        let load = Err(GroupError::CoordinatorLoadInProgress);
        assert_eq!(c.heartbeat("g", "m", None, 1), load);
        assert_eq!(c.fetch_offsets("g", None).map(|_| ()), load);
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
        let a0 = again.fetch_offsets("a", None).unwrap();
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
        let mut batch = encode_batch(&[(key, None)], 0, now_ms()).unwrap().to_vec();
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
}
