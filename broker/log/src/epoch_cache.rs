//! The leader epoch cache (Kafka's `leader-epoch-checkpoint`), sans-IO: for
//! each leader epoch the first offset written under it. Followers and new
//! leaders use it to answer OffsetForLeaderEpoch and to find where a log
//! diverged from the leader's. Entries are strictly increasing in both epoch
//! and start offset; the file format lives in [`crate::checkpoint`].

/// One entry of the leader epoch cache: `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The partition leader epoch.
    pub epoch: i32,
    /// The first offset written (or to be written) under `epoch`.
    pub start_offset: i64,
}

/// The epoch entries of one log, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache holding `entries` if they are strictly increasing in epoch and
    /// start offset with no negative values; `None` otherwise.
    pub(crate) fn from_entries(entries: Vec<EpochEntry>) -> Option<LeaderEpochCache> {
        let valid = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        valid.then_some(LeaderEpochCache { entries })
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that a batch of `epoch` starts at `start_offset` (or that a new
    /// leader's epoch starts there). Negative epochs (batches written without
    /// one) are ignored. An entry of the same epoch with an earlier start is
    /// kept; entries that would break monotonicity (a higher epoch, or a start
    /// at or after `start_offset`) are removed first, as Kafka does. Returns
    /// true when the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.latest() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return false;
            }
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch > epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        if self.latest().is_some_and(|e| e.epoch == epoch) {
            return true;
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Removes every entry starting at or after `end_offset` (the log was
    /// truncated to end there). Returns true when the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// The log start offset moved up to `start_offset`: entries wholly below it
    /// are removed and the epoch covering it now starts there (Kafka's
    /// `truncateFromStart`). Returns true when the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covering = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if covering == 0 {
            return false;
        }
        let mut first = self.entries[covering - 1];
        if covering == 1 && first.start_offset == start_offset {
            return false;
        }
        first.start_offset = start_offset;
        self.entries.drain(..covering);
        self.entries.insert(0, first);
        true
    }

    /// The epoch of the data at `offset`: the newest entry starting at or
    /// before it; `None` when `offset` is before the first entry.
    pub(crate) fn epoch_at(&self, offset: i64) -> Option<EpochEntry> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Kafka's OffsetForLeaderEpoch answer for `requested`, given the log end
    /// offset: `(requested, log_end)` when `requested` is the latest epoch;
    /// otherwise the largest epoch <= `requested` and the start offset of the
    /// first epoch above it; `(requested, first start)` when `requested` is
    /// below every known epoch (the data before was removed, so the follower
    /// replicates from there); `None` (UNDEFINED) when the cache is empty,
    /// `requested` is negative, or it is above every known epoch.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        let latest = self.latest()?;
        if latest.epoch == requested {
            return Some((requested, log_end));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].epoch, next.start_offset)),
            None => Some((requested, next.start_offset)),
        }
    }

    /// The cache rebuilt from batch runs `(epoch, base offset)` in log order,
    /// clamped to the log start offset.
    pub(crate) fn rebuild(
        batches: impl IntoIterator<Item = (i32, i64)>,
        log_start: i64,
    ) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for (epoch, base) in batches {
            cache.assign(epoch, base);
        }
        cache.truncate_from_start(log_start);
        cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.iter().map(|&(a, b)| e(a, b)).collect()).unwrap()
    }

    #[test]
    fn assign_adds_only_epoch_changes() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5));
        assert!(c.assign(3, 10));
        assert!(!c.assign(-1, 20));
        assert_eq!(c, cache(&[(2, 0), (3, 10)]));
    }

    #[test]
    fn assign_of_a_lower_epoch_removes_the_entries_it_contradicts() {
        // A new leader recorded epoch 5 at 100 but wrote nothing; it became a
        // follower and receives epoch-4 batches at 100.
        let mut c = cache(&[(3, 0), (4, 50), (5, 100)]);
        assert!(c.assign(4, 100));
        assert_eq!(c, cache(&[(3, 0), (4, 50)]));
        // Same epoch at an earlier start replaces the entry.
        let mut c = cache(&[(3, 0), (4, 50)]);
        assert!(c.assign(4, 40));
        assert_eq!(c, cache(&[(3, 0), (4, 40)]));
    }

    #[test]
    fn end_offset_for_latest_epoch_is_the_log_end_offset() {
        let c = cache(&[(1, 0), (2, 10), (4, 30)]);
        assert_eq!(c.end_offset_for(4, 45), Some((4, 45)));
    }

    #[test]
    fn end_offset_for_an_older_epoch_is_the_start_of_the_next_one() {
        let c = cache(&[(1, 0), (2, 10), (4, 30)]);
        assert_eq!(c.end_offset_for(1, 45), Some((1, 10)));
        assert_eq!(c.end_offset_for(2, 45), Some((2, 30)));
    }

    #[test]
    fn end_offset_for_a_missing_epoch_in_a_gap_is_the_floor_epoch_and_the_next_start() {
        let c = cache(&[(1, 0), (2, 10), (4, 30)]);
        assert_eq!(c.end_offset_for(3, 45), Some((2, 30)));
    }

    #[test]
    fn end_offset_for_an_epoch_below_all_known_is_the_first_start() {
        let c = cache(&[(3, 20), (4, 30)]);
        assert_eq!(c.end_offset_for(1, 45), Some((1, 20)));
    }

    #[test]
    fn end_offset_is_undefined_for_empty_cache_negative_or_future_epoch() {
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 10), None);
        let c = cache(&[(1, 0)]);
        assert_eq!(c.end_offset_for(-1, 10), None);
        assert_eq!(c.end_offset_for(2, 10), None);
    }

    #[test]
    fn truncate_from_end_removes_entries_at_or_after_the_new_end() {
        let mut c = cache(&[(1, 0), (2, 10), (4, 30)]);
        assert!(!c.truncate_from_end(31));
        assert!(c.truncate_from_end(30));
        assert_eq!(c, cache(&[(1, 0), (2, 10)]));
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
    }

    #[test]
    fn truncate_from_start_clamps_the_covering_epoch() {
        let mut c = cache(&[(1, 0), (2, 10), (4, 30)]);
        assert!(c.truncate_from_start(15));
        assert_eq!(c, cache(&[(2, 15), (4, 30)]));
        assert!(!c.truncate_from_start(15));
        assert!(c.truncate_from_start(30));
        assert_eq!(c, cache(&[(4, 30)]));
        assert!(c.truncate_from_start(40));
        assert_eq!(c, cache(&[(4, 40)]));
        // Below the first entry nothing changes.
        assert!(!c.truncate_from_start(5));
    }

    #[test]
    fn from_entries_refuses_non_monotonic_lists() {
        assert!(LeaderEpochCache::from_entries(vec![e(2, 0), e(1, 5)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![e(1, 5), e(2, 5)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![e(-1, 0)]).is_none());
    }

    #[test]
    fn rebuild_replays_runs_and_clamps_to_log_start() {
        let c = LeaderEpochCache::rebuild([(0, 0), (0, 3), (2, 7), (2, 9), (5, 12)], 8);
        assert_eq!(c, cache(&[(2, 8), (5, 12)]));
        assert_eq!(c.epoch_at(8).map(|e| e.epoch), Some(2));
        assert_eq!(c.epoch_at(7), None);
    }
}
