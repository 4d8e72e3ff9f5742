//! The broker's periodic background passes over every local partition:
//! retention and time-based segment rolls (`log_retention_check_interval_ms`)
//! and compaction (`log_cleaner_interval_ms`), each on a blocking thread until
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::runtime::{now_ms, wait_shutdown};

/// Runs retention and time-based segment rolls periodically.
pub(super) async fn retention_and_rolls(broker: Arc<Broker>) {
    let period = broker.config.log_retention_check_interval_ms;
    for_each_partition_every(broker, period, |topic, partition, now| {
        match partition.log.apply_retention(now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(topic = %topic.name, partition = partition.index, segments = n,
                "retention deleted segments"),
            Err(err) => tracing::warn!(topic = %topic.name, partition = partition.index,
                error = %err, "retention failed"),
        }
        if let Err(err) = partition.log.maybe_roll(now) {
            tracing::warn!(topic = %topic.name, partition = partition.index, error = %err,
                "segment roll failed");
        }
    })
    .await;
}

/// Compacts the logs of compacted topics periodically (`log_cleaner_interval_ms`).
/// `Log::compact` does nothing for other logs and skips logs that are not
/// dirty enough; the work runs off the async threads and never holds a log's
/// append lock except to swap a cleaned segment in.
pub(super) async fn log_cleaner(broker: Arc<Broker>) {
    let period = broker.config.log_cleaner_interval_ms;
    for_each_partition_every(broker, period, |topic, partition, _| {
        if let Err(err) = partition.log.compact(now_ms()) {
            tracing::warn!(topic = %topic.name, partition = partition.index,
                error = %err, "compaction failed");
        }
    })
    .await;
}

/// Every `period_ms` (first run one period after start) calls `work` for every
/// partition of every topic on a blocking thread, until shutdown. A pass that
/// overruns delays the next tick instead of queueing passes.
async fn for_each_partition_every<F>(broker: Arc<Broker>, period_ms: u64, work: F)
where
    F: Fn(&crate::topics::Topic, &crate::topics::Partition, i64) + Send + Sync + 'static,
{
    let mut shutdown = broker.shutdown_signal();
    let mut ticker = tokio::time::interval(Duration::from_millis(period_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let work = Arc::new(work);
    loop {
        tokio::select! {
            _ = wait_shutdown(&mut shutdown) => return,
            _ = ticker.tick() => {}
        }
        let topics = broker.topics.clone();
        let work = work.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in topics.list() {
                for partition in topic.partitions() {
                    work(&topic, &partition, now);
                }
            }
        })
        .await;
    }
}
