//! The consumer group protocol of KIP-848 (`group.protocol=consumer`), free
//! of I/O: the broker computes the assignment and hands it to each member in
//! its ConsumerGroupHeartbeat response, one member at a time, without a join
//! barrier.
//!
//! A [`ConsumerGroup`] has a group epoch, bumped whenever membership,
//! subscriptions or the subscribed topics' partitions change; a target
//! assignment computed by the [`Assignor`] for the group epoch (its
//! assignment epoch); and members, each with its own member epoch, moving to
//! the target one heartbeat at a time (`reconcile.rs`): a member revokes
//! what it must give up before it advances, and gets a partition only once
//! its previous owner has released it. Sessions and revocations have
//! deadlines (`on_timer`); an expired member is removed and the epoch bumped.
//!
//! Topics are named internally; the API layer translates the topic ids of
//! the wire. Every method takes `now` (milliseconds) and, where topics
//! matter, the cluster's [`Catalog`], so every transition is unit-tested with
//! a fake clock (`consumer_tests.rs`).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use uuid::Uuid;

use super::error::GroupError;

pub(crate) mod assignor;
pub(crate) mod reconcile;

pub(crate) use assignor::Assignor;

/// Partitions by topic name.
pub(crate) type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// The topics a group may subscribe to: name → (topic id, partition count).
pub(crate) type Catalog = BTreeMap<String, (Uuid, i32)>;

/// The member epoch of a request that leaves the group.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member leaving for now (it keeps its
/// partitions until its session expires or its instance id rejoins).
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// Broker settings of the consumer group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConsumerConfig {
    /// `group_consumer_session_timeout_ms`.
    pub session_timeout_ms: i32,
    /// `group_consumer_heartbeat_interval_ms`.
    pub heartbeat_interval_ms: i32,
    /// `group_consumer_max_size`.
    pub max_size: i32,
    /// The first of `group_consumer_assignors`: used when members name none.
    pub default_assignor: Assignor,
    /// Whether `range` is among `group_consumer_assignors`.
    pub range_enabled: bool,
    /// Whether `uniform` is among `group_consumer_assignors`.
    pub uniform_enabled: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX,
            default_assignor: Assignor::Uniform,
            range_enabled: true,
            uniform_enabled: true,
        }
    }
}

impl ConsumerConfig {
    /// The enabled assignor called `name`.
    fn assignor(&self, name: &str) -> Option<Assignor> {
        match Assignor::from_name(name)? {
            Assignor::Uniform if self.uniform_enabled => Some(Assignor::Uniform),
            Assignor::Range if self.range_enabled => Some(Assignor::Range),
            _ => None,
        }
    }
}

/// Where a member stands relative to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// At the target epoch with everything it should have.
    Stable,
    /// Must give up partitions before advancing to the target epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still hold.
    UnreleasedPartitions,
}

impl MemberState {
    /// The persisted code (Kafka's `MemberState` values).
    pub(crate) fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    /// The state of a persisted code.
    pub(crate) fn from_code(code: i8) -> Option<MemberState> {
        match code {
            0 => Some(MemberState::Stable),
            1 => Some(MemberState::UnrevokedPartitions),
            2 => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    /// Member id (client-generated, ConsumerGroupHeartbeat v1).
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The request's client id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Topics subscribed by name.
    pub subscribed_topic_names: BTreeSet<String>,
    /// Topics subscribed by regular expression (the whole name must match).
    pub subscribed_topic_regex: Option<String>,
    /// The assignor the member asked for.
    pub server_assignor: Option<String>,
    /// How long it may take to revoke partitions.
    pub rebalance_timeout_ms: i32,
    /// Its epoch.
    pub member_epoch: i32,
    /// The epoch before the last advance (a retried heartbeat may carry it).
    pub previous_member_epoch: i32,
    /// Where it stands.
    pub state: MemberState,
    /// What it owns.
    pub assigned: Partitions,
    /// What it must give up.
    pub pending_revocation: Partitions,
    /// When its session expires (not persisted).
    pub session_deadline_ms: i64,
    /// When it is fenced unless it has revoked (not persisted).
    pub revocation_deadline_ms: Option<i64>,
    /// The compiled `subscribed_topic_regex`.
    regex: Option<Regex>,
}

impl ConsumerMember {
    /// A member as its record holds it. Its regex is compiled only when the
    /// group is restored ([`ConsumerGroup::restored`]): decoding a record,
    /// which anyone allowed to write `__consumer_offsets` could have forged,
    /// does no more than read bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        member_id: String,
        instance_id: Option<String>,
        rack_id: Option<String>,
        client_id: String,
        client_host: String,
        subscribed_topic_names: BTreeSet<String>,
        subscribed_topic_regex: Option<String>,
        server_assignor: Option<String>,
        rebalance_timeout_ms: i32,
        member_epoch: i32,
        previous_member_epoch: i32,
        state: MemberState,
        assigned: Partitions,
        pending_revocation: Partitions,
    ) -> ConsumerMember {
        ConsumerMember {
            member_id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            server_assignor,
            rebalance_timeout_ms,
            member_epoch,
            previous_member_epoch,
            state,
            assigned,
            pending_revocation,
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
            regex: None,
        }
    }

    /// The topics of `catalog` it subscribes to: its names, and what its regex
    /// resolved to (`resolved`; nothing before the group resolved it).
    fn subscribed(
        &self,
        catalog: &Catalog,
        resolved: &BTreeMap<String, BTreeSet<String>>,
    ) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = self
            .subscribed_topic_names
            .iter()
            .filter(|t| catalog.contains_key(*t))
            .cloned()
            .collect();
        if let Some(matched) = self
            .subscribed_topic_regex
            .as_ref()
            .and_then(|r| resolved.get(r))
        {
            topics.extend(matched.iter().filter(|t| catalog.contains_key(*t)).cloned());
        }
        topics
    }
}

impl PartialEq for ConsumerMember {
    /// The persisted fields (not the deadlines, not the compiled regex).
    fn eq(&self, o: &Self) -> bool {
        self.member_id == o.member_id
            && self.instance_id == o.instance_id
            && self.rack_id == o.rack_id
            && self.client_id == o.client_id
            && self.client_host == o.client_host
            && self.subscribed_topic_names == o.subscribed_topic_names
            && self.subscribed_topic_regex == o.subscribed_topic_regex
            && self.server_assignor == o.server_assignor
            && self.rebalance_timeout_ms == o.rebalance_timeout_ms
            && self.member_epoch == o.member_epoch
            && self.previous_member_epoch == o.previous_member_epoch
            && self.state == o.state
            && self.assigned == o.assigned
            && self.pending_revocation == o.pending_revocation
    }
}

/// Compiles a subscription regex so that it must match the whole topic name,
/// within a bounded size (a regex larger than that is refused as invalid).
fn compile_regex(regex: &str) -> Result<Regex, GroupError> {
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|_| GroupError::InvalidRegularExpression)
}

/// A ConsumerGroupHeartbeat as the state machine sees it. `None` fields
/// are unchanged since the previous heartbeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    /// Member id.
    pub member_id: String,
    /// Its epoch: 0 joins, -1 leaves, -2 leaves for now (static).
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// Topics subscribed by name.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Topics subscribed by regex ("" removes it).
    pub subscribed_topic_regex: Option<String>,
    /// The assignor asked for.
    pub server_assignor: Option<String>,
    /// What the member owns.
    pub owned: Option<Partitions>,
    /// The request's client id.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatReply {
    /// Member id.
    pub member_id: String,
    /// Its epoch now.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The partitions it owns, when the member needs them.
    pub assignment: Option<Partitions>,
}

/// The state Kafka reports for a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The target is behind the group epoch.
    Assigning,
    /// Some member is not at the target yet.
    Reconciling,
    /// Everyone is at the target.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name (ListGroups, ConsumerGroupDescribe).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A consumer group of the KIP-848 protocol (its offsets live in the
/// enclosing [`Group`](super::state::Group)).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConsumerGroup {
    group_epoch: i32,
    assignment_epoch: i32,
    /// The assignor of the current target.
    assignor: Option<Assignor>,
    members: BTreeMap<String, ConsumerMember>,
    /// Member id → its target.
    target: BTreeMap<String, Partitions>,
    /// The subscribed topics as of the last heartbeat: a change bumps the epoch.
    subscribed: Catalog,
    /// What each subscribed regex matched when last resolved (not persisted:
    /// resolved again after a restart).
    resolved: BTreeMap<String, BTreeSet<String>>,
    /// When the regexes were last resolved, and the topics there were then.
    resolved_at: Option<(i64, BTreeSet<String>)>,
}

/// Kafka's least time between two resolutions of a group's regexes
/// (`REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`): topics created close together
/// join the group's subscription in one epoch.
pub(crate) const REGEX_REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

impl ConsumerGroup {
    /// A group as its record holds it (see [`ConsumerGroup::restored`]).
    pub(crate) fn from_parts(
        group_epoch: i32,
        assignment_epoch: i32,
        assignor: Option<Assignor>,
        members: Vec<ConsumerMember>,
        target: BTreeMap<String, Partitions>,
        subscribed: Catalog,
    ) -> ConsumerGroup {
        let members: BTreeMap<String, ConsumerMember> = members
            .into_iter()
            .map(|m| (m.member_id.clone(), m))
            .collect();
        let target = target
            .into_iter()
            .filter(|(m, _)| members.contains_key(m))
            .collect();
        ConsumerGroup {
            group_epoch,
            assignment_epoch,
            assignor,
            members,
            target,
            subscribed,
            resolved: BTreeMap::new(),
            resolved_at: None,
        }
    }

    /// The group after a restart or failover: members get one session from
    /// `now`, those revoking one rebalance timeout.
    pub(crate) fn restored(mut self, config: &ConsumerConfig, now: i64) -> ConsumerGroup {
        for m in self.members.values_mut() {
            m.regex = m
                .subscribed_topic_regex
                .as_deref()
                .and_then(|r| compile_regex(r).ok());
            m.session_deadline_ms = now + i64::from(config.session_timeout_ms);
            m.revocation_deadline_ms = (m.state == MemberState::UnrevokedPartitions)
                .then(|| now + i64::from(m.rebalance_timeout_ms));
        }
        self
    }

    /// The subscribed topics (id, partition count) the target was computed for.
    pub(crate) fn subscribed_metadata(&self) -> &Catalog {
        &self.subscribed
    }

    /// The group epoch.
    pub(crate) fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The epoch of the target assignment.
    pub(crate) fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The assignor of the current target.
    pub(crate) fn assignor(&self) -> Option<Assignor> {
        self.assignor
    }

    /// Members by id.
    pub(crate) fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    /// A member by id.
    #[cfg(test)]
    pub(crate) fn member(&self, member_id: &str) -> Option<&ConsumerMember> {
        self.members.get(member_id)
    }

    /// Number of members.
    pub(crate) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// A member's target.
    pub(crate) fn target(&self, member_id: &str) -> Option<&Partitions> {
        self.target.get(member_id)
    }

    /// Every member's target.
    pub(crate) fn targets(&self) -> &BTreeMap<String, Partitions> {
        &self.target
    }

    /// The state Kafka reports.
    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.member_epoch >= 0
                && (m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Topics any member subscribes to (by name or resolved regex) in `catalog`.
    pub(crate) fn subscribed_topics(&self, catalog: &Catalog) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed(catalog, &self.resolved))
            .collect()
    }

    /// Resolves the members' regexes against `catalog`, as Kafka does
    /// asynchronously: a regex new to the group is resolved at the next
    /// heartbeat after the one that brought it (`fresh`), and when topics
    /// come or go every regex is resolved again, at most once per
    /// [`REGEX_REFRESH_MIN_INTERVAL_MS`].
    fn resolve_regexes(&mut self, catalog: &Catalog, fresh: Option<&str>, now: i64) {
        let used: BTreeMap<String, Regex> = self
            .members
            .values()
            .filter_map(|m| Some((m.subscribed_topic_regex.clone()?, m.regex.clone()?)))
            .collect();
        self.resolved.retain(|r, _| used.contains_key(r));
        let names: BTreeSet<String> = catalog.keys().cloned().collect();
        let new: Vec<&String> = used
            .keys()
            .filter(|r| !self.resolved.contains_key(*r) && Some(r.as_str()) != fresh)
            .collect();
        let stale = match &self.resolved_at {
            Some((at, topics)) => *topics != names && now - *at >= REGEX_REFRESH_MIN_INTERVAL_MS,
            None => true,
        };
        let refresh = stale && !self.resolved.is_empty();
        if new.is_empty() && !refresh {
            return;
        }
        let all = stale || self.resolved_at.is_none();
        for (text, regex) in &used {
            if Some(text.as_str()) == fresh && !self.resolved.contains_key(text) {
                continue;
            }
            if all || !self.resolved.contains_key(text) {
                let matched = names
                    .iter()
                    .filter(|t| regex.is_match(t))
                    .cloned()
                    .collect();
                self.resolved.insert(text.clone(), matched);
            }
        }
        if all {
            self.resolved_at = Some((now, names));
        }
    }

    /// Topics named in the members' subscriptions (regexes aside).
    pub(crate) fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect()
    }

    /// Handles a ConsumerGroupHeartbeat. The flag says whether the group
    /// changed (and must be persisted before the reply is sent).
    pub(crate) fn heartbeat(
        &mut self,
        req: Heartbeat,
        catalog: &Catalog,
        config: &ConsumerConfig,
        now: i64,
    ) -> Result<(HeartbeatReply, bool), GroupError> {
        if let Some(assignor) = req.server_assignor.as_deref() {
            if config.assignor(assignor).is_none() {
                return Err(GroupError::UnsupportedAssignor);
            }
        }
        let regex = match req.subscribed_topic_regex.as_deref() {
            Some("") | None => None,
            Some(r) => Some(compile_regex(r)?),
        };
        match req.member_epoch {
            LEAVE_EPOCH => return self.leave(&req.member_id),
            STATIC_LEAVE_EPOCH => return self.leave_for_now(&req, config, now),
            _ => {}
        }
        let mut changed = false;
        let mut bump = false;
        let member_id = req.member_id.clone();
        if req.member_epoch == 0 {
            match self.join(&req, config, now)? {
                Joined::Again => {}
                Joined::New => bump = true,
                Joined::Returned => changed = true,
            }
        } else {
            let m = self
                .members
                .get(&member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            // The instance id is sent when it changed (null: unchanged).
            if req.instance_id.is_some() && m.instance_id != req.instance_id {
                return Err(GroupError::FencedInstanceId);
            }
            check_epoch(m, req.member_epoch, req.owned.as_ref())?;
        }
        let m = self
            .members
            .get_mut(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        // A regex this heartbeat brings that the group has not resolved yet
        // is resolved at the next heartbeat (Kafka resolves it asynchronously).
        let fresh = req
            .subscribed_topic_regex
            .clone()
            .filter(|r| !r.is_empty() && m.subscribed_topic_regex.as_ref() != Some(r))
            .filter(|r| !self.resolved.contains_key(r));
        m.session_deadline_ms = now + i64::from(config.session_timeout_ms);
        if let Some(rack) = req.rack_id.clone() {
            changed |= m.rack_id.as_ref() != Some(&rack);
            m.rack_id = Some(rack);
        }
        if req.rebalance_timeout_ms >= 0 && m.rebalance_timeout_ms != req.rebalance_timeout_ms {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            changed = true;
        }
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                bump = true;
            }
        }
        if let Some(r) = &req.subscribed_topic_regex {
            let r = Some(r.clone()).filter(|r| !r.is_empty());
            if r != m.subscribed_topic_regex {
                m.subscribed_topic_regex = r;
                m.regex = regex;
                bump = true;
            }
        }
        if let Some(a) = &req.server_assignor {
            if m.server_assignor.as_ref() != Some(a) {
                m.server_assignor = Some(a.clone());
                bump = true;
            }
        }
        if !req.client_id.is_empty() && m.client_id != req.client_id {
            m.client_id = req.client_id.clone();
            changed = true;
        }
        self.resolve_regexes(catalog, fresh.as_deref(), now);
        let subscribed: Catalog = self
            .subscribed_topics(catalog)
            .into_iter()
            .filter_map(|t| catalog.get(&t).map(|v| (t, *v)))
            .collect();
        if subscribed != self.subscribed {
            self.subscribed = subscribed;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            changed = true;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(catalog, config);
            changed = true;
        }
        let before = self.members.get(&member_id).map(|m| {
            (
                m.member_epoch,
                m.state,
                m.assigned.clone(),
                m.pending_revocation.clone(),
            )
        });
        self.reconcile(&member_id, req.owned.as_ref(), now);
        let m = self
            .members
            .get(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let after = (
            m.member_epoch,
            m.state,
            m.assigned.clone(),
            m.pending_revocation.clone(),
        );
        let moved = before.as_ref() != Some(&after);
        changed |= moved;
        let send_assignment = req.member_epoch == 0
            || req.owned.is_some()
            || before.is_none_or(|b| b.0 != after.0 || b.2 != after.2);
        Ok((
            HeartbeatReply {
                member_id,
                member_epoch: m.member_epoch,
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                assignment: send_assignment.then(|| m.assigned.clone()),
            },
            changed,
        ))
    }

    /// A heartbeat with epoch 0: a new member, the same member retrying its
    /// join, or a static member taking its instance id back.
    fn join(
        &mut self,
        req: &Heartbeat,
        config: &ConsumerConfig,
        now: i64,
    ) -> Result<Joined, GroupError> {
        if self.members.contains_key(&req.member_id) {
            return Ok(Joined::Again);
        }
        if let Some(instance) = &req.instance_id {
            let previous = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| (m.member_id.clone(), m.member_epoch));
            if let Some((old_id, old_epoch)) = previous {
                if old_epoch != STATIC_LEAVE_EPOCH {
                    return Err(GroupError::UnreleasedInstanceId);
                }
                // The instance comes back: it takes over the old member's
                // partitions and epoch (its previous epoch, from before it left).
                let mut m = self.members.remove(&old_id).expect("found above");
                m.member_id = req.member_id.clone();
                m.member_epoch = m.previous_member_epoch;
                m.client_host = req.client_host.clone();
                if let Some(target) = self.target.remove(&old_id) {
                    self.target.insert(req.member_id.clone(), target);
                }
                self.members.insert(req.member_id.clone(), m);
                return Ok(Joined::Returned);
            }
        }
        let size = self.members.len();
        if size >= usize::try_from(config.max_size).unwrap_or(usize::MAX) {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let mut m = ConsumerMember::new(
            req.member_id.clone(),
            req.instance_id.clone(),
            req.rack_id.clone(),
            req.client_id.clone(),
            req.client_host.clone(),
            BTreeSet::new(),
            None,
            None,
            req.rebalance_timeout_ms.max(0),
            0,
            0,
            MemberState::Stable,
            Partitions::new(),
            Partitions::new(),
        );
        m.session_deadline_ms = now + i64::from(config.session_timeout_ms);
        self.members.insert(req.member_id.clone(), m);
        Ok(Joined::New)
    }

    /// A heartbeat with epoch -1.
    fn leave(&mut self, member_id: &str) -> Result<(HeartbeatReply, bool), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove(member_id);
        Ok((
            HeartbeatReply {
                member_id: member_id.to_string(),
                member_epoch: LEAVE_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            true,
        ))
    }

    /// A heartbeat with epoch -2: the static member keeps its partitions
    /// until its session expires or its instance id rejoins.
    fn leave_for_now(
        &mut self,
        req: &Heartbeat,
        config: &ConsumerConfig,
        now: i64,
    ) -> Result<(HeartbeatReply, bool), GroupError> {
        let m = self
            .members
            .get_mut(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if m.instance_id.is_none() || m.instance_id != req.instance_id {
            return Err(GroupError::FencedInstanceId);
        }
        if m.member_epoch != STATIC_LEAVE_EPOCH {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = STATIC_LEAVE_EPOCH;
        }
        m.revocation_deadline_ms = None;
        m.session_deadline_ms = now + i64::from(config.session_timeout_ms);
        Ok((
            HeartbeatReply {
                member_id: req.member_id.clone(),
                member_epoch: STATIC_LEAVE_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            true,
        ))
    }

    /// Removes a member; the others get a new target at their next heartbeat.
    fn remove(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
            // A regex no member uses any more is forgotten: subscribing to it
            // again resolves it anew.
            let members = &self.members;
            self.resolved.retain(|r, _| {
                members
                    .values()
                    .any(|m| m.subscribed_topic_regex.as_ref() == Some(r))
            });
        }
    }

    /// Computes the target for the group epoch.
    fn compute_target(&mut self, catalog: &Catalog, config: &ConsumerConfig) {
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.subscribed(catalog, &self.resolved)))
            .collect();
        let topics: BTreeMap<String, i32> = self
            .subscribed
            .iter()
            .map(|(t, (_, count))| (t.clone(), *count))
            .collect();
        let assignor = self.choose_assignor(config);
        self.target = assignor.assign(&subscriptions, &topics, &self.target);
        self.target.retain(|_, p| !p.is_empty());
        self.assignor = Some(assignor);
        self.assignment_epoch = self.group_epoch;
    }

    /// The assignor most members ask for (ties: the configured order), or the default.
    fn choose_assignor(&self, config: &ConsumerConfig) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m
                .server_assignor
                .as_deref()
                .and_then(|n| config.assignor(n))
            {
                *votes.entry(a).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        if best == 0 {
            return config.default_assignor;
        }
        if votes.get(&config.default_assignor) == Some(&best) {
            return config.default_assignor;
        }
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(a, _)| a)
            .unwrap_or(config.default_assignor)
    }

    /// Moves a member toward its target (see `reconcile.rs`).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now: i64) {
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        if m.member_epoch < 0 {
            return;
        }
        match m.state {
            MemberState::Stable if m.member_epoch == self.assignment_epoch => return,
            MemberState::UnrevokedPartitions
                if reconcile::owns_any(owned, &m.pending_revocation) =>
            {
                return
            }
            _ => {}
        }
        let empty = Partitions::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let held = |topic: &str, p: i32| {
            self.members.values().any(|o| {
                o.member_id != member_id
                    && (o.assigned.get(topic).is_some_and(|s| s.contains(&p))
                        || o.pending_revocation
                            .get(topic)
                            .is_some_and(|s| s.contains(&p)))
            })
        };
        let next = reconcile::next(
            m.member_epoch,
            &m.assigned,
            self.assignment_epoch,
            target,
            owned,
            held,
        );
        let m = self
            .members
            .get_mut(member_id)
            .expect("member checked above");
        if next.epoch != m.member_epoch {
            m.previous_member_epoch = m.member_epoch;
        }
        m.revocation_deadline_ms = match next.state {
            MemberState::UnrevokedPartitions => Some(
                m.revocation_deadline_ms
                    .unwrap_or(now + i64::from(m.rebalance_timeout_ms)),
            ),
            _ => None,
        };
        m.member_epoch = next.epoch;
        m.state = next.state;
        m.assigned = next.assigned;
        m.pending_revocation = next.pending_revocation;
    }

    /// OffsetCommit by a member: its epoch must be the member's (lower:
    /// STALE_MEMBER_EPOCH, higher: FENCED_MEMBER_EPOCH). Without members,
    /// commits with a negative epoch are accepted (admin tools, consumers
    /// outside the group).
    pub(crate) fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        compare_epoch(epoch, m.member_epoch)
    }

    /// OffsetFetch naming a member: as a commit; without a member id, any.
    pub(crate) fn validate_fetch(
        &self,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        if epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        compare_epoch(epoch, m.member_epoch)
    }

    /// The earliest session or revocation deadline.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.session_deadline_ms).chain(m.revocation_deadline_ms))
            .min()
    }

    /// Removes members whose session expired or who did not revoke within
    /// their rebalance timeout; returns their ids.
    pub(crate) fn on_timer(&mut self, now: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now || m.revocation_deadline_ms.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired
    }
}

/// What a heartbeat with epoch 0 did.
enum Joined {
    /// The member was already in the group (its earlier join's answer was lost).
    Again,
    /// A new member (the group epoch goes up).
    New,
    /// A static member took its instance id back, with its partitions and epoch.
    Returned,
}

/// A heartbeat's epoch against the member's: equal, or the previous epoch
/// with owned partitions that the member still has (its last answer was lost).
fn check_epoch(
    m: &ConsumerMember,
    epoch: i32,
    owned: Option<&Partitions>,
) -> Result<(), GroupError> {
    if epoch == m.member_epoch {
        return Ok(());
    }
    if epoch < m.member_epoch
        && epoch == m.previous_member_epoch
        && reconcile::is_subset(owned, &m.assigned)
    {
        return Ok(());
    }
    Err(GroupError::FencedMemberEpoch)
}

fn compare_epoch(received: i32, expected: i32) -> Result<(), GroupError> {
    match received.cmp(&expected) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(GroupError::StaleMemberEpoch),
        std::cmp::Ordering::Greater => Err(GroupError::FencedMemberEpoch),
    }
}

#[cfg(test)]
#[path = "../consumer_tests.rs"]
mod tests;
