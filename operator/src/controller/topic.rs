//! The Topic reconciler: brings a Kafka topic to its `Topic` spec through the Kafka admin API
//! (create, add partitions, set configs, reassign for a replication factor change), reverts and
//! reports drift, reports what cannot be applied in the status, and deletes or keeps the topic
//! behind a finalizer according to `deletionPolicy`.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::ResourceExt;
use runnel_client::ResponseError;
use runnel_client::{topic_id_string, AlterConfigOp, Client, NewTopic, TopicMetadata};

use super::{condition_changed, find_condition, now, resync, write_status, Context};
use crate::crd::{DeletionPolicy, Topic, TopicStatus};
use crate::kafka::kafka_err;
use crate::plan::{plan_topic, reassignment_targets, topic_name, ObservedTopic, TopicAction};
use crate::status::condition;
use crate::Error;

/// Finalizer that keeps a deleted `Topic` until its deletionPolicy has been carried out.
pub const TOPIC_FINALIZER: &str = "runnel.dev/topic-cleanup";

/// Reconciles one Topic (the `Controller` entry point, also called directly by tests).
#[tracing::instrument(skip_all, fields(topic = %topic.name_any(), ns = topic.namespace()))]
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Topic");
    let ns = topic.namespace().ok_or(Error::MissingMetadata {
        kind: "Topic",
        field: "namespace",
    })?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    let obj = topic.clone();
    let result = finalizer(&api, TOPIC_FINALIZER, topic, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(&t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.finished(obj.as_ref(), result.is_ok());
    result
}

/// Why one admin action was not applied.
enum Refusal {
    /// The spec asks for something the brokers refuse; retrying will not help.
    Problem {
        reason: &'static str,
        message: String,
    },
    /// A transient or unexpected failure: the reconcile fails and is retried.
    Failed(Error),
}

/// Sorts a client error from an admin call into a refusal that names the problem, or a failure.
fn refusal(what: String, err: runnel_client::Error) -> Refusal {
    let reason = match &err {
        runnel_client::Error::UnsupportedApi { .. } => Some("UnsupportedByBroker"),
        e => match e.kafka_error() {
            Some(ResponseError::InvalidConfig) => Some("InvalidConfig"),
            Some(ResponseError::InvalidPartitions) => Some("InvalidPartitions"),
            Some(ResponseError::InvalidReplicationFactor) => Some("InvalidReplicationFactor"),
            Some(ResponseError::InvalidReplicaAssignment) => Some("InvalidReplicaAssignment"),
            Some(ResponseError::InvalidRequest) => Some("InvalidRequest"),
            Some(ResponseError::PolicyViolation) => Some("PolicyViolation"),
            Some(ResponseError::InvalidTopicException) => Some("InvalidTopicName"),
            Some(ResponseError::UnsupportedVersion) => Some("UnsupportedByBroker"),
            _ => None,
        },
    };
    match reason {
        Some(reason) => Refusal::Problem {
            reason,
            message: format!("{what}: {err}"),
        },
        None => Refusal::Failed(kafka_err(what)(err)),
    }
}

/// The topic as the brokers describe it, with its metadata (None: it does not exist).
async fn observe(
    client: &Client,
    name: &str,
) -> Result<Option<(ObservedTopic, TopicMetadata)>, Error> {
    let meta = match client.describe_topic(name).await {
        Ok(meta) => meta,
        Err(runnel_client::Error::UnknownTopic(_)) => return Ok(None),
        Err(e) => return Err(kafka_err(format!("describe topic {name}"))(e)),
    };
    let configs = client
        .describe_topic_configs(name)
        .await
        .map_err(kafka_err(format!("describe configs of topic {name}")))?
        .into_iter()
        .filter(|c| c.is_topic_override())
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect();
    let observed = ObservedTopic {
        partitions: meta.partition_count(),
        replication_factor: i32::try_from(meta.replication_factor()).unwrap_or(i32::MAX),
        configs,
    };
    Ok(Some((observed, meta)))
}

/// Executes one planned action. Configs are validated by the brokers first
/// (`validate_only`), so a malformed or unknown key leaves every config as it was.
async fn execute(
    client: &Client,
    name: &str,
    action: &TopicAction,
    meta: Option<&TopicMetadata>,
) -> Result<(), Refusal> {
    match action {
        TopicAction::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions: Some(*partitions),
                replication_factor: replication_factor
                    .map(|rf| i16::try_from(rf).unwrap_or(i16::MAX)),
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            let what = format!("create topic {name}");
            client
                .create_topics(std::slice::from_ref(&topic), true)
                .await
                .map_err(|e| refusal(what.clone(), e))?;
            client
                .create_topics(&[topic], false)
                .await
                .map_err(|e| refusal(what, e))?;
        }
        TopicAction::AddPartitions { total } => {
            client
                .create_partitions(name, *total, false)
                .await
                .map_err(|e| refusal(format!("add partitions to {name}"), e))?;
        }
        TopicAction::SetConfigs { configs } => {
            let ops: Vec<AlterConfigOp> = configs
                .iter()
                .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
                .collect();
            let what = format!("set configs of topic {name}");
            client
                .alter_topic_configs(name, &ops, true)
                .await
                .map_err(|e| refusal(what.clone(), e))?;
            client
                .alter_topic_configs(name, &ops, false)
                .await
                .map_err(|e| refusal(what, e))?;
        }
        TopicAction::ChangeReplicationFactor { to, .. } => {
            let what = format!("reassign partitions of topic {name}");
            let brokers: Vec<i32> = client
                .metadata(Some(&[]), false)
                .await
                .map_err(|e| Refusal::Failed(kafka_err(what.clone())(e)))?
                .brokers
                .iter()
                .map(|b| b.node_id)
                .collect();
            let current: Vec<(i32, Vec<i32>)> = meta
                .map(|m| {
                    m.partitions
                        .iter()
                        .map(|p| (p.partition, p.replicas.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let rf = usize::try_from(*to).unwrap_or(0);
            let targets = reassignment_targets(&current, &brokers, rf);
            if targets.is_empty() {
                return Err(Refusal::Problem {
                    reason: "ReplicationFactorTooLarge",
                    message: format!(
                        "replicationFactor {to} needs {to} live brokers; {} are up",
                        brokers.len()
                    ),
                });
            }
            client
                .reassign_partitions(name, &targets)
                .await
                .map_err(|e| match refusal(what, e) {
                    // Name the missing feature rather than the generic broker refusal.
                    Refusal::Problem {
                        reason: "UnsupportedByBroker",
                        message,
                    } => Refusal::Problem {
                        reason: "ReplicationFactorChangeUnsupported",
                        message,
                    },
                    other => other,
                })?;
        }
    }
    Ok(())
}

/// The Event for an applied action: a Warning with its own reason when it reverted drift (the
/// spec did not change since the topic was last in sync; Events of one reason merge into a
/// series that keeps the first note, hence one reason per kind of drift), else Normal.
fn action_event(
    action: &TopicAction,
    name: &str,
    previous: &TopicStatus,
    was_synced: bool,
) -> (EventType, &'static str, String) {
    match action {
        TopicAction::Create { .. } if previous.topic_id.is_some() => (
            EventType::Warning,
            "TopicRecreated",
            format!("topic {name} was deleted outside the operator; recreated it"),
        ),
        TopicAction::Create {
            partitions,
            replication_factor,
            ..
        } => (
            EventType::Normal,
            "TopicCreated",
            format!(
                "created topic {name} with {partitions} partitions, replication factor {}",
                replication_factor.map_or("(broker default)".to_string(), |rf| rf.to_string())
            ),
        ),
        TopicAction::SetConfigs { configs } => {
            let keys = configs.keys().cloned().collect::<Vec<_>>().join(", ");
            if was_synced {
                (
                    EventType::Warning,
                    "ConfigDriftReverted",
                    format!("configs of topic {name} were changed outside the operator; reverted {keys}"),
                )
            } else {
                (
                    EventType::Normal,
                    "ConfigsUpdated",
                    format!("set {keys} on topic {name}"),
                )
            }
        }
        TopicAction::AddPartitions { total } if was_synced => (
            EventType::Warning,
            "PartitionDriftReverted",
            format!("topic {name} had fewer partitions than the spec; raised to {total}"),
        ),
        TopicAction::AddPartitions { total } => (
            EventType::Normal,
            "PartitionsAdded",
            format!("raised the partitions of topic {name} to {total}"),
        ),
        TopicAction::ChangeReplicationFactor { from, to } => (
            EventType::Normal,
            "ReassignmentStarted",
            format!(
                "reassigning the partitions of topic {name} from replication factor {from} to {to}"
            ),
        ),
    }
}

async fn apply(topic: &Topic, ctx: &Context) -> Result<Action, Error> {
    let object_name = topic.name_any();
    let name = topic_name(&topic.spec, &object_name).to_string();
    let ns = topic.namespace().unwrap_or_default();
    let previous = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let now = now();
    let cluster_name = &topic.spec.cluster_ref.name;

    let Some(cluster) = ctx.cluster(&ns, cluster_name).await? else {
        let message = format!("Cluster {cluster_name} does not exist in namespace {ns}");
        let ready = condition(
            &previous.conditions,
            "Ready",
            false,
            "ClusterNotFound",
            message.clone(),
            generation,
            &now,
        );
        if condition_changed(&previous.conditions, &ready) {
            ctx.event(
                topic,
                EventType::Warning,
                "ClusterNotFound",
                "Reconcile",
                message.clone(),
            )
            .await;
        }
        let status = TopicStatus {
            conditions: vec![ready],
            observed_generation: generation,
            reason: Some(message),
            ..previous.clone()
        };
        write_status(&ctx.client, topic, &status).await?;
        return Ok(resync(ctx));
    };

    let client = match ctx.kafka(&cluster).await {
        Ok(client) => client,
        Err(err) => {
            // Say so in the status (observedGeneration stays: this spec was not applied), then
            // fail so the error policy retries with backoff.
            let ready = condition(
                &previous.conditions,
                "Ready",
                false,
                "BrokersUnreachable",
                err.to_string(),
                generation,
                &now,
            );
            let status = TopicStatus {
                conditions: vec![ready],
                ..previous.clone()
            };
            write_status(&ctx.client, topic, &status).await?;
            return Err(err);
        }
    };
    let observed = observe(&client, &name).await?;
    let plan = plan_topic(
        &topic.spec,
        &object_name,
        observed.as_ref().map(|(o, _)| o),
        cluster.spec.replicas,
    );
    let mut problems: Vec<(&'static str, String)> = plan
        .problems
        .iter()
        .map(|p| (p.reason(), p.message()))
        .collect();
    // The spec has not changed since a pass that left the topic Ready: any action now undoes a
    // change made outside the operator.
    let was_synced = previous.observed_generation == generation
        && find_condition(&previous.conditions, "Ready").is_some_and(|c| c.status == "True");
    let mut changed = false;
    for action in &plan.actions {
        match execute(&client, &name, action, observed.as_ref().map(|(_, m)| m)).await {
            Ok(()) => {
                changed = true;
                tracing::info!(?action, "applied");
                let (type_, reason, note) = action_event(action, &name, &previous, was_synced);
                ctx.event(topic, type_, reason, "Reconcile", note).await;
            }
            Err(Refusal::Problem { reason, message }) => problems.push((reason, message)),
            Err(Refusal::Failed(err)) => return Err(err),
        }
    }
    let observed = if changed {
        observe(&client, &name).await?
    } else {
        observed
    };

    let rf_pending = match (&observed, topic.spec.replication_factor) {
        (Some((o, _)), Some(rf)) => o.replication_factor != rf,
        _ => false,
    };
    let (ready, reason, message) = if let Some((reason, _)) = problems.first() {
        let message = problems
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        (false, *reason, message)
    } else if observed.is_none() {
        (
            false,
            "NotCreated",
            format!("topic {name} does not exist yet"),
        )
    } else if rf_pending {
        (
            false,
            "Reassigning",
            format!("partitions of topic {name} are being reassigned"),
        )
    } else {
        (true, "Synced", format!("topic {name} matches the spec"))
    };
    let ready = condition(
        &previous.conditions,
        "Ready",
        ready,
        reason,
        message.clone(),
        generation,
        &now,
    );
    if !problems.is_empty() && condition_changed(&previous.conditions, &ready) {
        ctx.event(
            topic,
            EventType::Warning,
            reason,
            "Reconcile",
            message.clone(),
        )
        .await;
    }
    let (topic_id, partitions, replication_factor) = match &observed {
        Some((o, meta)) => (
            (!meta.topic_id.is_nil()).then(|| topic_id_string(&meta.topic_id)),
            Some(o.partitions),
            Some(o.replication_factor),
        ),
        None => (None, None, None),
    };
    let status = TopicStatus {
        conditions: vec![ready],
        observed_generation: generation,
        topic_id,
        partitions,
        replication_factor,
        reason: (!problems.is_empty()).then_some(message),
    };
    write_status(&ctx.client, topic, &status).await?;
    Ok(resync(ctx))
}

async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action, Error> {
    let object_name = topic.name_any();
    let name = topic_name(&topic.spec, &object_name).to_string();
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            topic,
            EventType::Normal,
            "TopicRetained",
            "Delete",
            format!("deletionPolicy Retain: topic {name} is kept on the brokers"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let ns = topic.namespace().unwrap_or_default();
    let Some(cluster) = ctx.cluster(&ns, &topic.spec.cluster_ref.name).await? else {
        // Without its Cluster there are no brokers left to delete the topic from.
        return Ok(Action::await_change());
    };
    let client = ctx.kafka(&cluster).await?;
    match client.delete_topics(std::slice::from_ref(&name)).await {
        Ok(()) | Err(runnel_client::Error::UnknownTopic(_)) => {}
        Err(e) => return Err(kafka_err(format!("delete topic {name}"))(e)),
    }
    ctx.event(
        topic,
        EventType::Normal,
        "TopicDeleted",
        "Delete",
        format!("deletionPolicy Delete: topic {name} deleted from the brokers"),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_refusals_become_named_problems_and_the_rest_failures() {
        let unsupported = runnel_client::Error::UnsupportedApi {
            addr: "b:9092".into(),
            api: "AlterPartitionReassignments".into(),
            ours: "0..=1".into(),
        };
        match refusal("reassign".into(), unsupported) {
            Refusal::Problem { reason, message } => {
                assert_eq!(reason, "UnsupportedByBroker");
                assert!(message.contains("AlterPartitionReassignments"), "{message}");
            }
            Refusal::Failed(e) => panic!("not a problem: {e}"),
        }
        let unreachable = runnel_client::Error::Connect {
            addr: "b:9092".into(),
            reason: "connection refused".into(),
        };
        assert!(matches!(
            refusal("create".into(), unreachable),
            Refusal::Failed(Error::Kafka { .. })
        ));
    }
}
