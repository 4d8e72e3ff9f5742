//! Append/read round trips, read limits and validation.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use runnel_log::{Error, Log, LogConfig, TimestampType};

use crate::common::*;

#[test]
fn append_then_read_returns_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    let a = log
        .append(batch("a", 3, 1000, Compression::None), 0, 5000)
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 2, false));
    let b = log
        .append(batch("b", 2, 2000, Compression::Gzip), 0, 5000)
        .unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.log_start_offset(), 0);
    let got = read_all(&log, 0);
    let want: Vec<(i64, String)> = vec![(0, "a-0"), (1, "a-1"), (2, "a-2"), (3, "b-0"), (4, "b-1")]
        .into_iter()
        .map(|(o, s)| (o, s.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn stored_bytes_differ_from_input_only_in_base_offset_and_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(batch("x", 4, 10, Compression::None), 7, 0)
        .unwrap();
    let input = batch("y", 3, 20, Compression::Gzip);
    log.append(input.clone(), 9, 0).unwrap();
    let r = log.read(4, 1 << 20, true, i64::MAX).unwrap();
    let stored = r.records;
    assert_eq!(stored.len(), input.len());
    assert_eq!(&stored[0..8], &4i64.to_be_bytes());
    assert_eq!(&stored[8..12], &input[8..12]);
    assert_eq!(&stored[12..16], &9i32.to_be_bytes());
    assert_eq!(&stored[16..], &input[16..]);
}

#[test]
fn reading_an_offset_inside_a_batch_returns_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small_config(1 << 20)).unwrap();
    for i in 0..50 {
        log.append(batch(&format!("b{i}"), 10, 0, Compression::None), 0, 0)
            .unwrap();
    }
    for offset in [0, 5, 9, 10, 255, 499] {
        let r = log.read(offset, 1, true, i64::MAX).unwrap();
        let recs = decode_values(&r.records);
        assert_eq!(recs.len(), 10, "one whole batch for offset {offset}");
        assert_eq!(recs[0].0, offset / 10 * 10);
        assert_eq!(recs[0].1, format!("b{}-0", offset / 10));
    }
}

#[test]
fn read_honours_max_bytes_min_one_and_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    let one = batch("a", 5, 0, Compression::None);
    let size = one.len();
    for _ in 0..4 {
        log.append(one.clone(), 0, 0).unwrap();
    }
    // Exactly two batches fit.
    let r = log.read(0, size * 2 + size / 2, false, i64::MAX).unwrap();
    assert_eq!(r.records.len(), size * 2);
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 20));
    // Too small without min_one: nothing; with min_one: the first batch.
    assert!(log
        .read(0, size - 1, false, i64::MAX)
        .unwrap()
        .records
        .is_empty());
    assert_eq!(log.read(0, 1, true, i64::MAX).unwrap().records.len(), size);
    // max_offset excludes any batch whose last offset is at or above it.
    assert_eq!(
        log.read(0, 1 << 20, true, 10).unwrap().records.len(),
        size * 2
    );
    assert_eq!(log.read(0, 1 << 20, true, 9).unwrap().records.len(), size);
    assert!(log.read(0, 1 << 20, true, 4).unwrap().records.is_empty());
    // At the end: empty; past the end or before the start: out of range.
    assert!(log
        .read(20, 1 << 20, true, i64::MAX)
        .unwrap()
        .records
        .is_empty());
    assert!(matches!(
        log.read(21, 100, true, i64::MAX),
        Err(Error::OffsetOutOfRange {
            offset: 21,
            start: 0,
            end: 20
        })
    ));
    assert!(matches!(
        log.read(-1, 100, true, i64::MAX),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn corrupt_or_malformed_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(batch("ok", 2, 0, Compression::None), 0, 0)
        .unwrap();
    let size_before = log.size_bytes();

    let good = batch("g", 2, 0, Compression::None);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    // A valid batch followed by a corrupt one: the whole append is refused.
    let mut two = good.to_vec();
    two.extend_from_slice(&bad);
    assert!(matches!(
        log.append(Bytes::from(two), 0, 0),
        Err(Error::CorruptBatch { .. })
    ));
    assert!(matches!(
        log.append(Bytes::from(bad), 0, 0),
        Err(Error::CorruptBatch { .. })
    ));
    assert!(matches!(
        log.append(good.slice(..good.len() - 3), 0, 0),
        Err(Error::InvalidBatch(_))
    ));
    assert!(matches!(
        log.append(Bytes::new(), 0, 0),
        Err(Error::InvalidBatch(_))
    ));
    let mut wrong_magic = good.to_vec();
    wrong_magic[16] = 1;
    assert!(matches!(
        log.append(Bytes::from(wrong_magic), 0, 0),
        Err(Error::InvalidBatch(_))
    ));

    assert_eq!(log.size_bytes(), size_before);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(read_all(&log, 0).len(), 2);
}

#[test]
fn batch_over_max_message_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch("big", 20, 0, Compression::None);
    let cfg = LogConfig {
        max_message_bytes: b.len() - 1,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), cfg.clone()).unwrap();
    assert!(matches!(
        log.append(b.clone(), 0, 0),
        Err(Error::BatchTooLarge { .. })
    ));
    assert_eq!(log.size_bytes(), 0);
    log.set_config(LogConfig {
        max_message_bytes: b.len(),
        ..cfg
    });
    log.append(b, 0, 0).unwrap();
}

#[test]
fn multiple_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut both = batch("a", 3, 0, Compression::None).to_vec();
    both.extend_from_slice(&batch("b", 4, 0, Compression::Gzip));
    let info = log.append(Bytes::from(both), 0, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 6));
    let got: Vec<i64> = read_all(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(got, (0..7).collect::<Vec<_>>());
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), cfg).unwrap();
    let info = log
        .append(batch("a", 3, 1000, Compression::None), 0, 777_000)
        .unwrap();
    assert_eq!(info.log_append_time, 777_000);
    let r = log.read(0, 1 << 20, true, i64::MAX).unwrap();
    let mut b = r.records.clone();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut b).unwrap();
    let rec = &sets[0].records[0];
    assert_eq!(
        rec.timestamp_type,
        kafka_protocol::records::TimestampType::LogAppend
    );
    // The decoder verified the recomputed CRC; maxTimestamp is the append time.
    assert_eq!(&r.records[35..43], &777_000i64.to_be_bytes());
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), Some((0, 777_000)));
}
