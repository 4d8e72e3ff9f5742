//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848): the
//! transition runs under the groups lock with the cluster's topics as the
//! catalog; a heartbeat that changed the group is answered once its record is
//! durable (fsynced and replicated), as Kafka answers after its write.

use super::{Coordinator, Entry};
use crate::group::consumer::{Catalog, ConsumerGroup, Heartbeat, HeartbeatReply};
use crate::group::error::GroupError;
use crate::group::placement::OFFSETS_TOPIC;
use crate::group::state::Group;
use crate::group::store;
use crate::runtime::now_ms;

impl Coordinator {
    /// The topics a consumer group may subscribe to: name → (id, partitions).
    pub(crate) fn topic_catalog(&self) -> Catalog {
        match &*self.catalog.read() {
            Some(state) => state
                .borrow()
                .topics
                .values()
                .filter(|t| t.name != OFFSETS_TOPIC)
                .map(|t| (t.name.clone(), (t.id, t.partitions.len() as i32)))
                .collect(),
            None => self
                .topics
                .list()
                .into_iter()
                .filter(|t| t.name != OFFSETS_TOPIC)
                .map(|t| (t.name.clone(), (t.id, t.partition_count())))
                .collect(),
        }
    }

    /// Handles ConsumerGroupHeartbeat against `catalog` (from
    /// [`Coordinator::topic_catalog`]: the caller maps the request's and the
    /// reply's topic ids with the same one).
    pub(crate) async fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: Heartbeat,
        catalog: &Catalog,
    ) -> Result<HeartbeatReply, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let (reply, durable) = {
            let mut groups = self.groups.lock();
            if !groups.contains_key(group_id) {
                if req.member_epoch != 0 {
                    return Err(GroupError::GroupIdNotFound);
                }
                groups.insert(
                    group_id.to_string(),
                    Entry::new(Group::new(group_id, self.config, now)),
                );
            }
            let entry = groups
                .get_mut(group_id)
                .ok_or(GroupError::CoordinatorNotAvailable)?;
            let member = req.member_id.clone();
            let epoch = req.member_epoch;
            let assigned_before = entry.group.consumer().map(|c| c.assignment_epoch());
            let result = entry.group.consumer_heartbeat(req, catalog, now);
            tracing::debug!(group = group_id, member = %member, epoch, result = ?result,
                "ConsumerGroupHeartbeat");
            let (reply, changed) = match result {
                Ok(r) => r,
                Err(err) => {
                    if entry.group.is_removable() && entry.group.member_count() == 0 {
                        groups.remove(group_id);
                    }
                    return Err(err);
                }
            };
            let durable = if changed {
                let record = store::group_record(&entry.group);
                Some(self.store.append(group_id, &[record], now)?)
            } else {
                None
            };
            if let Some(c) = entry.group.consumer() {
                // A new target assignment is this protocol's rebalance.
                if assigned_before.unwrap_or(0) != c.assignment_epoch() {
                    self.rebalances.with_label_values(&[group_id]).inc();
                    tracing::info!(
                        group = group_id,
                        epoch = c.assignment_epoch(),
                        members = c.member_count(),
                        assignor = c.assignor().map(|a| a.name()).unwrap_or_default(),
                        "consumer group assigned"
                    );
                }
            }
            (reply, durable)
        };
        self.wake.notify_one();
        if let Some(durable) = durable {
            durable.wait(self.flush).await?;
        }
        Ok(reply)
    }

    /// The consumer-protocol state of a group, for ConsumerGroupDescribe:
    /// GROUP_ID_NOT_FOUND for an unknown group or one of the classic protocol.
    pub(crate) fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<(ConsumerGroup, Catalog), GroupError> {
        self.check(group_id)?;
        let groups = self.groups.lock();
        let group = groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        let consumer = group
            .group
            .consumer()
            .cloned()
            .ok_or(GroupError::NotAConsumerGroup)?;
        drop(groups);
        Ok((consumer, self.topic_catalog()))
    }
}
