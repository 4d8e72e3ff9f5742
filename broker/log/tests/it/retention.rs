//! Retention by size and time, and DeleteRecords.

use kafka_protocol::records::Compression;
use runnel_log::{Error, Log, LogConfig};

use crate::common::*;

fn filled(dir: &std::path::Path, cfg: LogConfig, batches: i64) -> Log {
    let (log, _) = Log::open(dir, cfg).unwrap();
    for i in 0..batches {
        log.append(
            batch(&format!("b{i}"), 2, 1000 * (i + 1), Compression::None),
            0,
            0,
        )
        .unwrap();
    }
    log
}

#[test]
fn retention_bytes_deletes_oldest_closed_segments() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("b0", 2, 0, Compression::None).len() as u64;
    // Two batches per segment; 9 batches -> 5 segments (last holds one).
    let cfg = LogConfig {
        retention_bytes: (one * 4) as i64,
        ..small_config(one * 2)
    };
    let log = filled(d.path(), cfg, 9);
    assert_eq!(log.segment_count(), 5);
    let deleted = log.apply_retention(0).unwrap();
    // 9 batches, keep >= 4: delete two segments (4 batches), leaving 5 batches.
    assert_eq!(deleted, 2);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.log_start_offset(), 8);
    assert!(matches!(
        log.read(0, 100, true, i64::MAX),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 8).len(), 10);
    assert!(!d.path().join("00000000000000000000.log").exists());
    assert!(!d.path().join("00000000000000000000.index").exists());
    assert_eq!(log.size_bytes(), one * 5);
    drop(log);
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(log.log_start_offset(), 8);
}

#[test]
fn retention_ms_deletes_segments_whose_newest_record_is_too_old() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("b0", 2, 0, Compression::None).len() as u64;
    let cfg = LogConfig {
        retention_ms: 5000,
        ..small_config(one * 2)
    };
    // Batch i has timestamps 1000*(i+1) and +1; segment k holds batches 2k, 2k+1.
    let log = filled(d.path(), cfg, 6);
    assert_eq!(log.segment_count(), 3);
    // Segment 0's newest timestamp is 2001: expired at now > 7001.
    assert_eq!(log.apply_retention(7001).unwrap(), 0);
    assert_eq!(log.apply_retention(7002).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 4);
    // Everything expired: the active segment stays.
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 8);
    assert_eq!(read_all(&log, 8).len(), 4);
}

#[test]
fn an_empty_expired_active_segment_is_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 0,
        retention_bytes: 0,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(d.path(), cfg).unwrap();
    assert_eq!(log.apply_retention(i64::MAX / 2).unwrap(), 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn delete_records_moves_log_start_and_survives_reopen() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("b0", 2, 0, Compression::None).len() as u64;
    let log = filled(d.path(), small_config(one * 2), 6);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.delete_records_before(5).unwrap(), 5);
    // Segment 0 (offsets 0..4) is wholly below 5 and gone; segment 1 holds 4..8.
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_start_offset(), 5);
    assert!(matches!(
        log.read(4, 100, true, i64::MAX),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.delete_records_before(3).unwrap(),
        5,
        "never moves backwards"
    );
    assert!(matches!(
        log.delete_records_before(13),
        Err(Error::OffsetOutOfRange { .. })
    ));
    drop(log);
    let (log, _) = Log::open(d.path(), small_config(one * 2)).unwrap();
    assert_eq!(log.log_start_offset(), 5);
    // Offset 5 is inside batch 4..5: the whole batch is returned.
    let r = log.read(5, 1, true, i64::MAX).unwrap();
    assert_eq!(decode_values(&r.records)[0].0, 4);
}

#[test]
fn delete_records_up_to_the_end_keeps_the_end_offset() {
    let d = tempfile::tempdir().unwrap();
    let log = filled(d.path(), small_config(1 << 20), 3);
    assert_eq!(log.delete_records_before(6).unwrap(), 6);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(6, 100, true, i64::MAX).unwrap().records.is_empty());
    assert_eq!(
        log.append(batch("n", 1, 0, Compression::None), 0, 0)
            .unwrap()
            .base_offset,
        6
    );
    drop(log);
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 7));
}
