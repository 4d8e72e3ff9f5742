//! Moving one member from its current assignment toward its target (KIP-848's
//! reconciliation, Kafka's `CurrentAssignmentBuilder`): partitions it must
//! give up are revoked first, and only once the member says it no longer owns
//! them does it move to the new epoch; partitions another member still holds
//! are assigned only when released. Pure: the caller supplies which
//! partitions other members hold.

use std::collections::BTreeSet;

use super::{MemberState, Partitions};

/// What a member's assignment becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Next {
    /// The member's state.
    pub state: MemberState,
    /// Its epoch (the target's, unless it must revoke first).
    pub epoch: i32,
    /// Partitions it owns now.
    pub assigned: Partitions,
    /// Partitions it must give up before advancing.
    pub pending_revocation: Partitions,
}

/// The next step from `assigned` (held at `epoch`) toward `target` (of
/// `target_epoch`). `owned` is what the member reported owning (`None`: not
/// reported, so it is assumed to still own everything); `held_by_others`
/// says whether another member holds a partition (assigned or being
/// revoked).
pub(crate) fn next(
    epoch: i32,
    assigned: &Partitions,
    target_epoch: i32,
    target: &Partitions,
    owned: Option<&Partitions>,
    held_by_others: impl Fn(&str, i32) -> bool,
) -> Next {
    let mut kept = Partitions::new();
    let mut revoking = Partitions::new();
    let mut assignable = Partitions::new();
    let mut unreleased = false;
    let topics: BTreeSet<&String> = assigned.keys().chain(target.keys()).collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let now = assigned.get(topic).unwrap_or(&empty);
        let wanted = target.get(topic).unwrap_or(&empty);
        for p in now {
            let into = if wanted.contains(p) {
                &mut kept
            } else {
                &mut revoking
            };
            into.entry(topic.clone()).or_default().insert(*p);
        }
        for p in wanted.difference(now) {
            if held_by_others(topic, *p) {
                unreleased = true;
            } else {
                assignable.entry(topic.clone()).or_default().insert(*p);
            }
        }
    }
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        return Next {
            state: MemberState::UnrevokedPartitions,
            epoch,
            assigned: kept,
            pending_revocation: revoking,
        };
    }
    for (topic, partitions) in assignable {
        kept.entry(topic).or_default().extend(partitions);
    }
    Next {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        epoch: target_epoch,
        assigned: kept,
        pending_revocation: Partitions::new(),
    }
}

/// Whether the member still owns any of `partitions` (yes when it did not say).
pub(crate) fn owns_any(owned: Option<&Partitions>, partitions: &Partitions) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    partitions.iter().any(|(topic, ps)| {
        owned
            .get(topic)
            .is_some_and(|o| ps.iter().any(|p| o.contains(p)))
    })
}

/// Whether every partition of `owned` is in `assigned` (`None` is not a subset).
pub(crate) fn is_subset(owned: Option<&Partitions>, assigned: &Partitions) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(topic, ps)| {
        ps.is_empty()
            || assigned
                .get(topic)
                .is_some_and(|a| ps.iter().all(|p| a.contains(p)))
    })
}
