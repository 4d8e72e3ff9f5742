//! A group's rules for its committed offsets: which OffsetCommit it accepts,
//! which offsets OffsetDelete may remove, DeleteGroups, and retention.

use std::collections::HashSet;

use super::Group;
use crate::group::error::GroupError;
use crate::group::member::{subscription_topics, CONSUMER_PROTOCOL_TYPE};
use crate::group::messages::GroupState;
use crate::group::offsets::CommittedOffset;

impl Group {
    /// Checks an OffsetCommit against the group (and counts as a heartbeat).
    pub(crate) fn validate_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(consumer) = &self.consumer {
            return consumer.validate_commit(member_id, generation_id);
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
    pub(crate) fn commit_offset(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        self.offsets.commit(topic, partition, offset);
    }

    /// Forgets a committed offset (replay of a tombstone); true if it existed.
    pub(crate) fn remove_offset(&mut self, topic: &str, partition: i32) -> bool {
        self.offsets.remove(topic, partition)
    }

    /// Topics the members subscribe to, from their consumer-protocol
    /// metadata; `None` when the group does not use the consumer protocol.
    pub(crate) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if let Some(consumer) = &self.consumer {
            return Some(consumer.subscribed_topic_names().into_iter().collect());
        }
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
    pub(crate) fn delete_offsets(
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
    pub(crate) fn delete(&mut self, now: i64) -> Result<Vec<(String, i32)>, GroupError> {
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
    pub(crate) fn expire_offsets(&mut self, now: i64, retention_ms: i64) -> Vec<(String, i32)> {
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
}
