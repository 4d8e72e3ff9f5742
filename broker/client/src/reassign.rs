//! AlterPartitionReassignments: move a topic's partitions to new replica sets (how a topic's
//! replication factor changes), and the replication throttle that bounds the copying, set and
//! removed the way `kafka-reassign-partitions --throttle` does.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::admin::AlterConfigOp;
use crate::client::Client;
use crate::error::Result;

/// Broker config: leader-side throttle rate in bytes/s.
pub const LEADER_THROTTLE_RATE: &str = "leader.replication.throttled.rate";
/// Broker config: follower-side throttle rate in bytes/s.
pub const FOLLOWER_THROTTLE_RATE: &str = "follower.replication.throttled.rate";
/// Topic config: `partition:broker` replicas throttled on the leader side.
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic config: `partition:broker` replicas throttled on the follower side.
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// One partition's move, for planning its throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Replicas now.
    pub current: Vec<i32>,
    /// Replicas wanted.
    pub target: Vec<i32>,
}

/// What a reassignment throttle sets (Kafka's rules): on the leader side every
/// current replica of a moving partition (any of them may lead while it
/// copies), on the follower side the replicas being added; the rates go on
/// every broker involved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignmentThrottle {
    /// Per topic, `leader.replication.throttled.replicas` (`partition:broker,...`).
    pub leader_replicas: BTreeMap<String, String>,
    /// Per topic, `follower.replication.throttled.replicas`.
    pub follower_replicas: BTreeMap<String, String>,
    /// Brokers holding a current or target replica.
    pub brokers: BTreeSet<i32>,
}

impl ReassignmentThrottle {
    /// The throttle for `moves` (partitions whose replicas do not change are left out).
    pub fn plan(moves: &[PartitionMove]) -> ReassignmentThrottle {
        let mut leader: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut follower: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut brokers = BTreeSet::new();
        for m in moves {
            let adding: Vec<i32> = m
                .target
                .iter()
                .copied()
                .filter(|r| !m.current.contains(r))
                .collect();
            if adding.is_empty() {
                continue;
            }
            brokers.extend(m.current.iter().chain(&m.target).copied());
            let entries = |replicas: &[i32]| {
                replicas
                    .iter()
                    .map(|r| format!("{}:{r}", m.partition))
                    .collect::<Vec<_>>()
            };
            leader
                .entry(m.topic.clone())
                .or_default()
                .extend(entries(&m.current));
            follower
                .entry(m.topic.clone())
                .or_default()
                .extend(entries(&adding));
        }
        let join = |map: BTreeMap<String, Vec<String>>| {
            map.into_iter()
                .map(|(t, v)| (t, v.join(",")))
                .collect::<BTreeMap<_, _>>()
        };
        ReassignmentThrottle {
            leader_replicas: join(leader),
            follower_replicas: join(follower),
            brokers,
        }
    }

    /// True when nothing is copied (no replica is added).
    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
    }
}

impl Client {
    /// Sets a reassignment's throttle: `rate` bytes/s on both sides of every
    /// broker involved, and the throttled-replica lists of every topic moved.
    pub async fn set_reassignment_throttle(
        &self,
        throttle: &ReassignmentThrottle,
        rate: u64,
    ) -> Result<()> {
        let rate = rate.to_string();
        for b in &throttle.brokers {
            self.alter_broker_configs(
                Some(*b),
                &[
                    AlterConfigOp::Set(LEADER_THROTTLE_RATE.into(), rate.clone()),
                    AlterConfigOp::Set(FOLLOWER_THROTTLE_RATE.into(), rate.clone()),
                ],
                false,
            )
            .await?;
        }
        let topics: BTreeSet<&String> = throttle
            .leader_replicas
            .keys()
            .chain(throttle.follower_replicas.keys())
            .collect();
        for topic in topics {
            let mut ops = Vec::new();
            for (key, lists) in [
                (LEADER_THROTTLED_REPLICAS, &throttle.leader_replicas),
                (FOLLOWER_THROTTLED_REPLICAS, &throttle.follower_replicas),
            ] {
                if let Some(list) = lists.get(topic) {
                    ops.push(AlterConfigOp::Set(key.into(), list.clone()));
                }
            }
            self.alter_topic_configs(topic, &ops, false).await?;
        }
        Ok(())
    }

    /// Removes reassignment throttles: the rate configs of `brokers` and the
    /// throttled-replica lists of `topics`.
    pub async fn remove_reassignment_throttle(
        &self,
        topics: &[String],
        brokers: &[i32],
    ) -> Result<()> {
        for b in brokers {
            self.alter_broker_configs(
                Some(*b),
                &[
                    AlterConfigOp::Delete(LEADER_THROTTLE_RATE.into()),
                    AlterConfigOp::Delete(FOLLOWER_THROTTLE_RATE.into()),
                ],
                false,
            )
            .await?;
        }
        for topic in topics {
            self.alter_topic_configs(
                topic,
                &[
                    AlterConfigOp::Delete(LEADER_THROTTLED_REPLICAS.into()),
                    AlterConfigOp::Delete(FOLLOWER_THROTTLED_REPLICAS.into()),
                ],
                false,
            )
            .await?;
        }
        Ok(())
    }
}

impl Client {
    /// Asks the controller to move each listed partition of `topic` to its replica list
    /// (`(partition, replicas)`); the replica count may differ from the current one. Errors
    /// name the first partition the broker refused; a broker without the API answers
    /// [`crate::Error::UnsupportedApi`].
    pub async fn reassign_partitions(
        &self,
        topic: &str,
        assignments: &[(i32, Vec<i32>)],
    ) -> Result<()> {
        let timeout_ms =
            i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        let resp = self
            .request(self.controller_route(), i16::MAX, |version| {
                let mut req = AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(vec![ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(
                            assignments
                                .iter()
                                .map(|(p, replicas)| {
                                    ReassignablePartition::default()
                                        .with_partition_index(*p)
                                        .with_replicas(Some(
                                            replicas.iter().map(|&r| BrokerId(r)).collect(),
                                        ))
                                })
                                .collect(),
                        )]);
                // v1 (KIP-860) lets a reassignment change the replica count explicitly.
                if version >= 1 {
                    req = req.with_allow_replication_factor_change(true);
                }
                Ok(req)
            })
            .await?;
        crate::cluster::check_reassignment(topic, resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(topic: &str, partition: i32, current: &[i32], target: &[i32]) -> PartitionMove {
        PartitionMove {
            topic: topic.into(),
            partition,
            current: current.to_vec(),
            target: target.to_vec(),
        }
    }

    #[test]
    fn the_throttle_covers_current_replicas_as_leaders_and_added_ones_as_followers() {
        let t = ReassignmentThrottle::plan(&[
            mv("a", 0, &[1], &[1, 2, 3]),
            mv("a", 1, &[2, 3], &[3, 4]),
            mv("b", 0, &[1, 2], &[2, 1]),
        ]);
        assert_eq!(t.leader_replicas["a"], "0:1,1:2,1:3");
        assert_eq!(t.follower_replicas["a"], "0:2,0:3,1:4");
        assert!(
            !t.leader_replicas.contains_key("b"),
            "a reorder copies nothing"
        );
        assert_eq!(
            t.brokers.iter().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert!(ReassignmentThrottle::plan(&[mv("b", 0, &[1, 2], &[1])]).is_empty());
    }
}
