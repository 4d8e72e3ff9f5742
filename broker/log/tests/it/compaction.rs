//! Log compaction: latest value per key, tombstones, the active segment,
//! compression, min compaction lag, dirty ratio, crash in the middle of a
//! swap, concurrency with appends and reads, keyless records.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_log::{Error, Log, LogConfig};

/// One record of a test batch: key (None = keyless), value (None = tombstone), timestamp.
pub(crate) type Rec = (Option<String>, Option<String>, i64);

/// A batch of keyed records (offsets are assigned by the log).
pub(crate) fn keyed_batch(recs: &[Rec], compression: Compression) -> Bytes {
    let records: Vec<_> = recs
        .iter()
        .map(|(k, v, ts)| {
            runnel_testkit::record(
                k.as_ref().map(String::as_bytes),
                v.as_ref().map(String::as_bytes),
                *ts,
            )
        })
        .collect();
    runnel_testkit::encode(&records, compression)
}

fn put(k: &str, v: &str, ts: i64) -> Rec {
    (Some(k.into()), Some(v.into()), ts)
}

fn tombstone(k: &str, ts: i64) -> Rec {
    (Some(k.into()), None, ts)
}

/// A record read back: offset, key, value (None = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    pub(crate) offset: i64,
    pub(crate) key: String,
    pub(crate) value: Option<String>,
}

/// Every record from the log start to the end, batch by batch, plus the
/// compression of each batch read.
pub(crate) fn read_records(log: &Log) -> (Vec<Read>, Vec<Compression>) {
    let mut out = Vec::new();
    let mut codecs = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let end = log.log_end_offset();
        if offset >= end {
            break;
        }
        let r = log.read(offset, 1 << 20, true, end).unwrap();
        if r.records.is_empty() {
            break;
        }
        let mut b = r.records.clone();
        let sets = RecordBatchDecoder::decode_all(&mut b).unwrap();
        let mut last = offset;
        for set in sets {
            codecs.push(set.compression);
            for rec in set.records {
                last = last.max(rec.offset);
                if rec.offset >= offset {
                    out.push(Read {
                        offset: rec.offset,
                        key: String::from_utf8(rec.key.unwrap().to_vec()).unwrap(),
                        value: rec.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    });
                }
            }
        }
        // A compacted batch may end after its last record: skip to the batch end.
        let batch_last = last_offsets(&r.records).into_iter().max().unwrap();
        offset = batch_last.max(last) + 1;
    }
    (out, codecs)
}

/// The last offset (base + lastOffsetDelta) of every batch in `bytes`.
fn last_offsets(bytes: &Bytes) -> Vec<i64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
        out.push(base + i64::from(delta));
        pos += 12 + len;
    }
    out
}

/// The latest-value view: key -> value after applying every record in order.
fn view(records: &[Read]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in records {
        match &r.value {
            Some(v) => m.insert(r.key.clone(), v.clone()),
            None => m.remove(&r.key),
        };
    }
    m
}

fn assert_offsets_increase(records: &[Read]) {
    for w in records.windows(2) {
        assert!(
            w[0].offset < w[1].offset,
            "offsets must strictly increase: {:?}",
            w
        );
    }
}

fn compact_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: 1,
        index_interval_bytes: 256,
        compact: true,
        delete: false,
        delete_retention_ms: 10_000,
        ..LogConfig::default()
    }
}

/// Closes the active segment so everything appended so far is compactable.
fn roll(log: &Log) {
    log.maybe_roll(i64::MAX / 4).unwrap();
}

#[test]
fn compaction_keeps_exactly_the_latest_value_of_each_live_key() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(16 * 1024)).unwrap();
    // 100 keys updated 1,000 times each, in batches of 100 records that mix keys.
    let mut expected = BTreeMap::new();
    let mut n = 0i64;
    for _ in 0..1000 {
        let recs: Vec<Rec> = (0..100)
            .map(|_| {
                let k = format!("k{}", (n * 37) % 100);
                let v = format!("v{n}");
                expected.insert(k.clone(), v.clone());
                n += 1;
                put(&k, &v, 1000 + n)
            })
            .collect();
        log.append(keyed_batch(&recs, Compression::None), 0, 0)
            .unwrap();
    }
    // Tombstones for 10 keys.
    let tombs: Vec<Rec> = (0..10)
        .map(|i| {
            expected.remove(&format!("k{i}"));
            tombstone(&format!("k{i}"), 200_000)
        })
        .collect();
    log.append(keyed_batch(&tombs, Compression::None), 0, 0)
        .unwrap();
    roll(&log);
    let end = log.log_end_offset();
    assert_eq!(end, 100_010);
    assert!(log.segment_count() > 10);
    let size_before = log.size_bytes();

    // Before delete.retention.ms has passed the tombstones stay.
    let report = log.compact_forced(205_000).unwrap();
    assert!(report.cleaned);
    assert_eq!(report.tombstones_removed, 0);
    assert_eq!(report.records_removed, 100_010 - 100);
    let (records, _) = read_records(&log);
    assert_offsets_increase(&records);
    assert_eq!(records.len(), 100, "90 live keys and 10 tombstones");
    assert_eq!(records.iter().filter(|r| r.value.is_none()).count(), 10);
    assert_eq!(view(&records), expected);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
    assert!(log.size_bytes() < size_before / 100);

    // Nothing is dirty: the background pass waits until the first tombstone
    // is due, then removes them without any new data.
    let report = log.compact(210_000).unwrap();
    assert!(!report.cleaned);
    let report = log.compact(210_001).unwrap();
    assert!(report.cleaned);
    assert_eq!(report.tombstones_removed, 10);
    let (records, _) = read_records(&log);
    assert_offsets_increase(&records);
    assert_eq!(records.len(), 90);
    assert!(records.iter().all(|r| r.value.is_some()));
    assert_eq!(view(&records), expected);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));

    // The compacted log reopens to the same records, with valid indexes.
    log.close().unwrap();
    drop(log);
    let (log, report) = Log::open(d.path(), compact_config(16 * 1024)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.indexes_rebuilt, 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
    let (again, _) = read_records(&log);
    assert_eq!(again, records);
    // New appends continue at the same end offset.
    let info = log
        .append(keyed_batch(&[put("k5", "new", 1)], Compression::None), 0, 0)
        .unwrap();
    assert_eq!(info.base_offset, end);
}

#[test]
fn the_active_segment_is_never_compacted() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    for i in 0..5 {
        let recs: Vec<Rec> = (0..10)
            .map(|k| put(&format!("k{k}"), &format!("old{i}"), 1))
            .collect();
        log.append(keyed_batch(&recs, Compression::None), 0, 0)
            .unwrap();
    }
    roll(&log);
    let active_base = log.log_end_offset();
    // The active segment holds duplicates of the same keys, twice.
    for i in 0..2 {
        let recs: Vec<Rec> = (0..10)
            .map(|k| put(&format!("k{k}"), &format!("new{i}"), 2))
            .collect();
        log.append(keyed_batch(&recs, Compression::None), 0, 0)
            .unwrap();
    }
    let active_bytes = log
        .read(active_base, 1 << 20, true, i64::MAX)
        .unwrap()
        .records;
    let report = log.compact_forced(10).unwrap();
    assert!(report.cleaned);
    let after = log
        .read(active_base, 1 << 20, true, i64::MAX)
        .unwrap()
        .records;
    assert_eq!(after, active_bytes, "active segment bytes unchanged");
    let (records, _) = read_records(&log);
    // The closed segment keeps only its latest values (the active segment's
    // keys are not used to clean it), the active one keeps everything.
    assert_eq!(records.len(), 10 + 20);
    assert!(records[..10]
        .iter()
        .all(|r| r.value.as_deref() == Some("old4")));
    assert_eq!(view(&records)["k3"], "new1");
}

#[test]
fn compressed_batches_are_compacted_and_recompressed_with_their_codec() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = BTreeMap::new();
    for (round, c) in codecs.iter().enumerate() {
        // Each batch updates half of the keys it holds twice, so part of it survives.
        let recs: Vec<Rec> = (0..20)
            .map(|i| {
                let k = format!("{round}-{}", i % 10);
                let v = format!("v{round}-{i}");
                expected.insert(k.clone(), v.clone());
                put(&k, &v, 5)
            })
            .collect();
        log.append(keyed_batch(&recs, *c), 0, 0).unwrap();
    }
    roll(&log);
    let report = log.compact_forced(10).unwrap();
    assert_eq!(report.records_removed, 40);
    let (records, seen) = read_records(&log);
    assert_eq!(seen, codecs.to_vec(), "each batch keeps its codec");
    assert_eq!(records.len(), 40);
    assert_offsets_increase(&records);
    assert_eq!(view(&records), expected);
}

#[test]
fn records_newer_than_min_compaction_lag_are_not_compacted() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compact_config(1 << 20)
    };
    let (log, _) = Log::open(d.path(), cfg).unwrap();
    let old: Vec<Rec> = (0..10)
        .map(|i| put("a", &format!("old{i}"), 1000))
        .collect();
    log.append(keyed_batch(&old, Compression::None), 0, 0)
        .unwrap();
    roll(&log);
    let new: Vec<Rec> = (0..10)
        .map(|i| put("a", &format!("new{i}"), 50_000))
        .collect();
    log.append(keyed_batch(&new, Compression::None), 0, 0)
        .unwrap();
    roll(&log);

    // At 55,000 the second segment is younger than the lag: only the first is cleaned,
    // with a map that does not know the newer values.
    log.compact_forced(55_000).unwrap();
    let (records, _) = read_records(&log);
    let values: Vec<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    let mut want = vec!["old9".to_string()];
    want.extend((0..10).map(|i| format!("new{i}")));
    assert_eq!(values, want);

    // Once both are older than the lag, only the latest value is left.
    log.compact_forced(60_000).unwrap();
    let (records, _) = read_records(&log);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some("new9"));
    assert_eq!(records[0].offset, 19);
}

#[test]
fn compaction_waits_for_the_dirty_ratio_unless_forced() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    let big: Vec<Rec> = (0..200).map(|i| put(&format!("k{i}"), "x", 1)).collect();
    log.append(keyed_batch(&big, Compression::None), 0, 0)
        .unwrap();
    roll(&log);
    // Everything is dirty at first: ratio 1.0.
    let r = log.compact(10).unwrap();
    assert!(r.cleaned);
    assert_eq!(r.dirty_ratio, 1.0);
    let checkpoint = r.cleaner_offset;
    assert_eq!(checkpoint, 200);
    // A small dirty segment: below 0.5, skipped.
    log.append(
        keyed_batch(&[put("k1", "y", 1), put("k1", "z", 1)], Compression::None),
        0,
        0,
    )
    .unwrap();
    roll(&log);
    let r = log.compact(10).unwrap();
    assert!(!r.cleaned);
    assert!(
        r.dirty_ratio > 0.0 && r.dirty_ratio < 0.5,
        "{}",
        r.dirty_ratio
    );
    assert_eq!(read_records(&log).0.len(), 202);
    // With the threshold at 0 (or forced) it runs, and k1's old value goes.
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config(1 << 20)
    });
    let r = log.compact(10).unwrap();
    assert!(r.cleaned);
    let (records, _) = read_records(&log);
    assert_eq!(records.len(), 200);
    assert_eq!(view(&records)["k1"], "z");
    // The checkpoint survives a reopen: nothing dirty afterwards.
    drop(log);
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    let r = log.compact_forced(10).unwrap();
    assert_eq!(r.dirty_ratio, 0.0);
    assert_eq!((r.segments_rewritten, r.records_removed), (0, 0));
    assert_eq!(read_records(&log).0.len(), 200);
}

#[test]
fn a_delete_policy_log_is_not_compacted_and_compact_only_is_not_retention_deleted() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: false,
        delete: true,
        ..compact_config(1 << 20)
    };
    let (log, _) = Log::open(d.path(), cfg.clone()).unwrap();
    log.append(
        keyed_batch(&[put("a", "1", 1), put("a", "2", 1)], Compression::None),
        0,
        0,
    )
    .unwrap();
    roll(&log);
    assert!(!log.compact_forced(10).unwrap().cleaned);
    assert_eq!(read_records(&log).0.len(), 2);

    // Compact only: retention.ms does not delete; compact,delete: it does.
    log.set_config(LogConfig {
        retention_ms: 1,
        compact: true,
        delete: false,
        ..cfg.clone()
    });
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    log.set_config(LogConfig {
        retention_ms: 1,
        compact: true,
        delete: true,
        ..cfg
    });
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 1);
}

/// A log with two closed segments full of superseded values, its expected
/// view, and the compacted copy of the first segment file.
fn crash_fixture(dir: &Path) -> (BTreeMap<String, String>, i64, Vec<u8>) {
    let cfg = compact_config(1 << 20);
    let (log, _) = Log::open(dir, cfg.clone()).unwrap();
    let mut expected = BTreeMap::new();
    for seg in 0..2 {
        for b in 0..5 {
            // Segment 0 also holds k10..k14, which segment 1 does not update.
            let keys = if seg == 0 { 15 } else { 10 };
            let recs: Vec<Rec> = (0..keys)
                .map(|k| {
                    let v = format!("s{seg}b{b}");
                    expected.insert(format!("k{k}"), v.clone());
                    put(&format!("k{k}"), &v, 1)
                })
                .collect();
            log.append(keyed_batch(&recs, Compression::None), 0, 0)
                .unwrap();
        }
        roll(&log);
    }
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    // Compact a copy to get the cleaned bytes of segment 0.
    let copy = tempfile::tempdir().unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let (c, _) = Log::open(copy.path(), cfg).unwrap();
    c.compact_forced(10).unwrap();
    drop(c);
    let cleaned = fs::read(copy.path().join("00000000000000000000.log")).unwrap();
    (expected, end, cleaned)
}

#[test]
fn a_crash_between_the_swap_renames_is_finished_on_open() {
    let d = tempfile::tempdir().unwrap();
    let (expected, end, cleaned) = crash_fixture(d.path());
    let seg0 = d.path().join("00000000000000000000.log");
    let original = fs::read(&seg0).unwrap();
    assert!(cleaned.len() < original.len());
    // State after `.cleaned -> .swap`, before `.swap -> .log`.
    fs::write(d.path().join("00000000000000000000.log.swap"), &cleaned).unwrap();
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    assert!(!d.path().join("00000000000000000000.log.swap").exists());
    assert_eq!(fs::read(&seg0).unwrap(), cleaned);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
    let (records, _) = read_records(&log);
    assert_offsets_increase(&records);
    assert_eq!(view(&records), expected);
    // Segment 0 now holds only k10..k14 once (its last batch); segment 1 untouched.
    assert_eq!(records.len(), 5 + 50);
    // Its indexes were rebuilt for the new contents: a read in the middle works.
    let r = log.read(45, 1 << 20, false, i64::MAX).unwrap();
    assert!(!r.records.is_empty());
}

#[test]
fn a_partial_cleaned_file_is_discarded_on_open() {
    let d = tempfile::tempdir().unwrap();
    let (expected, end, cleaned) = crash_fixture(d.path());
    let seg0 = d.path().join("00000000000000000000.log");
    let original = fs::read(&seg0).unwrap();
    // A torn `.cleaned` file: the crash happened while writing it.
    fs::write(
        d.path().join("00000000000000000000.log.cleaned"),
        &cleaned[..cleaned.len() / 2],
    )
    .unwrap();
    // And a `.swap` for a segment that retention already deleted.
    fs::write(d.path().join("00000000000000000999.log.swap"), &cleaned).unwrap();
    let (log, report) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert!(!d.path().join("00000000000000000000.log.cleaned").exists());
    assert!(!d.path().join("00000000000000000999.log.swap").exists());
    assert!(!d.path().join("00000000000000000999.log").exists());
    assert_eq!(fs::read(&seg0).unwrap(), original);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));
    let (records, _) = read_records(&log);
    assert_eq!(records.len(), 125);
    assert_eq!(view(&records), expected);
    // Compaction still works afterwards.
    log.compact_forced(10).unwrap();
    let (records, _) = read_records(&log);
    assert_eq!(records.len(), 15);
    assert_eq!(view(&records), expected);
}

#[test]
fn concurrent_appends_reads_and_compaction_never_lose_a_latest_value() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(2048)).unwrap();
    let log = Arc::new(log);
    // key -> (offset, value) of its latest append, updated after the append returns.
    let model: Arc<Mutex<HashMap<String, (i64, String)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let (log, model) = (log.clone(), model.clone());
        std::thread::spawn(move || {
            for i in 0..600i64 {
                let k = format!("k{}", (i * 7) % 40);
                let v = format!("v{i}");
                let info = log
                    .append(keyed_batch(&[put(&k, &v, i)], Compression::None), 0, i)
                    .unwrap();
                model.lock().unwrap().insert(k, (info.base_offset, v));
            }
        })
    };
    let compactor = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::Acquire) {
                if log.compact_forced(1_000_000).unwrap().segments_rewritten > 0 {
                    passes += 1;
                }
            }
            passes
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, model, done) = (log.clone(), model.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Acquire) {
                    let before = model.lock().unwrap().clone();
                    let (records, _) = read_records(&log);
                    assert_offsets_increase(&records);
                    let mut latest: HashMap<&str, i64> = HashMap::new();
                    for r in &records {
                        latest.insert(&r.key, r.offset);
                    }
                    for (k, (offset, _)) in &before {
                        let seen = latest.get(k.as_str()).copied().unwrap_or(-1);
                        assert!(
                            seen >= *offset,
                            "key {k}: latest offset {offset} missing (saw {seen})"
                        );
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    writer.join().unwrap();
    // Let the compactor catch up with the final state once more.
    roll(&log);
    done.store(true, Ordering::Release);
    let passes = compactor.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(passes > 0, "compaction ran during the appends");
    log.compact_forced(1_000_000).unwrap();
    let (records, _) = read_records(&log);
    let want: BTreeMap<String, String> = model
        .lock()
        .unwrap()
        .iter()
        .map(|(k, (_, v))| (k.clone(), v.clone()))
        .collect();
    assert_eq!(records.len(), 40);
    assert_eq!(view(&records), want);
    assert_eq!(log.log_end_offset(), 600);
}

#[test]
fn keyless_records_are_refused_on_a_compacted_log_only() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    for c in [Compression::None, Compression::Gzip] {
        let b = keyed_batch(
            &[
                put("a", "1", 1),
                (None, Some("x".into()), 1),
                put("b", "2", 1),
                (None, Some("y".into()), 1),
            ],
            c,
        );
        match log.append(b, 0, 0) {
            // Every keyless record is named, not just the first.
            Err(Error::KeylessRecordOnCompactedTopic { records }) if records == [1, 3] => {}
            other => panic!("expected a keyless refusal, got {other:?}"),
        }
    }
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    // A keyed tombstone is fine.
    log.append(keyed_batch(&[tombstone("a", 1)], Compression::None), 0, 0)
        .unwrap();

    let d2 = tempfile::tempdir().unwrap();
    let (plain, _) = Log::open(d2.path(), LogConfig::default()).unwrap();
    let b = keyed_batch(&[(None, Some("x".into()), 1)], Compression::None);
    assert_eq!(plain.append(b, 0, 0).unwrap().base_offset, 0);
}

mod model {
    use std::collections::{BTreeMap, HashSet};

    use kafka_protocol::records::Compression;
    use proptest::prelude::*;
    use runnel_log::{Log, LogConfig};

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put {
            key: u8,
            compressed: bool,
        },
        Delete {
            key: u8,
        },
        Roll,
        /// A forced pass; `expire` puts the clock past every tombstone's
        /// retention; `roll_first` closes the active segment before it.
        Compact {
            expire: bool,
            roll_first: bool,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u8..8, any::<bool>()).prop_map(|(key, compressed)| Op::Put { key, compressed }),
            2 => (0u8..8).prop_map(|key| Op::Delete { key }),
            2 => Just(Op::Roll),
            2 => (any::<bool>(), any::<bool>())
                .prop_map(|(expire, roll_first)| Op::Compact { expire, roll_first }),
            1 => Just(Op::Reopen),
        ]
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 400,
            segment_ms: 1,
            index_interval_bytes: 100,
            compact: true,
            delete: false,
            delete_retention_ms: 1000,
            ..LogConfig::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn the_latest_value_per_key_matches_a_model_map_across_compactions(
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let d = tempfile::tempdir().unwrap();
            let (mut log, _) = Log::open(d.path(), config()).unwrap();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            let mut appended = 0i64;
            for (n, op) in ops.iter().enumerate() {
                match op {
                    Op::Put { key, compressed } => {
                        let c = if *compressed { Compression::Lz4 } else { Compression::None };
                        let (k, v) = (format!("k{key}"), format!("v{n}"));
                        // Two records per batch, the first superseded at once by the second.
                        let recs = [put(&k, &format!("{v}-old"), 10), put(&k, &v, 10)];
                        log.append(keyed_batch(&recs, c), 0, 0).unwrap();
                        model.insert(k, v);
                        appended += 2;
                    }
                    Op::Delete { key } => {
                        let k = format!("k{key}");
                        log.append(keyed_batch(&[tombstone(&k, 10)], Compression::None), 0, 0).unwrap();
                        model.remove(&k);
                        appended += 1;
                    }
                    Op::Roll => roll(&log),
                    Op::Compact { expire, roll_first } => {
                        if *roll_first {
                            roll(&log);
                        }
                        let now = if *expire { 1_000_000 } else { 20 };
                        log.compact_forced(now).unwrap();
                        // With everything closed, a pass leaves each key at most once,
                        // and with an expired clock no tombstone at all.
                        let (records, _) = read_records(&log);
                        let mut seen = HashSet::new();
                        for r in records.iter().filter(|_| *roll_first) {
                            prop_assert!(seen.insert(r.key.clone()), "key {} twice after compaction", r.key);
                            if *expire {
                                prop_assert!(r.value.is_some(), "tombstone {} kept", r.key);
                            }
                        }
                    }
                    Op::Reopen => {
                        drop(log);
                        log = Log::open(d.path(), config()).unwrap().0;
                    }
                }
                prop_assert_eq!(log.log_end_offset(), appended);
                prop_assert_eq!(log.log_start_offset(), 0);
                let (records, _) = read_records(&log);
                assert_offsets_increase(&records);
                prop_assert_eq!(&view(&records), &model);
            }
        }
    }
}

/// Header fields of the first batch in `bytes`: (base offset, last offset,
/// attributes, max timestamp, producer id, producer epoch, base sequence).
fn header(bytes: &Bytes) -> (i64, i64, i16, i64, i64, i16, i32) {
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let i16_at = |at: usize| i16::from_be_bytes(bytes[at..at + 2].try_into().unwrap());
    (
        i64_at(0),
        i64_at(0) + i64::from(i32_at(23)),
        i16_at(21),
        i64_at(35),
        i64_at(43),
        i16_at(51),
        i32_at(53),
    )
}

#[test]
fn a_rewritten_batch_keeps_producer_fields_its_last_offset_and_log_append_time() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: runnel_log::TimestampType::LogAppendTime,
        ..compact_config(1 << 20)
    };
    let (log, _) = Log::open(d.path(), cfg).unwrap();
    // An idempotent producer's batch: a, b, c, d (offsets 0..3, sequences 7..10).
    let records: Vec<Record> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 42,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: 7 + i as i32,
            timestamp: 100 + i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("{k}-1"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Gzip,
        },
    )
    .unwrap();
    log.append(buf.freeze(), 5, 5000).unwrap();
    // a and d are superseded by a later batch: b and c remain of the first one.
    log.append(
        keyed_batch(&[put("a", "a-2", 1), put("d", "d-2", 1)], Compression::None),
        5,
        6000,
    )
    .unwrap();
    roll(&log);
    log.compact_forced(7000).unwrap();
    let first = log.read(0, 1 << 20, true, i64::MAX).unwrap().records;
    let (base, last, attributes, max_ts, pid, epoch, seq) = header(&first);
    assert_eq!(base, 1, "the batch now starts at its first retained record");
    assert_eq!(last, 3, "and still ends at the original last offset");
    assert_eq!(attributes & 0x7, 1, "still gzip");
    assert_ne!(attributes & 0x8, 0, "still LogAppendTime");
    assert_eq!(max_ts, 5000, "the append time is kept");
    assert_eq!(
        (pid, epoch, seq),
        (42, 3, 8),
        "sequence of the first retained record"
    );
    let mut b = first.clone();
    let sets = RecordBatchDecoder::decode_all(&mut b).unwrap(); // checks the CRC
    let kept: Vec<(i64, Option<Bytes>, i32)> = sets[0]
        .records
        .iter()
        .map(|r| (r.offset, r.key.clone(), r.sequence))
        .collect();
    assert_eq!(
        kept,
        vec![
            (1, Some(Bytes::from("b")), 8),
            (2, Some(Bytes::from("c")), 9)
        ]
    );
    // A reader continuing after the batch's last offset finds the next batch.
    let next = log.read(last + 1, 1 << 20, true, i64::MAX).unwrap().records;
    assert_eq!(header(&next).0, 4);
    // Reopening rebuilds the same view (the rewritten header passes recovery's checks).
    drop(log);
    let (log, report) = Log::open(d.path(), compact_config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(read_records(&log).0.len(), 4);
}
