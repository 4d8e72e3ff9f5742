//! DescribeTransactions: the state, timeout, start time, producer id and
//! epoch and partitions of transactional ids this broker coordinates
//! (NOT_COORDINATOR for others, TRANSACTIONAL_ID_NOT_FOUND for unknown ids).

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;

/// Handles DescribeTransactions.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let state = broker.cluster();
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let entry = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            // DESCRIBE on the transactional id.
            if let Err(denied) = authorize::transactional_id(
                broker,
                &state,
                ctx,
                AclOperation::Describe,
                id.0.as_str(),
            ) {
                return entry.with_error_code(denied.code());
            }
            match broker.txns.describe(broker, id.0.as_str()) {
                Err(err) => entry.with_error_code(err.code()),
                Ok(None) => entry.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Ok(Some(m)) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &m.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == t => last.partitions.push(*p),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    entry
                        .with_transaction_state(StrBytes::from_static_str(m.status.as_str()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
