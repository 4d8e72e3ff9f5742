//! The four membership requests of the classic group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup), sent to the coordinator. Their error
//! codes drive the member's state, so they come back as values for
//! [`crate::group::consumer`] to act on, except coordinator moves, which
//! [`Client::coordinator_call`] handles.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::ResponseError;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::group::admin::{group_id, str_bytes, CONSUMER_PROTOCOL_TYPE};

/// Extra time on top of the rebalance timeout for a JoinGroup answer, as
/// the coordinator may hold the request for the whole rebalance.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// What a member sends in JoinGroup.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest<'a> {
    pub(crate) group: &'a str,
    pub(crate) member_id: &'a str,
    pub(crate) group_instance_id: Option<&'a str>,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    /// (protocol name, metadata) in order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
}

/// One member listed to the leader in JoinGroup.
#[derive(Debug, Clone)]
pub(crate) struct JoinedMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Debug, Clone)]
pub(crate) struct JoinResponse {
    /// `None` on success.
    pub(crate) error: Option<ResponseError>,
    pub(crate) generation_id: i32,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Filled for the leader only.
    pub(crate) members: Vec<JoinedMember>,
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn code_to_error(code: i16) -> Option<ResponseError> {
    (code != 0).then(|| ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)))
}

/// Turns coordinator-move codes into errors so `coordinator_call` retries them.
fn coordinator_moved(code: i16, group: &str) -> Result<()> {
    match code_to_error(code) {
        Some(
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress,
        ) => Err(Error::broker(code, format!("group '{group}'"), None)),
        _ => Ok(()),
    }
}

impl Client {
    /// Sends JoinGroup and waits for the rebalance to complete.
    pub(crate) async fn join_group(&self, req: &JoinRequest<'_>) -> Result<JoinResponse> {
        let timeout = req.rebalance_timeout + JOIN_GRACE;
        let timeout = timeout.max(self.config().request_timeout);
        self.coordinator_call(req.group, |route| async move {
            let resp = self
                .request_with_timeout(route, i16::MAX, Some(timeout), |version| {
                    let mut r = JoinGroupRequest::default()
                        .with_group_id(group_id(req.group))
                        .with_session_timeout_ms(millis(req.session_timeout))
                        .with_rebalance_timeout_ms(millis(req.rebalance_timeout))
                        .with_member_id(str_bytes(req.member_id))
                        .with_protocol_type(str_bytes(CONSUMER_PROTOCOL_TYPE))
                        .with_protocols(
                            req.protocols
                                .iter()
                                .map(|(name, meta)| {
                                    JoinGroupRequestProtocol::default()
                                        .with_name(str_bytes(name))
                                        .with_metadata(meta.clone())
                                })
                                .collect(),
                        );
                    if let Some(id) = req.group_instance_id {
                        if version < 5 {
                            return Err(Error::InvalidInput(
                                "this broker does not support static membership".into(),
                            ));
                        }
                        r = r.with_group_instance_id(Some(str_bytes(id)));
                    }
                    Ok(r)
                })
                .await?;
            coordinator_moved(resp.error_code, req.group)?;
            Ok(JoinResponse {
                error: code_to_error(resp.error_code),
                generation_id: resp.generation_id,
                protocol_name: resp.protocol_name.map(|p| p.to_string()),
                leader: resp.leader.to_string(),
                member_id: resp.member_id.to_string(),
                members: resp
                    .members
                    .into_iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                        metadata: m.metadata,
                    })
                    .collect(),
            })
        })
        .await
    }

    /// Sends SyncGroup (the leader with every member's assignment, the others
    /// with none) and returns this member's assignment bytes or the error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sync_group(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        protocol_name: &str,
        assignments: &[(String, Bytes)],
    ) -> Result<std::result::Result<Bytes, ResponseError>> {
        self.coordinator_call(group, |route| async move {
            let resp = self
                .request(route, i16::MAX, |version| {
                    let mut r = SyncGroupRequest::default()
                        .with_group_id(group_id(group))
                        .with_generation_id(generation_id)
                        .with_member_id(str_bytes(member_id))
                        .with_assignments(
                            assignments
                                .iter()
                                .map(|(id, a)| {
                                    SyncGroupRequestAssignment::default()
                                        .with_member_id(str_bytes(id))
                                        .with_assignment(a.clone())
                                })
                                .collect(),
                        );
                    if version >= 3 {
                        r = r.with_group_instance_id(group_instance_id.map(str_bytes));
                    }
                    if version >= 5 {
                        r = r
                            .with_protocol_type(Some(str_bytes(CONSUMER_PROTOCOL_TYPE)))
                            .with_protocol_name(Some(str_bytes(protocol_name)));
                    }
                    Ok(r)
                })
                .await?;
            coordinator_moved(resp.error_code, group)?;
            Ok(match code_to_error(resp.error_code) {
                None => Ok(resp.assignment),
                Some(e) => Err(e),
            })
        })
        .await
    }

    /// Sends one Heartbeat; `Ok(Some(error))` for a group-level answer such
    /// as REBALANCE_IN_PROGRESS.
    pub(crate) async fn heartbeat(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<Option<ResponseError>> {
        self.coordinator_call(group, |route| async move {
            let resp = self
                .request(route, i16::MAX, |version| {
                    let mut r = HeartbeatRequest::default()
                        .with_group_id(group_id(group))
                        .with_generation_id(generation_id)
                        .with_member_id(str_bytes(member_id));
                    if version >= 3 {
                        r = r.with_group_instance_id(group_instance_id.map(str_bytes));
                    }
                    Ok(r)
                })
                .await?;
            coordinator_moved(resp.error_code, group)?;
            Ok(code_to_error(resp.error_code))
        })
        .await
    }

    /// Leaves the group so the others rebalance at once instead of after the
    /// session timeout.
    pub(crate) async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        self.coordinator_call(group, |route| async move {
            let resp = self
                .request(route, i16::MAX, |version| {
                    let mut r = LeaveGroupRequest::default().with_group_id(group_id(group));
                    r = if version >= 3 {
                        r.with_members(vec![
                            MemberIdentity::default().with_member_id(str_bytes(member_id))
                        ])
                    } else {
                        r.with_member_id(str_bytes(member_id))
                    };
                    Ok(r)
                })
                .await?;
            coordinator_moved(resp.error_code, group)?;
            crate::error::check(resp.error_code, || format!("group '{group}'"), None)?;
            for m in resp.members {
                crate::error::check(
                    m.error_code,
                    || format!("group '{group}' member '{member_id}'"),
                    None,
                )?;
            }
            Ok(())
        })
        .await
    }
}
