//! EndTxn: the producer's commit or abort, answered once the decision is
//! durable in `__transaction_state`; the coordinator then writes the markers.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::broker::Broker;
use crate::txn::state::Outcome;

/// Handles EndTxn.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let outcome = if request.committed {
        Outcome::Commit
    } else {
        Outcome::Abort
    };
    let result = broker
        .txns
        .end_txn(
            broker,
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            outcome,
        )
        .await;
    match result {
        Ok(()) => EndTxnResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch),
        Err(mut err) => {
            if err.code == kafka_protocol::ResponseError::ProducerFenced && version < 2 {
                err.code = kafka_protocol::ResponseError::InvalidProducerEpoch;
            }
            EndTxnResponse::default()
                .with_error_code(err.code())
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
