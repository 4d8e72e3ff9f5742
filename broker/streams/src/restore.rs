//! Restoring a store from its changelog partition, from a checkpointed offset (or the start)
//! to the end, with progress logged and counted.

use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Result, StreamsError};
use crate::metrics::Metrics;
use crate::store::RawStore;

const BATCH: usize = 10_000;

/// The restore consumer's context: the end of a partition is how a restore knows it is done,
/// not an error worth logging.
pub(crate) struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::error!(%error, reason, "restore consumer error");
        }
    }
}

impl ConsumerContext for RestoreContext {}

/// Applies changelog records from `from` to the end; returns the next offset.
pub(crate) fn restore(
    consumer: &BaseConsumer<RestoreContext>,
    store: &RawStore,
    changelog: &str,
    partition: i32,
    from: i64,
    metrics: &Metrics,
) -> Result<i64> {
    let (low, high) = consumer
        .fetch_watermarks(changelog, partition, Duration::from_secs(30))
        .map_err(|e| StreamsError::kafka(format!("end offsets of {changelog}/{partition}"), e))?;
    let start = from.max(low);
    let label = [store.name(), &partition.to_string()];
    let remaining = metrics.restore_remaining.with_label_values(&label);
    let restored = metrics.restored.with_label_values(&label);
    if start >= high {
        remaining.set(0);
        return Ok(start);
    }
    tracing::info!(
        store = store.name(),
        changelog,
        partition,
        from = start,
        to = high,
        "restoring"
    );
    let began = Instant::now();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(changelog, partition, Offset::Offset(start))
        .map_err(|e| StreamsError::kafka("restore assignment", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| StreamsError::kafka(format!("assigning {changelog}/{partition}"), e))?;
    let mut position = start;
    let mut batch = Vec::with_capacity(BATCH);
    let mut applied = 0u64;
    let mut last_log = Instant::now();
    let outcome = loop {
        if position >= high {
            break Ok(());
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => {
                position = msg.offset() + 1;
                if let Some(key) = msg.key() {
                    batch.push((key.to_vec(), msg.payload().map(|p| p.to_vec())));
                }
                if batch.len() >= BATCH {
                    store.restore_batch(&batch)?;
                    applied += batch.len() as u64;
                    restored.inc_by(batch.len() as u64);
                    batch.clear();
                    remaining.set(high - position);
                }
            }
            // read_committed stops at the last stable offset, below `high` when the tail is an
            // aborted or open transaction.
            Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
            Some(Err(e)) => {
                break Err(StreamsError::kafka(
                    format!("restoring {changelog}/{partition}"),
                    e,
                ))
            }
            None => {}
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                store = store.name(),
                partition,
                position,
                end = high,
                "restore progress"
            );
            last_log = Instant::now();
        }
    };
    let _ = consumer.unassign();
    outcome?;
    store.restore_batch(&batch)?;
    applied += batch.len() as u64;
    restored.inc_by(batch.len() as u64);
    store.sync()?;
    remaining.set(0);
    tracing::info!(
        store = store.name(),
        partition,
        records = applied,
        millis = began.elapsed().as_millis() as u64,
        "restored"
    );
    Ok(position)
}
