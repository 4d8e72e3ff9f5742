//! Topic creation and offsets, through librdkafka's admin client and metadata.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{kafka, Error, Result};

/// How long metadata, offsets and topic creation may take.
const DEADLINE: Duration = Duration::from_secs(60);

fn admin(bootstrap: &str, extra: &[(String, String)]) -> Result<AdminClient<DefaultClientContext>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        // Only connection settings (security, timeouts) make sense for the admin client.
        if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
            c.set(k, v);
        }
    }
    c.create().map_err(kafka("creating the admin client"))
}

/// A metadata-only client (no group) for partition counts and high watermarks.
pub(crate) fn metadata_client(bootstrap: &str, extra: &[(String, String)]) -> Result<BaseConsumer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
            c.set(k, v);
        }
    }
    c.create().map_err(kafka("creating the metadata client"))
}

/// Creates `topic`, then waits until Metadata shows every partition with a leader.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    extra: &[(String, String)],
) -> Result<()> {
    let admin = admin(bootstrap, extra)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let opts = AdminOptions::new().operation_timeout(Some(DEADLINE));
    let results = rt
        .block_on(admin.create_topics([&new], &opts))
        .map_err(kafka(format!("creating topic {topic}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::Kafka {
                    what: format!("creating topic {t}"),
                    source: rdkafka::error::KafkaError::AdminOp(code),
                })
            }
        }
    }
    wait_for_leaders(&metadata_client(bootstrap, extra)?, topic, Some(partitions))?;
    Ok(())
}

/// Uses `topic` if it exists (returning its partition count), else creates it.
pub fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    extra: &[(String, String)],
) -> Result<i32> {
    let client = metadata_client(bootstrap, extra)?;
    if let Some(n) = partition_count(&client, topic)? {
        wait_for_leaders(&client, topic, Some(n))?;
        return Ok(n);
    }
    create_topic(bootstrap, topic, partitions, replication_factor, extra)?;
    Ok(partitions)
}

/// Partitions of `topic`, or `None` if the broker does not know it.
pub(crate) fn partition_count(client: &BaseConsumer, topic: &str) -> Result<Option<i32>> {
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(kafka(format!("metadata of {topic}")))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

/// Waits until Metadata lists `topic` with `want` partitions (or any) each with a leader.
pub(crate) fn wait_for_leaders(
    client: &BaseConsumer,
    topic: &str,
    want: Option<i32>,
) -> Result<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(md) = client.fetch_metadata(Some(topic), Duration::from_secs(10)) {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                let parts = t.partitions();
                let n = parts.len() as i32;
                if t.error().is_none()
                    && n > 0
                    && want.is_none_or(|w| w == n)
                    && parts.iter().all(|p| p.leader() >= 0 && p.error().is_none())
                {
                    return Ok(n);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "every partition of {topic} to have a leader"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (low, high) watermark of every partition of `topic`.
pub(crate) fn watermarks(
    client: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(i64, i64)>> {
    (0..partitions)
        .map(|p| {
            client
                .fetch_watermarks(topic, p, DEADLINE)
                .map_err(kafka(format!("watermarks of {topic}/{p}")))
        })
        .collect()
}
