//! Sans-IO core of scaling a Cluster: whether a smaller size is allowed at all, and which
//! brokers must be drained before the StatefulSet may shrink.
//!
//! Broker node ids are the StatefulSet ordinals, so going from `n` to `m < n` brokers removes
//! brokers `m..n`. Kubernetes would stop them at once; the reconciler keeps the StatefulSet at
//! `n` until their agents report that they hold no replica.

/// A topic's replication factor, as the scale-down guard sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicReplicas {
    /// Topic name.
    pub name: String,
    /// Its largest replica count over its partitions.
    pub replication_factor: usize,
}

/// What scaling asks of this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleStep {
    /// The StatefulSet already has the requested size (or is growing to it).
    Steady,
    /// Fewer brokers were asked for: drain these node ids (highest first), then shrink.
    Shrink {
        /// Node ids that go away.
        removed: Vec<i32>,
    },
    /// Fewer brokers were asked for than can hold the data or keep the quorum: nothing is
    /// changed; the message says why.
    Refused(String),
}

/// Decides the scaling step from the StatefulSet's current size, the requested one, the
/// topics (largest replication factor first is not required) and the metadata quorum's voters.
///
/// A shrink is refused when a topic's replication factor exceeds the new broker count (its
/// partitions could not keep all their replicas), or when it would remove a metadata quorum
/// voter (the brokers cannot take one out of the quorum yet, so it would stay a voter that
/// never answers; removing a majority would lose the quorum outright).
pub fn scale_step(
    current: i32,
    desired: i32,
    topics: &[TopicReplicas],
    voters: &[i32],
) -> ScaleStep {
    if desired >= current {
        return ScaleStep::Steady;
    }
    let new_size = usize::try_from(desired).unwrap_or(0);
    let mut too_wide: Vec<&TopicReplicas> = topics
        .iter()
        .filter(|t| t.replication_factor > new_size)
        .collect();
    if !too_wide.is_empty() {
        too_wide.sort_by(|a, b| {
            b.replication_factor
                .cmp(&a.replication_factor)
                .then_with(|| a.name.cmp(&b.name))
        });
        let named: Vec<String> = too_wide
            .iter()
            .take(5)
            .map(|t| format!("{} (replication factor {})", t.name, t.replication_factor))
            .collect();
        let more = too_wide.len().saturating_sub(named.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return ScaleStep::Refused(format!(
            "cannot scale down from {current} to {desired} brokers: topic {}{more} needs more brokers than that; lower its replication factor first",
            named.join(", ")
        ));
    }
    // The brokers cannot take a voter out of the metadata quorum yet, so removing one would
    // leave the quorum a voter that never answers again (one failure from losing its
    // majority, or past it already). The voters are the lowest node ids, so this only
    // refuses sizes below the voter count.
    let removed_voters: Vec<String> = voters
        .iter()
        .filter(|v| **v >= desired)
        .map(i32::to_string)
        .collect();
    if !removed_voters.is_empty() {
        let remaining = voters.len() - removed_voters.len();
        let majority = if remaining * 2 > voters.len() {
            String::new()
        } else {
            format!(", {remaining} of {} is not a majority", voters.len())
        };
        return ScaleStep::Refused(format!(
            "cannot scale down from {current} to {desired} brokers: broker(s) {} are metadata quorum voters ({voters:?}) and voters cannot be removed yet{majority}; keep at least {} brokers",
            removed_voters.join(", "),
            voters.iter().max().map_or(0, |m| m + 1)
        ));
    }
    ScaleStep::Shrink {
        removed: (desired..current).rev().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, rf: usize) -> TopicReplicas {
        TopicReplicas {
            name: name.into(),
            replication_factor: rf,
        }
    }

    #[test]
    fn growing_or_keeping_the_size_is_steady() {
        assert_eq!(
            scale_step(3, 5, &[topic("a", 3)], &[0, 1, 2]),
            ScaleStep::Steady
        );
        assert_eq!(scale_step(3, 3, &[], &[0, 1, 2]), ScaleStep::Steady);
    }

    #[test]
    fn shrinking_drains_the_highest_ordinals_first() {
        assert_eq!(
            scale_step(5, 3, &[topic("a", 3), topic("b", 1)], &[0, 1, 2]),
            ScaleStep::Shrink {
                removed: vec![4, 3]
            }
        );
    }

    #[test]
    fn a_topic_wider_than_the_new_size_refuses_and_is_named() {
        let step = scale_step(3, 2, &[topic("orders", 3), topic("logs", 2)], &[0, 1, 2]);
        match step {
            ScaleStep::Refused(message) => {
                assert!(
                    message.contains("orders (replication factor 3)"),
                    "{message}"
                );
                assert!(!message.contains("logs"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn removing_a_quorum_voter_is_refused() {
        // Voters 0, 1, 2: keeping only voter 0 leaves 1 of 3.
        let step = scale_step(3, 1, &[topic("a", 1)], &[0, 1, 2]);
        assert!(
            matches!(&step, ScaleStep::Refused(m) if m.contains("broker(s) 1, 2 are metadata quorum voters") && m.contains("1 of 3 is not a majority")),
            "{step:?}"
        );
        // Keeping voters 0 and 1 keeps a majority, but voter 2 would never answer again.
        let step = scale_step(3, 2, &[topic("a", 2)], &[0, 1, 2]);
        assert!(
            matches!(&step, ScaleStep::Refused(m) if m.contains("broker(s) 2 are") && m.contains("keep at least 3 brokers")),
            "{step:?}"
        );
        // Observers go freely.
        assert_eq!(
            scale_step(5, 3, &[topic("a", 3)], &[0, 1, 2]),
            ScaleStep::Shrink {
                removed: vec![4, 3]
            }
        );
    }
}
