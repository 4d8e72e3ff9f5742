//! The vocabulary of consumer groups: what goes into the state machine
//! ([`JoinRequest`], [`SyncRequest`], [`LeavingMember`]), what comes out of it
//! ([`JoinReply`], [`SyncReply`], the [`Action`]s the runtime must carry out,
//! the outcomes they answer with) and what the coordinator hands to the API
//! handlers ([`JoinResult`], [`CommitEntry`], [`GroupListing`]). Plain data,
//! no behaviour beyond naming a [`GroupState`] the way Kafka does.

use bytes::Bytes;

use super::error::GroupError;

/// The state of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
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
pub(crate) struct SyncRequest {
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
pub(crate) struct LeavingMember {
    /// Member id ("" with an instance id: the instance's current member).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// A member as sent to the leader in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A successful JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinOutcome {
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
pub(crate) struct SyncOutcome {
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// The immediate answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JoinReply {
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
pub(crate) enum SyncReply {
    /// Answer now.
    Now(Result<SyncOutcome, GroupError>),
    /// Parked: a [`Action::SyncResponse`] for this member answers it later.
    Parked,
}

/// What the caller must do after a transition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
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

/// How a JoinGroup ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JoinResult {
    /// Joined a generation.
    Joined(JoinOutcome),
    /// JoinGroup v4+: retry with this member id.
    MemberIdRequired(String),
    /// Refused.
    Failed(GroupError),
}

/// One partition to commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset, leader epoch and metadata (timestamp set by the coordinator).
    pub offset: i64,
    /// Leader epoch the client saw.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// A group in ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" for offset-only groups).
    pub protocol_type: String,
    /// State, as Kafka names it for the group's type.
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}
