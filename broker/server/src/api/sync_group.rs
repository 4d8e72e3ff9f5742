//! SyncGroup: members wait (parked) for the leader's assignment; the
//! leader's SyncGroup stores it, persists the group and answers everyone.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::state::SyncRequest;
use crate::group::GroupError;

/// Runs the sync transition now; the returned future yields the response.
pub(crate) fn start(
    broker: &Arc<Broker>,
    request: SyncGroupRequest,
    _version: i16,
) -> impl Future<Output = SyncGroupResponse> + Send + 'static {
    let group_id = request.group_id.0.to_string();
    let req = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let waiting = broker.groups.sync(&group_id, req);
    async move {
        match waiting
            .resolve(Err(GroupError::CoordinatorNotAvailable))
            .await
        {
            Ok(o) => SyncGroupResponse::default()
                .with_protocol_type(o.protocol_type.map(StrBytes::from_string))
                .with_protocol_name(o.protocol_name.map(StrBytes::from_string))
                .with_assignment(o.assignment),
            Err(err) => SyncGroupResponse::default().with_error_code(group_error_code(err).code()),
        }
    }
}
