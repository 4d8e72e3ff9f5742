//! ListGroups: every group with its protocol type; v4+ filter by state, v5+
//! by group type (every group here is a "classic" group).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::errors::group_error_code;

/// The group type of the classic protocol.
const CLASSIC: &str = "classic";

/// Handles ListGroups.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let listed = match broker.groups.list() {
        Ok(listed) => listed,
        Err(err) => {
            return ListGroupsResponse::default().with_error_code(group_error_code(err).code())
        }
    };
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == CLASSIC) {
        return ListGroupsResponse::default();
    }
    let groups = listed
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_ascii_lowercase()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_group_type(StrBytes::from_static_str(CLASSIC))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
