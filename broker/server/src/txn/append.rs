//! Writes the broker makes on its own behalf to a partition it leads — a
//! transaction coordinator's record in `__transaction_state`, a transaction
//! marker — waited for as an acks=all produce: appended under the leader
//! epoch, fsynced when `log_flush_on_ack` says so, and complete once every
//! in-sync replica has it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::ApiError;
use crate::runtime::now_ms;

/// How long a write waits for the in-sync replicas.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Appends `records` to `topic`-`partition` as its leader and waits until
/// they are committed; returns the leader epoch written under.
pub(crate) async fn append_replicated(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> Result<i32, ApiError> {
    let not_leader = || {
        ApiError::with_message(
            ResponseError::NotLeaderOrFollower,
            format!("this broker does not lead {topic}-{partition}"),
        )
    };
    let log = broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(partition))
        .map(|p| p.log.clone())
        .ok_or_else(not_leader)?;
    let replica = broker.replicas.replica(topic, partition, &log);
    let min_isr = broker.replicas.min_insync(topic);
    let epoch = replica.check_produce(-1, min_isr)?;
    let appended = {
        let log = log.clone();
        tokio::task::spawn_blocking(move || log.append(records, epoch, now_ms()))
            .await
            .map_err(|e| ApiError::with_message(ResponseError::UnknownServerError, e.to_string()))?
    };
    let info = appended.map_err(|err| ApiError::from(&err))?;
    let end = info.last_offset + 1;
    broker.replicas.leader_appended(&replica, end);
    broker.notify_appended();
    if broker.config.log_flush_on_ack {
        let log = log.clone();
        tokio::task::spawn_blocking(move || log.sync(end))
            .await
            .map_err(|e| ApiError::with_message(ResponseError::KafkaStorageError, e.to_string()))?
            .map_err(|err| ApiError::from(&err))?;
        broker.replicas.leader_synced(&replica);
    }
    replica
        .wait_committed(
            end,
            epoch,
            min_isr,
            tokio::time::Instant::now() + COMMIT_TIMEOUT,
            broker.shutdown_signal(),
        )
        .await?;
    Ok(epoch)
}

/// One uncompressed batch of keyed records (`None` values are tombstones),
/// optionally a transaction's control batch (an empty batch, which the log
/// refuses, if the encoder fails).
pub(crate) fn batch(
    records: &[(Bytes, Option<Bytes>)],
    producer: Option<(i64, i16)>,
    control: bool,
) -> Bytes {
    crate::internal_batch::encode(records, -1, now_ms(), producer, control).unwrap_or_default()
}

/// A transaction marker for `producer_id`: the control record key
/// `(version 0, type)` and value `(version 0, coordinator epoch)`.
pub(crate) fn marker(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Bytes {
    let key = Bytes::copy_from_slice(&[0, 0, 0, u8::from(commit)]);
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    batch(
        &[(key, Some(value.freeze()))],
        Some((producer_id, epoch)),
        true,
    )
}
