//! Property tests: random appends, rolls and reopens; random tail truncation.

use std::fs;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use runnel_log::{Log, LogConfig};

use crate::common::*;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, compressed: bool },
    Roll,
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..20, any::<bool>()).prop_map(|(records, compressed)| Op::Append { records, compressed }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 200,
        segment_ms: 1000,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reads_after_reopen_return_exactly_what_was_appended(
        ops in prop::collection::vec(op(), 1..40),
        segment_bytes in 300u64..3000,
    ) {
        let d = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(d.path(), config(segment_bytes)).unwrap();
        let mut model: Vec<(i64, String)> = Vec::new();
        let mut now = 0i64;
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Append { records, compressed } => {
                    let c = if *compressed { Compression::Gzip } else { Compression::None };
                    let tag = format!("op{n}");
                    let info = log.append(batch(&tag, *records, now, c), 0, now).unwrap();
                    prop_assert_eq!(info.base_offset, model.len() as i64);
                    for i in 0..*records {
                        model.push((model.len() as i64, format!("{tag}-{i}")));
                    }
                }
                Op::Roll => {
                    now += 1000;
                    log.maybe_roll(now).unwrap();
                }
                Op::Reopen { clean } => {
                    if *clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    let (l, report) = Log::open(d.path(), config(segment_bytes)).unwrap();
                    prop_assert_eq!(report.truncated_bytes, 0);
                    log = l;
                }
            }
        }
        drop(log);
        let (log, _) = Log::open(d.path(), config(segment_bytes)).unwrap();
        prop_assert_eq!(log.log_end_offset(), model.len() as i64);
        prop_assert_eq!(read_all(&log, 0), model);
    }

    #[test]
    fn recovery_after_a_random_cut_yields_a_prefix_of_the_appended_batches(
        sizes in prop::collection::vec(1usize..15, 1..25),
        cut_fraction in 0.0f64..1.0,
    ) {
        let d = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(d.path(), config(1 << 20)).unwrap();
        let mut model: Vec<(i64, String)> = Vec::new();
        let mut boundaries = vec![0u64];
        for (n, records) in sizes.iter().enumerate() {
            let tag = format!("b{n}");
            let b: Bytes = batch(&tag, *records, 0, Compression::None);
            log.append(b.clone(), 0, 0).unwrap();
            boundaries.push(boundaries.last().unwrap() + b.len() as u64);
            for i in 0..*records {
                model.push((model.len() as i64, format!("{tag}-{i}")));
            }
        }
        drop(log);
        let path = d.path().join("00000000000000000000.log");
        let full = fs::metadata(&path).unwrap().len();
        let cut = (full as f64 * cut_fraction) as u64;
        fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
        let (log, report) = Log::open(d.path(), config(1 << 20)).unwrap();
        // The kept length is the largest batch boundary <= cut.
        let kept_batches = boundaries.iter().filter(|b| **b <= cut).count() - 1;
        prop_assert_eq!(report.truncated_bytes, cut - boundaries[kept_batches]);
        let kept_records: usize = sizes[..kept_batches].iter().sum();
        prop_assert_eq!(log.log_end_offset(), kept_records as i64);
        prop_assert_eq!(read_all(&log, 0), model[..kept_records].to_vec());
    }

    #[test]
    fn a_read_returns_the_whole_batches_a_walk_over_the_stored_bytes_finds(
        sizes in prop::collection::vec((1usize..12, any::<bool>()), 1..40),
        segment_bytes in 400u64..4000,
        reads in prop::collection::vec((0.0f64..1.0, 0usize..3000, any::<bool>(), 0.0f64..1.2), 1..12),
    ) {
        // Reads find their end from batch headers and the sparse index (for zero-copy
        // sends); the model reads every byte and walks the batches in memory.
        let d = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(d.path(), config(segment_bytes)).unwrap();
        let mut now = 0i64;
        for (n, (records, roll)) in sizes.iter().enumerate() {
            log.append(batch(&format!("b{n}"), *records, now, Compression::None), 0, now).unwrap();
            if *roll {
                now += 1000;
                log.maybe_roll(now).unwrap();
            }
        }
        let end = log.log_end_offset();
        // Every batch as (base offset, last offset, bytes), in order.
        let all = log.read(0, usize::MAX, true, i64::MAX).unwrap().records;
        let mut batches = Vec::new();
        let mut pos = 0usize;
        while pos < all.len() {
            let base = i64::from_be_bytes(all[pos..pos + 8].try_into().unwrap());
            let len = i32::from_be_bytes(all[pos + 8..pos + 12].try_into().unwrap()) as usize + 12;
            let delta = i32::from_be_bytes(all[pos + 23..pos + 27].try_into().unwrap());
            batches.push((base, base + i64::from(delta), all.slice(pos..pos + len)));
            pos += len;
        }
        for (at, max_bytes, min_one, limit) in reads {
            let offset = ((end as f64) * at) as i64;
            let max_offset = ((end as f64) * limit) as i64;
            // The model: from the batch holding `offset`, whole batches below `max_offset`
            // while they fit in `max_bytes` (the first one always with `min_one`).
            let mut want = Vec::new();
            for (base, last, bytes) in batches.iter().filter(|b| b.1 >= offset) {
                let _ = base;
                if *last >= max_offset.min(end) {
                    break;
                }
                let taken: usize = want.iter().map(Bytes::len).sum();
                let first = want.is_empty();
                if taken + bytes.len() > max_bytes && !(first && min_one) {
                    break;
                }
                want.push(bytes.clone());
            }
            let want: Vec<u8> = want.concat();
            let got = log.read(offset, max_bytes, min_one, max_offset).unwrap();
            prop_assert_eq!(&got.records[..], &want[..], "read({}, {}, {}, {})", offset, max_bytes, min_one, max_offset);
            let slices = log.read_slices(offset, max_bytes, min_one, max_offset).unwrap();
            let mut sent = Vec::new();
            for s in &slices.slices {
                sent.extend_from_slice(&s.to_bytes().unwrap());
            }
            prop_assert_eq!(slices.len, sent.len());
            prop_assert_eq!(&sent[..], &want[..]);
        }
    }
}
