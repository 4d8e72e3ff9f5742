//! GetTelemetrySubscriptions (KIP-714): gives a client its instance id (when it has none)
//! and the metrics it must push, from the client metrics resources that match it; a client
//! nothing matches is told to push nothing.

use std::sync::Arc;

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::broker::Broker;
use crate::runtime::now_ms;
use crate::telemetry::{self, ClientInfo, ACCEPTED_COMPRESSION};

/// Handles GetTelemetrySubscriptions.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: GetTelemetrySubscriptionsRequest,
    _version: i16,
) -> GetTelemetrySubscriptionsResponse {
    let instance_id = if request.client_instance_id.is_nil() {
        uuid::Uuid::new_v4()
    } else {
        request.client_instance_id
    };
    let (software_name, software_version) = ctx.session.software.lock().clone().unwrap_or_default();
    let info = ClientInfo {
        instance_id,
        client_id: ctx.client_id.clone(),
        software_name,
        software_version,
        source_address: ctx
            .session
            .peer
            .map(|p| p.ip().to_string())
            .unwrap_or_default(),
        source_port: ctx.session.peer.map(|p| p.port()).unwrap_or_default(),
    };
    let subscriptions = telemetry::subscriptions(&broker.cluster().client_metrics);
    let assigned = telemetry::assign(&subscriptions, &info);
    let response = GetTelemetrySubscriptionsResponse::default()
        .with_client_instance_id(instance_id)
        .with_subscription_id(assigned.subscription_id)
        .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
        .with_push_interval_ms(assigned.push_interval_ms)
        .with_telemetry_max_bytes(broker.config.telemetry_max_bytes)
        // Cumulative values: each push carries the whole state, which the broker shows as is.
        .with_delta_temporality(false)
        .with_requested_metrics(
            assigned
                .metrics
                .iter()
                .map(|m| StrBytes::from_string(m.clone()))
                .collect(),
        );
    broker.telemetry.subscribed(info, assigned, now_ms());
    response
}
