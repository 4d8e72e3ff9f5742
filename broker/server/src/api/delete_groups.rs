//! DeleteGroups: an empty group and its committed offsets are deleted
//! (tombstones in `__consumer_offsets`); a group with members is refused
//! with NON_EMPTY_GROUP.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles DeleteGroups.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let state = broker.cluster();
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        // DELETE on the group.
        let code = match authorize::group(broker, &state, ctx, AclOperation::Delete, id.0.as_str())
        {
            Err(denied) => denied.code(),
            Ok(()) => {
                let result = broker.groups.delete_group(id.0.as_str()).await;
                result.err().map_or(0, |e| group_error_code(e).code())
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
