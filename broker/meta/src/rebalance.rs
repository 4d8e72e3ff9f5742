//! The decision of the automatic preferred-leader rebalance (Kafka's
//! `auto.leader.rebalance.enable`) as a pure function over a
//! [`ClusterState`]: which partitions the controller should give back to
//! their preferred replica with [`crate::Election::Preferred`].

use std::collections::BTreeSet;

use crate::types::{BrokerId, ClusterState};

/// Partitions to elect their preferred leader for, in name order: for every
/// broker whose share of not-led preferred partitions (partitions it is the
/// first replica of but does not lead, over all partitions it is the first
/// replica of) exceeds `percentage` percent, those of its partitions where it
/// is live and in the ISR and no reassignment is in progress.
pub(crate) fn preferred_leader_elections(
    state: &ClusterState,
    percentage: u32,
) -> Vec<(String, i32)> {
    let percentage = usize::try_from(percentage).unwrap_or(usize::MAX);
    let over: BTreeSet<BrokerId> = state
        .preferred_leader_imbalance_by_broker()
        .into_iter()
        .filter(|(_, (not_led, total))| {
            not_led.saturating_mul(100) > percentage.saturating_mul(*total)
        })
        .map(|(broker, _)| broker)
        .collect();
    state
        .preferred_imbalance()
        .into_iter()
        .filter(|(topic, partition)| {
            state.partition(topic, *partition).is_some_and(|p| {
                !p.is_reassigning() && p.replicas.first().is_some_and(|b| over.contains(b))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::types::{BrokerInfo, PartitionMeta, TopicMeta};

    fn broker(id: BrokerId, fenced: bool) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "localhost".into(),
            port: 9092,
            endpoints: Vec::new(),
            rack: None,
            controller_addr: "localhost:9093".into(),
            incarnation: Uuid::nil(),
            fenced,
        }
    }

    fn part(replicas: &[BrokerId], isr: &[BrokerId], leader: BrokerId) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
        }
    }

    /// Brokers 1..=3 (those in `fenced` fenced) and one topic `t` with `partitions`.
    fn state(fenced: &[BrokerId], partitions: Vec<PartitionMeta>) -> ClusterState {
        let mut state = ClusterState::default();
        for id in 1..=3 {
            state.brokers.insert(id, broker(id, fenced.contains(&id)));
        }
        state.topics.insert(
            "t".into(),
            std::sync::Arc::new(TopicMeta {
                name: "t".into(),
                id: Uuid::nil(),
                partitions,
                configs: BTreeMap::new(),
            }),
        );
        state
    }

    fn tps(list: &[i32]) -> Vec<(String, i32)> {
        list.iter().map(|&p| ("t".to_owned(), p)).collect()
    }

    /// Ten partitions preferring broker 1, `not_led` of them led by broker 2.
    fn ten_preferring_1(not_led: usize) -> Vec<PartitionMeta> {
        (0..10)
            .map(|i| part(&[1, 2, 3], &[1, 2, 3], if i < not_led { 2 } else { 1 }))
            .collect()
    }

    #[test]
    fn a_balanced_cluster_elects_nothing() {
        let s = state(&[], ten_preferring_1(0));
        assert!(preferred_leader_elections(&s, 0).is_empty());
    }

    #[test]
    fn elects_only_once_the_imbalance_exceeds_the_percentage() {
        // 1 of 10 = 10 %: not above 10, above 9.
        let s = state(&[], ten_preferring_1(1));
        assert!(preferred_leader_elections(&s, 10).is_empty());
        assert_eq!(preferred_leader_elections(&s, 9), tps(&[0]));
        // 2 of 10 = 20 % > 10: every not-led partition of the broker is elected.
        let s = state(&[], ten_preferring_1(2));
        assert_eq!(preferred_leader_elections(&s, 10), tps(&[0, 1]));
        assert!(preferred_leader_elections(&s, 20).is_empty());
    }

    #[test]
    fn the_threshold_applies_per_preferred_broker() {
        // Broker 1 prefers 2 partitions and leads neither (100 %); broker 2
        // prefers 10 and leads 9 (10 %): only broker 1's are elected.
        let mut partitions = vec![part(&[1, 2], &[1, 2], 2), part(&[1, 3], &[1, 3], 3)];
        partitions.extend((0..10).map(|i| part(&[2, 3], &[2, 3], if i == 0 { 3 } else { 2 })));
        let s = state(&[], partitions);
        assert_eq!(preferred_leader_elections(&s, 10), tps(&[0, 1]));
    }

    #[test]
    fn a_fenced_preferred_replica_is_skipped() {
        let mut partitions = ten_preferring_1(10);
        for p in &mut partitions {
            p.isr = vec![2, 3];
        }
        partitions.push(part(&[3, 2], &[3, 2], 2));
        // Broker 1 is fenced (out of the ISR); broker 3 is fenced but still
        // listed in the ISR: neither may lead.
        let s = state(&[1, 3], partitions);
        assert!(preferred_leader_elections(&s, 10).is_empty());
    }

    #[test]
    fn a_preferred_replica_out_of_the_isr_is_skipped() {
        let mut partitions = ten_preferring_1(3);
        partitions[0].isr = vec![2, 3];
        let s = state(&[], partitions);
        assert_eq!(preferred_leader_elections(&s, 10), tps(&[1, 2]));
    }

    #[test]
    fn a_partition_under_reassignment_is_skipped() {
        let mut partitions = ten_preferring_1(3);
        partitions[1].replicas = vec![1, 2, 3, 4];
        partitions[1].adding = vec![4];
        partitions[2].replicas = vec![1, 2, 3];
        partitions[2].removing = vec![3];
        let s = state(&[], partitions);
        assert_eq!(preferred_leader_elections(&s, 10), tps(&[0]));
    }
}
