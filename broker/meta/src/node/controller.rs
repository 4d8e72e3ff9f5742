//! The controller's timers, run on every node but acting only while it is
//! the Raft leader: setting the cluster id of a new cluster, fencing brokers
//! whose session expired, and the periodic preferred-leader rebalance.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Inner, Session, PROPOSE_TIMEOUT};
use crate::raft::rpc::{self, Forwarded};
use crate::rebalance;
use crate::types::{Applied, BrokerId, ClusterState, Command, Election};

impl Inner {
    /// The controller's duties while this node leads: set the cluster id of a
    /// new cluster, fence brokers whose session expired and, every
    /// `leader_imbalance_check_interval`, move leadership back to preferred replicas.
    pub(super) async fn controller_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let period = (self.config.session_timeout / 4)
            .min(self.config.heartbeat_interval)
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        // Like Kafka, the first imbalance check comes one interval after
        // becoming controller (brokers have had time to come back by then).
        let mut last_rebalance = Instant::now();
        let mut metrics = self.raft.metrics();
        let mut applied = self.state.clone();
        loop {
            // Leadership and applied-state changes wake it at once (a new
            // cluster gets its id without waiting a tick); the tick drives expiry.
            tokio::select! {
                _ = rpc::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
                changed = metrics.changed() => if changed.is_err() { return },
                changed = applied.changed() => if changed.is_err() { return },
            }
            let m = self.metrics();
            if m.current_leader != Some(self.id) || m.state != ServerState::Leader {
                leading = false;
                continue;
            }
            if !leading {
                // A new controller gives every broker a full session.
                leading = true;
                self.metrics.controller_elections.inc();
                self.sessions.lock().clear();
                last_rebalance = Instant::now();
            }
            let state = self.state.borrow().clone();
            if state.cluster_id.is_none() {
                let cluster_id = self
                    .config
                    .cluster_id
                    .clone()
                    .unwrap_or_else(crate::cluster_id::generate_cluster_id);
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                match self
                    .write_local(Command::InitCluster { cluster_id }, deadline)
                    .await
                {
                    Ok(_) => tracing::info!("cluster id set"),
                    Err(e) => {
                        tracing::debug!(error = %e, "could not set the cluster id; will retry")
                    }
                }
            }
            for (id, incarnation) in self.expired_sessions(&state) {
                tracing::warn!(broker = id, "broker session expired; fencing it");
                let fence = Command::FenceBroker { id, incarnation };
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                if let Err(e) = self.write_local(fence, deadline).await {
                    tracing::debug!(broker = id, error = %e, "fencing failed; will retry");
                }
            }
            if self.config.auto_leader_rebalance
                && last_rebalance.elapsed() >= self.config.leader_imbalance_check_interval
            {
                last_rebalance = Instant::now();
                self.rebalance_preferred_leaders(&state).await;
            }
        }
    }

    /// Elects the preferred leader of the partitions
    /// [`rebalance::preferred_leader_elections`] picks. The state machine
    /// checks each election again when applying it, so a decision on a
    /// slightly stale state is refused or a no-op, never wrong.
    async fn rebalance_preferred_leaders(&self, state: &ClusterState) {
        let chosen = rebalance::preferred_leader_elections(
            state,
            self.config.leader_imbalance_per_broker_percentage,
        );
        if chosen.is_empty() {
            return;
        }
        let mut moved = Vec::new();
        for (topic, partition) in chosen {
            let command = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                election: Election::Preferred,
            };
            let deadline = Instant::now() + PROPOSE_TIMEOUT;
            match self.write_local(command, deadline).await {
                Ok(Forwarded {
                    result: Ok(Applied::Done),
                    ..
                }) => moved.push(format!("{topic}-{partition}")),
                Ok(Forwarded { result, .. }) => {
                    tracing::debug!(%topic, partition, ?result, "preferred-leader election not applied")
                }
                Err(e) => {
                    // Lost leadership, shutting down or no quorum: the next check (on whichever node leads) retries.
                    tracing::debug!(%topic, partition, error = %e, "preferred-leader election failed; stopping this round");
                    break;
                }
            }
        }
        if !moved.is_empty() {
            tracing::info!(
                count = moved.len(),
                partitions = %moved.join(", "),
                "preferred-leader rebalance: leadership moved back to preferred replicas"
            );
        }
    }

    /// Brokers (id, incarnation) whose session expired. A broker the
    /// controller has not heard from since it became leader, or since the
    /// broker registered anew, starts a session now.
    fn expired_sessions(&self, state: &ClusterState) -> Vec<(BrokerId, Uuid)> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let mut expired = Vec::new();
        for broker in state.brokers.values() {
            if broker.fenced {
                sessions.remove(&broker.id);
                continue;
            }
            match sessions.get(&broker.id) {
                Some(s) if s.incarnation == broker.incarnation => {
                    if now.duration_since(s.last_seen) > self.config.session_timeout {
                        expired.push((broker.id, broker.incarnation));
                    }
                }
                _ => {
                    sessions.insert(
                        broker.id,
                        Session {
                            incarnation: broker.incarnation,
                            last_seen: now,
                        },
                    );
                }
            }
        }
        expired
    }
}
