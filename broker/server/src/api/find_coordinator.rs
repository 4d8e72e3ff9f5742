//! FindCoordinator: a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition (COORDINATOR_NOT_AVAILABLE when it has
//! none); the first lookup creates the topic. v4+ batches keys in
//! `coordinator_keys`.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::{AclOperation, NO_LEADER};

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::group::{partition_for, OFFSETS_TOPIC};
use crate::txn::TXN_TOPIC;

/// Key type of consumer groups.
const GROUP: i8 = 0;
/// Key type of transactional ids.
const TRANSACTION: i8 = 1;

/// The internal topic whose partition leaders coordinate `key_type`.
fn topic_of(key_type: i8) -> Result<&'static str, ApiError> {
    match key_type {
        GROUP => Ok(OFFSETS_TOPIC),
        TRANSACTION => Ok(TXN_TOPIC),
        other => Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    }
}

/// The coordinator of a key: the leader of its partition of `internal`, as
/// `(node id, host, port)` on `listener` (not available when the leader has
/// no such listener).
fn coordinator_of(
    broker: &Broker,
    internal: &str,
    key: &str,
    listener: &str,
) -> Result<(i32, String, i32), ApiError> {
    let state = broker.cluster();
    let not_available =
        |why: String| ApiError::with_message(ResponseError::CoordinatorNotAvailable, why);
    let Some(topic) = state.topics.get(internal) else {
        return Err(not_available(format!("{internal} does not exist yet")));
    };
    let partition = partition_for(key, topic.partitions.len() as i32);
    let leader = topic
        .partitions
        .get(partition as usize)
        .map_or(NO_LEADER, |p| p.leader);
    let Some(b) = state.brokers.get(&leader).filter(|b| !b.fenced) else {
        return Err(not_available(format!(
            "partition {partition} of {internal} has no leader"
        )));
    };
    match b.endpoint(listener) {
        Some((host, port)) => Ok((b.id, host.to_string(), i32::from(port))),
        None => Err(not_available(format!(
            "broker {} leads partition {partition} of {internal} but has no listener {listener}",
            b.id
        ))),
    }
}

/// Handles FindCoordinator for a client that came in on `listener`.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let listener = ctx.session.listener.name.as_str();
    let state = broker.cluster();
    let mut result = topic_of(request.key_type);
    // The first lookup creates the internal topic (as Kafka does).
    match result {
        Ok(OFFSETS_TOPIC) => {
            if let Err(err) = broker.ensure_offsets_topic().await {
                result = Err(ApiError::with_message(
                    crate::errors::group_error_code(err),
                    format!("{OFFSETS_TOPIC} is not available yet"),
                ));
            }
        }
        Ok(_) => {
            if let Err(err) = broker.ensure_transaction_topic().await {
                result = Err(err);
            }
        }
        Err(_) => {}
    }
    // DESCRIBE on the group or the transactional id.
    let find = |key: &str| -> Result<(i32, String, i32), ApiError> {
        let internal = result.clone()?;
        if internal == OFFSETS_TOPIC {
            authorize::group(broker, &state, ctx, AclOperation::Describe, key)?;
        } else {
            authorize::transactional_id(broker, &state, ctx, AclOperation::Describe, key)?;
        }
        coordinator_of(broker, internal, key, listener)
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = find(key.as_str());
                let entry = Coordinator::default().with_key(key);
                match found {
                    Ok((node, host, port)) => entry
                        .with_node_id(BrokerId(node))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err(err) => entry
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(err.code())
                        .with_error_message(err.message.map(StrBytes::from_string)),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match find(request.key.as_str()) {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(host))
            .with_port(port),
        Err(err) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(err.code())
            // v0 has no error message.
            .with_error_message(
                err.message
                    .filter(|_| version >= 1)
                    .map(StrBytes::from_string),
            ),
    }
}
