//! The server-side assignors of the consumer group protocol (KIP-848), as
//! Kafka names them: `uniform` (balanced and sticky: each member keeps what
//! it had while that stays fair) and `range` (per topic, contiguous ranges
//! over the members sorted by id, so co-partitioned topics line up).
//! Pure functions of the members' subscriptions, the topics' partition
//! counts and the previous target.

use std::collections::{BTreeMap, BTreeSet};

use super::Partitions;

/// An assignor the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Assignor {
    /// Balanced, sticky.
    Uniform,
    /// Per-topic ranges.
    Range,
}

impl Assignor {
    /// Kafka's name for it (`group.consumer.assignors`, `group.remote.assignor`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The assignor called `name`.
    pub(crate) fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The target assignment of `members` (member id → subscribed topics
    /// that exist) over `topics` (name → partition count).
    pub(crate) fn assign(
        self,
        members: &BTreeMap<String, BTreeSet<String>>,
        topics: &BTreeMap<String, i32>,
        previous: &BTreeMap<String, Partitions>,
    ) -> BTreeMap<String, Partitions> {
        match self {
            Assignor::Uniform => uniform(members, topics, previous),
            Assignor::Range => range(members, topics),
        }
    }
}

/// Every member gets `total / members` partitions of the topics it
/// subscribes to, give or take one. First each member keeps the partitions
/// of its previous target that are still valid, up to its fair share (one
/// over it for as many members as the remainder allows); the rest go one by
/// one, the partitions with the fewest eligible members first, to the
/// eligible member holding the fewest.
fn uniform(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, Partitions>,
) -> BTreeMap<String, Partitions> {
    let mut result: BTreeMap<String, Partitions> = members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect();
    if members.is_empty() {
        return result;
    }
    let mut unassigned: BTreeSet<(String, i32)> = BTreeSet::new();
    for (topic, count) in topics {
        if members.values().any(|s| s.contains(topic)) {
            unassigned.extend((0..*count).map(|p| (topic.clone(), p)));
        }
    }
    let total = unassigned.len();
    let base = total / members.len();
    let mut extra = total % members.len();
    let mut counts: BTreeMap<&str, usize> = members.keys().map(|m| (m.as_str(), 0)).collect();
    // Sticky: keep what is still valid, up to the fair share.
    for (member, subscribed) in members {
        let Some(before) = previous.get(member) else {
            continue;
        };
        let quota = |held: usize, extra: usize| held < base || (held == base && extra > 0);
        for (topic, partitions) in before {
            if !subscribed.contains(topic) {
                continue;
            }
            for p in partitions {
                let held = counts[member.as_str()];
                if !quota(held, extra) {
                    break;
                }
                if unassigned.remove(&(topic.clone(), *p)) {
                    if held == base {
                        extra -= 1;
                    }
                    *counts.get_mut(member.as_str()).expect("member counted") += 1;
                    result
                        .get_mut(member)
                        .expect("member present")
                        .entry(topic.clone())
                        .or_default()
                        .insert(*p);
                }
            }
        }
    }
    // The rest: most constrained partitions first, to the least loaded member.
    let mut rest: Vec<(usize, String, i32)> = unassigned
        .into_iter()
        .map(|(t, p)| {
            let eligible = members.values().filter(|s| s.contains(&t)).count();
            (eligible, t, p)
        })
        .collect();
    rest.sort();
    for (_, topic, p) in rest {
        let chosen = members
            .iter()
            .filter(|(_, s)| s.contains(&topic))
            .map(|(m, _)| m)
            .min_by_key(|m| (counts[m.as_str()], (*m).clone()));
        if let Some(member) = chosen {
            *counts.get_mut(member.as_str()).expect("member counted") += 1;
            result
                .get_mut(member)
                .expect("member present")
                .entry(topic)
                .or_default()
                .insert(p);
        }
    }
    result
}

/// Per topic, the subscribed members sorted by id get contiguous ranges;
/// the first `partitions % members` get one more.
fn range(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Partitions> {
    let mut result: BTreeMap<String, Partitions> = members
        .keys()
        .map(|m| (m.clone(), Partitions::new()))
        .collect();
    for (topic, count) in topics {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = *count as usize;
        let (base, extra) = (n / subscribers.len(), n % subscribers.len());
        let mut next = 0usize;
        for (i, member) in subscribers.into_iter().enumerate() {
            let take = base + usize::from(i < extra);
            if take > 0 {
                result
                    .get_mut(member)
                    .expect("member present")
                    .insert(topic.clone(), (next as i32..(next + take) as i32).collect());
            }
            next += take;
        }
    }
    result
}
