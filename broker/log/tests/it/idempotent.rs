//! Idempotent producer deduplication and sequence checks, also after reopen.

use kafka_protocol::records::Compression;
use runnel_log::{Error, Log, LogConfig};

use crate::common::*;

fn pb(tag: &str, n: usize, pid: i64, epoch: i16, seq: i32) -> bytes::Bytes {
    producer_batch(tag, n, 0, Compression::None, pid, epoch, seq)
}

#[test]
fn retried_batches_are_not_written_twice_even_after_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    let first = log.append(pb("a", 3, 7, 0, 0), 0, 0).unwrap();
    log.append(pb("b", 2, 7, 0, 3), 0, 0).unwrap();
    let size = log.size_bytes();
    let dup = log.append(pb("a", 3, 7, 0, 0), 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        (dup.base_offset, dup.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 5);
    // No close: a crash. State is rebuilt from the log.
    drop(log);
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    assert_eq!(log.producer_count(), 1);
    let dup = log.append(pb("b", 2, 7, 0, 3), 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (3, 4));
    assert!(matches!(
        log.append(pb("c", 1, 7, 0, 9), 0, 0),
        Err(Error::OutOfOrderSequence {
            producer_id: 7,
            expected: 5,
            got: 9
        })
    ));
    let next = log.append(pb("c", 1, 7, 0, 5), 0, 0).unwrap();
    assert_eq!((next.base_offset, next.duplicate), (5, false));
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn stale_epochs_are_fenced_and_producers_are_independent() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    log.append(pb("a", 1, 1, 3, 0), 0, 0).unwrap();
    log.append(pb("x", 1, 2, 0, 100), 0, 0).unwrap();
    assert!(matches!(
        log.append(pb("a", 1, 1, 2, 1), 0, 0),
        Err(Error::InvalidProducerEpoch {
            producer_id: 1,
            current: 3,
            got: 2
        })
    ));
    assert!(matches!(
        log.append(pb("a", 1, 1, 4, 5), 0, 0),
        Err(Error::OutOfOrderSequence { expected: 0, .. })
    ));
    log.append(pb("a", 1, 1, 4, 0), 0, 0).unwrap();
    log.append(pb("x", 1, 2, 0, 101), 0, 0).unwrap();
    // Non-idempotent batches are never checked.
    log.append(batch("plain", 1, 0, Compression::None), 0, 0)
        .unwrap();
    log.append(batch("plain", 1, 0, Compression::None), 0, 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn truncation_forgets_the_sequences_it_removed() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    log.append(pb("a", 2, 1, 0, 0), 0, 0).unwrap();
    log.append(pb("b", 2, 1, 0, 2), 0, 0).unwrap();
    log.truncate_to(2).unwrap();
    // Sequence 2 is no longer in the log: it is new again, not a duplicate.
    let again = log.append(pb("b", 2, 1, 0, 2), 0, 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 2);
}
