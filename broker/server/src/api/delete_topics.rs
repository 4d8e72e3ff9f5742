//! DeleteTopics: by name (v1-5) or by topic id (v6), through the metadata
//! quorum. Every replica closes and removes its logs, so a topic recreated
//! with the same name starts empty.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use runnel_meta::{AclOperation, Command};

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::topics::TopicError;

/// Handles DeleteTopics.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(name) => Ok(name.clone()),
            None => broker
                .cluster()
                .topics
                .values()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
                .ok_or_else(|| ApiError::from(TopicError::UnknownTopicId(id))),
        };
        // DELETE on the topic.
        let resolved = resolved.and_then(|name| {
            authorize::topic(broker, &broker.cluster(), ctx, AclOperation::Delete, &name)
                .map(|()| name)
        });
        let result = match resolved {
            Ok(topic_name) if topic_name == crate::group::OFFSETS_TOPIC => {
                Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("{topic_name} is an internal topic and cannot be deleted"),
                ))
            }
            Ok(topic_name) => {
                let id = broker.cluster().topics.get(&topic_name).map(|t| t.id);
                // The metadata sync closes and deletes the logs on every
                // replica, and removes the topic's metrics and committed offsets.
                match broker
                    .propose(Command::DeleteTopic {
                        name: topic_name.clone(),
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::info!(topic = %topic_name, "deleted topic");
                        Ok((topic_name, id.unwrap_or(Uuid::nil())))
                    }
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        };
        let entry = DeletableTopicResult::default();
        responses.push(match result {
            Ok((topic_name, topic_id)) => entry
                .with_name(Some(TopicName(StrBytes::from_string(topic_name))))
                .with_topic_id(topic_id),
            Err(err) => entry
                .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(id)
                .with_error_code(err.code())
                .with_error_message(if version >= 5 {
                    err.message.map(StrBytes::from_string)
                } else {
                    None
                }),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
