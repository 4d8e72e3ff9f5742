//! Metadata: the live brokers, the cluster id and controller (the metadata
//! quorum's leader), and topics with each partition's leader, leader epoch,
//! replicas, ISR and offline replicas, all from the applied cluster metadata.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_meta::{
    AclOperation, ClusterState, Command, PartitionMeta, Placement, TopicMeta, NO_LEADER,
};
use uuid::Uuid;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::names::validate_topic_name;
use crate::topics::{Topic, TopicError};

/// A requested topic that cannot be described: its name or id, and why.
type Unknown = (Option<TopicName>, Uuid, ApiError);

/// Handles Metadata for a client that came in on `listener`: brokers are
/// listed at their address on that listener.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let listener = ctx.session.listener.name.as_str();
    // v0 has no null topic list: an empty list means all topics.
    let wanted = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let allow_auto_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut described: Vec<Result<Arc<TopicMeta>, Unknown>> = Vec::new();
    match wanted {
        None => {
            // Topics the principal may not describe are left out.
            let state = broker.cluster();
            described.extend(
                state
                    .topics
                    .values()
                    .filter(|t| {
                        authorize::topic(broker, &state, ctx, AclOperation::Describe, &t.name)
                            .is_ok()
                    })
                    .cloned()
                    .map(Ok),
            );
        }
        Some(requested) => {
            for entry in requested {
                let name = entry.name.as_ref().map(|n| n.0.to_string());
                let state = broker.cluster();
                let found = match &name {
                    Some(name) => {
                        match authorize::topic(broker, &state, ctx, AclOperation::Describe, name) {
                            Err(denied) => Err(denied),
                            Ok(()) => {
                                // Auto-creation needs CREATE on the cluster or on the topic.
                                let may_create = allow_auto_create
                                    && (authorize::cluster(
                                        broker,
                                        &state,
                                        ctx,
                                        AclOperation::Create,
                                    )
                                    .is_ok()
                                        || authorize::topic(
                                            broker,
                                            &state,
                                            ctx,
                                            AclOperation::Create,
                                            name,
                                        )
                                        .is_ok());
                                lookup_or_create(broker, name, may_create).await
                            }
                        }
                        .and_then(|_| {
                            broker.cluster().topics.get(name).cloned().ok_or_else(|| {
                                ApiError::from(TopicError::UnknownTopic(name.clone()))
                            })
                        })
                    }
                    None => state
                        .topics
                        .values()
                        .find(|t| t.id == entry.topic_id)
                        .cloned()
                        .ok_or_else(|| ApiError::from(TopicError::UnknownTopicId(entry.topic_id)))
                        .and_then(|t| {
                            authorize::topic(broker, &state, ctx, AclOperation::Describe, &t.name)
                                .map(|()| t)
                        }),
                };
                described.push(found.map_err(|err| {
                    let id = if name.is_none() {
                        entry.topic_id
                    } else {
                        Uuid::nil()
                    };
                    (entry.name.clone(), id, err)
                }));
            }
        }
    }
    // One snapshot for brokers and partitions, taken after any auto-creation.
    let state = broker.cluster();
    let topics = described
        .into_iter()
        .map(|d| match d {
            Ok(topic) => describe(&state, &topic, listener, version),
            Err((name, id, err)) => MetadataResponseTopic::default()
                .with_error_code(err.code())
                .with_name(name)
                .with_topic_id(id),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(live_brokers(broker, &state, listener))
        .with_cluster_id(Some(StrBytes::from_string(cluster_id(broker, &state))))
        .with_controller_id(BrokerId(controller_id(broker)))
        .with_topics(topics)
}

/// The cluster id from the metadata (the broker's own until it is known).
pub(crate) fn cluster_id(broker: &Broker, state: &ClusterState) -> String {
    state
        .cluster_id
        .clone()
        .unwrap_or_else(|| broker.cluster_id.clone())
}

/// The controller: the metadata quorum's leader, -1 when none is known.
pub(crate) fn controller_id(broker: &Broker) -> i32 {
    broker.meta.quorum().leader.unwrap_or(-1)
}

/// Unfenced registered brokers at their address on `listener` (as Kafka, a
/// broker without that listener is left out); this broker is always listed so
/// a client that bootstrapped through it can reach it.
fn live_brokers(
    broker: &Broker,
    state: &ClusterState,
    listener: &str,
) -> Vec<MetadataResponseBroker> {
    let entry = |id: i32, (host, port): (&str, u16), rack: Option<&String>| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(i32::from(port))
            .with_rack(rack.cloned().map(StrBytes::from_string))
    };
    let mut brokers: BTreeMap<i32, MetadataResponseBroker> = state
        .live_brokers()
        .filter_map(|b| Some((b.id, entry(b.id, b.endpoint(listener)?, b.rack.as_ref()))))
        .collect();
    if let Some(own) = broker.own_endpoint(listener) {
        brokers
            .entry(broker.node_id())
            .or_insert_with(|| entry(broker.node_id(), own, broker.config.broker_rack.as_ref()));
    }
    brokers.into_values().collect()
}

/// Finds a topic, auto-creating it through the metadata quorum when allowed.
/// Shared with Produce.
pub(crate) async fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &str,
    auto_create: bool,
) -> Result<Arc<Topic>, ApiError> {
    if let Some(topic) = broker.topics.get(name) {
        return Ok(topic);
    }
    let state = broker.cluster();
    if state.topics.contains_key(name) {
        // Created through another broker and not yet synced here.
        broker.wait_synced(state.applied_index).await?;
        if let Some(topic) = broker.topics.get(name) {
            return Ok(topic);
        }
    }
    if name == crate::group::OFFSETS_TOPIC {
        // Created lazily, with its own settings; asking for it by name
        // creates it as Kafka's auto-creation does.
        broker
            .ensure_offsets_topic()
            .await
            .map_err(|err| ApiError::new(crate::errors::group_error_code(err)))?;
        return broker
            .topics
            .get(name)
            .ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable));
    }
    if let Err(err) = validate_topic_name(name) {
        return Err(ApiError::with_message(
            ResponseError::InvalidTopicException,
            err.to_string(),
        ));
    }
    if !auto_create {
        return Err(ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic '{name}'"),
        ));
    }
    let partitions = broker.config.num_partitions;
    let live = broker.cluster().live_brokers().count();
    let rf = broker.config.default_replication_factor;
    if usize::try_from(rf).unwrap_or(0) > live {
        // Kafka refuses auto-creation the same way when too few brokers are up.
        return Err(ApiError::with_message(
            ResponseError::InvalidReplicationFactor,
            format!("default_replication_factor {rf} is larger than the {live} live brokers"),
        ));
    }
    let command = Command::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        placement: Placement::Auto {
            partitions,
            replication_factor: rf,
        },
        configs: Default::default(),
    };
    match broker.propose(command).await {
        Ok(_) => tracing::info!(topic = name, partitions, "auto-created topic"),
        // A concurrent request created it first: fine.
        Err(err) if err.code == ResponseError::TopicAlreadyExists => {
            let index = broker.cluster().applied_index;
            broker.topics.wait_synced(index).await;
        }
        Err(err) => return Err(err),
    }
    broker.topics.get(name).ok_or_else(|| {
        ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic '{name}'"),
        )
    })
}

/// One topic's partitions as the metadata has them.
/// A partition's error code (LEADER_NOT_AVAILABLE without a leader) and its replicas on
/// brokers that are fenced or gone, as Metadata and DescribeTopicPartitions report them.
pub(crate) fn partition_health(state: &ClusterState, p: &PartitionMeta) -> (i16, Vec<BrokerId>) {
    let offline: Vec<BrokerId> = p
        .replicas
        .iter()
        .filter(|r| state.brokers.get(r).is_none_or(|b| b.fenced))
        .map(|r| BrokerId(*r))
        .collect();
    let error = if p.leader == NO_LEADER {
        ResponseError::LeaderNotAvailable.code()
    } else {
        0
    };
    (error, offline)
}

/// One topic as a client on `listener` sees it. A partition whose leader has
/// no such listener has no leader it could reach: LISTENER_NOT_FOUND from v6
/// (LEADER_NOT_AVAILABLE before), leader -1, as in Kafka.
fn describe(
    state: &ClusterState,
    topic: &TopicMeta,
    listener: &str,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let (mut error, offline) = partition_health(state, p);
            let mut leader = p.leader;
            let unreachable = state
                .brokers
                .get(&p.leader)
                .is_some_and(|b| !b.fenced && b.endpoint(listener).is_none());
            if unreachable {
                leader = NO_LEADER;
                error = if version >= 6 {
                    ResponseError::ListenerNotFound.code()
                } else {
                    ResponseError::LeaderNotAvailable.code()
                };
            }
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(matches!(
            topic.name.as_str(),
            "__consumer_offsets" | "__transaction_state"
        ))
        .with_partitions(partitions)
}
