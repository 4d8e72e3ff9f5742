//! Test fixtures shared by every Runnel crate's tests (a dev-dependency only).
//!
//! Record batches are built with `kafka-protocol`'s own encoder, as a producer
//! would build them, so a test never depends on a hand-written codec that could
//! agree with ours on a bug. [`record`] makes one record with a producer's
//! defaults; [`encode`] numbers records from 0 (the log assigns real offsets)
//! and encodes them as one magic-v2 batch ([`encode_at`] at a given base
//! offset); [`producer_batch`] makes it an idempotent producer's.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record as a non-idempotent producer sends it: CreateTime `timestamp`, no
/// headers; `value: None` is a tombstone.
pub fn record(key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Default::default(),
    }
}

/// One batch holding `records` in order, with relative offsets 0.. (and, for
/// an idempotent producer, sequences following the first record's: the
/// encoder splits a batch unless offset - sequence is constant).
pub fn encode(records: &[Record], compression: Compression) -> Bytes {
    encode_at(0, records, compression)
}

/// [`encode`] with the batch's base offset set, as a broker's log holds it
/// (for tests of code that reads fetched batches).
pub fn encode_at(base_offset: i64, records: &[Record], compression: Compression) -> Bytes {
    let first_sequence = records.first().map_or(-1, |r| r.sequence);
    let numbered: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                offset: base_offset + i64::from(i),
                sequence: first_sequence.wrapping_add(i),
                ..r.clone()
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, &numbered, &options) {
        panic!("kafka-protocol cannot encode a test batch: {e}");
    }
    buf.freeze()
}

/// `records` as an idempotent producer sends them: the producer id and epoch
/// on every record, sequences from `base_sequence`.
pub fn producer_batch(
    mut records: Vec<Record>,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    for r in &mut records {
        r.producer_id = producer_id;
        r.producer_epoch = producer_epoch;
    }
    if let Some(first) = records.first_mut() {
        first.sequence = base_sequence;
    }
    encode(&records, compression)
}

/// `records` as a transactional producer sends them: [`producer_batch`] with
/// the transactional attribute set.
pub fn transactional_batch(
    mut records: Vec<Record>,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    for r in &mut records {
        r.transactional = true;
    }
    producer_batch(
        records,
        compression,
        producer_id,
        producer_epoch,
        base_sequence,
    )
}

/// A transaction marker as the partition leader writes it: one control record
/// whose key is `(version 0, type)` (0 abort, 1 commit) and whose value is
/// `(version 0, coordinator_epoch)`, in a transactional control batch.
pub fn control_batch(producer_id: i64, producer_epoch: i16, commit: bool, timestamp: i64) -> Bytes {
    let key: [u8; 4] = [0, 0, 0, u8::from(commit)];
    let value: [u8; 6] = [0, 0, 0, 0, 0, 0];
    let mut r = record(Some(&key), Some(&value), timestamp);
    r.transactional = true;
    r.control = true;
    r.producer_id = producer_id;
    r.producer_epoch = producer_epoch;
    encode(&[r], Compression::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_batch_decodes_back_to_its_records_numbered_from_zero() {
        let batch = producer_batch(
            vec![
                record(Some(b"k0"), Some(b"v0"), 10),
                record(Some(b"k1"), None, 11),
            ],
            Compression::Gzip,
            7,
            2,
            40,
        );
        let mut buf = batch.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decodes");
        assert_eq!(sets.len(), 1, "one batch");
        let records = &sets[0].records;
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].offset, records[1].offset), (0, 1));
        assert_eq!((records[0].sequence, records[1].sequence), (40, 41));
        assert_eq!(records[1].producer_id, 7);
        assert_eq!(records[1].producer_epoch, 2);
        assert_eq!(records[1].timestamp, 11);
        assert_eq!(records[1].value, None, "a tombstone stays null");
        assert_eq!(records[0].value.as_deref(), Some(&b"v0"[..]));
    }
}
