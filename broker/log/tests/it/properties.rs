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
}
