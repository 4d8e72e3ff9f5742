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

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Errors returned by the log. Each carries the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file. `ENOSPC` surfaces here (the failed append
    /// is rolled back and the log stays writable).
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A previous fsync failed; the log refuses writes until it is reopened.
    #[error("log {dir} is poisoned after a failed fsync; restart required")]
    Poisoned { dir: PathBuf },
    /// The input is not a valid magic-v2 record batch sequence.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A batch's CRC does not match its contents.
    #[error("corrupt record batch: crc mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CorruptBatch { stored: u32, computed: u32 },
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: usize, max: usize },
    /// Requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// Idempotent producer: sequence gap.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    /// Idempotent producer: epoch older than the one already seen.
    #[error("producer {producer_id} epoch {got} is older than {current}")]
    InvalidProducerEpoch { producer_id: i64, current: i16, got: i16 },
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
        }
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
    _private: (),
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, running crash recovery:
    /// batches after the last recovery checkpoint (and always the active
    /// segment) are CRC-checked, a torn or corrupt tail is truncated, missing
    /// or damaged indexes are rebuilt, idempotent-producer state is restored.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, RecoveryReport)> {
        let _ = (dir, config);
        todo!("implemented by the log engine")
    }

    /// Appends one or more magic-v2 batches (the `records` field of a produce
    /// request). Validates framing, magic and CRC of every batch and the size
    /// against `max_message_bytes` before writing anything; assigns offsets;
    /// writes `partition_leader_epoch`; checks idempotent-producer sequences.
    /// Data is written (page cache) but not fsynced: call [`Log::sync`].
    /// `now_ms` is the broker clock (LogAppendTime, segment.ms).
    pub fn append(&self, records: Bytes, partition_leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        let _ = (records, partition_leader_epoch, now_ms);
        todo!()
    }

    /// Group commit: returns once every byte up to `offset` (exclusive end
    /// offset, i.e. `last_offset + 1`) is fsynced. Concurrent callers share one
    /// fsync: a caller whose offset is already covered returns at once. A
    /// failed fsync poisons the log. Blocking: call from `spawn_blocking`.
    pub fn sync(&self, offset: i64) -> Result<()> {
        let _ = offset;
        todo!()
    }

    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes`; when `min_one` is true the first batch is returned even if
    /// larger than `max_bytes`. Only offsets below `max_offset` (exclusive; the
    /// high watermark) are returned. `offset == log_end_offset` gives empty records.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool, max_offset: i64) -> Result<ReadResult> {
        let _ = (offset, max_bytes, min_one, max_offset);
        todo!()
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, with that
    /// record's timestamp; `None` when no such record exists.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let _ = timestamp_ms;
        todo!()
    }

    /// The largest timestamp in the log and the offset of the record holding it
    /// (ListOffsets MAX_TIMESTAMP, -3); `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        todo!()
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        todo!()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (records below
    /// become unreadable; whole segments below it are deleted). Returns the new
    /// log start offset. `offset` above the log end offset is OffsetOutOfRange.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let _ = offset;
        todo!()
    }

    /// Applies `retention.ms` and `retention.bytes` by deleting whole closed
    /// segments (never the active one). Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let _ = now_ms;
        todo!()
    }

    /// Rolls the active segment if `segment.ms` has elapsed (called periodically).
    pub fn maybe_roll(&self, now_ms: i64) -> Result<()> {
        let _ = now_ms;
        todo!()
    }

    /// Removes every record at or after `offset` (used by replication later and tests).
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let _ = offset;
        todo!()
    }

    /// Replaces the config (alter configs at runtime).
    pub fn set_config(&self, config: LogConfig) {
        let _ = config;
        todo!()
    }

    /// Fsyncs everything, writes indexes and the recovery checkpoint (clean shutdown).
    pub fn close(&self) -> Result<()> {
        todo!()
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        todo!()
    }
}
