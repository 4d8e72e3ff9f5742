//! DeleteGroups: an empty group and its committed offsets are deleted
//! (tombstones in `__consumer_offsets`); a group with members is refused
//! with NON_EMPTY_GROUP.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles DeleteGroups.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let result = broker.groups.delete_group(id.0.as_str()).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(result.err().map_or(0, |e| group_error_code(e).code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
