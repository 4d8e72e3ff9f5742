//! Batches that pass the CRC check (anyone can compute one) but announce
//! more than they hold: reading them back must be an error, never an abort.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use runnel_log::{Error, Log, LogConfig};

use crate::common::*;

const RECORD_COUNT: usize = 57;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;

/// `batch` with its record count replaced and the CRC recomputed.
fn with_record_count(batch: &Bytes, record_count: i32) -> Bytes {
    let mut b = batch.to_vec();
    b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES..]);
    b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A valid gzip batch of one record holding 64 MiB of zeros (about 64 KiB on disk).
fn gzip_bomb() -> Bytes {
    producer_value_batch(vec![0; 64 << 20], Compression::Gzip)
}

fn producer_value_batch(value: Vec<u8>, compression: Compression) -> Bytes {
    let record = runnel_testkit::record(Some(b"bomb"), Some(&value), 50);
    runnel_testkit::encode(&[record], compression)
}

/// A log that accepts the hostile batches (no keys check), switched to
/// compaction once they are in it, with everything in closed segments.
fn compacted_log_holding(dir: &std::path::Path, hostile: Bytes) -> Log {
    let config = LogConfig {
        segment_ms: 1,
        compact: false,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir, config.clone()).unwrap();
    log.append(batch("a", 5, 10, Compression::None), 0, 0)
        .unwrap();
    log.append(hostile, 0, 0).unwrap();
    log.append(batch("b", 5, 20, Compression::None), 0, 0)
        .unwrap();
    log.set_config(LogConfig {
        compact: true,
        delete: false,
        ..config
    });
    log.maybe_roll(i64::MAX / 4).unwrap();
    log
}

fn assert_undecodable(result: runnel_log::Result<impl std::fmt::Debug>, why: &str) {
    match result {
        Err(Error::InvalidBatch(msg)) => assert!(msg.contains(why), "{msg}"),
        other => panic!("expected an undecodable batch ({why}), got {other:?}"),
    }
}

#[test]
fn compaction_refuses_a_batch_announcing_i32_max_records_without_aborting() {
    let d = tempfile::tempdir().unwrap();
    let forged = with_record_count(&batch("x", 3, 15, Compression::Snappy), i32::MAX);
    let log = compacted_log_holding(d.path(), forged);
    let size = log.size_bytes();
    assert_undecodable(log.compact_forced(1_000), "record count 2147483647");
    // The pass changed nothing and the log still reads (as bytes: decoding
    // them with kafka-protocol's decoder is what used to abort).
    assert_eq!(log.size_bytes(), size);
    let read = log.read(0, 1 << 20, true, 13).unwrap();
    assert_eq!(read.records.len() as u64, size);
}

#[test]
fn compaction_refuses_a_compression_bomb_without_aborting() {
    let d = tempfile::tempdir().unwrap();
    let log = compacted_log_holding(d.path(), gzip_bomb());
    assert_undecodable(log.compact_forced(1_000), "decompress to more than");
    assert_eq!(log.log_end_offset(), 11);
}

#[test]
fn a_compacted_log_refuses_hostile_appends() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compact: true,
        delete: false,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(d.path(), config).unwrap();
    let forged = with_record_count(&batch("x", 3, 15, Compression::Lz4), i32::MAX);
    assert_undecodable(log.append(forged, 0, 0), "record count");
    assert_undecodable(log.append(gzip_bomb(), 0, 0), "decompress to more than");
    assert_eq!(log.log_end_offset(), 0);
    // A highly compressible batch within the expansion limit is fine.
    let big = producer_value_batch(vec![7; 8 << 20], Compression::Zstd);
    assert!(big.len() < 1 << 20);
    log.append(big, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn timestamp_lookups_refuse_hostile_batches_without_aborting() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    log.append(batch("a", 3, 10, Compression::None), 0, 0)
        .unwrap();
    let forged = with_record_count(&batch("x", 3, 1000, Compression::Zstd), i32::MAX);
    log.append(forged, 0, 0).unwrap();
    assert_eq!(log.offset_for_timestamp(10).unwrap(), Some((0, 10)));
    assert_undecodable(log.offset_for_timestamp(500), "record count");
    assert_undecodable(log.max_timestamp(), "record count");

    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    log.append(gzip_bomb(), 0, 0).unwrap();
    assert_undecodable(log.offset_for_timestamp(0), "decompress to more than");
}
