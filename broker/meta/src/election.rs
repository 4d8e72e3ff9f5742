//! Partition leader election and reassignment completion as pure functions
//! over one [`PartitionMeta`] (Kafka's PartitionChangeBuilder). A change is
//! made on a copy and [`finish`] decides the epochs: a new leader bumps the
//! leader epoch, any change bumps the partition epoch, no change bumps nothing.

use crate::types::{BrokerId, PartitionMeta, NO_LEADER};

/// Whether a replica may lead or stay in sync: it is registered and unfenced.
pub(crate) trait Liveness {
    /// True when `broker` is registered and unfenced.
    fn is_live(&self, broker: BrokerId) -> bool;
}

impl<F: Fn(BrokerId) -> bool> Liveness for F {
    fn is_live(&self, broker: BrokerId) -> bool {
        self(broker)
    }
}

/// Compares `changed` with `before` and sets its epochs; returns `None` when
/// nothing changed (the caller then keeps `before` and reports no change).
pub(crate) fn finish(before: &PartitionMeta, mut changed: PartitionMeta) -> Option<PartitionMeta> {
    changed.leader_epoch = before.leader_epoch;
    changed.partition_epoch = before.partition_epoch;
    if changed == *before {
        return None;
    }
    if changed.leader != before.leader {
        changed.leader_epoch = before.leader_epoch.saturating_add(1);
    }
    changed.partition_epoch = before.partition_epoch.saturating_add(1);
    Some(changed)
}

/// The first replica, in replica order, that is in the ISR and live.
pub(crate) fn first_live_in_isr(p: &PartitionMeta, live: &impl Liveness) -> Option<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .find(|&r| p.isr.contains(&r) && live.is_live(r))
}

/// Gives the partition a live ISR leader when its current one is gone (none,
/// fenced, or out of the ISR): the first live ISR member in replica order;
/// failing that, when `unclean` is allowed, the first live replica with the
/// ISR reset to just it (it may lack acknowledged records); else no leader.
pub(crate) fn elect_if_needed(p: &mut PartitionMeta, live: &impl Liveness, unclean: bool) {
    if p.leader != NO_LEADER && live.is_live(p.leader) && p.isr.contains(&p.leader) {
        return;
    }
    if let Some(leader) = first_live_in_isr(p, live) {
        p.leader = leader;
    } else if let Some(leader) = p
        .replicas
        .iter()
        .copied()
        .find(|&r| unclean && live.is_live(r))
    {
        p.leader = leader;
        p.isr = vec![leader];
    } else {
        p.leader = NO_LEADER;
    }
}

/// Removes `broker` from the ISR unless it is the last member: Kafka keeps
/// the last one so that it is known which replica has every acknowledged
/// record, and the partition can come back when that broker does.
pub(crate) fn shrink_isr_without(p: &mut PartitionMeta, broker: BrokerId) {
    if p.isr.contains(&broker) && p.isr.len() > 1 {
        p.isr.retain(|&r| r != broker);
    }
}

/// Moves `broker`, which is in controlled shutdown, out of the partition's
/// way (Kafka's controller does the same for a broker that asked to shut
/// down): where it leads and another in-sync replica is `eligible`, that one
/// (the first in replica order) takes over and `broker` leaves the ISR; where
/// it leads as the only eligible in-sync replica it keeps leading and stays
/// in the ISR (moving would lose acknowledged records or the partition);
/// where it follows it leaves the ISR unless it is the last member.
pub(crate) fn move_off_for_shutdown(
    p: &mut PartitionMeta,
    broker: BrokerId,
    eligible: &impl Liveness,
) {
    if !p.replicas.contains(&broker) {
        return;
    }
    if p.leader == broker {
        let successor = p
            .replicas
            .iter()
            .copied()
            .find(|&r| r != broker && p.isr.contains(&r) && eligible.is_live(r));
        if let Some(successor) = successor {
            p.leader = successor;
            p.isr.retain(|&r| r != broker);
        }
    } else {
        shrink_isr_without(p, broker);
    }
}

/// The replica list a reassignment in progress is heading to (the replicas
/// not being removed, in order); the replicas themselves when none is.
pub(crate) fn target_replicas(p: &PartitionMeta) -> Vec<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect()
}

/// Finishes a reassignment in progress once every target replica is in the
/// ISR (the ISR without the removed replicas must not be empty): replicas
/// become the target, removed replicas leave the ISR, and if the leader was
/// removed the first live target replica in the ISR takes over.
pub(crate) fn complete_reassignment_if_ready(p: &mut PartitionMeta, live: &impl Liveness) {
    if p.adding.is_empty() && p.removing.is_empty() {
        return;
    }
    let target = target_replicas(p);
    let isr: Vec<BrokerId> = p
        .isr
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    if isr.is_empty() || target.is_empty() || !target.iter().all(|r| isr.contains(r)) {
        return;
    }
    p.replicas = target;
    p.isr = isr;
    p.adding.clear();
    p.removing.clear();
    if !p.replicas.contains(&p.leader) {
        p.leader = NO_LEADER;
    }
    elect_if_needed(p, live, false);
}

/// Starts a reassignment towards `target` (already validated): replicas are
/// the target followed by the current replicas it drops; the difference sets
/// become `adding` and `removing`. Completes at once when the target replicas
/// are all in the ISR already (a pure shrink or reorder of in-sync replicas).
pub(crate) fn start_reassignment(p: &mut PartitionMeta, target: &[BrokerId], live: &impl Liveness) {
    let current = p.replicas.clone();
    let removing: Vec<BrokerId> = current
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
        .collect();
    p.replicas = target
        .iter()
        .copied()
        .chain(removing.iter().copied())
        .collect();
    p.adding = adding;
    p.removing = removing;
    complete_reassignment_if_ready(p, live);
}

/// Outcome of [`revert_reassignment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revert {
    /// Reverted with at least one original replica in sync.
    Clean,
    /// No original replica was in the ISR: reverting needs an unclean election.
    NeedsUnclean,
}

/// Cancels a reassignment in progress: the replicas being added go away
/// (from replicas and ISR) and the ones being removed stay. When only added
/// replicas were in sync, the ISR becomes the first remaining replica (an
/// unclean election, reported so the caller can refuse it). `unclean` lets
/// the election that follows pick an out-of-sync replica.
pub(crate) fn revert_reassignment(
    p: &mut PartitionMeta,
    live: &impl Liveness,
    unclean: bool,
) -> Revert {
    let adding = std::mem::take(&mut p.adding);
    p.removing.clear();
    p.replicas.retain(|r| !adding.contains(r));
    p.isr.retain(|r| !adding.contains(r));
    let mut outcome = Revert::Clean;
    if p.isr.is_empty() {
        if let Some(&first) = p.replicas.first() {
            p.isr = vec![first];
        }
        outcome = Revert::NeedsUnclean;
    }
    if !p.isr.contains(&p.leader) {
        p.leader = NO_LEADER;
    }
    elect_if_needed(p, live, unclean);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(replicas: &[BrokerId], isr: &[BrokerId], leader: BrokerId) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            adding: vec![],
            removing: vec![],
        }
    }

    fn all_live(_: BrokerId) -> bool {
        true
    }

    #[test]
    fn a_shutting_down_leader_hands_over_to_the_first_eligible_isr_member_and_leaves_the_isr() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        move_off_for_shutdown(&mut p, 1, &|b: BrokerId| b != 1);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
        let after = finish(&part(&[1, 2, 3], &[1, 2, 3], 1), p).expect("changed");
        assert_eq!((after.leader_epoch, after.partition_epoch), (5, 10));

        // Replica order decides, and an ineligible member (also shutting down) is skipped.
        let mut p = part(&[3, 1, 2], &[1, 2, 3], 1);
        move_off_for_shutdown(&mut p, 1, &|b: BrokerId| b == 2);
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
    }

    #[test]
    fn a_shutting_down_sole_isr_leader_keeps_leading_and_stays_in_the_isr() {
        let before = part(&[1, 2, 3], &[1], 1);
        let mut p = before.clone();
        move_off_for_shutdown(&mut p, 1, &|b: BrokerId| b != 1);
        assert_eq!(finish(&before, p), None, "nothing changes");

        // Other ISR members that may not lead (also shutting down) do not take over either.
        let before = part(&[1, 2, 3], &[1, 2], 1);
        let mut p = before.clone();
        move_off_for_shutdown(&mut p, 1, &|b: BrokerId| b == 3);
        assert_eq!(finish(&before, p), None);
    }

    #[test]
    fn a_shutting_down_follower_leaves_the_isr_unless_it_is_the_last_member() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        move_off_for_shutdown(&mut p, 3, &|b: BrokerId| b != 3);
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));

        let before = part(&[1, 2, 3], &[3], NO_LEADER);
        let mut p = before.clone();
        move_off_for_shutdown(&mut p, 3, &|b: BrokerId| b != 3);
        assert_eq!(finish(&before, p), None, "the last ISR member stays");

        let before = part(&[1, 2], &[1, 2], 1);
        let mut p = before.clone();
        move_off_for_shutdown(&mut p, 3, &all_live);
        assert_eq!(finish(&before, p), None, "not a replica: untouched");
    }

    #[test]
    fn finish_bumps_epochs_by_kind_of_change() {
        let before = part(&[1, 2, 3], &[1, 2, 3], 1);
        assert_eq!(finish(&before, before.clone()), None);

        let mut isr_only = before.clone();
        isr_only.isr = vec![1, 2];
        let after = finish(&before, isr_only).expect("changed");
        assert_eq!((after.leader_epoch, after.partition_epoch), (4, 10));

        let mut new_leader = before.clone();
        new_leader.leader = 2;
        let after = finish(&before, new_leader).expect("changed");
        assert_eq!((after.leader_epoch, after.partition_epoch), (5, 10));
    }

    #[test]
    fn elect_prefers_replica_order_among_live_isr_members() {
        let mut p = part(&[1, 2, 3], &[3, 2], NO_LEADER);
        elect_if_needed(&mut p, &all_live, false);
        assert_eq!(p.leader, 2);
        let mut p = part(&[1, 2, 3], &[3, 2], NO_LEADER);
        elect_if_needed(&mut p, &|b: BrokerId| b != 2, false);
        assert_eq!(p.leader, 3);
    }

    #[test]
    fn elect_without_live_isr_goes_offline_or_unclean() {
        let mut p = part(&[1, 2, 3], &[1], 1);
        elect_if_needed(&mut p, &|b: BrokerId| b != 1, false);
        assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        elect_if_needed(&mut p, &|b: BrokerId| b == 3, true);
        assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
    }

    #[test]
    fn shrink_keeps_the_last_isr_member() {
        let mut p = part(&[1, 2], &[1, 2], 1);
        shrink_isr_without(&mut p, 1);
        assert_eq!(p.isr, vec![2]);
        shrink_isr_without(&mut p, 2);
        assert_eq!(p.isr, vec![2]);
    }

    #[test]
    fn reassignment_waits_for_new_replicas_then_completes() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        start_reassignment(&mut p, &[4, 2, 3], &all_live);
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![1]));
        assert_eq!(p.leader, 1);

        p.isr = vec![1, 2, 3, 4];
        complete_reassignment_if_ready(&mut p, &all_live);
        assert_eq!(p.replicas, vec![4, 2, 3]);
        assert_eq!(p.isr, vec![2, 3, 4]);
        assert!(p.adding.is_empty() && p.removing.is_empty());
        assert_eq!(
            p.leader, 4,
            "first target replica in the ISR takes over from the removed leader"
        );
    }

    #[test]
    fn shrinking_in_sync_replicas_completes_at_once() {
        let mut p = part(&[1, 2, 3], &[1, 2, 3], 1);
        start_reassignment(&mut p, &[2, 3], &all_live);
        assert_eq!(p.replicas, vec![2, 3]);
        assert_eq!(p.isr, vec![2, 3]);
        assert_eq!(p.leader, 2);
        assert!(p.adding.is_empty() && p.removing.is_empty());
    }

    #[test]
    fn shrink_to_an_out_of_sync_replica_waits() {
        let mut p = part(&[1, 2, 3], &[1, 2], 1);
        start_reassignment(&mut p, &[3], &all_live);
        assert_eq!(p.replicas, vec![3, 1, 2]);
        assert_eq!(p.removing, vec![1, 2]);
        assert_eq!(p.leader, 1);
    }

    #[test]
    fn revert_drops_added_replicas_and_flags_unclean() {
        let mut p = part(&[1, 2], &[1, 2], 1);
        start_reassignment(&mut p, &[3, 4], &all_live);
        assert_eq!(
            revert_reassignment(&mut p.clone(), &all_live, false),
            Revert::Clean
        );

        p.isr = vec![3];
        p.leader = 3;
        let mut reverted = p.clone();
        assert_eq!(
            revert_reassignment(&mut reverted, &all_live, false),
            Revert::NeedsUnclean
        );
        assert_eq!(reverted.replicas, vec![1, 2]);
        assert_eq!((reverted.isr.clone(), reverted.leader), (vec![1], 1));
    }
}
