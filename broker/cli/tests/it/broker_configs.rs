//! `runnel broker describe|alter` and the reassignment throttle cleanup
//! (`runnel topic reassign --remove-throttle`) against a real broker.

use serde_json::Value;

use crate::harness::DevBroker;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// (value, source) of `name` in `runnel broker describe --output json`.
fn config(broker: &DevBroker, target: &[&str], name: &str) -> (String, String) {
    let mut args = vec!["broker", "describe", "--output", "json"];
    args.extend_from_slice(target);
    let rows = json(&broker.ok(&args, b""));
    let row = rows
        .as_array()
        .expect("an array")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing: {rows}"));
    (
        row["value"].as_str().unwrap_or_default().to_string(),
        row["source"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn broker_rates_are_set_described_refused_when_bad_and_removed_with_the_throttle() {
    let broker = DevBroker::start();
    let cluster = json(&broker.ok(&["cluster", "describe", "--output", "json"], b""));
    let id = cluster["brokers"][0]["id"]
        .as_i64()
        .expect("broker id")
        .to_string();
    let me = ["--broker", id.as_str()];

    broker.ok(
        &[
            "broker",
            "alter",
            "--broker",
            &id,
            "--config",
            "follower.replication.throttled.rate=2048",
        ],
        b"",
    );
    broker.ok(
        &[
            "broker",
            "alter",
            "--default",
            "--config",
            "leader.replication.throttled.rate=4096",
        ],
        b"",
    );
    assert_eq!(
        config(&broker, &me, "follower.replication.throttled.rate"),
        ("2048".into(), "DYNAMIC_BROKER_CONFIG".into())
    );
    assert_eq!(
        config(&broker, &me, "leader.replication.throttled.rate"),
        ("4096".into(), "DYNAMIC_DEFAULT_BROKER_CONFIG".into())
    );
    let table = broker.ok(&["broker", "describe", "--broker", &id], b"");
    assert!(table.starts_with("NAME"), "{table}");

    // A bad rate and a static key are refused with the broker's reason.
    for (arg, named) in [
        (
            "follower.replication.throttled.rate=-1",
            "follower.replication.throttled.rate",
        ),
        ("log.retention.ms=1", "log.retention.ms"),
    ] {
        let run = broker.run(&["broker", "alter", "--broker", &id, "--config", arg], b"");
        assert!(!run.status.success(), "{arg} accepted");
        assert!(
            run.stderr.contains("INVALID_CONFIG") && run.stderr.contains(named),
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        config(&broker, &me, "follower.replication.throttled.rate").0,
        "2048"
    );

    // --remove-throttle clears the topic lists and this broker's rates.
    broker.ok(&["topic", "create", "moving", "--partitions", "1"], b"");
    broker.ok(
        &[
            "topic",
            "alter",
            "moving",
            "--config",
            "follower.replication.throttled.replicas=0:1",
        ],
        b"",
    );
    broker.ok(&["topic", "reassign", "moving", "--remove-throttle"], b"");
    // The per-broker rate is gone; the cluster default (not set by a reassignment) stays.
    assert_eq!(
        config(&broker, &me, "follower.replication.throttled.rate"),
        ("9223372036854775807".into(), "DEFAULT_CONFIG".into())
    );
    assert_eq!(
        config(&broker, &me, "leader.replication.throttled.rate").0,
        "4096"
    );
    let described = broker.ok(&["topic", "describe", "moving", "--output", "json"], b"");
    assert!(!described.contains("throttled.replicas"), "{described}");
}
