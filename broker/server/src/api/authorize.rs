//! The authorizer's checks as request handlers use them: each answers the
//! Kafka error of its resource type (TOPIC_AUTHORIZATION_FAILED,
//! GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED) with a message naming the principal,
//! the operation and the resource. With the authorizer off every check passes
//! at the cost of one branch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use runnel_meta::{AclOperation, AclResourceType, ClusterState};

use crate::api::RequestContext;
use crate::auth::authorizer::CLUSTER_NAME;
use crate::broker::Broker;
use crate::errors::ApiError;

fn check(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
    resource: AclResourceType,
    name: &str,
) -> Result<(), ApiError> {
    if broker.authorize(state, &ctx.session, op, resource, name) {
        return Ok(());
    }
    let code = match resource {
        AclResourceType::Topic => ResponseError::TopicAuthorizationFailed,
        AclResourceType::Group => ResponseError::GroupAuthorizationFailed,
        AclResourceType::Cluster => ResponseError::ClusterAuthorizationFailed,
        AclResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
    };
    Err(ApiError::with_message(
        code,
        format!(
            "{} is not authorized to {op:?} {resource:?} '{name}'",
            ctx.session.principal.read()
        ),
    ))
}

/// `op` on topic `name`.
pub(crate) fn topic(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
    name: &str,
) -> Result<(), ApiError> {
    check(broker, state, ctx, op, AclResourceType::Topic, name)
}

/// `op` on group `name`.
pub(crate) fn group(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
    name: &str,
) -> Result<(), ApiError> {
    check(broker, state, ctx, op, AclResourceType::Group, name)
}

/// `op` on transactional id `name`.
pub(crate) fn transactional_id(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
    name: &str,
) -> Result<(), ApiError> {
    check(
        broker,
        state,
        ctx,
        op,
        AclResourceType::TransactionalId,
        name,
    )
}

/// `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource: the topic for a
/// topic resource, the cluster for the others (brokers, client metrics).
pub(crate) fn config_resource(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), ApiError> {
    if resource_type == crate::api::config_resources::RESOURCE_TOPIC {
        topic(broker, state, ctx, op, name)
    } else {
        cluster(broker, state, ctx, op)
    }
}

/// `op` on the cluster.
pub(crate) fn cluster(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
    op: AclOperation,
) -> Result<(), ApiError> {
    check(
        broker,
        state,
        ctx,
        op,
        AclResourceType::Cluster,
        CLUSTER_NAME,
    )
}

/// An idempotent producer's InitProducerId: IDEMPOTENT_WRITE on the cluster, or WRITE on
/// any topic (Kafka's rule since KIP-679).
pub(crate) fn idempotent_write(
    broker: &Broker,
    state: &ClusterState,
    ctx: &RequestContext,
) -> Result<(), ApiError> {
    let denied = cluster(broker, state, ctx, AclOperation::IdempotentWrite);
    if denied.is_err()
        && broker.authorizer.allows_some(
            &state.acls,
            &ctx.session.principal.read(),
            ctx.session.peer.map(|p| p.ip()),
            AclOperation::Write,
            AclResourceType::Topic,
        )
    {
        return Ok(());
    }
    denied
}

/// The cluster permission an API needs when its handler makes no finer check
/// (`None`: the handler checks, or the API is open to every connection). APIs
/// without a rule of their own yet need ALTER on the cluster: with the authorizer
/// on they are for super users and principals given cluster ALTER.
pub(crate) fn cluster_gate(key: ApiKey) -> Option<AclOperation> {
    use ApiKey::*;
    match key {
        // Open, or checked by their handlers.
        ApiVersions
        | SaslHandshake
        | SaslAuthenticate
        | Metadata
        | Produce
        | Fetch
        | ListOffsets
        | OffsetForLeaderEpoch
        | FindCoordinator
        | JoinGroup
        | SyncGroup
        | Heartbeat
        | LeaveGroup
        | OffsetCommit
        | OffsetFetch
        | ConsumerGroupHeartbeat
        | CreateTopics
        | DeleteTopics
        | DescribeCluster
        | GetTelemetrySubscriptions
        | PushTelemetry
        | DescribeAcls
        | CreateAcls
        | DeleteAcls
        | InitProducerId
        | AddOffsetsToTxn
        | EndTxn
        | AddPartitionsToTxn
        | TxnOffsetCommit
        | ListGroups
        | DescribeGroups
        | ConsumerGroupDescribe
        | DescribeConfigs
        | AlterConfigs
        | IncrementalAlterConfigs
        | CreatePartitions
        | DeleteGroups
        | DeleteRecords
        | DescribeProducers
        | DescribeTransactions
        | ListTransactions
        | DescribeTopicPartitions
        | OffsetDelete => None,
        DescribeClientQuotas | ListConfigResources => Some(AclOperation::DescribeConfigs),
        AlterClientQuotas => Some(AclOperation::AlterConfigs),
        WriteTxnMarkers => Some(AclOperation::ClusterAction),
        DescribeLogDirs
        | DescribeQuorum
        | ListPartitionReassignments
        | DescribeUserScramCredentials => Some(AclOperation::Describe),
        _ => Some(AclOperation::Alter),
    }
}

/// AlterUserScramCredentials refused: every user named in the request gets the
/// error, once (the response has no top-level error).
pub(crate) fn refused_scram_alterations(
    request: &kafka_protocol::messages::AlterUserScramCredentialsRequest,
    denied: &ApiError,
) -> kafka_protocol::messages::AlterUserScramCredentialsResponse {
    use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    let mut users: Vec<_> = request.deletions.iter().map(|d| d.name.clone()).collect();
    users.extend(request.upsertions.iter().map(|u| u.name.clone()));
    users.sort();
    users.dedup();
    kafka_protocol::messages::AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(denied.code())
                    .with_error_message(denied.message.clone().map(Into::into))
            })
            .collect(),
    )
}

/// AlterClientQuotas refused: each entry gets the error.
pub(crate) fn refused_quota_alterations(
    request: &kafka_protocol::messages::AlterClientQuotasRequest,
    denied: &ApiError,
) -> kafka_protocol::messages::AlterClientQuotasResponse {
    use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
    kafka_protocol::messages::AlterClientQuotasResponse::default().with_entries(
        request
            .entries
            .iter()
            .map(|entry| {
                EntryData::default()
                    .with_error_code(denied.code())
                    .with_error_message(denied.message.clone().map(Into::into))
                    .with_entity(
                        entry
                            .entity
                            .iter()
                            .map(|e| {
                                EntityData::default()
                                    .with_entity_type(e.entity_type.clone())
                                    .with_entity_name(e.entity_name.clone())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// ElectLeaders v0 refused (v1 has a top-level error): each partition named
/// gets the error; a request for every partition gets an empty answer.
pub(crate) fn refused_elections(
    request: &kafka_protocol::messages::ElectLeadersRequest,
    denied: &ApiError,
) -> kafka_protocol::messages::ElectLeadersResponse {
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    let topics = request.topic_partitions.as_deref().unwrap_or_default();
    kafka_protocol::messages::ElectLeadersResponse::default().with_replica_election_results(
        topics
            .iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic.clone())
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(*p)
                                    .with_error_code(denied.code())
                                    .with_error_message(denied.message.clone().map(Into::into))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
