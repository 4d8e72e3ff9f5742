//! The one error type of the group subsystem: every refusal of the state
//! machine and the coordinator, each naming the Kafka error it stands for.

/// A group-protocol error; `errors.rs` maps each to its Kafka code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GroupError {
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
    /// Commit metadata longer than
    /// [`MAX_OFFSET_METADATA_BYTES`](super::offsets::MAX_OFFSET_METADATA_BYTES).
    #[error("the commit metadata is too large")]
    OffsetMetadataTooLarge,
    /// ConsumerGroupHeartbeat for a group of the classic protocol with members
    /// (Kafka answers GROUP_ID_NOT_FOUND).
    #[error("the group uses the classic protocol and has members")]
    NotAConsumerGroup,
    /// The member's epoch is ahead of or unrelated to the coordinator's.
    #[error("the member epoch is fenced; the member must rejoin with epoch 0")]
    FencedMemberEpoch,
    /// The member's epoch is behind the coordinator's (OffsetCommit/OffsetFetch).
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    /// The static member's instance id is held by a member that has not left.
    #[error("the group.instance.id is still used by another member")]
    UnreleasedInstanceId,
    /// An assignor the broker does not run (group_consumer_assignors).
    #[error("the assignor is not one of group_consumer_assignors")]
    UnsupportedAssignor,
    /// group_consumer_max_size members already.
    #[error("the group has group_consumer_max_size members")]
    GroupMaxSizeReached,
    /// The subscription regex does not compile.
    #[error("the subscription regex is not a valid regular expression")]
    InvalidRegularExpression,
}
