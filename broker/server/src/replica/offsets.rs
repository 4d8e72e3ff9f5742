//! Replication of the group coordinator's writes to `__consumer_offsets`:
//! they carry the partition's leader epoch and complete like an `acks=all`
//! produce, once every in-sync replica has them on disk (Kafka's
//! `offsets.commit.required.acks=-1`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use runnel_log::Log;

use super::ReplicaManager;
use crate::group::coordinator::OffsetsReplication;
use crate::group::{GroupError, OFFSETS_TOPIC};

/// Kafka's `offsets.commit.timeout.ms` default.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// [`OffsetsReplication`] backed by the replica manager.
pub(crate) struct OffsetsReplicator {
    manager: Arc<ReplicaManager>,
}

impl OffsetsReplicator {
    /// Replicates through `manager`.
    pub(crate) fn new(manager: Arc<ReplicaManager>) -> OffsetsReplicator {
        OffsetsReplicator { manager }
    }
}

impl OffsetsReplication for OffsetsReplicator {
    fn leader_epoch(&self, partition: i32) -> Option<i32> {
        let log = self
            .manager
            .topics
            .get(OFFSETS_TOPIC)?
            .partition(partition)?
            .log
            .clone();
        self.manager
            .replica(OFFSETS_TOPIC, partition, &log)
            .check_produce(1, 1)
            .ok()
    }

    fn wait_committed(
        &self,
        partition: i32,
        log: Arc<Log>,
        end_offset: i64,
        leader_epoch: i32,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupError>> + Send>> {
        let manager = self.manager.clone();
        Box::pin(async move {
            let replica = manager.replica(OFFSETS_TOPIC, partition, &log);
            manager.leader_appended(&replica, end_offset);
            manager.leader_synced(&replica);
            let min_isr = manager.min_insync(OFFSETS_TOPIC);
            let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
            // Kafka's mapping of a failed offsets append.
            replica
                .wait_committed(
                    end_offset,
                    leader_epoch,
                    min_isr,
                    deadline,
                    manager.shutdown_signal(),
                )
                .await
                .map_err(|err| match err.code {
                    ResponseError::NotLeaderOrFollower => GroupError::NotCoordinator,
                    _ => GroupError::CoordinatorNotAvailable,
                })
        })
    }
}
