//! Throughput of runnel-streams topologies beside a plain librdkafka consume-and-produce loop,
//! against any broker, and the changelog restore rate.
//!
//! ```text
//! cargo run --release -p runnel-streams --example bench -- --bootstrap-servers localhost:9092 --records 500000
//! ```
//! Each run reads the same input topic (JSON readings keyed by one of 1,000 stations) from the
//! start and is timed from its first processed record to its last, so joining the group is not
//! counted. Figures go to standard output as `name records/s ratio-to-plain`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use runnel_streams::{
    serdes, KafkaStreams, ProcessingGuarantee, StreamsBuilder, StreamsConfig, Topology,
};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Cli {
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_servers: String,
    /// Input records.
    #[arg(long, default_value_t = 500_000)]
    records: usize,
    /// Input partitions.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Prefix of the topics and application ids (a new one per run keeps runs apart).
    #[arg(long, default_value = "bench")]
    prefix: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    id: u64,
    station: String,
    celsius: f64,
}

fn create(bootstrap: &str, topics: &[(&str, i32)]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, p)| NewTopic::new(name, *p, TopicReplication::Fixed(1)))
        .collect();
    for r in runtime.block_on(admin.create_topics(new.iter(), &AdminOptions::new()))? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

fn produce_input(bootstrap: &str, topic: &str, n: usize) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    for i in 0..n {
        let r = Reading {
            id: i as u64,
            station: format!("station-{:04}", i % 1000),
            celsius: (i % 550) as f64 / 10.0 - 10.0,
        };
        let value = serde_json::to_vec(&r)?;
        loop {
            match producer.send(BaseRecord::to(topic).key(&r.station).payload(&value)) {
                Ok(()) => break,
                Err((_, _)) => producer.poll(Duration::from_millis(10)),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Plain librdkafka: consume every input record and produce it (the same JSON work as the
/// weather filter: parse, test, reformat) — the baseline of the ratios.
fn plain(bootstrap: &str, input: &str, output: &str, n: usize, group: &str) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()?;
    consumer.subscribe(&[input])?;
    let mut seen = 0;
    let mut first = None;
    let mut last_commit = Instant::now();
    while seen < n {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        first.get_or_insert_with(Instant::now);
        seen += 1;
        let r: Reading = serde_json::from_slice(msg.payload().unwrap_or_default())?;
        if r.celsius > 30.0 {
            let out = serde_json::to_vec(
                &serde_json::json!({"station": r.station, "celsius": r.celsius, "fahrenheit": r.celsius * 1.8 + 32.0}),
            )?;
            loop {
                match producer.send(BaseRecord::to(output).key(&r.station).payload(&out)) {
                    Ok(()) => break,
                    Err((_, _)) => producer.poll(Duration::from_millis(10)),
                }
            }
        }
        producer.poll(Duration::ZERO);
        if last_commit.elapsed() > Duration::from_secs(30) {
            producer.flush(Duration::from_secs(60))?;
            consumer.commit_consumer_state(CommitMode::Sync)?;
            last_commit = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(60))?;
    consumer.commit_consumer_state(CommitMode::Sync)?;
    Ok(n as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64()))
}

fn processed(streams: &KafkaStreams, metric: &str) -> f64 {
    streams
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with(metric))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `topology` until `metric` reaches `n`; records/s from the first record to the last.
fn run(topology: Topology, config: StreamsConfig, metric: &str, n: usize) -> anyhow::Result<f64> {
    let streams = Arc::new(KafkaStreams::new(topology, config)?);
    let s = streams.clone();
    let thread = std::thread::spawn(move || s.run());
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let done = processed(&streams, metric);
        if done > 0.0 {
            first.get_or_insert_with(Instant::now);
        }
        if done >= n as f64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline && !thread.is_finished(),
            "the run did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let rate = n as f64 / first.map_or(1.0, |f| f.elapsed().as_secs_f64());
    streams.shutdown_handle().shutdown();
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the streams thread panicked"))??;
    Ok(rate)
}

fn config(
    cli: &Cli,
    app: &str,
    guarantee: ProcessingGuarantee,
    state: &std::path::Path,
) -> StreamsConfig {
    let mut c = StreamsConfig::new(
        format!("{}-{app}", cli.prefix),
        &cli.bootstrap_servers,
        guarantee,
    );
    c.state_dir = state.to_path_buf();
    c.instance_id = "bench".into();
    c
}

fn weather(input: &str, output: &str) -> anyhow::Result<Topology> {
    let b = StreamsBuilder::new();
    b.stream(input, serdes::string(), serdes::json::<Reading>())
        .filter(|_, r: &Reading| r.celsius > 30.0)
        .map_values(|r: Reading| serde_json::json!({"station": r.station, "celsius": r.celsius, "fahrenheit": r.celsius * 1.8 + 32.0}))
        .to(output, serdes::string(), serdes::json());
    Ok(b.build()?)
}

fn count(input: &str, store: &str, by_id: bool) -> anyhow::Result<Topology> {
    let b = StreamsBuilder::new();
    let s = b.stream(input, serdes::string(), serdes::json::<Reading>());
    let grouped = if by_id {
        s.group_by(
            |_, r: &Reading| r.id.to_string(),
            serdes::string(),
            serdes::json(),
        )
    } else {
        s.group_by_key(serdes::string(), serdes::json())
    };
    grouped.count(store);
    Ok(b.build()?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let bs = cli.bootstrap_servers.clone();
    let input = format!("{}-in", cli.prefix);
    let out_plain = format!("{}-out-plain", cli.prefix);
    let out_weather = format!("{}-out-weather", cli.prefix);
    create(
        &bs,
        &[
            (&input, cli.partitions),
            (&out_plain, cli.partitions),
            (&out_weather, cli.partitions),
        ],
    )?;
    let started = Instant::now();
    produce_input(&bs, &input, cli.records)?;
    println!(
        "input {} records in {:.1} s",
        cli.records,
        started.elapsed().as_secs_f64()
    );
    let state = std::env::temp_dir().join(format!("{}-state", cli.prefix));
    let n = cli.records;
    let metric = "runnel_streams_records_processed_total";

    let base = plain(&bs, &input, &out_plain, n, &format!("{}-plain", cli.prefix))?;
    println!("plain-consume-produce {base:.0} records/s 1.00");
    let al = ProcessingGuarantee::AtLeastOnce;
    let eo = ProcessingGuarantee::ExactlyOnce;
    let w = run(
        weather(&input, &out_weather)?,
        config(&cli, "weather-alos", al, &state),
        metric,
        n,
    )?;
    println!("weather-at-least-once {w:.0} records/s {:.2}", w / base);
    let w = run(
        weather(&input, &out_weather)?,
        config(&cli, "weather-eos", eo, &state),
        metric,
        n,
    )?;
    println!("weather-exactly-once {w:.0} records/s {:.2}", w / base);
    let c = run(
        count(&input, "per-station", false)?,
        config(&cli, "count-alos", al, &state),
        metric,
        n,
    )?;
    println!("count-at-least-once {c:.0} records/s {:.2}", c / base);
    let c = run(
        count(&input, "per-station", false)?,
        config(&cli, "count-eos", eo, &state),
        metric,
        n,
    )?;
    println!("count-exactly-once {c:.0} records/s {:.2}", c / base);
    // Every record its own key: the changelog holds one record per input record, and a new
    // instance with an empty state directory restores all of them.
    let ids = run(
        count(&input, "per-id", true)?,
        config(&cli, "restore", al, &state),
        metric,
        2 * n,
    )?;
    println!(
        "count-by-id-through-repartition-at-least-once {:.0} input records/s {:.2}",
        ids / 2.0,
        ids / 2.0 / base
    );
    let fresh = std::env::temp_dir().join(format!("{}-state-fresh", cli.prefix));
    let streams = KafkaStreams::new(
        count(&input, "per-id", true)?,
        config(&cli, "restore", al, &fresh),
    )?;
    let streams = Arc::new(streams);
    let s = streams.clone();
    let began = Instant::now();
    let thread = std::thread::spawn(move || s.run());
    let deadline = Instant::now() + Duration::from_secs(900);
    while processed(&streams, "runnel_streams_restored_records_total") < n as f64 {
        anyhow::ensure!(
            Instant::now() < deadline && !thread.is_finished(),
            "the restore did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = began.elapsed().as_secs_f64();
    println!("restore {n} changelog records {:.0} records/s (including start-up and group join: {secs:.1} s)", n as f64 / secs);
    streams.shutdown_handle().shutdown();
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the streams thread panicked"))??;
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&fresh);
    Ok(())
}
