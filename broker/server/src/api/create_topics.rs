//! CreateTopics: validates names, partition counts and configs here, then
//! proposes the topic to the metadata quorum, which places the replicas
//! (automatically or as assigned); `validate_only` proposes nothing. The
//! topics of one request are created concurrently, so the quorum commits
//! their entries together and the broker opens their partitions in one pass.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::{AclOperation, Command, Placement};
use uuid::Uuid;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topic_config::{self, TopicOverrides, TOPIC_CONFIGS};
use crate::topics::TopicError;

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
    let mut creations = tokio::task::JoinSet::new();
    let mut outcomes: Vec<Option<Result<Created, ApiError>>> = Vec::new();
    let mut names = Vec::with_capacity(request.topics.len());
    for (i, topic) in request.topics.into_iter().enumerate() {
        let name = topic.name.clone();
        names.push(name.clone());
        outcomes.push(None);
        let refused = if duplicates.contains(name.0.as_str()) {
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
            let broker = broker.clone();
            let validate_only = request.validate_only;
            creations.spawn(async move { (i, create_one(&broker, topic, validate_only).await) });
            continue;
        };
        outcomes[i] = Some(refused);
    }
    while let Some(done) = creations.join_next().await {
        match done {
            Ok((i, result)) => outcomes[i] = Some(result),
            Err(err) => tracing::error!(error = %err, "a topic creation task failed"),
        }
    }
    let mut results = Vec::with_capacity(names.len());
    for (name, result) in names.into_iter().zip(outcomes) {
        let result = result.unwrap_or_else(|| {
            Err(ApiError::with_message(
                ResponseError::UnknownServerError,
                "the topic creation task failed",
            ))
        });
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

/// What a successful (or validated) creation produced.
struct Created {
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: TopicOverrides,
}

async fn create_one(
    broker: &Arc<Broker>,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<Created, ApiError> {
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
    if validate_only {
        return Ok(Created {
            id: Uuid::nil(),
            partitions,
            replication_factor,
            configs,
        });
    }
    let id = Uuid::new_v4();
    broker
        .propose(Command::CreateTopic {
            name: name.clone(),
            id,
            placement,
            configs: configs.clone(),
        })
        .await?;
    tracing::info!(topic = %name, partitions, replication_factor, %id, "created topic");
    Ok(Created {
        id,
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
