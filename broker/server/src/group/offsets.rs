//! What a group has committed: one [`CommittedOffset`] per partition, kept in
//! an [`OffsetTable`]. The table stores, removes and expires; from when an
//! offset's retention runs and which offsets OffsetDelete may remove is the
//! group's decision (`state.rs`), because it depends on the group's state and
//! members.

use std::collections::BTreeMap;

/// Largest commit metadata string accepted (Kafka's `offset.metadata.max.bytes`).
pub(crate) const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch the client saw (-1 if unknown).
    pub leader_epoch: i32,
    /// Client metadata stored with the commit.
    pub metadata: String,
    /// When it was committed (broker clock).
    pub commit_timestamp_ms: i64,
}

/// One group's committed offsets by (topic, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetTable {
    by_partition: BTreeMap<(String, i32), CommittedOffset>,
}

impl OffsetTable {
    /// Every committed offset by (topic, partition).
    pub(crate) fn all(&self) -> &BTreeMap<(String, i32), CommittedOffset> {
        &self.by_partition
    }

    /// The committed offset of one partition.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.by_partition.get(&(topic.to_string(), partition))
    }

    /// True when nothing is committed.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }

    /// Stores a committed offset, replacing the partition's previous one.
    pub(crate) fn commit(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        self.by_partition
            .insert((topic.to_string(), partition), offset);
    }

    /// Forgets a committed offset; true if it existed.
    pub(crate) fn remove(&mut self, topic: &str, partition: i32) -> bool {
        self.by_partition
            .remove(&(topic.to_string(), partition))
            .is_some()
    }

    /// Forgets every offset; returns the keys they had.
    pub(crate) fn clear(&mut self) -> Vec<(String, i32)> {
        let keys = self.by_partition.keys().cloned().collect();
        self.by_partition.clear();
        keys
    }

    /// Removes the offsets whose `base` time plus `retention_ms` is not after
    /// `now`; returns their keys.
    pub(crate) fn expire(
        &mut self,
        now: i64,
        retention_ms: i64,
        base: impl Fn(&CommittedOffset) -> i64,
    ) -> Vec<(String, i32)> {
        let expired: Vec<(String, i32)> = self
            .by_partition
            .iter()
            .filter(|(_, o)| base(o).saturating_add(retention_ms) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.by_partition.remove(k);
        }
        expired
    }
}
