//! Storage primitives for replication: follower appends, the leader epoch
//! cache (Kafka's LeaderEpochFileCache semantics, persistence, rebuild), the
//! high watermark and truncation.

use std::fs;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;
use runnel_log::{EpochEntry, Error, Log, LogConfig, TimestampType};

use crate::common::*;

const EPOCH_FILE: &str = "leader-epoch.checkpoint";
const HW_FILE: &str = "high-watermark.checkpoint";

/// One stored batch: base offset, last offset, partition leader epoch, bytes.
#[derive(Debug, Clone)]
struct RawBatch {
    base: i64,
    last: i64,
    epoch: i32,
    bytes: Bytes,
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Splits concatenated batches.
fn split(bytes: &Bytes) -> Vec<RawBatch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = 12 + i32_at(bytes, pos + 8) as usize;
        let b = bytes.slice(pos..pos + len);
        out.push(RawBatch {
            base: i64_at(&b, 0),
            last: i64_at(&b, 0) + i64::from(i32_at(&b, 23)),
            epoch: i32_at(&b, 12),
            bytes: b,
        });
        pos += len;
    }
    out
}

/// Every stored batch from the log start, as a follower would fetch them.
fn raw_batches(log: &Log) -> Vec<RawBatch> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, true, end).unwrap();
        if r.records.is_empty() {
            break;
        }
        let batches = split(&r.records);
        offset = batches.last().unwrap().last + 1;
        out.extend(batches);
    }
    out
}

fn concat(batches: &[RawBatch]) -> Bytes {
    let mut b = BytesMut::new();
    for x in batches {
        b.extend_from_slice(&x.bytes);
    }
    b.freeze()
}

/// A copy of `batch` with another base offset and leader epoch (both outside the CRC).
fn placed(batch: &Bytes, base: i64, epoch: i32) -> Bytes {
    let mut b = BytesMut::from(&batch[..]);
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    b.freeze()
}

fn entries(list: &[(i32, i64)]) -> Vec<EpochEntry> {
    list.iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, small_config(1 << 20)).unwrap().0
}

/// A leader log with epoch 1 at 0..9, epoch 2 at 10..19, epoch 4 at 30..34
/// (epoch 3 wrote 20..29).
fn leader_with_epochs(dir: &std::path::Path) -> Log {
    let log = open(dir);
    for (epoch, batches) in [(1, 2), (2, 2), (3, 2), (4, 1)] {
        for i in 0..batches {
            log.append(
                batch(&format!("e{epoch}-{i}"), 5, 0, Compression::None),
                epoch,
                0,
            )
            .unwrap();
        }
    }
    log
}

#[test]
fn follower_append_stores_the_leaders_batches_byte_for_byte() {
    let ld = tempfile::tempdir().unwrap();
    let leader = Log::open(
        ld.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config(1 << 20)
        },
    )
    .unwrap()
    .0;
    leader
        .append(batch("a", 3, 5, Compression::None), 1, 1000)
        .unwrap();
    leader
        .append(batch("b", 4, 5, Compression::Gzip), 1, 2000)
        .unwrap();
    leader
        .append(batch("c", 2, 5, Compression::None), 3, 3000)
        .unwrap();
    let fetched = concat(&raw_batches(&leader));

    // The follower's own config says LogAppendTime too: nothing is rewritten.
    let fd = tempfile::tempdir().unwrap();
    let follower = Log::open(
        fd.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..small_config(1 << 20)
        },
    )
    .unwrap()
    .0;
    let info = follower.append_as_follower(fetched.clone()).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 8));
    assert_eq!(info.log_append_time, -1);
    assert_eq!(follower.log_end_offset(), 9);
    assert_eq!(concat(&raw_batches(&follower)), fetched);
    assert_eq!(follower.epoch_entries(), entries(&[(1, 0), (3, 7)]));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
}

#[test]
fn follower_append_refuses_overlaps_and_out_of_order_batches_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let b = batch("x", 5, 0, Compression::None);
    log.append_as_follower(placed(&b, 0, 1)).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    // Overlap: starts below the log end.
    match log.append_as_follower(placed(&b, 3, 1)) {
        Err(Error::OffsetMismatch { expected, got }) => assert_eq!((expected, got), (5, 3)),
        other => panic!("expected OffsetMismatch, got {other:?}"),
    }
    // The second batch overlaps the first one of the same append.
    let mut two = BytesMut::from(&placed(&b, 5, 1)[..]);
    two.extend_from_slice(&placed(&b, 8, 1));
    match log.append_as_follower(two.freeze()) {
        Err(Error::OffsetMismatch { expected, got }) => assert_eq!((expected, got), (10, 8)),
        other => panic!("expected OffsetMismatch, got {other:?}"),
    }
    // A corrupt batch is refused like a produced one.
    let mut bad = BytesMut::from(&placed(&b, 5, 1)[..]);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    assert!(matches!(
        log.append_as_follower(bad.freeze()),
        Err(Error::CorruptBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(read_all(&log, 0).len(), 5);
    // A follower must not go back to an older epoch than its data.
    log.append_as_follower(placed(&b, 5, 3)).unwrap();
    match log.append_as_follower(placed(&b, 10, 2)) {
        Err(Error::StaleLeaderEpoch { latest, got }) => assert_eq!((latest, got), (3, 2)),
        other => panic!("expected StaleLeaderEpoch, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 5)]));
}

#[test]
fn follower_append_accepts_a_forward_gap_left_by_leader_compaction() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let b = batch("x", 5, 0, Compression::None);
    log.append_as_follower(placed(&b, 0, 1)).unwrap();
    let info = log.append_as_follower(placed(&b, 12, 1)).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (12, 16));
    assert_eq!(log.log_end_offset(), 17);
    let offsets: Vec<i64> = read_all(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 12, 13, 14, 15, 16]);
    drop(log);
    let log = open(d.path());
    assert_eq!(log.log_end_offset(), 17);
}

#[test]
fn follower_append_of_nothing_is_a_no_op() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    log.append_as_follower(placed(&batch("x", 2, 0, Compression::None), 0, 1))
        .unwrap();
    let info = log.append_as_follower(Bytes::new()).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (2, 1));
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.size_bytes() as usize, raw_batches(&log)[0].bytes.len());
}

#[test]
fn an_empty_follower_log_accepts_a_first_batch_straddling_its_start() {
    // The leader's log start (12) is inside its batch 10..14 (DeleteRecords);
    // the follower was restarted there and fetches that batch.
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    log.truncate_fully_and_start_at(12).unwrap();
    let b = batch("x", 5, 0, Compression::None);
    let info = log.append_as_follower(placed(&b, 10, 2)).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 14));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 15));
    assert!(matches!(
        log.read(10, 1 << 20, true, i64::MAX),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let offsets: Vec<i64> = read_all(&log, 12).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![12, 13, 14]);
    assert_eq!(log.epoch_entries(), entries(&[(2, 12)]));
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 15));
    assert_eq!(log.epoch_entries(), entries(&[(2, 12)]));
    // Once the log holds data, a straddling batch is an overlap again.
    assert!(matches!(
        log.append_as_follower(placed(&b, 13, 2)),
        Err(Error::OffsetMismatch {
            expected: 15,
            got: 13
        })
    ));
}

#[test]
fn a_new_log_has_no_epochs_and_reports_no_rebuild() {
    let d = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(log.high_watermark(), 0);
}

#[test]
fn a_follower_that_becomes_leader_detects_duplicates_of_replicated_batches() {
    let ld = tempfile::tempdir().unwrap();
    let leader = open(ld.path());
    let first = producer_batch("p", 3, 0, Compression::None, 7, 0, 0);
    let second = producer_batch("p", 2, 0, Compression::None, 7, 0, 3);
    leader.append(first.clone(), 1, 0).unwrap();
    leader.append(second.clone(), 1, 0).unwrap();
    let fd = tempfile::tempdir().unwrap();
    let follower = open(fd.path());
    follower
        .append_as_follower(concat(&raw_batches(&leader)))
        .unwrap();
    assert_eq!(follower.producer_count(), 1);
    // Promoted: the producer retries its last batch against the new leader.
    follower.assign_epoch_start(2).unwrap();
    // A stale leader's retry is fenced, not answered as a duplicate.
    assert!(matches!(
        follower.append(second.clone(), 1, 0),
        Err(Error::StaleLeaderEpoch { latest: 2, got: 1 })
    ));
    let retry = follower.append(second, 2, 0).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (3, 4));
    // A gap in the producer's first batch under the new epoch is retriable
    // (see the next test).
    assert!(matches!(
        follower.append(producer_batch("p", 1, 0, Compression::None, 7, 0, 9), 2, 0),
        Err(Error::SequenceGapAtNewLeader {
            expected: 5,
            leader_epoch: 2,
            ..
        })
    ));
    // The state also survives a reopen of the follower.
    drop(follower);
    let follower = open(fd.path());
    assert!(follower.append(first, 2, 0).unwrap().duplicate);
}

/// The interleaving behind duplicates under a rolling restart with a
/// librdkafka producer (seen in e2e/test_controlled_shutdown.py): the old
/// leader refuses the producer's batch `b` as it loses the leadership, and
/// librdkafka, which counts `b` as no longer in flight before `b` is back in
/// its queue, sends the batch after it, `c`, to the new leader first. Kafka
/// answers `c` with OUT_OF_ORDER_SEQUENCE_NUMBER, on which librdkafka bumps
/// the producer epoch and resends every unacknowledged record of every
/// partition under new sequences: records of other partitions that are
/// stored but were answered NOT_LEADER_OR_FOLLOWER by their old leader are
/// then stored twice. A retriable answer makes it resend `b`, then `c`.
#[test]
fn a_gap_in_a_producers_first_batch_at_a_new_leader_is_retriable() {
    let ld = tempfile::tempdir().unwrap();
    let leader = open(ld.path());
    let a = producer_batch("a", 3, 0, Compression::None, 7, 0, 0);
    let b = producer_batch("b", 2, 0, Compression::None, 7, 0, 3);
    let c = producer_batch("c", 1, 0, Compression::None, 7, 0, 5);
    leader.append(a, 1, 0).unwrap();
    let fd = tempfile::tempdir().unwrap();
    let follower = open(fd.path());
    follower
        .append_as_follower(concat(&raw_batches(&leader)))
        .unwrap();
    follower.assign_epoch_start(2).unwrap();
    assert!(matches!(
        follower.append(c.clone(), 2, 0),
        Err(Error::SequenceGapAtNewLeader {
            producer_id: 7,
            expected: 3,
            got: 5,
            leader_epoch: 2
        })
    ));
    assert_eq!(follower.log_end_offset(), 3, "nothing written");
    // The client resends `b`, then `c`: both are new.
    assert_eq!(follower.append(b, 2, 0).unwrap().base_offset, 3);
    assert_eq!(follower.append(c, 2, 0).unwrap().base_offset, 5);
    // Once the producer has written under this epoch, a gap is out of order, as in Kafka.
    assert!(matches!(
        follower.append(producer_batch("d", 1, 0, Compression::None, 7, 0, 9), 2, 0),
        Err(Error::OutOfOrderSequence {
            expected: 6,
            got: 9,
            ..
        })
    ));
    // So is a new producer epoch that does not start at sequence 0, and a rewind.
    assert!(matches!(
        follower.append(producer_batch("e", 1, 0, Compression::None, 7, 1, 6), 2, 0),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    let fd2 = tempfile::tempdir().unwrap();
    let other = open(fd2.path());
    other
        .append_as_follower(concat(&raw_batches(&leader)))
        .unwrap();
    other.assign_epoch_start(2).unwrap();
    assert!(matches!(
        other.append(producer_batch("r", 1, 0, Compression::None, 7, 0, 1), 2, 0),
        Err(Error::OutOfOrderSequence {
            expected: 3,
            got: 1,
            ..
        })
    ));
}

/// The interleaving behind a duplicate seen under a rolling restart: the old
/// leader admits a produce, then stops leading and truncates to the new
/// leader's epoch end before that append reaches its log. Without the fence
/// the append lands under the old epoch after the truncation, the follower
/// then fetches the new leader's copy of the same record after it, and its
/// log holds the record twice (and lacks what the new leader has there).
#[test]
fn a_leader_append_admitted_before_the_leadership_ended_is_refused_after_it() {
    let d = tempfile::tempdir().unwrap();
    let old = open(d.path());
    let w = producer_batch("w", 1, 0, Compression::None, 7, 0, 0);
    let x = producer_batch("x", 1, 0, Compression::None, 7, 0, 1);
    old.append(w.clone(), 1, 0).unwrap();
    // Epoch 1 ends here: the new leader (epoch 2) did not get `w`.
    old.fence_leader_appends(2);
    old.truncate_to(0).unwrap();
    // The produce of `x`, admitted under epoch 1, reaches the log now.
    assert!(matches!(
        old.append(x.clone(), 1, 0),
        Err(Error::LeadershipEnded { fence: 2, got: 1 })
    ));
    assert_eq!(old.log_end_offset(), 0);
    // The new leader took both retries; the follower copies them.
    let nd = tempfile::tempdir().unwrap();
    let new = open(nd.path());
    new.assign_epoch_start(2).unwrap();
    new.append(w, 2, 0).unwrap();
    new.append(x, 2, 0).unwrap();
    old.append_as_follower(concat(&raw_batches(&new))).unwrap();
    let held: Vec<i64> = raw_batches(&old).iter().map(|b| b.base).collect();
    assert_eq!(held, vec![0, 1]);
    assert_eq!(
        concat(&raw_batches(&old)),
        concat(&raw_batches(&new)),
        "the follower holds exactly the new leader's log"
    );
    // A fence never goes down, and a later leadership appends at its own epoch.
    old.fence_leader_appends(1);
    old.assign_epoch_start(3).unwrap();
    let y = producer_batch("y", 1, 0, Compression::None, 7, 0, 2);
    assert!(matches!(
        old.append(y.clone(), 2, 0),
        Err(Error::StaleLeaderEpoch { latest: 3, got: 2 })
    ));
    assert_eq!(old.append(y, 3, 0).unwrap().base_offset, 2);
}

#[test]
fn end_offset_for_epoch_follows_kafka_semantics() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    assert_eq!(
        log.epoch_entries(),
        entries(&[(1, 0), (2, 10), (3, 20), (4, 30)])
    );
    assert_eq!(log.latest_epoch(), Some(4));
    // Latest epoch: the log end offset.
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 35)));
    // Older epoch: the start of the next one.
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 30)));
    // Unknown epochs.
    assert_eq!(log.end_offset_for_epoch(5), None);
    assert_eq!(log.end_offset_for_epoch(-1), None);

    // Gaps in epochs (2, 5, 9): a requested epoch between known ones, and
    // one below all known.
    let d2 = tempfile::tempdir().unwrap();
    let log = open(d2.path());
    for epoch in [2, 5, 9] {
        log.append(batch("x", 4, 0, Compression::None), epoch, 0)
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), entries(&[(2, 0), (5, 4), (9, 8)]));
    assert_eq!(log.end_offset_for_epoch(6), Some((5, 8)));
    assert_eq!(log.end_offset_for_epoch(4), Some((2, 4)));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 0)));
    assert_eq!(log.end_offset_for_epoch(9), Some((9, 12)));
}

#[test]
fn a_new_leader_records_its_epoch_before_its_first_append() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    log.assign_epoch_start(6).unwrap();
    assert_eq!(log.latest_epoch(), Some(6));
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 35)));
    // Epoch 4 now ends where 6 starts.
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 35)));
    assert_eq!(log.end_offset_for_epoch(5), Some((4, 35)));
    // Idempotent for the same epoch; older epochs are stale.
    log.assign_epoch_start(6).unwrap();
    assert!(matches!(
        log.assign_epoch_start(5),
        Err(Error::StaleLeaderEpoch { latest: 6, got: 5 })
    ));
    assert!(matches!(
        log.append(batch("old", 1, 0, Compression::None), 4, 0),
        Err(Error::StaleLeaderEpoch { latest: 6, got: 4 })
    ));
    // The first append of epoch 6 keeps the recorded start.
    log.append(batch("new", 2, 0, Compression::None), 6, 0)
        .unwrap();
    assert_eq!(log.epoch_entries().last(), Some(&entries(&[(6, 35)])[0]));
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 37)));
}

#[test]
fn an_epoch_start_with_no_data_gives_way_to_an_older_leaders_batches() {
    // Elected at epoch 5 but wrote nothing; then follows a leader whose log
    // has more epoch-4 data at these offsets.
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    log.append(batch("a", 5, 0, Compression::None), 4, 0)
        .unwrap();
    log.assign_epoch_start(5).unwrap();
    log.append_as_follower(placed(&batch("b", 5, 0, Compression::None), 5, 4))
        .unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(4, 0)]));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 10)));
}

#[test]
fn epoch_cache_survives_reopen_clean_or_not() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    let want = log.epoch_entries();
    log.close().unwrap();
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), want);
    log.append(batch("z", 1, 0, Compression::None), 7, 0)
        .unwrap();
    drop(log); // no close: as after kill -9
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), [want, entries(&[(7, 35)])].concat());
}

#[test]
fn epoch_checkpoint_is_rebuilt_from_batch_headers_when_deleted() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    let want = log.epoch_entries();
    drop(log);
    fs::remove_file(d.path().join(EPOCH_FILE)).unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), want);
    // And it was written back.
    assert!(d.path().join(EPOCH_FILE).exists());
    drop(log);
    let (_, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
}

#[test]
fn epoch_checkpoint_is_rebuilt_when_corrupted() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    let want = log.epoch_entries();
    drop(log);
    let path = d.path().join(EPOCH_FILE);
    let good = fs::read(&path).unwrap();
    let damaged: Vec<Vec<u8>> = vec![
        // Torn in the middle of the entries.
        good[..good.len() - 7].to_vec(),
        // Garbage bytes.
        b"\x00\xff\x13garbage\n".to_vec(),
        // Well-formed but contradicting the batch headers (epoch 2 at 10 missing).
        b"runnel-leader-epoch v1\n3\n1 0\n3 20\n4 30\n".to_vec(),
        // Well-formed but not monotonic.
        b"runnel-leader-epoch v1\n2\n4 0\n1 10\n".to_vec(),
        // One changed digit: epoch 2 claims to start at 15, but 10..14 are epoch-2 batches.
        String::from_utf8(good.clone())
            .unwrap()
            .replace("2 10", "2 15")
            .into_bytes(),
    ];
    for bytes in damaged {
        fs::write(&path, &bytes).unwrap();
        let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
        assert!(
            report.epoch_cache_rebuilt,
            "{:?} was accepted",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(log.epoch_entries(), want);
        assert_eq!(fs::read(&path).unwrap(), good);
    }
}

#[test]
fn epoch_checkpoint_keeps_an_epoch_whose_batches_are_gone() {
    // Epoch 2's batches were compacted away on the leader (a gap in offsets);
    // only the checkpoint remembers it, and it agrees with every header.
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let b = batch("x", 5, 0, Compression::None);
    log.append_as_follower(placed(&b, 0, 1)).unwrap();
    log.append_as_follower(placed(&b, 10, 3)).unwrap();
    drop(log);
    fs::write(
        d.path().join(EPOCH_FILE),
        b"runnel-leader-epoch v1\n3\n1 0\n2 5\n3 10\n",
    )
    .unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 5), (3, 10)]));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 10)));
}

#[test]
fn epoch_checkpoint_ahead_of_a_torn_log_is_clamped_on_open() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    drop(log);
    // A crash lost the tail (epoch 4's batch and half of epoch 3's last).
    let seg = d.path().join("00000000000000000000.log");
    let len = fs::metadata(&seg).unwrap().len();
    let batches_len: u64 = {
        let scratch = tempfile::tempdir().unwrap();
        let l = open(scratch.path());
        l.append(batch("e4-0", 5, 0, Compression::None), 4, 0)
            .unwrap();
        l.size_bytes()
    };
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - batches_len - 10)
        .unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(report.truncated_bytes > 0);
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10), (3, 20)]));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 25)));
}

#[test]
fn an_epoch_start_without_data_is_dropped_on_reopen() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    log.assign_epoch_start(8).unwrap();
    log.close().unwrap();
    drop(log);
    let log = open(d.path());
    assert_eq!(log.latest_epoch(), Some(4));
}

#[test]
fn truncation_then_append_under_a_new_epoch() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    // Offset 12 is inside epoch 2's first batch (10..14): truncation is at batch boundaries.
    log.truncate_to(12).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
    log.append(batch("n", 3, 0, Compression::None), 6, 0)
        .unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (6, 10)]));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 10)));
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (6, 10)]));
    let values: Vec<String> = read_all(&log, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values.last().unwrap(), "n-2");
    assert_eq!(values.len(), 13);
}

#[test]
fn truncation_inside_an_epoch_keeps_its_entry_and_lowers_the_high_watermark() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    assert_eq!(log.set_high_watermark(33), 33);
    log.checkpoint_high_watermark().unwrap();
    log.truncate_to(25).unwrap();
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.high_watermark(), 25);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10), (3, 20)]));
    // The checkpoint was lowered too: new data at 25.. is not committed after a crash.
    log.append(batch("n", 10, 0, Compression::None), 5, 0)
        .unwrap();
    drop(log);
    let log = open(d.path());
    assert_eq!(log.log_end_offset(), 35);
    assert_eq!(log.high_watermark(), 25);
}

#[test]
fn truncation_to_zero_clears_the_epoch_cache() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    log.truncate_to(0).unwrap();
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(1), None);
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert!(log.epoch_entries().is_empty());
}

#[test]
fn moving_the_log_start_clamps_the_epoch_cache_and_raises_the_high_watermark() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    assert_eq!(log.delete_records_before(12).unwrap(), 12);
    assert_eq!(log.epoch_entries(), entries(&[(2, 12), (3, 20), (4, 30)]));
    assert_eq!(log.high_watermark(), 12);
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), entries(&[(2, 12), (3, 20), (4, 30)]));
    // Rebuilt from headers, the first batch (10..14) straddles the start: same answer.
    drop(log);
    fs::remove_file(d.path().join(EPOCH_FILE)).unwrap();
    let log = open(d.path());
    assert_eq!(log.epoch_entries(), entries(&[(2, 12), (3, 20), (4, 30)]));
}

#[test]
fn retention_clamps_the_epoch_cache_to_the_new_log_start() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("x", 5, 0, Compression::None);
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config(one.len() as u64 * 2)
    };
    let (log, _) = Log::open(d.path(), config).unwrap();
    for epoch in [1, 1, 2, 2, 3, 3, 3] {
        log.append(batch("x", 5, 0, Compression::None), epoch, 0)
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10), (3, 20)]));
    // Timestamps are 0..4: every closed segment is expired.
    let deleted = log.apply_retention(1_000_000).unwrap();
    assert!(deleted >= 3, "deleted {deleted}");
    let start = log.log_start_offset();
    assert!(start >= 20);
    assert_eq!(log.epoch_entries(), entries(&[(3, start)]));
}

#[test]
fn high_watermark_is_clamped_monotonic_and_persisted() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    // Without a checkpoint a log starts with HW = log start.
    assert_eq!(log.high_watermark(), 0);
    assert_eq!(log.set_high_watermark(20), 20);
    assert_eq!(log.set_high_watermark(10), 20);
    assert_eq!(log.set_high_watermark(1000), 35);
    assert_eq!(log.set_high_watermark(-5), 35);
    log.checkpoint_high_watermark().unwrap();
    let text = fs::read_to_string(d.path().join(HW_FILE)).unwrap();
    assert_eq!(text, "runnel-high-watermark v1\n35\n");
    drop(log);
    let log = open(d.path());
    assert_eq!(log.high_watermark(), 35);
    // close() writes it as well.
    log.append(batch("x", 5, 0, Compression::None), 4, 0)
        .unwrap();
    log.set_high_watermark(38);
    log.close().unwrap();
    drop(log);
    let log = open(d.path());
    assert_eq!(log.high_watermark(), 38);
}

#[test]
fn high_watermark_read_back_is_clamped_to_the_recovered_log_end() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    log.set_high_watermark(35);
    log.checkpoint_high_watermark().unwrap();
    drop(log);
    let seg = d.path().join("00000000000000000000.log");
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = open(d.path());
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.high_watermark(), 30);
}

#[test]
fn synced_offset_covers_what_sync_flushed() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    assert_eq!(log.synced_offset(), 0);
    log.append_as_follower(placed(&batch("x", 4, 0, Compression::None), 0, 1))
        .unwrap();
    assert_eq!(log.synced_offset(), 0);
    log.sync(4).unwrap();
    assert_eq!(log.synced_offset(), 4);
    log.truncate_to(0).unwrap();
    assert_eq!(log.synced_offset(), 0);
}

#[test]
fn truncate_fully_and_start_at_restarts_an_empty_log_at_the_offset() {
    let d = tempfile::tempdir().unwrap();
    let log = leader_with_epochs(d.path());
    log.set_high_watermark(30);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark()
        ),
        (100, 100, 100)
    );
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.producer_count(), 0);
    let b = batch("x", 5, 0, Compression::None);
    assert!(matches!(
        log.append_as_follower(placed(&b, 95, 7)),
        Err(Error::OffsetMismatch {
            expected: 100,
            got: 95
        })
    ));
    log.append_as_follower(placed(&b, 100, 7)).unwrap();
    drop(log);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 105));
    assert_eq!(log.epoch_entries(), entries(&[(7, 100)]));
    assert_eq!(read_all(&log, 100).len(), 5);
    // Restarting below the old start (the leader's first batch begins before it).
    log.truncate_fully_and_start_at(40).unwrap();
    drop(log);
    let log = open(d.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
}

#[test]
fn a_crash_in_the_middle_of_truncation_leaves_a_prefix_that_recovery_accepts() {
    // Truncation deletes segments newest first and cuts the kept one last;
    // reproduce each intermediate state on disk and reopen it.
    let one = batch("b0", 5, 0, Compression::None);
    let config = small_config(one.len() as u64 * 2);
    let build = |dir: &std::path::Path| {
        let (log, _) = Log::open(dir, config.clone()).unwrap();
        for (i, epoch) in [1, 1, 2, 2, 3, 3].into_iter().enumerate() {
            log.append(batch(&format!("b{i}"), 5, 0, Compression::None), epoch, 0)
                .unwrap();
        }
        log.set_high_watermark(30);
        log.checkpoint_high_watermark().unwrap();
        log
    };
    let segs = |dir: &std::path::Path| {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        v.sort();
        v
    };
    // State 1: the newest segment is gone, the epoch checkpoint still has epoch 3.
    let d = tempfile::tempdir().unwrap();
    drop(build(d.path()));
    let all = segs(d.path());
    assert_eq!(all.len(), 3);
    fs::remove_file(&all[2]).unwrap();
    let (log, report) = Log::open(d.path(), config.clone()).unwrap();
    assert!(!report.epoch_cache_rebuilt);
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10)]));
    assert_eq!(log.high_watermark(), 20);
    assert_eq!(read_all(&log, 0).len(), 20);
    // State 2: the kept segment was cut at a batch boundary, nothing else updated.
    let d = tempfile::tempdir().unwrap();
    drop(build(d.path()));
    let all = segs(d.path());
    fs::remove_file(&all[2]).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&all[1]).unwrap();
    f.set_len(one.len() as u64).unwrap();
    let (log, report) = Log::open(d.path(), config.clone()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10)]));
    // Appending under a new epoch from there works.
    log.append(batch("n", 1, 0, Compression::None), 4, 0)
        .unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 10), (4, 15)]));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Leader append of `records` under the current epoch.
        Append {
            records: usize,
        },
        /// A new leader epoch starts (assign_epoch_start), maybe bumping by more than one.
        NewEpoch {
            bump: i32,
        },
        /// Follower append of `batches` batches of an epoch `bump` above the data's.
        Follow {
            bump: i32,
            batches: usize,
        },
        /// Truncate to a fraction of the log end.
        Truncate {
            fraction: f64,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (1usize..6).prop_map(|records| Op::Append { records }),
            2 => (1i32..3).prop_map(|bump| Op::NewEpoch { bump }),
            3 => (0i32..2, 1usize..3).prop_map(|(bump, batches)| Op::Follow { bump, batches }),
            2 => (0.0f64..1.0).prop_map(|fraction| Op::Truncate { fraction }),
            1 => Just(Op::Reopen),
        ]
    }

    /// The epoch cache a log's batch headers imply (first offset of each epoch).
    fn from_headers(log: &Log) -> Vec<EpochEntry> {
        let mut out: Vec<EpochEntry> = Vec::new();
        for b in raw_batches(log) {
            if out.last().is_none_or(|e| e.epoch != b.epoch) {
                out.push(EpochEntry {
                    epoch: b.epoch,
                    start_offset: b.base,
                });
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn epoch_cache_always_equals_the_one_implied_by_the_batch_headers(
            ops in prop::collection::vec(op(), 1..40),
            segment_bytes in 200u64..2000,
        ) {
            let d = tempfile::tempdir().unwrap();
            let config = small_config(segment_bytes);
            let (mut log, _) = Log::open(d.path(), config.clone()).unwrap();
            let proto = batch("p", 1, 0, Compression::None);
            let mut epoch = 0i32;
            // An epoch recorded at the log end with no batch yet.
            let mut pending: Option<EpochEntry> = None;
            for op in &ops {
                match op {
                    Op::Append { records } => {
                        log.append(batch("a", *records, 0, Compression::None), epoch, 0).unwrap();
                        pending = None;
                    }
                    Op::NewEpoch { bump } => {
                        epoch += bump;
                        log.assign_epoch_start(epoch).unwrap();
                        pending = Some(EpochEntry { epoch, start_offset: log.log_end_offset() });
                    }
                    Op::Follow { bump, batches } => {
                        // A leader's batches continue from the newest data epoch.
                        let data_epoch = from_headers(&log).last().map_or(0, |e| e.epoch);
                        let e = data_epoch + bump;
                        let mut buf = BytesMut::new();
                        let from = log.log_end_offset();
                        for at in from..from + *batches as i64 {
                            buf.extend_from_slice(&placed(&proto, at, e));
                        }
                        log.append_as_follower(buf.freeze()).unwrap();
                        epoch = epoch.max(e);
                        pending = None;
                    }
                    Op::Truncate { fraction } => {
                        let to = (log.log_end_offset() as f64 * fraction) as i64;
                        let before = log.log_end_offset();
                        log.truncate_to(to).unwrap();
                        if to < before {
                            pending = None;
                        }
                    }
                    Op::Reopen => {
                        drop(log);
                        let (l, report) = Log::open(d.path(), config.clone()).unwrap();
                        prop_assert!(!report.epoch_cache_rebuilt);
                        log = l;
                        pending = None;
                    }
                }
                let mut want = from_headers(&log);
                if let Some(p) = pending {
                    want.push(p);
                }
                prop_assert_eq!(log.epoch_entries(), want, "after {:?}", op);
                if let Some(latest) = log.latest_epoch() {
                    prop_assert_eq!(log.end_offset_for_epoch(latest), Some((latest, log.log_end_offset())));
                }
            }
            // Deleting the checkpoint rebuilds the same cache (minus a pending entry).
            let want = from_headers(&log);
            drop(log);
            fs::remove_file(d.path().join(EPOCH_FILE)).unwrap();
            let (log, report) = Log::open(d.path(), config).unwrap();
            // (An empty log has nothing to rebuild and says so.)
            prop_assert_eq!(report.epoch_cache_rebuilt, !want.is_empty());
            prop_assert_eq!(log.epoch_entries(), want);
        }
    }
}

/// Real crashes: a child process (this test binary) appends, follows,
/// truncates and starts epochs in a loop and is killed with SIGKILL at an
/// arbitrary moment; the reopened log must be consistent every time.
mod kill9 {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    const CHILD_DIR: &str = "RUNNEL_LOG_KILL9_CHILD_DIR";
    const CHILD_SEED: &str = "RUNNEL_LOG_KILL9_CHILD_SEED";

    fn config() -> LogConfig {
        small_config(700)
    }

    /// The cache a log's batch headers imply.
    fn implied(log: &Log) -> Vec<EpochEntry> {
        let mut out: Vec<EpochEntry> = Vec::new();
        for b in raw_batches(log) {
            if out.last().is_none_or(|e| e.epoch != b.epoch) {
                out.push(EpochEntry {
                    epoch: b.epoch,
                    start_offset: b.base,
                });
            }
        }
        out
    }

    #[test]
    fn kill_9_during_appends_truncations_and_epoch_changes_leaves_a_consistent_log() {
        let d = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        for round in 0..5u64 {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "replication::kill9::child",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_DIR, d.path())
                .env(CHILD_SEED, (round * 7919 + 13).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let deadline = Instant::now() + Duration::from_secs(120);
            // Let the child get well into its loop (more each round), then kill it mid-operation.
            let want = 2 + round;
            let mut seen = 0;
            while seen < want {
                let line = lines.next().expect("child exited early").unwrap();
                if line.starts_with("progress") {
                    seen += 1;
                }
                assert!(Instant::now() < deadline, "child made no progress");
            }
            child.kill().unwrap();
            child.wait().unwrap();

            let (log, report) = Log::open(d.path(), config()).unwrap();
            assert!(
                !report.epoch_cache_rebuilt,
                "round {round}: the checkpoint was inconsistent after kill -9"
            );
            assert_eq!(log.epoch_entries(), implied(&log), "round {round}");
            let hw = log.high_watermark();
            assert!(log.log_start_offset() <= hw && hw <= log.log_end_offset());
            let recs = read_all(&log, log.log_start_offset());
            assert!(recs.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(recs.last().is_none_or(|r| r.0 < log.log_end_offset()));
        }
    }

    #[test]
    #[ignore = "run by kill_9_during_appends_truncations_and_epoch_changes_leaves_a_consistent_log"]
    fn child() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let mut seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (log, _) = Log::open(std::path::Path::new(&dir), config()).unwrap();
        let proto = batch("f", 2, 0, Compression::None);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ops = 0u64;
        while Instant::now() < deadline {
            let end = log.log_end_offset();
            let epoch = log.latest_epoch().unwrap_or(0);
            match rand(10) {
                0..=3 => {
                    log.append(
                        batch("a", 1 + rand(4) as usize, 0, Compression::None),
                        epoch,
                        0,
                    )
                    .unwrap();
                }
                4 => log.assign_epoch_start(epoch + 1).unwrap(),
                5 | 6 => {
                    let data_epoch = log.end_offset_for_epoch(epoch).map_or(epoch, |(e, _)| e);
                    let e = data_epoch.max(epoch) + rand(2) as i32;
                    log.append_as_follower(placed(&proto, end, e)).unwrap();
                }
                7 => log.truncate_to((end - rand(12) as i64).max(0)).unwrap(),
                8 => {
                    log.set_high_watermark(end - rand(4) as i64);
                    log.checkpoint_high_watermark().unwrap();
                }
                _ => log.sync(end).unwrap(),
            }
            ops += 1;
            if ops.is_multiple_of(50) {
                println!("progress {ops}");
            }
        }
    }
}
