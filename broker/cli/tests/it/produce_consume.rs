//! `runnel produce` and `runnel consume` round trips.

use std::collections::BTreeMap;

use runnel_client::partitioner::partition_for_key;
use serde_json::Value;

use crate::harness::DevBroker;

fn keyed_input(n: usize, keys: usize) -> (String, Vec<(String, String)>) {
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("key-{}", i % keys), format!("value-{i}")))
        .collect();
    let text: String = pairs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    (text, pairs)
}

#[test]
fn keyed_lines_round_trip_and_land_on_murmur2_partitions() {
    const PARTITIONS: i32 = 4;
    let broker = DevBroker::start();
    broker.ok(
        &[
            "topic",
            "create",
            "keyed",
            "--partitions",
            &PARTITIONS.to_string(),
        ],
        b"",
    );
    let (input, pairs) = keyed_input(60, 13);
    let out = broker.ok(
        &["produce", "keyed", "--key-separator", ":"],
        input.as_bytes(),
    );
    assert_eq!(out, "", "produce prints nothing on success");

    // Everything comes back, key and value tab-separated.
    let n = pairs.len().to_string();
    let out = broker.ok(
        &[
            "consume",
            "keyed",
            "--from-beginning",
            "--print-key",
            "--max-messages",
            &n,
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let mut got: Vec<String> = out.lines().map(str::to_string).collect();
    let mut want: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Each key is on toPositive(murmur2(key)) % partitions, in produce order.
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (k, v) in &pairs {
        let p = partition_for_key(k.as_bytes(), PARTITIONS);
        expected.entry(p).or_default().push(format!("{k}\t{v}"));
    }
    for p in 0..PARTITIONS {
        let want = expected.get(&p).cloned().unwrap_or_default();
        if want.is_empty() {
            continue;
        }
        let out = broker.ok(
            &[
                "consume",
                "keyed",
                "--partition",
                &p.to_string(),
                "--from-beginning",
                "--print-key",
                "--max-messages",
                &want.len().to_string(),
                "--timeout-ms",
                "30000",
            ],
            b"",
        );
        let got: Vec<String> = out.lines().map(str::to_string).collect();
        assert_eq!(got, want, "partition {p}");
    }

    // No stray records: each partition's end offset is its expected count.
    let desc: Value = serde_json::from_str(
        broker
            .ok(&["topic", "describe", "keyed", "--output", "json"], b"")
            .trim(),
    )
    .expect("json");
    for part in desc["partitions"].as_array().expect("partitions") {
        let p = part["partition"].as_i64().expect("partition") as i32;
        let count = expected.get(&p).map_or(0, Vec::len) as i64;
        assert_eq!(
            part["log_end_offset"].as_i64(),
            Some(count),
            "partition {p}: {desc}"
        );
    }
}

#[test]
fn consume_from_an_offset_prints_timestamp_and_offset() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "events", "--partitions", "1"], b"");
    broker.ok(&["produce", "events"], b"zero\none\ntwo\n");
    let out = broker.ok(
        &[
            "consume",
            "events",
            "--partition",
            "0",
            "--offset",
            "1",
            "--print-offset",
            "--print-timestamp",
            "--max-messages",
            "1",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let line = out
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no output: {out:?}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 3, "{line}");
    let ts = fields[0]
        .strip_prefix("CreateTime:")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        ts.parse::<i64>().expect("timestamp") > 1_600_000_000_000,
        "{line}"
    );
    assert_eq!(fields[1], "Offset:1");
    assert_eq!(fields[2], "one");
    assert_eq!(
        out.lines().count(),
        1,
        "--max-messages 1 prints one record: {out}"
    );
}

#[test]
fn consume_from_latest_sees_only_new_records_and_stops_when_idle() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "live", "--partitions", "2"], b"");
    broker.ok(&["produce", "live"], b"old-1\nold-2\n");
    // Nothing new arrives: the consumer exits after the idle timeout, printing nothing.
    let out = broker.ok(&["consume", "live", "--timeout-ms", "1500"], b"");
    assert_eq!(out, "");
}

#[test]
fn every_acks_mode_delivers_records() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "acks", "--partitions", "1"], b"");
    for acks in ["0", "1", "all"] {
        broker.ok(
            &["produce", "acks", "--acks", acks],
            format!("acks-{acks}\n").as_bytes(),
        );
    }
    let out = broker.ok(
        &[
            "consume",
            "acks",
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, vec!["acks-0", "acks-1", "acks-all"]);
}

#[test]
fn keyless_lines_spread_over_partitions_without_loss() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "spread", "--partitions", "3"], b"");
    let input: String = (0..30).map(|i| format!("line-{i}\n")).collect();
    broker.ok(&["produce", "spread"], input.as_bytes());
    let out = broker.ok(
        &[
            "consume",
            "spread",
            "--from-beginning",
            "--max-messages",
            "30",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<String> = (0..30).map(|i| format!("line-{i}")).collect();
    got.sort_unstable();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn produce_to_an_explicit_partition() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "pinned", "--partitions", "3"], b"");
    broker.ok(
        &[
            "produce",
            "pinned",
            "--partition",
            "2",
            "--key-separator",
            ":",
        ],
        b"a:1\nb:2\n",
    );
    let out = broker.ok(
        &[
            "consume",
            "pinned",
            "--partition",
            "2",
            "--from-beginning",
            "--print-key",
            "--max-messages",
            "2",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    assert_eq!(out, "a\t1\nb\t2\n");
}

#[test]
fn dev_broker_stops_cleanly_on_sigterm() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "t"], b"");
    let status = broker.terminate();
    assert!(
        status.success(),
        "runnel dev exit status after SIGTERM: {status:?}"
    );
}

/// kafka-python partitions keys with its own port of the Java client's
/// murmur2; `runnel produce` must put every key on the same partition.
#[test]
fn keys_land_on_the_same_partitions_as_with_kafka_python() {
    const SCRIPT: &str = r#"
import sys
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1], api_version=(2, 5))
futures = [(k, p.send("xpy", key=k.encode(), value=b"py")) for k in sys.argv[2:]]
p.flush()
for k, f in futures:
    print(k, f.get(timeout=30).partition)
"#;
    let has_kafka_python = std::process::Command::new("python3")
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_kafka_python {
        eprintln!("SKIPPED keys_land_on_the_same_partitions_as_with_kafka_python: python3 with kafka-python is not installed");
        return;
    }
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "xpy", "--partitions", "5"], b"");
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();

    let py = std::process::Command::new("python3")
        .args(["-c", SCRIPT, &broker.kafka])
        .args(&keys)
        .output()
        .expect("run python3");
    assert!(
        py.status.success(),
        "kafka-python failed: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let python_partition: BTreeMap<String, i32> = String::from_utf8_lossy(&py.stdout)
        .lines()
        .filter_map(|l| {
            let (k, p) = l.split_once(' ')?;
            Some((k.to_string(), p.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(python_partition.len(), keys.len(), "{python_partition:?}");

    let input: String = keys.iter().map(|k| format!("{k}:rn\n")).collect();
    broker.ok(
        &["produce", "xpy", "--key-separator", ":"],
        input.as_bytes(),
    );
    for p in 0..5 {
        let expected: Vec<&String> = keys.iter().filter(|k| python_partition[*k] == p).collect();
        // Each key on this partition twice: once from kafka-python, once from runnel.
        let n = (expected.len() * 2).to_string();
        if expected.is_empty() {
            continue;
        }
        let out = broker.ok(
            &[
                "consume",
                "xpy",
                "--partition",
                &p.to_string(),
                "--from-beginning",
                "--print-key",
                "--max-messages",
                &n,
                "--timeout-ms",
                "30000",
            ],
            b"",
        );
        let runnel_keys: Vec<&str> = out.lines().filter_map(|l| l.strip_suffix("\trn")).collect();
        let want: Vec<&str> = expected.iter().map(|k| k.as_str()).collect();
        assert_eq!(runnel_keys, want, "partition {p}");
    }
}
