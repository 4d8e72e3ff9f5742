//! The classic consumer-group state machine, free of I/O: one [`Group`] holds
//! its members, generation, selected protocol, leader and committed offsets.
//! Every method takes the current time (`now`, milliseconds) explicitly and
//! returns what the caller must do — answer a parked JoinGroup or SyncGroup,
//! persist the group — as [`Action`]s, so every transition is unit-tested
//! with a fake clock. The coordinator runtime (`coordinator/`) owns the
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
//!
//! This file holds [`GroupConfig`], the [`Group`] with its constructors and
//! accessors, and the join barrier that JoinGroup, LeaveGroup and the timers
//! share. Each request adds its own `impl Group` block, one file per concept:
//! `join.rs` (JoinGroup, static membership), `sync.rs` (SyncGroup),
//! `heartbeat.rs`, `leave.rs` (LeaveGroup), `offsets.rs` (offset commit
//! rules, OffsetDelete, DeleteGroups, retention) and `timers.rs` (session,
//! join and sync deadlines). They use this file, never each other.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use super::consumer::{ConsumerConfig, ConsumerGroup};
use super::error::GroupError;
use super::member::{select_protocol, Member};
use super::messages::{Action, GroupState, JoinMember, JoinOutcome};
use super::offsets::OffsetTable;
use super::records::GroupMetadata;

// Also named `group::state::…` by the API handlers.
pub(crate) use super::messages::{JoinRequest, LeavingMember, Protocol, SyncRequest};
pub(crate) use super::offsets::CommittedOffset;

mod consumer;
mod heartbeat;
mod join;
mod leave;
mod offsets;
mod sync;
mod timers;

/// Broker settings that bound group behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupConfig {
    /// `group_min_session_timeout_ms`.
    pub min_session_timeout_ms: i32,
    /// `group_max_session_timeout_ms`.
    pub max_session_timeout_ms: i32,
    /// `group_initial_rebalance_delay_ms`.
    pub initial_rebalance_delay_ms: i64,
    /// The consumer group protocol's settings.
    pub consumer: ConsumerConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            consumer: ConsumerConfig::default(),
        }
    }
}

/// One consumer group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
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
    /// `Some`: a group of the consumer protocol (KIP-848), whose members
    /// live here instead of `members`.
    consumer: Option<ConsumerGroup>,
    /// Offsets committed inside transactions (TxnOffsetCommit) by producer id,
    /// applied when the transaction's commit marker is written.
    pending_txn: BTreeMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
}

impl Group {
    /// A new, empty group.
    pub(crate) fn new(id: impl Into<String>, config: GroupConfig, now: i64) -> Group {
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
            consumer: None,
            pending_txn: BTreeMap::new(),
        }
    }

    /// Rebuilds a group from its persisted metadata: members are kept (they
    /// get one session timeout from `now` to heartbeat) and the group is
    /// Stable, or Empty without members.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn restore(
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
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Current state.
    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    /// When the current state was entered.
    #[cfg(test)]
    pub(crate) fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    /// Current generation.
    #[cfg(test)]
    pub(crate) fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Protocol type ("consumer"; `None` for groups that only store offsets).
    pub(crate) fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The selected protocol of the current generation.
    pub(crate) fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub(crate) fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Members in join order.
    pub(crate) fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// A member by id.
    #[cfg(test)]
    pub(crate) fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Number of members (of either protocol).
    pub(crate) fn member_count(&self) -> usize {
        self.members.len() + self.consumer.as_ref().map_or(0, |c| c.member_count())
    }

    /// True while member ids handed out with MEMBER_ID_REQUIRED wait to rejoin.
    pub(crate) fn has_pending_members(&self) -> bool {
        !self.pending_members.is_empty()
    }

    /// Committed offsets by (topic, partition).
    pub(crate) fn offsets(&self) -> &BTreeMap<(String, i32), CommittedOffset> {
        self.offsets.all()
    }

    /// The committed offset of one partition.
    pub(crate) fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(topic, partition)
    }

    /// The persisted form of the group's metadata.
    pub(crate) fn to_metadata(&self) -> GroupMetadata {
        GroupMetadata {
            protocol_type: self.protocol_type.clone(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self.members.values().cloned().collect(),
            consumer: self.consumer.clone(),
        }
    }

    /// Rebuilds a group from persisted metadata (see [`Group::restore`]).
    pub(crate) fn from_metadata(
        id: impl Into<String>,
        config: GroupConfig,
        now: i64,
        metadata: GroupMetadata,
    ) -> Group {
        let mut group = Group::restore(
            id,
            config,
            now,
            metadata.generation_id,
            metadata.protocol_type,
            metadata.protocol_name,
            metadata.leader,
            metadata.state_timestamp_ms,
            metadata.members,
        );
        if let Some(consumer) = metadata.consumer {
            group.consumer = Some(consumer.restored(&config.consumer, now));
            if group.member_count() > 0 {
                group.state = GroupState::Stable;
            }
        }
        group
    }

    /// Empty without offsets: nothing left worth keeping.
    pub(crate) fn is_removable(&self) -> bool {
        self.state == GroupState::Empty && self.offsets.is_empty() && self.pending_txn.is_empty()
    }

    /// Records an offset committed inside `producer_id`'s open transaction.
    pub(crate) fn commit_txn_offset(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        offset: CommittedOffset,
    ) {
        self.pending_txn
            .entry(producer_id)
            .or_default()
            .insert((topic.to_string(), partition), offset);
    }

    /// The end of `producer_id`'s transaction: its offsets are committed (or
    /// dropped); returns how many were committed.
    pub(crate) fn complete_txn(&mut self, producer_id: i64, commit: bool) -> usize {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return 0;
        };
        if !commit {
            return 0;
        }
        let n = pending.len();
        for ((topic, partition), offset) in pending {
            self.offsets.commit(&topic, partition, offset);
        }
        n
    }

    /// Whether a transaction has an offset of this partition waiting for its
    /// outcome (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub(crate) fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending_txn.values().any(|p| p.contains_key(&key))
    }

    fn set_state(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp_ms = now;
    }

    /// A static member registered under another member id?
    fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        match instance.and_then(|i| self.static_members.get(i)) {
            Some(registered) => registered != member_id,
            None => false,
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

    // The join barrier and member removal, shared by JoinGroup, LeaveGroup
    // and the timers.

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
}

#[cfg(test)]
#[path = "../state_tests.rs"]
mod tests;
