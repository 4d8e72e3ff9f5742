//! AddOffsetsToTxn: adds a group's `__consumer_offsets` partition to the
//! transaction, so the coordinator writes a marker there too and the
//! transaction's offset commits (TxnOffsetCommit) take effect with it.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;

/// Handles AddOffsetsToTxn.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    if broker.ensure_offsets_topic().await.is_err() {
        return AddOffsetsToTxnResponse::default()
            .with_error_code(kafka_protocol::ResponseError::CoordinatorNotAvailable.code());
    }
    let partition = broker.groups.partition_of(request.group_id.0.as_str());
    let result = broker
        .txns
        .add_partitions(
            broker,
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await;
    match result {
        Ok(()) => AddOffsetsToTxnResponse::default(),
        Err(mut err) => {
            if err.code == kafka_protocol::ResponseError::ProducerFenced && version < 2 {
                err.code = kafka_protocol::ResponseError::InvalidProducerEpoch;
            }
            AddOffsetsToTxnResponse::default().with_error_code(err.code())
        }
    }
}
