//! ListGroups: every group with its protocol type; v4+ filter by state, v5+
//! by group type ("classic" or "consumer", KIP-848). As in Kafka, a principal
//! without DESCRIBE on the cluster sees the groups it may DESCRIBE.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::group_error_code;

/// Handles ListGroups.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let state = broker.cluster();
    let all = authorize::cluster(broker, &state, ctx, AclOperation::Describe).is_ok();
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
    let groups = listed
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .filter(|g| {
            all || authorize::group(broker, &state, ctx, AclOperation::Describe, &g.group_id)
                .is_ok()
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state))
                .with_group_type(StrBytes::from_static_str(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
