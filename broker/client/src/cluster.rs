//! Cluster administration: the metadata quorum (DescribeQuorum), partition
//! reassignments in progress (ListPartitionReassignments, cancellation) and
//! leader elections (ElectLeaders).

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, DescribeQuorumRequest, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, Route};
use crate::error::{check, Result};

/// The metadata log's name in DescribeQuorum (Kafka's KRaft topic).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// One member of the metadata quorum as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMember {
    /// Node id.
    pub node_id: i32,
    /// Last metadata log offset known to be on this node (-1 unknown).
    pub log_end_offset: i64,
}

/// The metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The controller (Raft leader), -1 if none.
    pub leader_id: i32,
    /// The Raft term (Kafka's leader epoch of the metadata log).
    pub leader_epoch: i32,
    /// Committed offset of the metadata log.
    pub high_watermark: i64,
    /// Voters.
    pub voters: Vec<QuorumMember>,
    /// Observers (brokers that replicate the metadata without voting).
    pub observers: Vec<QuorumMember>,
}

/// A reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Current replica set (old and new replicas while moving).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// ElectLeaders election type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership back to the preferred (first) replica when it is in sync.
    Preferred,
    /// Elect any live replica of an offline partition, even out of sync (may lose data).
    Unclean,
}

/// One partition's ElectLeaders outcome: `None` = elected, else the Kafka error.
pub type ElectionOutcome = (String, i32, Option<crate::Error>);

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Client {
    /// Describes the metadata quorum (asked of any broker; each knows the quorum).
    pub async fn describe_quorum(&self) -> Result<QuorumInfo> {
        let resp = self
            .request(Route::Any, i16::MAX, |_| {
                Ok(
                    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                        .with_topic_name(topic_name(METADATA_TOPIC))
                        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]),
                )
            })
            .await?;
        check(
            resp.error_code,
            || "the metadata quorum".to_string(),
            resp.error_message.as_deref(),
        )?;
        let part = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| {
                crate::Error::InvalidInput("the DescribeQuorum answer names no partition".into())
            })?;
        check(
            part.error_code,
            || "the metadata quorum".to_string(),
            part.error_message.as_deref(),
        )?;
        let members = |v: Vec<kafka_protocol::messages::describe_quorum_response::ReplicaState>| {
            v.into_iter()
                .map(|r| QuorumMember {
                    node_id: r.replica_id.0,
                    log_end_offset: r.log_end_offset,
                })
                .collect()
        };
        Ok(QuorumInfo {
            leader_id: part.leader_id.0,
            leader_epoch: part.leader_epoch,
            high_watermark: part.high_watermark,
            voters: members(part.current_voters),
            observers: members(part.observers),
        })
    }

    /// Reassignments in progress, for `topics` (`None` = all topics).
    pub async fn list_reassignments(
        &self,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<OngoingReassignment>> {
        let timeout_ms = self.request_timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(topics.map(|list| {
                        list.iter()
                            .map(|(t, parts)| {
                                ListPartitionReassignmentsTopics::default()
                                    .with_name(topic_name(t))
                                    .with_partition_indexes(parts.clone())
                            })
                            .collect()
                    })))
            })
            .await?;
        check(
            resp.error_code,
            || "partition reassignments".to_string(),
            resp.error_message.as_deref(),
        )?;
        let mut out: Vec<OngoingReassignment> = resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: p.replicas.iter().map(|b| b.0).collect(),
                    adding: p.adding_replicas.iter().map(|b| b.0).collect(),
                    removing: p.removing_replicas.iter().map(|b| b.0).collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Cancels the reassignments in progress of these partitions of `topic`.
    pub async fn cancel_reassignments(&self, topic: &str, partitions: &[i32]) -> Result<()> {
        let timeout_ms = self.request_timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(vec![ReassignableTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|&p| {
                                    ReassignablePartition::default()
                                        .with_partition_index(p)
                                        .with_replicas(None)
                                })
                                .collect(),
                        )]))
            })
            .await?;
        check_reassignment(topic, resp)
    }

    /// Elects leaders for `partitions` (`(topic, [partition])`; `None` = every
    /// partition, preferred elections only). Returns one outcome per partition;
    /// ELECTION_NOT_NEEDED counts as success.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<ElectionOutcome>> {
        let timeout_ms = self.request_timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(ElectLeadersRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_election_type(match election {
                        ElectionType::Preferred => 0,
                        ElectionType::Unclean => 1,
                    })
                    .with_topic_partitions(partitions.map(|list| {
                        list.iter()
                            .map(|(t, parts)| {
                                TopicPartitions::default()
                                    .with_topic(topic_name(t))
                                    .with_partitions(parts.clone())
                            })
                            .collect()
                    })))
            })
            .await?;
        check(resp.error_code, || "leader election".to_string(), None)?;
        // ELECTION_NOT_NEEDED: the wanted leader already leads.
        const ELECTION_NOT_NEEDED: i16 = 84;
        let mut out = Vec::new();
        for t in resp.replica_election_results {
            let topic = t.topic.0.to_string();
            for p in t.partition_result {
                let partition = p.partition_id;
                let err = if p.error_code == 0 || p.error_code == ELECTION_NOT_NEEDED {
                    None
                } else {
                    check(
                        p.error_code,
                        || format!("topic '{topic}' partition {partition}"),
                        p.error_message.as_deref(),
                    )
                    .err()
                };
                out.push((topic.clone(), partition, err));
            }
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }

    fn request_timeout_ms(&self) -> i32 {
        i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

/// The first error of an AlterPartitionReassignments answer about `topic`
/// (the request-level one, then each partition's).
pub(crate) fn check_reassignment(
    topic: &str,
    resp: kafka_protocol::messages::AlterPartitionReassignmentsResponse,
) -> Result<()> {
    check(
        resp.error_code,
        || format!("topic '{topic}'"),
        resp.error_message.as_deref(),
    )?;
    for t in resp.responses {
        for p in t.partitions {
            let partition = p.partition_index;
            check(
                p.error_code,
                || format!("topic '{topic}' partition {partition}"),
                p.error_message.as_deref(),
            )?;
        }
    }
    Ok(())
}
