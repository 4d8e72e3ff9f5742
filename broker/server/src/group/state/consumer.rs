//! A group of the consumer protocol (KIP-848) inside a [`Group`]: which
//! protocol a group id speaks, ConsumerGroupHeartbeat, and the rules the
//! classic requests follow for it. An empty group changes protocol with the
//! first member of the other one (as Kafka converts an empty group); a group
//! with members refuses the other protocol.

use super::Group;
use crate::group::consumer::{Catalog, ConsumerGroup, Heartbeat, HeartbeatReply};
use crate::group::error::GroupError;
use crate::group::member::CONSUMER_PROTOCOL_TYPE;
use crate::group::messages::{Action, GroupState};

impl Group {
    /// The consumer-protocol part, if the group speaks it.
    pub(crate) fn consumer(&self) -> Option<&ConsumerGroup> {
        self.consumer.as_ref()
    }

    /// "consumer" for a group of the KIP-848 protocol, "classic" otherwise.
    pub(crate) fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else {
            "classic"
        }
    }

    /// The state as Kafka names it for the group's type.
    pub(crate) fn state_name(&self) -> &'static str {
        match (&self.consumer, self.state) {
            (_, GroupState::Dead) => GroupState::Dead.as_str(),
            (Some(c), _) => c.state().as_str(),
            (None, state) => state.as_str(),
        }
    }

    /// Handles ConsumerGroupHeartbeat; the flag says the group changed and
    /// must be persisted before the reply goes out.
    pub(crate) fn consumer_heartbeat(
        &mut self,
        req: Heartbeat,
        catalog: &Catalog,
        now: i64,
    ) -> Result<(HeartbeatReply, bool), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if self.consumer.is_none() {
            if !self.members.is_empty() || self.state != GroupState::Empty {
                return Err(GroupError::NotAConsumerGroup);
            }
            if req.member_epoch != 0 {
                return Err(GroupError::GroupIdNotFound);
            }
            self.consumer = Some(ConsumerGroup::default());
            self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
            self.protocol_name = None;
            self.leader = None;
        }
        let config = self.config.consumer;
        let consumer = self.consumer.as_mut().expect("set above");
        let result = consumer.heartbeat(req, catalog, &config, now);
        self.follow_consumer_members(now);
        result
    }

    /// Empty without consumer members, Stable with them (the classic states
    /// that offset retention and DeleteGroups go by).
    fn follow_consumer_members(&mut self, now: i64) {
        let members = self.consumer.as_ref().map_or(0, |c| c.member_count());
        match (self.state, members) {
            (GroupState::Empty, n) if n > 0 => self.set_state(GroupState::Stable, now),
            (GroupState::Stable, 0) => self.set_state(GroupState::Empty, now),
            _ => {}
        }
    }

    /// A classic JoinGroup may take over an empty consumer group; one with
    /// members refuses it.
    pub(crate) fn release_consumer_protocol(&mut self) -> Result<(), GroupError> {
        match &self.consumer {
            Some(c) if c.member_count() > 0 => Err(GroupError::InconsistentGroupProtocol),
            Some(_) => {
                self.consumer = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Session and revocation deadlines of consumer members.
    pub(crate) fn consumer_deadline(&self) -> Option<i64> {
        self.consumer.as_ref().and_then(|c| c.next_deadline())
    }

    /// Expires consumer members; persists the group when any went.
    pub(crate) fn consumer_timers(&mut self, now: i64) -> Vec<Action> {
        let Some(consumer) = self.consumer.as_mut() else {
            return Vec::new();
        };
        if consumer.on_timer(now).is_empty() {
            return Vec::new();
        }
        self.follow_consumer_members(now);
        vec![Action::PersistGroup]
    }

    /// OffsetFetch from a member of a consumer group (v9 names it).
    pub(crate) fn validate_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        match &self.consumer {
            Some(c) => c.validate_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }
}
