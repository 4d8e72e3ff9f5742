//! Runnel's storage engine: one append-only, segmented log per partition,
//! with indexes, crash recovery, retention and compaction. There is no
//! networking here. [`Log`] is the entry point; its contract and the on-disk
//! layout of a partition directory are documented with it (`log.rs`).
//!
//! Modules:
//! - `log`: the [`Log`] type: open, reads, group commit, leader epochs, high watermark, close.
//! - `append`: leader and follower appends, segment rolls ([`AppendInfo`]).
//! - `truncation`: truncation, DeleteRecords and retention (the log's bounds moving).
//! - `compaction`: `cleanup.policy=compact` ([`CompactionReport`]).
//! - `swap`: the crash-safe replacement of a segment by its compacted copy.
//! - `recovery`: opening a directory: CRC scan, torn-tail truncation, index rebuild ([`RecoveryReport`]).
//! - `segment`: one `.log` file and its in-memory sparse indexes.
//! - `slice`: [`FileSlice`], batches as a byte range of a segment file (zero-copy reads).
//! - `files`: [`FileCache`], the broker-wide bound on open segment files.
//! - `index`: the `.index` and `.timeindex` file formats.
//! - `batch`: magic-v2 batch header parsing, validation and the broker-written fields.
//! - `checkpoint`: the small checkpoint files (recovery point, log start, cleaner, epochs, high watermark).
//! - `epoch_cache`: the leader epoch cache ([`EpochEntry`]).
//! - `producer_state`: idempotent-producer sequence tracking.
//! - `retention`: the pure retention policy (which segments to delete).
//! - `config`: [`LogConfig`] and [`TimestampType`].
//! - `error`: [`Error`] and [`Result`].
//! - [`records`]: decoding stored batches into records, with bounded decompression.
//! - [`clock`]: the one wall clock of the broker.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod append;
mod batch;
mod checkpoint;
pub mod clock;
mod compaction;
mod config;
mod epoch_cache;
mod error;
mod files;
mod index;
mod log;
mod producer_state;
pub mod records;
mod recovery;
mod retention;
mod segment;
mod slice;
mod swap;
mod truncation;
pub mod txn_state;

pub use append::AppendInfo;
pub use compaction::CompactionReport;
pub use config::{LogConfig, TimestampType};
pub use epoch_cache::EpochEntry;
pub use error::{Error, Result};
pub use files::{FileCache, DEFAULT_MAX_OPEN_FILES};
pub use log::{Log, ReadResult};
pub use producer_state::ProducerInfo;
pub use recovery::RecoveryReport;
pub use slice::{FileSlice, SliceRead};
