//! The partition leader's check of a transactional produce (KIP-890's
//! server-side guard against hanging transactions): the batch's producer id
//! and epoch must have the partition in the open transaction of the
//! request's transactional id, as its coordinator says — this broker, or the
//! coordinator's broker asked with AddPartitionsToTxn v4 `verify_only`. A
//! verified (partition, producer, epoch) is remembered until its marker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;

use super::{partition_for, TXN_TOPIC};
use crate::broker::Broker;
use crate::errors::{txn_error, ApiError};

/// (topic, partition, producer id, epoch) verified for an open transaction.
#[derive(Default)]
pub(crate) struct Verified(Mutex<HashSet<(String, i32, i64, i16)>>);

impl Verified {
    /// Forgets the producer's verifications of a partition (its marker was written).
    pub(crate) fn forget(&self, topic: &str, partition: i32, producer_id: i64) {
        self.0
            .lock()
            .retain(|(t, p, pid, _)| !(t == topic && *p == partition && *pid == producer_id));
    }
}

/// Checks that the transactional batches of `producer_id`/`epoch` to
/// `topic`-`partition` belong to an open transaction of `txn_id`.
pub(crate) async fn verify_produce(
    broker: &Arc<Broker>,
    txn_id: Option<&str>,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ApiError> {
    let Some(txn_id) = txn_id else {
        return Err(ApiError::with_message(
            ResponseError::InvalidTxnState,
            "transactional batches need the request's transactional id",
        ));
    };
    let key = (topic.to_string(), partition, producer_id, epoch);
    if broker.txns.verified.0.lock().contains(&key) {
        return Ok(());
    }
    let tp = (topic.to_string(), partition);
    let verified = match broker.txns.verify(broker, txn_id, producer_id, epoch, &tp) {
        Some(result) => result.map_err(txn_error),
        None => ask_coordinator(broker, txn_id, producer_id, epoch, topic, partition).await,
    };
    verified.map_err(|mut err| {
        // Producers expect INVALID_PRODUCER_EPOCH on a fenced produce (librdkafka
        // makes only that fatal; Kafka rewrites the coordinator's answer the same way).
        if err.code == ResponseError::ProducerFenced {
            err.code = ResponseError::InvalidProducerEpoch;
        }
        err
    })?;
    broker.txns.verified.0.lock().insert(key);
    Ok(())
}

/// AddPartitionsToTxn v4 `verify_only` to the broker coordinating `txn_id`.
async fn ask_coordinator(
    broker: &Arc<Broker>,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ApiError> {
    let unavailable = |why: String| ApiError::with_message(ResponseError::NotEnoughReplicas, why);
    let state = broker.cluster();
    let coordinator = state
        .topics
        .get(TXN_TOPIC)
        .and_then(|t| {
            let p = partition_for(txn_id, t.partitions.len() as i32);
            t.partitions.get(p as usize).map(|p| p.leader)
        })
        .and_then(|leader| state.brokers.get(&leader).filter(|b| !b.fenced))
        .map(|b| format!("{}:{}", b.host, b.port))
        .ok_or_else(|| unavailable("the transaction coordinator is not available".into()))?;
    let mut conn = broker
        .inter_broker
        .connect(
            &coordinator,
            &format!("runnel-txn-verify-{}", broker.node_id()),
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| unavailable(format!("cannot reach the transaction coordinator: {e}")))?;
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])]),
    ]);
    let response = conn
        .send(&request, 4)
        .await
        .map_err(|e| unavailable(format!("the transaction coordinator did not answer: {e}")))?;
    let code = response
        .results_by_transaction
        .iter()
        .flat_map(|t| t.topic_results.iter())
        .flat_map(|t| t.results_by_partition.iter())
        .map(|p| p.partition_error_code)
        .find(|c| *c != 0)
        .unwrap_or(response.error_code);
    if code == 0 {
        Ok(())
    } else {
        let code = ResponseError::try_from_code(code).unwrap_or(ResponseError::InvalidTxnState);
        Err(ApiError::with_message(
            code,
            "the transaction coordinator did not confirm the partition is in the transaction",
        ))
    }
}
