//! The rules the agent answers `CanRestart` and `BrokerStatus` with, as pure
//! functions over cluster metadata and the quorum description, so each rule is
//! unit-tested without a broker.
//!
//! - A partition is *at risk* when stopping this broker would drop its ISR
//!   below `min.insync.replicas` (Kafka's and Strimzi's rule): this broker is
//!   in the ISR, the ISR has at most `min.insync.replicas` members and the
//!   replication factor is larger than `min.insync.replicas` (a topic with
//!   `rf <= min.insync.replicas` can never be rolled without dropping below,
//!   so it does not block). An offline partition (no live leader) has nothing
//!   to lose and is never at risk.
//! - The *quorum rule*: stopping a voter must leave a majority of all voters
//!   in sync, counting the other voters whose log end offset has reached the
//!   quorum's high watermark, and the leader.

use std::collections::{BTreeMap, BTreeSet};

use runnel_client::{ClusterMetadata, PartitionMetadata, QuorumInfo};

use crate::proto::QuorumRole;

/// `min.insync.replicas` of a topic for which none was found (Kafka's default).
pub const DEFAULT_MIN_INSYNC_REPLICAS: i32 = 1;

/// A partition whose ISR would drop below `min.insync.replicas` if this broker stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The ISR now (including this broker).
    pub isr: Vec<i32>,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: i32,
}

impl AtRisk {
    /// `topic-partition`, as Kafka's tools name a partition.
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// The sentence `CanRestart` gives for it.
    pub fn reason(&self) -> String {
        format!(
            "{}: ISR {:?} would drop below min.insync.replicas={}",
            self.name(),
            self.isr,
            self.min_insync_replicas
        )
    }
}

/// Whether `partition` has no live leader (none, or one Metadata does not list as live).
pub fn is_offline(metadata: &ClusterMetadata, partition: &PartitionMetadata) -> bool {
    partition.leader < 0
        || !metadata
            .brokers
            .iter()
            .any(|b| b.node_id == partition.leader)
}

/// Topics (without errors) with a replica on `node`, sorted.
pub fn hosted_topics(metadata: &ClusterMetadata, node: i32) -> Vec<String> {
    metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter(|t| t.partitions.iter().any(|p| p.replicas.contains(&node)))
        .map(|t| t.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The partitions at risk if `node` stopped; `min_isr` holds each topic's
/// `min.insync.replicas` ([`DEFAULT_MIN_INSYNC_REPLICAS`] for a topic missing from it).
pub fn at_risk_partitions(
    metadata: &ClusterMetadata,
    node: i32,
    min_isr: &BTreeMap<String, i32>,
) -> Vec<AtRisk> {
    let mut out = Vec::new();
    for t in metadata.topics.iter().filter(|t| t.error_code == 0) {
        let min = min_isr
            .get(&t.name)
            .copied()
            .unwrap_or(DEFAULT_MIN_INSYNC_REPLICAS);
        let min_len = usize::try_from(min).unwrap_or(0);
        for p in &t.partitions {
            if !p.isr.contains(&node) || is_offline(metadata, p) {
                continue;
            }
            if p.isr.len() <= min_len && p.replicas.len() > min_len {
                out.push(AtRisk {
                    topic: t.name.clone(),
                    partition: p.partition,
                    isr: p.isr.clone(),
                    min_insync_replicas: min,
                });
            }
        }
    }
    out
}

/// Cluster-wide `(under-replicated, offline)` partition counts.
pub fn cluster_health(metadata: &ClusterMetadata) -> (u32, u32) {
    let (mut under, mut offline) = (0u32, 0u32);
    for p in metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| t.partitions.iter())
    {
        if p.isr.len() < p.replicas.len() {
            under += 1;
        }
        if is_offline(metadata, p) {
            offline += 1;
        }
    }
    (under, offline)
}

/// `node`'s role in the quorum: the leader, another voter, or an observer
/// (listed as one, or not listed at all).
pub fn quorum_role(quorum: &QuorumInfo, node: i32) -> QuorumRole {
    if quorum.leader_id == node {
        QuorumRole::Leader
    } else if quorum.voters.iter().any(|v| v.node_id == node) {
        QuorumRole::Voter
    } else {
        QuorumRole::Observer
    }
}

/// Why stopping `node` would cost the quorum its majority, or `None` when it
/// would not (always `None` for a non-voter).
///
/// The voters other than `node` count as in sync when their log end offset
/// has reached the quorum's high watermark, or when they lead.
pub fn quorum_refusal(quorum: &QuorumInfo, node: i32) -> Option<String> {
    if !quorum.voters.iter().any(|v| v.node_id == node) {
        return None;
    }
    let voters = quorum.voters.len();
    let in_sync = quorum
        .voters
        .iter()
        .filter(|v| v.node_id != node)
        .filter(|v| v.node_id == quorum.leader_id || v.log_end_offset >= quorum.high_watermark)
        .count();
    let majority = voters / 2 + 1;
    (in_sync < majority).then(|| {
        format!(
            "metadata quorum: stopping voter {node} leaves {in_sync} of {voters} voters in sync, \
             a majority needs {majority}"
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use runnel_client::{BrokerMetadata, QuorumMember, TopicMetadata};

    /// A partition as Metadata lists it (shared with the crate's other tests).
    pub(crate) fn partition(
        partition: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionMetadata {
        PartitionMetadata {
            partition,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline_replicas: Vec::new(),
            error_code: 0,
        }
    }

    fn metadata(live: &[i32], topics: Vec<(&str, Vec<PartitionMetadata>)>) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: None,
            controller_id: 0,
            brokers: live
                .iter()
                .map(|&id| BrokerMetadata {
                    node_id: id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                })
                .collect(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| TopicMetadata {
                    name: name.into(),
                    topic_id: Default::default(),
                    is_internal: false,
                    partitions,
                    error_code: 0,
                })
                .collect(),
        }
    }

    fn min_isr(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, m)| (t.to_string(), *m)).collect()
    }

    #[test]
    fn an_isr_at_min_insync_replicas_that_includes_this_broker_is_at_risk() {
        let m = metadata(
            &[1, 2],
            vec![(
                "orders",
                vec![
                    // ISR [1, 2], min 2, rf 3: stopping 1 leaves 1 < 2.
                    partition(3, 2, &[1, 2, 3], &[1, 2]),
                    // Full ISR: one may go.
                    partition(4, 1, &[1, 2, 3], &[1, 2, 3]),
                    // Broker 1 already out of the ISR: stopping it changes nothing.
                    partition(5, 2, &[1, 2, 3], &[2, 3]),
                ],
            )],
        );
        let risky = at_risk_partitions(&m, 1, &min_isr(&[("orders", 2)]));
        assert_eq!(risky.len(), 1, "{risky:?}");
        assert_eq!(risky[0].name(), "orders-3");
        assert_eq!(
            risky[0].reason(),
            "orders-3: ISR [1, 2] would drop below min.insync.replicas=2"
        );
        // With the default min.insync.replicas=1 nothing is at risk.
        assert!(at_risk_partitions(&m, 1, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn topics_whose_replication_factor_is_not_above_min_isr_never_block() {
        let m = metadata(
            &[1, 2],
            vec![
                ("rf2", vec![partition(0, 1, &[1, 2], &[1, 2])]),
                ("rf1", vec![partition(0, 1, &[1], &[1])]),
            ],
        );
        assert!(at_risk_partitions(&m, 1, &min_isr(&[("rf2", 2), ("rf1", 1)])).is_empty());
        // With the default min 1, an rf 2 partition whose ISR is this broker alone is at risk.
        let m = metadata(&[1, 2], vec![("t", vec![partition(0, 1, &[1, 2], &[1])])]);
        assert_eq!(at_risk_partitions(&m, 1, &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn an_offline_partition_has_nothing_to_lose() {
        // Leader 3 is not live, and leader -1: both offline.
        let m = metadata(
            &[1, 2],
            vec![(
                "t",
                vec![
                    partition(0, 3, &[1, 3, 4], &[1, 3]),
                    partition(1, -1, &[1, 3, 4], &[1]),
                ],
            )],
        );
        assert!(at_risk_partitions(&m, 1, &min_isr(&[("t", 2)])).is_empty());
        assert_eq!(cluster_health(&m), (2, 2));
    }

    #[test]
    fn cluster_health_counts_under_replicated_and_leaderless_partitions() {
        let m = metadata(
            &[1, 2, 3],
            vec![
                (
                    "a",
                    vec![
                        partition(0, 1, &[1, 2, 3], &[1, 2, 3]),
                        partition(1, 2, &[1, 2, 3], &[2, 3]),
                        partition(2, -1, &[1], &[1]),
                    ],
                ),
                ("b", vec![partition(0, 3, &[3, 1], &[3])]),
            ],
        );
        assert_eq!(cluster_health(&m), (2, 1));
        assert_eq!(hosted_topics(&m, 3), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(hosted_topics(&m, 4), Vec::<String>::new());
    }

    fn quorum(leader: i32, hw: i64, voters: &[(i32, i64)], observers: &[i32]) -> QuorumInfo {
        QuorumInfo {
            leader_id: leader,
            leader_epoch: 1,
            high_watermark: hw,
            voters: voters
                .iter()
                .map(|&(node_id, log_end_offset)| QuorumMember {
                    node_id,
                    log_end_offset,
                })
                .collect(),
            observers: observers
                .iter()
                .map(|&node_id| QuorumMember {
                    node_id,
                    log_end_offset: -1,
                })
                .collect(),
        }
    }

    #[test]
    fn roles_follow_the_quorum_description() {
        let q = quorum(0, 10, &[(0, 10), (1, 10), (2, 10)], &[3]);
        assert_eq!(quorum_role(&q, 0), QuorumRole::Leader);
        assert_eq!(quorum_role(&q, 2), QuorumRole::Voter);
        assert_eq!(quorum_role(&q, 3), QuorumRole::Observer);
        assert_eq!(quorum_role(&q, 9), QuorumRole::Observer, "unlisted");
    }

    #[test]
    fn stopping_a_voter_needs_a_majority_of_the_others_in_sync() {
        // All caught up: any voter may stop.
        let q = quorum(0, 10, &[(0, 10), (1, 10), (2, 12)], &[3]);
        for node in [0, 1, 2, 3] {
            assert_eq!(quorum_refusal(&q, node), None, "node {node}");
        }
        // Voter 2 lags (or is dead, -1): stopping 1 leaves only the leader.
        let q = quorum(0, 10, &[(0, 10), (1, 10), (2, -1)], &[3]);
        assert_eq!(
            quorum_refusal(&q, 1).as_deref(),
            Some(
                "metadata quorum: stopping voter 1 leaves 1 of 3 voters in sync, a majority needs 2"
            )
        );
        // The leader counts even with an unknown offset of its own.
        let q = quorum(0, 10, &[(0, -1), (1, 10), (2, 10)], &[]);
        assert_eq!(quorum_refusal(&q, 1), None);
        // Observers never hold the quorum.
        let q = quorum(0, 10, &[(0, 10), (1, -1), (2, -1)], &[3]);
        assert_eq!(quorum_refusal(&q, 3), None);
        // One voter: stopping it always loses the majority.
        let q = quorum(0, 10, &[(0, 10)], &[]);
        assert!(quorum_refusal(&q, 0).is_some());
    }
}
