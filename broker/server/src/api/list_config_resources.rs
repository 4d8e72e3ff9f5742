//! ListConfigResources v0, which Kafka 3.7 named ListClientMetricsResources (KIP-714):
//! the names of the client metrics resources.

use std::sync::Arc;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Handles ListConfigResources (v0: client metrics resources only).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    _request: ListConfigResourcesRequest,
    _version: i16,
) -> ListConfigResourcesResponse {
    let names = broker
        .cluster()
        .client_metrics
        .keys()
        .map(|name| {
            ConfigResource::default().with_resource_name(StrBytes::from_string(name.clone()))
        })
        .collect();
    ListConfigResourcesResponse::default().with_config_resources(names)
}
