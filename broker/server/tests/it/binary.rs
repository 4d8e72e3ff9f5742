//! The `runnel-broker` binary: ready line, SIGTERM, config errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::DEADLINE;

fn broker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_runnel-broker")
}

#[test]
fn binary_prints_ready_line_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(broker_bin())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--controller-listen",
            "127.0.0.1:0",
        ])
        .env("RUNNEL_NUM_PARTITIONS", "3")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let re_ok = line.starts_with("runnel-broker ready kafka=127.0.0.1:")
        && line.contains(" admin=127.0.0.1:")
        && line.contains(" controller=127.0.0.1:")
        && line
            .trim_end()
            .ends_with(&format!(" data={}", dir.path().display()));
    if !re_ok {
        let _ = child.kill();
    }
    assert!(re_ok, "unexpected ready line: {line:?}");
    let kafka = line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_start_matches("kafka=")
        .to_string();
    assert!(std::net::TcpStream::connect(&kafka).is_ok());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "graceful shutdown must exit 0, got {status}"
            );
            break;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("broker did not exit after SIGTERM");
        }
        std::thread::yield_now();
    }
    assert!(dir.path().join("meta.json").exists());
    // Without RUST_LOG the broker's own INFO lines show, dependencies' do not
    // (openraft logs whole Raft states at INFO).
    let logs = std::fs::read_to_string(logs.path()).unwrap();
    assert!(logs.contains("broker serving"), "{logs}");
    assert!(
        !logs.lines().any(|l| l.contains(" INFO openraft")),
        "dependency INFO lines by default:\n{logs}"
    );
}

#[test]
fn unknown_config_key_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("runnel.toml");
    std::fs::write(&cfg, "node_id = 0\nlog_retention_hours = 5\n").unwrap();
    let out = Command::new(broker_bin())
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log_retention_hours"), "{err}");
}

#[test]
fn bad_env_value_fails_at_start_naming_the_variable() {
    let out = Command::new(broker_bin())
        .env("RUNNEL_NUM_PARTITIONS", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RUNNEL_NUM_PARTITIONS"), "{err}");
}
