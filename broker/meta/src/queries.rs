//! Read-only views of the applied state: the questions the broker, the
//! controller and [`ClusterState::apply`] ask of a [`ClusterState`] or a
//! [`PartitionMeta`] (liveness, partitions by leader or replica, offline,
//! under-replicated and reassigning partitions, preferred-leader imbalance,
//! unclean election). Nothing here changes the state.

use std::collections::BTreeMap;

use crate::election;
use crate::state::UNCLEAN_LEADER_ELECTION;
use crate::types::{BrokerId, BrokerInfo, ClusterState, PartitionMeta, NO_LEADER};

impl ClusterState {
    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// A partition's metadata.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// Partitions whose ISR is smaller than their replica set (Kafka's under-replicated count).
    pub fn under_replicated_count(&self) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.isr.len() < p.replicas.len() - p.adding.len().min(p.replicas.len()))
            .count()
    }

    /// Partitions without a leader.
    pub fn offline_count(&self) -> usize {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == NO_LEADER)
            .count()
    }

    /// True when `broker` is registered and unfenced.
    pub fn is_live(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// True when `broker` is live and not in controlled shutdown: it may be
    /// elected leader or join an ISR.
    pub fn is_eligible(&self, broker: BrokerId) -> bool {
        self.is_live(broker) && !self.shutting_down.contains(&broker)
    }

    /// True when `broker` asked for a controlled shutdown and has not been
    /// fenced or registered again since.
    pub fn in_controlled_shutdown(&self, broker: BrokerId) -> bool {
        self.shutting_down.contains(&broker)
    }

    /// The topic's replication factor: the replica count of partition 0 once
    /// any reassignment in progress is done (`None` for an unknown topic or
    /// one without partitions).
    pub fn replication_factor(&self, topic: &str) -> Option<usize> {
        let p = self.topics.get(topic)?.partitions.first()?;
        Some(p.replicas.len() - p.removing.len().min(p.replicas.len()))
    }

    /// `(topic, partition)` of every partition `broker` leads, in name order.
    pub fn partitions_led_by(&self, broker: BrokerId) -> Vec<(String, i32)> {
        self.partitions_where(|p| p.leader == broker)
    }

    /// `(topic, partition)` of every partition `broker` replicates (leading or following).
    pub fn partitions_replicated_by(&self, broker: BrokerId) -> Vec<(String, i32)> {
        self.partitions_where(|p| p.replicas.contains(&broker))
    }

    /// `(topic, partition)` of every partition without a leader.
    pub fn offline_partitions(&self) -> Vec<(String, i32)> {
        self.partitions_where(PartitionMeta::is_offline)
    }

    /// `(topic, partition)` of every under-replicated partition.
    pub fn under_replicated_partitions(&self) -> Vec<(String, i32)> {
        self.partitions_where(PartitionMeta::is_under_replicated)
    }

    /// `(topic, partition)` of every partition with a reassignment in
    /// progress (ListPartitionReassignments; `adding`/`removing` say what moves).
    pub fn reassigning_partitions(&self) -> Vec<(String, i32)> {
        self.partitions_where(PartitionMeta::is_reassigning)
    }

    /// Partitions whose preferred (first) replica is live and in the ISR but
    /// does not lead: what an automatic preferred-leader rebalance would
    /// elect with [`Election::Preferred`].
    pub fn preferred_imbalance(&self) -> Vec<(String, i32)> {
        self.partitions_where(|p| {
            p.replicas.first().is_some_and(|&preferred| {
                p.leader != preferred && p.isr.contains(&preferred) && self.is_eligible(preferred)
            })
        })
    }

    /// Per preferred broker: `(partitions it should lead but does not,
    /// partitions it is the preferred replica of)`. Kafka rebalances a
    /// broker's leaderships once the first over the second exceeds
    /// `leader.imbalance.per.broker.percentage`.
    pub fn preferred_leader_imbalance_by_broker(&self) -> BTreeMap<BrokerId, (usize, usize)> {
        let mut out: BTreeMap<BrokerId, (usize, usize)> = BTreeMap::new();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            if let Some(&preferred) = p.replicas.first() {
                let entry = out.entry(preferred).or_default();
                entry.1 += 1;
                if p.leader != preferred {
                    entry.0 += 1;
                }
            }
        }
        out
    }

    /// Whether a topic may elect an out-of-sync leader: its own
    /// `unclean.leader.election.enable`, else the cluster-wide broker default.
    pub fn unclean_election_enabled(&self, topic: &str) -> bool {
        let topic_value = self
            .topics
            .get(topic)
            .and_then(|t| t.configs.get(UNCLEAN_LEADER_ELECTION));
        let value = topic_value.or_else(|| {
            self.broker_configs
                .get("")
                .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION))
        });
        value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn partitions_where(&self, keep: impl Fn(&PartitionMeta) -> bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for (index, p) in topic.partitions.iter().enumerate() {
                if keep(p) {
                    out.push((name.clone(), partition_index(index)));
                }
            }
        }
        out
    }
}

impl PartitionMeta {
    /// Fewer in-sync replicas than assigned ones (replicas being added by a
    /// reassignment do not count as missing), Kafka's under-replicated.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len() - self.adding.len().min(self.replicas.len())
    }

    /// No leader: the partition can be neither produced to nor fetched from.
    pub fn is_offline(&self) -> bool {
        self.leader == NO_LEADER
    }

    /// A reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas once a reassignment in progress completes (the replicas when none is).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        election::target_replicas(self)
    }

    /// The replicas before the reassignment in progress began, or the replicas
    /// when none is (what a cancel reverts to).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }
}

/// Partition indexes are `i32` on the wire; a topic never has more.
fn partition_index(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}
