//! Crash recovery: torn writes, flipped bytes, damaged indexes, stray files.

use std::fs;
use std::path::{Path, PathBuf};

use kafka_protocol::records::Compression;
use runnel_log::{Log, LogConfig};

use crate::common::*;

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn last_log_file(dir: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v.pop().unwrap()
}

/// Segments of 3 batches, every batch indexed.
fn fixture_config() -> LogConfig {
    let one = batch("b0", 3, 0, Compression::None).len() as u64;
    LogConfig {
        index_interval_bytes: 0,
        ..small_config(one * 3)
    }
}

/// Writes 8 equal-size batches of 3 records into segments of 3 batches
/// (bases 0, 9, 18) and returns (records, position of the last batch in the
/// last file, length of the last file).
fn write_fixture(dir: &Path, close: bool) -> (Vec<(i64, String)>, u64, u64) {
    let one = batch("b0", 3, 0, Compression::None).len() as u64;
    let (log, _) = Log::open(dir, fixture_config()).unwrap();
    for i in 0..8 {
        let b = batch(&format!("b{i}"), 3, 1000 + i, Compression::None);
        assert_eq!(b.len() as u64, one);
        log.append(b, 0, 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    let records = read_all(&log, 0);
    if close {
        log.close().unwrap();
    }
    let full = fs::metadata(last_log_file(dir)).unwrap().len();
    assert_eq!(full, one * 2);
    (records, one, full)
}

fn check_torn_tail_at_every_byte(close: bool) {
    let src = tempfile::tempdir().unwrap();
    let (records, last_pos, full) = write_fixture(src.path(), close);
    assert!(last_pos > 0, "the last segment holds more than one batch");
    let kept: Vec<(i64, String)> = records[..records.len() - 3].to_vec();
    for cut in last_pos..full {
        let d = tempfile::tempdir().unwrap();
        copy_dir(src.path(), d.path());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(last_log_file(d.path()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, cut - last_pos, "cut at {cut}");
        assert_eq!(report.truncation.is_some(), cut > last_pos, "cut at {cut}");
        assert_eq!(log.log_end_offset(), 21, "cut at {cut}");
        assert_eq!(read_all(&log, 0), kept, "cut at {cut}");
        let info = log
            .append(batch("after", 2, 0, Compression::None), 0, 0)
            .unwrap();
        assert_eq!(info.base_offset, 21);
        drop(log);
        let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(read_all(&log, 0).len(), 23);
    }
}

#[test]
fn torn_write_at_every_byte_of_the_last_batch_is_recovered_after_a_crash() {
    check_torn_tail_at_every_byte(false);
}

#[test]
fn torn_write_at_every_byte_of_the_last_batch_is_recovered_after_a_clean_close() {
    check_torn_tail_at_every_byte(true);
}

#[test]
fn a_flipped_byte_in_the_last_batch_cuts_that_batch() {
    let src = tempfile::tempdir().unwrap();
    let (records, last_pos, full) = write_fixture(src.path(), false);
    let kept: Vec<(i64, String)> = records[..records.len() - 3].to_vec();
    // Bytes 0..8 (baseOffset) and 12..16 (leader epoch) are outside the CRC; every other byte is checked.
    for rel in (8..12).chain(16..full - last_pos) {
        let d = tempfile::tempdir().unwrap();
        copy_dir(src.path(), d.path());
        let path = last_log_file(d.path());
        let mut bytes = fs::read(&path).unwrap();
        bytes[(last_pos + rel) as usize] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, full - last_pos, "flip at +{rel}");
        let (file, reason) = report.truncation.clone().unwrap();
        assert_eq!(file, path);
        assert!(!reason.is_empty());
        assert_eq!(log.log_end_offset(), 21, "flip at +{rel}");
        assert_eq!(read_all(&log, 0), kept);
    }
}

#[test]
fn corruption_after_the_recovery_point_deletes_later_segments() {
    let d = tempfile::tempdir().unwrap();
    let (records, _, _) = write_fixture(d.path(), false);
    // Without a checkpoint every segment is scanned.
    fs::remove_file(d.path().join("recovery-point.checkpoint")).unwrap();
    let first = d.path().join("00000000000000000000.log");
    let mut bytes = fs::read(&first).unwrap();
    let one = batch("x", 3, 0, Compression::None).len();
    bytes[one + 40] ^= 1; // inside the second batch
    fs::write(&first, &bytes).unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(
        report.segments_scanned, 1,
        "scan stops at the corrupt segment"
    );
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log, 0), records[..3].to_vec());
    assert!(!d.path().join("00000000000000000009.log").exists());
}

#[test]
fn clean_reopen_scans_only_the_active_segment_and_rebuilds_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (records, _, _) = write_fixture(d.path(), true);
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(report.segments_scanned, 1);
    assert_eq!(report.indexes_rebuilt, 0);
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.truncation.is_none());
    assert_eq!(read_all(&log, 0), records);
}

#[test]
fn deleted_or_garbled_indexes_are_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let (records, _, _) = write_fixture(d.path(), true);
    let idx0 = d.path().join("00000000000000000000.index");
    let tidx0 = d.path().join("00000000000000000000.timeindex");
    let idx1 = d.path().join("00000000000000000009.index");
    let original_idx0 = fs::read(&idx0).unwrap();
    let original_tidx0 = fs::read(&tidx0).unwrap();
    assert!(
        !original_idx0.is_empty(),
        "index interval is small enough to index batches"
    );
    fs::remove_file(&idx0).unwrap();
    fs::write(&tidx0, b"garbage!").unwrap();
    // Plausible-looking but wrong: valid ordering, positions that are not batch starts.
    fs::write(&idx1, [0, 0, 0, 1, 0, 0, 0, 7]).unwrap();
    let (log, report) = Log::open(d.path(), fixture_config()).unwrap();
    assert_eq!(report.indexes_rebuilt, 3);
    assert_eq!(fs::read(&idx0).unwrap(), original_idx0);
    assert_eq!(fs::read(&tidx0).unwrap(), original_tidx0);
    assert_eq!(read_all(&log, 0), records);
    for offset in 0..log.log_end_offset() {
        let r = log.read(offset, 1, true, i64::MAX).unwrap();
        let recs = decode_values(&r.records);
        assert!(recs.iter().any(|(o, _)| *o == offset));
    }
    assert_eq!(log.offset_for_timestamp(1004).unwrap(), Some((8, 1004)));
    log.close().unwrap();
    drop(log);
    // Rebuilt files are accepted as they are, also under another index interval.
    let (_, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(report.indexes_rebuilt, 0);
}

#[test]
fn index_files_larger_than_their_segment_allows_are_rebuilt_unread() {
    let d = tempfile::tempdir().unwrap();
    let (records, _, _) = write_fixture(d.path(), true);
    let idx0 = d.path().join("00000000000000000000.index");
    let tidx0 = d.path().join("00000000000000000000.timeindex");
    let original_idx0 = fs::read(&idx0).unwrap();
    // Valid entries followed by a gigabyte of (sparse) zeros.
    for path in [&idx0, &tidx0] {
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
    }
    let (log, report) = Log::open(d.path(), fixture_config()).unwrap();
    assert_eq!(report.indexes_rebuilt, 2);
    assert_eq!(fs::read(&idx0).unwrap(), original_idx0);
    assert_eq!(read_all(&log, 0), records);
}

#[test]
fn stray_temp_and_orphan_index_files_are_removed() {
    let d = tempfile::tempdir().unwrap();
    write_fixture(d.path(), true);
    fs::write(d.path().join("recovery-point.checkpoint.tmp"), b"half").unwrap();
    fs::write(d.path().join("00000000000000000000.index.tmp"), b"half").unwrap();
    fs::write(d.path().join("00000000000000000500.index"), b"orphan").unwrap();
    let (log, _) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert!(!d.path().join("recovery-point.checkpoint.tmp").exists());
    assert!(!d.path().join("00000000000000000000.index.tmp").exists());
    assert!(!d.path().join("00000000000000000500.index").exists());
    assert_eq!(log.log_end_offset(), 24);
}

#[test]
fn garbage_segment_file_is_cut_without_panicking() {
    let d = tempfile::tempdir().unwrap();
    fs::write(
        d.path().join("00000000000000000000.log"),
        vec![0xffu8; 1000],
    )
    .unwrap();
    fs::write(
        d.path().join("recovery-point.checkpoint"),
        b"\x00\x01nonsense",
    )
    .unwrap();
    let (log, report) = Log::open(d.path(), small_config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 1000);
    assert_eq!(log.log_end_offset(), 0);
    log.append(batch("a", 1, 0, Compression::None), 0, 0)
        .unwrap();
    assert_eq!(read_all(&log, 0).len(), 1);
}

#[test]
fn an_empty_segment_left_by_an_interrupted_roll_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let (records, _, _) = write_fixture(d.path(), false);
    // Base 20 lies inside the previous segment (18..24): a roll that never completed.
    fs::write(d.path().join("00000000000000000020.log"), b"").unwrap();
    let (log, _) = Log::open(d.path(), fixture_config()).unwrap();
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(log.segment_count(), 3);
    assert!(!d.path().join("00000000000000000020.log").exists());
    assert_eq!(read_all(&log, 0), records);
    assert_eq!(
        log.append(batch("n", 1, 0, Compression::None), 0, 0)
            .unwrap()
            .base_offset,
        24
    );
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

thread_local! {
    /// Log lines written by tracing on this thread (see [`capture_warnings`]).
    static CAPTURED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes into the calling thread's [`CAPTURED`] buffer.
struct ThreadBuf;

impl std::io::Write for ThreadBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| c.borrow_mut().extend_from_slice(b));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global WARN subscriber whose output goes to the
/// emitting thread's buffer, and returns what this thread logs while running `f`.
///
/// A global subscriber rather than `with_default`: tracing caches each callsite's interest
/// globally, and another test thread hitting the same `warn!` while this thread's scoped
/// subscriber was being registered could cache "never" and silence it (a flaky test).
fn capture_warnings(f: impl FnOnce()) -> String {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| ThreadBuf)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
    f();
    CAPTURED.with(|c| String::from_utf8(c.borrow().clone()).unwrap())
}

#[test]
fn recovery_that_cuts_data_warns_with_the_word_truncated() {
    let d = tempfile::tempdir().unwrap();
    let (_, last_pos, _) = write_fixture(d.path(), true);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(last_log_file(d.path()))
        .unwrap();
    f.set_len(last_pos + 10).unwrap();
    let out = capture_warnings(|| {
        Log::open(d.path(), fixture_config()).unwrap();
    });
    assert!(out.contains("WARN"), "{out}");
    assert!(out.contains("truncated 10 bytes"), "{out}");
    assert!(out.contains("00000000000000000018.log"), "{out}");
}
