//! Fetching: one Fetch request per leader for a set of partition positions,
//! record batches decoded with the kafka-protocol decoder, and a simple
//! [`Consumer`] that keeps positions and interleaves partitions fairly.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::TimestampType;

use crate::admin::OffsetSpec;
use crate::client::{Client, Route, TopicMetadata, UNKNOWN_TOPIC_OR_PARTITION};
use crate::error::{Error, Result};

/// Bytes before a v2 batch's length field ends: baseOffset (8) + batchLength (4).
const BATCH_HEADER_PREFIX: usize = 12;
/// Position of the magic byte in a batch.
const MAGIC_OFFSET: usize = 16;
/// Position of lastOffsetDelta: after partitionLeaderEpoch, magic, crc and attributes.
const LAST_OFFSET_DELTA_OFFSET: usize = 23;

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Partition it came from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch.
    pub timestamp: i64,
    /// Whether the timestamp is the create or log-append time.
    pub timestamp_type: TimestampType,
    /// Key, if any.
    pub key: Option<Bytes>,
    /// Value; `None` for tombstones.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Limits for one Fetch request.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes` to arrive.
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering early.
    pub min_bytes: i32,
    /// Response size limit across partitions.
    pub max_bytes: i32,
    /// Per-partition size limit.
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        }
    }
}

/// One partition's share of a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// Partition index.
    pub partition: i32,
    /// Kafka error code (0 = none).
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Log start offset (-1 if the broker did not say).
    pub log_start_offset: i64,
    /// Records at or after the requested offset.
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch should start.
    pub next_offset: i64,
}

impl Client {
    /// Fetches from the leader of each partition in `positions` (partition,
    /// offset). Partition errors are reported in the result, not as `Err`.
    pub async fn fetch(
        &self,
        topic: &TopicMetadata,
        positions: &[(i32, i64)],
        options: &FetchOptions,
    ) -> Result<Vec<FetchedPartition>> {
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for &(p, offset) in positions {
            by_leader
                .entry(topic.partition(p)?.leader)
                .or_default()
                .push((p, offset));
        }
        let mut out = Vec::with_capacity(positions.len());
        for (leader, parts) in by_leader {
            if leader < 0 {
                return Err(Error::NoLeader {
                    topic: topic.name.clone(),
                    partition: parts.first().map_or(-1, |p| p.0),
                });
            }
            out.extend(self.fetch_from(leader, topic, &parts, options).await?);
        }
        Ok(out)
    }

    async fn fetch_from(
        &self,
        leader: i32,
        topic: &TopicMetadata,
        parts: &[(i32, i64)],
        options: &FetchOptions,
    ) -> Result<Vec<FetchedPartition>> {
        // Fetch v13+ addresses topics by id; without one, stay below it.
        let max_version = if topic.topic_id.is_nil() {
            12
        } else {
            i16::MAX
        };
        let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let resp = self
            .request(Route::Node(leader), max_version, |version| {
                let mut ft = FetchTopic::default().with_partitions(
                    parts
                        .iter()
                        .map(|&(p, offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(options.partition_max_bytes)
                        })
                        .collect(),
                );
                ft = if version >= 13 {
                    ft.with_topic_id(topic.topic_id)
                } else {
                    ft.with_topic(TopicName(StrBytes::from_string(topic.name.clone())))
                };
                Ok(FetchRequest::default()
                    .with_max_wait_ms(max_wait_ms)
                    .with_min_bytes(options.min_bytes)
                    .with_max_bytes(options.max_bytes)
                    .with_topics(vec![ft]))
            })
            .await?;
        crate::error::check(
            resp.error_code,
            || format!("fetch from topic '{}'", topic.name),
            None,
        )?;
        let requested: BTreeMap<i32, i64> = parts.iter().copied().collect();
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                let Some(&fetch_offset) = requested.get(&p.partition_index) else {
                    continue;
                };
                let (records, next_offset) = match (p.error_code, p.records) {
                    (0, Some(data)) => decode_records(p.partition_index, data, fetch_offset)
                        .map_err(|message| Error::CorruptRecords {
                            topic: topic.name.clone(),
                            partition: p.partition_index,
                            message,
                        })?,
                    _ => (Vec::new(), fetch_offset),
                };
                out.push(FetchedPartition {
                    partition: p.partition_index,
                    error_code: p.error_code,
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                    records,
                    next_offset,
                });
            }
        }
        Ok(out)
    }
}

/// Decodes the record batches of one partition's fetch data, keeping records
/// at or after `fetch_offset` (a fetch may start mid-batch, and the broker
/// returns whole batches), dropping control records, and ignoring a partial
/// batch at the end (the broker cuts responses at the byte limit). Returns
/// the records and the offset to fetch next.
pub fn decode_records(
    partition: i32,
    mut data: Bytes,
    fetch_offset: i64,
) -> std::result::Result<(Vec<ConsumerRecord>, i64), String> {
    let mut records = Vec::new();
    let mut next_offset = fetch_offset;
    while data.len() >= BATCH_HEADER_PREFIX {
        let length = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let Ok(length) = usize::try_from(length) else {
            return Err(format!("negative batch length {length}"));
        };
        let total = BATCH_HEADER_PREFIX + length;
        if total > data.len() {
            break; // partial trailing batch
        }
        let batch = data.split_to(total);
        if batch.len() <= LAST_OFFSET_DELTA_OFFSET + 4 {
            return Err(format!("record batch of {total} bytes is too short"));
        }
        let magic = batch[MAGIC_OFFSET];
        if magic != 2 {
            return Err(format!("record batch format v{magic} is not supported"));
        }
        let base_offset = i64::from_be_bytes([
            batch[0], batch[1], batch[2], batch[3], batch[4], batch[5], batch[6], batch[7],
        ]);
        let d = LAST_OFFSET_DELTA_OFFSET;
        let last_delta = i32::from_be_bytes([batch[d], batch[d + 1], batch[d + 2], batch[d + 3]]);
        let batch_end = base_offset + i64::from(last_delta) + 1;
        if batch_end <= fetch_offset {
            continue; // entirely before the position: skip without decoding
        }
        // Bounded: a stored batch claiming 2^31 records or decompressing
        // without end is an error, not an abort of the CLI or operator.
        let decoded = runnel_log::records::decode_batch(batch, max_uncompressed())
            .map_err(|e| e.to_string())?;
        records.extend(
            decoded
                .into_iter()
                .filter(|r| !r.control && r.offset >= fetch_offset)
                .map(|r| ConsumerRecord {
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    timestamp_type: r.timestamp_type,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                }),
        );
        next_offset = next_offset.max(batch_end);
    }
    Ok((records, next_offset))
}

/// The most bytes one fetched batch may decompress to: runnel-log's
/// allowance for compression ratios over a 16 MiB message (the client does not
/// know the topic's `max.message.bytes`; this is above any broker default).
fn max_uncompressed() -> usize {
    runnel_log::records::uncompressed_limit(16 * 1024 * 1024)
}

/// Where a consumer starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Earliest,
    /// The log end: only records produced from now on.
    Latest,
    /// An explicit offset.
    Offset(i64),
}

/// Reads a set of partitions of one topic, without a consumer group.
#[derive(Debug)]
pub struct Consumer<'c> {
    client: &'c Client,
    topic: TopicMetadata,
    options: FetchOptions,
    /// Next offset to fetch per partition.
    positions: BTreeMap<i32, i64>,
    /// Rotates which partition goes first in a request, so a busy partition
    /// cannot use up the response size limit every time.
    rotation: usize,
    /// Set after a retriable partition error: refresh leaders before the next fetch.
    stale_metadata: bool,
}

impl<'c> Consumer<'c> {
    /// A consumer of `partitions` (all when `None`) of `topic`, which must exist.
    pub async fn new(
        client: &'c Client,
        topic: &str,
        partitions: Option<&[i32]>,
        start: StartAt,
        options: FetchOptions,
    ) -> Result<Consumer<'c>> {
        let meta = client.topic_with_leaders(topic, false).await?;
        let parts: Vec<i32> = match partitions {
            Some(ps) => {
                for &p in ps {
                    meta.partition(p)?;
                }
                ps.to_vec()
            }
            None => meta.partitions.iter().map(|p| p.partition).collect(),
        };
        let positions = match start {
            StartAt::Offset(o) => parts.iter().map(|&p| (p, o)).collect(),
            StartAt::Earliest | StartAt::Latest => {
                let spec = if start == StartAt::Earliest {
                    OffsetSpec::Earliest
                } else {
                    OffsetSpec::Latest
                };
                client
                    .list_offsets(topic, &parts, spec)
                    .await?
                    .into_iter()
                    .map(|o| (o.partition, o.offset))
                    .collect()
            }
        };
        Ok(Consumer {
            client,
            topic: meta,
            options,
            positions,
            rotation: 0,
            stale_metadata: false,
        })
    }

    /// The next offset to be read from `partition`.
    pub fn position(&self, partition: i32) -> Option<i64> {
        self.positions.get(&partition).copied()
    }

    /// Fetches once from every partition and returns the records,
    /// interleaved round-robin across partitions. Waits up to the fetch
    /// `max_wait` when nothing is available.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if self.stale_metadata {
            self.topic = self
                .client
                .topic_with_leaders(&self.topic.name, false)
                .await?;
            self.stale_metadata = false;
        }
        let mut order: Vec<(i32, i64)> = self.positions.iter().map(|(&p, &o)| (p, o)).collect();
        if !order.is_empty() {
            let r = self.rotation % order.len();
            order.rotate_left(r);
            self.rotation = self.rotation.wrapping_add(1);
        }
        let fetched = self
            .client
            .fetch(&self.topic, &order, &self.options)
            .await?;
        let mut queues: Vec<VecDeque<ConsumerRecord>> = Vec::with_capacity(fetched.len());
        for f in fetched {
            match f.error_code {
                0 => {
                    self.positions.insert(f.partition, f.next_offset);
                    queues.push(f.records.into());
                }
                UNKNOWN_TOPIC_OR_PARTITION => {
                    // Either a leadership move or a deleted topic; the
                    // metadata refresh tells which (UnknownTopic if deleted).
                    self.stale_metadata = true;
                }
                code => {
                    let err = Error::broker(
                        code,
                        format!(
                            "topic '{}' partition {} at offset {}",
                            self.topic.name,
                            f.partition,
                            self.positions.get(&f.partition).copied().unwrap_or(-1)
                        ),
                        None,
                    );
                    if err.is_retriable() {
                        self.stale_metadata = true;
                    } else {
                        return Err(err);
                    }
                }
            }
        }
        if self.stale_metadata {
            // Do not spin on a partition that keeps failing.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(interleave(queues))
    }
}

/// Takes one record from each queue in turn until all are empty.
fn interleave(mut queues: Vec<VecDeque<ConsumerRecord>>) -> Vec<ConsumerRecord> {
    let total = queues.iter().map(VecDeque::len).sum();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for q in &mut queues {
            if let Some(r) = q.pop_front() {
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    fn batch(base: i64, values: &[&str]) -> Bytes {
        let records: Vec<_> = values
            .iter()
            .map(|v| runnel_testkit::record(None, Some(v.as_bytes()), 1_700_000_000_000))
            .collect();
        runnel_testkit::encode_at(base, &records, Compression::None)
    }

    fn values(records: &[ConsumerRecord]) -> Vec<(i64, String)> {
        records
            .iter()
            .map(|r| {
                let v = r
                    .value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).to_string());
                (r.offset, v.unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn fetch_from_mid_batch_skips_records_below_the_offset() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(10, &["a", "b", "c"]));
        data.extend_from_slice(&batch(13, &["d", "e"]));
        let (records, next) = decode_records(0, data.freeze(), 11).expect("decode");
        assert_eq!(
            values(&records),
            vec![
                (11, "b".into()),
                (12, "c".into()),
                (13, "d".into()),
                (14, "e".into())
            ]
        );
        assert_eq!(next, 15);
    }

    #[test]
    fn partial_trailing_batch_is_ignored() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, &["a"]));
        let second = batch(1, &["b", "c"]);
        data.extend_from_slice(&second[..second.len() - 3]);
        let (records, next) = decode_records(0, data.freeze(), 0).expect("decode");
        assert_eq!(values(&records), vec![(0, "a".into())]);
        assert_eq!(next, 1, "the cut batch is fetched again");
    }

    #[test]
    fn batches_wholly_before_the_offset_are_skipped() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, &["a", "b"]));
        data.extend_from_slice(&batch(2, &["c"]));
        let (records, next) = decode_records(0, data.freeze(), 2).expect("decode");
        assert_eq!(values(&records), vec![(2, "c".into())]);
        assert_eq!(next, 3);
    }

    #[test]
    fn empty_data_keeps_the_position() {
        let (records, next) = decode_records(0, Bytes::new(), 7).expect("decode");
        assert!(records.is_empty());
        assert_eq!(next, 7);
    }

    #[test]
    fn interleave_alternates_partitions() {
        let rec = |p: i32, o: i64| ConsumerRecord {
            partition: p,
            offset: o,
            timestamp: 0,
            timestamp_type: TimestampType::Creation,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        let out = interleave(vec![
            VecDeque::from(vec![rec(0, 0), rec(0, 1), rec(0, 2)]),
            VecDeque::from(vec![rec(1, 0)]),
        ]);
        let order: Vec<(i32, i64)> = out.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(order, vec![(0, 0), (1, 0), (0, 1), (0, 2)]);
    }
}
