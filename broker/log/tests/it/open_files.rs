//! The open-file cache: many logs share a small descriptor budget.

use std::path::Path;

use kafka_protocol::records::Compression;
use runnel_log::{FileCache, Log};

use crate::common::*;

/// Descriptors of this process open on files under `dir`.
fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn twenty_logs_work_within_four_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FileCache::new(4);
    let open = |i: usize| {
        Log::open_with(
            &dir.path().join(format!("p-{i}")),
            small_config(2048),
            &cache,
        )
        .unwrap()
        .0
    };
    let logs: Vec<Log> = (0..20).map(open).collect();
    assert!(fds_under(dir.path()) <= 4);
    for round in 0..6 {
        for (i, log) in logs.iter().enumerate() {
            let info = log
                .append(
                    batch(&format!("{i}-{round}"), 20, 1000, Compression::None),
                    0,
                    0,
                )
                .unwrap();
            log.sync(info.last_offset + 1).unwrap();
            assert!(
                fds_under(dir.path()) <= 4,
                "at most 4 segment files are open"
            );
        }
    }
    assert!(
        logs.iter().all(|l| l.segment_count() > 1),
        "the logs rolled"
    );
    for (i, log) in logs.iter().enumerate() {
        let got = read_all(log, 0);
        assert_eq!(got.len(), 6 * 20);
        assert_eq!(got[0].1, format!("{i}-0-0"));
        assert!(!log.is_poisoned());
    }
    assert!(cache.registered() <= 4);
    assert!(fds_under(dir.path()) <= 4);
    // Closed cleanly and reopened (recovery goes through the cache too).
    for log in &logs {
        log.close().unwrap();
    }
    drop(logs);
    let logs: Vec<Log> = (0..20).map(open).collect();
    assert!(fds_under(dir.path()) <= 4);
    for (i, log) in logs.iter().enumerate() {
        let got = read_all(log, 0);
        assert_eq!(got.len(), 6 * 20, "log {i} kept every record");
        assert_eq!(got.last().unwrap().1, format!("{i}-5-19"));
    }
}

#[test]
fn evicted_segment_files_are_reopened_for_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = FileCache::new(1);
    let (a, _) = Log::open_with(&dir.path().join("a"), small_config(1 << 20), &cache).unwrap();
    a.append(batch("a", 5, 1000, Compression::None), 0, 0)
        .unwrap();
    let (b, _) = Log::open_with(&dir.path().join("b"), small_config(1 << 20), &cache).unwrap();
    b.append(batch("b", 5, 1000, Compression::None), 0, 0)
        .unwrap();
    // a's file was evicted by b's; reading reopens it, evicting b's.
    assert_eq!(read_all(&a, 0).len(), 5);
    assert_eq!(read_all(&b, 0).len(), 5);
    assert!(fds_under(dir.path()) <= 1);
}

#[test]
fn a_new_log_writes_no_checkpoint_until_it_has_something_to_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let (log, _) = Log::open(&path, small_config(1 << 20)).unwrap();
    let names = || -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    // Their absence reads as what they would say: an empty, unclean log at 0.
    assert_eq!(names(), vec![format!("{:020}.log", 0)]);
    log.append(batch("a", 3, 1000, Compression::None), 0, 0)
        .unwrap();
    log.sync(3).unwrap();
    // A crash (no close): recovery finds the records.
    drop(log);
    let (log, _) = Log::open(&path, small_config(1 << 20)).unwrap();
    assert_eq!(read_all(&log, 0).len(), 3);
    assert!(names().contains(&"recovery-point.checkpoint".to_string()));
}
