//! Append/read round trips.

use kafka_protocol::records::Compression;
use runnel_log::{Log, LogConfig};

use crate::common::*;

#[test]
fn append_then_read_returns_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogConfig::default()).unwrap();
    let a = log
        .append(batch("a", 3, 1000, Compression::None), 0, 5000)
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    let b = log
        .append(batch("b", 2, 2000, Compression::Gzip), 0, 5000)
        .unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    let got = read_all(&log, 0);
    let want: Vec<(i64, String)> = vec![(0, "a-0"), (1, "a-1"), (2, "a-2"), (3, "b-0"), (4, "b-1")]
        .into_iter()
        .map(|(o, s)| (o, s.to_string()))
        .collect();
    assert_eq!(got, want);
}
