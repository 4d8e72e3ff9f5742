//! Fetch: reads record batches (raw bytes from the log) with long polling.
//!
//! Incremental fetch sessions (KIP-227, [`super::fetch_session`]): a request
//! with epoch 0 opens a session (its id in the response), later ones name only
//! what changed and get only partitions with news; -1, or a full cache, is
//! sessionless (session id 0 in the response).
//!
//! Replication: the leader answers (NOT_LEADER_OR_FOLLOWER otherwise;
//! FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for an older / newer
//! `current_leader_epoch`). A request with a replica id (`replica_id`, or
//! `replica_state` from v15) is a follower's: its fetch offset reports what it
//! holds durably (advancing the high watermark) and it reads up to the log
//! end. Consumers read only below the high watermark.
//!
//! Fetch from the closest replica (KIP-392): a consumer's Fetch v11+ may also be
//! served by an in-sync follower of the partition, below the follower's own high
//! watermark (past its log end without a leader epoch it gets no records rather
//! than OFFSET_OUT_OF_RANGE, as Kafka answers a client on stale metadata). With
//! `replica_selector = "rack_aware"` the leader answers a consumer that names its
//! rack (`rack_id`) with no records and `preferred_read_replica` set to an in-sync
//! follower in that rack which holds the fetch offset, when there is one.
//!
//! Throttling (Kafka's leader replication quota): partitions listed for this
//! broker in `leader.replication.throttled.replicas`, fetched by a follower
//! outside the ISR, share the broker's leader quota. While it is spent they
//! are answered with no records (the others keep flowing) and the long poll
//! waits for the quota to refill, so the follower does not spin.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_log::FileSlice;
use runnel_meta::{AclOperation, BrokerId};
use tokio::time::Instant;
use uuid::Uuid;

use super::blocking;
use super::fetch_session::Begin;
use super::RequestContext;
use crate::api::authorize;
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::quota::QuotaKind;
use crate::replica::{Replica, ThrottleSide};
use crate::runtime::wait_shutdown;
use crate::topics::Topic;

/// A fetched partition's replica after the leadership check, and whether the
/// leader throttles it for this follower (`None`: unknown partition).
type PartitionCheck = Option<Result<(Arc<Replica>, bool), ApiError>>;

/// Longest wait for the leader quota to refill within one long poll (a rate
/// of 0 never refills).
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// Longest long-poll honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// The broker id of a follower's fetch (`replica_id`, or `replica_state` from v15); `None`
/// for a consumer's.
pub(crate) fn follower_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// Handles Fetch, waiting up to `max_wait_ms` for `min_bytes`.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: FetchRequest,
    version: i16,
    ctx: &RequestContext,
) -> (FetchResponse, Spliced) {
    let mut request = request;
    let by_id = version >= 13;
    // Sessions exist from v7; older requests carry no session fields.
    let (session_id, incremental) = if version >= 7 {
        let begun = broker
            .fetch_sessions
            .begin(&request, by_id, std::time::Instant::now());
        if request.session_id != 0 || request.session_epoch >= 0 {
            // Only these can open or close a session.
            broker
                .metrics
                .fetch_sessions
                .set(i64::try_from(broker.fetch_sessions.len()).unwrap_or(i64::MAX));
        }
        let kind = match &begun {
            Begin::Refuse(_) => "refused",
            Begin::Fetch {
                incremental: true, ..
            } => "incremental",
            Begin::Fetch { session_id: 0, .. } => "sessionless",
            Begin::Fetch { .. } => "full",
        };
        broker
            .metrics
            .fetch_session_requests
            .with_label_values(&[kind])
            .inc();
        match begun {
            Begin::Refuse(code) => {
                let response = FetchResponse::default()
                    .with_error_code(code.code())
                    .with_session_id(0);
                return (response, Spliced::default());
            }
            Begin::Fetch {
                session_id,
                incremental,
                topics,
            } => {
                if let Some(topics) = topics {
                    request.topics = topics;
                }
                (session_id, incremental)
            }
        }
    } else {
        (0, false)
    };
    // Resolve topics once; a topic deleted meanwhile keeps serving its last state.
    let resolved: Arc<Vec<Option<Arc<Topic>>>> = Arc::new(
        request
            .topics
            .iter()
            .map(|t| {
                if version >= 13 {
                    broker.topics.get_by_id(&t.topic_id)
                } else {
                    broker.topics.get(t.topic.0.as_str())
                }
            })
            .collect(),
    );
    let follower = follower_id(&request, version);
    // A consumer's v11+ fetch may be served by a follower (KIP-392).
    let follower_may_serve = follower.is_none() && version >= 11;
    let client_rack = (follower_may_serve
        && broker.config.replica_selector == "rack_aware"
        && !request.rack_id.is_empty())
    .then(|| request.rack_id.to_string());
    // Leadership and epoch per partition, checked once; a follower's fetch
    // offset is recorded once (it is the same on every long-poll round).
    // A consumer needs READ on each topic; a follower CLUSTER_ACTION on the cluster.
    let state = broker.cluster();
    let replicas: Arc<Vec<Vec<PartitionCheck>>> = Arc::new(
        request
            .topics
            .iter()
            .zip(resolved.iter())
            .map(|(t, topic)| {
                let denied = match follower {
                    Some(_) => authorize::cluster(broker, &state, ctx, AclOperation::ClusterAction),
                    None => {
                        let name = topic.as_ref().map_or(t.topic.0.as_str(), |t| &t.name);
                        authorize::topic(broker, &state, ctx, AclOperation::Read, name)
                    }
                }
                .err();
                t.partitions
                    .iter()
                    .map(|fp| {
                        if let Some(denied) = &denied {
                            return Some(Err(denied.clone()));
                        }
                        let topic = topic.as_ref()?;
                        let partition = topic.partition(fp.partition)?;
                        let replica =
                            broker
                                .replicas
                                .replica(&topic.name, fp.partition, &partition.log);
                        let checked = if follower_may_serve {
                            replica.check_readable(fp.current_leader_epoch)
                        } else {
                            replica.check_leader(fp.current_leader_epoch)
                        };
                        Some(checked.and_then(|_| {
                            if let Some(id) = follower {
                                if fp.fetch_offset <= replica.log.log_end_offset() {
                                    broker.replicas.follower_fetch(
                                        &replica,
                                        id,
                                        fp.fetch_offset,
                                    )?;
                                }
                                // Decided after the fetch offset is recorded:
                                // a follower that just caught up is in sync.
                                let throttled = broker.replicas.leader_throttled(&replica, id);
                                return Ok((replica, throttled));
                            }
                            Ok((replica, false))
                        }))
                    })
                    .collect()
            })
            .collect(),
    );
    let request = Arc::new(request);
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let mut appended = broker.subscribe_appends();
    let mut hw_advanced = broker.replicas.subscribe_hw();
    let mut shutdown = broker.shutdown_signal();
    loop {
        // Marks the current append generation as seen before reading, so an
        // append racing with the read still wakes the wait below.
        appended.borrow_and_update();
        hw_advanced.borrow_and_update();
        // Reads copy from the page cache (or wait for the disk): keep them off
        // the async worker threads.
        let (req, res, reps) = (request.clone(), resolved.clone(), replicas.clone());
        let b = broker.clone();
        let reader = Reader {
            from_follower: follower.is_some(),
            client_rack: client_rack.clone(),
            version,
            read_committed: follower.is_none() && version >= 4 && request.isolation_level == 1,
        };
        let Ok(Round {
            responses,
            total,
            has_error,
            held_back,
            spliced,
        }) = blocking(move || read_once(&b, &req, &res, &reps, &reader)).await
        else {
            let response =
                FetchResponse::default().with_error_code(ResponseError::UnknownServerError.code());
            return (response, Spliced::default());
        };
        if total >= min_bytes || has_error || Instant::now() >= deadline || *shutdown.borrow() {
            let mut spliced = spliced;
            // A consumer over its byte-rate quota gets no records this time, only the throttle
            // time (Kafka's answer), and the bytes are not counted against it.
            let mut throttle_ms = 0;
            if follower.is_none() && total > 0 {
                throttle_ms = broker.record_quota(
                    QuotaKind::Fetch,
                    &ctx.client_id,
                    total as u64,
                    &ctx.session.mute,
                );
                if throttle_ms > 0 {
                    broker.unrecord_quota(QuotaKind::Fetch, &ctx.client_id, total as u64);
                    spliced = Spliced::default();
                }
            }
            account(broker, &responses, &spliced, &request, &resolved);
            let responses =
                broker
                    .fetch_sessions
                    .finish(session_id, incremental, by_id, responses, |t, p| {
                        spliced.0.contains_key(&spliced_key(t, p))
                    });
            let response = FetchResponse::default()
                .with_throttle_time_ms(throttle_ms)
                .with_session_id(session_id)
                .with_responses(responses);
            return (response, spliced);
        }
        // Held-back partitions are read again once the quota refills.
        let wake = if held_back {
            let wait = broker
                .replicas
                .quota(ThrottleSide::Leader)
                .wait(std::time::Instant::now(), MAX_THROTTLE_WAIT)
                .max(Duration::from_millis(1));
            deadline.min(Instant::now() + wait)
        } else {
            deadline
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            changed = appended.changed() => { if changed.is_err() { tokio::time::sleep_until(deadline).await; } }
            // A follower reads to the log end, so a high watermark advance gives it nothing
            // new (it learns the HW with its next records); only consumers wait on it.
            changed = hw_advanced.changed(), if follower.is_none() => { if changed.is_err() { tokio::time::sleep_until(deadline).await; } }
            _ = wait_shutdown(&mut shutdown) => {}
        }
    }
}

/// Who reads, as [`read_once`] needs it.
struct Reader {
    /// A follower replicating (reads to the log end, never redirected).
    from_follower: bool,
    /// The consumer's rack when the leader may send it to a follower (KIP-392).
    client_rack: Option<String>,
    /// The Fetch version.
    version: i16,
    /// A consumer with `isolation_level=read_committed` (v4+): reads up to the last stable
    /// offset and gets the aborted transactions it reads over.
    read_committed: bool,
}

/// What one read of every partition found.
struct Round {
    /// Per topic, in request order; the records of partitions with data are left empty
    /// and their batches are in `spliced`.
    responses: Vec<FetchableTopicResponse>,
    /// Bytes of records read.
    total: usize,
    /// Any error, or a redirect to a preferred read replica (answered at once).
    has_error: bool,
    /// Any throttled partition held back because the leader quota is spent.
    held_back: bool,
    /// The batches read, still in their segment files.
    spliced: Spliced,
}

/// Record batches of a fetch response that stay in their segment files until the
/// connection sends them (zero-copy), by topic and partition of the response.
#[derive(Default)]
pub(crate) struct Spliced(HashMap<(Uuid, StrBytes, i32), SplicedPartition>);

/// One partition's batches in [`Spliced`].
struct SplicedPartition {
    slices: Vec<FileSlice>,
    bytes: usize,
    /// Records (offsets) the batches take the reader past.
    records: u64,
}

fn spliced_key(topic: &FetchableTopicResponse, partition: i32) -> (Uuid, StrBytes, i32) {
    (topic.topic_id, topic.topic.0.clone(), partition)
}

impl Spliced {
    /// One entry per partition of `response` (the `records` fields, in wire order): the
    /// file slices to send in place of its empty records, if it has any.
    pub(crate) fn in_wire_order(mut self, response: &FetchResponse) -> Vec<Option<Vec<FileSlice>>> {
        response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p.partition_index)))
            .map(|(t, p)| self.0.remove(&spliced_key(t, p)).map(|s| s.slices))
            .collect()
    }
}

/// One read of every partition.
fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    resolved: &[Option<Arc<Topic>>],
    replicas: &[Vec<PartitionCheck>],
    reader: &Reader,
) -> Round {
    let Reader {
        from_follower,
        ref client_rack,
        version,
        read_committed,
    } = *reader;
    // Racks of the live brokers, looked up once per read (only for a rack-aware redirect).
    let live_racks: BTreeMap<BrokerId, String> = match client_rack {
        Some(_) => broker
            .cluster()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| Some((b.id, b.rack.clone()?)))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut total = 0usize;
    let mut has_error = false;
    let mut held_back = false;
    let quota = broker.replicas.quota(ThrottleSide::Leader);
    let max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut spliced = Spliced::default();
    for ((fetch_topic, topic), topic_replicas) in request.topics.iter().zip(resolved).zip(replicas)
    {
        let topic_key = FetchableTopicResponse::default()
            .with_topic(fetch_topic.topic.clone())
            .with_topic_id(fetch_topic.topic_id);
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for (fp, replica) in fetch_topic.partitions.iter().zip(topic_replicas) {
            let mut data = PartitionData::default().with_partition_index(fp.partition);
            let Some(topic) = topic else {
                has_error = true;
                let code = if version >= 13 {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                partitions.push(data.with_error_code(code.code()).with_high_watermark(-1));
                continue;
            };
            let Some(partition) = topic.partition(fp.partition) else {
                has_error = true;
                partitions.push(
                    data.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_high_watermark(-1),
                );
                continue;
            };
            let log = &partition.log;
            let (replica, throttled) = match replica {
                Some(Ok((replica, throttled))) => (replica, *throttled),
                Some(Err(err)) => {
                    has_error = true;
                    partitions.push(
                        data.with_error_code(err.code())
                            .with_high_watermark(-1)
                            .with_log_start_offset(log.log_start_offset()),
                    );
                    continue;
                }
                None => {
                    has_error = true;
                    partitions.push(
                        data.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_high_watermark(-1),
                    );
                    continue;
                }
            };
            let hw = replica.high_watermark();
            let lso = log.last_stable_offset().min(hw);
            let preferred = client_rack.as_deref().and_then(|rack| {
                replica.preferred_read_replica(fp.fetch_offset, rack, |id| {
                    live_racks.get(&id).cloned()
                })
            });
            if let Some(preferred) = preferred {
                // Kafka's answer: no records, only where to fetch them; the consumer goes there
                // at once, so the long poll ends now.
                has_error = true;
                partitions.push(
                    data.with_high_watermark(hw)
                        .with_last_stable_offset(lso)
                        .with_log_start_offset(log.log_start_offset())
                        .with_preferred_read_replica(preferred.into()),
                );
                continue;
            }
            // Followers replicate everything; consumers see only committed records, and
            // read_committed ones only decided transactions.
            let max_offset = match (from_follower, read_committed) {
                (true, _) => i64::MAX,
                (false, true) => lso,
                (false, false) => hw,
            };
            let remaining = max_bytes.saturating_sub(total);
            let mut partition_max = (fp.partition_max_bytes.max(0) as usize).min(remaining);
            data = data.with_high_watermark(hw).with_last_stable_offset(lso);
            if throttled {
                match quota.available(std::time::Instant::now()) {
                    Some(budget) if budget <= 0 => {
                        // Like Kafka: no records this round, the partition stays in the answer.
                        held_back = true;
                        broker.replicas.held_back(ThrottleSide::Leader);
                        partitions.push(data.with_log_start_offset(log.log_start_offset()));
                        continue;
                    }
                    Some(budget) => {
                        partition_max = partition_max.min(usize::try_from(budget).unwrap_or(0))
                    }
                    None => {}
                }
            }
            // Like Kafka, the first batch of the response is returned even when
            // it exceeds the limits, so a consumer can always make progress.
            let min_one = total == 0;
            if partition_max == 0 && !min_one {
                partitions.push(data.with_log_start_offset(log.log_start_offset()));
                continue;
            }
            match log.read_slices(fp.fetch_offset, partition_max, min_one, max_offset) {
                Ok(read) => {
                    total += read.len;
                    if throttled {
                        broker
                            .replicas
                            .record_throttled(ThrottleSide::Leader, read.len as u64);
                    }
                    if read_committed {
                        let aborted = log
                            .aborted_transactions(fp.fetch_offset, max_offset)
                            .into_iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(a.producer_id.into())
                                    .with_first_offset(a.first_offset)
                            })
                            .collect();
                        data = data.with_aborted_transactions(Some(aborted));
                    }
                    if read.len > 0 {
                        spliced.0.insert(
                            spliced_key(&topic_key, fp.partition),
                            SplicedPartition {
                                bytes: read.len,
                                records: u64::try_from(read.next_offset - fp.fetch_offset)
                                    .unwrap_or(0),
                                slices: read.slices,
                            },
                        );
                    }
                    data = data
                        .with_log_start_offset(read.log_start_offset)
                        .with_records(Some(bytes::Bytes::new()));
                }
                // A consumer on a follower that is behind it (or on stale metadata): without a
                // leader epoch it cannot check with the leader, so it gets no records and
                // retries rather than resetting its position (Kafka does the same).
                Err(runnel_log::Error::OffsetOutOfRange { offset, end, .. })
                    if !from_follower
                        && fp.current_leader_epoch < 0
                        && offset > end
                        && !replica.is_leader() =>
                {
                    data = data.with_log_start_offset(log.log_start_offset());
                }
                Err(err) => {
                    has_error = true;
                    let api = crate::errors::ApiError::from(&err);
                    data = data
                        .with_error_code(api.code())
                        .with_log_start_offset(log.log_start_offset());
                }
            }
            partitions.push(data);
        }
        responses.push(topic_key.with_partitions(partitions));
    }
    Round {
        responses,
        total,
        has_error,
        held_back,
        spliced,
    }
}

fn account(
    broker: &Broker,
    responses: &[FetchableTopicResponse],
    spliced: &Spliced,
    request: &FetchRequest,
    resolved: &[Option<Arc<Topic>>],
) {
    for ((response, _), topic) in responses.iter().zip(&request.topics).zip(resolved) {
        let Some(topic) = topic else { continue };
        let (bytes, records) = response
            .partitions
            .iter()
            .filter_map(|p| spliced.0.get(&spliced_key(response, p.partition_index)))
            .fold((0u64, 0u64), |acc, p| {
                (acc.0 + p.bytes as u64, acc.1 + p.records)
            });
        if bytes > 0 {
            broker
                .metrics
                .bytes_out
                .with_label_values(&[topic.name.as_str()])
                .inc_by(bytes);
            broker
                .metrics
                .records_out
                .with_label_values(&[topic.name.as_str()])
                .inc_by(records);
        }
    }
}
