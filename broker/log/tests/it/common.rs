//! Helpers: building real record batches with the kafka-protocol encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_log::{Log, LogConfig};

/// A batch of `n` records with values `"{tag}-{i}"` and timestamps `ts0 + i`.
pub(crate) fn batch(tag: &str, n: usize, ts0: i64, compression: Compression) -> Bytes {
    producer_batch(tag, n, ts0, compression, -1, -1, -1)
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
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder splits batches unless offset - sequence is constant; the
            // header's baseSequence is the first record's (-1 when not idempotent).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: ts0 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
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
