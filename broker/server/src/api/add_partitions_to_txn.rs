//! AddPartitionsToTxn: adds partitions to a producer's open transaction
//! (v0–3, one transaction per request); v4+ carries several transactions and,
//! with `verify_only`, is the partition leaders' check that a transactional
//! produce belongs to an open transaction (KIP-890).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::ApiError;
use crate::txn::coordinator::txn_error;
use crate::txn::state::TopicPartition;

/// The result of one transaction's partitions: every partition gets `code`,
/// except unknown ones (UNKNOWN_TOPIC_OR_PARTITION) when others are fine
/// (those get OPERATION_NOT_ATTEMPTED, as Kafka).
fn results(
    broker: &Broker,
    topics: &[AddPartitionsToTxnTopic],
    outcome: Option<&ApiError>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if broker.cluster().partition(&t.name.0, *p).is_none() {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if outcome
                        .is_some_and(|e| e.code == ResponseError::UnknownTopicOrPartition)
                    {
                        ResponseError::OperationNotAttempted.code()
                    } else {
                        outcome.map_or(0, |e| e.code())
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// Adds (or, with `verify_only`, checks) one transaction's partitions.
async fn add(
    broker: &Arc<Broker>,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Option<ApiError> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect();
    if partitions
        .iter()
        .any(|(t, p)| broker.cluster().partition(t, *p).is_none())
    {
        return Some(ApiError::with_message(
            ResponseError::UnknownTopicOrPartition,
            "a partition does not exist",
        ));
    }
    if verify_only {
        for tp in &partitions {
            match broker.txns.verify(broker, txn_id, producer_id, epoch, tp) {
                None => {
                    return Some(ApiError::with_message(
                        ResponseError::NotCoordinator,
                        "this broker is not the transaction coordinator of that id",
                    ))
                }
                Some(Err(err)) => return Some(txn_error(err)),
                Some(Ok(())) => {}
            }
        }
        return None;
    }
    broker
        .txns
        .add_partitions(broker, txn_id, producer_id, epoch, &partitions)
        .await
        .err()
}

/// Handles AddPartitionsToTxn.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let err = add(
            broker,
            request.v3_and_below_transactional_id.0.as_str(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            &request.v3_and_below_topics,
            false,
        )
        .await;
        // Clients before v3 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED.
        let err = err.map(|mut e| {
            if e.code == ResponseError::ProducerFenced && version < 2 {
                e.code = ResponseError::InvalidProducerEpoch;
            }
            e
        });
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results(
            broker,
            &request.v3_and_below_topics,
            err.as_ref(),
        ));
    }
    let mut out = Vec::with_capacity(request.transactions.len());
    for t in &request.transactions {
        let err = add(
            broker,
            t.transactional_id.0.as_str(),
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results(broker, &t.topics, err.as_ref())),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}
