//! InitProducerId: allocates idempotent producer ids (epoch 0) that never
//! repeat across restarts or brokers (blocks come from the metadata quorum).
//! Sequence checks and deduplication happen in the log.
//!
//! Transactions are not implemented yet: a request with a transactional id is
//! answered with INVALID_REQUEST, a non-retriable error, so a transactional
//! client fails at once with a clear error instead of retrying forever (which
//! the retriable COORDINATOR_NOT_AVAILABLE would cause) or pointing at ACLs
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

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
    if request.transactional_id.is_some() {
        return failed(ResponseError::InvalidRequest);
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
