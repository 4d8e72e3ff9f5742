//! JoinGroup: new, pending and known members joining, the initial delay, and
//! static members (`group.instance.id`) rejoining under a new member id.

use super::Group;
use crate::group::error::GroupError;
use crate::group::member::{candidate_protocols, select_protocol, Member};
use crate::group::messages::{Action, GroupState, JoinReply, JoinRequest, Protocol};

impl Group {
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            let candidates = candidate_protocols(&self.members);
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|p| candidates.contains(p.name.as_str()))
        }
    }

    /// Handles JoinGroup.
    pub(crate) fn join(&mut self, req: JoinRequest, now: i64) -> (JoinReply, Vec<Action>) {
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        if self.state == GroupState::Dead {
            return fail(GroupError::CoordinatorNotAvailable);
        }
        if let Err(err) = self.release_consumer_protocol() {
            return fail(err);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.group_instance_id.clone() {
                if let Some(old) = self.static_members.get(&instance).cloned() {
                    return self.replace_static_member(&old, req, now);
                }
                let id = req.new_member_id.clone();
                return self.add_member_and_rebalance(id, req, now);
            }
            if req.require_known_member_id {
                let id = req.new_member_id.clone();
                self.pending_members
                    .insert(id.clone(), now + i64::from(req.session_timeout_ms));
                return (JoinReply::MemberIdRequired { member_id: id }, Vec::new());
            }
            let id = req.new_member_id.clone();
            return self.add_member_and_rebalance(id, req, now);
        }
        if self.pending_members.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, now);
        }
        if let Some(instance) = &req.group_instance_id {
            match self.static_members.get(instance) {
                None => return fail(GroupError::UnknownMemberId),
                Some(registered) if *registered != req.member_id => {
                    return fail(GroupError::FencedInstanceId)
                }
                Some(_) => {}
            }
        }
        if !self.members.contains_key(&req.member_id) {
            return fail(GroupError::UnknownMemberId);
        }
        self.current_member_join(req, now)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: i64,
    ) -> (JoinReply, Vec<Action>) {
        let member = Member::from_join(member_id.clone(), &req, now);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        let mut actions = Vec::new();
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(until) = self.initial_delay_until_ms {
                    // Each new member during the initial delay waits one more
                    // delay, bounded by the rebalance timeout (Kafka's InitialDelayedJoin).
                    let cap = self.initial_delay_started_ms + self.max_rebalance_timeout();
                    self.initial_delay_until_ms =
                        Some(until.max((now + self.config.initial_rebalance_delay_ms).min(cap)));
                }
                self.extend_rebalance_deadline(now);
                actions.extend(self.try_complete_join(now));
            }
            _ => actions.extend(self.prepare_rebalance(now)),
        }
        (JoinReply::Parked { member_id }, actions)
    }

    fn current_member_join(&mut self, req: JoinRequest, now: i64) -> (JoinReply, Vec<Action>) {
        let member_id = req.member_id.clone();
        let (is_leader, same) = match self.members.get(&member_id) {
            Some(m) => (
                self.leader.as_deref() == Some(member_id.as_str()),
                m.same_protocols(&req.protocols),
            ),
            None => return fail(GroupError::UnknownMemberId),
        };
        match self.state {
            GroupState::PreparingRebalance => {
                let mut actions = Vec::new();
                // A retried JoinGroup supersedes a parked one; the runtime
                // answers the older request when it parks the new one.
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.update_from_join(&req, now);
                    m.awaiting_join = true;
                }
                actions.extend(self.try_complete_join(now));
                (JoinReply::Parked { member_id }, actions)
            }
            GroupState::CompletingRebalance if same => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                }
                (
                    JoinReply::Now(Ok(self.join_outcome(&member_id, false))),
                    Vec::new(),
                )
            }
            GroupState::Stable if same && !is_leader => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                }
                (
                    JoinReply::Now(Ok(self.join_outcome(&member_id, false))),
                    Vec::new(),
                )
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.update_from_join(&req, now);
                    m.awaiting_join = true;
                }
                let actions = self.prepare_rebalance(now);
                (JoinReply::Parked { member_id }, actions)
            }
            GroupState::Empty | GroupState::Dead => fail(GroupError::UnknownMemberId),
        }
    }

    /// A known static member rejoins without a member id (a restarted
    /// process): its new member id replaces the old one, keeping the
    /// assignment. In Stable state with an unchanged protocol choice no
    /// rebalance happens; the member syncs and gets its partitions back.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        now: i64,
    ) -> (JoinReply, Vec<Action>) {
        let new_id = req.new_member_id.clone();
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        let mut actions = Vec::new();
        if member.awaiting_join {
            actions.push(Action::JoinResponse {
                member_id: old_id.to_string(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        if member.awaiting_sync {
            actions.push(Action::SyncResponse {
                member_id: old_id.to_string(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        member.member_id = new_id.clone();
        member.awaiting_sync = false;
        member.update_from_join(&req, now);
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                let unchanged =
                    select_protocol(&self.members, self.leader.as_ref()) == self.protocol_name;
                if unchanged {
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.awaiting_join = false;
                    }
                    let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                    actions.push(Action::PersistGroup);
                    actions.push(Action::JoinResponse {
                        member_id: new_id.clone(),
                        result: Ok(self.join_outcome(&new_id, is_leader)),
                    });
                    return (JoinReply::Parked { member_id: new_id }, actions);
                }
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = true;
                }
                actions.extend(self.prepare_rebalance(now));
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = true;
                }
                actions.extend(self.prepare_rebalance(now));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = true;
                }
                actions.extend(self.try_complete_join(now));
            }
            GroupState::Empty | GroupState::Dead => {
                // A static member cannot exist in these states; rejoin as new.
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = true;
                }
                actions.extend(self.prepare_rebalance(now));
            }
        }
        (JoinReply::Parked { member_id: new_id }, actions)
    }
}

fn fail(err: GroupError) -> (JoinReply, Vec<Action>) {
    (JoinReply::Now(Err(err)), Vec::new())
}
