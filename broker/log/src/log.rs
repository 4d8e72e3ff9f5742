//! [`Log`]: one partition's log, the type the server holds (`Arc<Log>`).
//! This file has opening, reads, group commit, the leader epoch cache and
//! high watermark accessors and close; appends are in `append.rs`,
//! truncation, retention and DeleteRecords in `truncation.rs`, compaction
//! in `compaction.rs`.
//!
//! A [`Log`] stores Kafka record batches (magic v2) byte-for-byte as producers
//! sent them; the only bytes the log writes itself are each batch's
//! `baseOffset` and `partitionLeaderEpoch` (both outside the CRC), and, for
//! topics with `message.timestamp.type=LogAppendTime`, the timestamp fields
//! (the CRC is then recomputed, as Kafka does). Segments are files named
//! `<base offset, 20 digits>.log` with a sparse `.index` (offset → position)
//! and `.timeindex` (timestamp → offset). There is no networking here.
//!
//! CONTRACT (the server is written against this API; keep signatures stable):
//! every method takes `&self` and the type is `Send + Sync`, so the server can
//! share one `Arc<Log>` between connections. Appends are serialized
//! internally; reads run concurrently with appends; `sync()` implements group
//! commit (see its doc).
//!
//! Replication (Kafka's model) uses: [`Log::append_as_follower`] or
//! [`Log::append_as_follower_at`] (batches kept as the leader wrote them),
//! the leader epoch cache
//! ([`Log::assign_epoch_start`], [`Log::end_offset_for_epoch`],
//! [`Log::latest_epoch`], [`Log::epoch_entries`]), the high watermark
//! ([`Log::high_watermark`], [`Log::set_high_watermark`],
//! [`Log::checkpoint_high_watermark`]), [`Log::synced_offset`],
//! [`Log::truncate_to`] and [`Log::truncate_fully_and_start_at`]. A leader
//! append refuses an epoch older than the latest ([`Error::StaleLeaderEpoch`])
//! and one older than the fence a lost leadership leaves
//! ([`Log::fence_leader_appends`], [`Error::LeadershipEnded`]).
//!
//! On-disk layout of one partition directory:
//! - `<base:020>.log`: whole batches back to back; the file name is the offset
//!   of its first batch. The last segment is the active one.
//! - `<base:020>.index`: big-endian entries (relative base offset u32, file
//!   position u32), one per `index.interval.bytes` of batches; strictly increasing.
//! - `<base:020>.timeindex`: big-endian entries (max timestamp so far i64,
//!   relative base offset u32 of the batch holding it); strictly increasing
//!   timestamps, the last entry holds the segment's max timestamp.
//!   Index files are written (temp file + rename) when a segment is rolled and
//!   on close; the active segment's indexes live in memory.
//! - `recovery-point.checkpoint`: text `runnel-recovery-point v1\n<offset> <clean 0|1>\n`;
//!   segments wholly below the offset are fsynced with valid indexes.
//! - `log-start-offset.checkpoint`: text `runnel-log-start-offset v1\n<offset>\n` (DeleteRecords).
//! - `cleaner-offset.checkpoint`: text `runnel-cleaner-offset v1\n<offset>\n`; segments
//!   below the offset have been compacted (see [`Log::compact`]).
//! - `leader-epoch.checkpoint`: text `runnel-leader-epoch v1\n<count>\n` then
//!   `<epoch> <start offset>\n` per entry (Kafka's leader-epoch-checkpoint, see
//!   [`Log::epoch_entries`]). Written before the data of a new epoch, so after
//!   a crash it may only run ahead of the log; open drops entries at or past
//!   the log end and rebuilds the file from the batch headers when it is
//!   missing, damaged or disagrees with them.
//! - `high-watermark.checkpoint`: text `runnel-high-watermark v1\n<offset>\n`,
//!   written by [`Log::checkpoint_high_watermark`], [`Log::close`] and truncation.
//! - `*.tmp`: leftovers of interrupted atomic writes, removed on open.
//! - `<base:020>.log.cleaned`: a compacted segment being written, removed on open;
//!   `<base:020>.log.swap`: a complete, fsynced compacted segment, renamed over
//!   `<base:020>.log` on open (the compaction crashed between its two renames).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

use crate::checkpoint::{self, RecoveryPoint};
use crate::clock;
use crate::config::LogConfig;
use crate::epoch_cache::{EpochEntry, LeaderEpochCache};
use crate::error::{io_err, Error, Result};
use crate::files::FileCache;
use crate::producer_state::{ProducerInfo, ProducerStateManager};
use crate::records;
use crate::recovery::{self, RecoveryReport};
use crate::segment::Segment;
use crate::slice::{FileSlice, SliceRead};
use crate::txn_state::{AbortedTxn, TxnState};

/// Bytes read from the log for a fetch: whole batches, starting with the batch
/// that contains the requested offset.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Concatenated record batches exactly as stored (may be empty).
    pub records: Bytes,
    /// Log end offset (next offset to be assigned) at the time of the read.
    pub log_end_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}

/// One partition's log. See the module documentation for the contract.
pub struct Log {
    pub(crate) dir: PathBuf,
    /// The broker's open-file cache every segment file of this log goes through.
    pub(crate) files: Arc<FileCache>,
    /// Current settings; read at the start of each operation.
    pub(crate) config: RwLock<LogConfig>,
    /// The append lock: serializes appends, rolls, truncation, retention and
    /// DeleteRecords, and owns the idempotent-producer state.
    pub(crate) writer: Mutex<WriterState>,
    /// Segments ordered by base offset; the last is active. Readers clone the
    /// `Arc` and release the lock at once; writers replace the whole list.
    pub(crate) segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Published after the appended bytes are committed to their segment.
    pub(crate) log_start: AtomicI64,
    pub(crate) log_end: AtomicI64,
    /// Every offset below this is fsynced.
    pub(crate) synced_offset: AtomicI64,
    /// Held by the one caller doing a group-commit fsync (never with the append lock).
    pub(crate) sync_lock: Mutex<()>,
    /// Set by a failed fsync; cleared only by reopening.
    pub(crate) poisoned: AtomicBool,
    /// Held for a whole compaction pass so only one runs at a time (never
    /// taken by appends, reads, retention or truncation).
    pub(crate) cleaner_lock: Mutex<()>,
    /// Offsets below this have been compacted (persisted cleaner checkpoint).
    /// Written under the append lock.
    pub(crate) cleaner_offset: AtomicI64,
    /// Bumped by every truncation (under the append lock); a compaction that
    /// started before one discards its work instead of swapping segments in.
    pub(crate) truncations: AtomicU64,
    /// Earliest time a tombstone kept by the last compaction pass becomes
    /// removable; a pass runs then even with nothing dirty. Unknown after
    /// open (`i64::MIN`), so the first pass checks the cleaned segments.
    pub(crate) tombstone_expiry: AtomicI64,
    /// The leader epoch cache; written (memory and file) only under the append lock.
    pub(crate) epochs: RwLock<LeaderEpochCache>,
    /// High watermark, in `[log_start, log_end]`; raised by `set_high_watermark`
    /// (lock-free), lowered only by truncation (under the append lock).
    pub(crate) high_watermark: AtomicI64,
    /// The value last written to the high watermark checkpoint; the lock
    /// serializes writes of that file.
    pub(crate) hw_checkpointed: Mutex<i64>,
    /// Open and aborted transactions (written under the append lock).
    pub(crate) txns: RwLock<TxnState>,
}

/// State owned by the append lock.
pub(crate) struct WriterState {
    pub(crate) producers: ProducerStateManager,
    /// Offset written to the recovery checkpoint.
    pub(crate) recovery_point: i64,
    /// Leader appends under an older partition leader epoch are refused
    /// ([`Log::fence_leader_appends`]); 0 until a leadership ends here.
    pub(crate) leader_fence: i32,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, running crash recovery:
    /// batches after the last recovery checkpoint (and always the active
    /// segment) are CRC-checked, a torn or corrupt tail is truncated, missing
    /// or damaged indexes are rebuilt, idempotent-producer state is restored.
    /// The segment files go through the process-wide default [`FileCache`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, RecoveryReport)> {
        Log::open_with(dir, config, &FileCache::shared_default())
    }

    /// [`Log::open`] with the segment files kept open through `files` (the
    /// broker's one cache, which bounds its open descriptors). A new log (an
    /// empty or missing directory) costs one fsync, of its directory, made
    /// as its first segment file is created: files renamed into the
    /// directory before the call are durable when it returns.
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        files: &Arc<FileCache>,
    ) -> Result<(Log, RecoveryReport)> {
        let opened = recovery::open_dir(files, dir, &config, clock::now_ms())?;
        let hw_file = checkpoint::read_high_watermark(dir);
        let hw = hw_file
            .unwrap_or(opened.log_start)
            .min(opened.log_end)
            .max(opened.log_start);
        let log = Log {
            dir: dir.to_path_buf(),
            files: files.clone(),
            config: RwLock::new(config),
            writer: Mutex::new(WriterState {
                producers: opened.producers,
                recovery_point: opened.recovery_point,
                leader_fence: 0,
            }),
            segments: RwLock::new(Arc::new(opened.segments)),
            log_start: AtomicI64::new(opened.log_start),
            log_end: AtomicI64::new(opened.log_end),
            synced_offset: AtomicI64::new(opened.log_end),
            sync_lock: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            cleaner_lock: Mutex::new(()),
            cleaner_offset: AtomicI64::new(
                checkpoint::read_cleaner_offset(dir)
                    .unwrap_or(0)
                    .min(opened.log_end),
            ),
            truncations: AtomicU64::new(0),
            tombstone_expiry: AtomicI64::new(i64::MIN),
            epochs: RwLock::new(opened.epochs),
            high_watermark: AtomicI64::new(hw),
            // A missing file reads as the log start, which is then the high
            // watermark: nothing to write until it moves.
            hw_checkpointed: Mutex::new(hw_file.unwrap_or(hw)),
            txns: RwLock::new(opened.txns),
        };
        Ok((log, opened.report))
    }

    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    pub(crate) fn active(&self) -> Result<Arc<Segment>> {
        self.snapshot()
            .last()
            .cloned()
            .ok_or_else(|| Error::InvalidBatch("log has no active segment".into()))
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// fdatasyncs a segment; a failure poisons the log.
    pub(crate) fn fsync_segment(&self, seg: &Segment) -> Result<()> {
        if let Err(e) = seg.sync_data() {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; log poisoned until restart");
            return Err(e);
        }
        Ok(())
    }

    /// Group commit: returns once every byte up to `offset` (exclusive end
    /// offset, i.e. `last_offset + 1`) is fsynced. Concurrent callers share one
    /// fsync: a caller whose offset is already covered returns at once. A
    /// failed fsync poisons the log. Blocking: call from `spawn_blocking`.
    pub fn sync(&self, offset: i64) -> Result<()> {
        self.check_poisoned()?;
        if self.synced_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _guard = self.sync_lock.lock();
        self.check_poisoned()?;
        if self.synced_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        // The end offset is captured before the segment list, so every byte
        // below it is in a segment of the snapshot and within its committed size.
        let target = self.log_end.load(Ordering::Acquire);
        for seg in self.snapshot().iter() {
            self.fsync_segment(seg)?;
        }
        self.synced_offset.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes`; when `min_one` is true the first batch is returned even if
    /// larger than `max_bytes`. Only offsets below `max_offset` (exclusive; the
    /// high watermark) are returned. `offset == log_end_offset` gives empty records.
    /// A read continues into the following segments while `max_bytes` allows.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        max_offset: i64,
    ) -> Result<ReadResult> {
        let found = self.read_slices(offset, max_bytes, min_one, max_offset)?;
        let mut parts = Vec::with_capacity(found.slices.len());
        for slice in &found.slices {
            parts.push(slice.to_bytes().map_err(|e| io_err(&self.dir, e))?);
        }
        let records = match parts.len() {
            0 => Bytes::new(),
            1 => parts.swap_remove(0),
            _ => {
                let mut all = BytesMut::with_capacity(found.len);
                for p in &parts {
                    all.extend_from_slice(p);
                }
                all.freeze()
            }
        };
        Ok(ReadResult {
            records,
            log_end_offset: found.log_end_offset,
            log_start_offset: found.log_start_offset,
        })
    }

    /// The batches [`Log::read`] would return, as byte ranges of the segment files
    /// (found from batch headers and the index, not by reading the batches): for a
    /// reader that sends them with `sendfile`.
    pub fn read_slices(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        max_offset: i64,
    ) -> Result<SliceRead> {
        let end = self.log_end.load(Ordering::Acquire);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        let limit = max_offset.min(end);
        let mut read = SliceRead {
            next_offset: offset,
            log_end_offset: end,
            log_start_offset: start,
            ..SliceRead::default()
        };
        if offset < limit {
            let first = segs
                .partition_point(|s| s.base_offset <= offset)
                .saturating_sub(1);
            let mut at = offset;
            // A read goes on into the next segments while the byte budget
            // allows, so a segment boundary (a roll) does not shorten it.
            for seg in &segs[first..] {
                if at >= limit {
                    break;
                }
                let budget = max_bytes.saturating_sub(read.len);
                let first_read = read.slices.is_empty();
                let Some(got) = seg.extent(at, budget, min_one && first_read, limit)? else {
                    continue;
                };
                if got.len == 0 {
                    break;
                }
                read.len += got.len;
                at = got.next_offset;
                read.next_offset = got.next_offset;
                let slice = FileSlice::new(seg.file()?, got.pos, got.len);
                slice.prefetch();
                read.slices.push(slice);
                if !got.at_end {
                    break;
                }
            }
        }
        Ok(read)
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, with that
    /// record's timestamp, as `(offset, timestamp)`; `None` when no such record exists.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::Acquire);
        let limit = self.uncompressed_limit();
        for seg in segs.iter() {
            if seg.next_offset() <= start || seg.max_timestamp() < timestamp_ms {
                continue;
            }
            if let Some(found) = seg.find_timestamp(timestamp_ms, start, limit)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the record holding it,
    /// as `(timestamp, offset)` (ListOffsets MAX_TIMESTAMP, -3); `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::Acquire);
        let mut best: Option<&Arc<Segment>> = None;
        for seg in segs
            .iter()
            .filter(|s| s.next_offset() > start && !s.is_empty())
        {
            if best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp()) {
                best = Some(seg);
            }
        }
        match best {
            Some(seg) => seg.max_timestamp_record(self.uncompressed_limit()),
            None => Ok(None),
        }
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.snapshot().len()
    }

    /// The newest leader epoch in the epoch cache (including one recorded by
    /// [`Log::assign_epoch_start`] with no data yet); `None` when unknown.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.read().latest().map(|e| e.epoch)
    }

    /// Kafka's OffsetForLeaderEpoch answer, as `(epoch, end offset)`: for the
    /// latest epoch, the log end offset; for an older one, the largest known
    /// epoch <= `epoch` and the start offset of the next higher epoch; for an
    /// epoch below every known one, `(epoch, start of the first known epoch)`
    /// (the older data was removed; Kafka answers the same). `None` means
    /// UNDEFINED: no epoch is known, `epoch` is negative, or above the latest.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let epochs = self.epochs.read();
        epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Records that `epoch` starts at the current log end offset, before any
    /// batch of it is written (a new leader does this, so OffsetForLeaderEpoch
    /// answers for its epoch at once). No-op when `epoch` is already the
    /// latest; an epoch older than the latest is [`Error::StaleLeaderEpoch`].
    /// The checkpoint is written before returning. A cache entry with no data
    /// behind it is dropped if the log is reopened (as in Kafka).
    pub fn assign_epoch_start(&self, epoch: i32) -> Result<()> {
        if epoch < 0 {
            return Err(Error::StaleLeaderEpoch {
                latest: self.latest_epoch().unwrap_or(-1),
                got: epoch,
            });
        }
        let _w = self.writer.lock();
        self.check_poisoned()?;
        let mut epochs = self.epochs.read().clone();
        if let Some(latest) = epochs.latest().map(|e| e.epoch) {
            if epoch < latest {
                return Err(Error::StaleLeaderEpoch { latest, got: epoch });
            }
        }
        if epochs.assign(epoch, self.log_end.load(Ordering::Acquire)) {
            checkpoint::write_leader_epochs(&self.dir, epochs.entries())?;
            *self.epochs.write() = epochs;
        }
        Ok(())
    }

    /// Refuses, from now on, every leader append ([`Log::append`]) whose
    /// partition leader epoch is older than `epoch`
    /// ([`Error::LeadershipEnded`]); never lowers an earlier fence. A replica
    /// whose leadership of epoch `e` ends calls this with `e + 1` before it
    /// starts following: an append that was admitted as leader but reaches
    /// the log only afterwards would otherwise land after the follower's
    /// truncation, under the old epoch, where nothing removes it (Kafka
    /// avoids the same race by appending under its leader-ISR read lock).
    /// Appends already made are the follower's truncation's to judge. Kept
    /// in memory only: a reopened log has no leader append in flight.
    pub fn fence_leader_appends(&self, epoch: i32) {
        let mut w = self.writer.lock();
        w.leader_fence = w.leader_fence.max(epoch);
    }

    /// The leader epoch cache, oldest first: each epoch and the first offset
    /// written under it (strictly increasing in both).
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs.read().entries().to_vec()
    }

    /// The last stable offset: the high watermark, or the first offset of a
    /// transaction not yet decided (or whose marker is not yet below the high
    /// watermark) if lower. read_committed consumers read up to it.
    pub fn last_stable_offset(&self) -> i64 {
        self.txns.read().last_stable_offset(self.high_watermark())
    }

    /// The aborted transactions overlapping `[from, to)` (a read_committed
    /// fetch returns them so the client can drop their records).
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.txns.read().aborted_between(from, to)
    }

    /// Producers with a transaction open here → the offset it started at.
    pub fn open_transactions(&self) -> std::collections::BTreeMap<i64, i64> {
        self.txns.read().ongoing().clone()
    }

    /// The high watermark: offsets below it are committed (replicated to the
    /// ISR); always within `[log_start_offset, log_end_offset]`.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
            .load(Ordering::SeqCst)
            .max(self.log_start.load(Ordering::SeqCst))
    }

    /// Raises the high watermark to `hw` clamped to `[log_start_offset,
    /// log_end_offset]`; a lower value is ignored (only truncation lowers it).
    /// Returns the high watermark after the call. Lock-free; persisted by
    /// [`Log::checkpoint_high_watermark`] and [`Log::close`].
    pub fn set_high_watermark(&self, hw: i64) -> i64 {
        let end = self.log_end.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        self.high_watermark
            .fetch_max(hw.min(end).max(start), Ordering::SeqCst);
        // A truncation may have published a lower end meanwhile; it clamps
        // after publishing, and this clamps after raising, so one of the two
        // sees the other.
        let end = self.log_end.load(Ordering::SeqCst);
        self.high_watermark.fetch_min(end, Ordering::SeqCst);
        self.high_watermark()
    }

    /// Writes the high watermark checkpoint if the high watermark changed
    /// since the last write (call periodically; [`Log::close`] does it too).
    pub fn checkpoint_high_watermark(&self) -> Result<()> {
        let mut last = self.hw_checkpointed.lock();
        let hw = self.high_watermark();
        if *last != hw {
            checkpoint::write_high_watermark(&self.dir, hw)?;
            *last = hw;
        }
        Ok(())
    }

    /// Every offset below this is fsynced (see [`Log::sync`]).
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset.load(Ordering::Acquire)
    }

    /// Replaces the config (alter configs at runtime).
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// The most bytes the records of one stored batch may decompress to when
    /// they are decoded ([`records::uncompressed_limit`] of `max.message.bytes`);
    /// pass it to [`records::decode_batch`] for batches read from this log.
    pub fn uncompressed_limit(&self) -> usize {
        records::uncompressed_limit(self.config.read().max_message_bytes)
    }

    /// Fsyncs everything, writes indexes and the recovery checkpoint (clean shutdown).
    pub fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.check_poisoned()?;
        let _guard = self.sync_lock.lock();
        let end = self.log_end.load(Ordering::Acquire);
        let segs = self.snapshot();
        for seg in segs.iter() {
            self.fsync_segment(seg)?;
        }
        self.synced_offset.fetch_max(end, Ordering::AcqRel);
        let active = self.active()?;
        // An empty segment's indexes are empty: missing files say the same.
        if !active.is_empty() {
            active.write_indexes()?;
        }
        self.checkpoint_high_watermark()?;
        w.recovery_point = active.base_offset;
        checkpoint::write_recovery_point(
            &self.dir,
            RecoveryPoint {
                offset: active.base_offset,
                clean: true,
            },
        )
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of idempotent producers whose sequence state is tracked.
    pub fn producer_count(&self) -> usize {
        self.writer.lock().producers.len()
    }

    /// The idempotent producers writing to this log, by producer id (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.writer.lock().producers.describe()
    }

    /// True after a failed fsync: writes are refused until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}
