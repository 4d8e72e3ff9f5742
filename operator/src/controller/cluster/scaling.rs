//! The scaling steps of a Cluster reconcile.
//!
//! - Scale-down: [`crate::scale::scale_step`] refuses what would lose replicas or the quorum's
//!   majority; otherwise the brokers that go are drained one by one through their agents
//!   (`Drain`, which moves every replica off a broker through the quorum, never onto another
//!   broker that goes) and the StatefulSet keeps its size until they all report holding nothing.
//! - Scale-up (and any imbalance): once every broker is Ready and registered, a balanced plan
//!   (`runnel_client::balance`) is applied as one throttled reassignment; the throttle is
//!   removed and preferred leaders elected when the moves are done.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use runnel_client::balance;
use runnel_client::reassign::ReassignmentThrottle;
use runnel_client::ElectionType;

use super::brokers::BrokerView;
use crate::agent::Agent;
use crate::controller::{condition_changed, find_condition, Context};
use crate::crd::Cluster;
use crate::kafka::kafka_err;
use crate::scale::{scale_step, ScaleStep};
use crate::status::condition;
use crate::Error;

/// Condition type telling whether replicas are moving because brokers come or go.
pub const SCALING_CONDITION: &str = "Scaling";

/// What the scale-down step decided.
pub(super) struct ScaleOutcome {
    /// Replicas to apply to the StatefulSet on this pass.
    pub(super) stateful_set_replicas: i32,
    /// The `Scaling` condition when a scale-down is refused or under way (None: steady).
    pub(super) condition: Option<Condition>,
}

fn throttle_of(cluster: &Cluster) -> u64 {
    cluster
        .spec
        .rebalance
        .as_ref()
        .and_then(|r| r.throttle_bytes_per_second)
        .unwrap_or(0)
}

/// The scale-down step: from the StatefulSet's current size (`current`, None before it
/// exists) toward `spec.replicas`.
pub(super) async fn scale_down(
    ctx: &Context,
    cluster: &Cluster,
    current: Option<i32>,
    view: Option<&BrokerView>,
    previous: &[Condition],
    now: &Time,
) -> Result<ScaleOutcome, Error> {
    let desired = cluster.spec.replicas;
    let generation = cluster.metadata.generation;
    let Some(current) = current.filter(|c| *c > desired) else {
        return Ok(ScaleOutcome {
            stateful_set_replicas: desired,
            condition: None,
        });
    };
    let keep = |condition: Condition| ScaleOutcome {
        stateful_set_replicas: current,
        condition: Some(condition),
    };
    let Some(view) = view else {
        return Ok(keep(condition(
            previous,
            SCALING_CONDITION,
            true,
            "Draining",
            format!(
                "scaling down from {current} to {desired} brokers: waiting for the brokers to answer"
            ),
            generation,
            now,
        )));
    };
    let removed = match scale_step(current, desired, &view.topic_replicas(), &view.voters()) {
        ScaleStep::Steady => {
            return Ok(ScaleOutcome {
                stateful_set_replicas: desired,
                condition: None,
            })
        }
        ScaleStep::Refused(message) => {
            let cond = condition(
                previous,
                SCALING_CONDITION,
                false,
                "ScaleDownBlocked",
                message,
                generation,
                now,
            );
            if condition_changed(previous, &cond) {
                ctx.event(
                    cluster,
                    EventType::Warning,
                    "ScaleDownBlocked",
                    "Scale",
                    cond.message.clone(),
                )
                .await;
            }
            return Ok(keep(cond));
        }
        ScaleStep::Shrink { removed } => removed,
    };
    // One broker at a time, highest first: two drains planned independently would both move
    // a partition that has replicas on both brokers, and the second plan would overwrite the
    // first's reassignment. A drained broker answers done at once, so each pass re-checks the
    // earlier ones cheaply.
    let mut progress = Vec::new();
    let mut all_done = true;
    for ordinal in &removed {
        if !all_done {
            progress.push(format!("broker {ordinal}: waiting its turn"));
            continue;
        }
        let report = async {
            let mut agent = Agent::connect(&ctx.resolver.agent(cluster, *ordinal)?).await?;
            agent.drain(throttle_of(cluster), removed.clone()).await
        }
        .await;
        match report {
            Ok(p) if p.done => progress.push(format!("broker {ordinal} drained")),
            Ok(p) => {
                all_done = false;
                let detail = if p.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.detail)
                };
                progress.push(format!(
                    "broker {ordinal}: {} partitions left, {} moving{detail}",
                    p.remaining_replicas, p.moving_partitions
                ));
            }
            Err(e) => {
                all_done = false;
                progress.push(format!("broker {ordinal}: {e}"));
            }
        }
    }
    let message = format!(
        "scaling down from {current} to {desired} brokers: {}",
        progress.join("; ")
    );
    let cond = condition(
        previous,
        SCALING_CONDITION,
        true,
        "Draining",
        message,
        generation,
        now,
    );
    if condition_changed(previous, &cond) {
        ctx.event(
            cluster,
            EventType::Normal,
            "Draining",
            "Scale",
            cond.message.clone(),
        )
        .await;
    }
    if all_done {
        tracing::info!(?removed, "brokers drained; shrinking the StatefulSet");
        ctx.event(
            cluster,
            EventType::Normal,
            "ScaledDown",
            "Scale",
            format!("brokers {removed:?} hold no replica; shrinking to {desired} brokers"),
        )
        .await;
        return Ok(ScaleOutcome {
            stateful_set_replicas: desired,
            condition: Some(cond),
        });
    }
    Ok(keep(cond))
}

/// The rebalance step, run when nothing else is changing (every broker Ready, no roll, no
/// drain): moves replicas until every broker holds within one of the mean.
pub(super) async fn rebalance(
    ctx: &Context,
    cluster: &Cluster,
    view: &BrokerView,
    previous: &[Condition],
    now: &Time,
) -> Result<Condition, Error> {
    let generation = cluster.metadata.generation;
    let desired = cluster.spec.replicas;
    let moving = |message: String| {
        condition(
            previous,
            SCALING_CONDITION,
            true,
            "Rebalancing",
            message,
            generation,
            now,
        )
    };
    let registered: Vec<i32> = view
        .metadata
        .brokers
        .iter()
        .map(|b| b.node_id)
        .filter(|id| *id < desired)
        .collect();
    if registered.len() < usize::try_from(desired).unwrap_or(0) {
        return Ok(moving(format!(
            "waiting for all {desired} brokers to register (brokers {registered:?} have)"
        )));
    }
    if !view.reassignments.is_empty() {
        return Ok(moving(format!(
            "{} partitions moving",
            view.reassignments.len()
        )));
    }
    let racks: BTreeMap<i32, String> = view
        .metadata
        .brokers
        .iter()
        .filter_map(|b| b.rack.clone().map(|r| (b.node_id, r)))
        .collect();
    let moves = balance::balance(&view.metadata.topics, &registered, &racks);
    let was_moving = find_condition(previous, SCALING_CONDITION)
        .is_some_and(|c| c.status == "True" && c.reason == "Rebalancing");
    if moves.is_empty() {
        if was_moving {
            finish_rebalance(cluster, view).await?;
            ctx.event(
                cluster,
                EventType::Normal,
                "Rebalanced",
                "Rebalance",
                format!("replicas balanced across {desired} brokers"),
            )
            .await;
        }
        return Ok(condition(
            previous,
            SCALING_CONDITION,
            false,
            "Balanced",
            format!(
                "every one of the {desired} brokers holds within one of the mean replica count"
            ),
            generation,
            now,
        ));
    }
    let throttle = throttle_of(cluster);
    if throttle > 0 {
        view.client
            .set_reassignment_throttle(&ReassignmentThrottle::plan(&moves), throttle)
            .await
            .map_err(kafka_err("set the rebalance throttle"))?;
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, Vec<i32>)>> = BTreeMap::new();
    for m in &moves {
        by_topic
            .entry(m.topic.as_str())
            .or_default()
            .push((m.partition, m.target.clone()));
    }
    for (topic, assignments) in by_topic {
        view.client
            .reassign_partitions(topic, &assignments)
            .await
            .map_err(kafka_err(format!("reassign partitions of {topic}")))?;
    }
    let message = format!(
        "moving {} partitions to balance {desired} brokers{}",
        moves.len(),
        if throttle > 0 {
            format!(" (throttled at {throttle} bytes/s)")
        } else {
            String::new()
        }
    );
    tracing::info!(moves = moves.len(), "rebalancing");
    ctx.event(
        cluster,
        EventType::Normal,
        "Rebalancing",
        "Rebalance",
        message.clone(),
    )
    .await;
    Ok(moving(message))
}

/// After the moves: removes the throttle (when one was asked for) and gives every partition
/// back to its preferred leader, so leadership is spread as the plan placed it.
async fn finish_rebalance(cluster: &Cluster, view: &BrokerView) -> Result<(), Error> {
    if throttle_of(cluster) > 0 {
        let topics: Vec<String> = view
            .metadata
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let brokers: Vec<i32> = view.metadata.brokers.iter().map(|b| b.node_id).collect();
        view.client
            .remove_reassignment_throttle(&topics, &brokers)
            .await
            .map_err(kafka_err("remove the rebalance throttle"))?;
    }
    // Partitions already led by their preferred replica answer an error the election ignores.
    let _ = view
        .client
        .elect_leaders(ElectionType::Preferred, None)
        .await
        .map_err(kafka_err("elect preferred leaders"))?;
    Ok(())
}
