//! DescribeLogDirs: the broker's one log directory (`data_dir`) with the size of every
//! partition replica it holds (all, or those asked for), its offset lag (how far its log end
//! is behind its high watermark, 0 when caught up), and the file system's total and usable
//! bytes (v4; -1 when they cannot be read), as `kafka-log-dirs.sh --describe` shows them.
//! Partitions this broker does not hold are left out, as Kafka does.

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::topics::Topic;

/// Handles DescribeLogDirs.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let wanted: Vec<(Arc<Topic>, Option<Vec<i32>>)> = match request.topics {
        None => broker
            .topics
            .list()
            .into_iter()
            .map(|t| (t, None))
            .collect(),
        Some(asked) => asked
            .into_iter()
            .filter_map(|t| Some((broker.topics.get(t.topic.0.as_str())?, Some(t.partitions))))
            .collect(),
    };
    let mut topics: Vec<DescribeLogDirsTopic> = wanted
        .into_iter()
        .filter_map(|(topic, asked)| {
            let partitions: Vec<DescribeLogDirsPartition> = topic
                .partitions()
                .into_iter()
                .filter(|p| asked.as_ref().is_none_or(|a| a.contains(&p.index)))
                .map(|p| {
                    let lag = (p.log.high_watermark() - p.log.log_end_offset()).max(0);
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX))
                        .with_offset_lag(lag)
                        .with_is_future_key(false)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    topics.sort_by(|a, b| a.name.0.cmp(&b.name.0));
    let dir = &broker.config.data_dir;
    let (total, usable) = space(dir).unwrap_or((-1, -1));
    let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(shown.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

/// Total and available bytes of the file system holding `dir`.
fn space(dir: &Path) -> Option<(i64, i64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let block = stat.f_frsize;
    let total = stat.f_blocks.checked_mul(block)?;
    let usable = stat.f_bavail.checked_mul(block)?;
    Some((i64::try_from(total).ok()?, i64::try_from(usable).ok()?))
}
