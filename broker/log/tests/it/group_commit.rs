//! Concurrent appends with `sync` (group commit).

use std::sync::Arc;

use kafka_protocol::records::Compression;
use runnel_log::{Log, LogConfig};

use crate::common::*;

#[test]
fn concurrent_appends_and_syncs_all_succeed_and_persist() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("t0-0", 2, 0, Compression::None).len() as u64;
    let (log, _) = Log::open(d.path(), small_config(one * 20)).unwrap();
    let log = Arc::new(log);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..40 {
                    let info = log
                        .append(batch(&format!("t{t}-{i}"), 2, 0, Compression::None), 0, 0)
                        .unwrap();
                    log.sync(info.last_offset + 1).unwrap();
                    // Reads run concurrently with appends and see whole batches only.
                    let r = log
                        .read(info.base_offset, 1 << 16, true, log.log_end_offset())
                        .unwrap();
                    assert!(!r.records.is_empty());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), 8 * 40 * 2);
    assert!(log.segment_count() > 1);
    let before = read_all(&log, 0);
    drop(log);
    let (log, report) = Log::open(d.path(), LogConfig::default()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    let after = read_all(&log, 0);
    assert_eq!(after, before);
    for t in 0..8 {
        let mine: Vec<&String> = after
            .iter()
            .map(|(_, v)| v)
            .filter(|v| v.starts_with(&format!("t{t}-")))
            .collect();
        assert_eq!(mine.len(), 80, "thread {t}'s records are all present");
    }
}

#[test]
fn sync_of_an_already_synced_offset_returns_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), LogConfig::default()).unwrap();
    let info = log
        .append(batch("a", 1, 0, Compression::None), 0, 0)
        .unwrap();
    log.sync(info.last_offset + 1).unwrap();
    log.sync(0).unwrap();
    log.sync(info.last_offset + 1).unwrap();
    assert!(!log.is_poisoned());
}

#[test]
fn readers_see_only_whole_valid_batches_during_appends_rolls_and_retention() {
    let d = tempfile::tempdir().unwrap();
    let one = batch("w-0000", 3, 0, Compression::None).len() as u64;
    let cfg = LogConfig {
        retention_bytes: (one * 20) as i64,
        ..small_config(one * 4)
    };
    let (log, _) = Log::open(d.path(), cfg).unwrap();
    let log = Arc::new(log);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let start = log.log_start_offset();
                    match log.read(start, 1 << 14, true, i64::MAX) {
                        Ok(r) if !r.records.is_empty() => {
                            // The decoder checks framing and every CRC.
                            let recs = decode_values(&r.records);
                            assert!(recs
                                .iter()
                                .all(|(o, v)| v.ends_with(&format!("-{}", o % 3))));
                            reads += 1;
                        }
                        Ok(_) => {}
                        // Retention may move the start between the two calls.
                        Err(runnel_log::Error::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read failed: {e}"),
                    }
                }
                reads
            })
        })
        .collect();
    for i in 0..400 {
        log.append(batch(&format!("w-{i:04}"), 3, i, Compression::None), 0, 0)
            .unwrap();
        if i % 25 == 0 {
            log.apply_retention(0).unwrap();
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let total_reads: usize = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(total_reads > 0);
    assert!(log.log_start_offset() > 0);
    assert_eq!(log.log_end_offset(), 1200);
}
