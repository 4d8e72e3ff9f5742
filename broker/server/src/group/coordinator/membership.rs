//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: each runs its transition
//! of the group's state machine under the groups lock; JoinGroup and
//! SyncGroup answers may stay parked until the group moves on.

use tokio::sync::oneshot;

use super::{Coordinator, Entry, Waiting};
use crate::group::error::GroupError;
use crate::group::messages::{
    JoinReply, JoinRequest, JoinResult, LeavingMember, SyncOutcome, SyncReply, SyncRequest,
};
use crate::group::state::Group;
use crate::runtime::now_ms;

impl Coordinator {
    /// Handles JoinGroup (the transition runs now; the answer may be parked).
    pub(crate) fn join(&self, group_id: &str, mut req: JoinRequest) -> Waiting<JoinResult> {
        if let Err(err) = self.check(group_id) {
            return Waiting::Ready(JoinResult::Failed(err));
        }
        let now = now_ms();
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        req.new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        let mut groups = self.groups.lock();
        if !groups.contains_key(group_id) {
            if !req.member_id.is_empty() {
                return Waiting::Ready(JoinResult::Failed(GroupError::UnknownMemberId));
            }
            groups.insert(
                group_id.to_string(),
                Entry::new(Group::new(group_id, self.config, now)),
            );
        }
        let Some(entry) = groups.get_mut(group_id) else {
            return Waiting::Ready(JoinResult::Failed(GroupError::CoordinatorNotAvailable));
        };
        let (sent, instance) = (req.member_id.clone(), req.group_instance_id.clone());
        let (reply, actions) = entry.group.join(req, now);
        tracing::debug!(group = group_id, member = %sent, instance = ?instance, reply = ?reply,
            state = entry.group.state().as_str(), "JoinGroup");
        let waiting = match reply {
            JoinReply::Now(Ok(outcome)) => Waiting::Ready(JoinResult::Joined(outcome)),
            JoinReply::Now(Err(err)) => Waiting::Ready(JoinResult::Failed(err)),
            JoinReply::MemberIdRequired { member_id } => {
                Waiting::Ready(JoinResult::MemberIdRequired(member_id))
            }
            JoinReply::Parked { member_id } => {
                let (tx, rx) = oneshot::channel();
                if let Some(older) = entry.joins.insert(member_id, tx) {
                    let _ = older.send(JoinResult::Failed(GroupError::RebalanceInProgress));
                }
                Waiting::Parked(rx, self.shutdown.clone())
            }
        };
        self.execute(entry, actions, now);
        if entry.group.is_removable() && !entry.group.has_pending_members() {
            // A refused first join must not leave an empty group behind.
            groups.remove(group_id);
        }
        drop(groups);
        self.wake.notify_one();
        waiting
    }

    /// Handles SyncGroup.
    pub(crate) fn sync(
        &self,
        group_id: &str,
        req: SyncRequest,
    ) -> Waiting<Result<SyncOutcome, GroupError>> {
        if let Err(err) = self.check(group_id) {
            return Waiting::Ready(Err(err));
        }
        let now = now_ms();
        let mut groups = self.groups.lock();
        let Some(entry) = groups.get_mut(group_id) else {
            return Waiting::Ready(Err(GroupError::UnknownMemberId));
        };
        let member_id = req.member_id.clone();
        let generation = req.generation_id;
        let (reply, actions) = entry.group.sync(req, now);
        tracing::debug!(group = group_id, member = %member_id, generation, reply = ?reply,
            state = entry.group.state().as_str(), "SyncGroup");
        let waiting = match reply {
            SyncReply::Now(result) => Waiting::Ready(result),
            SyncReply::Parked => {
                let (tx, rx) = oneshot::channel();
                if let Some(older) = entry.syncs.insert(member_id, tx) {
                    let _ = older.send(Err(GroupError::RebalanceInProgress));
                }
                Waiting::Parked(rx, self.shutdown.clone())
            }
        };
        self.execute(entry, actions, now);
        drop(groups);
        self.wake.notify_one();
        waiting
    }

    /// Handles Heartbeat.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut groups = self.groups.lock();
        let entry = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let result = entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, now);
        if result.is_err() {
            tracing::debug!(group = group_id, member = member_id, generation_id, result = ?result, "Heartbeat");
        }
        result
    }

    /// Handles LeaveGroup: one result per member.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check(group_id)?;
        let now = now_ms();
        let mut groups = self.groups.lock();
        let Some(entry) = groups.get_mut(group_id) else {
            return Ok(members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        let (results, actions) = entry.group.leave(members, now);
        tracing::debug!(group = group_id, members = ?members, results = ?results, "LeaveGroup");
        self.execute(entry, actions, now);
        drop(groups);
        self.wake.notify_one();
        Ok(results)
    }
}
