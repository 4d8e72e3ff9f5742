//! Moving the log's bounds. From the end: [`Log::truncate_to`] (follower
//! truncation after a leader change) and [`Log::truncate_fully_and_start_at`].
//! From the start (Kafka's truncateFromStart): DeleteRecords
//! ([`Log::delete_records_before`]) and retention ([`Log::apply_retention`]),
//! which delete whole closed segments. Everything derived from the log
//! (indexes, producer state, leader epoch cache, high watermark, checkpoints)
//! follows each move.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checkpoint::{self, RecoveryPoint};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{Error, Result};
use crate::log::{Log, WriterState};
use crate::producer_state;
use crate::recovery;
use crate::retention;
use crate::segment::Segment;

impl Log {
    /// DeleteRecords: moves the log start offset up to `offset` (records below
    /// become unreadable; whole segments below it are deleted). Returns the new
    /// log start offset. `offset` above the log end offset is OffsetOutOfRange.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut w = self.writer.lock();
        let start = self.log_start.load(Ordering::Acquire);
        let end = self.log_end.load(Ordering::Acquire);
        if offset > end || offset < 0 {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        if offset <= start {
            return Ok(start);
        }
        checkpoint::write_log_start(&self.dir, offset)?;
        self.log_start.store(offset, Ordering::Release);
        self.on_log_start_moved(offset)?;
        let active = self.active()?;
        if !active.is_empty() && active.next_offset() <= offset {
            // Everything is deleted: start an empty active segment at the end.
            self.check_poisoned()?;
            self.roll(&mut w, end)?;
        }
        let segs = self.snapshot();
        let closed = segs.len().saturating_sub(1);
        let n = segs[..closed]
            .iter()
            .take_while(|s| s.next_offset() <= offset)
            .count();
        self.remove_oldest(n)?;
        Ok(offset)
    }

    /// Keeps the high watermark and the leader epoch cache consistent with a
    /// log start offset that moved up to `start` (Kafka's truncateFromStart).
    /// Caller holds the append lock.
    pub(crate) fn on_log_start_moved(&self, start: i64) -> Result<()> {
        self.high_watermark.fetch_max(start, Ordering::SeqCst);
        self.txns.write().trim_to(start);
        let mut epochs = self.epochs.read().clone();
        if epochs.truncate_from_start(start) {
            checkpoint::write_leader_epochs(&self.dir, epochs.entries())?;
            *self.epochs.write() = epochs;
        }
        Ok(())
    }

    /// Removes the `n` oldest segments from the list and deletes their files.
    /// Caller holds the append lock.
    fn remove_oldest(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let mut list = Vec::clone(&segs);
            let removed = list.drain(..n.min(list.len().saturating_sub(1))).collect();
            *segs = Arc::new(list);
            removed
        };
        let mut result = Ok(());
        for seg in &removed {
            if let Err(e) = seg.delete_files() {
                tracing::warn!(file = %seg.log_path().display(), error = %e, "could not delete segment files");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Applies `retention.ms` and `retention.bytes` by deleting whole closed
    /// segments (never the active one). Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let config = self.config.read().clone();
        if !config.retention_applies() {
            return Ok(0);
        }
        let _w = self.writer.lock();
        let segs = self.snapshot();
        let infos: Vec<retention::SegmentInfo> = segs
            .iter()
            .map(|s| retention::SegmentInfo {
                size: s.size(),
                timestamp: retention_timestamp(s, now_ms),
            })
            .collect();
        let n = retention::segments_to_delete(
            &infos,
            now_ms,
            config.retention_ms,
            config.retention_bytes,
        );
        if n == 0 {
            return Ok(0);
        }
        let new_first = segs[n].base_offset;
        self.remove_oldest(n)?;
        self.log_start.fetch_max(new_first, Ordering::AcqRel);
        self.on_log_start_moved(self.log_start_offset())?;
        tracing::info!(dir = %self.dir.display(), segments = n, log_start_offset = self.log_start_offset(), "retention deleted segments");
        Ok(n)
    }

    /// Removes every record at or after `offset` (follower truncation after a
    /// leader change, and tests). A batch containing `offset` is removed
    /// entirely, so the new log end offset is the base offset of that batch:
    /// truncation works at batch boundaries, as Kafka's does (a follower
    /// truncating to a leader's epoch end offset always lands on one, since
    /// it copied the leader's batches). `offset >= log_end_offset` is a no-op;
    /// a negative `offset` is [`Error::OffsetOutOfRange`].
    ///
    /// Everything derived from the log follows: indexes and time index,
    /// idempotent-producer state (rebuilt from the remaining headers), the
    /// leader epoch cache (entries starting at or after the new end removed),
    /// the high watermark (lowered to the new end, checkpoint rewritten), the
    /// recovery point, the cleaner checkpoint and the synced offset.
    /// Crash-safe: segments are removed newest first and the cut segment is
    /// shortened last, so a crash at any step leaves a prefix of the old log,
    /// which recovery accepts; the epoch checkpoint is rewritten after the
    /// data, and open drops entries past the recovered end.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let interval = self.config.read().index_interval_bytes;
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        let end = self.log_end.load(Ordering::Acquire);
        if offset >= end {
            return Ok(());
        }
        if offset < 0 {
            let start = self.log_start.load(Ordering::Acquire);
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let segs = self.snapshot();
        let idx = segs.partition_point(|s| s.base_offset <= offset);
        let (keep, cut) = if idx == 0 {
            // Below every segment: start over with one empty segment at `offset`.
            let seg = Arc::new(Segment::create(&self.files, &self.dir, offset.max(0))?);
            (vec![seg], segs.to_vec())
        } else {
            (segs[..idx].to_vec(), segs[idx..].to_vec())
        };
        let target = keep
            .last()
            .cloned()
            .ok_or_else(|| Error::InvalidBatch("no segment to truncate".into()))?;
        if w.recovery_point > target.base_offset {
            checkpoint::write_recovery_point(
                &self.dir,
                RecoveryPoint {
                    offset: target.base_offset,
                    clean: false,
                },
            )?;
            w.recovery_point = target.base_offset;
        }
        *self.segments.write() = Arc::new(keep);
        // Newest first, so a crash in between leaves a prefix of the old log.
        for seg in cut.iter().rev() {
            seg.delete_files()?;
        }
        let (pos, new_end) = match target.find_batch(offset)? {
            Some((pos, h)) => (pos, h.base_offset),
            None => (target.size(), target.next_offset()),
        };
        target.truncate(pos, new_end, interval)?;
        self.log_end.store(new_end, Ordering::SeqCst);
        self.log_start.fetch_min(new_end, Ordering::AcqRel);
        self.synced_offset.fetch_min(new_end, Ordering::AcqRel);
        // After the log end is published, so a concurrent raise is clamped.
        self.high_watermark.fetch_min(new_end, Ordering::SeqCst);
        if self.cleaner_offset.fetch_min(new_end, Ordering::AcqRel) > new_end {
            checkpoint::write_cleaner_offset(&self.dir, new_end)?;
        }
        let mut epochs = self.epochs.read().clone();
        if epochs.truncate_from_end(new_end) {
            checkpoint::write_leader_epochs(&self.dir, epochs.entries())?;
            *self.epochs.write() = epochs;
        }
        self.lower_high_watermark_checkpoint()?;
        let (producers, mut txns) = recovery::rebuild_producers(&self.snapshot())?;
        txns.trim_to(self.log_start.load(Ordering::SeqCst));
        w.producers = producers;
        *self.txns.write() = txns;
        Ok(())
    }

    /// Rewrites the high watermark checkpoint if it is above the current
    /// high watermark, so a crash cannot bring back a high watermark over
    /// truncated (and later rewritten) offsets.
    fn lower_high_watermark_checkpoint(&self) -> Result<()> {
        let mut last = self.hw_checkpointed.lock();
        let hw = self.high_watermark();
        if *last > hw {
            checkpoint::write_high_watermark(&self.dir, hw)?;
            *last = hw;
        }
        Ok(())
    }

    /// Empties the log and restarts it at `offset`: every segment is deleted,
    /// log start, log end and high watermark become `offset`, and the leader
    /// epoch cache and producer state are cleared (Kafka's
    /// truncateFullyAndStartAt). A follower does this when its fetch offset
    /// is out of the leader's range (below the leader's log start), or when
    /// the leader's first batch starts before the follower's empty log.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        if offset < 0 {
            let (start, end) = (self.log_start_offset(), self.log_end_offset());
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        self.reset_locked(&mut w, offset)
    }

    /// [`Log::truncate_fully_and_start_at`] under the append lock.
    pub(crate) fn reset_locked(&self, w: &mut WriterState, offset: i64) -> Result<()> {
        self.truncations.fetch_add(1, Ordering::AcqRel);
        // The new start is durable first: whatever a crash leaves below it is unreadable.
        checkpoint::write_log_start(&self.dir, offset)?;
        checkpoint::write_recovery_point(
            &self.dir,
            RecoveryPoint {
                offset: 0,
                clean: false,
            },
        )?;
        w.recovery_point = 0;
        let old = self.snapshot();
        for seg in old.iter().rev() {
            seg.delete_files()?;
        }
        let seg = Arc::new(Segment::create(&self.files, &self.dir, offset)?);
        *self.segments.write() = Arc::new(vec![seg]);
        self.log_end.store(offset, Ordering::SeqCst);
        self.log_start.store(offset, Ordering::SeqCst);
        self.synced_offset.store(offset, Ordering::SeqCst);
        self.high_watermark.store(offset, Ordering::SeqCst);
        self.cleaner_offset.store(offset, Ordering::SeqCst);
        checkpoint::write_cleaner_offset(&self.dir, offset)?;
        checkpoint::write_leader_epochs(&self.dir, &[])?;
        *self.epochs.write() = LeaderEpochCache::default();
        {
            let mut last = self.hw_checkpointed.lock();
            checkpoint::write_high_watermark(&self.dir, offset)?;
            *last = offset;
        }
        w.producers = producer_state::ProducerStateManager::default();
        *self.txns.write() = crate::txn_state::TxnState::default();
        Ok(())
    }
}

/// The timestamp retention compares against: the segment's largest record
/// timestamp, or its file's modification time when it holds no timestamps.
pub(crate) fn retention_timestamp(seg: &Segment, now_ms: i64) -> i64 {
    let ts = seg.max_timestamp();
    if ts >= 0 {
        return ts;
    }
    std::fs::metadata(seg.log_path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(now_ms)
}
