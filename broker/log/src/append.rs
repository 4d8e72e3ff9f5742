//! Writing at the end of the log: leader appends ([`Log::append`]: offsets
//! assigned, idempotent-producer sequences checked), follower appends
//! ([`Log::append_as_follower`]: batches kept as the leader wrote them), and
//! segment rolls (by size, by `segment.ms`, by relative-offset range).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::checkpoint::{self, RecoveryPoint};
use crate::clock;
use crate::compaction;
use crate::config::{LogConfig, TimestampType};
use crate::error::{Error, Result};
use crate::log::{Log, WriterState};
use crate::producer_state::{ProducerBatch, SeqCheck};
use crate::segment::Segment;
use crate::txn_state::ControlType;

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The broker time written into the batches for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// True when an idempotent producer retried a batch already in the log:
    /// nothing was written and the offsets are those of the original append.
    pub duplicate: bool,
}

/// Largest segment file size: index positions are u32.
const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Largest distance between a segment base and its last offset (relative offsets are u32).
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

impl Log {
    /// Appends one or more magic-v2 batches (the `records` field of a produce
    /// request). Validates framing, magic and CRC of every batch and the size
    /// against `max_message_bytes` before writing anything; assigns offsets;
    /// writes `partition_leader_epoch` (records it in the leader epoch cache;
    /// an epoch older than [`Log::latest_epoch`] is [`Error::StaleLeaderEpoch`],
    /// a negative one is written but not recorded); checks idempotent-producer sequences.
    /// Data is written (page cache) but not fsynced: call [`Log::sync`].
    /// `now_ms` is the broker clock (LogAppendTime, segment.ms).
    pub fn append(
        &self,
        records: Bytes,
        partition_leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let config = self.config.read().clone();
        let batches = batch::validate_all(&records, config.max_message_bytes)?;
        if config.compact {
            let limit = crate::records::uncompressed_limit(config.max_message_bytes);
            compaction::check_keys(&records, &batches, limit)?;
        }
        self.check_poisoned()?;
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        // Before the duplicate check: a fenced leader answers nothing, not even a retry.
        if partition_leader_epoch >= 0 && partition_leader_epoch < w.leader_fence {
            return Err(Error::LeadershipEnded {
                fence: w.leader_fence,
                got: partition_leader_epoch,
            });
        }
        if partition_leader_epoch >= 0 {
            if let Some(latest) = self.latest_epoch() {
                if partition_leader_epoch < latest {
                    return Err(Error::StaleLeaderEpoch {
                        latest,
                        got: partition_leader_epoch,
                    });
                }
            }
        }

        let producer_batches: Vec<Option<ProducerBatch>> = batches
            .iter()
            .map(|b| ProducerBatch::from_header(&b.header))
            .collect();
        let checks = match w.producers.check_all(&producer_batches) {
            Ok(checks) => checks,
            Err(err) => {
                return Err(self.gap_at_new_leader(
                    &w,
                    &producer_batches,
                    partition_leader_epoch,
                    err,
                ))
            }
        };
        let duplicates = checks
            .iter()
            .filter(|c| matches!(c, SeqCheck::Duplicate { .. }))
            .count();
        if duplicates > 0 {
            if duplicates != checks.len() {
                return Err(Error::InvalidBatch(
                    "an append mixes retried (duplicate) and new batches".into(),
                ));
            }
            let (base_offset, last_offset) = match (checks.first(), checks.last()) {
                (
                    Some(SeqCheck::Duplicate { base_offset, .. }),
                    Some(SeqCheck::Duplicate { last_offset, .. }),
                ) => (*base_offset, *last_offset),
                _ => (-1, -1),
            };
            return Ok(AppendInfo {
                base_offset,
                last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                duplicate: true,
            });
        }

        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        let mut buf = BytesMut::from(&records[..]);
        let base_offset = self.log_end.load(Ordering::Acquire);
        let mut next = base_offset;
        let mut placed = Vec::with_capacity(batches.len());
        for b in &batches {
            let size = b.header.total_size();
            let bytes = &mut buf[b.pos..b.pos + size];
            batch::set_offset_and_epoch(bytes, next, partition_leader_epoch);
            if log_append_time {
                batch::set_log_append_time(bytes, now_ms);
            }
            let header = BatchHeader::parse(bytes)
                .ok_or_else(|| Error::InvalidBatch("batch shorter than its header".into()))?;
            placed.push((b.pos, header));
            next = next
                .checked_add(i64::from(b.header.last_offset_delta) + 1)
                .ok_or_else(|| Error::InvalidBatch("offset overflow".into()))?;
        }
        let last_offset = next - 1;
        self.commit_batches(&mut w, &config, &buf, &placed, &producer_batches, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// Appends batches fetched from the leader as they are: their base
    /// offsets, partition leader epochs and timestamps are kept (no offset
    /// assignment, no LogAppendTime rewrite, no idempotence checks, no
    /// `max.message.bytes` or key checks: the leader accepted them). Framing,
    /// magic and CRC are validated before anything is written. The first
    /// batch must start at or after the log end offset and every batch after
    /// the previous one's last offset, else [`Error::OffsetMismatch`]; a
    /// forward gap is accepted because a compacted leader log has them (as
    /// Kafka's follower accepts them). A batch epoch older than the log's
    /// newest data epoch is [`Error::StaleLeaderEpoch`]. Indexes, producer
    /// state and the leader epoch cache are updated. Data is written (page
    /// cache) but not fsynced: call [`Log::sync`] before reporting it. Empty
    /// `records` is a no-op answering `base_offset = log_end_offset` and
    /// `last_offset = base_offset - 1`.
    ///
    /// One exception to the offset rule, as in Kafka: when the log holds no
    /// batch and the first batch straddles the log end offset (the leader's
    /// log start is inside a batch, e.g. after DeleteRecords, and this log
    /// was started there with [`Log::truncate_fully_and_start_at`]), the log
    /// restarts at that batch's base offset and the log start offset is then
    /// moved back up to the old log end, so the records below stay hidden.
    ///
    /// The `segment.ms` roll check uses the wall clock; see
    /// [`Log::append_as_follower_at`] to pass the broker clock.
    pub fn append_as_follower(&self, records: Bytes) -> Result<AppendInfo> {
        self.append_as_follower_at(records, clock::now_ms())
    }

    /// [`Log::append_as_follower`] with `now_ms`, the broker clock used for
    /// the `segment.ms` roll check (the same clock [`Log::append`] is given,
    /// so a log written by both paths does not roll early).
    pub fn append_as_follower_at(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo> {
        let config = self.config.read().clone();
        if records.is_empty() {
            let end = self.log_end_offset();
            return Ok(AppendInfo {
                base_offset: end,
                last_offset: end - 1,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
                duplicate: false,
            });
        }
        let batches = batch::validate_all(&records, usize::MAX)?;
        self.check_poisoned()?;
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        let mut expected = self.log_end.load(Ordering::Acquire);
        let mut hide_below = None;
        if let Some(first) = batches.first().map(|b| b.header) {
            let straddles = first.base_offset >= 0
                && first.base_offset < expected
                && first.last_offset() >= expected;
            if straddles && self.snapshot().iter().all(|s| s.is_empty()) {
                hide_below = Some(expected);
                expected = first.base_offset;
            }
        }
        let mut data_epoch = if hide_below.is_some() {
            None
        } else {
            self.data_epoch()
        };
        let mut placed = Vec::with_capacity(batches.len());
        for b in &batches {
            let h = b.header;
            if h.base_offset < expected {
                return Err(Error::OffsetMismatch {
                    expected,
                    got: h.base_offset,
                });
            }
            let last = h
                .base_offset
                .checked_add(i64::from(h.last_offset_delta))
                .ok_or_else(|| Error::InvalidBatch("offset overflow".into()))?;
            if h.partition_leader_epoch >= 0 {
                if let Some(latest) = data_epoch.filter(|e| h.partition_leader_epoch < *e) {
                    return Err(Error::StaleLeaderEpoch {
                        latest,
                        got: h.partition_leader_epoch,
                    });
                }
                data_epoch = Some(h.partition_leader_epoch);
            }
            placed.push((b.pos, h));
            expected = last + 1;
        }
        let (base_offset, last_offset) = match (placed.first(), placed.last()) {
            (Some((_, f)), Some((_, l))) => (f.base_offset, l.last_offset()),
            _ => return Err(Error::InvalidBatch("no record batch".into())),
        };
        if last_offset - base_offset > MAX_RELATIVE_OFFSET {
            return Err(Error::InvalidBatch(format!(
                "follower append spans offsets {base_offset}..={last_offset}, too many for one segment"
            )));
        }
        let producer_batches: Vec<Option<ProducerBatch>> = placed
            .iter()
            .map(|(_, h)| ProducerBatch::from_header(h))
            .collect();
        if hide_below.is_some() {
            self.reset_locked(&mut w, base_offset)?;
        }
        self.commit_batches(
            &mut w,
            &config,
            &records,
            &placed,
            &producer_batches,
            now_ms,
        )?;
        if let Some(start) = hide_below {
            checkpoint::write_log_start(&self.dir, start)?;
            self.log_start.fetch_max(start, Ordering::SeqCst);
            self.on_log_start_moved(start)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// Writes validated batches (headers final) at the end of the log: rolls
    /// when due, records new leader epochs (checkpoint written before the
    /// data, so it is never behind the log), writes, updates the segment's
    /// indexes, publishes to readers and records producer state. Caller holds
    /// the append lock.
    fn commit_batches(
        &self,
        w: &mut WriterState,
        config: &LogConfig,
        buf: &[u8],
        placed: &[(usize, BatchHeader)],
        producer_batches: &[Option<ProducerBatch>],
        now_ms: i64,
    ) -> Result<()> {
        let (Some((_, first)), Some((_, last))) = (placed.first(), placed.last()) else {
            return Ok(());
        };
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        let next = last_offset + 1;
        let mut active = self.active()?;
        let roll_size = config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let too_big = active.size() + buf.len() as u64 > roll_size;
        let too_old = active
            .state
            .lock()
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) >= config.segment_ms);
        let too_far = last_offset - active.base_offset > MAX_RELATIVE_OFFSET;
        if !active.is_empty() && (too_big || too_old || too_far) {
            self.roll(w, base_offset)?;
            active = self.active()?;
        }

        let old_epochs = self.epochs.read().clone();
        let mut new_epochs = old_epochs.clone();
        let mut epochs_changed = false;
        for (_, h) in placed {
            epochs_changed |= new_epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        if epochs_changed {
            checkpoint::write_leader_epochs(&self.dir, new_epochs.entries())?;
            *self.epochs.write() = new_epochs;
        }

        let start = active.size();
        if let Err(e) = active.write_batches(buf) {
            if epochs_changed {
                // Best effort: a checkpoint ahead of the log is also fixed on open.
                *self.epochs.write() = old_epochs.clone();
                if let Err(ce) = checkpoint::write_leader_epochs(&self.dir, old_epochs.entries()) {
                    tracing::warn!(dir = %self.dir.display(), error = %ce, "could not restore the leader epoch checkpoint");
                }
            }
            return Err(e);
        }
        {
            let mut st = active.state.lock();
            for (pos, header) in placed {
                st.on_batch(
                    active.base_offset,
                    start + *pos as u64,
                    header,
                    config.index_interval_bytes,
                );
            }
            if st.first_append_ms.is_none() {
                st.first_append_ms = Some(now_ms);
            }
        }
        active.publish(start + buf.len() as u64, next);
        {
            let mut txns = self.txns.write();
            for (pos, header) in placed {
                let control = if header.is_control() {
                    let body = &buf[*pos + HEADER_LEN..*pos + header.total_size()];
                    if header.producer_id >= 0 {
                        w.producers.mark(header.producer_id, header.producer_epoch);
                    }
                    ControlType::of_batch(body)
                } else {
                    None
                };
                txns.observe(header, control);
            }
            txns.advance(self.high_watermark());
        }
        for (pb, (_, header)) in producer_batches.iter().zip(placed) {
            if let Some(pb) = pb {
                w.producers
                    .record(pb, header.base_offset, header.last_offset());
            }
        }
        self.log_end.store(next, Ordering::Release);
        Ok(())
    }

    /// Turns a forward sequence gap in the first batch a leader of
    /// `leader_epoch` receives from a producer into
    /// [`Error::SequenceGapAtNewLeader`] when that producer's last batch here
    /// was written under an earlier leader epoch; any other error is returned
    /// as it is. Caller holds the append lock.
    fn gap_at_new_leader(
        &self,
        w: &WriterState,
        batches: &[Option<ProducerBatch>],
        leader_epoch: i32,
        err: Error,
    ) -> Error {
        let Error::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } = err
        else {
            return err;
        };
        let first_of_producer = batches
            .iter()
            .flatten()
            .find(|b| b.producer_id == producer_id);
        // Only the producer's first batch of this append is judged against
        // its stored state (a later one follows the batches before it), and
        // only a gap ahead (a rewind is no retry that went astray).
        let ahead = (i64::from(got) - i64::from(expected)).rem_euclid(1 << 31);
        let same_producer_epoch = first_of_producer
            .is_some_and(|b| b.first_seq == got && w.producers.epoch(producer_id) == Some(b.epoch));
        if leader_epoch < 0 || !same_producer_epoch || !(1..1 << 30).contains(&ahead) {
            return err;
        }
        let last_epoch = w
            .producers
            .last_offset(producer_id)
            .and_then(|offset| self.epochs.read().epoch_at(offset))
            .map(|e| e.epoch);
        // Unknown (data without an epoch, or below the epoch cache): as Kafka.
        if last_epoch.is_none_or(|e| e >= leader_epoch) {
            return err;
        }
        Error::SequenceGapAtNewLeader {
            producer_id,
            expected,
            got,
            leader_epoch,
        }
    }

    /// The epoch of the newest data: the latest epoch entry starting below
    /// the log end (a new leader's entry at the log end holds no data yet).
    fn data_epoch(&self) -> Option<i32> {
        let end = self.log_end.load(Ordering::Acquire);
        self.epochs.read().epoch_at(end - 1).map(|e| e.epoch)
    }

    /// Closes the active segment (indexes written, data fsynced) and starts a
    /// new one at `new_base`. Caller holds the append lock.
    pub(crate) fn roll(&self, w: &mut WriterState, new_base: i64) -> Result<()> {
        let old = self.active()?;
        if old.is_empty() {
            return Ok(());
        }
        old.write_indexes()?;
        self.fsync_segment(&old)?;
        let seg = Arc::new(Segment::create(&self.files, &self.dir, new_base)?);
        {
            let mut segs = self.segments.write();
            let mut list = Vec::clone(&segs);
            list.push(seg);
            *segs = Arc::new(list);
        }
        w.recovery_point = new_base;
        checkpoint::write_recovery_point(
            &self.dir,
            RecoveryPoint {
                offset: new_base,
                clean: false,
            },
        )
    }

    /// Rolls the active segment if `segment.ms` has elapsed (called periodically).
    pub fn maybe_roll(&self, now_ms: i64) -> Result<()> {
        let segment_ms = self.config.read().segment_ms;
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        let active = self.active()?;
        let due = active
            .state
            .lock()
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) >= segment_ms);
        if due && !active.is_empty() {
            self.roll(&mut w, self.log_end.load(Ordering::Acquire))?;
        }
        Ok(())
    }
}
