//! LeaveGroup: members (by id or by `group.instance.id`) leave the group.

use super::Group;
use crate::group::error::GroupError;
use crate::group::messages::{Action, GroupState, LeavingMember};

impl Group {
    /// Handles LeaveGroup: one result per leaving member, in request order.
    pub(crate) fn leave(
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
}
