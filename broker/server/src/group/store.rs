//! The coordinator's store: the internal topic `__consumer_offsets`, whose
//! records (`records.rs`) are the groups' durable state. `OffsetsLog`
//! appends a group's records as one batch stamped with the partition's leader
//! epoch and replays partitions into groups at start-up and on failover (the
//! latest record per key wins); `Durable` and [`CommitWait`] are the waits
//! for an append to be fsynced and replicated.
//!
//! The coordinator appends under its groups lock, so records reach the log in
//! the order the state changed; it waits for them outside the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use runnel_log::txn_state::ControlType;
use runnel_log::Log;

use super::error::GroupError;
use super::offsets::CommittedOffset;
use super::placement::{partition_for, OFFSETS_TOPIC};
use super::records::{self, GroupMetadata, RecordKey};
use super::state::{Group, GroupConfig};
use crate::runtime::LEADER_EPOCH;
use crate::topics::TopicRegistry;

/// How the coordinator's writes to `__consumer_offsets` are replicated. The
/// replication layer installs one with
/// [`Coordinator::set_replication`](super::Coordinator::set_replication);
/// without it a write is stamped with [`LEADER_EPOCH`] and complete once
/// fsynced here (a single broker). This is the hook where acks=all-style
/// waiting for the ISR goes.
pub(crate) trait OffsetsReplication: Send + Sync + 'static {
    /// The leader epoch to stamp on a batch appended to `partition` of
    /// `__consumer_offsets`, or `None` when this broker does not lead it.
    fn leader_epoch(&self, partition: i32) -> Option<i32>;
    /// Resolves once the partition's records below `end_offset`, appended
    /// under `leader_epoch`, are committed (on every ISR member, as an
    /// acks=all produce); called after the local fsync.
    fn wait_committed(
        &self,
        partition: i32,
        log: Arc<Log>,
        end_offset: i64,
        leader_epoch: i32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GroupError>> + Send>>;
}

/// A write to `__consumer_offsets` that an answer must wait for.
pub(super) struct Durable {
    log: Arc<Log>,
    partition: i32,
    end_offset: i64,
    leader_epoch: i32,
    replication: Option<Arc<dyn OffsetsReplication>>,
}

impl Durable {
    /// Waits for the write: its fsync when `flush`, then its replication.
    pub(super) async fn wait(self, flush: bool) -> Result<(), GroupError> {
        let Durable {
            log,
            partition,
            end_offset,
            leader_epoch,
            replication,
        } = self;
        if flush {
            Self::fsync(log.clone(), end_offset).await?;
        }
        match replication {
            Some(replication) => {
                replication
                    .wait_committed(partition, log, end_offset, leader_epoch)
                    .await
            }
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
pub(crate) struct CommitWait {
    results: Vec<Result<(), GroupError>>,
    durable: Option<Durable>,
    flush: bool,
}

impl CommitWait {
    /// The results of a commit whose records (if any) are `durable`.
    pub(super) fn new(
        results: Vec<Result<(), GroupError>>,
        durable: Option<Durable>,
        flush: bool,
    ) -> CommitWait {
        CommitWait {
            results,
            durable,
            flush,
        }
    }

    /// Waits for the fsync of the commit records; returns one result per
    /// committed partition in request order.
    pub(crate) async fn finish(self) -> Vec<Result<(), GroupError>> {
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

/// Overrides of `__consumer_offsets`: compacted, 100 MiB segments (Kafka's
/// `offsets.topic.segment.bytes`).
pub(crate) fn offsets_topic_configs() -> crate::topic_config::TopicOverrides {
    let mut configs = crate::topic_config::TopicOverrides::new();
    configs.insert("cleanup.policy".into(), "compact".into());
    configs.insert("segment.bytes".into(), "104857600".into());
    configs
}

/// One batch of `__consumer_offsets` records (`None` values are tombstones);
/// with `producer`, a transactional batch of that producer id and epoch
/// (TxnOffsetCommit), which counts only once its commit marker follows.
pub(super) fn encode_batch(
    records: &[(Bytes, Option<Bytes>)],
    epoch: i32,
    now: i64,
    producer: Option<(i64, i16)>,
) -> Option<Bytes> {
    crate::internal_batch::encode(records, epoch, now, producer, false)
}

/// The record of a group's metadata.
pub(super) fn group_record(group: &Group) -> (Bytes, Option<Bytes>) {
    (
        records::encode_key(&RecordKey::Group {
            group: group.id().to_string(),
        }),
        Some(records::encode_group(&group.to_metadata())),
    )
}

/// The tombstone of a group's metadata.
pub(super) fn group_tombstone(group: &str) -> (Bytes, Option<Bytes>) {
    (
        records::encode_key(&RecordKey::Group {
            group: group.to_string(),
        }),
        None,
    )
}

/// The record of a committed offset.
pub(super) fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    offset: &CommittedOffset,
) -> (Bytes, Option<Bytes>) {
    (
        offset_key(group, topic, partition),
        Some(records::encode_offset(offset)),
    )
}

/// The tombstone of a committed offset.
pub(super) fn offset_tombstone(group: &str, topic: &str, partition: i32) -> (Bytes, Option<Bytes>) {
    (offset_key(group, topic, partition), None)
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    records::encode_key(&RecordKey::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    })
}

/// The groups replayed from partitions of `__consumer_offsets`.
pub(super) struct Replayed {
    /// Every group with metadata or committed offsets, in id order.
    pub(super) groups: Vec<Group>,
    /// Records read (control records aside).
    pub(super) records: usize,
}

/// The coordinator's access to `__consumer_offsets`: where a group's records
/// go, appending them, and replaying them.
pub(super) struct OffsetsLog {
    topics: Arc<TopicRegistry>,
    /// The partition count assumed while the topic does not exist.
    partitions: i32,
    /// Set by the replication layer; see [`OffsetsReplication`].
    replication: RwLock<Option<Arc<dyn OffsetsReplication>>>,
}

impl OffsetsLog {
    /// The store over `topics`, assuming `partitions` until the topic exists.
    pub(super) fn new(topics: Arc<TopicRegistry>, partitions: i32) -> OffsetsLog {
        OffsetsLog {
            topics,
            partitions,
            replication: RwLock::new(None),
        }
    }

    /// Partitions of `__consumer_offsets` (the configured count before it exists).
    pub(super) fn partition_count(&self) -> i32 {
        self.topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partition_count())
            .unwrap_or(self.partitions)
    }

    /// The `__consumer_offsets` partition holding this group.
    pub(super) fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.partition_count())
    }

    /// Installs how writes to `__consumer_offsets` are replicated .
    pub(super) fn set_replication(&self, replication: Arc<dyn OffsetsReplication>) {
        *self.replication.write() = Some(replication);
    }

    fn log_of(&self, group_id: &str) -> Option<Arc<Log>> {
        let topic = self.topics.get(OFFSETS_TOPIC)?;
        let partition = topic.partition(partition_for(group_id, topic.partition_count()))?;
        Some(partition.log.clone())
    }

    /// Appends records for one group (under the groups lock, so records keep
    /// the order of the state changes).
    pub(super) fn append(
        &self,
        group_id: &str,
        records: &[(Bytes, Option<Bytes>)],
        now: i64,
    ) -> Result<Durable, GroupError> {
        self.append_as(group_id, records, now, None)
    }

    /// [`OffsetsLog::append`] as a transactional producer's batch (TxnOffsetCommit).
    pub(super) fn append_as(
        &self,
        group_id: &str,
        records: &[(Bytes, Option<Bytes>)],
        now: i64,
        producer: Option<(i64, i16)>,
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
        let batch = encode_batch(records, epoch, now, producer)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        match log.append(batch, epoch, now) {
            Ok(info) => Ok(Durable {
                log,
                partition,
                end_offset: info.last_offset + 1,
                leader_epoch: epoch,
                replication,
            }),
            // Leadership moved between the epoch check and the write.
            Err(runnel_log::Error::LeadershipEnded { .. }) => Err(GroupError::NotCoordinator),
            Err(err) => {
                tracing::error!(group = group_id, error = %err, "append to {OFFSETS_TOPIC} failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Replays the local partitions of `__consumer_offsets` in `only` (all
    /// when `None`) into groups restored at `now`. Blocking.
    pub(super) fn replay(
        &self,
        only: Option<&BTreeSet<i32>>,
        config: GroupConfig,
        now: i64,
    ) -> Result<Replayed, runnel_log::Error> {
        let mut metadata: HashMap<String, Option<GroupMetadata>> = HashMap::new();
        // Offset records of transactions whose marker has not been read yet.
        #[allow(clippy::type_complexity)]
        let mut txn_held: HashMap<(i32, i64), Vec<(RecordKey, Option<Bytes>, i64)>> =
            HashMap::new();
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
                            for r in decoded {
                                if r.control {
                                    // A transaction's marker: its offset records count or go.
                                    let kind = r.key.as_deref().and_then(ControlType::from_key);
                                    let held = txn_held.remove(&(partition.index, r.producer_id));
                                    if kind == Some(ControlType::Commit) {
                                        for (key, value, offset) in held.unwrap_or_default() {
                                            apply(
                                                &mut metadata,
                                                &mut offsets,
                                                key,
                                                value,
                                                partition.index,
                                                offset,
                                            );
                                        }
                                    }
                                    continue;
                                }
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
                                if r.transactional {
                                    txn_held
                                        .entry((partition.index, r.producer_id))
                                        .or_default()
                                        .push((key, r.value, r.offset));
                                    continue;
                                }
                                apply(
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
        // Transactions still open: their offsets wait in the groups for the marker.
        let mut open: HashMap<String, Vec<(i64, String, i32, CommittedOffset)>> = HashMap::new();
        for ((_, producer_id), held) in txn_held {
            for (key, value, _) in held {
                if let (
                    RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    },
                    Some(Ok(o)),
                ) = (key, value.map(records::decode_offset))
                {
                    open.entry(group)
                        .or_default()
                        .push((producer_id, topic, partition, o));
                }
            }
        }
        let mut ids: Vec<String> = metadata
            .keys()
            .chain(offsets.keys())
            .chain(open.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        let mut groups = Vec::with_capacity(ids.len());
        for id in ids {
            let group_offsets = offsets.remove(&id).unwrap_or_default();
            let pending = open.remove(&id).unwrap_or_default();
            let mut group = match metadata.remove(&id).flatten() {
                Some(m) => Group::from_metadata(id.clone(), config, now, m),
                None if group_offsets.is_empty() && pending.is_empty() => continue,
                None => Group::new(id.clone(), config, now),
            };
            for ((t, p), o) in group_offsets {
                group.commit_offset(&t, p, o);
            }
            for (producer_id, t, p, o) in pending {
                group.commit_txn_offset(producer_id, &t, p, o);
            }
            groups.push(group);
        }
        Ok(Replayed {
            groups,
            records: count,
        })
    }
}

/// Applies one record to the replayed state: the later record of a key
/// replaces the earlier, a tombstone removes it.
fn apply(
    metadata: &mut HashMap<String, Option<GroupMetadata>>,
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
