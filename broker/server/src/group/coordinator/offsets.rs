//! OffsetCommit, OffsetFetch, OffsetDelete, and dropping the offsets of a
//! deleted topic. Changes are appended to `__consumer_offsets` before they
//! are applied in memory.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{Coordinator, Entry};
use crate::group::error::GroupError;
use crate::group::messages::CommitEntry;
use crate::group::offsets::{CommittedOffset, MAX_OFFSET_METADATA_BYTES};
use crate::group::state::Group;
use crate::group::store::{self, CommitWait};
use crate::runtime::now_ms;

impl Coordinator {
    /// Handles OffsetCommit: validates, appends the records and applies them
    /// (in order, under the lock); the returned wait completes after the fsync.
    pub(crate) fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: Vec<CommitEntry>,
    ) -> Result<CommitWait, GroupError> {
        let member = (member_id, group_instance_id, generation_id);
        self.commit_as(group_id, member, entries, None)
    }

    /// Handles TxnOffsetCommit: the offsets are appended to the group's
    /// partition as part of `producer_id`'s transaction and take effect when
    /// its commit marker is written there ([`Coordinator::complete_txn`]).
    /// A member of the group (generation >= 0) must be one (KIP-447).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        entries: Vec<CommitEntry>,
    ) -> Result<CommitWait, GroupError> {
        let member = (member_id, group_instance_id, generation_id);
        self.commit_as(
            group_id,
            member,
            entries,
            Some((producer_id, producer_epoch)),
        )
    }

    /// OffsetCommit, or with `producer` TxnOffsetCommit (whose offsets wait
    /// for the transaction's marker, and whose committer need not be a member
    /// when it gives no generation).
    fn commit_as(
        &self,
        group_id: &str,
        (member_id, group_instance_id, generation_id): (&str, Option<&str>, i32),
        entries: Vec<CommitEntry>,
        producer: Option<(i64, i16)>,
    ) -> Result<CommitWait, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut results: Vec<Result<(), GroupError>> = entries
            .iter()
            .map(|e| {
                if !self.partition_exists(&e.topic, e.partition) {
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
                return Ok(CommitWait::new(
                    results
                        .into_iter()
                        .map(|r| r.and(Err(GroupError::IllegalGeneration)))
                        .collect(),
                    None,
                    self.flush,
                ));
            }
            groups.insert(
                group_id.to_string(),
                Entry::new(Group::new(group_id, self.config, now)),
            );
        }
        let Some(entry) = groups.get_mut(group_id) else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        if producer.is_none() || generation_id >= 0 {
            if let Err(err) =
                entry
                    .group
                    .validate_commit(member_id, group_instance_id, generation_id, now)
            {
                for r in results.iter_mut() {
                    *r = r.and(Err(err));
                }
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
                    store::offset_record(group_id, &e.topic, e.partition, o)
                })
                .collect();
            match self.store.append_as(group_id, &recs, now, producer) {
                Ok(d) => {
                    for (i, o) in accepted {
                        let e = &entries[i];
                        match producer {
                            None => entry.group.commit_offset(&e.topic, e.partition, o),
                            Some((producer_id, _)) => {
                                entry
                                    .group
                                    .commit_txn_offset(producer_id, &e.topic, e.partition, o)
                            }
                        }
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
        Ok(CommitWait::new(results, durable, self.flush))
    }

    /// Whether a transaction marker may be written to partition `partition`
    /// of `__consumer_offsets` now: only once this coordinator serves it.
    /// While its groups are being replayed (or before the coordinator has
    /// seen the leadership at all) a marker appended to the log could land
    /// behind the replay and never be applied to the loaded groups, leaving
    /// the transaction's offsets pending for ever; the transaction
    /// coordinator retries instead (Kafka's group coordinator also refuses
    /// transaction completion until its partition is loaded).
    pub(crate) fn check_txn_completion(&self, partition: i32) -> Result<(), GroupError> {
        self.check_loaded()?;
        self.check_partition_served(partition)
    }

    /// The marker of `producer_id`'s transaction was written to partition
    /// `partition` of `__consumer_offsets`: the transaction's offsets of the
    /// groups there are committed or dropped.
    pub(crate) fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut groups = self.groups.lock();
        let mut applied = 0;
        for entry in groups.values_mut() {
            if self.partition_of(entry.group.id()) == partition {
                applied += entry.group.complete_txn(producer_id, commit);
            }
        }
        groups.retain(|_, e| !e.group.is_removable());
        if applied > 0 {
            tracing::debug!(
                producer_id,
                partition,
                offsets = applied,
                "transactional offsets committed"
            );
        }
    }

    /// Whether an open transaction has an offset of `topic`-`partition` for
    /// `group_id` (OffsetFetch `require_stable`).
    pub(crate) fn has_unstable_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups
            .lock()
            .get(group_id)
            .is_some_and(|e| e.group.has_pending_txn_offset(topic, partition))
    }

    /// Committed offsets of a group: for each requested topic the requested
    /// partitions (`None` = every committed offset of the group). `member`
    /// (OffsetFetch v9: member id and epoch) is checked against a
    /// consumer-protocol group's member.
    #[allow(clippy::type_complexity)]
    pub(crate) fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        member: Option<(&str, i32)>,
    ) -> Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, GroupError> {
        self.check_loaded()?;
        self.check_served(group_id)?;
        let groups = self.groups.lock();
        let group = groups.get(group_id).map(|e| &e.group);
        if let (Some(g), Some((member_id, epoch))) = (group, member) {
            g.validate_fetch(Some(member_id), epoch)?;
        }
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

    /// Handles OffsetDelete: per partition, NONE or the reason it stays.
    pub(crate) async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut results: Vec<Result<(), GroupError>> = partitions
            .iter()
            .map(|(t, p)| {
                if self.partition_exists(t, *p) {
                    Ok(())
                } else {
                    Err(GroupError::UnknownTopicOrPartition)
                }
            })
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
                        recs.push(store::offset_tombstone(group_id, &key.0, key.1));
                        removed.push(key.clone());
                    }
                    Ok(false) => {}
                    Err(err) => results[*i] = Err(err),
                }
            }
            if recs.is_empty() {
                None
            } else {
                let durable = self.store.append(group_id, &recs, now)?;
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
    pub(crate) async fn remove_topic_offsets(&self, topic: &str) -> usize {
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
                    .map(|(t, p)| store::offset_tombstone(id, t, *p))
                    .collect();
                match self.store.append(id, &recs, now) {
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
}
