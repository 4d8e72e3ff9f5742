//! Consumer groups through the CLI against a real `runnel dev` broker:
//! `consume --group` commits and resumes, two members split the partitions,
//! `group describe` shows members and lag, `group reset-offsets` plans,
//! executes and refuses, and `group delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_until, DevBroker};

/// Rebalances take a heartbeat interval (3 s) or so; be generous on a busy machine.
const GROUP_DEADLINE: Duration = Duration::from_secs(60);

fn lines(n: usize, prefix: &str) -> String {
    (0..n).map(|i| format!("{prefix}-{i}\n")).collect()
}

fn describe(broker: &DevBroker, group: &str) -> Value {
    let out = broker.ok(&["group", "describe", group, "--output", "json"], b"");
    serde_json::from_str(&out).expect("describe prints JSON")
}

/// Like [`describe`], but `Null` while the group does not exist yet.
fn describe_now(broker: &DevBroker, group: &str) -> Value {
    let run = broker.run(&["group", "describe", group, "--output", "json"], b"");
    if !run.status.success() {
        return Value::Null;
    }
    serde_json::from_str(&run.stdout).expect("describe prints JSON")
}

/// Committed offset per partition from `group describe --output json`.
fn committed(desc: &Value) -> BTreeMap<i64, Option<i64>> {
    desc["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().expect("partition"),
                o["committed_offset"].as_i64(),
            )
        })
        .collect()
}

/// Assigned partitions per member from `group describe --output json`.
fn assignments(desc: &Value) -> Vec<Vec<i64>> {
    desc["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            m["assignment"]
                .as_array()
                .expect("assignment")
                .iter()
                .flat_map(|tp| tp["partitions"].as_array().expect("partitions").clone())
                .map(|p| p.as_i64().expect("partition"))
                .collect()
        })
        .collect()
}

#[test]
fn consume_group_commits_and_a_second_run_resumes_after_the_commit() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "orders", "--partitions", "3"], b"");
    broker.ok(&["produce", "orders"], lines(30, "order").as_bytes());

    let first = broker.ok(
        &[
            "consume",
            "orders",
            "--group",
            "g1",
            "--from-beginning",
            "--max-messages",
            "10",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let first: Vec<&str> = first.lines().collect();
    assert_eq!(first.len(), 10, "{first:?}");

    let desc = describe(&broker, "g1");
    assert_eq!(desc["state"], "Empty", "the member left on exit: {desc}");
    let total: i64 = committed(&desc).values().flatten().sum();
    assert_eq!(
        total, 10,
        "exactly the printed records are committed: {desc}"
    );
    assert_eq!(desc["total_lag"], 20, "{desc}");

    let second = broker.ok(
        &[
            "consume",
            "orders",
            "--group",
            "g1",
            "--from-beginning",
            "--max-messages",
            "20",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let second: Vec<&str> = second.lines().collect();
    assert_eq!(second.len(), 20, "{second:?}");
    let mut all: Vec<&str> = first.iter().chain(second.iter()).copied().collect();
    all.sort_unstable();
    let mut want: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    want.sort_unstable();
    assert_eq!(
        all, want,
        "the second run reads exactly what the first did not"
    );

    let desc = describe(&broker, "g1");
    assert_eq!(desc["total_lag"], 0, "{desc}");
}

#[test]
fn two_group_consumers_split_the_partitions_and_describe_shows_them() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "split", "--partitions", "4"], b"");
    let args = ["consume", "split", "--group", "g2", "--from-beginning"];
    let a = broker.spawn(&args);
    wait_until(
        "the first member owns all 4 partitions",
        GROUP_DEADLINE,
        || {
            let d = describe_now(&broker, "g2");
            d["state"] == "Stable" && assignments(&d) == vec![vec![0, 1, 2, 3]]
        },
    );
    let b = broker.spawn(&args);
    let mut last = Value::Null;
    wait_until("two members split the 4 partitions", GROUP_DEADLINE, || {
        last = describe_now(&broker, "g2");
        let mut parts = assignments(&last);
        parts.sort();
        last["state"] == "Stable" && parts.len() == 2 && parts.iter().all(|p| p.len() == 2) && {
            let all: BTreeSet<i64> = parts.iter().flatten().copied().collect();
            all == (0..4).collect()
        }
    });
    assert_eq!(last["protocol"], "range", "{last}");
    for m in last["members"].as_array().expect("members") {
        assert!(!m["member_id"].as_str().unwrap_or("").is_empty(), "{m}");
        assert!(!m["client_id"].as_str().unwrap_or("").is_empty(), "{m}");
        assert!(
            m["host"].as_str().unwrap_or("").contains("127.0.0.1"),
            "{m}"
        );
    }
    let table = broker.ok(&["group", "describe", "g2"], b"");
    assert!(
        table.contains("State: Stable") && table.contains("Members: 2"),
        "{table}"
    );
    let list = broker.ok(&["group", "list", "--output", "json"], b"");
    let list: Value = serde_json::from_str(&list).expect("json");
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|g| g["group"] == "g2" && g["state"] == "Stable"),
        "{list}"
    );

    // Keyed records land on all partitions; each goes to exactly one member.
    let input: String = (0..40).map(|i| format!("k{i}:v{i}\n")).collect();
    broker.ok(
        &["produce", "split", "--key-separator", ":"],
        input.as_bytes(),
    );
    wait_until(
        "both members together printed all 40 records",
        GROUP_DEADLINE,
        || a.lines().len() + b.lines().len() >= 40,
    );
    let (status_a, lines_a, err_a) = a.interrupt();
    assert!(status_a.success(), "{status_a:?} {err_a}");

    // The member that stays takes over every partition after the other leaves.
    wait_until(
        "the remaining member owns all 4 partitions",
        GROUP_DEADLINE,
        || {
            let d = describe_now(&broker, "g2");
            d["state"] == "Stable" && assignments(&d) == vec![vec![0, 1, 2, 3]]
        },
    );
    let input: String = (40..60).map(|i| format!("k{i}:v{i}\n")).collect();
    broker.ok(
        &["produce", "split", "--key-separator", ":"],
        input.as_bytes(),
    );
    let consumed_by_b = b.lines().len();
    wait_until(
        "the remaining member printed the 20 new records",
        GROUP_DEADLINE,
        || lines_a.len() + b.lines().len() >= 60,
    );
    // SIGTERM is a graceful stop too: B commits and leaves.
    let (status_b, lines_b, err_b) = b.terminate();
    assert!(status_b.success(), "{status_b:?} {err_b}");
    assert!(
        !lines_a.is_empty() && consumed_by_b > 0,
        "both members consumed before the leave"
    );
    let mut all: Vec<String> = lines_a.into_iter().chain(lines_b).collect();
    all.sort();
    let mut want: Vec<String> = (0..60).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(
        all, want,
        "every record exactly once across the two members and the rebalance"
    );

    let desc = describe(&broker, "g2");
    assert_eq!(desc["state"], "Empty", "{desc}");
    assert_eq!(desc["total_lag"], 0, "offsets committed on exit: {desc}");
}

#[test]
fn describe_shows_committed_offset_log_end_and_lag_per_partition() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "lagged", "--partitions", "2"], b"");
    broker.ok(
        &["produce", "lagged", "--partition", "0"],
        lines(5, "a").as_bytes(),
    );
    broker.ok(
        &["produce", "lagged", "--partition", "1"],
        lines(3, "b").as_bytes(),
    );
    // Offsets for a group that has never had members.
    broker.ok(
        &[
            "group",
            "reset-offsets",
            "g3",
            "--topic",
            "lagged",
            "--to-offset",
            "2",
            "--execute",
        ],
        b"",
    );
    let desc = describe(&broker, "g3");
    assert_eq!(desc["members"], serde_json::json!([]), "{desc}");
    let offsets = desc["offsets"].as_array().expect("offsets");
    let row = |p: i64| {
        offsets
            .iter()
            .find(|o| o["partition"] == p)
            .unwrap_or_else(|| panic!("partition {p} missing: {desc}"))
    };
    assert_eq!(
        (
            &row(0)["committed_offset"],
            &row(0)["log_end_offset"],
            &row(0)["lag"]
        ),
        (&Value::from(2), &Value::from(5), &Value::from(3))
    );
    assert_eq!(
        (
            &row(1)["committed_offset"],
            &row(1)["log_end_offset"],
            &row(1)["lag"]
        ),
        (&Value::from(2), &Value::from(3), &Value::from(1))
    );
    assert_eq!(desc["total_lag"], 4);
    let table = broker.ok(&["group", "describe", "g3"], b"");
    assert!(table.contains("Total lag: 4"), "{table}");
    assert!(
        table.contains("CURRENT-OFFSET") && table.contains("LOG-END-OFFSET"),
        "{table}"
    );

    // By time: before every record is the log start, after them the log end.
    let new_offsets = |when: &str| -> Vec<i64> {
        let out = broker.ok(
            &[
                "group",
                "reset-offsets",
                "g3",
                "--topic",
                "lagged",
                "--to-datetime",
                when,
                "--output",
                "json",
            ],
            b"",
        );
        let plan: Value = serde_json::from_str(&out).expect("json");
        plan["plan"]
            .as_array()
            .expect("plan")
            .iter()
            .map(|r| r["new_offset"].as_i64().expect("offset"))
            .collect()
    };
    assert_eq!(new_offsets("2000-01-01T00:00:00Z"), vec![0, 0]);
    assert_eq!(new_offsets("2100-01-01T00:00:00+02:00"), vec![5, 3]);
    assert_eq!(
        describe(&broker, "g3")["total_lag"],
        4,
        "dry runs changed nothing"
    );

    let run = broker.run(
        &[
            "consume",
            "no-such-topic",
            "--group",
            "g3",
            "--timeout-ms",
            "1000",
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("unknown topic 'no-such-topic'"),
        "{}",
        run.stderr
    );

    let run = broker.run(&["group", "describe", "no-such-group"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("group 'no-such-group' does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn reset_offsets_dry_run_changes_nothing_and_execute_rewinds_the_group() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "rewind", "--partitions", "2"], b"");
    broker.ok(&["produce", "rewind"], lines(10, "r").as_bytes());
    let consume = [
        "consume",
        "rewind",
        "--group",
        "g4",
        "--from-beginning",
        "--max-messages",
        "10",
        "--timeout-ms",
        "30000",
    ];
    let first = broker.ok(&consume, b"");
    assert_eq!(first.lines().count(), 10);
    let before = committed(&describe(&broker, "g4"));
    assert_eq!(before.values().flatten().sum::<i64>(), 10, "{before:?}");

    let plan = broker.ok(
        &[
            "group",
            "reset-offsets",
            "g4",
            "--all-topics",
            "--to-earliest",
        ],
        b"",
    );
    let header: Vec<&str> = plan
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        "{plan}"
    );
    for line in plan.lines().skip(1).take_while(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 4, "{plan}");
        assert_eq!((cells[0], cells[3]), ("rewind", "0"), "{plan}");
    }
    assert!(plan.contains("Dry run"), "{plan}");
    assert_eq!(
        committed(&describe(&broker, "g4")),
        before,
        "a dry run changes nothing"
    );

    // Shifting far back is clamped to the log start.
    let plan = broker.ok(
        &[
            "group",
            "reset-offsets",
            "g4",
            "--topic",
            "rewind:0",
            "--shift-by",
            "-100",
            "--output",
            "json",
        ],
        b"",
    );
    let plan: Value = serde_json::from_str(&plan).expect("json");
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["plan"][0]["partition"], 0);
    assert_eq!(plan["plan"][0]["new_offset"], 0, "{plan}");
    assert_eq!(
        committed(&describe(&broker, "g4")),
        before,
        "a dry run changes nothing"
    );

    let done = broker.ok(
        &[
            "group",
            "reset-offsets",
            "g4",
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
        b"",
    );
    assert!(done.contains("Reset offsets of group 'g4'"), "{done}");
    let after = committed(&describe(&broker, "g4"));
    assert!(after.values().all(|o| *o == Some(0)), "{after:?}");

    // Without --from-beginning: the committed offsets (now 0) decide.
    let again = broker.ok(
        &[
            "consume",
            "rewind",
            "--group",
            "g4",
            "--max-messages",
            "10",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    let mut a: Vec<&str> = first.lines().collect();
    let mut b: Vec<&str> = again.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the rewound group reads everything again");
}

#[test]
fn reset_and_delete_are_refused_while_the_group_has_members() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "busy", "--partitions", "2"], b"");
    let member = broker.spawn(&["consume", "busy", "--group", "g5", "--from-beginning"]);
    wait_until("the member has joined", GROUP_DEADLINE, || {
        let d = describe_now(&broker, "g5");
        d["state"] == "Stable" && d["members"].as_array().is_some_and(|m| m.len() == 1)
    });

    let run = broker.run(
        &[
            "group",
            "reset-offsets",
            "g5",
            "--topic",
            "busy",
            "--to-earliest",
            "--execute",
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("group 'g5'") && run.stderr.contains("1 active member"),
        "{}",
        run.stderr
    );
    let run = broker.run(&["group", "delete", "g5"], b"");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("group 'g5' still has active members"),
        "{}",
        run.stderr
    );

    let (status, _, stderr) = member.interrupt();
    assert!(status.success(), "{status:?} {stderr}");
    wait_until("the group is empty", GROUP_DEADLINE, || {
        describe_now(&broker, "g5")["state"] == "Empty"
    });
    let out = broker.ok(&["group", "delete", "g5"], b"");
    assert_eq!(out, "Deleted group 'g5'.\n");
    let list = broker.ok(&["group", "list"], b"");
    assert!(!list.lines().any(|l| l.starts_with("g5 ")), "{list}");
    let run = broker.run(&["group", "delete", "g5"], b"");
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("group 'g5' does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_restarted_static_member_keeps_its_partitions_and_offsets() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "static", "--partitions", "2"], b"");
    broker.ok(&["produce", "static"], lines(6, "s").as_bytes());
    let consume = [
        "consume",
        "static",
        "--group",
        "g6",
        "--group-instance-id",
        "worker-1",
        "--from-beginning",
        "--max-messages",
        "6",
        "--timeout-ms",
        "30000",
    ];
    let first = broker.ok(&consume, b"");
    assert_eq!(first.lines().count(), 6);
    // A static member does not leave: the coordinator keeps it until its
    // session times out.
    let desc = describe(&broker, "g6");
    let members = desc["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{desc}");
    assert_eq!(members[0]["group_instance_id"], "worker-1", "{desc}");
    let member_id = members[0]["member_id"].clone();
    assert_eq!(desc["total_lag"], 0, "committed on exit: {desc}");

    broker.ok(&["produce", "static"], lines(4, "t").as_bytes());
    let again = [
        "consume",
        "static",
        "--group",
        "g6",
        "--group-instance-id",
        "worker-1",
        "--max-messages",
        "4",
        "--timeout-ms",
        "30000",
    ];
    let second = broker.ok(&again, b"");
    let mut got: Vec<&str> = second.lines().collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["t-0", "t-1", "t-2", "t-3"],
        "resumes after the commit"
    );
    let desc = describe(&broker, "g6");
    let members = desc["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{desc}");
    assert_eq!(members[0]["group_instance_id"], "worker-1", "{desc}");
    assert_ne!(
        members[0]["member_id"], member_id,
        "the restart got a new member id"
    );
    assert_eq!(assignments(&desc), vec![vec![0, 1]], "{desc}");
}

#[test]
fn consume_group_survives_a_broker_restart_warning_once_and_stops_on_ctrl_c() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "resilient"], b"");
    let mut member = broker.spawn(&[
        "consume",
        "resilient",
        "--group",
        "g-restart",
        "--from-beginning",
    ]);
    broker.ok(&["produce", "resilient"], b"before\n");
    wait_until("the first record is consumed", GROUP_DEADLINE, || {
        member.lines().iter().any(|l| l == "before")
    });

    // Broker down: the consumer keeps running and warns once.
    let listen = broker.kafka.clone();
    let stopped = broker.stop_keeping_data();
    wait_until(
        "the consumer warns about the outage",
        GROUP_DEADLINE,
        || {
            member
                .stderr_so_far()
                .contains("retrying until the broker is back")
        },
    );
    assert!(
        member.is_running(),
        "consume --group exited while the broker was down"
    );
    let broker = stopped.start_again();
    assert_eq!(broker.kafka, listen, "restarted on the same address");

    broker.ok(&["produce", "resilient"], b"after\n");
    wait_until(
        "a record produced after the restart is consumed",
        GROUP_DEADLINE,
        || member.lines().iter().any(|l| l == "after"),
    );
    let started = std::time::Instant::now();
    let (status, lines, stderr) = member.interrupt();
    assert!(status.success(), "Ctrl-C exits 0: {status:?}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "Ctrl-C took {:?}",
        started.elapsed()
    );
    assert_eq!(lines, vec!["before", "after"], "{stderr}");
    assert_eq!(
        stderr.matches("retrying until the broker is back").count(),
        1,
        "one warning per outage:\n{stderr}"
    );
    assert!(stderr.contains("Reconnected"), "{stderr}");
}

#[test]
fn ctrl_c_stops_consume_group_promptly_while_the_broker_is_down() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "gone"], b"");
    let member = broker.spawn(&["consume", "gone", "--group", "g-gone"]);
    wait_until("the member has joined", GROUP_DEADLINE, || {
        let d = describe_now(&broker, "g-gone");
        d["state"] == "Stable"
    });
    let _stopped = broker.stop_keeping_data();
    wait_until(
        "the consumer warns about the outage",
        GROUP_DEADLINE,
        || {
            member
                .stderr_so_far()
                .contains("retrying until the broker is back")
        },
    );
    let started = std::time::Instant::now();
    let (status, _, stderr) = member.interrupt();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Ctrl-C during an outage took {:?}",
        started.elapsed()
    );
}
