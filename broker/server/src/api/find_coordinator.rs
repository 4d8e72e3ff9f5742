//! FindCoordinator: this broker coordinates every group (key type 0).
//! Transactions (key type 1) are not implemented: COORDINATOR_NOT_AVAILABLE.
//! v4+ batches keys in `coordinator_keys`.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::ApiError;

/// Key type of consumer groups.
const GROUP: i8 = 0;
/// Key type of transactional ids.
const TRANSACTION: i8 = 1;

fn lookup(key_type: i8) -> Result<(), ApiError> {
    match key_type {
        GROUP => Ok(()),
        TRANSACTION => Err(ApiError::with_message(
            ResponseError::CoordinatorNotAvailable,
            "transactions are not supported by this broker",
        )),
        other => Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    }
}

/// Handles FindCoordinator.
pub async fn handle(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let node = BrokerId(broker.node_id());
    let host = StrBytes::from_string(broker.advertised_host.clone());
    let port = i32::from(broker.advertised_port);
    let mut result = lookup(request.key_type);
    if result.is_ok() {
        // The first group lookup creates __consumer_offsets (as Kafka does).
        if let Err(err) = broker.ensure_offsets_topic().await {
            result = Err(ApiError::with_message(
                crate::errors::group_error_code(err),
                format!("{} is not available yet", crate::group::OFFSETS_TOPIC),
            ));
        }
    }
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let entry = Coordinator::default().with_key(key);
                match &result {
                    Ok(()) => entry
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port),
                    Err(err) => entry
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(err.code())
                        .with_error_message(err.message.clone().map(StrBytes::from_string)),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match result {
        Ok(()) => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
        Err(err) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(err.code())
            // v0 has no error message.
            .with_error_message(
                err.message
                    .filter(|_| version >= 1)
                    .map(StrBytes::from_string),
            ),
    }
}
