//! LeaveGroup: v0-2 name one member; v3+ a batch of members, each by member
//! id and/or group.instance.id.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::broker::Broker;
use crate::errors::group_error_code;
use crate::group::state::LeavingMember;

/// Handles LeaveGroup.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let leaving: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let results = match broker.groups.leave(request.group_id.0.as_str(), &leaving) {
        Ok(results) => results,
        Err(err) => {
            return LeaveGroupResponse::default().with_error_code(group_error_code(err).code())
        }
    };
    if version < 3 {
        let code = results
            .first()
            .and_then(|r| r.err())
            .map_or(0, |e| group_error_code(e).code());
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = request
        .members
        .into_iter()
        .zip(results)
        .map(|(m, r)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(r.err().map_or(0, |e| group_error_code(e).code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
