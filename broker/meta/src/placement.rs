//! Replica placement for new partitions: spreads leaders and followers evenly
//! over the live brokers and, when every broker has a rack, puts the replicas
//! of one partition on distinct racks as far as the racks allow. Pure and
//! deterministic: the same brokers, topic name and partition range always give
//! the same lists, on every node.
//!
//! The scheme is Kafka's: partition `p`'s leader is broker `(p + start) % n`
//! of an ordered broker list, and its followers sit at distinct offsets from
//! the leader, all shifted by one more every `n` partitions so that followers
//! do not always trail the same leader. Rack awareness orders the list so
//! that neighbours alternate racks, then skips a candidate whose rack already
//! holds a replica of the partition while some rack holds none.

use crate::types::BrokerId;

/// A broker that may receive replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    /// Broker id.
    pub id: BrokerId,
    /// `broker.rack`, if set.
    pub rack: Option<&'a str>,
}

/// 64-bit FNV-1a of `bytes`: a fixed hash (std's hasher is randomly seeded
/// per process, which would make nodes place replicas differently).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Replica lists for partitions `first_partition..first_partition + count`
/// of the topic named `topic`, `replication_factor` replicas each (the first
/// being the preferred leader).
///
/// `brokers` are the live brokers in id order. The caller guarantees
/// `1 <= replication_factor <= brokers.len()`; outside that range the result
/// is empty.
pub(crate) fn place(
    brokers: &[Candidate<'_>],
    topic: &str,
    first_partition: usize,
    count: usize,
    replication_factor: usize,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    if replication_factor == 0 || replication_factor > n {
        return Vec::new();
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    let ordered = if rack_aware {
        rack_alternating(brokers)
    } else {
        brokers.to_vec()
    };
    let racks = distinct_racks(&ordered);

    // The topic name picks where the leader sequence starts and the initial
    // follower shift, so that many small topics do not all lead on the first
    // broker, yet every node computes the same thing.
    let hash = fnv1a(topic.as_bytes());
    let start = usize::try_from(hash % n as u64).unwrap_or(0);
    let shift0 = usize::try_from((hash >> 32) % n as u64).unwrap_or(0);

    (first_partition..first_partition + count)
        .map(|p| {
            let first = (p + start) % n;
            let shift = shift0 + p / n;
            let mut replicas = vec![ordered[first]];
            // Followers are taken from the offsets 1..n (never the leader
            // itself) in the order the shift gives, skipping ones that would
            // repeat a rack while an unused rack remains.
            let mut k = 0;
            while replicas.len() < replication_factor {
                let mut chosen = None;
                for step in 0..n - 1 {
                    let candidate = ordered[follower_index(first, shift, k + step, n)];
                    if replicas.iter().any(|r| r.id == candidate.id) {
                        continue;
                    }
                    let racks_used = used_racks(&replicas);
                    let rack_ok = !rack_aware
                        || racks_used.len() >= racks
                        || !racks_used.contains(&candidate.rack);
                    if rack_ok {
                        chosen = Some((step, candidate));
                        break;
                    }
                }
                match chosen {
                    Some((step, candidate)) => {
                        replicas.push(candidate);
                        k += step + 1;
                    }
                    // Unreachable when rf <= n (some rack or broker is always
                    // unused); kept so that a bug can never loop forever.
                    None => break,
                }
            }
            replicas.into_iter().map(|c| c.id).collect()
        })
        .collect()
}

/// Index of the `k`-th follower candidate of a partition led by `first`.
/// The offsets `1 + (shift + k) % (n - 1)` run over 1..n, so they never hit
/// the leader and `n - 1` consecutive `k` give distinct brokers.
fn follower_index(first: usize, shift: usize, k: usize, n: usize) -> usize {
    (first + 1 + (shift + k) % (n - 1)) % n
}

/// Brokers ordered so that neighbours alternate racks: the first broker of
/// each rack (racks by name), then the second of each, and so on.
fn rack_alternating<'a>(brokers: &[Candidate<'a>]) -> Vec<Candidate<'a>> {
    let mut by_rack: std::collections::BTreeMap<&str, Vec<Candidate<'a>>> = Default::default();
    for b in brokers {
        by_rack.entry(b.rack.unwrap_or("")).or_default().push(*b);
    }
    let depth = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..depth)
        .flat_map(|i| {
            by_rack
                .values()
                .filter_map(move |list| list.get(i).copied())
        })
        .collect()
}

fn distinct_racks(brokers: &[Candidate<'_>]) -> usize {
    used_racks(brokers).len()
}

fn used_racks<'a>(brokers: &[Candidate<'a>]) -> Vec<Option<&'a str>> {
    let mut racks: Vec<Option<&str>> = brokers.iter().map(|b| b.rack).collect();
    racks.sort_unstable();
    racks.dedup();
    racks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn plain(ids: &[BrokerId]) -> Vec<Candidate<'static>> {
        ids.iter().map(|&id| Candidate { id, rack: None }).collect()
    }

    fn counts(lists: &[Vec<BrokerId>]) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
        let mut leaders = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for list in lists {
            *leaders.entry(list[0]).or_default() += 1;
            for &r in list {
                *replicas.entry(r).or_default() += 1;
            }
        }
        (leaders, replicas)
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn three_brokers_six_partitions_rf3_each_leads_two_and_holds_six() {
        let lists = place(&plain(&[1, 2, 3]), "orders", 0, 6, 3);
        assert_eq!(lists.len(), 6);
        let (leaders, replicas) = counts(&lists);
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        assert_eq!(replicas, BTreeMap::from([(1, 6), (2, 6), (3, 6)]));
        for list in &lists {
            assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), 3, "{list:?}");
        }
    }

    #[test]
    fn five_brokers_ten_partitions_rf2_spread_leaders_and_followers() {
        for topic in ["a", "payments", "x-y-z", ""] {
            let lists = place(&plain(&[0, 1, 2, 3, 4]), topic, 0, 10, 2);
            let (leaders, replicas) = counts(&lists);
            assert!(leaders.values().all(|&c| c == 2), "{topic}: {leaders:?}");
            assert_eq!(leaders.len(), 5);
            assert!(replicas.values().all(|&c| c == 4), "{topic}: {replicas:?}");
            for list in &lists {
                assert_ne!(list[0], list[1]);
            }
        }
    }

    #[test]
    fn followers_do_not_always_trail_the_same_leader() {
        let lists = place(&plain(&[0, 1, 2, 3, 4]), "t", 0, 10, 2);
        let pairs: BTreeSet<(BrokerId, BrokerId)> = lists.iter().map(|l| (l[0], l[1])).collect();
        assert_eq!(
            pairs.len(),
            10,
            "each leader pairs with two different followers: {lists:?}"
        );
    }

    #[test]
    fn three_racks_of_two_rf3_put_each_partition_on_three_racks() {
        let racks = ["a", "a", "b", "b", "c", "c"];
        let brokers: Vec<Candidate<'_>> = (0..6)
            .map(|i| Candidate {
                id: i as BrokerId + 1,
                rack: Some(racks[i]),
            })
            .collect();
        let rack_of = |id: BrokerId| racks[(id - 1) as usize];
        for topic in ["t", "orders", "events"] {
            let lists = place(&brokers, topic, 0, 12, 3);
            for list in &lists {
                let distinct: BTreeSet<_> = list.iter().map(|&id| rack_of(id)).collect();
                assert_eq!(distinct.len(), 3, "{topic}: {list:?}");
            }
            let (leaders, replicas) = counts(&lists);
            assert!(leaders.values().all(|&c| c == 2), "{topic}: {leaders:?}");
            assert!(replicas.values().all(|&c| c == 6), "{topic}: {replicas:?}");
        }
    }

    #[test]
    fn two_racks_rf3_uses_both_racks() {
        let brokers = [
            Candidate {
                id: 1,
                rack: Some("a"),
            },
            Candidate {
                id: 2,
                rack: Some("a"),
            },
            Candidate {
                id: 3,
                rack: Some("b"),
            },
        ];
        for list in place(&brokers, "t", 0, 6, 3) {
            assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), 3);
        }
        for list in place(&brokers, "t", 0, 6, 2) {
            let racks: BTreeSet<_> = list
                .iter()
                .map(|&id| if id == 3 { "b" } else { "a" })
                .collect();
            assert_eq!(racks.len(), 2, "{list:?}");
        }
    }

    #[test]
    fn racks_are_ignored_unless_every_broker_has_one() {
        let mixed = [
            Candidate {
                id: 1,
                rack: Some("a"),
            },
            Candidate { id: 2, rack: None },
            Candidate {
                id: 3,
                rack: Some("a"),
            },
        ];
        assert_eq!(
            place(&mixed, "t", 0, 6, 2),
            place(&plain(&[1, 2, 3]), "t", 0, 6, 2)
        );
    }

    #[test]
    fn a_continued_range_equals_the_tail_of_a_longer_one() {
        let brokers = plain(&[1, 2, 3, 4]);
        let all = place(&brokers, "t", 0, 9, 3);
        assert_eq!(place(&brokers, "t", 4, 5, 3), all[4..].to_vec());
    }

    #[test]
    fn single_broker_and_out_of_range_factors() {
        assert_eq!(place(&plain(&[7]), "t", 0, 2, 1), vec![vec![7], vec![7]]);
        assert!(place(&plain(&[7]), "t", 0, 2, 2).is_empty());
        assert!(place(&plain(&[7]), "t", 0, 2, 0).is_empty());
    }
}
