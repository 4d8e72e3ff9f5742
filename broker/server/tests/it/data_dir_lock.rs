//! Two brokers must never open the same data directory: the lock on
//! `data_dir/.lock` is held for the broker's lifetime and released on a clean
//! stop or when the holding process dies.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use runnel_server::{BrokerConfig, Server};

use crate::harness::*;

fn config_for(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        controller_listen: "127.0.0.1:0".into(),
        offsets_topic_num_partitions: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn second_broker_on_the_same_data_dir_fails_naming_the_directory_and_pid() {
    let first = TestBroker::start().await;
    let err = match Server::bind(config_for(first.dir.path())).await {
        Ok(_) => panic!("a second broker opened a data_dir that is in use"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(&first.dir.path().display().to_string()),
        "error must name the directory: {text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "error must name the holder's pid: {text}"
    );
    // The first broker is untouched and still serving.
    let mut conn = first.connect().await;
    create_topic(&mut conn, "still-serving", 1, &[]).await;
}

#[tokio::test]
async fn data_dir_can_be_reopened_after_a_clean_stop() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "kept", 1, &[]).await;
    drop(conn);
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(user_topics(&mut conn).await.topics.len(), 1);
}

fn spawn_broker(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--controller-listen",
            "127.0.0.1:0",
            "--offsets-topic-num-partitions",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the ready line; panics (after killing the child) if it does not come.
fn wait_ready(child: &mut Child) {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.starts_with("runnel-broker ready ") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no ready line: {line:?}");
    }
}

#[test]
fn second_broker_process_exits_with_an_error_and_kill_9_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = spawn_broker(dir.path());
    wait_ready(&mut holder);

    let second = spawn_broker(dir.path()).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    if second.status.success() {
        let _ = holder.kill();
    }
    assert!(
        !second.status.success(),
        "second broker must refuse to start"
    );
    assert!(
        stderr.contains(&dir.path().display().to_string())
            && stderr.contains(&format!("pid {}", holder.id())),
        "error must name the directory and the holder's pid: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("ready"),
        "the refused broker must not print the ready line"
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    let mut after = spawn_broker(dir.path());
    wait_ready(&mut after);
    after.kill().unwrap();
    after.wait().unwrap();
}
