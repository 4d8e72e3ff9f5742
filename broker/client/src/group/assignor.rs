//! The range assignor, with the Java client's `RangeAssignor` arithmetic so a
//! group led by us assigns exactly as a Java-led group would: per topic, the
//! subscribed members in order (static members by instance id first, then
//! the rest by member id) each get a contiguous range of partitions, the
//! first `partitions % members` getting one extra.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::group::protocol::TopicPartitions;

/// The protocol name this assignor registers under in JoinGroup.
pub const RANGE: &str = "range";

/// One member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignorMember {
    /// Member id from JoinGroup.
    pub member_id: String,
    /// Static instance id, if the member has one.
    pub group_instance_id: Option<String>,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
}

fn member_order(a: &AssignorMember, b: &AssignorMember) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

/// Assigns the partitions of each subscribed topic (`partition_counts`:
/// topic -> number of partitions; topics missing there are skipped). Returns
/// every member's assignment (possibly empty), keyed by member id, with
/// topics and partitions sorted.
pub fn range_assign(
    members: &[AssignorMember],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartitions>> {
    let mut out: BTreeMap<String, Vec<TopicPartitions>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut subscribers: Vec<&AssignorMember> = members
            .iter()
            .filter(|m| m.topics.iter().any(|t| t == topic))
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_by(|a, b| member_order(a, b));
        let n = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
        let per_member = count / n;
        let with_extra = count % n;
        for (i, m) in (0..).zip(&subscribers) {
            let start = per_member * i + i.min(with_extra);
            let len = per_member + i32::from(i < with_extra);
            if len == 0 {
                continue;
            }
            if let Some(list) = out.get_mut(&m.member_id) {
                list.push(TopicPartitions {
                    topic: topic.clone(),
                    partitions: (start..start + len).collect(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, instance: Option<&str>, topics: &[&str]) -> AssignorMember {
        AssignorMember {
            member_id: id.into(),
            group_instance_id: instance.map(str::to_string),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn parts(out: &BTreeMap<String, Vec<TopicPartitions>>, id: &str, topic: &str) -> Vec<i32> {
        out[id]
            .iter()
            .find(|tp| tp.topic == topic)
            .map(|tp| tp.partitions.clone())
            .unwrap_or_default()
    }

    #[test]
    fn uneven_split_gives_the_first_members_one_extra() {
        let members = [
            member("c", None, &["t"]),
            member("a", None, &["t"]),
            member("b", None, &["t"]),
        ];
        let out = range_assign(&members, &counts(&[("t", 7)]));
        assert_eq!(parts(&out, "a", "t"), vec![0, 1, 2]);
        assert_eq!(parts(&out, "b", "t"), vec![3, 4]);
        assert_eq!(parts(&out, "c", "t"), vec![5, 6]);
    }

    #[test]
    fn every_partition_is_assigned_exactly_once() {
        for n_members in 1..6 {
            for n_parts in 0..13 {
                let members: Vec<AssignorMember> = (0..n_members)
                    .map(|i| member(&format!("m{i}"), None, &["t"]))
                    .collect();
                let out = range_assign(&members, &counts(&[("t", n_parts)]));
                let mut all: Vec<i32> = out
                    .values()
                    .flatten()
                    .flat_map(|tp| tp.partitions.clone())
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..n_parts).collect::<Vec<_>>());
                let sizes: Vec<usize> = out
                    .values()
                    .map(|v| v.iter().map(|tp| tp.partitions.len()).sum())
                    .collect();
                let (min, max) = (sizes.iter().min(), sizes.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
            }
        }
    }

    #[test]
    fn more_members_than_partitions_leaves_the_last_empty() {
        let members = [
            member("a", None, &["t"]),
            member("b", None, &["t"]),
            member("c", None, &["t"]),
        ];
        let out = range_assign(&members, &counts(&[("t", 2)]));
        assert_eq!(parts(&out, "a", "t"), vec![0]);
        assert_eq!(parts(&out, "b", "t"), vec![1]);
        assert!(out["c"].is_empty(), "c is still listed, with nothing");
    }

    #[test]
    fn topics_are_split_among_their_own_subscribers_only() {
        let members = [member("a", None, &["x", "y"]), member("b", None, &["y"])];
        let out = range_assign(&members, &counts(&[("x", 2), ("y", 2), ("z", 4)]));
        assert_eq!(parts(&out, "a", "x"), vec![0, 1]);
        assert_eq!(parts(&out, "a", "y"), vec![0]);
        assert_eq!(parts(&out, "b", "y"), vec![1]);
        assert!(parts(&out, "a", "z").is_empty(), "nobody subscribes to z");
    }

    #[test]
    fn static_members_sort_by_instance_id_before_dynamic_ones() {
        let members = [
            member("a-dynamic", None, &["t"]),
            member("z-member", Some("instance-1"), &["t"]),
            member("b-member", Some("instance-2"), &["t"]),
        ];
        let out = range_assign(&members, &counts(&[("t", 3)]));
        assert_eq!(parts(&out, "z-member", "t"), vec![0]);
        assert_eq!(parts(&out, "b-member", "t"), vec![1]);
        assert_eq!(parts(&out, "a-dynamic", "t"), vec![2]);
    }
}
