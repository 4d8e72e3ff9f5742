//! Transaction markers: the coordinator's decision written to every partition
//! of a transaction, by the partition's leader — this broker when it leads
//! the partition, else the leader through WriteTxnMarkers. Retried until
//! each partition has its marker (a deleted topic needs none), or until the
//! coordinator no longer leads its `__transaction_state` partition (its
//! successor resumes from the log) or the broker stops.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_client::Connection;
use runnel_meta::BrokerId;

use super::append::{append_replicated, marker};
use super::state::TopicPartition;
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::runtime::wait_shutdown;

/// Writes the marker to a partition this broker leads (WriteTxnMarkers' partition side).
pub(crate) async fn write_local(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<(), ApiError> {
    let offsets_topic = topic == crate::group::OFFSETS_TOPIC;
    if offsets_topic {
        broker
            .groups
            .check_txn_completion(partition)
            .map_err(|err| {
                ApiError::with_message(
                    crate::errors::group_error_code(err),
                    format!(
                        "the group coordinator does not serve {topic}-{partition} yet; \
                         the transaction marker is retried"
                    ),
                )
            })?;
    }
    broker.txns.verified.forget(topic, partition, producer_id);
    append_replicated(
        broker,
        topic,
        partition,
        marker(producer_id, epoch, commit, coordinator_epoch),
    )
    .await?;
    if offsets_topic {
        // The transaction's offset commits there count now (or are dropped).
        broker.groups.complete_txn(partition, producer_id, commit);
    }
    Ok(())
}

/// Writes the markers of one decided transaction; true once every partition
/// has its marker, false if given up (shutdown, or `still_mine` turned false).
pub(crate) async fn write(
    broker: &Arc<Broker>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    partitions: &BTreeSet<TopicPartition>,
    still_mine: impl Fn() -> bool,
) -> bool {
    let mut left: BTreeSet<TopicPartition> = partitions.clone();
    let mut shutdown = broker.shutdown_signal();
    let mut backoff = Duration::from_millis(50);
    let mut connections: BTreeMap<BrokerId, Connection> = BTreeMap::new();
    while !left.is_empty() {
        if !still_mine() || *shutdown.borrow() {
            return false;
        }
        // Partitions by their current leader; those of deleted topics need no marker.
        let state = broker.cluster();
        let mut by_leader: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
        left.retain(|(t, p)| state.partition(t, *p).is_some());
        for (t, p) in &left {
            if let Some(meta) = state.partition(t, *p) {
                by_leader
                    .entry(meta.leader)
                    .or_default()
                    .push((t.clone(), *p));
            }
        }
        for (leader, tps) in by_leader {
            if leader == broker.node_id() {
                for (t, p) in tps {
                    match write_local(broker, &t, p, producer_id, epoch, commit, coordinator_epoch)
                        .await
                    {
                        Ok(()) => {
                            left.remove(&(t, p));
                        }
                        Err(err) => {
                            tracing::debug!(topic = %t, partition = p, error = ?err.message,
                            "transaction marker not written yet")
                        }
                    }
                }
                continue;
            }
            let Some(addr) = state
                .brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port))
            else {
                continue;
            };
            if connections
                .get(&leader)
                .is_some_and(|c| c.is_broken() || c.addr() != addr)
            {
                connections.remove(&leader);
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = connections.entry(leader) {
                let client_id = format!("runnel-txn-markers-{}", broker.node_id());
                let connected = broker
                    .inter_broker
                    .connect(
                        &addr,
                        &client_id,
                        Duration::from_secs(5),
                        Duration::from_secs(40),
                    )
                    .await;
                match connected {
                    Ok(c) => {
                        slot.insert(c);
                    }
                    Err(err) => {
                        tracing::debug!(leader, error = %err, "cannot reach a partition leader for markers");
                        continue;
                    }
                }
            }
            let Some(conn) = connections.get_mut(&leader) else {
                continue;
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &tps {
                topics.entry(t.as_str()).or_default().push(*p);
            }
            let request =
                WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch)
                    .with_transaction_result(commit)
                    .with_coordinator_epoch(coordinator_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                WritableTxnMarkerTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                    .with_partition_indexes(ps)
                            })
                            .collect(),
                    )]);
            match conn.send(&request, 1).await {
                Ok(response) => {
                    for m in response.markers {
                        for t in m.topics {
                            for p in t.partitions {
                                // A deleted topic needs no marker.
                                let deleted = p.error_code
                                    == ResponseError::UnknownTopicOrPartition.code()
                                    && broker
                                        .cluster()
                                        .partition(&t.name.0, p.partition_index)
                                        .is_none();
                                if p.error_code == 0 || deleted {
                                    left.remove(&(t.name.0.to_string(), p.partition_index));
                                }
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!(leader, error = %err, "WriteTxnMarkers failed");
                    connections.remove(&leader);
                }
            }
        }
        if left.is_empty() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wait_shutdown(&mut shutdown) => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    true
}
