//! Sans-IO planning for the Topic reconciler: from a `Topic` spec and what the brokers report,
//! decide which Kafka admin calls bring the topic to the spec, or why it cannot be done.
//! No client here, so every case is unit-tested; the reconciler only executes the plan.

use std::collections::BTreeMap;

use crate::crd::TopicSpec;

/// A topic as the brokers describe it (Metadata + DescribeConfigs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTopic {
    /// Number of partitions.
    pub partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i32,
    /// Topic-level config values that are set on the topic (not broker defaults).
    pub configs: BTreeMap<String, String>,
}

/// One Kafka admin action toward the desired topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicAction {
    /// CreateTopics with these settings (`replication_factor` None = broker default).
    Create {
        /// Kafka topic name.
        name: String,
        /// Partition count.
        partitions: i32,
        /// Replication factor, or the broker's default.
        replication_factor: Option<i32>,
        /// Managed configs.
        configs: BTreeMap<String, String>,
    },
    /// CreatePartitions up to this total.
    AddPartitions {
        /// New total partition count.
        total: i32,
    },
    /// IncrementalAlterConfigs SET of these keys (values differ from the spec or were removed
    /// out of band; keys with a null value in the spec are never touched).
    SetConfigs {
        /// Keys and desired values.
        configs: BTreeMap<String, String>,
    },
    /// Reassign partitions to reach this replication factor.
    ChangeReplicationFactor {
        /// Current replication factor.
        from: i32,
        /// Desired replication factor.
        to: i32,
    },
}

/// Why (part of) the spec cannot be applied; the topic is left as it is for that part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicProblem {
    /// The spec asks for fewer partitions than the topic has.
    PartitionsCannotShrink {
        /// Partitions on the brokers.
        actual: i32,
        /// Partitions in the spec.
        desired: i32,
    },
    /// The replication factor exceeds the number of brokers.
    ReplicationFactorTooLarge {
        /// Desired replication factor.
        desired: i32,
        /// Brokers in the cluster.
        brokers: i32,
    },
}

impl TopicProblem {
    /// The condition reason (CamelCase) naming this problem.
    pub fn reason(&self) -> &'static str {
        match self {
            TopicProblem::PartitionsCannotShrink { .. } => "PartitionsCannotShrink",
            TopicProblem::ReplicationFactorTooLarge { .. } => "ReplicationFactorTooLarge",
        }
    }

    /// A message for the condition and the Event.
    pub fn message(&self) -> String {
        match self {
            TopicProblem::PartitionsCannotShrink { actual, desired } => {
                format!("the topic has {actual} partitions; Kafka cannot reduce them to {desired}")
            }
            TopicProblem::ReplicationFactorTooLarge { desired, brokers } => format!(
                "replicationFactor {desired} is more than the {brokers} brokers of the cluster"
            ),
        }
    }
}

/// What the reconciler must do for one Topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPlan {
    /// Admin actions, in the order to execute them.
    pub actions: Vec<TopicAction>,
    /// Parts of the spec that cannot be applied.
    pub problems: Vec<TopicProblem>,
}

/// The Kafka name of a Topic: `spec.topicName`, else the object's name.
pub fn topic_name<'a>(spec: &'a TopicSpec, object_name: &'a str) -> &'a str {
    spec.topic_name.as_deref().unwrap_or(object_name)
}

/// Plans the admin actions that bring `observed` (None: the topic does not exist) to `spec`
/// on a cluster of `brokers` brokers. Idempotent: an observed topic equal to the spec gives an
/// empty plan.
pub fn plan_topic(
    spec: &TopicSpec,
    object_name: &str,
    observed: Option<&ObservedTopic>,
    brokers: i32,
) -> TopicPlan {
    let mut plan = TopicPlan::default();
    let managed: BTreeMap<String, String> = spec
        .config
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    let rf_fits = match spec.replication_factor {
        Some(rf) if rf > brokers => {
            plan.problems.push(TopicProblem::ReplicationFactorTooLarge {
                desired: rf,
                brokers,
            });
            false
        }
        _ => true,
    };
    let Some(observed) = observed else {
        if rf_fits {
            plan.actions.push(TopicAction::Create {
                name: topic_name(spec, object_name).to_string(),
                partitions: spec.partitions,
                replication_factor: spec.replication_factor,
                configs: managed,
            });
        }
        return plan;
    };
    match spec.partitions.cmp(&observed.partitions) {
        std::cmp::Ordering::Greater => plan.actions.push(TopicAction::AddPartitions {
            total: spec.partitions,
        }),
        std::cmp::Ordering::Less => plan.problems.push(TopicProblem::PartitionsCannotShrink {
            actual: observed.partitions,
            desired: spec.partitions,
        }),
        std::cmp::Ordering::Equal => {}
    }
    let drifted: BTreeMap<String, String> = managed
        .into_iter()
        .filter(|(k, v)| observed.configs.get(k) != Some(v))
        .collect();
    if !drifted.is_empty() {
        plan.actions
            .push(TopicAction::SetConfigs { configs: drifted });
    }
    if let Some(rf) = spec.replication_factor {
        if rf_fits && rf != observed.replication_factor {
            plan.actions.push(TopicAction::ChangeReplicationFactor {
                from: observed.replication_factor,
                to: rf,
            });
        }
    }
    plan
}

/// New replica lists that give every partition `rf` replicas: current replicas are kept in
/// order (the leader stays first), extra ones are taken from `brokers` round-robin starting at
/// the partition index (spreading the load), surplus ones are dropped from the end. Returns only
/// the partitions whose list changes; empty when `brokers` has fewer than `rf` brokers.
pub fn reassignment_targets(
    current: &[(i32, Vec<i32>)],
    brokers: &[i32],
    rf: usize,
) -> Vec<(i32, Vec<i32>)> {
    if brokers.len() < rf {
        return Vec::new();
    }
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    let mut out = Vec::new();
    for (partition, replicas) in current {
        let mut target: Vec<i32> = replicas.iter().copied().take(rf).collect();
        let start = usize::try_from(*partition).unwrap_or(0);
        for i in 0..brokers.len() {
            if target.len() >= rf {
                break;
            }
            let b = brokers[(start + i) % brokers.len()];
            if !target.contains(&b) {
                target.push(b);
            }
        }
        if &target != replicas {
            out.push((*partition, target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClusterReference, DeletionPolicy};

    fn spec(partitions: i32, rf: Option<i32>, config: &[(&str, Option<&str>)]) -> TopicSpec {
        TopicSpec {
            cluster_ref: ClusterReference {
                name: "demo".into(),
            },
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn observed(partitions: i32, rf: i32, configs: &[(&str, &str)]) -> ObservedTopic {
        ObservedTopic {
            partitions,
            replication_factor: rf,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn missing_topic_is_created_with_managed_configs_only() {
        let s = spec(
            6,
            Some(3),
            &[("retention.ms", Some("1000")), ("segment.bytes", None)],
        );
        let plan = plan_topic(&s, "orders", None, 3);
        assert_eq!(
            plan,
            TopicPlan {
                actions: vec![TopicAction::Create {
                    name: "orders".into(),
                    partitions: 6,
                    replication_factor: Some(3),
                    configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                }],
                problems: vec![],
            }
        );
    }

    #[test]
    fn topic_name_overrides_object_name() {
        let mut s = spec(1, None, &[]);
        s.topic_name = Some("legacy.orders".into());
        let plan = plan_topic(&s, "orders", None, 1);
        assert!(
            matches!(&plan.actions[0], TopicAction::Create { name, .. } if name == "legacy.orders")
        );
    }

    #[test]
    fn topic_matching_the_spec_needs_nothing() {
        let s = spec(
            6,
            Some(3),
            &[("retention.ms", Some("1000")), ("segment.bytes", None)],
        );
        let o = observed(6, 3, &[("retention.ms", "1000"), ("segment.bytes", "42")]);
        assert_eq!(plan_topic(&s, "orders", Some(&o), 3), TopicPlan::default());
    }

    #[test]
    fn more_partitions_and_config_drift_are_applied() {
        let s = spec(
            8,
            None,
            &[
                ("retention.ms", Some("1000")),
                ("cleanup.policy", Some("compact")),
            ],
        );
        // retention.ms changed out of band, cleanup.policy deleted out of band.
        let o = observed(6, 1, &[("retention.ms", "5")]);
        assert_eq!(
            plan_topic(&s, "orders", Some(&o), 3).actions,
            vec![
                TopicAction::AddPartitions { total: 8 },
                TopicAction::SetConfigs {
                    configs: BTreeMap::from([
                        ("cleanup.policy".into(), "compact".into()),
                        ("retention.ms".into(), "1000".into()),
                    ]),
                },
            ]
        );
    }

    #[test]
    fn fewer_partitions_is_a_problem_not_an_action() {
        let plan = plan_topic(&spec(3, None, &[]), "orders", Some(&observed(6, 1, &[])), 1);
        assert!(plan.actions.is_empty());
        assert_eq!(
            plan.problems,
            vec![TopicProblem::PartitionsCannotShrink {
                actual: 6,
                desired: 3
            }]
        );
        assert_eq!(plan.problems[0].reason(), "PartitionsCannotShrink");
    }

    #[test]
    fn replication_factor_above_broker_count_is_refused_but_the_rest_applies() {
        let s = spec(4, Some(5), &[("retention.ms", Some("1"))]);
        let plan = plan_topic(&s, "orders", Some(&observed(2, 3, &[])), 3);
        assert_eq!(
            plan.problems,
            vec![TopicProblem::ReplicationFactorTooLarge {
                desired: 5,
                brokers: 3
            }]
        );
        assert_eq!(
            plan.actions,
            vec![
                TopicAction::AddPartitions { total: 4 },
                TopicAction::SetConfigs {
                    configs: BTreeMap::from([("retention.ms".into(), "1".into())])
                },
            ]
        );
        // A topic that does not exist yet is not created with an impossible replication factor.
        assert!(plan_topic(&s, "orders", None, 3).actions.is_empty());
    }

    #[test]
    fn replication_factor_change_is_a_reassignment() {
        let plan = plan_topic(
            &spec(1, Some(3), &[]),
            "orders",
            Some(&observed(1, 1, &[])),
            3,
        );
        assert_eq!(
            plan.actions,
            vec![TopicAction::ChangeReplicationFactor { from: 1, to: 3 }]
        );
    }

    #[test]
    fn reassignment_keeps_current_replicas_and_spreads_new_ones() {
        let current = vec![(0, vec![0]), (1, vec![1]), (2, vec![2, 0])];
        assert_eq!(
            reassignment_targets(&current, &[2, 0, 1], 2),
            vec![(0, vec![0, 1]), (1, vec![1, 2])]
        );
        assert_eq!(
            reassignment_targets(&current, &[0, 1, 2], 1),
            vec![(2, vec![2])]
        );
        assert!(reassignment_targets(&current, &[0], 2).is_empty());
    }
}
