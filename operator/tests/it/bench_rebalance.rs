//! Benchmark (ignored; run by hand) of the operator's scale-up rebalance: how long moving a
//! gibibyte onto two new brokers takes under `spec.rebalance.throttleBytesPerSecond`, what
//! copy rate that comes to against the throttle, and what it does to the produce latency of
//! an application writing at a steady rate meanwhile. It asserts no time limit, only that the
//! measurement itself is sound (every record acknowledged, the rebalance done, data cleaned).
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/main/target cargo build --release -p runnel-server -p runnel-agent
//! mkdir -p /tmp/bench-helper && cp /work/main/target/release/runnel-{broker,agent} /tmp/bench-helper/
//! RUNNEL_BROKER_BIN=/tmp/bench-helper/runnel-broker RUNNEL_AGENT_BIN=/tmp/bench-helper/runnel-agent \
//!   cargo test -p runnel-operator --test it -- --ignored --nocapture bench_rebalance
//! ```
//!
//! Knobs (environment): `RUNNEL_BENCH_THROTTLE` bytes/s (default 50 MiB/s; 0 leaves the
//! Cluster without a `rebalance` spec, so copies run unthrottled), `RUNNEL_BENCH_BYTES` of
//! 1 KiB records in the 12-partition rf 3 topic `bulk` (default 1 GiB),
//! `RUNNEL_BENCH_PROBE_RATE` bytes/s of the latency probe on topic `probe` (default 2 MB/s),
//! `RUNNEL_BENCH_BEFORE_SECS` of probe before the scale (default 20) and
//! `RUNNEL_BENCH_AFTER_SECS` after it (default 10: preferred leaders move at the end). The load is
//! `bench/rebalance_load.py` (confluent-kafka, so librdkafka measures the latency).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use runnel_client::NewTopic;
use runnel_operator::controller::cluster::SCALING_CONDITION;
use runnel_operator::crd::{Cluster, RebalanceSpec};
use runnel_operator::kafka::BootstrapResolver;
use serde_json::json;

use crate::harness::{cluster_spec, Env, NS};

const MIB: f64 = 1024.0 * 1024.0;
const RECORD_SIZE: u64 = 1024;
const BULK: &str = "bulk";
const BULK_PARTITIONS: i32 = 12;
const PROBE: &str = "probe";
const PROBE_PARTITIONS: i32 = 3;
/// Generous bounds so a slow machine still finishes; they are deadlines, not measurements.
const FILL_TIMEOUT: Duration = Duration::from_secs(1800);
const REBALANCE_TIMEOUT_SECS: u64 = 1800;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a whole number: {e}")),
        Err(_) => default,
    }
}

fn load_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/rebalance_load.py")
}

/// Fails (never skips) without python3 and confluent-kafka: the load is the measurement.
fn require_python() {
    let out = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output()
        .unwrap_or_else(|e| panic!("the benchmark needs python3 with confluent-kafka: {e}"));
    assert!(
        out.status.success(),
        "the benchmark needs `pip install confluent-kafka`: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Free bytes on the filesystem holding `dir` (`df -Pk`).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .expect("run df");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("cannot read free space from df: {text}"))
}

/// Bytes of the files under `dir` (0 when it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Load processes

/// What a load process printed: its ack latencies (ms, stamped when read) and other lines.
#[derive(Default)]
struct Output {
    acks: Vec<(Instant, f64)>,
    errors: Vec<(Instant, String)>,
    lines: Vec<String>,
}

/// A running `python3 bench/rebalance_load.py`; killed on drop.
struct Load {
    child: Child,
    out: Arc<Mutex<Output>>,
    /// Holds the process's stderr.
    dir: tempfile::TempDir,
}

impl Load {
    fn start(mode: &str, bootstrap: &str, topic: &str, extra: &[String]) -> Load {
        let dir = tempfile::Builder::new()
            .prefix("runnel-bench-load-")
            .tempdir()
            .expect("tempdir");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = Command::new("python3")
            .arg(load_script())
            .arg(mode)
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args(["--size", &RECORD_SIZE.to_string()])
            .args(extra)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start python3 bench/rebalance_load.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let out = Arc::new(Mutex::new(Output::default()));
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let mut out = sink.lock().expect("lock");
                if let Some(ms) = line.strip_prefix("ack ").and_then(|v| v.parse().ok()) {
                    out.acks.push((now, ms));
                } else if let Some(e) = line.strip_prefix("err ") {
                    out.errors.push((now, e.to_string()));
                } else {
                    out.lines.push(line);
                }
            }
        });
        Load { child, out, dir }
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits for a stdout line starting with `prefix` and returns it; fails when the process
    /// exits first or after `timeout`.
    async fn line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .out
                .lock()
                .expect("lock")
                .lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            // Re-check the output after an exit: the reader may have been one line behind.
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let out = self.out.lock().expect("lock");
                if let Some(line) = out.lines.iter().find(|l| l.starts_with(prefix)) {
                    return line.clone();
                }
                panic!(
                    "rebalance_load.py exited ({status}) without a `{prefix}` line; stderr:\n{}",
                    self.stderr_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rebalance_load.py printed no `{prefix}` line within {timeout:?}; stderr:\n{}",
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The probe's ack latencies (ms) read in `[from, to)`, and its delivery errors there.
    fn window(&self, from: Instant, to: Instant) -> (Vec<f64>, usize) {
        let out = self.out.lock().expect("lock");
        let within = |t: &Instant| *t >= from && *t < to;
        let acks = out
            .acks
            .iter()
            .filter(|(t, _)| within(t))
            .map(|(_, ms)| *ms)
            .collect();
        let errors = out.errors.iter().filter(|(t, _)| within(t)).count();
        (acks, errors)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` fields of a line.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Figures

/// p50, p99 and max of latencies in ms (nearest rank), or None without samples.
fn percentiles(mut ms: Vec<f64>) -> Option<(f64, f64, f64)> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let i = (q * ms.len() as f64).ceil() as usize;
        ms[i.clamp(1, ms.len()) - 1]
    };
    Some((rank(0.50), rank(0.99), ms[ms.len() - 1]))
}

fn latency_row(label: &str, probe: &Load, from: Instant, to: Instant) -> String {
    let (acks, errors) = probe.window(from, to);
    let n = acks.len();
    let secs = to.saturating_duration_since(from).as_secs_f64();
    match percentiles(acks) {
        Some((p50, p99, max)) => format!(
            "  {label:<34} {secs:>6.1} s {n:>8} {p50:>9.2} {p99:>9.2} {max:>9.2} {errors:>7}"
        ),
        None => format!("  {label:<34} {secs:>6.1} s {n:>8}  (no acknowledgements) {errors:>7}"),
    }
}

fn condition<'a>(c: &'a Cluster, type_: &str) -> Option<&'a Condition> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// `/proc/loadavg`'s first three fields: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn ready_brokers(c: &Cluster) -> i32 {
    c.status.as_ref().map_or(0, |s| s.ready_brokers)
}

/// Replica sets by (topic, partition), internal topics included.
async fn placement(env: &Env) -> BTreeMap<(String, i32), BTreeSet<i32>> {
    let meta = env
        .kafka("demo")
        .await
        .metadata(None, false)
        .await
        .expect("metadata");
    meta.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.name.clone(), p.partition),
                    p.replicas.iter().copied().collect(),
                )
            })
        })
        .collect()
}

async fn create_topic(env: &Env, name: &str, partitions: i32) {
    env.kafka("demo")
        .await
        .create_topics(
            &[NewTopic {
                name: name.into(),
                partitions: Some(partitions),
                replication_factor: Some(3),
                configs: vec![("min.insync.replicas".into(), "2".into())],
            }],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
}

/// Instants the scale-up passed through, as the drive loop saw them (~200 ms apart).
#[derive(Default)]
struct Milestones {
    /// First `Scaling=True/Rebalancing` condition of the new generation.
    rebalancing: Option<(Instant, String)>,
    /// First such condition saying the plan was applied (`moving N partitions ...`).
    plan: Option<(Instant, String)>,
    /// Five brokers Ready and `Scaling=False/Balanced` after a rebalance.
    balanced: Option<Instant>,
}

#[tokio::test]
#[ignore = "benchmark: run by hand with release binaries, see the module doc"]
async fn bench_rebalance_3_to_5_of_1_gib() {
    require_python();
    let throttle = env_u64("RUNNEL_BENCH_THROTTLE", 50 * 1024 * 1024);
    let bytes = env_u64("RUNNEL_BENCH_BYTES", 1 << 30);
    let probe_rate = env_u64("RUNNEL_BENCH_PROBE_RATE", 2_000_000);
    let before_secs = env_u64("RUNNEL_BENCH_BEFORE_SECS", 20);
    let after_secs = env_u64("RUNNEL_BENCH_AFTER_SECS", 10);
    let load_at_start = loadavg();
    // rf 3 stores the data three times, and the new brokers' copies come on top of that before
    // the old replicas are deleted; keep a margin for logs and page-cache writeback.
    let tmp = std::env::temp_dir();
    let free = free_bytes(&tmp);
    assert!(
        free > bytes * 6,
        "{} has {:.1} GiB free; the benchmark of {:.1} GiB needs about {:.1} GiB",
        tmp.display(),
        free as f64 / MIB / 1024.0,
        bytes as f64 / MIB / 1024.0,
        (bytes * 6) as f64 / MIB / 1024.0
    );

    let mut env = Env::new();
    let mut spec = cluster_spec(3);
    spec.storage.size = format!("{}Gi", ((bytes * 3) >> 30) + 10);
    spec.rebalance = (throttle > 0).then_some(RebalanceSpec {
        throttle_bytes_per_second: Some(throttle),
    });
    let cluster = env.ready_cluster_with("demo", spec).await;
    create_topic(&env, BULK, BULK_PARTITIONS).await;
    create_topic(&env, PROBE, PROBE_PARTITIONS).await;
    let bootstrap = env.resolver.bootstrap(&cluster).expect("bootstrap");

    // 1. Fill `bulk` as fast as one librdkafka producer can.
    let mut fill = Load::start(
        "fill",
        &bootstrap,
        BULK,
        &["--bytes".into(), bytes.to_string()],
    );
    let filled = fill.line("filled ", FILL_TIMEOUT).await;
    let f = fields(&filled);
    assert_eq!(
        f["errors"], "0",
        "fill: not every record acknowledged: {filled}"
    );
    let fill_bytes: u64 = f["bytes"].parse().expect("bytes");
    let fill_records: u64 = f["records"].parse().expect("records");
    let fill_secs: f64 = f["secs"].parse().expect("secs");
    drop(fill);
    // Whatever of the fill the kernel still holds dirty would be written back during the
    // before window and weigh on its fsyncs; flush it first so that window is steady state.
    let sync_start = Instant::now();
    let synced = tokio::task::spawn_blocking(|| Command::new("sync").status())
        .await
        .expect("join sync")
        .expect("run sync");
    assert!(synced.success(), "sync failed: {synced}");
    let sync_secs = sync_start.elapsed().as_secs_f64();

    // 2. The probe, measured for a while on the steady cluster (the operator reconciling).
    let mut probe = Load::start(
        "probe",
        &bootstrap,
        PROBE,
        &["--rate".into(), probe_rate.to_string()],
    );
    probe.line("ready", Duration::from_secs(60)).await;
    let before_start = Instant::now();
    let before_end = before_start + Duration::from_secs(before_secs);
    env.drive(
        "demo",
        before_secs + 60,
        "the probe's before window to pass",
        |_, _| Instant::now() >= before_end,
    )
    .await;
    let old = placement(&env).await;

    // 3. Scale to 5 and drive until balanced.
    let patched = Api::<Cluster>::namespaced(env.client.clone(), NS)
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .expect("patch replicas to 5");
    let t_patch = Instant::now();
    let generation = patched.metadata.generation;
    let mut m = Milestones::default();
    env.drive(
        "demo",
        REBALANCE_TIMEOUT_SECS,
        "5 brokers Ready and Scaling=False/Balanced after a rebalance",
        |c, _| {
            let Some(s) = condition(c, SCALING_CONDITION) else {
                return false;
            };
            // A condition written for the old generation says nothing about this scale.
            if s.observed_generation < generation {
                return false;
            }
            let now = Instant::now();
            if s.status == "True" && s.reason == "Rebalancing" {
                m.rebalancing.get_or_insert((now, s.message.clone()));
                if s.message.starts_with("moving ") {
                    m.plan.get_or_insert((now, s.message.clone()));
                }
            }
            let done = m.rebalancing.is_some()
                && ready_brokers(c) == 5
                && s.status == "False"
                && s.reason == "Balanced";
            if done {
                m.balanced = Some(now);
            }
            done
        },
    )
    .await;
    let t_balanced = m.balanced.expect("drive returns once balanced");
    let (t_rebalancing, first_message) = m.rebalancing.clone().expect("seen Rebalancing");
    // Without a `moving` message the plan went out in the same pass that first said
    // Rebalancing.
    let (t_plan, plan_message) = m
        .plan
        .clone()
        .unwrap_or((t_rebalancing, first_message.clone()));

    // What moved: each replica a partition gained, sized on the broker that received it.
    let new = placement(&env).await;
    let mut partitions_moved = 0;
    let mut bulk_moved = 0;
    let mut replicas_copied = 0;
    let mut into: BTreeMap<i32, u64> = BTreeMap::new();
    for ((topic, partition), replicas) in &new {
        let before = old.get(&(topic.clone(), *partition));
        let gained: Vec<i32> = replicas
            .iter()
            .filter(|r| before.is_some_and(|b| !b.contains(r)))
            .copied()
            .collect();
        if gained.is_empty() {
            continue;
        }
        partitions_moved += 1;
        bulk_moved += usize::from(topic == BULK);
        for b in gained {
            replicas_copied += 1;
            let dir = env
                .broker("demo", b)
                .data_dir
                .join(format!("{topic}-{partition}"));
            *into.entry(b).or_default() += dir_size(&dir);
        }
    }
    let moved: u64 = into.values().sum();
    assert!(
        moved > 0,
        "the rebalance copied nothing: {old:?} -> {new:?}"
    );
    let (probe_before, probe_before_errors) = probe.window(before_start, before_end);
    let (probe_during, _) = probe.window(t_patch, t_balanced);
    assert!(
        !probe_before.is_empty() && !probe_during.is_empty(),
        "the probe acknowledged nothing in a window (before {}, during {}, errors before \
         {probe_before_errors}); stderr:\n{}",
        probe_before.len(),
        probe_during.len(),
        probe.stderr_tail()
    );

    // The probe a while longer: the last pass elected the preferred leaders, so the probe's
    // partitions may have just changed leader.
    let after_end = t_balanced + Duration::from_secs(after_secs);
    env.drive(
        "demo",
        after_secs + 60,
        "the probe's after window to pass",
        |_, _| Instant::now() >= after_end,
    )
    .await;
    let load_at_end = loadavg();

    // 4. The summary.
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    let copy_secs = secs(t_plan, t_balanced);
    let total_partitions = new.len();
    let throttle_text = if throttle > 0 {
        format!(
            "{:.1} MiB/s ({throttle} B/s) per broker, leader and follower side",
            throttle as f64 / MIB
        )
    } else {
        "none (no spec.rebalance)".to_string()
    };
    let per_broker: Vec<String> = into
        .iter()
        .map(|(b, n)| {
            format!(
                "broker {b} {:.1} MiB ({:.1} MiB/s)",
                *n as f64 / MIB,
                *n as f64 / MIB / copy_secs
            )
        })
        .collect();
    let vs_throttle = if throttle > 0 {
        let busiest = into.values().copied().max().unwrap_or(0);
        format!(
            "; busiest receiver at {:.0}% of the throttle",
            busiest as f64 / copy_secs / throttle as f64 * 100.0
        )
    } else {
        String::new()
    };
    println!();
    println!("==== operator scale-up rebalance benchmark: 3 -> 5 brokers ====");
    println!(
        "data                {:.1} MiB in `{BULK}` ({BULK_PARTITIONS} partitions, rf 3): \
         {fill_records} x {RECORD_SIZE} B, filled in {fill_secs:.1} s ({:.1} MB/s, acks=all)",
        fill_bytes as f64 / MIB,
        fill_bytes as f64 / fill_secs / 1e6
    );
    println!("page cache          `sync` after the fill took {sync_secs:.1} s");
    println!("throttle            {throttle_text}");
    println!(
        "partitions moved    {partitions_moved} of {total_partitions} ({bulk_moved} of \
         {BULK_PARTITIONS} in `{BULK}`), {replicas_copied} replicas copied"
    );
    println!(
        "bytes moved         {:.1} MiB ({moved} B), sized on the receiving brokers: {}",
        moved as f64 / MIB,
        per_broker.join(", ")
    );
    println!(
        "patch -> Rebalancing {:>7.1} s  ({first_message})",
        secs(t_patch, t_rebalancing)
    );
    println!(
        "patch -> plan        {:>7.1} s  ({plan_message})",
        secs(t_patch, t_plan)
    );
    println!("patch -> Balanced    {:>7.1} s", secs(t_patch, t_balanced));
    println!("rebalance duration  {copy_secs:.1} s (plan applied -> Balanced)");
    println!(
        "effective copy rate {:.1} MiB/s in all{vs_throttle}",
        moved as f64 / MIB / copy_secs
    );
    println!(
        "probe               {:.2} MB/s of {RECORD_SIZE} B records to `{PROBE}` ({PROBE_PARTITIONS} \
         partitions, rf 3), acks=all, linger.ms=5; ack latency in ms",
        probe_rate as f64 / 1e6
    );
    println!(
        "  {:<34} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}",
        "window", "length", "acks", "p50", "p99", "max", "errors"
    );
    println!(
        "{}",
        latency_row(
            "before (steady, 3 brokers)",
            &probe,
            before_start,
            before_end
        )
    );
    println!(
        "{}",
        latency_row("during (patch -> Balanced)", &probe, t_patch, t_balanced)
    );
    println!(
        "{}",
        latency_row("during copy (plan -> Balanced)", &probe, t_plan, t_balanced)
    );
    println!(
        "{}",
        latency_row("after (5 brokers, balanced)", &probe, t_balanced, after_end)
    );
    println!(
        "machine             {} cores; load average (1, 5, 15 min) {load_at_start} at the start, \
         {load_at_end} at the end",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("==== end ====");
    println!();

    // The data (rf 3 plus the copies) goes with the Env's directory.
    drop(probe);
    let dirs: Vec<PathBuf> = (0..5)
        .map(|o| env.broker("demo", o).data_dir.clone())
        .collect();
    drop(env);
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
