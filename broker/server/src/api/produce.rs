//! Produce: appends record batches to partition logs.
//!
//! The appends run in [`stage`], which the connection awaits before reading
//! its next request, so batches of pipelined requests reach the log in order
//! (idempotent sequences depend on it). The leader's fsync starts right after
//! the append, on the blocking pool; waiting for it and for the high
//! watermark (`acks=all`) happens in [`Staged::finish`], which the
//! connection's writer awaits in request order. Meanwhile the next request
//! can already append and start its own fsync, and the log's group commit
//! lets one fsync cover several.
//!
//! Replication: only the partition leader appends (else NOT_LEADER_OR_FOLLOWER),
//! writing its leader epoch into the batches. `acks=all` is refused with
//! NOT_ENOUGH_REPLICAS when the ISR is below `min.insync.replicas`, and is
//! answered once the high watermark covers the batch (every ISR member has it
//! on disk), or with REQUEST_TIMED_OUT after the request's timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_log::{AppendInfo, Log};
use runnel_meta::AclOperation;
use tokio::task::JoinHandle;

use super::{authorize, blocking, count_records, metadata::lookup_or_create, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::replica::Replica;
use crate::runtime::now_ms;
use crate::topics::TopicError;

/// One partition's append waiting to be synced (acks=all) and answered.
struct Appended {
    replica: Arc<Replica>,
    min_isr: usize,
    /// The leader epoch the batch was written under.
    leader_epoch: i32,
    info: AppendInfo,
    /// The leader's fsync of the batch, started at the append
    /// (`log_flush_on_ack`); acks=all awaits it, acks=0/1 leave it running.
    synced: Option<JoinHandle<runnel_log::Result<()>>>,
}

enum PartitionOutcome {
    Failed(ApiError),
    Appended(Appended),
}

/// A produce request whose appends are done; [`Staged::finish`] completes it.
pub(crate) struct Staged {
    broker: Arc<Broker>,
    acks: i16,
    timeout: Duration,
    flush_on_ack: bool,
    topics: Vec<(TopicProduceResponse, Vec<(i32, PartitionOutcome)>)>,
}

struct Job {
    topic_slot: usize,
    partition: i32,
    topic: String,
    log: Arc<Log>,
    replica: Arc<Replica>,
    min_isr: usize,
    leader_epoch: i32,
    records: Bytes,
}

/// Validates the request and appends every partition's batches.
/// Bytes of record batches in a produce request (what the producer byte-rate quota counts).
pub(crate) fn request_bytes(request: &ProduceRequest) -> u64 {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
        .sum()
}

pub(crate) async fn stage(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ProduceRequest,
    version: i16,
) -> Staged {
    let acks = request.acks;
    let txn_id: Option<String> = request.transactional_id.as_ref().map(|t| t.0.to_string());
    // A transactional produce needs WRITE on its transactional id, every produce WRITE on
    // each topic (checked before a topic is auto-created).
    let state = broker.cluster();
    let txn_denied = txn_id.as_ref().and_then(|id| {
        authorize::transactional_id(broker, &state, ctx, AclOperation::Write, id).err()
    });
    let mut topics: Vec<(TopicProduceResponse, Vec<(i32, PartitionOutcome)>)> = Vec::new();
    let mut jobs = Vec::new();
    for data in request.topic_data {
        let skeleton = TopicProduceResponse::default()
            .with_name(data.name.clone())
            .with_topic_id(data.topic_id);
        let mut outcomes = Vec::with_capacity(data.partition_data.len());
        let resolved = if !(-1..=1).contains(&acks) {
            Err(ApiError::with_message(
                ResponseError::InvalidRequiredAcks,
                format!("acks={acks} is not 0, 1 or -1"),
            ))
        } else if let Some(denied) = &txn_denied {
            Err(denied.clone())
        } else if version >= 13 {
            broker
                .topics
                .get_by_id(&data.topic_id)
                .ok_or_else(|| TopicError::UnknownTopicId(data.topic_id).into())
                .and_then(|topic| {
                    authorize::topic(broker, &state, ctx, AclOperation::Write, &topic.name)
                        .map(|()| topic)
                })
        } else {
            match authorize::topic(
                broker,
                &state,
                ctx,
                AclOperation::Write,
                data.name.0.as_str(),
            ) {
                Err(denied) => Err(denied),
                Ok(()) => {
                    let name = data.name.0.as_str();
                    let may_create = broker.config.auto_create_topics
                        && (authorize::cluster(broker, &state, ctx, AclOperation::Create).is_ok()
                            || authorize::topic(broker, &state, ctx, AclOperation::Create, name)
                                .is_ok());
                    lookup_or_create(broker, name, may_create).await
                }
            }
        };
        // Only the coordinators write their internal topics (by name or id).
        let resolved = resolved.and_then(|topic| {
            if topic.name == crate::group::OFFSETS_TOPIC || topic.name == crate::txn::TXN_TOPIC {
                Err(ApiError::with_message(
                    ResponseError::InvalidTopicException,
                    format!("cannot append to internal topic {}", topic.name),
                ))
            } else {
                Ok(topic)
            }
        });
        let slot = topics.len();
        for partition_data in data.partition_data {
            let index = partition_data.index;
            let failed = |code: ResponseError, message: String| {
                (
                    index,
                    PartitionOutcome::Failed(ApiError::with_message(code, message)),
                )
            };
            let topic = match &resolved {
                Ok(topic) => topic,
                Err(err) => {
                    outcomes.push((index, PartitionOutcome::Failed(err.clone())));
                    continue;
                }
            };
            let Some(partition) = topic.partition(index) else {
                outcomes.push(failed(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{}' has no partition {index}", topic.name),
                ));
                continue;
            };
            let Some(records) = partition_data.records.filter(|r| !r.is_empty()) else {
                outcomes.push(failed(
                    ResponseError::CorruptMessage,
                    "produce request without records".into(),
                ));
                continue;
            };
            match batch_kind(&records) {
                BatchKind::Plain => {}
                BatchKind::Control => {
                    outcomes.push(failed(
                        ResponseError::InvalidRecord,
                        "clients may not write control batches (transaction markers)".into(),
                    ));
                    continue;
                }
                BatchKind::Transactional(producer_id, epoch) => {
                    let verified = crate::txn::verify::verify_produce(
                        broker,
                        txn_id.as_deref(),
                        producer_id,
                        epoch,
                        &topic.name,
                        index,
                    )
                    .await;
                    if let Err(err) = verified {
                        outcomes.push((index, PartitionOutcome::Failed(err)));
                        continue;
                    }
                }
            }
            let replica = broker.replicas.replica(&topic.name, index, &partition.log);
            let min_isr = broker.replicas.min_insync(&topic.name);
            let leader_epoch = match replica.check_produce(acks, min_isr) {
                Ok(epoch) => epoch,
                Err(err) => {
                    outcomes.push((index, PartitionOutcome::Failed(err)));
                    continue;
                }
            };
            jobs.push(Job {
                topic_slot: slot,
                partition: index,
                topic: topic.name.clone(),
                log: partition.log.clone(),
                replica,
                min_isr,
                leader_epoch,
                records,
            });
        }
        topics.push((skeleton, outcomes));
    }
    if !jobs.is_empty() {
        // Appends write to the page cache; keep them off the async threads anyway
        // because a roll or a large batch can take milliseconds.
        let results = blocking(move || {
            let now = now_ms();
            jobs.into_iter()
                .map(|job| {
                    let bytes_len = job.records.len();
                    let record_count = count_records(&job.records);
                    let result = job.log.append(job.records, job.leader_epoch, now);
                    (
                        job.topic_slot,
                        job.partition,
                        job.topic,
                        (job.replica, job.min_isr, job.leader_epoch),
                        bytes_len,
                        record_count,
                        result,
                    )
                })
                .collect::<Vec<_>>()
        })
        .await;
        match results {
            Ok(results) => {
                let mut any = false;
                for (
                    slot,
                    index,
                    topic,
                    (replica, min_isr, leader_epoch),
                    bytes_len,
                    record_count,
                    result,
                ) in results
                {
                    let outcome = match result {
                        Ok(info) => {
                            any = true;
                            let end = info.last_offset + 1;
                            broker.replicas.leader_appended(&replica, end);
                            // Started now, not when the connection gets to
                            // this response: see `ReplicaManager::sync_leader`.
                            let synced = broker
                                .config
                                .log_flush_on_ack
                                .then(|| broker.replicas.sync_leader(replica.clone(), end));
                            if !info.duplicate {
                                broker
                                    .metrics
                                    .bytes_in
                                    .with_label_values(&[topic.as_str()])
                                    .inc_by(bytes_len as u64);
                                broker
                                    .metrics
                                    .records_in
                                    .with_label_values(&[topic.as_str()])
                                    .inc_by(record_count);
                            }
                            PartitionOutcome::Appended(Appended {
                                replica,
                                min_isr,
                                leader_epoch,
                                info,
                                synced,
                            })
                        }
                        Err(err) => {
                            log_append_failure(&topic, index, &err);
                            PartitionOutcome::Failed(ApiError::from(&err))
                        }
                    };
                    topics[slot].1.push((index, outcome));
                }
                if any {
                    broker.notify_appended();
                }
            }
            Err(reason) => {
                tracing::error!("produce append task failed: {reason}");
            }
        }
    }
    Staged {
        broker: broker.clone(),
        acks,
        timeout: Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0)),
        flush_on_ack: broker.config.log_flush_on_ack,
        topics,
    }
}

/// What the batches of a produce are, as far as transactions go.
enum BatchKind {
    /// No transactional or control batch.
    Plain,
    /// Transactional batches of this producer id and epoch.
    Transactional(i64, i16),
    /// A transaction marker: only partition leaders write those (INVALID_RECORD, as Kafka).
    Control,
}

fn batch_kind(records: &[u8]) -> BatchKind {
    let mut pos = 0usize;
    let mut kind = BatchKind::Plain;
    while records.len() >= pos + 61 {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        let attributes = i16::from_be_bytes([records[pos + 21], records[pos + 22]]);
        if attributes & (1 << 5) != 0 {
            return BatchKind::Control;
        }
        if attributes & (1 << 4) != 0 {
            let mut id = [0u8; 8];
            id.copy_from_slice(&records[pos + 43..pos + 51]);
            let epoch = i16::from_be_bytes([records[pos + 51], records[pos + 52]]);
            kind = BatchKind::Transactional(i64::from_be_bytes(id), epoch);
        }
        if len < 49 {
            break;
        }
        pos += 12 + len as usize;
    }
    kind
}

fn log_append_failure(topic: &str, partition: i32, err: &runnel_log::Error) {
    use runnel_log::Error as E;
    match err {
        E::Io { .. } | E::Poisoned { .. } => {
            tracing::error!(topic, partition, error = %err, "append failed: storage error")
        }
        E::CorruptBatch { .. } | E::InvalidBatch(_) | E::BatchTooLarge { .. } => {
            tracing::warn!(topic, partition, error = %err, "produce refused")
        }
        _ => tracing::debug!(topic, partition, error = %err, "produce refused"),
    }
}

impl Staged {
    /// Waits for durability as `acks` demands and builds the response
    /// (`None` for acks=0, which gets no response).
    pub(crate) async fn finish(self) -> Option<ProduceResponse> {
        let Staged {
            broker,
            acks,
            timeout,
            flush_on_ack,
            mut topics,
        } = self;
        let deadline = tokio::time::Instant::now() + timeout;
        if acks == -1 && flush_on_ack {
            // The fsyncs started at the append; they run in parallel.
            for (_, outcomes) in topics.iter_mut() {
                for (_, outcome) in outcomes.iter_mut() {
                    let PartitionOutcome::Appended(a) = outcome else {
                        continue;
                    };
                    let Some(synced) = a.synced.take() else {
                        continue;
                    };
                    let failed = match synced.await {
                        Ok(Ok(())) => None,
                        Ok(Err(err)) => Some(ApiError::from(&err)),
                        Err(join) => Some(ApiError::with_message(
                            ResponseError::KafkaStorageError,
                            format!("fsync task failed: {join}"),
                        )),
                    };
                    if let Some(err) = failed {
                        *outcome = PartitionOutcome::Failed(err);
                    }
                }
            }
        }
        if acks == -1 {
            // Every ISR member must have the batch on disk: wait for the HW.
            for (_, outcomes) in topics.iter_mut() {
                for (_, outcome) in outcomes.iter_mut() {
                    if let PartitionOutcome::Appended(a) = outcome {
                        let end = a.info.last_offset + 1;
                        let shutdown = broker.shutdown_signal();
                        let committed = a.replica.wait_committed(
                            end,
                            a.leader_epoch,
                            a.min_isr,
                            deadline,
                            shutdown,
                        );
                        if let Err(err) = committed.await {
                            *outcome = PartitionOutcome::Failed(err);
                        }
                    }
                }
            }
        }
        if acks == 0 {
            return None;
        }
        let responses = topics
            .into_iter()
            .map(|(skeleton, outcomes)| {
                let partitions = outcomes
                    .into_iter()
                    .map(|(index, outcome)| match outcome {
                        // NONE promises the batch is stored at base_offset: a
                        // response without an offset would make the client
                        // report success for records it cannot locate.
                        PartitionOutcome::Appended(a) if a.info.base_offset < 0 => {
                            PartitionProduceResponse::default()
                                .with_index(index)
                                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                                .with_base_offset(-1)
                        }
                        PartitionOutcome::Appended(a) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(a.info.base_offset)
                            .with_log_append_time_ms(a.info.log_append_time)
                            .with_log_start_offset(a.info.log_start_offset),
                        PartitionOutcome::Failed(err) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(err.code())
                            .with_base_offset(-1)
                            .with_record_errors(
                                err.record_errors
                                    .into_iter()
                                    .map(|(i, m)| {
                                        BatchIndexAndErrorMessage::default()
                                            .with_batch_index(i)
                                            .with_batch_index_error_message(Some(
                                                StrBytes::from_string(m),
                                            ))
                                    })
                                    .collect(),
                            )
                            .with_error_message(err.message.map(StrBytes::from_string)),
                    })
                    .collect();
                skeleton.with_partition_responses(partitions)
            })
            .collect();
        Some(ProduceResponse::default().with_responses(responses))
    }
}
