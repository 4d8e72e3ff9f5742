//! The log's error type: one enum whose every variant carries the context
//! needed to act on it (which file, which offset, which producer), and the
//! [`Result`] alias used across the crate.

use std::path::{Path, PathBuf};

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
    /// Records without a key were appended to a compacted log (`cleanup.policy=compact`):
    /// `records` are their indexes among the appended records (counted across batches; a
    /// produce request carries one batch per partition, so these are Kafka's batch indexes,
    /// KIP-467), never empty.
    #[error(
        "compacted topic requires a key on every record: {} of the appended records have none (indexes {})",
        records.len(),
        records.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    KeylessRecordOnCompactedTopic { records: Vec<usize> },
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
    /// A leader append under an epoch whose leadership has ended here
    /// ([`crate::Log::fence_leader_appends`]): the append was admitted while
    /// this replica led, but it stopped leading before the write.
    #[error("leadership under epoch {got} ended (appends need epoch {fence} or newer)")]
    LeadershipEnded { fence: i32, got: i32 },
    /// Idempotent producer: a sequence gap in the first batch this leader
    /// receives from the producer under its leader epoch (its last batch here
    /// was written under an earlier epoch). The missing batch is typically one
    /// the previous leader refused as it lost the leadership, still on its way
    /// back to the client's queue: the client must resend it first, so this
    /// is retriable (NOT_LEADER_OR_FOLLOWER), not OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// which makes librdkafka bump the producer epoch and resend every
    /// unacknowledged record of every partition under new sequences, the ones
    /// already stored included.
    #[error("producer {producer_id} skipped sequences at a new leader (epoch {leader_epoch}): expected {expected}, got {got}")]
    SequenceGapAtNewLeader {
        producer_id: i64,
        expected: i32,
        got: i32,
        leader_epoch: i32,
    },
}

/// Result alias for the log.
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Io`] on `path`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
