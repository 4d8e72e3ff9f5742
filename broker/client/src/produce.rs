//! Producing: records are partitioned (murmur2 for keys, a sticky partition
//! for keyless records), gathered into one record batch per partition, and
//! sent with one Produce request per leader when the buffer fills or on flush.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
};
use runnel_log::clock::now_ms;

use crate::client::{Client, Route, TopicMetadata};
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;

/// How many acknowledgements a Produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the broker sends no response.
    None,
    /// The leader has written the batch.
    Leader,
    /// Every in-sync replica has the batch (fsynced, on Runnel).
    All,
}

impl Acks {
    /// The wire value: 0, 1 or -1.
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Acks, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks must be 0, 1 or all, not '{other}'")),
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Key; decides the partition unless `partition` is set.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Explicit partition, overriding the partitioner.
    pub partition: Option<i32>,
    /// Create time in ms since the epoch; `None` = now.
    pub timestamp: Option<i64>,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// Flush once this many bytes of records are buffered. Kept well below
    /// the broker's default message.max.bytes (1 MiB) since one partition's
    /// records form one batch.
    pub buffer_bytes: usize,
    /// Retries of a batch after a retriable broker error.
    pub retries: u32,
    /// Create the topic if the broker auto-creates topics.
    pub allow_auto_create: bool,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            acks: Acks::All,
            buffer_bytes: 512 * 1024,
            retries: 5,
            allow_auto_create: true,
        }
    }
}

/// A batching producer for one topic.
#[derive(Debug)]
pub struct Producer<'c> {
    client: &'c Client,
    topic: String,
    config: ProducerConfig,
    meta: TopicMetadata,
    /// Buffered records per partition, in send order.
    pending: BTreeMap<i32, Vec<Record>>,
    pending_bytes: usize,
    /// Partition for keyless records; moves on after each flush that used it,
    /// so keyless records spread round-robin one batch at a time.
    sticky: i32,
    /// Records acknowledged (or sent, with acks=0) so far.
    sent: u64,
}

impl<'c> Producer<'c> {
    /// A producer for `topic`, which must exist unless the broker auto-creates it.
    pub async fn new(
        client: &'c Client,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Producer<'c>> {
        let meta = client
            .topic_with_leaders(topic, config.allow_auto_create)
            .await?;
        // Start the sticky partition somewhere random so that many short
        // producer runs do not all pile onto partition 0.
        let seed = RandomState::new().build_hasher().finish();
        let sticky = (seed % meta.partitions.len().max(1) as u64) as i32;
        Ok(Producer {
            client,
            topic: topic.to_string(),
            config,
            meta,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            sticky,
            sent: 0,
        })
    }

    /// Number of partitions of the topic.
    pub fn partition_count(&self) -> i32 {
        self.meta.partition_count()
    }

    /// Records acknowledged by the broker (with acks=0: sent) so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether any records wait to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The partition `record` goes to.
    pub fn partition_for(&self, record: &ProducerRecord) -> Result<i32> {
        match (record.partition, &record.key) {
            (Some(p), _) => {
                self.meta.partition(p)?;
                Ok(p)
            }
            (None, Some(key)) => Ok(partition_for_key(key, self.partition_count())),
            (None, None) => Ok(self.sticky),
        }
    }

    /// Buffers a record, sending the buffer when it is full.
    pub async fn send(&mut self, record: ProducerRecord) -> Result<()> {
        let partition = self.partition_for(&record)?;
        let size = record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + 24;
        let batch = self.pending.entry(partition).or_default();
        let offset = batch.len() as i64;
        batch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder starts a new batch whenever offset - sequence
            // changes; keeping it constant puts all records in one batch
            // whose base sequence is -1 (not idempotent).
            sequence: (offset as i32).wrapping_sub(1),
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            key: record.key,
            value: record.value,
            headers: IndexMap::new(),
        });
        self.pending_bytes += size;
        if self.pending_bytes >= self.config.buffer_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends everything buffered and waits for the acknowledgements.
    pub async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        if pending.contains_key(&self.sticky) && self.partition_count() > 0 {
            self.sticky = (self.sticky + 1) % self.partition_count();
        }
        let mut batches: Vec<(i32, usize, Bytes)> = Vec::with_capacity(pending.len());
        for (partition, records) in pending {
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                records.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .map_err(|e| Error::InvalidInput(format!("cannot encode record batch: {e}")))?;
            batches.push((partition, records.len(), buf.freeze()));
        }

        let mut attempt = 0;
        loop {
            let failed = self.send_batches(&batches).await?;
            match failed {
                None => return Ok(()),
                Some((err, retry)) if attempt < self.config.retries => {
                    attempt += 1;
                    tracing::debug!(%err, attempt, "retrying produce after retriable error");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    self.meta = self
                        .client
                        .topic_with_leaders(&self.topic, self.config.allow_auto_create)
                        .await?;
                    batches = retry;
                }
                Some((err, _)) => return Err(err),
            }
        }
    }

    /// Sends batches grouped by leader. Returns the first retriable error
    /// together with the batches that should be retried; non-retriable errors
    /// are returned as `Err`.
    #[allow(clippy::type_complexity)]
    async fn send_batches(
        &mut self,
        batches: &[(i32, usize, Bytes)],
    ) -> Result<Option<(Error, Vec<(i32, usize, Bytes)>)>> {
        let mut by_leader: BTreeMap<i32, Vec<&(i32, usize, Bytes)>> = BTreeMap::new();
        for b in batches {
            let leader = self.meta.partition(b.0)?.leader;
            by_leader.entry(leader).or_default().push(b);
        }
        let mut retry: Vec<(i32, usize, Bytes)> = Vec::new();
        let mut first_err: Option<Error> = None;
        let timeout_ms =
            i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        for (leader, group) in by_leader {
            if leader < 0 {
                let p = group.first().map_or(-1, |b| b.0);
                first_err.get_or_insert(Error::NoLeader {
                    topic: self.topic.clone(),
                    partition: p,
                });
                retry.extend(group.into_iter().cloned());
                continue;
            }
            let topic_id = self.meta.topic_id;
            let acks = self.config.acks;
            // Produce v13 addresses topics by id; without one, stay below it.
            let max_version = if topic_id.is_nil() { 12 } else { i16::MAX };
            let build = |version: i16| {
                let mut td = TopicProduceData::default().with_partition_data(
                    group
                        .iter()
                        .map(|(p, _, bytes)| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(bytes.clone()))
                        })
                        .collect(),
                );
                td = if version >= 13 {
                    td.with_topic_id(topic_id)
                } else {
                    td.with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                };
                Ok(ProduceRequest::default()
                    .with_acks(acks.code())
                    .with_timeout_ms(timeout_ms)
                    .with_topic_data(vec![td]))
            };
            let route = Route::Node(leader);
            if acks == Acks::None {
                self.client
                    .request_without_response(route, max_version, build)
                    .await?;
                self.sent += group.iter().map(|b| b.1 as u64).sum::<u64>();
                continue;
            }
            let resp = match self.client.request(route, max_version, build).await {
                Ok(resp) => resp,
                // A dropped connection is worth one more try on a fresh one.
                Err(err @ (Error::Io { .. } | Error::Timeout { .. })) => {
                    first_err.get_or_insert(err);
                    retry.extend(group.into_iter().cloned());
                    continue;
                }
                Err(err) => return Err(err),
            };
            for t in resp.responses {
                for p in t.partition_responses {
                    let Some(batch) = group.iter().find(|b| b.0 == p.index) else {
                        continue;
                    };
                    if p.error_code == 0 {
                        self.sent += batch.1 as u64;
                        continue;
                    }
                    let err = Error::broker(
                        p.error_code,
                        format!("topic '{}' partition {}", self.topic, p.index),
                        p.error_message.map(|m| m.to_string()),
                    );
                    if err.is_retriable() {
                        first_err.get_or_insert(err);
                        retry.push((*batch).clone());
                    } else {
                        return Err(err);
                    }
                }
            }
        }
        Ok(first_err.map(|e| (e, retry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn acks_parse_like_kafka() {
        assert_eq!("0".parse::<Acks>(), Ok(Acks::None));
        assert_eq!("1".parse::<Acks>(), Ok(Acks::Leader));
        assert_eq!("all".parse::<Acks>(), Ok(Acks::All));
        assert_eq!("-1".parse::<Acks>(), Ok(Acks::All));
        assert!("2".parse::<Acks>().is_err());
        assert_eq!(Acks::All.code(), -1);
    }

    #[test]
    fn buffered_records_encode_as_one_non_idempotent_batch() {
        // Mirrors what `send` buffers, to pin the sequence trick it relies on.
        let records: Vec<Record> = (0..3i64)
            .map(|offset| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: (offset as i32).wrapping_sub(1),
                timestamp: 1_700_000_000_000 + offset,
                key: Some(Bytes::from(format!("k{offset}"))),
                value: Some(Bytes::from(format!("v{offset}"))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        let mut bytes = buf.freeze();
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).expect("info");
        assert_eq!(info.len(), 1, "one batch");
        assert_eq!(info[0].record_count, 3);
        assert_eq!(info[0].base_sequence, -1);
        assert_eq!(info[0].producer_id, -1);
        let set = RecordBatchDecoder::decode(&mut bytes).expect("decode");
        let values: Vec<_> = set.records.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                Some(Bytes::from("v0")),
                Some(Bytes::from("v1")),
                Some(Bytes::from("v2"))
            ]
        );
    }
}
