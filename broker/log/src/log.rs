//! Runnel's storage engine: one append-only, segmented log per partition.
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
//! append refuses an epoch older than the latest ([`Error::StaleLeaderEpoch`]).
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

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

mod batch;
mod checkpoint;
pub mod clock;
mod compaction;
mod epoch_cache;
mod index;
mod producer_state;
pub mod records;
mod recovery;
mod retention;
mod segment;

use batch::BatchHeader;
use checkpoint::RecoveryPoint;
use epoch_cache::LeaderEpochCache;
use producer_state::{ProducerBatch, ProducerStateManager, SeqCheck};
use segment::Segment;

pub use compaction::CompactionReport;
pub use epoch_cache::EpochEntry;

/// Errors returned by the log. Each carries the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file. `ENOSPC` surfaces here (the failed append
    /// is rolled back and the log stays writable).
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A previous fsync failed; the log refuses writes until it is reopened.
    #[error("log {dir} is poisoned after a failed fsync; restart required")]
    Poisoned { dir: PathBuf },
    /// The input is not a valid magic-v2 record batch sequence.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A batch's CRC does not match its contents.
    #[error(
        "corrupt record batch: crc mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    CorruptBatch { stored: u32, computed: u32 },
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: usize, max: usize },
    /// Requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// Idempotent producer: sequence gap.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// Idempotent producer: epoch older than the one already seen.
    #[error("producer {producer_id} epoch {got} is older than {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// A record without a key was appended to a compacted log (`cleanup.policy=compact`).
    #[error(
        "compacted topic requires a key on every record: batch {batch} record {record} has none"
    )]
    KeylessRecordOnCompactedTopic { batch: usize, record: usize },
    /// A follower append does not continue the log: a batch starts below the
    /// offset the log expects (overlap or out-of-order offsets).
    #[error(
        "follower append expected a batch at or after offset {expected}, got base offset {got}"
    )]
    OffsetMismatch { expected: i64, got: i64 },
    /// An append or epoch start with a partition leader epoch older than the
    /// log's latest epoch (a stale leader, or a follower that did not truncate).
    #[error("leader epoch {got} is older than the log's latest leader epoch {latest}")]
    StaleLeaderEpoch { latest: i32, got: i32 },
}

/// Result alias for the log.
pub type Result<T> = std::result::Result<T, Error>;

/// How the timestamps of appended batches are treated (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite with the broker's clock at append.
    LogAppendTime,
}

/// Per-partition log settings (topic configs that the log engine honours).
/// May be changed at runtime with [`Log::set_config`].
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `retention.ms`; -1 means unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 means unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` contains `compact`: keep the latest record per key
    /// ([`Log::compact`]) and refuse keyless records.
    pub compact: bool,
    /// `cleanup.policy` contains `delete`: `retention.ms`/`retention.bytes` apply.
    /// A compact-only log (`compact: true, delete: false`) is never retention-deleted.
    pub delete: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) stays readable
    /// after its timestamp before compaction may remove it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: compaction runs when the uncompacted bytes
    /// are at least this fraction of the cleanable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments holding records newer than this are not compacted.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            compact: false,
            delete: true,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
        }
    }
}

impl LogConfig {
    /// True when `retention.ms`/`retention.bytes` delete segments (policy contains `delete`).
    pub fn retention_applies(&self) -> bool {
        self.delete || !self.compact
    }
}

/// What recovery did when the log was opened; the server logs it.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Segments whose batches were CRC-scanned.
    pub segments_scanned: usize,
    /// Bytes cut off a torn or corrupt tail (0 when the log was clean).
    pub truncated_bytes: u64,
    /// The segment file that was truncated, and the reason, if any.
    pub truncation: Option<(PathBuf, String)>,
    /// Index files rebuilt because they were missing or damaged.
    pub indexes_rebuilt: usize,
    /// The leader epoch checkpoint was missing, damaged or inconsistent with
    /// the batch headers and was rebuilt from them.
    pub epoch_cache_rebuilt: bool,
}

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
    dir: PathBuf,
    /// Current settings; read at the start of each operation.
    config: RwLock<LogConfig>,
    /// The append lock: serializes appends, rolls, truncation, retention and
    /// DeleteRecords, and owns the idempotent-producer state.
    writer: Mutex<WriterState>,
    /// Segments ordered by base offset; the last is active. Readers clone the
    /// `Arc` and release the lock at once; writers replace the whole list.
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Published after the appended bytes are committed to their segment.
    log_start: AtomicI64,
    log_end: AtomicI64,
    /// Every offset below this is fsynced.
    synced_offset: AtomicI64,
    /// Held by the one caller doing a group-commit fsync (never with the append lock).
    sync_lock: Mutex<()>,
    /// Set by a failed fsync; cleared only by reopening.
    poisoned: AtomicBool,
    /// Held for a whole compaction pass so only one runs at a time (never
    /// taken by appends, reads, retention or truncation).
    cleaner_lock: Mutex<()>,
    /// Offsets below this have been compacted (persisted cleaner checkpoint).
    /// Written under the append lock.
    cleaner_offset: AtomicI64,
    /// Bumped by every truncation (under the append lock); a compaction that
    /// started before one discards its work instead of swapping segments in.
    truncations: AtomicU64,
    /// Earliest time a tombstone kept by the last compaction pass becomes
    /// removable; a pass runs then even with nothing dirty. Unknown after
    /// open (`i64::MIN`), so the first pass checks the cleaned segments.
    tombstone_expiry: AtomicI64,
    /// The leader epoch cache; written (memory and file) only under the append lock.
    epochs: RwLock<LeaderEpochCache>,
    /// High watermark, in `[log_start, log_end]`; raised by `set_high_watermark`
    /// (lock-free), lowered only by truncation (under the append lock).
    high_watermark: AtomicI64,
    /// The value last written to the high watermark checkpoint; the lock
    /// serializes writes of that file.
    hw_checkpointed: Mutex<i64>,
}

/// State owned by the append lock.
struct WriterState {
    producers: ProducerStateManager,
    /// Offset written to the recovery checkpoint.
    recovery_point: i64,
}

/// Largest segment file size: index positions are u32.
const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Largest distance between a segment base and its last offset (relative offsets are u32).
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

impl Log {
    /// Opens (creating if needed) the log in `dir`, running crash recovery:
    /// batches after the last recovery checkpoint (and always the active
    /// segment) are CRC-checked, a torn or corrupt tail is truncated, missing
    /// or damaged indexes are rebuilt, idempotent-producer state is restored.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, RecoveryReport)> {
        let opened = recovery::open_dir(dir, &config, clock::now_ms())?;
        let hw_file = checkpoint::read_high_watermark(dir);
        let hw = hw_file
            .unwrap_or(opened.log_start)
            .min(opened.log_end)
            .max(opened.log_start);
        let log = Log {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            writer: Mutex::new(WriterState {
                producers: opened.producers,
                recovery_point: opened.recovery_point,
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
            hw_checkpointed: Mutex::new(hw_file.unwrap_or(-1)),
        };
        Ok((log, opened.report))
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    fn active(&self) -> Result<Arc<Segment>> {
        self.snapshot()
            .last()
            .cloned()
            .ok_or_else(|| Error::InvalidBatch("log has no active segment".into()))
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// fdatasyncs a segment; a failure poisons the log.
    fn fsync_segment(&self, seg: &Segment) -> Result<()> {
        if let Err(e) = seg.sync_data() {
            self.poisoned.store(true, Ordering::Release);
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; log poisoned until restart");
            return Err(e);
        }
        Ok(())
    }

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
        let checks = w.producers.check_all(&producer_batches)?;
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
        for (pb, (_, header)) in producer_batches.iter().zip(placed) {
            if let Some(pb) = pb {
                w.producers
                    .record(pb, header.base_offset, header.last_offset());
            }
        }
        self.log_end.store(next, Ordering::Release);
        Ok(())
    }

    /// The epoch of the newest data: the latest epoch entry starting below
    /// the log end (a new leader's entry at the log end holds no data yet).
    fn data_epoch(&self) -> Option<i32> {
        let end = self.log_end.load(Ordering::Acquire);
        self.epochs.read().epoch_at(end - 1).map(|e| e.epoch)
    }

    /// Closes the active segment (indexes written, data fsynced) and starts a
    /// new one at `new_base`. Caller holds the append lock.
    fn roll(&self, w: &mut WriterState, new_base: i64) -> Result<()> {
        let old = self.active()?;
        if old.is_empty() {
            return Ok(());
        }
        old.write_indexes()?;
        self.fsync_segment(&old)?;
        let seg = Arc::new(Segment::create(&self.dir, new_base)?);
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
        let end = self.log_end.load(Ordering::Acquire);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::Acquire);
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        let limit = max_offset.min(end);
        let mut parts: Vec<Bytes> = Vec::new();
        if offset < limit {
            let first = segs
                .partition_point(|s| s.base_offset <= offset)
                .saturating_sub(1);
            let mut at = offset;
            let mut taken = 0usize;
            // A read goes on into the next segments while the byte budget
            // allows, so a segment boundary (a roll) does not shorten it.
            for seg in &segs[first..] {
                if at >= limit {
                    break;
                }
                let budget = max_bytes.saturating_sub(taken);
                let Some(got) = seg.read(at, budget, min_one && parts.is_empty(), limit)? else {
                    continue;
                };
                if got.bytes.is_empty() {
                    break;
                }
                taken += got.bytes.len();
                at = got.next_offset;
                parts.push(got.bytes);
                if !got.at_end {
                    break;
                }
            }
        }
        let records = match parts.len() {
            0 => Bytes::new(),
            1 => parts.swap_remove(0),
            _ => {
                let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for p in &parts {
                    all.extend_from_slice(p);
                }
                all.freeze()
            }
        };
        Ok(ReadResult {
            records,
            log_end_offset: end,
            log_start_offset: start,
        })
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
    fn on_log_start_moved(&self, start: i64) -> Result<()> {
        self.high_watermark.fetch_max(start, Ordering::SeqCst);
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
                tracing::warn!(file = %seg.log_path.display(), error = %e, "could not delete segment files");
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
            let seg = Arc::new(Segment::create(&self.dir, offset.max(0))?);
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
        w.producers = recovery::rebuild_producers(&self.snapshot())?;
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
    fn reset_locked(&self, w: &mut WriterState, offset: i64) -> Result<()> {
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
        let seg = Arc::new(Segment::create(&self.dir, offset)?);
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
        Ok(())
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

    /// The leader epoch cache, oldest first: each epoch and the first offset
    /// written under it (strictly increasing in both).
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs.read().entries().to_vec()
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
        active.write_indexes()?;
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

    /// True after a failed fsync: writes are refused until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// The timestamp retention compares against: the segment's largest record
/// timestamp, or its file's modification time when it holds no timestamps.
pub(crate) fn retention_timestamp(seg: &Segment, now_ms: i64) -> i64 {
    let ts = seg.max_timestamp();
    if ts >= 0 {
        return ts;
    }
    seg.file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(now_ms)
}
