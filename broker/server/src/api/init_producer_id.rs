//! InitProducerId: allocates idempotent producer ids (epoch 0) that never
//! repeat across restarts or brokers (blocks come from the metadata quorum).
//! Sequence checks and deduplication happen in the log. With a transactional
//! id the transaction coordinator answers: the id's producer id with a new
//! epoch, fencing older producers and aborting a transaction they left open.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::ApiError;

/// Handles InitProducerId.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let failed = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(txn_id) = request.transactional_id.as_ref() {
        // KIP-360 (v3+): the id and epoch the client had, if any.
        let expected = (request.producer_id.0 >= 0 && request.producer_epoch >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        return match broker
            .txns
            .init_producer_id(
                broker,
                txn_id.0.as_str(),
                request.transaction_timeout_ms,
                expected,
            )
            .await
        {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(err) => failed(err.code),
        };
    }
    // KIP-360: a producer may bump its own epoch to reset its sequences.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return InitProducerIdResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.producer_ids.allocate().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(err) => {
            tracing::warn!(error = %err, "cannot allocate a producer id block");
            failed(ApiError::from(err).code)
        }
    }
}
