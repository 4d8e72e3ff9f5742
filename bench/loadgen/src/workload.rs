//! A workload's description and the two ways to run one: [`run`] (produce, and consume what
//! was produced) and [`consume_backlog`] (read a topic from the beginning).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::Offset;

use crate::admin;
use crate::consume::{self, Assignment, ConsumerResult};
use crate::error::{Error, Result};
use crate::payload::{self, HEADER_LEN};
use crate::produce::{LoadProducer, ProducerPlan, ProducerResult};
use crate::stats::{self, Counters, Latency, Sampler, Summary, Throughput};

/// Producer `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Acks {
    /// `acks=0`: never answered.
    #[value(name = "0")]
    None,
    /// `acks=1`: the leader's write.
    #[value(name = "1")]
    Leader,
    /// `acks=all`: every in-sync replica.
    #[value(name = "all")]
    All,
}

impl Acks {
    /// The value of librdkafka's `acks` property.
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// How consumers share the topic's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsumerMode {
    /// One consumer group (subscribe; the broker's group coordinator assigns).
    Group,
    /// Partitions split round-robin and assigned directly, starting at the current end.
    Assign,
}

/// A produce (and consume) workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Bootstrap servers of any Kafka-compatible cluster.
    pub bootstrap: String,
    /// Topic; created with `partitions` and `replication_factor` unless it exists.
    pub topic: String,
    /// Partitions of a created topic.
    pub partitions: i32,
    /// Replication factor of a created topic.
    pub replication_factor: i32,
    /// Value size in bytes (at least [`HEADER_LEN`]).
    pub record_size: usize,
    /// Producer clients, each its own librdkafka instance on its own thread.
    pub producers: usize,
    /// Consumer clients (0: produce only).
    pub consumers: usize,
    /// How consumers share partitions.
    pub consumer_mode: ConsumerMode,
    /// Target total MB/s (10^6 bytes of values) over all producers; 0 = as fast as possible.
    pub rate_mb_s: f64,
    /// Stop producing after this long.
    pub duration: Option<Duration>,
    /// Stop producing after this many records in total.
    pub records: Option<u64>,
    /// Distinct keys (0: no keys; librdkafka spreads records over partitions).
    pub keys: u64,
    /// Producer `acks`.
    pub acks: Acks,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    pub batch_size: u32,
    /// `compression.type`.
    pub compression: String,
    /// Further librdkafka properties for every client (`-X key=value`), applied last.
    pub properties: Vec<(String, String)>,
    /// How long consumers may take to read the last acknowledged records after producing ends.
    pub drain_timeout: Duration,
    /// Print nothing to stderr while running.
    pub quiet: bool,
}

impl Workload {
    /// A workload with the defaults of the command line.
    pub fn new(bootstrap: &str, topic: &str) -> Workload {
        Workload {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            partitions: 3,
            replication_factor: 1,
            record_size: 1024,
            producers: 1,
            consumers: 0,
            consumer_mode: ConsumerMode::Assign,
            rate_mb_s: 0.0,
            duration: Some(Duration::from_secs(10)),
            records: None,
            keys: 0,
            acks: Acks::All,
            linger_ms: 5,
            batch_size: 1_000_000,
            compression: "none".into(),
            properties: Vec::new(),
            drain_timeout: Duration::from_secs(60),
            quiet: false,
        }
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("acks", self.acks.as_str())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("batch.num.messages", "100000")
            .set("compression.type", &self.compression)
            .set("queue.buffering.max.kbytes", "65536")
            .set("queue.buffering.max.messages", "1000000")
            .set("max.in.flight.requests.per.connection", "16")
            .set("message.timeout.ms", "300000")
            // Java's partitioner, so keyed records land where Kafka clients would put them.
            .set("partitioner", "murmur2_random");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn validate(&self) -> Result<()> {
        if self.record_size < HEADER_LEN {
            return Err(Error::Invalid(format!(
                "record size {} is below the {HEADER_LEN}-byte header",
                self.record_size
            )));
        }
        if self.producers == 0 {
            return Err(Error::Invalid("at least one producer".into()));
        }
        if self.duration.is_none() && self.records.is_none() {
            return Err(Error::Invalid("give a duration or a record count".into()));
        }
        if self.rate_mb_s < 0.0 || !self.rate_mb_s.is_finite() {
            return Err(Error::Invalid(format!("rate {} MB/s", self.rate_mb_s)));
        }
        Ok(())
    }
}

fn run_id() -> u64 {
    // Time and process id: distinct between runs, never 0 (the warm-up's id).
    (payload::wall_nanos() ^ (u64::from(std::process::id()) << 48)) | 1
}

fn join<T>(h: std::thread::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    h.join()
        .map_err(|_| Error::Thread(format!("{what} thread panicked")))?
}

/// Runs `w`: creates (or reuses) the topic, starts the consumers and waits until they hold
/// every partition, warms up the producers, then produces for the duration or record count
/// and waits until the consumers have read every acknowledged record (or the drain timeout).
pub fn run(w: &Workload) -> Result<Summary> {
    w.validate()?;
    let partitions = admin::ensure_topic(
        &w.bootstrap,
        &w.topic,
        w.partitions,
        w.replication_factor,
        &w.properties,
    )?;
    let run_id = run_id();
    let counters = Arc::new(Counters::default());
    let control = consume::control(w.consumers);

    // Consumers first, positioned at the current end (assign) or in a new group reading from
    // the earliest offset and skipping other runs' records (group), so none of this run's
    // records is missed.
    let mut consumer_threads = Vec::new();
    let ends = if w.consumers > 0 && w.consumer_mode == ConsumerMode::Assign {
        let md = admin::metadata_client(&w.bootstrap, &w.properties)?;
        admin::watermarks(&md, &w.topic, partitions)?
    } else {
        Vec::new()
    };
    let group = format!("runnel-loadgen-{run_id:x}");
    for i in 0..w.consumers {
        let how = match w.consumer_mode {
            ConsumerMode::Group => Assignment::Group,
            ConsumerMode::Assign => Assignment::Partitions(
                (0..partitions)
                    .filter(|p| *p as usize % w.consumers == i)
                    .map(|p| (p, Offset::Offset(ends[p as usize].1)))
                    .collect(),
            ),
        };
        let mut config = consume::base_config(&w.bootstrap, &group);
        for (k, v) in &w.properties {
            config.set(k, v);
        }
        let consumer = consume::create(&config, &w.topic, &how)?;
        let (counters, control) = (counters.clone(), control.clone());
        consumer_threads.push(std::thread::spawn(move || {
            consume::consume(consumer, i, run_id, None, &counters, &control)
        }));
    }
    if w.consumers > 0 && w.consumer_mode == ConsumerMode::Group {
        consume::wait_assigned(
            &control,
            i64::from(partitions),
            Instant::now() + Duration::from_secs(60),
        )?;
    }

    // Producers: each its own client, connected and warmed up before the clock starts.
    let total = w.records.unwrap_or(u64::MAX);
    let per_rate = w.rate_mb_s * 1e6 / w.record_size as f64 / w.producers as f64;
    let config = w.producer_config();
    let mut producers = Vec::new();
    for i in 0..w.producers {
        let records = if total == u64::MAX {
            u64::MAX
        } else {
            total / w.producers as u64 + u64::from((i as u64) < total % w.producers as u64)
        };
        let plan = ProducerPlan {
            topic: w.topic.clone(),
            partitions,
            record_size: w.record_size,
            run_id,
            records,
            duration: w.duration,
            rate: per_rate,
            keys: w.keys,
            key_offset: i as u64 * 7919,
        };
        producers.push(LoadProducer::new(&config, plan, counters.clone())?);
    }

    let sampler = Sampler::start(counters.clone(), w.quiet);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = producers
        .into_iter()
        .map(|p| {
            let stop = stop.clone();
            std::thread::spawn(move || p.run(start, &stop))
        })
        .collect();
    let mut results: Vec<ProducerResult> = Vec::new();
    let mut first_err = None;
    for t in threads {
        match join(t, "producer") {
            Ok(r) => results.push(r),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
    }
    let produced_at = Instant::now();

    // Drain: consumers read until they have every acknowledged record of this run.
    let acked = Counters::get(&counters.acked);
    if w.consumers > 0 {
        let deadline = produced_at + w.drain_timeout;
        while Counters::get(&counters.consumed) < acked && Instant::now() < deadline {
            if consumer_threads.iter().all(|t| t.is_finished()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    control.stop.store(true, Ordering::Relaxed);
    let mut consumed: Vec<ConsumerResult> = Vec::new();
    for t in consumer_threads {
        match join(t, "consumer") {
            Ok(r) => consumed.push(r),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let timeline = sampler.finish();
    if let Some(e) = first_err {
        return Err(e);
    }

    let mut ack = stats::histogram()?;
    for r in &results {
        let _ = ack.add(&r.latency);
    }
    let last_ack = results.iter().map(|r| r.last_ack).max().unwrap_or(start);
    let mut e2e = stats::histogram()?;
    for r in &consumed {
        let _ = e2e.add(&r.e2e);
    }
    let c_first = consumed.iter().filter_map(|r| r.first).min();
    let c_last = consumed.iter().filter_map(|r| r.last).max();
    Ok(Summary {
        mode: "run".into(),
        bootstrap: w.bootstrap.clone(),
        topic: w.topic.clone(),
        record_size: w.record_size,
        partitions,
        producers: w.producers,
        consumers: w.consumers,
        target_mb_s: w.rate_mb_s,
        acks: w.acks.as_str().into(),
        sent: Counters::get(&counters.sent),
        errors: Counters::get(&counters.errors),
        first_error: results
            .iter()
            .find_map(|r| r.first_error.clone())
            .or_else(|| consumed.iter().find_map(|r| r.error.clone())),
        produce: Throughput::new(
            acked,
            Counters::get(&counters.acked_bytes),
            last_ack - start,
        ),
        ack_latency: Latency::of(&ack),
        consume: Throughput::new(
            Counters::get(&counters.consumed),
            Counters::get(&counters.consumed) * w.record_size as u64,
            match (c_first, c_last) {
                (Some(a), Some(b)) => b - a,
                _ => Duration::ZERO,
            },
        ),
        consumed_foreign: Counters::get(&counters.foreign),
        e2e_latency: Latency::of(&e2e),
        max_behind_schedule_ms: results
            .iter()
            .map(|r| r.max_behind.as_secs_f64() * 1e3)
            .fold(0.0, f64::max),
        timeline,
    })
}

/// Reading an existing topic from the beginning.
#[derive(Debug, Clone)]
pub struct BacklogSpec {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The topic to read.
    pub topic: String,
    /// Consumer clients (partitions split round-robin, assigned directly).
    pub consumers: usize,
    /// Further librdkafka properties (`-X key=value`), applied last.
    pub properties: Vec<(String, String)>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Print nothing to stderr while running.
    pub quiet: bool,
}

/// Reads every record of `spec.topic` that exists when it starts (up to each partition's high
/// watermark), as fast as the consumers can; throughput is timed from the first record read to
/// the last.
pub fn consume_backlog(spec: &BacklogSpec) -> Result<Summary> {
    if spec.consumers == 0 {
        return Err(Error::Invalid("at least one consumer".into()));
    }
    let md = admin::metadata_client(&spec.bootstrap, &spec.properties)?;
    let partitions = admin::wait_for_leaders(&md, &spec.topic, None)?;
    let marks = admin::watermarks(&md, &spec.topic, partitions)?;
    let expected: i64 = marks.iter().map(|(lo, hi)| hi - lo).sum();
    let counters = Arc::new(Counters::default());
    let control = consume::control(0);
    let group = format!("runnel-loadgen-backlog-{:x}", run_id());
    let sampler = Sampler::start(counters.clone(), spec.quiet);
    let mut threads = Vec::new();
    for i in 0..spec.consumers {
        let mine: Vec<i32> = (0..partitions)
            .filter(|p| {
                *p as usize % spec.consumers == i && marks[*p as usize].1 > marks[*p as usize].0
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let how = Assignment::Partitions(
            mine.iter()
                .map(|p| (*p, Offset::Offset(marks[*p as usize].0)))
                .collect(),
        );
        let until: Vec<(i32, i64)> = mine.iter().map(|p| (*p, marks[*p as usize].1)).collect();
        let mut config = consume::base_config(&spec.bootstrap, &group);
        // A backlog read wants big fetches and a deep prefetch queue.
        config
            .set("queued.max.messages.kbytes", "1048576")
            .set("fetch.message.max.bytes", "10485760");
        for (k, v) in &spec.properties {
            config.set(k, v);
        }
        let consumer = consume::create(&config, &spec.topic, &how)?;
        let (counters, control) = (counters.clone(), control.clone());
        threads.push(std::thread::spawn(move || {
            consume::consume(consumer, i, 0, Some(until), &counters, &control)
        }));
    }
    let deadline = Instant::now() + spec.timeout;
    while !threads.iter().all(|t| t.is_finished()) {
        if Instant::now() > deadline {
            control.stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut results = Vec::new();
    for t in threads {
        results.push(join(t, "consumer")?);
    }
    let timeline = sampler.finish();
    let first = results.iter().filter_map(|r| r.first).min();
    let last = results.iter().filter_map(|r| r.last).max();
    let records = Counters::get(&counters.consumed);
    if (records as i64) < expected {
        return Err(Error::Timeout(format!(
            "read {records} of {expected} records of {} in {:?}",
            spec.topic, spec.timeout
        )));
    }
    Ok(Summary {
        mode: "consume".into(),
        bootstrap: spec.bootstrap.clone(),
        topic: spec.topic.clone(),
        partitions,
        consumers: spec.consumers,
        first_error: results.iter().find_map(|r| r.error.clone()),
        consume: Throughput::new(
            records,
            Counters::get(&counters.consumed_bytes),
            match (first, last) {
                (Some(a), Some(b)) => b - a,
                _ => Duration::ZERO,
            },
        ),
        timeline,
        ..Summary::default()
    })
}
