//! The brokers' own view of a Cluster, read once per reconcile over the Kafka protocol:
//! metadata (brokers, partitions, ISRs), the metadata quorum and reassignments in flight.
//! Scaling, rolling and dynamic config decide from it, never from the StatefulSet alone.

use std::time::Duration;

use kube::ResourceExt;
use runnel_client::{Client, ClusterMetadata, OngoingReassignment, QuorumInfo};

use crate::controller::Context;
use crate::crd::Cluster;
use crate::kafka::kafka_err;
use crate::scale::TopicReplicas;
use crate::Error;

/// How long reading the brokers' view may take in one reconcile.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the brokers report.
pub(super) struct BrokerView {
    /// The admin client the view was read with (reused for the pass's admin calls).
    pub(super) client: Client,
    /// Metadata of every topic, internal ones included.
    pub(super) metadata: ClusterMetadata,
    /// The metadata quorum.
    pub(super) quorum: QuorumInfo,
    /// Reassignments in flight.
    pub(super) reassignments: Vec<OngoingReassignment>,
}

impl BrokerView {
    /// Partitions whose ISR is smaller than their replica set.
    pub(super) fn under_replicated(&self) -> usize {
        self.metadata
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.isr.len() < p.replicas.len())
            .count()
    }

    /// Each topic with its largest replica count. A partition being reassigned lists its old
    /// and new replicas together; it counts with the replicas it keeps.
    pub(super) fn topic_replicas(&self) -> Vec<TopicReplicas> {
        self.metadata
            .topics
            .iter()
            .map(|t| TopicReplicas {
                name: t.name.clone(),
                replication_factor: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let removing = self
                            .reassignments
                            .iter()
                            .find(|r| r.topic == t.name && r.partition == p.partition)
                            .map_or(0, |r| r.removing.len());
                        p.replicas.len().saturating_sub(removing)
                    })
                    .max()
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Node ids of the quorum's voters.
    pub(super) fn voters(&self) -> Vec<i32> {
        self.quorum.voters.iter().map(|v| v.node_id).collect()
    }

    /// The quorum leader (the controller), if there is one.
    pub(super) fn quorum_leader(&self) -> Option<i32> {
        (self.quorum.leader_id >= 0).then_some(self.quorum.leader_id)
    }
}

/// Reads the brokers' view of `cluster`.
pub(super) async fn observe(ctx: &Context, cluster: &Cluster) -> Result<BrokerView, Error> {
    let bootstrap = ctx.resolver.bootstrap(cluster)?;
    let read = async {
        let client = ctx.kafka(cluster).await?;
        let metadata = client
            .metadata(None, false)
            .await
            .map_err(kafka_err("read cluster metadata"))?;
        let quorum = client
            .describe_quorum()
            .await
            .map_err(kafka_err("describe the metadata quorum"))?;
        let reassignments = client
            .list_reassignments(None)
            .await
            .map_err(kafka_err("list partition reassignments"))?;
        Ok(BrokerView {
            client,
            metadata,
            quorum,
            reassignments,
        })
    };
    tokio::time::timeout(OBSERVE_TIMEOUT, read)
        .await
        .map_err(|_| {
            Error::Timeout(format!(
                "read the brokers' view of Cluster {} from {bootstrap}",
                cluster.name_any()
            ))
        })?
}
