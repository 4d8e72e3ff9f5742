//! The classic consumer-group state machine, free of I/O: one [`Group`] holds
//! its members, generation, selected protocol, leader and committed offsets.
//! Every method takes the current time (`now`, milliseconds) explicitly and
//! returns what the caller must do — answer a parked JoinGroup or SyncGroup,
//! persist the group — as [`Action`]s, so every transition is unit-tested
//! with a fake clock. The coordinator runtime (`coordinator.rs`) owns the
//! sockets, timers and the log.
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

/// The protocol type of Kafka consumer groups (whose metadata this broker can parse).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Largest commit metadata string accepted (Kafka's `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// The state of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join: the join barrier.
    PreparingRebalance,
    /// Joins answered; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted (or expired); about to be forgotten.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A group-protocol error; `errors.rs` maps each to its Kafka code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The generation id is not the group's current one.
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    /// The member id is not a member of the group.
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    /// Protocol type or protocols incompatible with the group's.
    #[error("the member's protocol type or protocols are incompatible with the group's")]
    InconsistentGroupProtocol,
    /// The group is rebalancing; the member must rejoin.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// Another member with the same group.instance.id has registered.
    #[error("another member with the same group.instance.id has registered")]
    FencedInstanceId,
    /// No such group.
    #[error("the group does not exist")]
    GroupIdNotFound,
    /// The group still has members.
    #[error("the group has members")]
    NonEmptyGroup,
    /// Session timeout outside the broker's bounds.
    #[error("the session timeout is outside the broker's group_min/max_session_timeout_ms")]
    InvalidSessionTimeout,
    /// Empty group id.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// The group is dead (being deleted).
    #[error("the group is being deleted")]
    CoordinatorNotAvailable,
    /// The coordinator is still loading `__consumer_offsets`.
    #[error("the group coordinator is loading its state")]
    CoordinatorLoadInProgress,
    /// This broker does not lead the group's `__consumer_offsets` partition.
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    /// OffsetDelete of a topic a member subscribes to.
    #[error("a member of the group subscribes to the topic")]
    GroupSubscribedToTopic,
    /// The topic or partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// Commit metadata longer than [`MAX_OFFSET_METADATA_BYTES`].
    #[error("the commit metadata is too large")]
    OffsetMetadataTooLarge,
}

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

/// One protocol a member supports (e.g. an assignor name) with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// Protocol name (assignor).
    pub name: String,
    /// Opaque metadata (for consumers: the subscription).
    pub metadata: Bytes,
}

/// A group member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id of the member's last JoinGroup.
    pub client_id: String,
    /// The client host of the member's last JoinGroup.
    pub client_host: String,
    /// Session timeout the member asked for.
    pub session_timeout_ms: i32,
    /// Rebalance timeout the member asked for.
    pub rebalance_timeout_ms: i32,
    /// Protocols in the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// The assignment of the current generation (opaque).
    pub assignment: Bytes,
    /// The member's session expires at this time unless it heartbeats.
    pub heartbeat_deadline_ms: i64,
    /// A JoinGroup of this member is parked at the barrier.
    pub awaiting_join: bool,
    /// A SyncGroup of this member is parked waiting for the leader.
    pub awaiting_sync: bool,
}

impl Member {
    /// Metadata of the named protocol, if the member supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch the client saw (-1 if unknown).
    pub leader_epoch: i32,
    /// Client metadata stored with the commit.
    pub metadata: String,
    /// When it was committed (broker clock).
    pub commit_timestamp_ms: i64,
}

/// A member as sent to the leader in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A successful JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Generation the member joined.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member's own id.
    pub member_id: String,
    /// Every member with its metadata (leader only; empty for followers).
    pub members: Vec<JoinMember>,
    /// The leader must not compute a new assignment (static leader rejoin, v9+).
    pub skip_assignment: bool,
}

/// A successful SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer the parked JoinGroup of this member.
    JoinResponse {
        /// The member whose request is parked.
        member_id: String,
        /// The answer.
        result: Result<JoinOutcome, GroupError>,
    },
    /// Answer the parked SyncGroup of this member.
    SyncResponse {
        /// The member whose request is parked.
        member_id: String,
        /// The answer.
        result: Result<SyncOutcome, GroupError>,
    },
    /// Write the group's metadata record (before answering later actions).
    PersistGroup,
    /// A rebalance completed with this new generation (metrics).
    RebalanceCompleted {
        /// The new generation id.
        generation_id: i32,
    },
}

/// The immediate answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinReply {
    /// Answer now.
    Now(Result<JoinOutcome, GroupError>),
    /// JoinGroup v4+ without a member id: retry with this id.
    MemberIdRequired {
        /// The id the member must use.
        member_id: String,
    },
    /// Parked: a [`Action::JoinResponse`] for this member answers it later.
    Parked {
        /// The member id (possibly newly assigned).
        member_id: String,
    },
}

/// The immediate answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncReply {
    /// Answer now.
    Now(Result<SyncOutcome, GroupError>),
    /// Parked: a [`Action::SyncResponse`] for this member answers it later.
    Parked,
}

/// A JoinGroup request as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id sent ("" for a first join).
    pub member_id: String,
    /// `group.instance.id` (static membership).
    pub group_instance_id: Option<String>,
    /// The request's client id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (the session timeout for JoinGroup v0).
    pub rebalance_timeout_ms: i32,
    /// Protocol type (e.g. "consumer").
    pub protocol_type: String,
    /// Protocols in preference order.
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a first join without member id gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// The id to hand out if this join needs a new member id (caller-generated,
    /// so the state machine stays deterministic).
    pub new_member_id: String,
}

/// A SyncGroup request as the state machine sees it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Generation the member believes current.
    pub generation_id: i32,
    /// v5+: protocol type the member expects.
    pub protocol_type: Option<String>,
    /// v5+: protocol name the member expects.
    pub protocol_name: Option<String>,
    /// The leader's assignments (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A member's identity in LeaveGroup.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id ("" with an instance id: the instance's current member).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
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
    offsets: BTreeMap<(String, i32), CommittedOffset>,
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
            offsets: BTreeMap::new(),
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
        &self.offsets
    }

    /// The committed offset of one partition.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    /// The persisted form of the group's metadata.
    pub fn to_metadata(&self) -> super::records::GroupMetadata {
        super::records::GroupMetadata {
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
        metadata: super::records::GroupMetadata,
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

    /// Names of the protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<&str> = first.protocols.iter().map(|p| p.name.as_str()).collect();
        for m in members {
            let names: HashSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
            set.retain(|n| names.contains(n));
        }
        set
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            let candidates = self.candidate_protocols();
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|p| candidates.contains(p.name.as_str()))
        }
    }

    /// Kafka's choice: among the protocols every member supports, each member
    /// votes for its most preferred one; the most votes win, ties going to the
    /// leader's preference order.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(p) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(p.name.as_str()))
            {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let leader = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        let mut best: Option<(&str, usize)> = None;
        for p in &leader.protocols {
            let count = votes.get(p.name.as_str()).copied().unwrap_or(0);
            if count > 0 && best.is_none_or(|(_, c)| count > c) {
                best = Some((p.name.as_str(), count));
            }
        }
        best.map(|(name, _)| name.to_string())
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

    fn new_member(&self, member_id: String, req: &JoinRequest, now: i64) -> Member {
        Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            heartbeat_deadline_ms: now + i64::from(req.session_timeout_ms),
            awaiting_join: true,
            awaiting_sync: false,
        }
    }

    fn update_member(member: &mut Member, req: &JoinRequest, now: i64) {
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        member.heartbeat_deadline_ms = now + i64::from(req.session_timeout_ms);
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: i64,
    ) -> (JoinReply, Vec<Action>) {
        let member = self.new_member(member_id.clone(), &req, now);
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
                    Self::update_member(m, &req, now);
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
                    Self::update_member(m, &req, now);
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
        Self::update_member(&mut member, &req, now);
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                let unchanged = self.select_protocol() == self.protocol_name;
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
        self.protocol_name = self.select_protocol();
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
        self.offsets.insert((topic.to_string(), partition), offset);
    }

    /// Forgets a committed offset (replay of a tombstone); true if it existed.
    pub fn remove_offset(&mut self, topic: &str, partition: i32) -> bool {
        self.offsets
            .remove(&(topic.to_string(), partition))
            .is_some()
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
                topics.extend(super::subscription_topics(metadata));
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
                let keys = self.offsets.keys().cloned().collect();
                self.offsets.clear();
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
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, o)| base(o).saturating_add(retention_ms) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.offsets.remove(k);
        }
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
mod tests {
    use super::*;

    const SESSION: i32 = 10_000;
    const REBALANCE: i32 = 30_000;

    fn config(delay: i64) -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 300_000,
            initial_rebalance_delay_ms: delay,
        }
    }

    fn protocols(names: &[&str]) -> Vec<Protocol> {
        names
            .iter()
            .map(|n| Protocol {
                name: n.to_string(),
                metadata: Bytes::from(format!("meta-{n}")),
            })
            .collect()
    }

    fn join_req(member_id: &str, new_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols(&["range"]),
            require_known_member_id: false,
            new_member_id: new_id.into(),
        }
    }

    fn static_req(instance: &str, member_id: &str, new_id: &str) -> JoinRequest {
        JoinRequest {
            group_instance_id: Some(instance.into()),
            ..join_req(member_id, new_id)
        }
    }

    fn sync_req(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
        SyncRequest {
            member_id: member_id.into(),
            group_instance_id: None,
            generation_id: generation,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        }
    }

    fn joined(actions: &[Action]) -> Vec<(String, JoinOutcome)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::JoinResponse {
                    member_id,
                    result: Ok(o),
                } => Some((member_id.clone(), o.clone())),
                _ => None,
            })
            .collect()
    }

    fn join_errors(actions: &[Action]) -> Vec<(String, GroupError)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::JoinResponse {
                    member_id,
                    result: Err(e),
                } => Some((member_id.clone(), *e)),
                _ => None,
            })
            .collect()
    }

    fn synced(actions: &[Action]) -> Vec<(String, Result<Bytes, GroupError>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SyncResponse { member_id, result } => Some((
                    member_id.clone(),
                    result
                        .as_ref()
                        .map(|o| o.assignment.clone())
                        .map_err(|e| *e),
                )),
                _ => None,
            })
            .collect()
    }

    /// A Stable group of `ids` (first is leader) at generation 1, built at time 0.
    fn stable(ids: &[&str]) -> Group {
        let mut g = Group::new("g", config(0), 0);
        let mut all = Vec::new();
        for id in ids {
            let (reply, actions) = g.join(join_req("", id), 0);
            assert_eq!(
                reply,
                JoinReply::Parked {
                    member_id: id.to_string()
                }
            );
            all.extend(actions);
        }
        // With no initial delay the barrier completed at the first join, so
        // later joiners started a second rebalance; rejoin everyone.
        let mut guard = 0;
        while g.state() == GroupState::PreparingRebalance && guard < 10 {
            for id in ids {
                let m = g.member(id).unwrap();
                if !m.awaiting_join {
                    let (_, actions) = g.join(join_req(id, "unused"), 0);
                    all.extend(actions);
                }
            }
            guard += 1;
        }
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        let generation = g.generation_id();
        let leader = g.leader().unwrap().to_string();
        let assignments: Vec<(&str, String)> =
            ids.iter().map(|id| (*id, format!("assign-{id}"))).collect();
        let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (*m, a.as_str())).collect();
        let (reply, _) = g.sync(sync_req(&leader, generation, &pairs), 0);
        assert_eq!(reply, SyncReply::Parked);
        assert_eq!(g.state(), GroupState::Stable);
        g
    }

    #[test]
    fn first_member_joins_empty_group_and_leads_generation_1() {
        let mut g = Group::new("g", config(0), 0);
        let (reply, actions) = g.join(join_req("", "m1"), 100);
        assert_eq!(
            reply,
            JoinReply::Parked {
                member_id: "m1".into()
            }
        );
        let done = joined(&actions);
        assert_eq!(done.len(), 1);
        let (id, o) = &done[0];
        assert_eq!(id, "m1");
        assert_eq!(o.generation_id, 1);
        assert_eq!(o.leader, "m1");
        assert_eq!(o.protocol_name.as_deref(), Some("range"));
        assert_eq!(o.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(o.members.len(), 1, "the leader gets the member list");
        assert_eq!(o.members[0].metadata, Bytes::from("meta-range"));
        assert!(actions.contains(&Action::RebalanceCompleted { generation_id: 1 }));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn two_members_get_assignments_in_the_same_generation() {
        let mut g = Group::new("g", config(0), 0);
        g.join(join_req("", "m1"), 0);
        // m1 completed generation 1 alone; m2 joining starts a rebalance.
        let (reply, actions) = g.join(join_req("", "m2"), 10);
        assert!(matches!(reply, JoinReply::Parked { .. }));
        assert!(joined(&actions).is_empty(), "m1 has not rejoined yet");
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        // m1 learns of the rebalance through its heartbeat and rejoins.
        assert_eq!(
            g.heartbeat("m1", None, 1, 20),
            Err(GroupError::RebalanceInProgress)
        );
        let (_, actions) = g.join(join_req("m1", "x"), 30);
        let done = joined(&actions);
        assert_eq!(
            done.len(),
            2,
            "the barrier completes as soon as all rejoined"
        );
        assert!(done.iter().all(|(_, o)| o.generation_id == 2));
        let leader = done.iter().find(|(id, _)| id == "m1").unwrap();
        assert_eq!(leader.1.leader, "m1", "the existing leader stays leader");
        assert_eq!(leader.1.members.len(), 2);
        let follower = done.iter().find(|(id, _)| id == "m2").unwrap();
        assert!(follower.1.members.is_empty());
        // The follower syncs first and waits for the leader.
        let (reply, actions) = g.sync(sync_req("m2", 2, &[]), 40);
        assert_eq!(reply, SyncReply::Parked);
        assert!(actions.is_empty());
        let (reply, actions) = g.sync(sync_req("m1", 2, &[("m1", "a1"), ("m2", "a2")]), 50);
        assert_eq!(reply, SyncReply::Parked);
        assert_eq!(actions[0], Action::PersistGroup, "persist before answering");
        let mut got = synced(&actions);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("m1".to_string(), Ok(Bytes::from("a1"))),
                ("m2".to_string(), Ok(Bytes::from("a2")))
            ]
        );
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(g.heartbeat("m2", None, 2, 60), Ok(()));
        // SyncGroup in Stable answers at once with the member's assignment.
        let (reply, _) = g.sync(sync_req("m2", 2, &[]), 70);
        assert_eq!(
            reply,
            SyncReply::Now(Ok(SyncOutcome {
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from("a2"),
            }))
        );
    }

    #[test]
    fn leader_missing_from_assignment_map_gives_member_empty_assignment() {
        let mut g = stable(&["m1"]);
        g.join(join_req("", "m2"), 10);
        g.join(join_req("m1", "x"), 10);
        let (_, actions) = g.sync(sync_req("m1", 2, &[("m1", "a1")]), 20);
        assert_eq!(synced(&actions), vec![("m1".into(), Ok(Bytes::from("a1")))]);
        let (reply, _) = g.sync(sync_req("m2", 2, &[]), 30);
        assert!(matches!(reply, SyncReply::Now(Ok(o)) if o.assignment.is_empty()));
    }

    #[test]
    fn initial_rebalance_delay_waits_for_more_members() {
        let mut g = Group::new("g", config(3000), 0);
        let (_, actions) = g.join(join_req("", "m1"), 0);
        assert!(joined(&actions).is_empty(), "delayed");
        let (_, actions) = g.join(join_req("", "m2"), 1000);
        assert!(joined(&actions).is_empty());
        assert_eq!(g.next_deadline(), Some(4000), "extended by one delay");
        assert!(joined(&g.on_timer(3999)).is_empty());
        let done = joined(&g.on_timer(4000));
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|(_, o)| o.generation_id == 1));
    }

    #[test]
    fn member_id_required_for_v4_first_join_then_join_with_it() {
        let mut g = Group::new("g", config(0), 0);
        let mut req = join_req("", "assigned-1");
        req.require_known_member_id = true;
        let (reply, actions) = g.join(req.clone(), 0);
        assert_eq!(
            reply,
            JoinReply::MemberIdRequired {
                member_id: "assigned-1".into()
            }
        );
        assert!(actions.is_empty());
        assert_eq!(g.member_count(), 0);
        assert!(g.has_pending_members());
        req.member_id = "assigned-1".into();
        req.new_member_id = "other".into();
        let (reply, actions) = g.join(req, 10);
        assert_eq!(
            reply,
            JoinReply::Parked {
                member_id: "assigned-1".into()
            }
        );
        assert_eq!(joined(&actions).len(), 1);
        assert!(!g.has_pending_members());
    }

    #[test]
    fn pending_member_blocks_the_barrier_until_it_joins_or_expires() {
        let mut g = stable(&["m1"]);
        let mut req = join_req("", "p1");
        req.require_known_member_id = true;
        g.join(req, 100);
        // m1 changes its protocols: a rebalance that waits for the pending member too.
        let mut rejoin = join_req("m1", "x");
        rejoin.protocols = protocols(&["range", "roundrobin"]);
        let (_, actions) = g.join(rejoin, 200);
        assert!(joined(&actions).is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let done = joined(&g.on_timer(100 + i64::from(SESSION)));
        assert_eq!(done.len(), 1, "pending id expired: barrier completes");
    }

    #[test]
    fn unknown_member_id_on_join() {
        let mut g = stable(&["m1"]);
        let (reply, _) = g.join(join_req("ghost", "x"), 10);
        assert_eq!(reply, JoinReply::Now(Err(GroupError::UnknownMemberId)));
    }

    #[test]
    fn invalid_session_timeout_is_refused() {
        let mut g = Group::new("g", config(0), 0);
        for timeout in [5999, 300_001] {
            let mut req = join_req("", "m1");
            req.session_timeout_ms = timeout;
            let (reply, _) = g.join(req, 0);
            assert_eq!(
                reply,
                JoinReply::Now(Err(GroupError::InvalidSessionTimeout))
            );
        }
        assert_eq!(g.member_count(), 0);
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let mut g = Group::new("g", config(0), 0);
        let mut empty = join_req("", "m1");
        empty.protocols.clear();
        assert_eq!(
            g.join(empty, 0).0,
            JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
        let mut no_type = join_req("", "m1");
        no_type.protocol_type.clear();
        assert_eq!(
            g.join(no_type, 0).0,
            JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
        let mut g = stable(&["m1"]);
        let mut other = join_req("", "m2");
        other.protocols = protocols(&["sticky"]);
        assert_eq!(
            g.join(other, 0).0,
            JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
        let mut other_type = join_req("", "m2");
        other_type.protocol_type = "connect".into();
        assert_eq!(
            g.join(other_type, 0).0,
            JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
    }

    #[test]
    fn protocol_selection_takes_the_common_protocol_by_votes_then_leader_preference() {
        let mut g = Group::new("g", config(3000), 0);
        let mut a = join_req("", "m1");
        a.protocols = protocols(&["cooperative-sticky", "range"]);
        let mut b = join_req("", "m2");
        b.protocols = protocols(&["range", "cooperative-sticky"]);
        let mut c = join_req("", "m3");
        c.protocols = protocols(&["roundrobin", "range"]);
        g.join(a, 0);
        g.join(b, 0);
        g.join(c, 0);
        let done = joined(&g.on_timer(10_000));
        // Only "range" is supported by all three.
        assert!(done
            .iter()
            .all(|(_, o)| o.protocol_name.as_deref() == Some("range")));

        let mut g = Group::new("g", config(3000), 0);
        let mut a = join_req("", "m1");
        a.protocols = protocols(&["cooperative-sticky", "range"]);
        let mut b = join_req("", "m2");
        b.protocols = protocols(&["range", "cooperative-sticky"]);
        g.join(a, 0);
        g.join(b, 0);
        let done = joined(&g.on_timer(10_000));
        // One vote each: the leader's preference decides.
        assert!(done
            .iter()
            .all(|(_, o)| o.protocol_name.as_deref() == Some("cooperative-sticky")));
    }

    #[test]
    fn heartbeat_errors() {
        let mut g = stable(&["m1"]);
        let generation = g.generation_id();
        assert_eq!(g.heartbeat("m1", None, generation, 1), Ok(()));
        assert_eq!(
            g.heartbeat("ghost", None, generation, 1),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            g.heartbeat("m1", None, generation + 7, 1),
            Err(GroupError::IllegalGeneration)
        );
    }

    #[test]
    fn heartbeat_in_completing_rebalance_is_fine_and_sync_during_prepare_is_rebalance_in_progress()
    {
        let mut g = stable(&["m1"]);
        g.join(join_req("", "m2"), 10);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let (reply, _) = g.sync(sync_req("m1", 1, &[]), 11);
        assert_eq!(reply, SyncReply::Now(Err(GroupError::RebalanceInProgress)));
        g.join(join_req("m1", "x"), 12);
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        assert_eq!(g.heartbeat("m2", None, 2, 13), Ok(()));
    }

    #[test]
    fn sync_errors() {
        let mut g = stable(&["m1"]);
        assert_eq!(
            g.sync(sync_req("ghost", 1, &[]), 1).0,
            SyncReply::Now(Err(GroupError::UnknownMemberId))
        );
        assert_eq!(
            g.sync(sync_req("m1", 5, &[]), 1).0,
            SyncReply::Now(Err(GroupError::IllegalGeneration))
        );
        let mut wrong = sync_req("m1", 1, &[]);
        wrong.protocol_name = Some("roundrobin".into());
        assert_eq!(
            g.sync(wrong, 1).0,
            SyncReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
    }

    #[test]
    fn leave_triggers_rebalance_and_remaining_member_gets_everything() {
        let mut g = stable(&["m1", "m2"]);
        let generation = g.generation_id();
        let (results, actions) = g.leave(
            &[LeavingMember {
                member_id: "m1".into(),
                group_instance_id: None,
            }],
            100,
        );
        assert_eq!(results, vec![Ok(())]);
        assert!(actions.is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(g.leader(), Some("m2"), "leadership moves on");
        let (_, actions) = g.join(join_req("m2", "x"), 110);
        let done = joined(&actions);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.generation_id, generation + 1);
        assert_eq!(done[0].1.leader, "m2");
    }

    #[test]
    fn leave_errors_and_last_member_leaving_empties_the_group() {
        let mut g = stable(&["m1"]);
        let (results, _) = g.leave(
            &[LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            }],
            1,
        );
        assert_eq!(results, vec![Err(GroupError::UnknownMemberId)]);
        let generation = g.generation_id();
        let (results, actions) = g.leave(
            &[LeavingMember {
                member_id: "m1".into(),
                group_instance_id: None,
            }],
            2,
        );
        assert_eq!(results, vec![Ok(())]);
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.generation_id(), generation + 1);
        assert!(actions.contains(&Action::PersistGroup));
        assert_eq!(g.state_timestamp_ms(), 2);
        assert_eq!(
            g.heartbeat("m1", None, generation + 1, 3),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[test]
    fn leaving_member_with_parked_requests_gets_unknown_member_id() {
        let mut g = stable(&["m1", "m2"]);
        g.join(join_req("", "m3"), 10);
        g.join(join_req("m1", "x"), 10);
        // m1's join is parked; it leaves instead (consumer closing).
        let (_, actions) = g.leave(
            &[LeavingMember {
                member_id: "m1".into(),
                group_instance_id: None,
            }],
            20,
        );
        assert_eq!(
            join_errors(&actions),
            vec![("m1".to_string(), GroupError::UnknownMemberId)]
        );
    }

    #[test]
    fn session_expiry_evicts_a_silent_member_and_rebalances() {
        let mut g = stable(&["m1", "m2"]);
        assert_eq!(g.next_deadline(), Some(i64::from(SESSION)));
        assert!(g.on_timer(i64::from(SESSION) - 1).is_empty());
        // m2 keeps heartbeating, m1 is silent.
        assert_eq!(g.heartbeat("m2", None, g.generation_id(), 9000), Ok(()));
        g.on_timer(i64::from(SESSION));
        assert!(g.member("m1").is_none(), "m1's session expired");
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let (_, actions) = g.join(join_req("m2", "x"), 10_100);
        assert_eq!(joined(&actions).len(), 1);
    }

    #[test]
    fn rebalance_timeout_removes_members_that_do_not_rejoin() {
        let mut g = stable(&["m1", "m2"]);
        let generation = g.generation_id();
        g.join(join_req("", "m3"), 1000);
        g.join(join_req("m1", "x"), 1000);
        // m2 keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
        for t in (2000..31_000).step_by(3000) {
            assert_eq!(
                g.heartbeat("m2", None, generation, t),
                Err(GroupError::RebalanceInProgress)
            );
            let done = g.on_timer(t);
            assert!(joined(&done).is_empty(), "not before the rebalance timeout");
        }
        let done = joined(&g.on_timer(1000 + i64::from(REBALANCE)));
        assert_eq!(done.len(), 2);
        assert!(g.member("m2").is_none());
        assert_eq!(g.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
        let mut g = Group::new("g", config(0), 0);
        g.join(join_req("", "m1"), 0);
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        // The leader keeps heartbeating but never syncs.
        for t in (3000..30_000).step_by(3000) {
            g.heartbeat("m1", None, 1, t).unwrap();
            g.on_timer(t);
        }
        g.on_timer(i64::from(REBALANCE));
        assert_eq!(g.state(), GroupState::Empty);
    }

    #[test]
    fn rejoin_in_completing_rebalance_with_same_protocols_returns_current_generation() {
        let mut g = Group::new("g", config(0), 0);
        g.join(join_req("", "m1"), 0);
        let (reply, actions) = g.join(join_req("m1", "x"), 5);
        assert!(actions.is_empty());
        match reply {
            JoinReply::Now(Ok(o)) => assert_eq!(o.generation_id, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follower_rejoin_in_stable_with_same_protocols_does_not_rebalance() {
        let mut g = stable(&["m1", "m2"]);
        let generation = g.generation_id();
        let (reply, actions) = g.join(join_req("m2", "x"), 5);
        assert!(actions.is_empty());
        assert!(matches!(reply, JoinReply::Now(Ok(o)) if o.generation_id == generation));
        assert_eq!(g.state(), GroupState::Stable);
        // The leader rejoining does rebalance (it may want a new assignment).
        let (reply, _) = g.join(join_req("m1", "x"), 6);
        assert!(matches!(reply, JoinReply::Parked { .. }));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn sync_parked_when_rebalance_restarts_gets_rebalance_in_progress() {
        let mut g = stable(&["m1"]);
        g.join(join_req("", "m2"), 1);
        g.join(join_req("m1", "x"), 1);
        let (reply, _) = g.sync(sync_req("m2", 2, &[]), 2);
        assert_eq!(reply, SyncReply::Parked);
        // m3 arrives before the leader syncs.
        let (_, actions) = g.join(join_req("", "m3"), 3);
        assert_eq!(
            synced(&actions),
            vec![("m2".into(), Err(GroupError::RebalanceInProgress))]
        );
    }

    fn static_stable() -> Group {
        let mut g = Group::new("g", config(0), 0);
        g.join(static_req("i1", "", "m1"), 0);
        g.join(static_req("i2", "", "m2"), 0);
        g.join(static_req("i1", "m1", "x"), 0);
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        let mut sync = sync_req("m1", 2, &[("m1", "a1"), ("m2", "a2")]);
        sync.group_instance_id = Some("i1".into());
        g.sync(sync, 0);
        assert_eq!(g.state(), GroupState::Stable);
        g
    }

    #[test]
    fn static_member_rejoin_gets_its_assignment_back_without_rebalance() {
        let mut g = static_stable();
        let generation = g.generation_id();
        // i2 restarts: new process, no member id.
        let (reply, actions) = g.join(static_req("i2", "", "m2-new"), 5000);
        assert_eq!(
            reply,
            JoinReply::Parked {
                member_id: "m2-new".into()
            }
        );
        assert_eq!(actions[0], Action::PersistGroup);
        let done = joined(&actions);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "m2-new");
        assert_eq!(done[0].1.generation_id, generation, "no new generation");
        assert!(!done[0].1.skip_assignment);
        assert_eq!(g.state(), GroupState::Stable, "no rebalance");
        assert!(g.member("m2").is_none());
        let mut sync = sync_req("m2-new", generation, &[]);
        sync.group_instance_id = Some("i2".into());
        let (reply, _) = g.sync(sync, 5001);
        assert!(matches!(reply, SyncReply::Now(Ok(o)) if o.assignment == "a2"));
        // The old incarnation is fenced.
        assert_eq!(
            g.heartbeat("m2", Some("i2"), generation, 5002),
            Err(GroupError::FencedInstanceId)
        );
        // The other member was not disturbed.
        assert_eq!(g.heartbeat("m1", Some("i1"), generation, 5003), Ok(()));
    }

    #[test]
    fn static_leader_rejoin_is_told_to_skip_assignment() {
        let mut g = static_stable();
        let (_, actions) = g.join(static_req("i1", "", "m1-new"), 10);
        let done = joined(&actions);
        assert_eq!(done[0].1.leader, "m1-new");
        assert!(done[0].1.skip_assignment);
        assert_eq!(done[0].1.members.len(), 2);
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn static_rejoin_keeps_generation_when_selected_protocol_is_unchanged() {
        let mut g = static_stable();
        let mut req = static_req("i2", "", "m2-new");
        req.protocols = protocols(&["roundrobin", "range"]);
        // Votes tie (range 1, roundrobin 1) and the leader prefers range: no change.
        let (_, actions) = g.join(req, 10);
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(joined(&actions).len(), 1);
        let mut req = static_req("i2", "", "m2-newer");
        req.protocols = protocols(&["cooperative-sticky"]);
        assert_eq!(
            g.join(req, 11).0,
            JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
        );
    }

    #[test]
    fn fenced_instance_id_errors() {
        let mut g = static_stable();
        assert_eq!(
            g.join(static_req("i2", "wrong", "x"), 1).0,
            JoinReply::Now(Err(GroupError::FencedInstanceId))
        );
        assert_eq!(
            g.join(static_req("i9", "m9", "x"), 1).0,
            JoinReply::Now(Err(GroupError::UnknownMemberId))
        );
        let mut sync = sync_req("wrong", 2, &[]);
        sync.group_instance_id = Some("i2".into());
        assert_eq!(
            g.sync(sync, 1).0,
            SyncReply::Now(Err(GroupError::FencedInstanceId))
        );
        assert_eq!(
            g.validate_commit("wrong", Some("i2"), 2, 1),
            Err(GroupError::FencedInstanceId)
        );
        let (results, _) = g.leave(
            &[LeavingMember {
                member_id: "wrong".into(),
                group_instance_id: Some("i2".into()),
            }],
            1,
        );
        assert_eq!(results, vec![Err(GroupError::FencedInstanceId)]);
    }

    #[test]
    fn static_member_leaves_by_instance_id() {
        let mut g = static_stable();
        let (results, _) = g.leave(
            &[LeavingMember {
                member_id: String::new(),
                group_instance_id: Some("i2".into()),
            }],
            1,
        );
        assert_eq!(results, vec![Ok(())]);
        assert!(g.member("m2").is_none());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn static_member_replaced_while_parked_fences_the_old_request() {
        let mut g = static_stable();
        // A new member forces a rebalance; i2's old incarnation rejoins and parks.
        g.join(join_req("", "m3"), 1);
        g.join(static_req("i2", "m2", "x"), 2);
        let (_, actions) = g.join(static_req("i2", "", "m2-new"), 3);
        assert!(join_errors(&actions).contains(&("m2".to_string(), GroupError::FencedInstanceId)));
    }

    #[test]
    fn commit_validation() {
        let mut g = stable(&["m1"]);
        let generation = g.generation_id();
        assert_eq!(g.validate_commit("m1", None, generation, 1), Ok(()));
        assert_eq!(
            g.validate_commit("ghost", None, generation, 1),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            g.validate_commit("m1", None, generation + 1, 1),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            g.validate_commit("", None, -1, 1),
            Err(GroupError::UnknownMemberId),
            "standalone commits are refused while the group has members"
        );
        g.join(join_req("", "m2"), 2);
        assert_eq!(
            g.validate_commit("m1", None, generation, 3),
            Ok(()),
            "commits are allowed while preparing a rebalance"
        );
        g.join(join_req("m1", "x"), 4);
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        assert_eq!(
            g.validate_commit("m1", None, generation + 1, 5),
            Err(GroupError::RebalanceInProgress)
        );
        let mut empty = Group::new("simple", config(0), 0);
        assert_eq!(empty.validate_commit("", None, -1, 1), Ok(()));
    }

    fn offset(o: i64, at: i64) -> CommittedOffset {
        CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: at,
        }
    }

    #[test]
    fn offsets_of_an_empty_consumer_group_expire_after_it_was_empty_for_the_retention() {
        let mut g = stable(&["m1"]);
        g.commit_offset("t", 0, offset(5, 100));
        assert!(
            g.expire_offsets(1_000_000, 1000).is_empty(),
            "active group keeps offsets"
        );
        g.leave(
            &[LeavingMember {
                member_id: "m1".into(),
                group_instance_id: None,
            }],
            2_000_000,
        );
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.expire_offsets(2_000_999, 1000).is_empty());
        assert_eq!(
            g.expire_offsets(2_001_000, 1000),
            vec![("t".to_string(), 0)]
        );
        assert_eq!(g.state(), GroupState::Dead, "nothing left");
    }

    #[test]
    fn standalone_offsets_expire_from_their_commit_time() {
        let mut g = Group::new("simple", config(0), 0);
        g.commit_offset("t", 0, offset(5, 100));
        g.commit_offset("t", 1, offset(7, 5000));
        assert_eq!(g.expire_offsets(1100, 1000), vec![("t".to_string(), 0)]);
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.expire_offsets(6000, 1000), vec![("t".to_string(), 1)]);
        assert_eq!(g.state(), GroupState::Dead);
    }

    #[test]
    fn delete_group_only_when_empty() {
        let mut g = stable(&["m1"]);
        assert_eq!(g.delete(1), Err(GroupError::NonEmptyGroup));
        let mut empty = Group::new("g", config(0), 0);
        empty.commit_offset("t", 0, offset(1, 0));
        assert_eq!(empty.delete(1), Ok(vec![("t".to_string(), 0)]));
        assert_eq!(empty.state(), GroupState::Dead);
        assert_eq!(empty.delete(2), Err(GroupError::GroupIdNotFound));
        assert_eq!(
            empty.join(join_req("", "m1"), 3).0,
            JoinReply::Now(Err(GroupError::CoordinatorNotAvailable))
        );
    }

    fn subscription(topics: &[&str]) -> Bytes {
        use bytes::{BufMut, BytesMut};
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let sub = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        sub.encode(&mut buf, 0).unwrap();
        buf.freeze()
    }

    #[test]
    fn offset_delete_refuses_subscribed_topics() {
        let mut g = Group::new("g", config(0), 0);
        let mut req = join_req("", "m1");
        req.protocols = vec![Protocol {
            name: "range".into(),
            metadata: subscription(&["orders"]),
        }];
        g.join(req, 0);
        g.commit_offset("orders", 0, offset(1, 0));
        g.commit_offset("old", 0, offset(1, 0));
        let result = g
            .delete_offsets(&[("orders".into(), 0), ("old".into(), 0), ("old".into(), 9)])
            .unwrap();
        assert_eq!(
            result,
            vec![Err(GroupError::GroupSubscribedToTopic), Ok(true), Ok(false)]
        );
        assert!(g.offset("orders", 0).is_some());
        assert!(g.offset("old", 0).is_none());
        // A non-consumer group with members cannot delete offsets at all.
        let mut connect = Group::new("c", config(0), 0);
        let mut req = join_req("", "w1");
        req.protocol_type = "connect".into();
        connect.join(req, 0);
        assert_eq!(
            connect.delete_offsets(&[("t".into(), 0)]),
            Err(GroupError::NonEmptyGroup)
        );
    }

    #[test]
    fn restored_group_keeps_members_and_expects_heartbeats() {
        let g = static_stable();
        let restored = Group::from_metadata("g", config(0), 50_000, g.to_metadata());
        assert_eq!(restored.state(), GroupState::Stable);
        assert_eq!(restored.generation_id(), g.generation_id());
        assert_eq!(restored.leader(), Some("m1"));
        assert_eq!(restored.member("m2").unwrap().assignment, Bytes::from("a2"));
        assert_eq!(restored.next_deadline(), Some(50_000 + i64::from(SESSION)));
        let mut restored = restored;
        assert_eq!(
            restored.heartbeat("m2", Some("i2"), g.generation_id(), 50_001),
            Ok(())
        );
        let empty = Group::from_metadata(
            "e",
            config(0),
            1,
            Group::new("e", config(0), 0).to_metadata(),
        );
        assert_eq!(empty.state(), GroupState::Empty);
    }

    /// Tiny deterministic generator for the random-operation test.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn check_invariants(g: &Group, last_generation: &mut i32, actions: &[Action]) {
        assert!(
            g.generation_id() >= *last_generation,
            "generation went back"
        );
        *last_generation = g.generation_id();
        match g.state() {
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(g.member_count() > 0, "{:?} without members", g.state());
                let leader = g.leader().expect("a leader");
                assert!(g.member(leader).is_some(), "leader is not a member");
                assert!(g.protocol_name().is_some());
            }
            GroupState::Empty => assert_eq!(g.member_count(), 0),
            GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        for (instance, id) in &g.static_members {
            let m = g.member(id).expect("static entry points at a member");
            assert_eq!(m.group_instance_id.as_deref(), Some(instance.as_str()));
        }
        for a in actions {
            if let Action::JoinResponse {
                result: Ok(o),
                member_id,
            } = a
            {
                assert_eq!(o.member_id, *member_id);
                if !o.skip_assignment {
                    assert!(o.generation_id <= g.generation_id());
                }
            }
        }
    }

    #[test]
    fn random_operation_sequences_keep_the_group_consistent() {
        let mut stable_steps = 0;
        for seed in 0..200u64 {
            let mut rng = Lcg(seed);
            let mut g = Group::new("g", config(if seed % 2 == 0 { 0 } else { 500 }), 0);
            let mut now = 0i64;
            let mut last_generation = 0;
            let mut next_id = 0;
            for _ in 0..300 {
                now += rng.next(2000) as i64;
                let known: Vec<String> = g.members().map(|m| m.member_id.clone()).collect();
                let pick = |rng: &mut Lcg| -> String {
                    if known.is_empty() || rng.next(5) == 0 {
                        "stranger".to_string()
                    } else {
                        known[rng.next(known.len() as u64) as usize].clone()
                    }
                };
                let generation = g.generation_id() - rng.next(2) as i32;
                let actions = match rng.next(8) {
                    0 | 1 => {
                        next_id += 1;
                        let mut req = if rng.next(3) == 0 {
                            static_req(&format!("i{}", rng.next(3)), "", &format!("n{next_id}"))
                        } else {
                            join_req("", &format!("n{next_id}"))
                        };
                        req.require_known_member_id = rng.next(2) == 0;
                        if rng.next(4) == 0 {
                            req.protocols = protocols(&["roundrobin", "range"]);
                        }
                        g.join(req, now).1
                    }
                    2 => {
                        let id = pick(&mut rng);
                        g.join(join_req(&id, "unused"), now).1
                    }
                    3 => {
                        let id = pick(&mut rng);
                        let assignments: Vec<(String, Bytes)> = known
                            .iter()
                            .map(|m| (m.clone(), Bytes::from(m.clone())))
                            .collect();
                        let mut req = sync_req(&id, generation, &[]);
                        req.assignments = assignments;
                        g.sync(req, now).1
                    }
                    4 => {
                        let id = pick(&mut rng);
                        let _ = g.heartbeat(&id, None, generation, now);
                        Vec::new()
                    }
                    5 => {
                        let id = pick(&mut rng);
                        g.leave(
                            &[LeavingMember {
                                member_id: id,
                                group_instance_id: None,
                            }],
                            now,
                        )
                        .1
                    }
                    _ => g.on_timer(now),
                };
                check_invariants(&g, &mut last_generation, &actions);
                if g.state() == GroupState::Stable {
                    stable_steps += 1;
                }
            }
        }
        // The walk must reach the interesting states, not only refusals.
        assert!(stable_steps > 300, "only {stable_steps} steps in Stable");
    }
}
