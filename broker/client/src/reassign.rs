//! AlterPartitionReassignments: move a topic's partitions to new replica sets (how a topic's
//! replication factor changes).

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{check, Result};

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
}
