//! CreateTopics: validates names, duplicates, ACLs, partition counts,
//! replication factors and configs here, then proposes every topic that passed
//! in one [`Command::CreateTopics`]: one metadata log entry, so one append and
//! one fsync on each quorum member for the whole request however many topics
//! it holds, and the broker opens their partitions in one pass. The state
//! machine places the replicas (automatically or as assigned) and refuses a
//! topic on its own (it exists by then, or its placement became impossible),
//! creating the others. `validate_only` proposes nothing.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::{AclOperation, Applied, Command, MetaError, NewTopic, Placement};
use uuid::Uuid;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topic_config::{self, TopicOverrides, TOPIC_CONFIGS};
use crate::topics::TopicError;

/// Most topics proposed in one log entry. A request with more is proposed in
/// several entries, so no single entry (which a follower must receive whole in
/// one metadata RPC frame) grows with the request without bound.
const MAX_TOPICS_PER_ENTRY: usize = 1000;

/// Handles CreateTopics.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    // CREATE on the cluster allows every topic; otherwise CREATE on each topic.
    let state = broker.cluster();
    let cluster_create = authorize::cluster(broker, &state, ctx, AclOperation::Create).is_ok();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let validate_only = request.validate_only;
    let mut names = Vec::with_capacity(request.topics.len());
    let mut outcomes: Vec<Result<Created, ApiError>> = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let outcome = if duplicates.contains(name.0.as_str()) {
            Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                format!("topic '{}' appears more than once in the request", name.0),
            ))
        } else if let Err(denied) = if cluster_create {
            Ok(())
        } else {
            authorize::topic(broker, &state, ctx, AclOperation::Create, name.0.as_str())
        } {
            Err(denied)
        } else {
            validate(broker, topic)
        };
        names.push(name);
        outcomes.push(outcome);
    }
    if !validate_only {
        create(broker, &mut outcomes).await;
    }
    let mut results = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(outcomes) {
        let entry = CreatableTopicResult::default().with_name(name);
        results.push(match result {
            Ok(done) => {
                let mut entry = entry
                    .with_error_message(None)
                    .with_topic_id(done.id)
                    .with_num_partitions(done.partitions)
                    .with_replication_factor(done.replication_factor);
                if version >= 5 {
                    entry = entry.with_configs(Some(effective_configs(broker, &done.configs)));
                }
                entry
            }
            Err(err) => {
                let entry = entry
                    .with_error_code(err.code())
                    .with_error_message(err.message.map(StrBytes::from_string));
                if version >= 5 {
                    entry.with_configs(None)
                } else {
                    entry
                }
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// A topic that passed validation (what `validate_only` reports), and once
/// created what the response tells about it.
struct Created {
    name: String,
    /// Chosen when proposed; nil under `validate_only`.
    id: Uuid,
    placement: Placement,
    partitions: i32,
    replication_factor: i16,
    configs: TopicOverrides,
}

/// Proposes every validated topic of `outcomes` in request order, at most
/// [`MAX_TOPICS_PER_ENTRY`] per log entry, and replaces each one's outcome
/// with the state machine's verdict on it.
async fn create(broker: &Arc<Broker>, outcomes: &mut [Result<Created, ApiError>]) {
    let valid: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.is_ok().then_some(i))
        .collect();
    for chunk in valid.chunks(MAX_TOPICS_PER_ENTRY) {
        let mut topics = Vec::with_capacity(chunk.len());
        for &i in chunk {
            if let Ok(created) = &mut outcomes[i] {
                created.id = Uuid::new_v4();
                topics.push(NewTopic {
                    name: created.name.clone(),
                    id: created.id,
                    placement: created.placement.clone(),
                    configs: created.configs.clone(),
                });
            }
        }
        let verdicts = match broker.propose(Command::CreateTopics { topics }).await {
            Ok(Applied::Topics(verdicts)) if verdicts.len() == chunk.len() => verdicts
                .into_iter()
                .map(|v| v.map_err(|r| ApiError::from(MetaError::Rejected(r))))
                .collect(),
            Ok(other) => {
                tracing::error!(reply = ?other, topics = chunk.len(), "unexpected reply to CreateTopics");
                let err = ApiError::with_message(
                    ResponseError::UnknownServerError,
                    "the metadata quorum gave no outcome for this topic",
                );
                vec![Err(err); chunk.len()]
            }
            // The entry failed as a whole (no controller, timeout): every
            // topic in it gets the error, as each got it when proposed alone.
            Err(err) => vec![Err(err); chunk.len()],
        };
        for (&i, verdict) in chunk.iter().zip(verdicts) {
            match verdict {
                Ok(()) => {
                    if let Ok(c) = &outcomes[i] {
                        tracing::info!(topic = %c.name, partitions = c.partitions,
                            replication_factor = c.replication_factor, id = %c.id, "created topic");
                    }
                }
                Err(err) => outcomes[i] = Err(err),
            }
        }
    }
}

/// Checks one topic against the request rules and the current metadata, as
/// far as the broker can (the state machine checks existence and placement
/// again when it applies the command).
fn validate(broker: &Broker, topic: CreatableTopic) -> Result<Created, ApiError> {
    let name = topic.name.0.to_string();
    let (partitions, placement) = if topic.assignments.is_empty() {
        let partitions = match topic.num_partitions {
            -1 => broker.config.num_partitions,
            n if n <= 0 => {
                return Err(TopicError::InvalidPartitions(format!(
                    "number of partitions must be larger than 0, got {n}"
                ))
                .into())
            }
            n => n,
        };
        let rf = match topic.replication_factor {
            -1 => broker.config.default_replication_factor,
            rf if rf <= 0 => {
                return Err(TopicError::InvalidReplicationFactor(format!(
                    "replication factor must be larger than 0, got {rf}"
                ))
                .into())
            }
            rf => rf,
        };
        (
            partitions,
            Placement::Auto {
                partitions,
                replication_factor: rf,
            },
        )
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                "both manual replica assignments and num_partitions/replication_factor were given",
            ));
        }
        let mut assignments: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort_by_key(|(p, _)| *p);
        if assignments
            .iter()
            .enumerate()
            .any(|(i, (p, _))| *p != i as i32)
        {
            return Err(TopicError::InvalidReplicaAssignment(
                "partition indexes of the assignment must be 0..n without gaps".into(),
            )
            .into());
        }
        (
            assignments.len() as i32,
            Placement::Manual(assignments.into_iter().map(|(_, b)| b).collect()),
        )
    };
    let mut configs = TopicOverrides::new();
    for c in topic.configs {
        // A null value means "use the default", as in Kafka's AdminClient.
        if let Some(value) = c.value {
            configs.insert(c.name.to_string(), value.to_string());
        }
    }
    if name == crate::group::OFFSETS_TOPIC {
        // Its partition count and settings belong to the group coordinator,
        // which creates it on first use.
        if broker.topics.get(&name).is_some() {
            return Err(TopicError::AlreadyExists(name).into());
        }
        return Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("{name} is an internal topic; the group coordinator creates it on first use"),
        ));
    }
    broker
        .topics
        .validate_new_topic(&name, partitions, &configs)?;
    let state = broker.cluster();
    let live: Vec<i32> = state.live_brokers().map(|b| b.id).collect();
    let replication_factor = check_placement(&placement, &live, &state)?;
    Ok(Created {
        name,
        id: Uuid::nil(),
        placement,
        partitions,
        replication_factor,
        configs,
    })
}

/// What CreateTopics can check of a placement against the current metadata
/// (so `validate_only` answers as a real creation would); the state machine
/// checks again when it applies the command. Returns the replication factor.
fn check_placement(
    placement: &Placement,
    live: &[i32],
    state: &runnel_meta::ClusterState,
) -> Result<i16, ApiError> {
    match placement {
        Placement::Auto {
            replication_factor, ..
        } => {
            if usize::try_from(*replication_factor).unwrap_or(0) > live.len() {
                let n = live.len();
                return Err(TopicError::InvalidReplicationFactor(format!(
                    "replication factor {replication_factor} is larger than the number of live brokers: {n} broker{} available",
                    if n == 1 { "" } else { "s" }
                ))
                .into());
            }
            Ok(*replication_factor)
        }
        Placement::Manual(assignment) => {
            let rf = assignment.first().map_or(0, Vec::len);
            for (index, replicas) in assignment.iter().enumerate() {
                let mut unique = replicas.clone();
                unique.sort_unstable();
                unique.dedup();
                if replicas.is_empty() || unique.len() != replicas.len() {
                    return Err(TopicError::InvalidReplicaAssignment(format!(
                        "partition {index} has an empty or duplicated replica list {replicas:?}"
                    ))
                    .into());
                }
                if replicas.len() != rf {
                    return Err(TopicError::InvalidReplicaAssignment(format!(
                        "partition {index} has {} replicas; every partition must have {rf}",
                        replicas.len()
                    ))
                    .into());
                }
                if let Some(unknown) = replicas.iter().find(|r| !state.brokers.contains_key(r)) {
                    return Err(TopicError::InvalidReplicaAssignment(format!(
                        "partition {index} is assigned to broker {unknown}, which is not registered"
                    ))
                    .into());
                }
            }
            Ok(i16::try_from(rf).unwrap_or(i16::MAX))
        }
    }
}

/// Every known config of a topic with its effective value and source (CreateTopics v5+).
fn effective_configs(broker: &Broker, overrides: &TopicOverrides) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = topic_config::effective(def, overrides, &broker.config);
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(false)
                .with_config_source(source as i8)
                .with_is_sensitive(false)
        })
        .collect()
}
