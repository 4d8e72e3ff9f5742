//! DescribeProducers: the idempotent producers writing to each partition (producer id,
//! epoch, last sequence, last timestamp), from the leader's producer state, as Kafka's
//! `kafka-transactions.sh describe-producers` shows them. Only the leader answers
//! (NOT_LEADER_OR_FOLLOWER otherwise). Without transactions there is no coordinator epoch
//! or open transaction: those fields are -1.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use runnel_meta::AclOperation;

use crate::api::{authorize, RequestContext};
use crate::broker::Broker;

/// Handles DescribeProducers.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let state = broker.cluster();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.0.as_str());
            // READ on the topic.
            let denied =
                authorize::topic(broker, &state, ctx, AclOperation::Read, t.name.0.as_str()).err();
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    if let Some(denied) = &denied {
                        return answer
                            .with_error_code(denied.code())
                            .with_error_message(denied.message.clone().map(StrBytes::from_string));
                    }
                    let Some((topic, partition)) = topic
                        .as_ref()
                        .and_then(|topic| Some((topic, topic.partition(index)?)))
                    else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "unknown partition {}-{index}",
                                t.name.0
                            ))));
                    };
                    let replica = broker.replicas.replica(&topic.name, index, &partition.log);
                    if let Err(err) = replica.check_leader(-1) {
                        return answer
                            .with_error_code(err.code())
                            .with_error_message(err.message.map(StrBytes::from_string));
                    }
                    let open = partition.log.open_transactions();
                    let producers = partition
                        .log
                        .producers()
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(p.producer_id.into())
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(
                                    open.get(&p.producer_id).copied().unwrap_or(-1),
                                )
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
