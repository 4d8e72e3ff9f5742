//! Helpers: building real record batches with the kafka-protocol encoder.

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use runnel_log::{Log, LogConfig};

/// A batch of `n` records with keys `"k{i}"`, values `"{tag}-{i}"` and timestamps `ts0 + i`.
pub(crate) fn batch(tag: &str, n: usize, ts0: i64, compression: Compression) -> Bytes {
    runnel_testkit::encode(&records(tag, n, ts0), compression)
}

/// A batch from an idempotent producer.
pub(crate) fn producer_batch(
    tag: &str,
    n: usize,
    ts0: i64,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    runnel_testkit::producer_batch(
        records(tag, n, ts0),
        compression,
        producer_id,
        producer_epoch,
        base_sequence,
    )
}

fn records(tag: &str, n: usize, ts0: i64) -> Vec<Record> {
    (0..n)
        .zip(ts0..)
        .map(|(i, ts)| {
            runnel_testkit::record(
                Some(format!("k{i}").as_bytes()),
                Some(format!("{tag}-{i}").as_bytes()),
                ts,
            )
        })
        .collect()
}

/// Values of all records in `bytes` (concatenated batches), with their offsets.
pub(crate) fn decode_values(bytes: &Bytes) -> Vec<(i64, String)> {
    let mut b = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut b).unwrap();
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

/// Reads every record from `from` to the end, batch by batch.
pub(crate) fn read_all(log: &Log, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, true, end).unwrap();
        assert!(
            !r.records.is_empty(),
            "no data at offset {offset} below end {end}"
        );
        let recs = decode_values(&r.records);
        let last = recs.last().unwrap().0;
        out.extend(recs.into_iter().filter(|(o, _)| *o >= offset));
        offset = last + 1;
    }
    out
}

#[allow(dead_code)]
/// A config with small segments for tests.
pub(crate) fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}
