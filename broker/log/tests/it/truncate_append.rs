//! Reads after `truncate_to` followed by new appends (leader and follower):
//! one read from the log start must span the batches written after the cut,
//! before and after reopening the log.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;
use runnel_log::{Log, LogConfig};

use crate::common::*;

/// A copy of `batch` with another base offset and leader epoch (both outside the CRC).
fn placed(batch: &Bytes, base: i64, epoch: i32) -> Bytes {
    let mut b = BytesMut::from(&batch[..]);
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    b.freeze()
}

/// Two batches of one record each, values `"{tag}0-0"` and `"{tag}1-0"`, timestamps `ts0`, `ts0 + 1`.
fn two_batches(tag: &str, ts0: i64) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&batch(&format!("{tag}0"), 1, ts0, Compression::None));
    b.extend_from_slice(&batch(&format!("{tag}1"), 1, ts0 + 1, Compression::None));
    b.freeze()
}

/// Everything a single read from offset 0 returns, with no byte or offset limit.
fn one_read_from_start(log: &Log) -> Vec<(i64, String)> {
    decode_values(&log.read(0, usize::MAX, true, i64::MAX).unwrap().records)
}

fn values(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|&(o, v)| (o, v.to_string())).collect()
}

/// Checks one read from 0, batch-by-batch reads, reads from every offset and
/// timestamp lookups against `expected` (one record per batch, timestamps `ts(i)`).
fn assert_log_holds(log: &Log, expected: &[(i64, String)], ts: impl Fn(i64) -> i64) {
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    assert_eq!(one_read_from_start(log), expected, "one read from offset 0");
    assert_eq!(read_all(log, 0), expected, "batch-by-batch reads");
    for (i, want) in expected.iter().enumerate() {
        let got = decode_values(
            &log.read(i as i64, usize::MAX, true, i64::MAX)
                .unwrap()
                .records,
        );
        assert_eq!(got, expected[i..], "one read from offset {}", want.0);
        assert_eq!(
            log.offset_for_timestamp(ts(i as i64)).unwrap(),
            Some((i as i64, ts(i as i64))),
            "timestamp lookup of offset {i}"
        );
    }
}

fn config() -> LogConfig {
    // A tiny index interval, so every batch gets index entries that truncation must cut.
    LogConfig {
        index_interval_bytes: 1,
        ..small_config(1 << 20)
    }
}

#[test]
fn a_read_spans_batches_appended_after_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    log.append(two_batches("a", 100), 1, 0).unwrap();
    log.append(two_batches("b", 102), 1, 0).unwrap();
    log.truncate_to(2).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    let info = log
        .append_as_follower(placed(&batch("f", 1, 200, Compression::None), 2, 2))
        .unwrap();
    assert_eq!(info.base_offset, 2);
    let expected = values(&[(0, "a0-0"), (1, "a1-0"), (2, "f-0")]);
    let ts = |o: i64| if o < 2 { 100 + o } else { 200 };
    assert_log_holds(&log, &expected, ts);
    drop(log);
    let (log, report) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_log_holds(&log, &expected, ts);
}

#[test]
fn a_read_spans_batches_appended_by_the_leader_after_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), config()).unwrap();
    log.append(two_batches("a", 100), 1, 0).unwrap();
    log.append(two_batches("b", 102), 1, 0).unwrap();
    // Offset 3 is where the fourth batch starts.
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    let info = log.append(two_batches("c", 200), 2, 0).unwrap();
    assert_eq!(info.base_offset, 3);
    let expected = values(&[
        (0, "a0-0"),
        (1, "a1-0"),
        (2, "b0-0"),
        (3, "c0-0"),
        (4, "c1-0"),
    ]);
    let ts = |o: i64| if o < 3 { 100 + o } else { 197 + o };
    assert_log_holds(&log, &expected, ts);
    drop(log);
    let (log, report) = Log::open(dir.path(), config()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_log_holds(&log, &expected, ts);
}

#[test]
fn a_read_spans_batches_appended_after_a_truncation_across_a_segment_roll() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("a0", 1, 0, Compression::None).len() as u64;
    // Two batches per segment.
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..small_config(one * 2)
    };
    let (log, _) = Log::open(dir.path(), cfg.clone()).unwrap();
    log.append(two_batches("a", 100), 1, 0).unwrap();
    log.append(two_batches("b", 102), 1, 0).unwrap();
    log.append(two_batches("c", 104), 1, 0).unwrap();
    assert_eq!(log.segment_count(), 3);
    // Cut inside the second segment, then append enough to roll again.
    log.truncate_to(3).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append_as_follower(placed(&batch("f", 1, 200, Compression::None), 3, 2))
        .unwrap();
    log.append(two_batches("g", 201), 2, 0).unwrap();
    assert!(log.segment_count() >= 3);
    let expected = values(&[
        (0, "a0-0"),
        (1, "a1-0"),
        (2, "b0-0"),
        (3, "f-0"),
        (4, "g0-0"),
        (5, "g1-0"),
    ]);
    let ts = |o: i64| if o < 3 { 100 + o } else { 197 + o };
    assert_log_holds(&log, &expected, ts);
    drop(log);
    let (log, report) = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_log_holds(&log, &expected, ts);
}

#[test]
fn a_read_across_segments_never_skips_a_batch_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let small = batch("s", 1, 0, Compression::None);
    let (log, _) = Log::open(dir.path(), small_config(small.len() as u64 * 3)).unwrap();
    // Mixed sizes: small and large batches across several segments.
    let mut expected = Vec::new();
    for i in 0..8i64 {
        let n = if i % 3 == 1 { 4 } else { 1 };
        let tag = format!("x{i}");
        let info = log
            .append(batch(&tag, n, 0, Compression::None), 1, 0)
            .unwrap();
        for (k, off) in (info.base_offset..=info.last_offset).enumerate() {
            expected.push((off, format!("{tag}-{k}")));
        }
    }
    assert!(log.segment_count() >= 3);
    let end = log.log_end_offset();
    let total = log.read(0, usize::MAX, true, i64::MAX).unwrap().records;
    assert_eq!(decode_values(&total), expected);
    for budget in (0usize..=800)
        .step_by(10)
        .chain([small.len(), small.len() + 1])
    {
        for (i, (from, _)) in expected.iter().enumerate() {
            let r = log.read(*from, budget, true, end).unwrap().records;
            assert!(r.len() <= budget.max(small.len() * 4), "budget {budget}");
            let got = decode_values(&r);
            // Batches come whole from the one holding `from`, with no hole.
            let first = got.iter().position(|(o, _)| o == from).unwrap();
            assert_eq!(got[first..], expected[i..i + got.len() - first]);
        }
    }
    // The high watermark bounds a read that spans segments.
    let r = log.read(0, usize::MAX, true, 5).unwrap().records;
    assert!(decode_values(&r).iter().all(|(o, _)| *o < 5));
}

#[test]
fn a_follower_append_on_the_leaders_clock_after_a_truncation_does_not_roll() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..config()
    };
    let (log, _) = Log::open(dir.path(), cfg).unwrap();
    log.append(two_batches("a", 100), 1, 10_000).unwrap();
    log.append(two_batches("b", 102), 1, 10_000).unwrap();
    log.truncate_to(2).unwrap();
    log.append_as_follower_at(placed(&batch("f", 1, 200, Compression::None), 2, 2), 10_999)
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    // Past segment.ms on the same clock, the next follower append rolls.
    log.append_as_follower_at(placed(&batch("g", 1, 201, Compression::None), 3, 2), 11_000)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
    let expected = values(&[(0, "a0-0"), (1, "a1-0"), (2, "f-0"), (3, "g-0")]);
    assert_log_holds(&log, &expected, |o| if o < 2 { 100 + o } else { 198 + o });
}
