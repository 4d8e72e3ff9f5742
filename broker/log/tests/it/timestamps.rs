//! Reads by timestamp and the max timestamp.

use kafka_protocol::records::Compression;
use runnel_log::Log;

use crate::common::*;

#[test]
fn offset_for_timestamp_finds_the_exact_record_in_compressed_and_plain_batches() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("x", 10, 0, Compression::Gzip).len() as u64;
    let (log, _) = Log::open(d.path(), small_config(one * 3)).unwrap();
    // Batch i: offsets 10i..10i+9, timestamps 1000i .. 1000i+9.
    for i in 0..10i64 {
        let c = if i % 2 == 0 {
            Compression::Gzip
        } else {
            Compression::None
        };
        log.append(batch(&format!("b{i}"), 10, 1000 * i, c), 0, 0)
            .unwrap();
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(4005).unwrap(), Some((45, 4005)));
    assert_eq!(log.offset_for_timestamp(5005).unwrap(), Some((55, 5005)));
    // Between batches: the first record of the next batch.
    assert_eq!(log.offset_for_timestamp(6010).unwrap(), Some((70, 7000)));
    assert_eq!(log.offset_for_timestamp(9009).unwrap(), Some((99, 9009)));
    assert_eq!(log.offset_for_timestamp(9010).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((9009, 99)));
    // Survives reopen (time index rebuilt or loaded).
    log.close().unwrap();
    drop(log);
    let (log, _) = Log::open(d.path(), small_config(one * 3)).unwrap();
    assert_eq!(log.offset_for_timestamp(3007).unwrap(), Some((37, 3007)));
    assert_eq!(log.max_timestamp().unwrap(), Some((9009, 99)));
}

#[test]
fn max_timestamp_points_at_the_record_holding_it() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    log.append(batch("a", 3, 500, Compression::None), 0, 0)
        .unwrap();
    log.append(batch("b", 3, 9000, Compression::Gzip), 0, 0)
        .unwrap();
    log.append(batch("c", 3, 100, Compression::None), 0, 0)
        .unwrap();
    assert_eq!(log.max_timestamp().unwrap(), Some((9002, 5)));
    // First record >= 600 is in batch b even though a later batch has older timestamps.
    assert_eq!(log.offset_for_timestamp(600).unwrap(), Some((3, 9000)));
}

#[test]
fn offset_for_timestamp_skips_records_below_the_log_start() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    log.append(batch("a", 5, 100, Compression::None), 0, 0)
        .unwrap();
    log.delete_records_before(3).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((3, 103)));
}
