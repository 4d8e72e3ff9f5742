//! Controlled shutdown, the first step of a clean stop (Kafka's, KIP-500
//! style): before the Kafka listener stops, the broker asks the metadata
//! quorum to move the leadership of its partitions to other in-sync replicas
//! and to take it out of the ISRs ([`runnel_meta::Command::ControlledShutdown`]),
//! then waits, at most `controlled_shutdown_timeout_ms`, until it leads no
//! partition that another in-sync replica could lead. Meanwhile it keeps
//! serving: followers keep fetching (so acks=all produces waiting here
//! complete) and produces it no longer leads are answered
//! NOT_LEADER_OR_FOLLOWER, so clients move to the new leaders before this
//! broker closes their connections.

use std::sync::Arc;
use std::time::Duration;

use runnel_meta::{BrokerId, ClusterState};
use tokio::time::Instant;

use crate::broker::Broker;

/// Partitions `me` leads that another in-sync replica could take over: what
/// a controlled shutdown waits to see moved. A partition `me` leads as its
/// only in-sync replica stays (moving it would lose acknowledged records).
pub(super) fn movable_leaderships(state: &ClusterState, me: BrokerId) -> Vec<(String, i32)> {
    state
        .topics
        .iter()
        .flat_map(|(name, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.leader == me && p.isr.iter().any(|&r| r != me))
                .map(move |(index, _)| (name.clone(), i32::try_from(index).unwrap_or(i32::MAX)))
        })
        .collect()
}

/// Runs the controlled shutdown of `broker` (see the module docs). Never
/// fails: when the quorum cannot be reached or the moves do not land in
/// time, the broker stops anyway (its session then expires as after a crash).
pub(super) async fn run(broker: &Arc<Broker>) {
    let started = Instant::now();
    let timeout = Duration::from_millis(broker.config.controlled_shutdown_timeout_ms);
    let deadline = started + timeout;
    let me = broker.node_id();
    // Not ready from now on: load balancers and the operator stop sending work here.
    broker.set_ready(false);
    let leading = broker.cluster().partitions_led_by(me).len();
    if movable_leaderships(&broker.cluster(), me).is_empty() {
        // Nothing another replica could take over; the fence on the way out
        // takes this broker out of the ISRs. Asking would only wait for a
        // quorum that may be gone (the last brokers of a cluster stopping).
        tracing::info!(
            leading,
            "controlled shutdown: no leadership to move to another in-sync replica"
        );
        return;
    }
    tracing::info!(
        leading,
        timeout_ms = broker.config.controlled_shutdown_timeout_ms,
        "controlled shutdown: asking the controller to move this broker's leaderships"
    );
    if let Err(err) = broker.meta.controlled_shutdown(deadline).await {
        tracing::warn!(error = %err,
            "controlled shutdown: the controller could not be asked; stopping without moving leaderships");
        return;
    }
    let mut state = broker.meta.state();
    // `wait_for` yields a read guard on the metadata; it must be gone before the next
    // `broker.cluster()` below: with the state machine waiting to publish, a second read
    // lock on this thread would wait behind that writer, which waits for the first (a
    // broker hung on SIGTERM that way).
    let moved = tokio::time::timeout_at(
        deadline,
        state.wait_for(|s| movable_leaderships(s, me).is_empty()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    // Roles follow the new metadata now, so produces waiting here for
    // acks=all are answered NOT_LEADER_OR_FOLLOWER at once.
    broker.replicas.reconcile_now();
    let remaining = broker.cluster().partitions_led_by(me);
    let elapsed_ms = started.elapsed().as_millis();
    if moved {
        tracing::info!(
            moved = leading.saturating_sub(remaining.len()),
            still_leading_alone = remaining.len(),
            elapsed_ms,
            "controlled shutdown: leadership moved to other in-sync replicas"
        );
    } else {
        tracing::warn!(
            still_leading = ?movable_leaderships(&broker.cluster(), me),
            elapsed_ms,
            "controlled shutdown: timed out (controlled_shutdown_timeout_ms) before every leadership moved"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_meta::{PartitionMeta, TopicMeta};

    fn part(leader: BrokerId, isr: &[BrokerId]) -> PartitionMeta {
        PartitionMeta {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    #[test]
    fn a_broker_waits_only_for_leaderships_another_in_sync_replica_can_take() {
        let mut state = ClusterState::default();
        state.topics.insert(
            "t".into(),
            std::sync::Arc::new(TopicMeta {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                partitions: vec![
                    part(1, &[1, 2]),
                    part(1, &[1]),
                    part(2, &[1, 2]),
                    part(1, &[1, 3]),
                ],
                configs: Default::default(),
            }),
        );
        assert_eq!(
            movable_leaderships(&state, 1),
            vec![("t".to_string(), 0), ("t".to_string(), 3)]
        );
        assert!(movable_leaderships(&state, 3).is_empty());
    }
}
