//! Transactions as the log sees them: transactional batches open a
//! transaction per producer, commit and abort markers (control batches) end
//! it; the last stable offset stops at the first open transaction and waits
//! for a marker to be below the high watermark; aborted transactions are
//! listed for read_committed fetches; all of it is rebuilt after a crash and
//! after truncation.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use runnel_log::txn_state::AbortedTxn;
use runnel_log::{Log, LogConfig};
use runnel_testkit::{control_batch, record, transactional_batch};

use crate::common::*;

fn txn(tag: &str, n: usize, pid: i64, seq: i32) -> Bytes {
    let records = (0..n)
        .map(|i| {
            let v = format!("{tag}-{i}");
            record(Some(v.as_bytes()), Some(v.as_bytes()), 0)
        })
        .collect();
    transactional_batch(records, Compression::None, pid, 0, seq)
}

fn marker(pid: i64, commit: bool) -> Bytes {
    control_batch(pid, 0, commit, 0)
}

#[test]
fn the_last_stable_offset_and_aborted_transactions_follow_the_markers_and_survive_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    log.append(batch("plain", 2, 0, Compression::None), 0, 0)
        .unwrap(); // 0-1
    log.append(txn("a", 2, 7, 0), 0, 0).unwrap(); // 2-3, producer 7
    log.append(txn("b", 1, 8, 0), 0, 0).unwrap(); // 4, producer 8
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(
        log.last_stable_offset(),
        2,
        "held at producer 7's first batch"
    );
    assert_eq!(
        log.open_transactions().into_iter().collect::<Vec<_>>(),
        vec![(7, 2), (8, 4)]
    );
    log.append(marker(7, true), 0, 0).unwrap(); // 5: commit 7
    log.append(marker(8, false), 0, 0).unwrap(); // 6: abort 8
                                                 // The markers are not below the high watermark yet: still unstable.
    assert_eq!(log.last_stable_offset(), 2);
    log.set_high_watermark(6);
    assert_eq!(
        log.last_stable_offset(),
        4,
        "producer 8's marker (6) is not replicated"
    );
    log.set_high_watermark(7);
    assert_eq!(log.last_stable_offset(), 7);
    let aborted = vec![AbortedTxn {
        producer_id: 8,
        first_offset: 4,
        last_offset: 6,
    }];
    assert_eq!(log.aborted_transactions(0, 7), aborted);
    assert_eq!(log.aborted_transactions(4, 5), aborted);
    assert!(log.aborted_transactions(7, 10).is_empty());
    assert!(log.aborted_transactions(0, 4).is_empty());
    // Producer 7 opens another; a crash (no close) rebuilds everything from the batches.
    log.append(txn("c", 1, 7, 2), 0, 0).unwrap(); // 7
    drop(log);
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.aborted_transactions(0, 10), aborted);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(
        log.open_transactions().into_iter().collect::<Vec<_>>(),
        vec![(7, 7)]
    );
    // Truncating the open transaction away (a follower catching up to a new leader) rebuilds it too.
    log.truncate_to(7).unwrap();
    assert!(log.open_transactions().is_empty());
    log.set_high_watermark(7);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(log.aborted_transactions(0, 10), aborted);
    // Truncating the abort marker leaves producer 8's transaction open again.
    log.truncate_to(6).unwrap();
    assert_eq!(
        log.open_transactions().into_iter().collect::<Vec<_>>(),
        vec![(8, 4)]
    );
    assert!(log.aborted_transactions(0, 10).is_empty());
}

#[test]
fn deleting_records_drops_aborted_transactions_below_the_log_start() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    log.append(txn("a", 2, 9, 0), 0, 0).unwrap(); // 0-1
    log.append(marker(9, false), 0, 0).unwrap(); // 2
    log.append(batch("plain", 1, 0, Compression::None), 0, 0)
        .unwrap(); // 3
    log.set_high_watermark(4);
    assert_eq!(log.aborted_transactions(0, 4).len(), 1);
    log.delete_records_before(3).unwrap();
    assert!(log.aborted_transactions(0, 4).is_empty());
    assert_eq!(log.last_stable_offset(), 4);
}

fn keyed_txn(key: &str, value: &str, pid: i64, seq: i32) -> Bytes {
    transactional_batch(
        vec![record(Some(key.as_bytes()), Some(value.as_bytes()), 0)],
        Compression::None,
        pid,
        0,
        seq,
    )
}

fn keyed(key: &str, value: &str) -> Bytes {
    runnel_testkit::encode(
        &[record(Some(key.as_bytes()), Some(value.as_bytes()), 0)],
        Compression::None,
    )
}

#[test]
fn compaction_removes_aborted_records_and_leaves_open_transactions_alone() {
    let d = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1,
        compact: true,
        delete: false,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(d.path(), config).unwrap();
    log.append(keyed("k", "committed"), 0, 0).unwrap(); // 0
    log.append(keyed_txn("k", "aborted", 9, 0), 0, 0).unwrap(); // 1
    log.append(marker(9, false), 0, 0).unwrap(); // 2
    log.maybe_roll(i64::MAX / 4).unwrap();
    log.append(keyed_txn("k", "open", 10, 0), 0, 0).unwrap(); // 3, undecided
    log.maybe_roll(i64::MAX / 4).unwrap();
    log.append(keyed("other", "x"), 0, 0).unwrap(); // 4, active segment
    log.set_high_watermark(log.log_end_offset());
    log.compact_forced(0).unwrap();
    let (records, _) = crate::compaction::read_records(&log);
    let data: Vec<(i64, String, Option<String>)> = records
        .into_iter()
        .filter(|r| r.offset != 2) // the abort marker, kept
        .map(|r| (r.offset, r.key, r.value))
        .collect();
    // The aborted value neither stays nor hides the committed one; the open
    // transaction's segment is not cleaned.
    assert_eq!(
        data,
        vec![
            (0, "k".to_string(), Some("committed".to_string())),
            (3, "k".to_string(), Some("open".to_string())),
            (4, "other".to_string(), Some("x".to_string())),
        ]
    );
    assert_eq!(
        log.open_transactions().into_iter().collect::<Vec<_>>(),
        vec![(10, 3)]
    );
}

#[test]
fn compaction_removes_a_marker_once_its_transaction_has_no_records_and_it_is_old_enough() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), marker_config()).unwrap();
    log.append(keyed_txn("k", "old", 9, 0), 0, 0).unwrap(); // 0, committed below
    log.append(control_batch(9, 0, true, 100), 0, 0).unwrap(); // 1
    log.append(keyed_txn("j", "aborted", 11, 0), 0, 0).unwrap(); // 2
    log.append(control_batch(11, 0, false, 100), 0, 0).unwrap(); // 3
    log.append(keyed_txn("m", "kept", 12, 0), 0, 0).unwrap(); // 4, stays
    log.append(control_batch(12, 0, true, 100), 0, 0).unwrap(); // 5
    log.append(control_batch(13, 0, true, 100), 0, 0).unwrap(); // 6, no records at all
    log.maybe_roll(i64::MAX / 4).unwrap();
    log.append(keyed("k", "new"), 0, 0).unwrap(); // 7, supersedes offset 0
    log.maybe_roll(i64::MAX / 4).unwrap();
    log.append(keyed("other", "x"), 0, 0).unwrap(); // 8, active segment
    log.set_high_watermark(log.log_end_offset());
    let offsets = |log: &Log| -> Vec<i64> {
        let (records, _) = crate::compaction::read_records(log);
        records.into_iter().map(|r| r.offset).collect()
    };

    // Younger than delete.retention.ms: every marker stays; the superseded and
    // the aborted records go.
    let first = log.compact_forced(1_000).unwrap();
    assert_eq!(first.markers_removed, 0);
    assert_eq!(offsets(&log), vec![1, 3, 4, 5, 6, 7, 8]);

    // Old enough: the markers of transactions without records left go (1 and
    // 3 lost theirs in the first pass, 6 never had any; the kept markers'
    // expiry makes this pass due without new dirty data); 5 stays with its record.
    let second = log.compact(10_000).unwrap();
    assert!(second.cleaned, "a pass is due for the markers");
    assert_eq!(second.markers_removed, 3);
    assert_eq!(offsets(&log), vec![4, 5, 7, 8]);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());

    // Reopened, the transaction state rebuilt from what is left agrees.
    drop(log);
    let (log, _) = Log::open(d.path(), marker_config()).unwrap();
    assert!(log.open_transactions().is_empty());
    assert!(log.aborted_transactions(0, 9).is_empty());
    assert_eq!(offsets(&log), vec![4, 5, 7, 8]);
}

/// A compacted log whose tombstones and markers may go after one second.
fn marker_config() -> LogConfig {
    LogConfig {
        segment_ms: 1,
        compact: true,
        delete: false,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}
