//! Deadlines: pending member ids, sessions, the join barrier's rebalance
//! timeout and initial delay, and the sync deadline.

use super::Group;
use crate::group::messages::{Action, GroupState};

impl Group {
    /// The earliest time at which [`Group::on_timer`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
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
            .chain(self.consumer_deadline())
            .min()
    }

    /// Runs timeouts due at `now`: pending member ids and sessions expire,
    /// the join barrier is forced at the rebalance timeout, members that do
    /// not sync in time are removed.
    pub(crate) fn on_timer(&mut self, now: i64) -> Vec<Action> {
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
        actions.extend(self.consumer_timers(now));
        actions
    }
}
