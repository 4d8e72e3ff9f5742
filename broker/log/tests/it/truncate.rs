//! `truncate_to`.

use kafka_protocol::records::Compression;
use runnel_log::Log;

use crate::common::*;

#[test]
fn truncate_to_cuts_whole_batches_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch("b0", 5, 0, Compression::None);
    let (log, _) = Log::open(dir.path(), small_config(one.len() as u64 * 2)).unwrap();
    for i in 0..6 {
        log.append(batch(&format!("b{i}"), 5, 0, Compression::None), 0, 0)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    // Offset 17 is inside batch 3 (15..19): that batch goes entirely.
    log.truncate_to(17).unwrap();
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.segment_count(), 2);
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 15);
    assert_eq!(got.last().unwrap(), &(14, "b2-4".to_string()));
    // Appends continue at the new end, also after reopening.
    let info = log
        .append(batch("new", 2, 0, Compression::None), 0, 0)
        .unwrap();
    assert_eq!(info.base_offset, 15);
    log.truncate_to(10).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    drop(log);
    let (log, report) = Log::open(dir.path(), small_config(one.len() as u64 * 2)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log, 0).len(), 10);
    assert_eq!(
        log.append(batch("z", 1, 0, Compression::None), 0, 0)
            .unwrap()
            .base_offset,
        10
    );
}

#[test]
fn truncate_to_zero_empties_the_log_and_at_end_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), small_config(1 << 20)).unwrap();
    for _ in 0..3 {
        log.append(batch("a", 2, 0, Compression::None), 0, 0)
            .unwrap();
    }
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    log.truncate_to(0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(0, 100, true, i64::MAX).unwrap().records.is_empty());
    assert_eq!(
        log.append(batch("b", 1, 0, Compression::None), 0, 0)
            .unwrap()
            .base_offset,
        0
    );
}
