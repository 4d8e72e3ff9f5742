//! Failures: clear messages on stderr and the documented exit codes.

use std::net::TcpListener;

use crate::harness::{runnel, DevBroker};

#[test]
fn unknown_topic_is_reported_with_exit_code_1() {
    let broker = DevBroker::start();
    let run = broker.run(
        &[
            "consume",
            "nosuch",
            "--max-messages",
            "1",
            "--timeout-ms",
            "1000",
        ],
        b"",
    );
    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("unknown topic 'nosuch'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("topic 'nosuch' does not exist"),
        "{}",
        run.stderr
    );

    for args in [
        &["topic", "describe", "nosuch"][..],
        &["topic", "delete", "nosuch"][..],
    ] {
        let run = broker.run(args, b"");
        assert_eq!(run.status.code(), Some(1), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("unknown topic 'nosuch'"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn unreachable_broker_is_reported_with_exit_code_1() {
    // Bind and release a port so nothing listens there.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let addr = addr.to_string();
    let run = runnel(&["-b", &addr, "topic", "list"], b"");
    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    let want = format!("cannot reach broker at {addr}: connection refused");
    assert!(
        run.stderr.contains(&want),
        "want {want:?} in {:?}",
        run.stderr
    );
}

#[test]
fn bad_arguments_exit_with_code_2() {
    for args in [
        &["consume", "t", "--offset", "3"][..],
        &["topic", "create"][..],
        &["topic", "alter", "t"][..],
        &["produce", "t", "--acks", "2"][..],
        &["topic", "create", "t", "--config", "no-equals-sign"][..],
        &["no-such-command"][..],
    ] {
        let run = runnel(args, b"");
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.is_empty(),
            "{args:?} should explain the problem"
        );
    }
}

#[test]
fn line_without_key_separator_fails_naming_the_line() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "sep", "--partitions", "1"], b"");
    let run = broker.run(
        &["produce", "sep", "--key-separator", ":"],
        b"k:v\nno separator here\n",
    );
    assert_eq!(run.status.code(), Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("line 2 has no key separator ':'"),
        "{}",
        run.stderr
    );
    // The line before the bad one was still produced, as kafka-console-producer does.
    let out = broker.ok(
        &[
            "consume",
            "sep",
            "--from-beginning",
            "--print-key",
            "--max-messages",
            "1",
            "--timeout-ms",
            "30000",
        ],
        b"",
    );
    assert_eq!(out, "k\tv\n");
}
