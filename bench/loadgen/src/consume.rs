//! Consumer clients: librdkafka `BaseConsumer`s that count what they read and time this run's
//! records end to end (send time in the payload → read).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{kafka, Error, Result};
use crate::payload;
use crate::stats::{self, Counters};

/// How a consumer gets its partitions.
pub(crate) enum Assignment {
    /// Subscribe in this consumer group.
    Group,
    /// Assign these (partition, start offset) pairs.
    Partitions(Vec<(i32, Offset)>),
}

/// What one consumer measured.
pub(crate) struct ConsumerResult {
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    pub(crate) e2e: Histogram<u64>,
    pub(crate) error: Option<String>,
}

/// Shared state between the run and its consumers.
pub(crate) struct ConsumeControl {
    /// Set when consumers should stop (every expected record read, or the drain deadline).
    pub(crate) stop: AtomicBool,
    /// Partitions each consumer holds (group mode), so the run waits for the group to form.
    pub(crate) assigned: Vec<AtomicI64>,
}

pub(crate) fn create(config: &ClientConfig, topic: &str, how: &Assignment) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = config.create().map_err(kafka("creating a consumer"))?;
    match how {
        Assignment::Group => consumer
            .subscribe(&[topic])
            .map_err(kafka(format!("subscribing to {topic}")))?,
        Assignment::Partitions(parts) => {
            let mut tpl = TopicPartitionList::new();
            for (p, off) in parts {
                tpl.add_partition_offset(topic, *p, *off)
                    .map_err(kafka(format!("assigning {topic}/{p}")))?;
            }
            consumer
                .assign(&tpl)
                .map_err(kafka(format!("assigning {topic}")))?;
        }
    }
    Ok(consumer)
}

/// Reads until `control.stop`, or (with `until`) until every listed partition reached its
/// end offset. `run_id` 0 times nothing end to end (a backlog of unknown records).
pub(crate) fn consume(
    consumer: BaseConsumer,
    index: usize,
    run_id: u64,
    until: Option<Vec<(i32, i64)>>,
    counters: &Counters,
    control: &ConsumeControl,
) -> Result<ConsumerResult> {
    let mut e2e = stats::histogram()?;
    let mut first = None;
    let mut last = None;
    // Partition → end offset still to reach; a partition at its end is removed.
    // Partitions with no records to read are done at once.
    let mut remaining: Option<std::collections::HashMap<i32, i64>> =
        until.map(|v| v.into_iter().filter(|(_, end)| *end > 0).collect());
    let mut polls: u32 = 0;
    let mut error = None;
    loop {
        if remaining.as_ref().is_some_and(|r| r.is_empty()) || control.stop.load(Ordering::Relaxed)
        {
            break;
        }
        polls = polls.wrapping_add(1);
        if let Some(slot) = control.assigned.get(index) {
            // Until the group has formed, look at every poll; then now and again (a rebalance).
            if polls & 1023 == 1 || slot.load(Ordering::Relaxed) == 0 {
                let n = consumer.assignment().map_or(0, |a| a.count() as i64);
                slot.store(n, Ordering::Relaxed);
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                let value = m.payload().unwrap_or_default();
                counters
                    .consumed_bytes
                    .fetch_add(value.len() as u64, Ordering::Relaxed);
                match payload::read(value) {
                    Some((run, sent)) if run == run_id && run_id != 0 => {
                        counters.consumed.fetch_add(1, Ordering::Relaxed);
                        stats::record_nanos(&mut e2e, payload::wall_nanos().saturating_sub(sent));
                    }
                    _ if run_id == 0 => {
                        counters.consumed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        counters.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(r) = &mut remaining {
                    let p = m.partition();
                    if r.get(&p).is_some_and(|end| m.offset() + 1 >= *end) {
                        r.remove(&p);
                    }
                }
            }
            Some(Err(e)) => {
                // Transient errors (a leader moving) are retried by librdkafka; keep the first
                // one for the summary.
                error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(slot) = control.assigned.get(index) {
        slot.store(0, Ordering::Relaxed);
    }
    Ok(ConsumerResult {
        first,
        last,
        e2e,
        error,
    })
}

/// Waits until the group's consumers hold `partitions` partitions between them.
pub(crate) fn wait_assigned(
    control: &ConsumeControl,
    partitions: i64,
    deadline: Instant,
) -> Result<()> {
    loop {
        let held: i64 = control
            .assigned
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        if held >= partitions {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "the consumer group to be assigned {partitions} partitions (held {held})"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads consumer settings for throughput: large fetches and a deep local queue.
pub(crate) fn base_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "262144");
    c
}

/// For `Arc`-shared controls.
pub(crate) fn control(consumers: usize) -> Arc<ConsumeControl> {
    Arc::new(ConsumeControl {
        stop: AtomicBool::new(false),
        assigned: (0..consumers).map(|_| AtomicI64::new(0)).collect(),
    })
}
