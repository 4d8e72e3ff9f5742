//! `runnel topic ...` with table and JSON output.

use serde_json::Value;

use crate::harness::DevBroker;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn find_topic<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("topic list is a JSON array")
        .iter()
        .find(|t| t["name"] == name)
}

#[test]
fn topic_create_list_describe_alter_delete_round_trip() {
    let broker = DevBroker::start();

    let out = broker.ok(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    );
    assert_eq!(out.trim(), "Created topic orders.");

    // Table: a header and a row naming the topic with its partition count.
    let table = broker.ok(&["topic", "list"], b"");
    let mut lines = table.lines();
    let header = lines.next().expect("header line");
    assert!(header.starts_with("NAME"), "{table}");
    let row = lines
        .find(|l| l.split_whitespace().next() == Some("orders"))
        .unwrap_or_else(|| panic!("no orders row in:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "3", "{table}");
    assert_eq!(cells[2], "1", "{table}");

    // JSON list: the documented shape.
    let list = json(&broker.ok(&["topic", "list", "--output", "json"], b""));
    let orders = find_topic(&list, "orders").unwrap_or_else(|| panic!("orders missing: {list}"));
    assert_eq!(orders["partitions"], 3);
    assert_eq!(orders["replication_factor"], 1);
    let topic_id = orders["topic_id"].as_str().expect("topic_id string");
    assert_eq!(topic_id.len(), 22, "Kafka's base64 topic id: {topic_id}");
    assert_ne!(topic_id, "AAAAAAAAAAAAAAAAAAAAAA", "topic id must be set");

    // JSON describe: partitions with leader/replicas/isr/offsets, config overrides.
    let desc = json(&broker.ok(&["topic", "describe", "orders", "--output", "json"], b""));
    assert_eq!(desc["name"], "orders");
    assert_eq!(desc["topic_id"], topic_id);
    let parts = desc["partitions"].as_array().expect("partitions array");
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i as u64);
        assert!(p["leader"].as_i64().expect("leader") >= 0, "{p}");
        assert_eq!(p["replicas"].as_array().map(Vec::len), Some(1), "{p}");
        assert_eq!(p["isr"].as_array().map(Vec::len), Some(1), "{p}");
        assert_eq!(p["log_start_offset"], 0);
        assert_eq!(p["log_end_offset"], 0);
    }
    assert_eq!(desc["configs"]["retention.ms"], "3600000", "{desc}");

    // Table describe names the topic and lists one row per partition.
    let table = broker.ok(&["topic", "describe", "orders"], b"");
    assert!(table.starts_with("Topic: orders"), "{table}");
    assert!(table.contains("retention.ms=3600000"), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with(char::is_numeric))
            .count(),
        3,
        "{table}"
    );

    // Alter: more partitions, one config set, one removed.
    let out = broker.ok(
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "segment.ms=600000",
            "--delete-config",
            "retention.ms",
        ],
        b"",
    );
    assert_eq!(out.trim(), "Altered topic orders.");
    let desc = json(&broker.ok(&["topic", "describe", "orders", "--output", "json"], b""));
    assert_eq!(
        desc["partitions"].as_array().map(Vec::len),
        Some(5),
        "{desc}"
    );
    assert_eq!(desc["configs"]["segment.ms"], "600000", "{desc}");
    assert!(
        desc["configs"].get("retention.ms").is_none(),
        "override removed: {desc}"
    );

    // Shrinking is refused.
    let run = broker.run(&["topic", "alter", "orders", "--partitions", "2"], b"");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);

    // Delete.
    let out = broker.ok(&["topic", "delete", "orders"], b"");
    assert_eq!(out.trim(), "Deleted topic orders.");
    let list = json(&broker.ok(&["topic", "list", "--output", "json"], b""));
    assert!(
        find_topic(&list, "orders").is_none(),
        "deleted topic still listed: {list}"
    );
}

#[test]
fn creating_an_existing_topic_fails_with_the_kafka_error_name() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "dup"], b"");
    let run = broker.run(&["topic", "create", "dup"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("'dup'"), "{}", run.stderr);
}

#[test]
fn topic_list_hides_internal_topics_unless_asked_and_describe_still_works() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "visible"], b"");
    // The broker creates __consumer_offsets when a group is first used.
    broker.ok(
        &["consume", "visible", "--group", "g", "--timeout-ms", "200"],
        b"",
    );
    let all = json(&broker.ok(
        &["topic", "list", "--include-internal", "--output", "json"],
        b"",
    ));
    assert!(
        find_topic(&all, "__consumer_offsets").is_some(),
        "--include-internal must list __consumer_offsets: {all}"
    );
    assert!(find_topic(&all, "visible").is_some(), "{all}");

    let default = json(&broker.ok(&["topic", "list", "--output", "json"], b""));
    assert!(
        find_topic(&default, "__consumer_offsets").is_none(),
        "internal topics are hidden by default: {default}"
    );
    assert!(find_topic(&default, "visible").is_some(), "{default}");
    let table = broker.ok(&["topic", "list"], b"");
    assert!(!table.contains("__consumer_offsets"), "{table}");

    let desc = json(&broker.ok(
        &[
            "topic",
            "describe",
            "__consumer_offsets",
            "--output",
            "json",
        ],
        b"",
    ));
    assert_eq!(desc["name"], "__consumer_offsets");
}
