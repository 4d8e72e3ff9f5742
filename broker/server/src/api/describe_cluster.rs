//! DescribeCluster: the cluster id, the controller (the metadata quorum's
//! leader) and the live brokers, from the applied cluster metadata.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{cluster_id, controller_id};
use crate::broker::Broker;

/// Handles DescribeCluster for a client that came in on `listener`: brokers
/// are listed at their address on that listener, those without it left out.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    version: i16,
    listener: &str,
) -> DescribeClusterResponse {
    let state = broker.cluster();
    let entry = |id: i32, (host, port): (&str, u16), rack: Option<&String>| {
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(i32::from(port))
            .with_rack(rack.cloned().map(StrBytes::from_string))
    };
    let mut brokers: Vec<DescribeClusterBroker> = state
        .live_brokers()
        .filter_map(|b| Some(entry(b.id, b.endpoint(listener)?, b.rack.as_ref())))
        .collect();
    if let Some(own) = broker.own_endpoint(listener) {
        if !brokers.iter().any(|b| b.broker_id.0 == broker.node_id()) {
            brokers.push(entry(
                broker.node_id(),
                own,
                broker.config.broker_rack.as_ref(),
            ));
            brokers.sort_by_key(|b| b.broker_id.0);
        }
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
