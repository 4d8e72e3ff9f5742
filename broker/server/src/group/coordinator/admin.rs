//! ListGroups, DescribeGroups (a copy of one group) and DeleteGroups.

use bytes::Bytes;

use super::Coordinator;
use crate::group::error::GroupError;
use crate::group::messages::{GroupListing, GroupState};
use crate::group::state::Group;
use crate::group::store;
use crate::runtime::now_ms;

impl Coordinator {
    /// Every live group.
    pub(crate) fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        self.check_loaded()?;
        let groups = self.groups.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|e| e.group.state() != GroupState::Dead)
            .map(|e| GroupListing {
                group_id: e.group.id().to_string(),
                protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                state: e.group.state_name(),
                group_type: e.group.group_type(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// A copy of a group (DescribeGroups); `None` if it does not exist.
    pub(crate) fn snapshot(&self, group_id: &str) -> Result<Option<Group>, GroupError> {
        self.check(group_id)?;
        Ok(self.groups.lock().get(group_id).map(|e| e.group.clone()))
    }

    /// Handles DeleteGroups for one group: only an empty group may go; its
    /// offsets and metadata get tombstones.
    pub(crate) async fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let durable = {
            let mut groups = self.groups.lock();
            let entry = groups
                .get_mut(group_id)
                .ok_or(GroupError::GroupIdNotFound)?;
            if entry.group.state() != GroupState::Empty {
                return Err(if entry.group.state() == GroupState::Dead {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::NonEmptyGroup
                });
            }
            let mut recs: Vec<(Bytes, Option<Bytes>)> = entry
                .group
                .offsets()
                .keys()
                .map(|(t, p)| store::offset_tombstone(group_id, t, *p))
                .collect();
            recs.push(store::group_tombstone(group_id));
            let durable = self.store.append(group_id, &recs, now)?;
            entry.group.delete(now)?;
            groups.remove(group_id);
            durable
        };
        let _ = self.rebalances.remove_label_values(&[group_id]);
        tracing::info!(group = group_id, "deleted group");
        durable.wait(self.flush).await
    }
}
