//! The classic consumer-group state machine, free of I/O: one [`Group`] holds
//! its members, generation, selected protocol, leader and committed offsets.
//! Every method takes the current time (`now`, milliseconds) explicitly and
//! returns what the caller must do — answer a parked JoinGroup or SyncGroup,
//! persist the group — as [`Action`]s, so every transition is unit-tested
//! with a fake clock. The coordinator runtime (`coordinator.rs`) owns the
//! sockets, timers and the log; the requests, replies and actions are in
//! `messages.rs`, a member and the protocol choice in `member.rs`, the
//! committed offsets in `offsets.rs`.
//!
//! The transitions follow Kafka's `GroupCoordinator`: Empty → PreparingRebalance
//! (join barrier) → CompletingRebalance (waiting for the leader's SyncGroup)
//! → Stable, back to PreparingRebalance when a member joins, leaves, changes
//! its protocols or misses its session timeout, and to Empty when the last
//! member is gone. Unlike Kafka's purgatory, the join barrier completes as soon
//! as every known member has rejoined, never later.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;

use super::error::GroupError;
use super::member::{
    candidate_protocols, select_protocol, subscription_topics, Member, CONSUMER_PROTOCOL_TYPE,
};
use super::messages::{
    Action, GroupState, JoinMember, JoinOutcome, JoinReply, SyncOutcome, SyncReply,
};
use super::offsets::OffsetTable;
use super::records::GroupMetadata;

// Also named `group::state::…` by the API handlers.
pub use super::messages::{JoinRequest, LeavingMember, Protocol, SyncRequest};
pub use super::offsets::CommittedOffset;

/// Broker settings that bound group behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group_min_session_timeout_ms`.
    pub min_session_timeout_ms: i32,
    /// `group_max_session_timeout_ms`.
    pub max_session_timeout_ms: i32,
    /// `group_initial_rebalance_delay_ms`.
    pub initial_rebalance_delay_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
        }
    }
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    id: String,
    config: GroupConfig,
    state: GroupState,
    /// When the current state was entered (for Empty: offsets expire from here).
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// In join order: the first member becomes leader when none is left.
    members: IndexMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → deadline to rejoin.
    pending_members: HashMap<String, i64>,
    /// PreparingRebalance: force-complete the join barrier at this time.
    rebalance_deadline_ms: Option<i64>,
    /// PreparingRebalance from Empty: do not complete before this time.
    initial_delay_until_ms: Option<i64>,
    /// When the initial-delay rebalance started (caps the extensions).
    initial_delay_started_ms: i64,
    /// CompletingRebalance: members that have not synced by then are removed.
    sync_deadline_ms: Option<i64>,
    offsets: OffsetTable,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: impl Into<String>, config: GroupConfig, now: i64) -> Group {
        Group {
            id: id.into(),
            config,
            state: GroupState::Empty,
            state_timestamp_ms: now,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: None,
            initial_delay_until_ms: None,
            initial_delay_started_ms: now,
            sync_deadline_ms: None,
            offsets: OffsetTable::default(),
        }
    }

    /// Rebuilds a group from its persisted metadata: members are kept (they
    /// get one session timeout from `now` to heartbeat) and the group is
    /// Stable, or Empty without members.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: impl Into<String>,
        config: GroupConfig,
        now: i64,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader: Option<String>,
        state_timestamp_ms: i64,
        members: Vec<Member>,
    ) -> Group {
        let mut group = Group::new(id, config, now);
        group.generation_id = generation_id;
        group.protocol_type = protocol_type;
        group.protocol_name = protocol_name;
        group.state_timestamp_ms = state_timestamp_ms;
        for mut member in members {
            member.heartbeat_deadline_ms = now + i64::from(member.session_timeout_ms);
            member.awaiting_join = false;
            member.awaiting_sync = false;
            if let Some(instance) = &member.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.members.insert(member.member_id.clone(), member);
        }
        if group.members.is_empty() {
            group.protocol_name = None;
        } else {
            group.state = GroupState::Stable;
            group.leader = leader
                .filter(|l| group.members.contains_key(l))
                .or_else(|| group.members.keys().next().cloned());
        }
        group
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// When the current state was entered.
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    /// Current generation.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Protocol type ("consumer"; `None` for groups that only store offsets).
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The selected protocol of the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Members in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// A member by id.
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// True while member ids handed out with MEMBER_ID_REQUIRED wait to rejoin.
    pub fn has_pending_members(&self) -> bool {
        !self.pending_members.is_empty()
    }

    /// Committed offsets by (topic, partition).
    pub fn offsets(&self) -> &BTreeMap<(String, i32), CommittedOffset> {
        self.offsets.all()
    }

    /// The committed offset of one partition.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(topic, partition)
    }

    /// The persisted form of the group's metadata.
    pub fn to_metadata(&self) -> GroupMetadata {
        GroupMetadata {
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self.members.values().cloned().collect(),
        }
    }

    /// Rebuilds a group from persisted metadata (see [`Group::restore`]).
    pub fn from_metadata(
        id: impl Into<String>,
        config: GroupConfig,
        now: i64,
        metadata: GroupMetadata,
    ) -> Group {
        Group::restore(
            id,
            config,
            now,
            metadata.generation_id,
            metadata.protocol_type,
            metadata.protocol_name,
            metadata.leader,
            metadata.state_timestamp_ms,
            metadata.members,
        )
    }

    /// Empty without offsets: nothing left worth keeping.
    pub fn is_removable(&self) -> bool {
        self.state == GroupState::Empty && self.offsets.is_empty()
    }

    fn set_state(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp_ms = now;
    }

    /// The earliest time at which [`Group::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync)
            .map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_members.values().copied();
        let barrier = match (self.initial_delay_until_ms, self.rebalance_deadline_ms) {
            (Some(delay), _) => Some(delay),
            (None, deadline) => deadline,
        };
        members
            .chain(pending)
            .chain(barrier)
            .chain(self.sync_deadline_ms)
            .min()
    }

    /// A static member registered under another member id?
    fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        match instance.and_then(|i| self.static_members.get(i)) {
            Some(registered) => registered != member_id,
            None => false,
        }
    }

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

    fn join_outcome(&self, member_id: &str, skip_assignment: bool) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    /// Handles JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now: i64) -> (JoinReply, Vec<Action>) {
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout);
        }
        if self.state == GroupState::Dead {
            return fail(GroupError::CoordinatorNotAvailable);
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

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn extend_rebalance_deadline(&mut self, now: i64) {
        let deadline = now + self.max_rebalance_timeout();
        self.rebalance_deadline_ms = Some(
            self.rebalance_deadline_ms
                .map_or(deadline, |d| d.max(deadline)),
        );
    }

    /// Starts a rebalance: members must rejoin within the rebalance timeout.
    fn prepare_rebalance(&mut self, now: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == GroupState::CompletingRebalance {
            // The assignment being synced is void: parked syncs must rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    actions.push(Action::SyncResponse {
                        member_id: m.member_id.clone(),
                        result: Err(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        self.sync_deadline_ms = None;
        let from_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance, now);
        self.rebalance_deadline_ms = None;
        self.extend_rebalance_deadline(now);
        if from_empty && self.config.initial_rebalance_delay_ms > 0 {
            self.initial_delay_started_ms = now;
            self.initial_delay_until_ms = Some(
                (now + self.config.initial_rebalance_delay_ms)
                    .min(now + self.max_rebalance_timeout()),
            );
        } else {
            self.initial_delay_until_ms = None;
        }
        actions.extend(self.try_complete_join(now));
        actions
    }

    /// Completes the join barrier once every known member has rejoined and no
    /// member id handed out with MEMBER_ID_REQUIRED is still outstanding.
    fn try_complete_join(&mut self, now: i64) -> Vec<Action> {
        if self.state != GroupState::PreparingRebalance {
            return Vec::new();
        }
        if self.initial_delay_until_ms.is_some_and(|t| now < t) {
            return Vec::new();
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        if all_joined && self.pending_members.is_empty() {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    fn complete_join(&mut self, now: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        // Members that did not rejoin in time are out.
        let laggards: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for id in laggards {
            self.remove_member(&id, &mut actions);
        }
        self.rebalance_deadline_ms = None;
        self.initial_delay_until_ms = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now);
            actions.push(Action::PersistGroup);
            actions.push(Action::RebalanceCompleted {
                generation_id: self.generation_id,
            });
            return actions;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol_name = select_protocol(&self.members, self.leader.as_ref());
        self.set_state(GroupState::CompletingRebalance, now);
        self.sync_deadline_ms = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_join = false;
                m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
            }
            actions.push(Action::JoinResponse {
                result: Ok(self.join_outcome(&id, false)),
                member_id: id,
            });
        }
        actions.push(Action::RebalanceCompleted {
            generation_id: self.generation_id,
        });
        actions
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, member_id: &str, actions: &mut Vec<Action>) {
        let Some(member) = self.members.shift_remove(member_id) else {
            return;
        };
        if member.awaiting_join {
            actions.push(Action::JoinResponse {
                member_id: member_id.to_string(),
                result: Err(GroupError::UnknownMemberId),
            });
        }
        if member.awaiting_sync {
            actions.push(Action::SyncResponse {
                member_id: member_id.to_string(),
                result: Err(GroupError::UnknownMemberId),
            });
        }
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    fn remove_member_and_rebalance(&mut self, member_id: &str, now: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.remove_member(member_id, &mut actions);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                actions.extend(self.prepare_rebalance(now))
            }
            GroupState::PreparingRebalance => actions.extend(self.try_complete_join(now)),
            GroupState::Empty | GroupState::Dead => {}
        }
        actions
    }

    /// Handles SyncGroup.
    pub fn sync(&mut self, req: SyncRequest, now: i64) -> (SyncReply, Vec<Action>) {
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

    /// Handles Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if self.is_fenced(member_id, group_instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        let state = self.state;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// Handles LeaveGroup: one result per leaving member, in request order.
    pub fn leave(
        &mut self,
        leaving: &[LeavingMember],
        now: i64,
    ) -> (Vec<Result<(), GroupError>>, Vec<Action>) {
        let mut results = Vec::with_capacity(leaving.len());
        let mut actions = Vec::new();
        for l in leaving {
            if self.state == GroupState::Dead {
                results.push(Err(GroupError::CoordinatorNotAvailable));
                continue;
            }
            let id = match &l.group_instance_id {
                Some(instance) => match self.static_members.get(instance) {
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                    Some(registered) if !l.member_id.is_empty() && *registered != l.member_id => {
                        results.push(Err(GroupError::FencedInstanceId));
                        continue;
                    }
                    Some(registered) => registered.clone(),
                },
                None => l.member_id.clone(),
            };
            if self.pending_members.remove(&id).is_some() {
                results.push(Ok(()));
                actions.extend(self.try_complete_join(now));
                continue;
            }
            if !self.members.contains_key(&id) {
                results.push(Err(GroupError::UnknownMemberId));
                continue;
            }
            actions.extend(self.remove_member_and_rebalance(&id, now));
            results.push(Ok(()));
        }
        (results, actions)
    }

    /// Checks an OffsetCommit against the group (and counts as a heartbeat).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if self.is_fenced(member_id, group_instance_id) {
            return Err(GroupError::FencedInstanceId);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            // A standalone consumer using Kafka only to store offsets.
            return Ok(());
        }
        let state = self.state;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        match state {
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable | GroupState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now + i64::from(m.session_timeout_ms);
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// Stores a committed offset (after [`Group::validate_commit`]).
    pub fn commit_offset(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        self.offsets.commit(topic, partition, offset);
    }

    /// Forgets a committed offset (replay of a tombstone); true if it existed.
    pub fn remove_offset(&mut self, topic: &str, partition: i32) -> bool {
        self.offsets.remove(topic, partition)
    }

    /// Topics the members subscribe to, from their consumer-protocol
    /// metadata; `None` when the group does not use the consumer protocol.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let metadata = match &self.protocol_name {
                Some(p) => m.metadata(p),
                None => m.protocols.first().map(|p| &p.metadata),
            };
            if let Some(metadata) = metadata {
                topics.extend(subscription_topics(metadata));
            }
        }
        Some(topics)
    }

    /// OffsetDelete: which of `partitions` may be deleted. The group-level
    /// error is GROUP_ID_NOT_FOUND for a dead group and NON_EMPTY_GROUP for an
    /// active group that does not use the consumer protocol; per partition,
    /// GROUP_SUBSCRIBED_TO_TOPIC when a member subscribes to its topic.
    /// Deletable offsets are removed; the returned flags say which existed.
    pub fn delete_offsets(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<bool, GroupError>>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed = if self.state == GroupState::Empty {
            HashSet::new()
        } else {
            match self.subscribed_topics() {
                Some(topics) => topics,
                None => return Err(GroupError::NonEmptyGroup),
            }
        };
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                if subscribed.contains(topic) {
                    Err(GroupError::GroupSubscribedToTopic)
                } else {
                    Ok(self.remove_offset(topic, *partition))
                }
            })
            .collect())
    }

    /// DeleteGroups: only an empty group may be deleted; it becomes Dead and
    /// its offsets are returned so the caller can write their tombstones.
    pub fn delete(&mut self, now: i64) -> Result<Vec<(String, i32)>, GroupError> {
        match self.state {
            GroupState::Dead => Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {
                let keys = self.offsets.clear();
                self.set_state(GroupState::Dead, now);
                Ok(keys)
            }
            _ => Err(GroupError::NonEmptyGroup),
        }
    }

    /// Removes offsets older than the retention (Kafka 2.1+ rules): a consumer
    /// group's offsets expire `retention_ms` after it became Empty; offsets of a
    /// group without protocol type (standalone commits) `retention_ms` after
    /// their commit. Active groups keep their offsets. Returns the removed keys;
    /// an Empty group left without offsets becomes Dead.
    pub fn expire_offsets(&mut self, now: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let base: Box<dyn Fn(&CommittedOffset) -> i64> = match (self.state, &self.protocol_type) {
            (GroupState::Empty, Some(_)) => {
                let since = self.state_timestamp_ms;
                Box::new(move |o: &CommittedOffset| since.max(o.commit_timestamp_ms))
            }
            (GroupState::Empty, None) => Box::new(|o: &CommittedOffset| o.commit_timestamp_ms),
            _ => return Vec::new(),
        };
        let expired = self.offsets.expire(now, retention_ms, base);
        if self.is_removable() {
            self.set_state(GroupState::Dead, now);
        }
        expired
    }

    /// Runs timeouts due at `now`: pending member ids and sessions expire,
    /// the join barrier is forced at the rebalance timeout, members that do
    /// not sync in time are removed.
    pub fn on_timer(&mut self, now: i64) -> Vec<Action> {
        let mut actions = Vec::new();
        let before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now);
        if self.pending_members.len() != before {
            actions.extend(self.try_complete_join(now));
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync && m.heartbeat_deadline_ms <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            actions.extend(self.remove_member_and_rebalance(&id, now));
        }
        if self.state == GroupState::PreparingRebalance {
            if self.initial_delay_until_ms.is_some_and(|t| t <= now) {
                self.initial_delay_until_ms = None;
                actions.extend(self.try_complete_join(now));
            }
            if self.state == GroupState::PreparingRebalance
                && self.initial_delay_until_ms.is_none()
                && self.rebalance_deadline_ms.is_some_and(|t| t <= now)
            {
                actions.extend(self.complete_join(now));
            }
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline_ms.is_some_and(|t| t <= now)
        {
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.awaiting_sync)
                .map(|m| m.member_id.clone())
                .collect();
            self.sync_deadline_ms = None;
            for id in &unsynced {
                self.remove_member(id, &mut actions);
            }
            actions.extend(self.prepare_rebalance(now));
        }
        actions
    }
}

fn fail(err: GroupError) -> (JoinReply, Vec<Action>) {
    (JoinReply::Now(Err(err)), Vec::new())
}

#[cfg(test)]
#[path = "../state_tests.rs"]
mod tests;
