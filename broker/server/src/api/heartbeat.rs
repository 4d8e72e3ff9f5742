//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it
//! to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles Heartbeat.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
    match broker.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        instance,
        request.generation_id,
    ) {
        Ok(()) => HeartbeatResponse::default(),
        Err(err) => HeartbeatResponse::default().with_error_code(group_error_code(err).code()),
    }
}
