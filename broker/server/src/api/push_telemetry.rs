//! PushTelemetry (KIP-714): a client's metrics as OTLP protobuf, checked against the
//! subscription it was given (UNKNOWN_SUBSCRIPTION_ID when it changed), its push interval
//! (THROTTLING_QUOTA_EXCEEDED when early), `telemetry_max_bytes` (TELEMETRY_TOO_LARGE) and
//! the offered compression types; accepted values are shown on `/metrics`.

use std::sync::Arc;

use kafka_protocol::messages::{PushTelemetryRequest, PushTelemetryResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::runtime::now_ms;
use crate::telemetry::{self, PushError};

/// Handles PushTelemetry.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: PushTelemetryRequest,
    _version: i16,
) -> PushTelemetryResponse {
    let subscriptions = telemetry::subscriptions(&broker.cluster().client_metrics);
    let max_bytes = usize::try_from(broker.config.telemetry_max_bytes).unwrap_or(0);
    let result = broker.telemetry.push(
        request.client_instance_id,
        request.subscription_id,
        request.terminating,
        request.compression_type,
        &request.metrics,
        max_bytes,
        |info| telemetry::assign(&subscriptions, info),
        now_ms(),
    );
    let (label, code) = match &result {
        Ok(_) => ("accepted", None),
        Err(PushError::UnknownSubscriptionId) => (
            "unknown_subscription",
            Some(ResponseError::UnknownSubscriptionId),
        ),
        Err(PushError::Throttled) => ("throttled", Some(ResponseError::ThrottlingQuotaExceeded)),
        Err(PushError::TooLarge) => ("too_large", Some(ResponseError::TelemetryTooLarge)),
        Err(PushError::UnsupportedCompression(_)) => (
            "unsupported_compression",
            Some(ResponseError::UnsupportedCompressionType),
        ),
        Err(PushError::InvalidRecord(_)) => ("invalid", Some(ResponseError::InvalidRecord)),
        Err(PushError::InvalidRequest(_)) => ("invalid", Some(ResponseError::InvalidRequest)),
    };
    broker
        .metrics
        .telemetry_pushes
        .with_label_values(&[label])
        .inc();
    match (result, code) {
        (Err(err), Some(code)) => {
            tracing::debug!(instance = %request.client_instance_id, error = %err, "PushTelemetry refused");
            PushTelemetryResponse::default().with_error_code(code.code())
        }
        _ => PushTelemetryResponse::default(),
    }
}
