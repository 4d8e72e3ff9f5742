//! Record batches the broker writes itself — the coordinators' records in
//! `__consumer_offsets` and `__transaction_state`, transaction markers —
//! built with kafka-protocol's encoder as a producer would build them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One uncompressed batch of keyed records (`None` values are tombstones),
/// stamped with `leader_epoch`. With `producer` the batch is that producer's
/// transactional batch, and with `control` its transaction marker. `None`
/// if the encoder refuses (it does not for such records).
pub(crate) fn encode(
    records: &[(Bytes, Option<Bytes>)],
    leader_epoch: i32,
    now: i64,
    producer: Option<(i64, i16)>,
    control: bool,
) -> Option<Bytes> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control,
            delete_horizon: false,
            partition_leader_epoch: leader_epoch,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    match RecordBatchEncoder::encode(&mut buf, &records, &options) {
        Ok(()) => Some(buf.freeze()),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode an internal batch");
            None
        }
    }
}
