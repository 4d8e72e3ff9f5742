//! SyncGroup: the leader hands out the assignment, followers wait for it.

use std::collections::HashMap;

use bytes::Bytes;

use super::Group;
use crate::group::error::GroupError;
use crate::group::messages::{Action, GroupState, SyncOutcome, SyncReply, SyncRequest};

impl Group {
    /// Handles SyncGroup.
    pub(crate) fn sync(&mut self, req: SyncRequest, now: i64) -> (SyncReply, Vec<Action>) {
        let now_err = |e| (SyncReply::Now(Err(e)), Vec::new());
        if self.state == GroupState::Dead {
            return now_err(GroupError::CoordinatorNotAvailable);
        }
        if self.is_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return now_err(GroupError::FencedInstanceId);
        }
        if !self.members.contains_key(&req.member_id) {
            return now_err(GroupError::UnknownMemberId);
        }
        if req.generation_id != self.generation_id {
            return now_err(GroupError::IllegalGeneration);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if type_mismatch || name_mismatch {
            return now_err(GroupError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => now_err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => now_err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(m) = self.members.get_mut(&req.member_id) else {
                    return now_err(GroupError::UnknownMemberId);
                };
                m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                let assignment = m.assignment.clone();
                (
                    SyncReply::Now(Ok(self.sync_outcome(assignment))),
                    Vec::new(),
                )
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.awaiting_sync = true;
                    m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                }
                let mut actions = Vec::new();
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assigned: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assigned.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now);
                    self.sync_deadline_ms = None;
                    actions.push(Action::PersistGroup);
                    let ids: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| m.member_id.clone())
                        .collect();
                    for id in ids {
                        let assignment = match self.members.get_mut(&id) {
                            Some(m) => {
                                m.awaiting_sync = false;
                                m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                                m.assignment.clone()
                            }
                            None => continue,
                        };
                        actions.push(Action::SyncResponse {
                            member_id: id,
                            result: Ok(self.sync_outcome(assignment)),
                        });
                    }
                }
                (SyncReply::Parked, actions)
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }
}
