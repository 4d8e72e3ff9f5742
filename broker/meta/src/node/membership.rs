//! Joining the metadata quorum and broker liveness. A new node asks a seed
//! to add it ([`Inner::join_loop`]); the leader adds it as a learner and
//! promotes it to voter while there are fewer than `config.voters`
//! ([`Inner::join`], a follower passes the request on). A registered broker
//! heartbeats the controller every `heartbeat_interval` and registers again
//! after being fenced ([`Inner::heartbeat_loop`]); the controller records
//! each heartbeat as the broker's session ([`Inner::heartbeat`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    call_error, write_error, Inner, Session, CATCH_UP_TIMEOUT, JOIN_TIMEOUT, MAX_BACKOFF,
    PROPOSE_TIMEOUT, RETRY_PAUSE,
};
use crate::error::MetaError;
use crate::raft::rpc::{self, Request, Response};
use crate::raft::NodeId;
use crate::types::{BrokerId, Command};

impl Inner {
    /// Adds `node_id` to the quorum: a learner, promoted to voter by
    /// [`voters_after_join`]. A follower passes the request on to the leader.
    pub(super) async fn join(
        &self,
        node_id: NodeId,
        addr: String,
        hops: u8,
    ) -> Result<(), MetaError> {
        let m = self.metrics();
        match m.current_leader {
            Some(leader) if leader == self.id => {}
            Some(leader) if hops > 0 => {
                let leader_addr = Self::node_addr(&m, leader).ok_or_else(|| {
                    MetaError::NoController(format!("address of controller {leader} unknown"))
                })?;
                let request = Request::Join {
                    node_id,
                    addr,
                    hops: hops - 1,
                };
                return match self.pool.call(&leader_addr, request, JOIN_TIMEOUT).await {
                    Ok(Response::Join(result)) => result,
                    Ok(other) => Err(MetaError::Internal(format!(
                        "unexpected reply to join: {other:?}"
                    ))),
                    Err(e) => Err(call_error(e)),
                };
            }
            _ => {
                return Err(MetaError::NoController(
                    "no controller to join through".into(),
                ))
            }
        }

        let _serialized = self.membership_lock.lock().await;
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let node = BasicNode::new(&addr);
        match membership.get_node(&node_id) {
            Some(known) if known.addr == addr => {}
            Some(_) => {
                let change = ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)]));
                self.raft
                    .change_membership(change, true)
                    .await
                    .map_err(write_error)?;
            }
            None => {
                tracing::info!(node = node_id, %addr, "adding metadata node as learner");
                let added = tokio::time::timeout(
                    CATCH_UP_TIMEOUT,
                    self.raft.add_learner(node_id, node, true),
                )
                .await;
                match added {
                    Ok(result) => {
                        result.map_err(write_error)?;
                    }
                    Err(_) => {
                        return Err(MetaError::Timeout(format!(
                            "learner {node_id} did not catch up"
                        )))
                    }
                }
            }
        }
        let voters: BTreeSet<NodeId> = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if let Some(wanted) = voters_after_join(&voters, node_id, self.config.voters) {
            tracing::info!(
                node = node_id,
                ?voters,
                ?wanted,
                "changing metadata quorum voters"
            );
            // A voter replaced by a lower id stays as a learner (retain), so it keeps the log.
            let change = ChangeMembers::ReplaceAllVoters(wanted);
            self.raft
                .change_membership(change, true)
                .await
                .map_err(write_error)?;
        }
        Ok(())
    }

    /// Records a broker heartbeat (leader only).
    pub(super) fn heartbeat(
        &self,
        broker_id: BrokerId,
        incarnation: Uuid,
    ) -> Result<(), MetaError> {
        let m = self.metrics();
        if m.current_leader != Some(self.id) {
            return Err(MetaError::NoController("not the controller".into()));
        }
        self.sessions.lock().insert(
            broker_id,
            Session {
                incarnation,
                last_seen: Instant::now(),
            },
        );
        Ok(())
    }

    /// Asks the seeds to add this node until one accepts.
    pub(super) async fn join_loop(self: Arc<Self>) {
        let mut backoff = RETRY_PAUSE;
        loop {
            for seed in &self.config.seeds {
                if self.is_shutdown() {
                    return;
                }
                let request = Request::Join {
                    node_id: self.id,
                    addr: self.advertised.clone(),
                    hops: 2,
                };
                match self.pool.call(seed, request, JOIN_TIMEOUT).await {
                    Ok(Response::Join(Ok(()))) => {
                        tracing::info!(node = self.id, %seed, "joined the metadata quorum");
                        return;
                    }
                    Ok(other) => tracing::debug!(%seed, reply = ?other, "join refused; retrying"),
                    Err(e) => tracing::debug!(%seed, error = %e, "join failed; retrying"),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends this broker's heartbeats and registers it again after a fence.
    pub(super) async fn heartbeat_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = rpc::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
            }
            let Some(broker) = self.registration.lock().clone() else {
                continue;
            };
            let fenced = self
                .state
                .borrow()
                .brokers
                .get(&broker.id)
                .is_none_or(|b| b.fenced && b.incarnation == broker.incarnation);
            if fenced {
                tracing::info!(
                    broker = broker.id,
                    "this broker is fenced; registering again"
                );
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                if let Err(e) = self
                    .propose(Command::RegisterBroker(broker.clone()), deadline)
                    .await
                {
                    tracing::debug!(broker = broker.id, error = %e, "re-registration failed; will retry");
                }
            }
            let m = self.metrics();
            match m.current_leader {
                Some(leader) if leader == self.id => {
                    let _ = self.heartbeat(broker.id, broker.incarnation);
                }
                Some(leader) => {
                    let Some(addr) = Self::node_addr(&m, leader) else {
                        continue;
                    };
                    let request = Request::Heartbeat {
                        broker_id: broker.id,
                        incarnation: broker.incarnation,
                    };
                    let timeout = self
                        .config
                        .heartbeat_interval
                        .max(Duration::from_millis(100));
                    if let Err(e) = self.pool.call(&addr, request, timeout).await {
                        tracing::debug!(broker = broker.id, error = %e, "heartbeat failed");
                    }
                }
                None => {}
            }
        }
    }
}

/// The voters once `joining` (caught up as a learner) has joined, or None when
/// they stay as they are: the `want` lowest node ids among the voters and
/// `joining`. Brokers that start in parallel join in any order; preferring the
/// lowest ids makes the voters the same set every time (on Kubernetes, pods
/// 0..want), so removing the highest-numbered brokers never removes a voter.
pub(crate) fn voters_after_join(
    voters: &BTreeSet<NodeId>,
    joining: NodeId,
    want: usize,
) -> Option<BTreeSet<NodeId>> {
    if voters.contains(&joining) {
        return None;
    }
    let wanted: BTreeSet<NodeId> = voters
        .iter()
        .copied()
        .chain(std::iter::once(joining))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(want.max(1))
        .collect();
    (wanted != *voters).then_some(wanted)
}

#[cfg(test)]
mod voter_tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn joiners_are_promoted_while_voters_are_missing() {
        assert_eq!(voters_after_join(&set(&[0]), 4, 3), Some(set(&[0, 4])));
        assert_eq!(
            voters_after_join(&set(&[0, 4]), 1, 3),
            Some(set(&[0, 1, 4]))
        );
    }

    #[test]
    fn a_lower_id_replaces_the_highest_voter_and_a_higher_one_stays_a_learner() {
        // Pods started in parallel: 3 joined before 2.
        assert_eq!(
            voters_after_join(&set(&[0, 1, 3]), 2, 3),
            Some(set(&[0, 1, 2]))
        );
        assert_eq!(voters_after_join(&set(&[0, 1, 2]), 4, 3), None);
        assert_eq!(voters_after_join(&set(&[0, 1, 2]), 1, 3), None);
    }
}
