//! Kafka API dispatch: the table of supported APIs and versions, request
//! header decoding, and response encoding. One module per API handler.

pub(crate) mod acls;
pub(crate) mod add_offsets_to_txn;
pub(crate) mod add_partitions_to_txn;
pub(crate) mod alter_configs;
pub(crate) mod alter_partition_reassignments;
pub(crate) mod api_versions;
pub(crate) mod authorize;
pub(crate) mod client_quotas;
pub(crate) mod config_resources;
pub(crate) mod consumer_group_describe;
pub(crate) mod consumer_group_heartbeat;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_groups;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_groups;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_producers;
pub(crate) mod describe_quorum;
pub(crate) mod describe_topic_partitions;
pub(crate) mod describe_transactions;
pub(crate) mod elect_leaders;
pub(crate) mod end_txn;
pub(crate) mod fetch;
pub(crate) mod fetch_session;
pub(crate) mod find_coordinator;
pub(crate) mod get_telemetry_subscriptions;
pub(crate) mod heartbeat;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_config_resources;
pub(crate) mod list_groups;
pub(crate) mod list_offsets;
pub(crate) mod list_partition_reassignments;
pub(crate) mod list_transactions;
pub(crate) mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod produce;
pub(crate) mod push_telemetry;
pub(crate) mod sasl_authenticate;
pub(crate) mod sasl_handshake;
pub(crate) mod sync_group;
pub(crate) mod txn_offset_commit;
pub(crate) mod user_scram_credentials;
pub(crate) mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request, VersionRange,
};

use crate::broker::Broker;
use crate::errors::ApiError;
use crate::frame::{self, Frame};
use crate::quota::QuotaKind;
use crate::session::Session;
use runnel_meta::AclOperation;

/// A response still being produced; resolves to the encoded frame, to `None`
/// when the request gets no response (acks=0), or to an error that closes the connection.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Option<Frame>, String>> + Send>>;

/// What the connection does with a request.
pub(crate) enum Outcome {
    /// Queue this response (in request order).
    Reply(Pending),
    /// The request cannot be answered in a format the client understands: close.
    Close(String),
}

/// Who sent a request (for group members' client id and host).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The request header's client id.
    pub client_id: String,
    /// The peer address as Kafka shows it (`/127.0.0.1`).
    pub client_host: String,
    /// The connection the request came on.
    pub session: Arc<Session>,
}

/// Produce v0-v2 (message formats v0/v1) are advertised, because librdkafka
/// disables compression otherwise, but refused: the codec cannot decode them.
pub(crate) const PRODUCE_ADVERTISED_MIN: i16 = 0;

fn range<R: Request>() -> VersionRange {
    R::VERSIONS.intersect(&<R::Response as Message>::VERSIONS)
}

/// Every API this broker implements with the versions it handles: the
/// intersection of what the codec supports for request and response and of
/// what Kafka's schemas in runnel-wire describe (a request is checked against
/// them before it is decoded, so a version they lack could not be checked).
pub(crate) fn supported_apis() -> Vec<(ApiKey, VersionRange)> {
    let mut apis = vec![
        (ApiKey::Produce, range::<ProduceRequest>()),
        (ApiKey::Fetch, range::<FetchRequest>()),
        (ApiKey::ListOffsets, range::<ListOffsetsRequest>()),
        (ApiKey::Metadata, range::<MetadataRequest>()),
        (ApiKey::ApiVersions, range::<ApiVersionsRequest>()),
        (ApiKey::CreateTopics, range::<CreateTopicsRequest>()),
        (ApiKey::DeleteTopics, range::<DeleteTopicsRequest>()),
        (ApiKey::DeleteRecords, range::<DeleteRecordsRequest>()),
        (ApiKey::InitProducerId, range::<InitProducerIdRequest>()),
        (
            ApiKey::AddPartitionsToTxn,
            range::<AddPartitionsToTxnRequest>(),
        ),
        (ApiKey::AddOffsetsToTxn, range::<AddOffsetsToTxnRequest>()),
        (ApiKey::EndTxn, range::<EndTxnRequest>()),
        (ApiKey::WriteTxnMarkers, range::<WriteTxnMarkersRequest>()),
        (
            ApiKey::DescribeTransactions,
            range::<DescribeTransactionsRequest>(),
        ),
        (ApiKey::ListTransactions, range::<ListTransactionsRequest>()),
        (ApiKey::TxnOffsetCommit, range::<TxnOffsetCommitRequest>()),
        (ApiKey::DescribeConfigs, range::<DescribeConfigsRequest>()),
        (ApiKey::AlterConfigs, range::<AlterConfigsRequest>()),
        (ApiKey::CreatePartitions, range::<CreatePartitionsRequest>()),
        (
            ApiKey::IncrementalAlterConfigs,
            range::<IncrementalAlterConfigsRequest>(),
        ),
        (ApiKey::DescribeCluster, range::<DescribeClusterRequest>()),
        (ApiKey::FindCoordinator, range::<FindCoordinatorRequest>()),
        (ApiKey::JoinGroup, range::<JoinGroupRequest>()),
        (ApiKey::SyncGroup, range::<SyncGroupRequest>()),
        (ApiKey::Heartbeat, range::<HeartbeatRequest>()),
        (ApiKey::LeaveGroup, range::<LeaveGroupRequest>()),
        (ApiKey::OffsetCommit, range::<OffsetCommitRequest>()),
        (ApiKey::OffsetFetch, range::<OffsetFetchRequest>()),
        (ApiKey::ListGroups, range::<ListGroupsRequest>()),
        (ApiKey::DescribeGroups, range::<DescribeGroupsRequest>()),
        (ApiKey::DeleteGroups, range::<DeleteGroupsRequest>()),
        (ApiKey::OffsetDelete, range::<OffsetDeleteRequest>()),
        (
            ApiKey::ConsumerGroupHeartbeat,
            range::<ConsumerGroupHeartbeatRequest>(),
        ),
        (
            ApiKey::ConsumerGroupDescribe,
            range::<ConsumerGroupDescribeRequest>(),
        ),
        (
            ApiKey::GetTelemetrySubscriptions,
            range::<GetTelemetrySubscriptionsRequest>(),
        ),
        (ApiKey::PushTelemetry, range::<PushTelemetryRequest>()),
        (
            ApiKey::ListConfigResources,
            range::<ListConfigResourcesRequest>(),
        ),
        (
            ApiKey::AlterPartitionReassignments,
            range::<AlterPartitionReassignmentsRequest>(),
        ),
        (
            ApiKey::ListPartitionReassignments,
            range::<ListPartitionReassignmentsRequest>(),
        ),
        (ApiKey::ElectLeaders, range::<ElectLeadersRequest>()),
        (ApiKey::DescribeQuorum, range::<DescribeQuorumRequest>()),
        (
            ApiKey::DescribeProducers,
            range::<DescribeProducersRequest>(),
        ),
        (ApiKey::DescribeLogDirs, range::<DescribeLogDirsRequest>()),
        (
            ApiKey::DescribeClientQuotas,
            range::<DescribeClientQuotasRequest>(),
        ),
        (
            ApiKey::AlterClientQuotas,
            range::<AlterClientQuotasRequest>(),
        ),
        (
            ApiKey::DescribeTopicPartitions,
            range::<DescribeTopicPartitionsRequest>(),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            range::<OffsetForLeaderEpochRequest>(),
        ),
        (ApiKey::DescribeAcls, range::<DescribeAclsRequest>()),
        (ApiKey::CreateAcls, range::<CreateAclsRequest>()),
        (ApiKey::DeleteAcls, range::<DeleteAclsRequest>()),
        (ApiKey::SaslHandshake, range::<SaslHandshakeRequest>()),
        (ApiKey::SaslAuthenticate, range::<SaslAuthenticateRequest>()),
        (
            ApiKey::DescribeUserScramCredentials,
            range::<DescribeUserScramCredentialsRequest>(),
        ),
        (
            ApiKey::AlterUserScramCredentials,
            range::<AlterUserScramCredentialsRequest>(),
        ),
    ];
    for (key, r) in apis.iter_mut() {
        *r = r.intersect(&key.valid_versions());
        for schema in [
            runnel_wire::request_versions(*key as i16),
            runnel_wire::response_versions(*key as i16),
        ] {
            let (min, max) = schema.unwrap_or((1, 0));
            *r = r.intersect(&VersionRange { min, max });
        }
    }
    apis
}

/// The versions handled for one API key, if implemented.
pub(crate) fn handled_range(key: ApiKey) -> Option<VersionRange> {
    supported_apis()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| r)
}

/// Encodes a response frame: size, header (version from the API), body.
pub(crate) fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, R::header_version(version))
        .and_then(|()| response.encode(&mut buf, version))
        .map_err(|e| {
            format!(
                "cannot encode {} v{version} response: {e}",
                std::any::type_name::<R>()
            )
        })?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

fn ready(result: Result<Bytes, String>) -> Pending {
    Box::pin(std::future::ready(result.map(|b| Some(b.into()))))
}

fn decode<T: Decodable>(buf: &mut Bytes, key: ApiKey, version: i16) -> Result<T, String> {
    T::decode(buf, version).map_err(|e| format!("malformed {key:?} v{version} request: {e}"))
}

/// Decodes one request frame (without its size prefix), runs the in-order
/// part of its handler, and returns what the connection should do.
pub(crate) async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    session: &Arc<Session>,
) -> Outcome {
    let entered = Instant::now();
    if session.expects_raw_token() {
        // After a v0 SaslHandshake the next frames are SASL tokens, not requests.
        return match sasl_authenticate::raw_token(broker, session, frame).await {
            Ok(answer) => Outcome::Reply(ready(Ok(answer))),
            Err(reason) => Outcome::Close(reason),
        };
    }
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unsupported API key {raw_key} (version {version})"));
    };
    let Some(handled) = handled_range(key) else {
        return Outcome::Close(format!(
            "unsupported API {key:?} (key {raw_key}, version {version})"
        ));
    };
    if version < handled.min || version > handled.max {
        if key == ApiKey::ApiVersions && version > handled.max {
            // KIP-511: answer in v0 format so the client can retry with a version we support.
            return Outcome::Reply(ready(api_versions::unsupported_version_response(
                correlation_id,
            )));
        }
        if key == ApiKey::Produce && version < handled.min {
            return Outcome::Close(format!(
                "Produce v{version} (message format v0/v1) is not supported; use a client that sends Produce v3+"
            ));
        }
        return Outcome::Close(format!(
            "unsupported version {version} of API {key:?} (key {raw_key}); supported {handled}"
        ));
    }
    // The decoder trusts every length it reads (an array count of 2^31 in a
    // 40-byte frame aborts the process); check them all against the bytes
    // that are really there first. Kafka closes the connection on a request
    // it cannot parse, and so do we.
    if let Err(e) = runnel_wire::check_request(&frame) {
        return Outcome::Close(format!("malformed request: {e}"));
    }
    if session.needs_authentication()
        && !matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Outcome::Close(format!(
            "{key:?} request before SASL authentication (or after the session expired) on listener {}",
            session.listener.name
        ));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, key.request_header_version(version)) {
        Ok(header) => header,
        Err(e) => {
            return Outcome::Close(format!("malformed {key:?} v{version} request header: {e}"))
        }
    };
    let ctx = RequestContext {
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: session
            .peer
            .map(|peer| format!("/{}", peer.ip()))
            .unwrap_or_default(),
        session: session.clone(),
    };
    let api = format!("{key:?}");
    broker
        .metrics
        .requests
        .with_label_values(&[api.as_str()])
        .inc();
    let histogram = broker
        .metrics
        .request_duration
        .with_label_values(&[api.as_str()]);
    let started = Instant::now();
    // The request quota counts the time spent in this request's code: every poll of its
    // in-order part and of its answer, and its work on the blocking pool ([`blocking`]:
    // log reads and appends), not the time it waits (a parked JoinGroup, a fetch waiting
    // for data, a produce waiting for replicas).
    let busy = Arc::new(AtomicU64::new(
        u64::try_from(entered.elapsed().as_nanos()).unwrap_or(u64::MAX),
    ));
    let routed = Busy::new(
        Box::pin(REQUEST_NANOS.scope(
            busy.clone(),
            route(broker, &ctx, key, version, correlation_id, buf),
        )),
        busy.clone(),
    )
    .await;
    let (pending, exempt) = match routed {
        Ok(routed) => routed,
        Err(reason) => return Outcome::Close(reason),
    };
    let broker = broker.clone();
    Outcome::Reply(Box::pin(async move {
        let result = Busy::new(
            Box::pin(REQUEST_NANOS.scope(busy.clone(), pending)),
            busy.clone(),
        )
        .await;
        histogram.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Some(frame)) if !exempt => {
                let nanos = busy.load(Ordering::Relaxed);
                let throttle = broker.record_quota(
                    QuotaKind::Request,
                    &ctx.client_id,
                    nanos,
                    &ctx.session.mute,
                );
                Ok(Some(frame.map_head(|head| {
                    with_throttle(head, key, version, throttle)
                })))
            }
            other => other,
        }
    }))
}

tokio::task_local! {
    /// The busy-time counter (nanoseconds) of the request being handled, so
    /// [`blocking`] adds the time its work takes on the blocking pool.
    static REQUEST_NANOS: Arc<AtomicU64>;
}

/// A future that adds the time spent in each of its polls to a counter (nanoseconds).
struct Busy<F: ?Sized> {
    nanos: Arc<AtomicU64>,
    inner: Pin<Box<F>>,
}

impl<F: ?Sized> Busy<F> {
    fn new(inner: Pin<Box<F>>, nanos: Arc<AtomicU64>) -> Busy<F> {
        Busy { inner, nanos }
    }
}

impl<F: Future + ?Sized> Future for Busy<F> {
    type Output = F::Output;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let started = Instant::now();
        let poll = self.inner.as_mut().poll(cx);
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(spent, Ordering::Relaxed);
        poll
    }
}

/// The encoded response `frame` (size prefix, header, body) with `throttle_time_ms` raised
/// to `throttle` if it is lower (a byte quota may have set it already); unchanged when the
/// response version has no throttle time.
fn with_throttle(frame: Bytes, key: ApiKey, version: i16, throttle: i32) -> Bytes {
    if throttle <= 0 {
        return frame;
    }
    // Size prefix, correlation id, and the empty tagged fields of a flexible header.
    let header = 4 + 4 + usize::from(key.response_header_version(version) >= 1);
    let Some(body) = frame.get(header..) else {
        return frame;
    };
    let Some(at) = runnel_wire::response_field_offset(key as i16, version, body, "ThrottleTimeMs")
    else {
        return frame;
    };
    let at = header + at;
    let Some(current) = frame.get(at..at + 4) else {
        return frame;
    };
    let current = i32::from_be_bytes([current[0], current[1], current[2], current[3]]);
    if current >= throttle {
        return frame;
    }
    let mut patched = BytesMut::from(&frame[..]);
    patched[at..at + 4].copy_from_slice(&throttle.to_be_bytes());
    patched.freeze()
}

async fn route(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut buf: Bytes,
) -> Result<(Pending, bool), String> {
    macro_rules! inline {
        ($req:ty, $handler:path) => {{
            let request: $req = decode(&mut buf, key, version)?;
            let response = $handler(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }};
    }
    // Handlers that need the connection (its principal, for the authorizer).
    macro_rules! with_ctx {
        ($req:ty, $handler:path) => {{
            let request: $req = decode(&mut buf, key, version)?;
            let response = $handler(broker, ctx, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }};
    }
    // An answer of `$resp` carrying only the error of a refused check.
    macro_rules! refuse {
        ($resp:ty, $err:expr) => {{
            let err: ApiError = $err;
            ready(encode_response(
                correlation_id,
                version,
                &<$resp>::default().with_error_code(err.code()),
            ))
        }};
    }
    // APIs without a finer check need a cluster permission. A refusal is answered
    // with CLUSTER_AUTHORIZATION_FAILED in the response's top-level error, or in each
    // resource's where the response has no top-level error; the few internal or
    // legacy APIs with neither close the connection instead.
    if let Some(op) = authorize::cluster_gate(key) {
        if let Err(denied) = authorize::cluster(broker, &broker.cluster(), ctx, op) {
            let refused = match key {
                ApiKey::DescribeQuorum => refuse!(DescribeQuorumResponse, denied),
                ApiKey::ListPartitionReassignments => {
                    refuse!(ListPartitionReassignmentsResponse, denied)
                }
                ApiKey::AlterPartitionReassignments => {
                    refuse!(AlterPartitionReassignmentsResponse, denied)
                }
                ApiKey::DescribeClientQuotas => refuse!(DescribeClientQuotasResponse, denied),
                ApiKey::DescribeUserScramCredentials => {
                    refuse!(DescribeUserScramCredentialsResponse, denied)
                }
                ApiKey::ListConfigResources => refuse!(ListConfigResourcesResponse, denied),
                ApiKey::ElectLeaders if version >= 1 => refuse!(ElectLeadersResponse, denied),
                ApiKey::ElectLeaders => {
                    let request: ElectLeadersRequest = decode(&mut buf, key, version)?;
                    let response = authorize::refused_elections(&request, &denied);
                    ready(encode_response(correlation_id, version, &response))
                }
                ApiKey::AlterUserScramCredentials => {
                    let request: AlterUserScramCredentialsRequest = decode(&mut buf, key, version)?;
                    let response = authorize::refused_scram_alterations(&request, &denied);
                    ready(encode_response(correlation_id, version, &response))
                }
                ApiKey::AlterClientQuotas => {
                    let request: AlterClientQuotasRequest = decode(&mut buf, key, version)?;
                    let response = authorize::refused_quota_alterations(&request, &denied);
                    ready(encode_response(correlation_id, version, &response))
                }
                ApiKey::DescribeLogDirs if version >= 3 => {
                    refuse!(DescribeLogDirsResponse, denied)
                }
                _ => {
                    return Err(format!(
                        "{key:?} refused: {}",
                        denied.message.unwrap_or_default()
                    ))
                }
            };
            return Ok((refused, false));
        }
    }
    // Exempt from the request quota, as in Kafka: ApiVersions and replication.
    let mut exempt = key == ApiKey::ApiVersions;
    let pending = match key {
        ApiKey::ApiVersions => {
            let request: ApiVersionsRequest = decode(&mut buf, key, version)?;
            if version >= 3 {
                *ctx.session.software.lock() = Some((
                    request.client_software_name.to_string(),
                    request.client_software_version.to_string(),
                ));
            }
            let response = api_versions::handle(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        // Answered with addresses on the listener the request came in on.
        ApiKey::Metadata => with_ctx!(MetadataRequest, metadata::handle),
        ApiKey::Produce => {
            let request: ProduceRequest = decode(&mut buf, key, version)?;
            // The quota counts the request's bytes as it arrives, as Kafka's does.
            let throttle_ms = broker.record_quota(
                QuotaKind::Produce,
                &ctx.client_id,
                produce::request_bytes(&request),
                &ctx.session.mute,
            );
            let staged = produce::stage(broker, ctx, request, version).await;
            Box::pin(async move {
                match staged.finish().await {
                    Some(response) => encode_response(
                        correlation_id,
                        version,
                        &response.with_throttle_time_ms(throttle_ms),
                    )
                    .map(|b| Some(b.into())),
                    None => Ok(None),
                }
            })
        }
        ApiKey::Fetch => {
            let request: FetchRequest = decode(&mut buf, key, version)?;
            exempt = fetch::follower_id(&request, version).is_some();
            let broker = broker.clone();
            let ctx = ctx.clone();
            Box::pin(async move {
                let (response, slices) = fetch::handle(&broker, request, version, &ctx).await;
                let encoded = encode_response(correlation_id, version, &response)?;
                // Records stay in their segment files until the connection sends them.
                let header_len = 4 + usize::from(key.response_header_version(version) >= 1);
                let records = slices.in_wire_order(&response);
                frame::splice(encoded, key as i16, version, header_len, records).map(Some)
            })
        }
        ApiKey::ListOffsets => with_ctx!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::CreateTopics => with_ctx!(CreateTopicsRequest, create_topics::handle),
        ApiKey::DeleteTopics => with_ctx!(DeleteTopicsRequest, delete_topics::handle),
        ApiKey::CreatePartitions => with_ctx!(CreatePartitionsRequest, create_partitions::handle),
        ApiKey::DescribeConfigs => with_ctx!(DescribeConfigsRequest, describe_configs::handle),
        ApiKey::AlterConfigs => with_ctx!(AlterConfigsRequest, alter_configs::handle),
        ApiKey::IncrementalAlterConfigs => {
            with_ctx!(
                IncrementalAlterConfigsRequest,
                incremental_alter_configs::handle
            )
        }
        // Answered with addresses on the listener the request came in on.
        ApiKey::DescribeCluster => {
            let request: DescribeClusterRequest = decode(&mut buf, key, version)?;
            let response =
                describe_cluster::handle(broker, request, version, &ctx.session.listener.name)
                    .await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::DeleteRecords => with_ctx!(DeleteRecordsRequest, delete_records::handle),
        ApiKey::InitProducerId => {
            let request: InitProducerIdRequest = decode(&mut buf, key, version)?;
            let state = broker.cluster();
            let allowed = match &request.transactional_id {
                Some(id) => {
                    authorize::transactional_id(broker, &state, ctx, AclOperation::Write, id)
                }
                None => authorize::idempotent_write(broker, &state, ctx),
            };
            match allowed {
                Err(e) => refuse!(InitProducerIdResponse, e),
                Ok(()) => {
                    let response = init_producer_id::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::AddPartitionsToTxn => {
            let request: AddPartitionsToTxnRequest = decode(&mut buf, key, version)?;
            // v0-3: one transaction, WRITE on its id and on each topic; v4 (brokers
            // verifying) needs CLUSTER_ACTION. A refusal closes the connection: only a
            // client that skipped InitProducerId gets here unauthorized.
            let state = broker.cluster();
            let allowed = if version >= 4 {
                authorize::cluster(broker, &state, ctx, AclOperation::ClusterAction)
            } else {
                let id = request.v3_and_below_transactional_id.as_str();
                authorize::transactional_id(broker, &state, ctx, AclOperation::Write, id).and_then(
                    |()| {
                        request.v3_and_below_topics.iter().try_for_each(|t| {
                            authorize::topic(broker, &state, ctx, AclOperation::Write, &t.name)
                        })
                    },
                )
            };
            if let Err(e) = allowed {
                return Err(format!(
                    "AddPartitionsToTxn refused: {}",
                    e.message.unwrap_or_default()
                ));
            }
            let response = add_partitions_to_txn::handle(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::AddOffsetsToTxn => {
            let request: AddOffsetsToTxnRequest = decode(&mut buf, key, version)?;
            let state = broker.cluster();
            let id = request.transactional_id.as_str();
            let allowed = authorize::transactional_id(broker, &state, ctx, AclOperation::Write, id)
                .and_then(|()| {
                    authorize::group(broker, &state, ctx, AclOperation::Read, &request.group_id)
                });
            match allowed {
                Err(e) => refuse!(AddOffsetsToTxnResponse, e),
                Ok(()) => {
                    let response = add_offsets_to_txn::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::EndTxn => {
            let request: EndTxnRequest = decode(&mut buf, key, version)?;
            let id = request.transactional_id.as_str();
            match authorize::transactional_id(
                broker,
                &broker.cluster(),
                ctx,
                AclOperation::Write,
                id,
            ) {
                Err(e) => refuse!(EndTxnResponse, e),
                Ok(()) => {
                    let response = end_txn::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::WriteTxnMarkers => inline!(WriteTxnMarkersRequest, write_txn_markers::handle),
        ApiKey::DescribeTransactions => {
            with_ctx!(DescribeTransactionsRequest, describe_transactions::handle)
        }
        ApiKey::ListTransactions => with_ctx!(ListTransactionsRequest, list_transactions::handle),
        ApiKey::TxnOffsetCommit => {
            let request: TxnOffsetCommitRequest = decode(&mut buf, key, version)?;
            let state = broker.cluster();
            let id = request.transactional_id.as_str();
            let allowed = authorize::transactional_id(broker, &state, ctx, AclOperation::Write, id)
                .and_then(|()| {
                    authorize::group(broker, &state, ctx, AclOperation::Read, &request.group_id)
                })
                .and_then(|()| {
                    request.topics.iter().try_for_each(|t| {
                        authorize::topic(broker, &state, ctx, AclOperation::Read, &t.name)
                    })
                });
            if let Err(e) = allowed {
                return Err(format!(
                    "TxnOffsetCommit refused: {}",
                    e.message.unwrap_or_default()
                ));
            }
            let response = txn_offset_commit::handle(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        // Answered with addresses on the listener the request came in on.
        ApiKey::FindCoordinator => with_ctx!(FindCoordinatorRequest, find_coordinator::handle),
        // JoinGroup and SyncGroup may be parked until the group's barrier
        // completes. The connection reads nothing else meanwhile, as Kafka
        // (which handles one request per connection at a time): a client that
        // gives up waiting and pipelines a new JoinGroup must not have it
        // processed before the parked request is answered.
        ApiKey::JoinGroup => {
            let request: JoinGroupRequest = decode(&mut buf, key, version)?;
            let group = request.group_id.as_str();
            if let Err(e) =
                authorize::group(broker, &broker.cluster(), ctx, AclOperation::Read, group)
            {
                return Ok((refuse!(JoinGroupResponse, e), exempt));
            }
            // A client that skipped FindCoordinator still gets a place to write;
            // on failure the append answers COORDINATOR_NOT_AVAILABLE.
            let _ = broker.ensure_offsets_topic().await;
            let response = join_group::start(broker, ctx, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::SyncGroup => {
            let request: SyncGroupRequest = decode(&mut buf, key, version)?;
            let group = request.group_id.as_str();
            if let Err(e) =
                authorize::group(broker, &broker.cluster(), ctx, AclOperation::Read, group)
            {
                return Ok((refuse!(SyncGroupResponse, e), exempt));
            }
            let response = sync_group::start(broker, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        // OffsetCommit changes the group now (in request order) and answers
        // once its records are fsynced, like an acks=all produce.
        ApiKey::OffsetCommit => {
            let mut request: OffsetCommitRequest = decode(&mut buf, key, version)?;
            // READ on the group (else every partition is refused) and on each topic
            // (a topic refused gets TOPIC_AUTHORIZATION_FAILED, the others are committed).
            let state = broker.cluster();
            let group_denied =
                authorize::group(broker, &state, ctx, AclOperation::Read, &request.group_id).err();
            let mut refused: Vec<(TopicName, Vec<i32>, i16)> = Vec::new();
            request.topics.retain(|t| {
                let denied = group_denied.clone().or_else(|| {
                    authorize::topic(broker, &state, ctx, AclOperation::Read, &t.name).err()
                });
                match denied {
                    Some(e) => {
                        let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                        refused.push((t.name.clone(), partitions, e.code()));
                        false
                    }
                    None => true,
                }
            });
            let _ = broker.ensure_offsets_topic().await;
            offset_commit::see_requested_partitions(broker, &request).await;
            let answer = offset_commit::start(broker, request, version);
            Box::pin(async move {
                let mut response = answer.await;
                response
                    .topics
                    .extend(refused.into_iter().map(|(name, partitions, code)| {
                        offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    offset_commit_response::OffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                    }));
                encode_response(correlation_id, version, &response).map(|b| Some(b.into()))
            })
        }
        ApiKey::Heartbeat => {
            let request: HeartbeatRequest = decode(&mut buf, key, version)?;
            let group = request.group_id.as_str();
            match authorize::group(broker, &broker.cluster(), ctx, AclOperation::Read, group) {
                Err(e) => refuse!(HeartbeatResponse, e),
                Ok(()) => {
                    let response = heartbeat::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let request: ConsumerGroupHeartbeatRequest = decode(&mut buf, key, version)?;
            let group = request.group_id.as_str();
            if let Err(e) =
                authorize::group(broker, &broker.cluster(), ctx, AclOperation::Read, group)
            {
                return Ok((refuse!(ConsumerGroupHeartbeatResponse, e), exempt));
            }
            let response = consumer_group_heartbeat::handle(broker, ctx, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::GetTelemetrySubscriptions => {
            let request: GetTelemetrySubscriptionsRequest = decode(&mut buf, key, version)?;
            let response = get_telemetry_subscriptions::handle(broker, ctx, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::PushTelemetry => inline!(PushTelemetryRequest, push_telemetry::handle),
        ApiKey::ListConfigResources => {
            inline!(ListConfigResourcesRequest, list_config_resources::handle)
        }
        ApiKey::ConsumerGroupDescribe => {
            with_ctx!(
                ConsumerGroupDescribeRequest,
                consumer_group_describe::handle
            )
        }
        ApiKey::LeaveGroup => {
            let request: LeaveGroupRequest = decode(&mut buf, key, version)?;
            let group = request.group_id.as_str();
            match authorize::group(broker, &broker.cluster(), ctx, AclOperation::Read, group) {
                Err(e) => refuse!(LeaveGroupResponse, e),
                Ok(()) => {
                    let response = leave_group::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::OffsetFetch => {
            let request: OffsetFetchRequest = decode(&mut buf, key, version)?;
            // DESCRIBE on every group asked (v0-7 one group, v8+ several).
            let state = broker.cluster();
            let groups: Vec<&str> = if version >= 8 {
                request.groups.iter().map(|g| g.group_id.as_str()).collect()
            } else {
                vec![request.group_id.as_str()]
            };
            match groups
                .into_iter()
                .try_for_each(|g| authorize::group(broker, &state, ctx, AclOperation::Describe, g))
            {
                Err(e) if version < 8 => refuse!(OffsetFetchResponse, e),
                Err(e) => {
                    return Err(format!(
                        "OffsetFetch refused: {}",
                        e.message.unwrap_or_default()
                    ))
                }
                Ok(()) => {
                    let response = offset_fetch::handle(broker, request, version).await;
                    ready(encode_response(correlation_id, version, &response))
                }
            }
        }
        ApiKey::ListGroups => with_ctx!(ListGroupsRequest, list_groups::handle),
        ApiKey::DescribeGroups => with_ctx!(DescribeGroupsRequest, describe_groups::handle),
        ApiKey::DeleteGroups => with_ctx!(DeleteGroupsRequest, delete_groups::handle),
        ApiKey::OffsetDelete => with_ctx!(OffsetDeleteRequest, offset_delete::handle),
        ApiKey::DescribeLogDirs => inline!(DescribeLogDirsRequest, describe_log_dirs::handle),
        ApiKey::DescribeClientQuotas => {
            inline!(DescribeClientQuotasRequest, client_quotas::describe)
        }
        ApiKey::AlterClientQuotas => inline!(AlterClientQuotasRequest, client_quotas::alter),
        ApiKey::SaslHandshake => {
            exempt = true;
            let request: SaslHandshakeRequest = decode(&mut buf, key, version)?;
            let response = sasl_handshake::handle(broker, &ctx.session, request, version);
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::SaslAuthenticate => {
            exempt = true;
            let request: SaslAuthenticateRequest = decode(&mut buf, key, version)?;
            let response = sasl_authenticate::handle(broker, &ctx.session, request, version).await;
            ready(encode_response(correlation_id, version, &response))
        }
        ApiKey::DescribeAcls => with_ctx!(DescribeAclsRequest, acls::describe),
        ApiKey::CreateAcls => with_ctx!(CreateAclsRequest, acls::create),
        ApiKey::DeleteAcls => with_ctx!(DeleteAclsRequest, acls::delete),
        ApiKey::DescribeUserScramCredentials => inline!(
            DescribeUserScramCredentialsRequest,
            user_scram_credentials::describe
        ),
        ApiKey::AlterUserScramCredentials => inline!(
            AlterUserScramCredentialsRequest,
            user_scram_credentials::alter
        ),
        ApiKey::DescribeTopicPartitions => with_ctx!(
            DescribeTopicPartitionsRequest,
            describe_topic_partitions::handle
        ),
        ApiKey::DescribeProducers => {
            with_ctx!(DescribeProducersRequest, describe_producers::handle)
        }
        ApiKey::AlterPartitionReassignments => inline!(
            AlterPartitionReassignmentsRequest,
            alter_partition_reassignments::handle
        ),
        ApiKey::ListPartitionReassignments => inline!(
            ListPartitionReassignmentsRequest,
            list_partition_reassignments::handle
        ),
        ApiKey::ElectLeaders => inline!(ElectLeadersRequest, elect_leaders::handle),
        ApiKey::DescribeQuorum => inline!(DescribeQuorumRequest, describe_quorum::handle),
        ApiKey::OffsetForLeaderEpoch => {
            with_ctx!(OffsetForLeaderEpochRequest, offset_for_leader_epoch::handle)
        }
        other => return Err(format!("unsupported API {other:?}")),
    };
    Ok((pending, exempt))
}

/// Runs blocking work (log reads and appends, file creation) off the async
/// runtime; its time counts toward the request's quota when a request runs it.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let counter = REQUEST_NANOS.try_with(Arc::clone).ok();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = f();
        if let Some(counter) = counter {
            let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counter.fetch_add(spent, Ordering::Relaxed);
        }
        out
    })
    .await
    .map_err(|e| format!("blocking task failed: {e}"))
}

/// Record count and byte size of every magic-v2 batch header in `records`
/// (for metrics; malformed tails are ignored).
pub(crate) fn count_records(records: &[u8]) -> u64 {
    let mut pos = 0usize;
    let mut count = 0u64;
    while records.len() >= pos + 61 {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        if len < 49 {
            break;
        }
        let n = i32::from_be_bytes([
            records[pos + 57],
            records[pos + 58],
            records[pos + 59],
            records[pos + 60],
        ]);
        count += n.max(0) as u64;
        pos += 12 + len as usize;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work a request runs on the blocking pool counts toward its request
    /// quota; the same work outside a request counts nowhere.
    #[tokio::test]
    async fn blocking_work_of_a_request_counts_as_its_busy_time() {
        let counter = Arc::new(AtomicU64::new(0));
        let work = || std::thread::sleep(std::time::Duration::from_millis(30));
        REQUEST_NANOS
            .scope(counter.clone(), async { blocking(work).await.unwrap() })
            .await;
        assert!(counter.load(Ordering::Relaxed) >= 30_000_000);
        let before = counter.load(Ordering::Relaxed);
        blocking(work).await.unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), before);
    }

    #[test]
    fn advertised_apis_are_within_codec_ranges() {
        for (key, r) in supported_apis() {
            assert!(!r.is_empty(), "{key:?}");
            let codec = key.valid_versions();
            assert!(
                r.min >= codec.min && r.max <= codec.max,
                "{key:?} {r} vs {codec}"
            );
        }
        assert_eq!(handled_range(ApiKey::Produce).map(|r| r.min), Some(3));
        assert!(handled_range(ApiKey::ShareGroupHeartbeat).is_none());
    }

    /// Every API and version we advertise is described by the schema table,
    /// and a default request of each, as the crate encodes it, passes the wire
    /// check whole and decodes (nested structs are covered by runnel-wire's
    /// tests, the recorded client traffic and the fuzz targets).
    #[test]
    fn every_advertised_request_version_passes_the_wire_check_and_decodes() {
        fn check<R: Request + Default + Encodable + Decodable + HeaderVersion>(key: ApiKey) {
            let range = handled_range(key).unwrap_or_else(|| panic!("{key:?} not advertised"));
            for version in range.min..=range.max {
                let mut buf = BytesMut::new();
                RequestHeader::default()
                    .with_request_api_key(key as i16)
                    .with_request_api_version(version)
                    .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                        "t",
                    )))
                    .encode(&mut buf, R::header_version(version))
                    .unwrap_or_else(|e| panic!("{key:?} v{version} header: {e}"));
                R::default()
                    .encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
                let frame = buf.freeze();
                assert_eq!(
                    runnel_wire::check_request(&frame),
                    Ok(frame.len()),
                    "{key:?} v{version}"
                );
                let mut b = frame.clone();
                RequestHeader::decode(&mut b, R::header_version(version)).unwrap();
                R::decode(&mut b, version).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
                assert!(b.is_empty(), "{key:?} v{version}: decoder left bytes");
            }
        }
        check::<ProduceRequest>(ApiKey::Produce);
        check::<FetchRequest>(ApiKey::Fetch);
        check::<ListOffsetsRequest>(ApiKey::ListOffsets);
        check::<MetadataRequest>(ApiKey::Metadata);
        check::<ApiVersionsRequest>(ApiKey::ApiVersions);
        check::<CreateTopicsRequest>(ApiKey::CreateTopics);
        check::<DeleteTopicsRequest>(ApiKey::DeleteTopics);
        check::<DeleteRecordsRequest>(ApiKey::DeleteRecords);
        check::<InitProducerIdRequest>(ApiKey::InitProducerId);
        check::<DescribeConfigsRequest>(ApiKey::DescribeConfigs);
        check::<AlterConfigsRequest>(ApiKey::AlterConfigs);
        check::<CreatePartitionsRequest>(ApiKey::CreatePartitions);
        check::<IncrementalAlterConfigsRequest>(ApiKey::IncrementalAlterConfigs);
        check::<DescribeClusterRequest>(ApiKey::DescribeCluster);
        check::<FindCoordinatorRequest>(ApiKey::FindCoordinator);
        check::<JoinGroupRequest>(ApiKey::JoinGroup);
        check::<SyncGroupRequest>(ApiKey::SyncGroup);
        check::<HeartbeatRequest>(ApiKey::Heartbeat);
        check::<LeaveGroupRequest>(ApiKey::LeaveGroup);
        check::<OffsetCommitRequest>(ApiKey::OffsetCommit);
        check::<OffsetFetchRequest>(ApiKey::OffsetFetch);
        check::<ListGroupsRequest>(ApiKey::ListGroups);
        check::<DescribeGroupsRequest>(ApiKey::DescribeGroups);
        check::<DeleteGroupsRequest>(ApiKey::DeleteGroups);
        check::<OffsetDeleteRequest>(ApiKey::OffsetDelete);
        check::<AlterPartitionReassignmentsRequest>(ApiKey::AlterPartitionReassignments);
        check::<ListPartitionReassignmentsRequest>(ApiKey::ListPartitionReassignments);
        check::<ElectLeadersRequest>(ApiKey::ElectLeaders);
        check::<DescribeQuorumRequest>(ApiKey::DescribeQuorum);
        check::<OffsetForLeaderEpochRequest>(ApiKey::OffsetForLeaderEpoch);
        check::<DescribeProducersRequest>(ApiKey::DescribeProducers);
        check::<DescribeLogDirsRequest>(ApiKey::DescribeLogDirs);
        check::<DescribeTopicPartitionsRequest>(ApiKey::DescribeTopicPartitions);
        check::<DescribeClientQuotasRequest>(ApiKey::DescribeClientQuotas);
        check::<AlterClientQuotasRequest>(ApiKey::AlterClientQuotas);
        check::<ConsumerGroupHeartbeatRequest>(ApiKey::ConsumerGroupHeartbeat);
        check::<ConsumerGroupDescribeRequest>(ApiKey::ConsumerGroupDescribe);
        check::<GetTelemetrySubscriptionsRequest>(ApiKey::GetTelemetrySubscriptions);
        check::<PushTelemetryRequest>(ApiKey::PushTelemetry);
        check::<ListConfigResourcesRequest>(ApiKey::ListConfigResources);
        check::<AddPartitionsToTxnRequest>(ApiKey::AddPartitionsToTxn);
        check::<AddOffsetsToTxnRequest>(ApiKey::AddOffsetsToTxn);
        check::<EndTxnRequest>(ApiKey::EndTxn);
        check::<WriteTxnMarkersRequest>(ApiKey::WriteTxnMarkers);
        check::<DescribeTransactionsRequest>(ApiKey::DescribeTransactions);
        check::<ListTransactionsRequest>(ApiKey::ListTransactions);
        check::<TxnOffsetCommitRequest>(ApiKey::TxnOffsetCommit);
        check::<SaslHandshakeRequest>(ApiKey::SaslHandshake);
        check::<SaslAuthenticateRequest>(ApiKey::SaslAuthenticate);
        check::<DescribeUserScramCredentialsRequest>(ApiKey::DescribeUserScramCredentials);
        check::<AlterUserScramCredentialsRequest>(ApiKey::AlterUserScramCredentials);
        check::<DescribeAclsRequest>(ApiKey::DescribeAcls);
        check::<CreateAclsRequest>(ApiKey::CreateAcls);
        check::<DeleteAclsRequest>(ApiKey::DeleteAcls);
        assert_eq!(supported_apis().len(), 54, "a new API needs a line above");
    }

    #[test]
    fn group_apis_are_advertised_with_the_versions_clients_use() {
        let expect = [
            (ApiKey::FindCoordinator, 0, 6),
            (ApiKey::JoinGroup, 0, 9),
            (ApiKey::SyncGroup, 0, 5),
            (ApiKey::Heartbeat, 0, 4),
            (ApiKey::LeaveGroup, 0, 5),
            (ApiKey::OffsetCommit, 2, 9),
            (ApiKey::OffsetFetch, 1, 9),
            (ApiKey::ListGroups, 0, 5),
            (ApiKey::DescribeGroups, 0, 5),
            (ApiKey::DeleteGroups, 0, 2),
            (ApiKey::OffsetDelete, 0, 0),
            (ApiKey::ConsumerGroupHeartbeat, 0, 1),
            (ApiKey::ConsumerGroupDescribe, 0, 0),
        ];
        for (key, min, max) in expect {
            let r = handled_range(key).unwrap_or_else(|| panic!("{key:?} not advertised"));
            assert_eq!((r.min, r.max), (min, max), "{key:?}");
        }
    }
}
