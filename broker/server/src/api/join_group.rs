//! JoinGroup: the transition runs in request order; the answer is parked
//! until the group's join barrier completes (every known member rejoined, or
//! the rebalance timeout passed).

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::coordinator::JoinResult;
use crate::group::state::{JoinRequest, Protocol};
use crate::group::GroupError;

fn s(v: String) -> StrBytes {
    StrBytes::from_string(v)
}

/// Runs the join transition now; the returned future yields the response.
pub(crate) fn start(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: JoinGroupRequest,
    version: i16,
) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
    let group_id = request.group_id.0.to_string();
    let sent_member_id = request.member_id.clone();
    let req = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
        new_member_id: String::new(),
    };
    let waiting = broker.groups.join(&group_id, req);
    async move {
        let result = waiting
            .resolve(JoinResult::Failed(GroupError::CoordinatorNotAvailable))
            .await;
        response(result, sent_member_id, version)
    }
}

fn response(result: JoinResult, sent_member_id: StrBytes, version: i16) -> JoinGroupResponse {
    // Before v7 the protocol name is a non-nullable string.
    let no_protocol = if version >= 7 {
        None
    } else {
        Some(StrBytes::default())
    };
    let failed = |code: i16, member_id: StrBytes| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_protocol_name(no_protocol.clone())
            .with_member_id(member_id)
    };
    match result {
        JoinResult::Joined(o) => JoinGroupResponse::default()
            .with_generation_id(o.generation_id)
            .with_protocol_type(o.protocol_type.map(s))
            .with_protocol_name(o.protocol_name.map(s).or(no_protocol))
            .with_leader(s(o.leader))
            // skip_assignment exists from v9; older leaders recompute an
            // assignment that SyncGroup in Stable state ignores.
            .with_skip_assignment(o.skip_assignment && version >= 9)
            .with_member_id(s(o.member_id))
            .with_members(
                o.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(s))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        JoinResult::MemberIdRequired(member_id) => failed(
            kafka_protocol::ResponseError::MemberIdRequired.code(),
            s(member_id),
        ),
        JoinResult::Failed(err) => failed(group_error_code(err).code(), sent_member_id),
    }
}
