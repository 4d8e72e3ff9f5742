//! `runnel-loadgen`: command-line front end of the load generator (see the crate docs).

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use runnel_loadgen::{Acks, BacklogSpec, ConsumerMode, Summary, Workload};

/// Native load generator for Kafka-compatible brokers (librdkafka).
#[derive(Debug, Parser)]
#[command(name = "runnel-loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce (and, with --consumers, consume what was produced); ack and end-to-end latency.
    Run(RunArgs),
    /// Read an existing topic from the beginning to its current end as fast as possible.
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Bootstrap servers of any Kafka-compatible cluster.
    #[arg(long, short = 'b', default_value = "localhost:9092")]
    bootstrap: String,
    /// librdkafka property for every client, applied last (repeatable): -X key=value.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    property: Vec<(String, String)>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// No per-second lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Topic (default: a new one named loadgen-<time>); used as is if it exists.
    #[arg(long, short = 't')]
    topic: Option<String>,
    /// Partitions of a created topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Replication factor of a created topic.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Value size in bytes (at least 16: the send time and run id ride in the value).
    #[arg(long, short = 's', default_value_t = 1024)]
    record_size: usize,
    /// Producer clients, each its own librdkafka instance and thread.
    #[arg(long, short = 'p', default_value_t = 1)]
    producers: usize,
    /// Consumer clients (0: produce only).
    #[arg(long, short = 'c', default_value_t = 0)]
    consumers: usize,
    /// How consumers share partitions.
    #[arg(long, value_enum, default_value_t = ConsumerMode::Assign)]
    consumer_mode: ConsumerMode,
    /// Target total MB/s (10^6 bytes of values) over all producers; 0 = as fast as possible.
    #[arg(long, short = 'r', default_value_t = 0.0)]
    rate: f64,
    /// Seconds to produce (default 10 when --records is not given).
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Records to produce in total.
    #[arg(long, short = 'n')]
    records: Option<u64>,
    /// Keyed records with this many distinct keys (0: no keys).
    #[arg(long, default_value_t = 0)]
    keys: u64,
    /// Producer acks.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u32,
    /// compression.type (none, gzip, snappy, lz4, zstd; the build includes zlib only).
    #[arg(long, default_value = "none")]
    compression: String,
    /// Seconds consumers may take after producing ends to read every acknowledged record.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Topic to read.
    #[arg(long, short = 't')]
    topic: String,
    /// Consumer clients.
    #[arg(long, short = 'c', default_value_t = 1)]
    consumers: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn secs(s: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{flag}: {s} is not a duration"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (summary, json) = match cli.command {
        Command::Run(a) => {
            let topic = a.topic.unwrap_or_else(|| {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("loadgen-{ms}")
            });
            let mut w = Workload::new(&a.common.bootstrap, &topic);
            w.partitions = a.partitions;
            w.replication_factor = a.replication_factor;
            w.record_size = a.record_size;
            w.producers = a.producers;
            w.consumers = a.consumers;
            w.consumer_mode = a.consumer_mode;
            w.rate_mb_s = a.rate;
            w.duration = match (a.duration, a.records) {
                (Some(d), _) => Some(secs(d, "--duration")?),
                (None, Some(_)) => None,
                (None, None) => Some(Duration::from_secs(10)),
            };
            w.records = a.records;
            w.keys = a.keys;
            w.acks = a.acks;
            w.linger_ms = a.linger_ms;
            w.batch_size = a.batch_size;
            w.compression = a.compression;
            w.properties = a.common.property;
            w.drain_timeout = secs(a.drain_timeout, "--drain-timeout")?;
            w.quiet = a.common.quiet;
            if !w.quiet {
                eprintln!(
                    "runnel-loadgen: {} x {} B to {topic} on {} with {} producer(s), {} consumer(s), acks={}, rate {}",
                    w.records.map_or("timed".to_string(), |n| n.to_string()),
                    w.record_size,
                    w.bootstrap,
                    w.producers,
                    w.consumers,
                    w.acks.as_str(),
                    if w.rate_mb_s > 0.0 { format!("{} MB/s", w.rate_mb_s) } else { "max".into() }
                );
            }
            (runnel_loadgen::run(&w)?, a.common.json)
        }
        Command::Consume(a) => {
            let spec = BacklogSpec {
                bootstrap: a.common.bootstrap,
                topic: a.topic,
                consumers: a.consumers,
                properties: a.common.property,
                timeout: secs(a.timeout, "--timeout")?,
                quiet: a.common.quiet,
            };
            (runnel_loadgen::consume_backlog(&spec)?, a.common.json)
        }
    };
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    if summary.errors > 0 {
        bail!(
            "{} deliveries failed (first: {})",
            summary.errors,
            summary.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    println!(
        "topic {} ({} partitions) on {}",
        s.topic, s.partitions, s.bootstrap
    );
    if s.mode == "run" {
        println!(
            "produce  {:>9.1} MB/s {:>10.0} rec/s  {} acked of {} sent, {} errors, {:.2}s",
            s.produce.mb_s,
            s.produce.records_s,
            s.produce.records,
            s.sent,
            s.errors,
            s.produce.seconds
        );
        let l = &s.ack_latency;
        println!(
            "ack latency  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} records)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        );
        if s.target_mb_s > 0.0 {
            println!(
                "paced at {} MB/s; furthest behind schedule {:.2} ms",
                s.target_mb_s, s.max_behind_schedule_ms
            );
        }
    }
    if s.consumers > 0 {
        println!(
            "consume  {:>9.1} MB/s {:>10.0} rec/s  {} records, {:.2}s ({} of other runs)",
            s.consume.mb_s,
            s.consume.records_s,
            s.consume.records,
            s.consume.seconds,
            s.consumed_foreign
        );
    }
    if s.mode == "run" && s.consumers > 0 {
        let l = &s.e2e_latency;
        println!(
            "end-to-end   p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} records)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        );
    }
    if let Some(e) = &s.first_error {
        println!("first error: {e}");
    }
}
