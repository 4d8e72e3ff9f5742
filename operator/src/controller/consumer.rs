//! The Consumer reconciler: reads a consumer group's state, members and committed offsets and
//! the partitions' end offsets, writes lag into the status (LagHigh), and applies a requested
//! offset reset once per nonce while the group has no members (ResetPending while it has).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use runnel_client::{Client, Committer, OffsetCommit, OffsetSpec, ResponseError};

use super::{condition_changed, now, resync, write_status, Context};
use crate::crd::{Consumer, ConsumerSpec, ConsumerStatus, OffsetReset, ResetStrategy};
use crate::kafka::kafka_err;
use crate::lag::{reset_decision, summarize_lag, PartitionOffsets, ResetDecision};
use crate::status::condition;
use crate::Error;

/// Reconciles one Consumer (the `Controller` entry point, also called directly by tests).
#[tracing::instrument(skip_all, fields(consumer = %consumer.name_any(), ns = consumer.namespace()))]
pub async fn reconcile(consumer: Arc<Consumer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("Consumer");
    let result = apply(&consumer, &ctx).await;
    ctx.finished(consumer.as_ref(), result.is_ok());
    result
}

/// Committed offsets of `group` (partitions with a commit only) with their log end offsets,
/// for the topics `spec` selects. Topics deleted since the commit are skipped.
async fn observe_offsets(
    client: &Client,
    spec: &ConsumerSpec,
) -> Result<Vec<PartitionOffsets>, Error> {
    let group = &spec.group_id;
    let committed = client
        .offset_fetch(group, None)
        .await
        .map_err(kafka_err(format!("fetch offsets of group {group}")))?;
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for c in committed.into_iter().filter(|c| c.offset >= 0) {
        if spec.topics.is_empty() || spec.topics.contains(&c.topic) {
            by_topic
                .entry(c.topic)
                .or_default()
                .push((c.partition, c.offset));
        }
    }
    let mut out = Vec::new();
    for (topic, parts) in by_topic {
        let ids: Vec<i32> = parts.iter().map(|(p, _)| *p).collect();
        let ends = match client.list_offsets(&topic, &ids, OffsetSpec::Latest).await {
            Ok(ends) => ends,
            Err(runnel_client::Error::UnknownTopic(_))
            | Err(runnel_client::Error::UnknownPartition { .. }) => continue,
            Err(e) => return Err(kafka_err(format!("list end offsets of {topic}"))(e)),
        };
        for (partition, committed) in parts {
            if let Some(end) = ends.iter().find(|e| e.partition == partition) {
                out.push(PartitionOffsets {
                    topic: topic.clone(),
                    partition,
                    committed_offset: committed,
                    log_end_offset: end.offset,
                });
            }
        }
    }
    Ok(out)
}

/// The offsets a reset commits, or why it cannot run.
async fn reset_targets(
    client: &Client,
    reset: &OffsetReset,
    topics: Vec<String>,
) -> Result<Vec<OffsetCommit>, Result<String, Error>> {
    let commit = |topic: &str, partition: i32, offset: i64| OffsetCommit {
        topic: topic.to_string(),
        partition,
        offset,
        metadata: None,
    };
    let spec = match reset.strategy {
        ResetStrategy::Offsets => {
            return Ok(reset
                .offsets
                .iter()
                .map(|o| commit(&o.topic, o.partition, o.offset))
                .collect())
        }
        ResetStrategy::Earliest => OffsetSpec::Earliest,
        ResetStrategy::Latest => OffsetSpec::Latest,
        ResetStrategy::Timestamp => {
            let raw = reset.timestamp.as_deref().unwrap_or_default();
            match raw.parse::<k8s_openapi::jiff::Timestamp>() {
                Ok(ts) => OffsetSpec::Timestamp(ts.as_millisecond()),
                Err(e) => return Err(Ok(format!("timestamp {raw:?} is not RFC 3339: {e}"))),
            }
        }
    };
    if topics.is_empty() {
        return Err(Ok(
            "the group has no committed offsets and spec.topics is empty: nothing to reset".into(),
        ));
    }
    let mut out = Vec::new();
    for topic in topics {
        let meta = match client.describe_topic(&topic).await {
            Ok(m) => m,
            Err(runnel_client::Error::UnknownTopic(_)) => {
                return Err(Ok(format!("topic {topic} does not exist")))
            }
            Err(e) => return Err(Err(kafka_err(format!("describe topic {topic}"))(e))),
        };
        let parts: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
        let found = client
            .list_offsets(&topic, &parts, spec)
            .await
            .map_err(|e| Err(kafka_err(format!("list offsets of {topic}"))(e)))?;
        let latest = if matches!(spec, OffsetSpec::Timestamp(_)) {
            client
                .list_offsets(&topic, &parts, OffsetSpec::Latest)
                .await
                .map_err(|e| Err(kafka_err(format!("list end offsets of {topic}"))(e)))?
        } else {
            Vec::new()
        };
        for f in found {
            // No record at or after the timestamp: start at the end, as Kafka's tools do.
            let offset = if f.offset < 0 {
                latest
                    .iter()
                    .find(|l| l.partition == f.partition)
                    .map_or(0, |l| l.offset)
            } else {
                f.offset
            };
            out.push(commit(&topic, f.partition, offset));
        }
    }
    Ok(out)
}

/// Commits the offsets a reset asks for while the group is empty. Ok(Ok(n)): n offsets
/// committed; Ok(Err((reason, message))): the reset cannot run now (ResetPending says why).
async fn reset_offsets(
    client: &Client,
    group: &str,
    reset: &OffsetReset,
    topics: Vec<String>,
) -> Result<Result<usize, (&'static str, String)>, Error> {
    let commits = match reset_targets(client, reset, topics).await {
        Ok(commits) => commits,
        Err(Ok(problem)) => return Ok(Err(("ResetImpossible", problem))),
        Err(Err(e)) => return Err(e),
    };
    match client
        .offset_commit(group, &Committer::admin(), &commits)
        .await
    {
        Ok(()) => Ok(Ok(commits.len())),
        // A member joined between the describe and the commit: the coordinator refuses an
        // admin commit to a non-empty group.
        Err(e)
            if matches!(
                e.kafka_error(),
                Some(
                    ResponseError::UnknownMemberId
                        | ResponseError::IllegalGeneration
                        | ResponseError::RebalanceInProgress
                        | ResponseError::NonEmptyGroup
                )
            ) =>
        {
            Ok(Err((
                "WaitingForEmptyGroup",
                format!("the group became active during the reset: {e}"),
            )))
        }
        Err(e) => Err(kafka_err(format!("commit reset offsets of {group}"))(e)),
    }
}

async fn apply(consumer: &Consumer, ctx: &Context) -> Result<Action, Error> {
    let spec = &consumer.spec;
    let ns = consumer.namespace().unwrap_or_default();
    let previous = consumer.status.clone().unwrap_or_default();
    let generation = consumer.metadata.generation;
    let now = now();
    let cluster_name = &spec.cluster_ref.name;

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
                consumer,
                EventType::Warning,
                "ClusterNotFound",
                "Reconcile",
                message,
            )
            .await;
        }
        let status = ConsumerStatus {
            conditions: vec![ready],
            observed_generation: generation,
            ..previous.clone()
        };
        write_status(&ctx.client, consumer, &status).await?;
        return Ok(resync(ctx));
    };

    let client = match ctx.kafka(&cluster).await {
        Ok(client) => client,
        Err(err) => {
            // Say so in the status (the lag figures are the last observed ones), then fail so
            // the error policy retries with backoff.
            let ready = condition(
                &previous.conditions,
                "Ready",
                false,
                "BrokersUnreachable",
                err.to_string(),
                generation,
                &now,
            );
            let mut conditions: Vec<_> = previous
                .conditions
                .iter()
                .filter(|c| c.type_ != "Ready")
                .cloned()
                .collect();
            conditions.insert(0, ready);
            let status = ConsumerStatus {
                conditions,
                ..previous.clone()
            };
            write_status(&ctx.client, consumer, &status).await?;
            return Err(err);
        }
    };
    let group = &spec.group_id;
    let (state, members) = match client.describe_group(group).await {
        Ok(g) => (g.state, i32::try_from(g.members.len()).unwrap_or(i32::MAX)),
        Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => ("Dead".into(), 0),
        Err(e) => return Err(kafka_err(format!("describe group {group}"))(e)),
    };
    let mut offsets = observe_offsets(&client, spec).await?;

    let mut last_applied = previous.last_applied_nonce.clone();
    let mut pending: Option<(&str, String)> = None;
    match (
        reset_decision(spec, last_applied.as_deref(), members),
        &spec.offset_reset,
    ) {
        (ResetDecision::Apply, Some(reset)) => {
            let mut topics: Vec<String> = if spec.topics.is_empty() {
                offsets.iter().map(|o| o.topic.clone()).collect()
            } else {
                spec.topics.clone()
            };
            topics.sort();
            topics.dedup();
            match reset_offsets(&client, group, reset, topics).await? {
                Ok(count) => {
                    last_applied = Some(reset.nonce.clone());
                    let note = format!(
                        "reset {count} partition offsets of group {group} ({:?}, nonce {})",
                        reset.strategy, reset.nonce
                    );
                    ctx.event(
                        consumer,
                        EventType::Normal,
                        "OffsetsReset",
                        "ResetOffsets",
                        note,
                    )
                    .await;
                    offsets = observe_offsets(&client, spec).await?;
                }
                Err(waiting) => pending = Some(waiting),
            }
        }
        (ResetDecision::WaitForEmptyGroup { members }, _) => {
            pending = Some((
                "WaitingForEmptyGroup",
                format!("offset reset waits until the group has no members ({members} now)"),
            ))
        }
        _ => {}
    }

    let lag = summarize_lag(spec, &offsets);
    let threshold = spec.lag_alert.as_ref().map(|a| a.max_lag);
    let lag_high = condition(
        &previous.conditions,
        "LagHigh",
        lag.lag_high,
        if lag.lag_high {
            "LagAboveThreshold"
        } else {
            "LagWithinThreshold"
        },
        match threshold {
            Some(t) => format!("max lag {} (threshold {t})", lag.max_lag),
            None => format!("max lag {} (no lagAlert)", lag.max_lag),
        },
        generation,
        &now,
    );
    if lag.lag_high && condition_changed(&previous.conditions, &lag_high) {
        ctx.event(
            consumer,
            EventType::Warning,
            "LagHigh",
            "Observe",
            lag_high.message.clone(),
        )
        .await;
    }
    let reset_pending = match &pending {
        Some((reason, message)) => condition(
            &previous.conditions,
            "ResetPending",
            true,
            reason,
            message.clone(),
            generation,
            &now,
        ),
        None => condition(
            &previous.conditions,
            "ResetPending",
            false,
            "NoResetPending",
            "no offset reset is waiting".into(),
            generation,
            &now,
        ),
    };
    if pending.is_some() && condition_changed(&previous.conditions, &reset_pending) {
        ctx.event(
            consumer,
            EventType::Normal,
            "ResetPending",
            "ResetOffsets",
            reset_pending.message.clone(),
        )
        .await;
    }
    let ready = condition(
        &previous.conditions,
        "Ready",
        true,
        "Observed",
        format!("group {group} is {state} with {members} members"),
        generation,
        &now,
    );
    let status = ConsumerStatus {
        state: Some(state),
        members,
        total_lag: lag.total_lag,
        max_lag: lag.max_lag,
        lag: lag.partitions,
        last_applied_nonce: last_applied,
        conditions: vec![ready, lag_high, reset_pending],
        observed_generation: generation,
    };
    write_status(&ctx.client, consumer, &status).await?;
    Ok(resync(ctx))
}
