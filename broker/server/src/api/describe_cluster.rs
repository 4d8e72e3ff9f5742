//! DescribeCluster: the cluster id, the controller (the metadata quorum's
//! leader) and the live brokers, from the applied cluster metadata.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{cluster_id, controller_id};
use crate::broker::Broker;

/// Handles DescribeCluster.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let state = broker.cluster();
    let mut brokers: Vec<DescribeClusterBroker> = state
        .live_brokers()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    if !brokers.iter().any(|b| b.broker_id.0 == broker.node_id()) {
        brokers.push(
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(broker.node_id()))
                .with_host(StrBytes::from_string(broker.advertised_host.clone()))
                .with_port(i32::from(broker.advertised_port))
                .with_rack(broker.config.broker_rack.clone().map(StrBytes::from_string)),
        );
        brokers.sort_by_key(|b| b.broker_id.0);
    }
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(cluster_id(broker, &state)))
        .with_controller_id(BrokerId(controller_id(broker)))
        .with_brokers(brokers);
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response
}
