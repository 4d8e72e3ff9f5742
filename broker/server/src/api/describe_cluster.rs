//! DescribeCluster: the stable cluster id, the controller (this node) and this broker.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Handles DescribeCluster.
pub async fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let this = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id()))
        .with_host(StrBytes::from_string(broker.advertised_host.clone()))
        .with_port(i32::from(broker.advertised_port));
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_brokers(vec![this]);
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response
}
