//! Replica placement plans, sans-IO: moving every replica off one broker (a
//! drain before scale-down) and spreading replicas and preferred leaders
//! evenly over a set of brokers (after scale-up). Both take metadata as read
//! and return [`PartitionMove`]s for AlterPartitionReassignments; nothing here
//! talks to a broker, so the rules are unit-tested directly.
//!
//! Load is the number of replicas a broker holds over every partition given;
//! the preferred leader of a partition is its first replica, so a plan keeps
//! the position of a replaced replica and the leader slot moves with it.

use std::collections::{BTreeMap, BTreeSet};

use crate::client::TopicMetadata;
pub use crate::reassign::PartitionMove;

/// One partition being planned: topic, partition index, replicas (first = preferred leader).
type Part = (String, i32, Vec<i32>);

/// Replicas held per broker over `topics`, with every broker of `brokers` present (0 if none).
pub fn replica_load(topics: &[TopicMetadata], brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for p in topics.iter().flat_map(|t| t.partitions.iter()) {
        for &r in &p.replicas {
            *load.entry(r).or_default() += 1;
        }
    }
    load
}

/// Replaces `broker` in every replica set of `topics` by the least-loaded
/// candidate that is not already a replica of that partition, keeping the
/// replica's position (so a preferred leader slot moves with it).
///
/// When `racks` names the removed broker's rack, a candidate in that rack is
/// preferred; otherwise any candidate qualifies. Ties go to the lower node id.
/// Loads count every partition and are updated as moves are planned.
/// A partition that cannot be moved (every candidate is already a replica)
/// is left out of the plan: [`unmovable`] names those.
pub fn move_off(
    topics: &[TopicMetadata],
    broker: i32,
    candidates: &[i32],
    racks: &BTreeMap<i32, String>,
) -> Vec<PartitionMove> {
    let candidates: Vec<i32> = candidates
        .iter()
        .copied()
        .filter(|&c| c != broker)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut load = replica_load(topics, &candidates);
    let home_rack = racks.get(&broker);
    let mut moves = Vec::new();
    for t in topics {
        for p in &t.partitions {
            let Some(pos) = p.replicas.iter().position(|&r| r == broker) else {
                continue;
            };
            let free = candidates.iter().filter(|c| !p.replicas.contains(c));
            // Same rack first (when known), then least load, then lowest id.
            let best = free.min_by_key(|&&c| {
                let other_rack = home_rack.is_some() && racks.get(&c) != home_rack;
                (other_rack, load.get(&c).copied().unwrap_or(0), c)
            });
            let Some(&new) = best else { continue };
            *load.entry(new).or_default() += 1;
            let mut target = p.replicas.clone();
            target[pos] = new;
            moves.push(PartitionMove {
                topic: t.name.clone(),
                partition: p.partition,
                current: p.replicas.clone(),
                target,
            });
        }
    }
    moves
}

/// The partitions (`(topic, partition)`) holding `broker` that `moves` does not move it off.
pub fn unmovable(
    topics: &[TopicMetadata],
    broker: i32,
    moves: &[PartitionMove],
) -> Vec<(String, i32)> {
    let moved: BTreeSet<(&str, i32)> = moves
        .iter()
        .filter(|m| !m.target.contains(&broker))
        .map(|m| (m.topic.as_str(), m.partition))
        .collect();
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(t, p)| {
            p.replicas.contains(&broker) && !moved.contains(&(t.name.as_str(), p.partition))
        })
        .map(|(t, p)| (t.name.clone(), p.partition))
        .collect()
}

/// A plan that spreads the replicas of `topics` over `brokers` so each holds
/// within ±1 of the mean, then spreads preferred leaders (first replicas) the
/// same way, with as little movement as the constraints allow.
///
/// Replicas move from the most loaded broker to one holding at least two
/// fewer (directly, or through a chain of brokers when every direct move would
/// duplicate a replica or lose a rack), so each step strictly evens the load
/// and the plan is finite; a partition never
/// gets two replicas on one broker, and when `racks` is not empty a move never
/// reduces the number of distinct racks of a partition. Leaders are then
/// evened by reordering replicas within a partition, which copies no data, and
/// only where reordering cannot help (partitions of one replica) by exchanging
/// a leader replica for a follower replica between two brokers.
/// Replicas on brokers outside `brokers` are left where they are. An already
/// balanced input gives an empty plan.
pub fn balance(
    topics: &[TopicMetadata],
    brokers: &[i32],
    racks: &BTreeMap<i32, String>,
) -> Vec<PartitionMove> {
    let brokers: Vec<i32> = brokers
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if brokers.len() < 2 {
        return Vec::new();
    }
    // Working copy of every replica set: (topic, partition) -> replicas.
    let mut parts: Vec<Part> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.clone(), p.partition, p.replicas.clone()))
        })
        .collect();
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for (_, _, replicas) in &parts {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
        if let Some(n) = replicas.first().and_then(|l| leaders.get_mut(l)) {
            *n += 1;
        }
    }

    // Phase 1: replica counts. A direct move from the most to the least
    // loaded broker first; when constraints forbid every direct move, a chain
    // over > b1 > ... > under (each hop a different partition) shifts one
    // replica's worth of load without changing the brokers in between.
    let replica_hop = |parts: &[Part], a: i32, b: i32| -> Option<(usize, usize)> {
        parts.iter().enumerate().find_map(|(idx, (_, _, r))| {
            let pos = r.iter().position(|&x| x == a)?;
            (!r.contains(&b) && keeps_racks(r, pos, b, racks)).then_some((idx, pos))
        })
    };
    loop {
        let path = match find_replica_move(&parts, &brokers, &load, &leaders, racks) {
            Some(hop) => vec![hop],
            None => match find_chain(&parts, &brokers, &load, replica_hop) {
                Some(path) => path,
                None => break,
            },
        };
        for (from, to, idx, pos) in path {
            parts[idx].2[pos] = to;
            shift(&mut load, from, to);
            if pos == 0 {
                shift(&mut leaders, from, to);
            }
        }
    }

    // Phase 2: preferred leaders, by swapping the first replica with another
    // one of the same partition (a reorder copies no data); chains as above.
    let leader_hop = |parts: &[Part], a: i32, b: i32| -> Option<(usize, usize)> {
        parts.iter().enumerate().find_map(|(idx, (_, _, r))| {
            (r.first() == Some(&a)).then_some(())?;
            r.iter().position(|&x| x == b).map(|pos| (idx, pos))
        })
    };
    // When no reorder helps (typically partitions of one replica, whose leader
    // is fixed), an exchange moves a leader replica from the broker leading the
    // most to one leading two fewer, and one of that broker's follower
    // replicas back: replica counts stay, one leadership moves, two copies.
    loop {
        while let Some(path) = find_chain(&parts, &brokers, &leaders, leader_hop) {
            for (from, to, idx, pos) in path {
                parts[idx].2.swap(0, pos);
                shift(&mut leaders, from, to);
            }
        }
        let Some((a, b, led, followed, back)) =
            find_leader_exchange(&parts, &brokers, &leaders, racks)
        else {
            break;
        };
        parts[led].2[0] = b;
        parts[followed].2[back] = a;
        shift(&mut leaders, a, b);
    }

    let original = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.replicas.clone()));
    parts
        .into_iter()
        .zip(original)
        .filter(|((_, _, target), current)| target != current)
        .map(|((topic, partition, target), current)| PartitionMove {
            topic,
            partition,
            current,
            target,
        })
        .collect()
}

/// Moves one unit of `counts` from `from` to `to`.
fn shift(counts: &mut BTreeMap<i32, usize>, from: i32, to: i32) {
    if let Some(n) = counts.get_mut(&from) {
        *n = n.saturating_sub(1);
    }
    *counts.entry(to).or_default() += 1;
}

/// The next replica move of [`balance`]: `(from, to, partition index, replica position)`.
///
/// Pairs are tried from the most loaded source and the least loaded target;
/// only pairs whose loads differ by at least two qualify. Within a pair, a
/// leader replica is preferred when the source also leads more than the target
/// by two or more, a follower otherwise.
fn find_replica_move(
    parts: &[Part],
    brokers: &[i32],
    load: &BTreeMap<i32, usize>,
    leaders: &BTreeMap<i32, usize>,
    racks: &BTreeMap<i32, String>,
) -> Option<(i32, i32, usize, usize)> {
    let count = |m: &BTreeMap<i32, usize>, b: i32| m.get(&b).copied().unwrap_or(0);
    let mut by_load: Vec<i32> = brokers.to_vec();
    by_load.sort_by_key(|&b| (std::cmp::Reverse(count(load, b)), b));
    for &over in &by_load {
        for &under in by_load.iter().rev() {
            if count(load, over) < count(load, under) + 2 {
                break;
            }
            let move_leader = count(leaders, over) >= count(leaders, under) + 2;
            let mut fallback = None;
            for (idx, (_, _, replicas)) in parts.iter().enumerate() {
                let Some(pos) = replicas.iter().position(|&r| r == over) else {
                    continue;
                };
                if replicas.contains(&under) || !keeps_racks(replicas, pos, under, racks) {
                    continue;
                }
                if (pos == 0) == move_leader {
                    return Some((over, under, idx, pos));
                }
                fallback.get_or_insert((over, under, idx, pos));
            }
            if fallback.is_some() {
                return fallback;
            }
        }
    }
    None
}

/// A leader exchange of [`balance`]: `(a, b, partition led by a, partition b
/// follows, b's position in it)`, where `a` leads at least two more partitions
/// than `b`; moving `a`'s leader replica to `b` and `b`'s follower replica to
/// `a` keeps both replica counts, duplicates nothing and keeps every rack.
fn find_leader_exchange(
    parts: &[Part],
    brokers: &[i32],
    leaders: &BTreeMap<i32, usize>,
    racks: &BTreeMap<i32, String>,
) -> Option<(i32, i32, usize, usize, usize)> {
    let count = |b: i32| leaders.get(&b).copied().unwrap_or(0);
    let mut by_leaders: Vec<i32> = brokers.to_vec();
    by_leaders.sort_by_key(|&b| (std::cmp::Reverse(count(b)), b));
    for &a in &by_leaders {
        for &b in by_leaders.iter().rev() {
            if count(a) < count(b) + 2 {
                break;
            }
            let led = parts.iter().position(|(_, _, r)| {
                r.first() == Some(&a) && !r.contains(&b) && keeps_racks(r, 0, b, racks)
            });
            let Some(led) = led else { continue };
            let followed = parts.iter().enumerate().find_map(|(idx, (_, _, r))| {
                let pos = r.iter().position(|&x| x == b).filter(|&pos| pos > 0)?;
                (idx != led && !r.contains(&a) && keeps_racks(r, pos, a, racks))
                    .then_some((idx, pos))
            });
            if let Some((followed, back)) = followed {
                return Some((a, b, led, followed, back));
            }
        }
    }
    None
}

/// Whether replacing `replicas[pos]` by `new` keeps the partition's number of distinct racks
/// (always true without rack information). A broker with no rack counts as a rack of its own.
fn keeps_racks(replicas: &[i32], pos: usize, new: i32, racks: &BTreeMap<i32, String>) -> bool {
    if racks.is_empty() {
        return true;
    }
    let distinct = |set: &mut dyn Iterator<Item = i32>| {
        set.map(|b| racks.get(&b).cloned().unwrap_or_else(|| format!("\0{b}")))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let before = distinct(&mut replicas.iter().copied());
    let after = distinct(
        &mut replicas
            .iter()
            .enumerate()
            .map(|(i, &b)| if i == pos { new } else { b }),
    );
    after >= before
}

/// A shortest chain of hops `(from, to, partition index, position)` from a
/// broker to one with at least two fewer of `counts`, each hop found by `hop`
/// on the current state and each using a different partition; the most
/// loaded sources are tried first. `None` when no such chain exists.
fn find_chain(
    parts: &[Part],
    brokers: &[i32],
    counts: &BTreeMap<i32, usize>,
    hop: impl Fn(&[Part], i32, i32) -> Option<(usize, usize)>,
) -> Option<Vec<(i32, i32, usize, usize)>> {
    let count = |b: i32| counts.get(&b).copied().unwrap_or(0);
    let mut sources: Vec<i32> = brokers.to_vec();
    sources.sort_by_key(|&b| (std::cmp::Reverse(count(b)), b));
    for &source in &sources {
        // Breadth-first: how each broker was reached (previous broker, partition, position).
        let mut reached: BTreeMap<i32, Option<(i32, usize, usize)>> = BTreeMap::new();
        reached.insert(source, None);
        let mut frontier = vec![source];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &a in &frontier {
                for &b in brokers {
                    if reached.contains_key(&b) {
                        continue;
                    }
                    let Some((idx, pos)) = hop(parts, a, b) else {
                        continue;
                    };
                    reached.insert(b, Some((a, idx, pos)));
                    if count(b) + 2 <= count(source) {
                        let mut path = Vec::new();
                        let mut at = b;
                        while let Some(Some((prev, idx, pos))) = reached.get(&at).copied() {
                            path.push((prev, at, idx, pos));
                            at = prev;
                        }
                        path.reverse();
                        let distinct: BTreeSet<usize> = path.iter().map(|h| h.2).collect();
                        if distinct.len() == path.len() {
                            return Some(path);
                        }
                        continue;
                    }
                    next.push(b);
                }
            }
            frontier = next;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::PartitionMetadata;

    fn topic(name: &str, assignments: &[Vec<i32>]) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            topic_id: Default::default(),
            is_internal: false,
            partitions: assignments
                .iter()
                .enumerate()
                .map(|(i, replicas)| PartitionMetadata {
                    partition: i32::try_from(i).expect("small"),
                    leader: replicas[0],
                    leader_epoch: 0,
                    replicas: replicas.clone(),
                    isr: replicas.clone(),
                    offline_replicas: Vec::new(),
                    error_code: 0,
                })
                .collect(),
            error_code: 0,
        }
    }

    /// Round-robin assignment of `partitions` partitions with `rf` replicas over `brokers`.
    fn round_robin(name: &str, partitions: usize, rf: usize, brokers: &[i32]) -> TopicMetadata {
        let assignments: Vec<Vec<i32>> = (0..partitions)
            .map(|p| (0..rf).map(|r| brokers[(p + r) % brokers.len()]).collect())
            .collect();
        topic(name, &assignments)
    }

    /// `topics` with `moves` applied.
    fn apply(topics: &[TopicMetadata], moves: &[PartitionMove]) -> Vec<TopicMetadata> {
        let mut out = topics.to_vec();
        for m in moves {
            let t = out.iter_mut().find(|t| t.name == m.topic).expect("topic");
            let p = t
                .partitions
                .iter_mut()
                .find(|p| p.partition == m.partition)
                .expect("partition");
            assert_eq!(
                p.replicas, m.current,
                "a move starts from the current replicas"
            );
            p.replicas = m.target.clone();
        }
        out
    }

    fn no_duplicates(topics: &[TopicMetadata]) {
        for t in topics {
            for p in &t.partitions {
                let set: BTreeSet<_> = p.replicas.iter().collect();
                assert_eq!(
                    set.len(),
                    p.replicas.len(),
                    "{}-{}: {:?}",
                    t.name,
                    p.partition,
                    p.replicas
                );
            }
        }
    }

    /// Asserts every broker's replica and leader counts are within ±1 of their means.
    fn within_one_of_mean(topics: &[TopicMetadata], brokers: &[i32]) {
        let load = replica_load(topics, brokers);
        let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
        for p in topics.iter().flat_map(|t| &t.partitions) {
            *leaders.entry(p.replicas[0]).or_default() += 1;
        }
        for (what, counts) in [("replicas", &load), ("leaders", &leaders)] {
            let total: usize = counts.values().sum();
            let mean = total as f64 / brokers.len() as f64;
            for (b, &n) in counts {
                assert!(
                    (n as f64 - mean).abs() <= 1.0,
                    "broker {b} has {n} {what}, mean {mean}: {counts:?}"
                );
            }
        }
    }

    /// Replicas added to a broker by `moves`, i.e. data copied.
    fn replicas_copied(moves: &[PartitionMove]) -> usize {
        moves
            .iter()
            .map(|m| m.target.iter().filter(|b| !m.current.contains(b)).count())
            .sum()
    }

    #[test]
    fn scale_up_from_three_to_five_brokers_evens_replicas_and_leaders_with_minimal_copies() {
        let topics = vec![round_robin("t", 50, 3, &[0, 1, 2])];
        let brokers = [0, 1, 2, 3, 4];
        let moves = balance(&topics, &brokers, &BTreeMap::new());
        let after = apply(&topics, &moves);
        no_duplicates(&after);
        within_one_of_mean(&after, &brokers);
        // 150 replicas over 5 brokers: the two new ones need 30 each, and no fewer copies do it.
        assert_eq!(replicas_copied(&moves), 60);
        // Nothing moves between the old brokers: every copy lands on a new broker.
        for m in &moves {
            for b in m.target.iter().filter(|b| !m.current.contains(b)) {
                assert!(*b >= 3, "{m:?} copies onto an old broker");
            }
        }
    }

    #[test]
    fn many_shapes_end_within_one_of_the_mean_without_duplicates() {
        for (old, new, partitions, rf) in [
            (1, 2, 7, 1),
            (2, 3, 10, 2),
            (3, 4, 12, 3),
            (3, 6, 31, 2),
            (4, 7, 100, 3),
            (5, 6, 1, 3),
        ] {
            let old_brokers: Vec<i32> = (0..old).collect();
            let brokers: Vec<i32> = (0..new).collect();
            let topics = vec![
                round_robin("a", partitions, rf, &old_brokers),
                round_robin("b", partitions / 2 + 1, rf.min(old as usize), &old_brokers),
            ];
            let moves = balance(&topics, &brokers, &BTreeMap::new());
            let after = apply(&topics, &moves);
            no_duplicates(&after);
            within_one_of_mean(&after, &brokers);
            assert!(
                balance(&after, &brokers, &BTreeMap::new()).is_empty(),
                "a balanced result needs no further plan ({old}->{new}, {partitions}x{rf})"
            );
        }
    }

    #[test]
    fn an_already_balanced_cluster_gets_an_empty_plan() {
        let topics = vec![round_robin("t", 30, 3, &[0, 1, 2, 3, 4])];
        assert!(balance(&topics, &[0, 1, 2, 3, 4], &BTreeMap::new()).is_empty());
        // Within ±1 but not equal is balanced too.
        let topics = vec![topic(
            "t",
            &[vec![0, 1], vec![1, 2], vec![2, 0], vec![0, 1]],
        )];
        assert!(balance(&topics, &[0, 1, 2], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn balance_never_reduces_the_racks_a_partition_spans() {
        // Brokers 0,1 in rack a, 2 in rack b, the new broker 3 in rack a.
        let racks: BTreeMap<i32, String> = [(0, "a"), (1, "a"), (2, "b"), (3, "a")]
            .into_iter()
            .map(|(b, r)| (b, r.to_string()))
            .collect();
        let topics = vec![topic(
            "t",
            &[
                vec![0, 2],
                vec![1, 2],
                vec![2, 0],
                vec![2, 1],
                vec![0, 2],
                vec![2, 1],
            ],
        )];
        let moves = balance(&topics, &[0, 1, 2, 3], &racks);
        let after = apply(&topics, &moves);
        no_duplicates(&after);
        for p in &after[0].partitions {
            let spanned: BTreeSet<_> = p.replicas.iter().map(|b| &racks[b]).collect();
            assert_eq!(
                spanned.len(),
                2,
                "partition {} lost a rack: {:?}",
                p.partition,
                p.replicas
            );
        }
        // Broker 2 (the only one in rack b) holds a replica of every partition and must keep them.
        assert!(after[0].partitions.iter().all(|p| p.replicas.contains(&2)));
        // The new broker still got replicas from rack a's brokers.
        assert!(replica_load(&after, &[3])[&3] > 0);
    }

    #[test]
    fn move_off_replaces_the_broker_in_place_with_the_least_loaded_free_candidate() {
        let topics = vec![topic(
            "t",
            &[vec![0, 1], vec![1, 0], vec![2, 3], vec![0, 3], vec![0, 2]],
        )];
        let moves = move_off(&topics, 0, &[1, 2, 3], &BTreeMap::new());
        assert_eq!(moves.len(), 4, "{moves:?}");
        let after = apply(&topics, &moves);
        no_duplicates(&after);
        assert!(after[0].partitions.iter().all(|p| !p.replicas.contains(&0)));
        // The leader slot moves with the replica: partition 0's new first replica is not 1.
        assert_eq!(after[0].partitions[0].replicas[1], 1);
        assert_ne!(after[0].partitions[0].replicas[0], 0);
        // Partition 1 keeps its leader 1 in front.
        assert_eq!(after[0].partitions[1].replicas[0], 1);
        // Loads end even: 10 replicas, 3 brokers.
        let load = replica_load(&after, &[1, 2, 3]);
        assert!(load.values().all(|&n| (3..=4).contains(&n)), "{load:?}");
        assert!(unmovable(&topics, 0, &moves).is_empty());
    }

    #[test]
    fn move_off_prefers_the_removed_brokers_rack() {
        let racks: BTreeMap<i32, String> = [(0, "a"), (1, "b"), (2, "a"), (3, "b")]
            .into_iter()
            .map(|(b, r)| (b, r.to_string()))
            .collect();
        // Broker 2 is loaded more than 3, but it is in 0's rack.
        let topics = vec![topic("t", &[vec![0, 1], vec![2, 1], vec![2, 3]])];
        let moves = move_off(&topics, 0, &[1, 2, 3], &racks);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].target, vec![2, 1]);
        // Without racks the least-loaded broker wins.
        let moves = move_off(&topics, 0, &[1, 2, 3], &BTreeMap::new());
        assert_eq!(moves[0].target, vec![3, 1]);
    }

    #[test]
    fn move_off_leaves_out_and_names_partitions_without_a_free_candidate() {
        let topics = vec![topic("t", &[vec![0, 1, 2], vec![0, 1]])];
        let moves = move_off(&topics, 0, &[1, 2], &BTreeMap::new());
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].partition, 1);
        assert_eq!(unmovable(&topics, 0, &moves), vec![("t".to_string(), 0)]);
    }

    /// A small deterministic generator (xorshift), so the property test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Random replica sets of `rf` distinct brokers out of `pool`.
    fn random_topic(
        rng: &mut Rng,
        name: &str,
        partitions: usize,
        rf: usize,
        pool: &[i32],
    ) -> TopicMetadata {
        let assignments: Vec<Vec<i32>> = (0..partitions)
            .map(|_| {
                let mut left = pool.to_vec();
                (0..rf)
                    .map(|_| left.remove(rng.below(left.len())))
                    .collect()
            })
            .collect();
        topic(name, &assignments)
    }

    /// The fewest replica copies that bring every broker within one of the others.
    fn fewest_copies(topics: &[TopicMetadata], brokers: &[i32]) -> usize {
        let mut loads: Vec<usize> = replica_load(topics, brokers).into_values().collect();
        loads.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = loads.iter().sum();
        let (base, extra) = (total / loads.len(), total % loads.len());
        // The heaviest brokers keep the `extra` slots of base + 1.
        loads
            .iter()
            .enumerate()
            .map(|(i, &n)| n.saturating_sub(base + usize::from(i < extra)))
            .sum()
    }

    /// The fewest leaderships to move so every broker leads within one of the others.
    fn fewest_leader_moves(topics: &[TopicMetadata], brokers: &[i32]) -> usize {
        let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
        for p in topics.iter().flat_map(|t| &t.partitions) {
            *leaders.entry(p.replicas[0]).or_default() += 1;
        }
        let mut counts: Vec<usize> = leaders.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        let (base, extra) = (total / counts.len(), total % counts.len());
        counts
            .iter()
            .enumerate()
            .map(|(i, &n)| n.saturating_sub(base + usize::from(i < extra)))
            .sum()
    }

    #[test]
    fn random_clusters_balance_within_one_with_no_duplicates_lost_racks_or_wasted_copies() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let old = 1 + rng.below(6);
            let new = old + rng.below(4);
            let old_brokers: Vec<i32> = (0..old as i32).collect();
            let brokers: Vec<i32> = (0..new as i32).collect();
            let rf = 1 + rng.below(old.min(3));
            // Odd cases mix in a topic of one replica, whose leaders only a copy can move.
            let mixed = case % 2 == 1;
            let (pa, pb) = (1 + rng.below(60), 1 + rng.below(20));
            let topics = vec![
                random_topic(&mut rng, "a", pa, rf, &old_brokers),
                random_topic(&mut rng, "b", pb, if mixed { 1 } else { rf }, &old_brokers),
            ];
            let with_racks = case % 3 == 0;
            let racks: BTreeMap<i32, String> = if with_racks {
                brokers
                    .iter()
                    .map(|&b| (b, format!("r{}", b % 3)))
                    .collect()
            } else {
                BTreeMap::new()
            };
            let moves = balance(&topics, &brokers, &racks);
            let after = apply(&topics, &moves);
            no_duplicates(&after);
            for (p_before, p_after) in topics
                .iter()
                .flat_map(|t| &t.partitions)
                .zip(after.iter().flat_map(|t| &t.partitions))
            {
                let spanned = |r: &[i32]| {
                    r.iter()
                        .map(|b| racks.get(b))
                        .collect::<BTreeSet<_>>()
                        .len()
                };
                assert!(
                    spanned(&p_after.replicas) >= spanned(&p_before.replicas),
                    "case {case}: {:?} -> {:?}",
                    p_before.replicas,
                    p_after.replicas
                );
            }
            if !with_racks {
                within_one_of_mean(&after, &brokers);
                let (copied, fewest) = (replicas_copied(&moves), fewest_copies(&topics, &brokers));
                if mixed {
                    // Each leadership an exchange moves costs two copies.
                    let leader_moves = fewest_leader_moves(&topics, &brokers);
                    assert!(
                        copied <= fewest + 2 * leader_moves,
                        "case {case}: {copied} copies, {fewest} + 2 x {leader_moves} needed"
                    );
                } else {
                    assert_eq!(
                        copied, fewest,
                        "case {case}: {old} -> {new} brokers, rf {rf}"
                    );
                }
            }
        }
    }
}
