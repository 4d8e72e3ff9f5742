//! Segment roll by size, by age and by `maybe_roll`.

use kafka_protocol::records::Compression;
use runnel_log::{Log, LogConfig};

use crate::common::*;

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn segment_rolls_when_segment_bytes_would_be_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("a", 4, 0, Compression::None);
    let (log, _) = Log::open(dir.path(), small_config(one.len() as u64 * 3)).unwrap();
    for _ in 0..7 {
        log.append(one.clone(), 0, 0).unwrap();
    }
    // 3 + 3 + 1 batches.
    assert_eq!(log.segment_count(), 3);
    assert_eq!(
        segment_files(dir.path()),
        vec![
            "00000000000000000000.log",
            "00000000000000000012.log",
            "00000000000000000024.log"
        ]
    );
    assert_eq!(read_all(&log, 0).len(), 28);
    // A closed segment has its index files on disk.
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert!(dir.path().join("00000000000000000000.timeindex").exists());
}

#[test]
fn a_batch_larger_than_segment_bytes_still_gets_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("a", 4, 0, Compression::None);
    let (log, _) = Log::open(dir.path(), small_config(10)).unwrap();
    for _ in 0..3 {
        log.append(one.clone(), 0, 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log, 0).len(), 12);
}

#[test]
fn segment_rolls_after_segment_ms_on_append_and_on_maybe_roll() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), cfg.clone()).unwrap();
    log.append(batch("a", 1, 0, Compression::None), 0, 10_000)
        .unwrap();
    log.append(batch("b", 1, 0, Compression::None), 0, 10_999)
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(batch("c", 1, 0, Compression::None), 0, 11_000)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
    log.maybe_roll(11_500).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.maybe_roll(12_000).unwrap();
    assert_eq!(log.segment_count(), 3);
    // An empty active segment is never rolled.
    log.maybe_roll(99_000).unwrap();
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log, 0).len(), 3);
    // set_config takes effect for the next append.
    log.set_config(LogConfig {
        segment_ms: i64::MAX,
        ..cfg
    });
    log.append(batch("d", 1, 0, Compression::None), 0, 100_000)
        .unwrap();
    log.append(batch("e", 1, 0, Compression::None), 0, 900_000)
        .unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn set_config_changes_segment_bytes_for_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("a", 4, 0, Compression::None);
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(one.clone(), 0, 0).unwrap();
    log.append(one.clone(), 0, 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.set_config(small_config(one.len() as u64));
    log.append(one.clone(), 0, 0).unwrap();
    assert_eq!(log.segment_count(), 2);
}
