//! Unit tests of `topics.rs`: syncing the local logs with the metadata,
//! partition directories and the typed topic configs.

use super::*;

fn registry(dir: &Path) -> TopicRegistry {
    let config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    TopicRegistry::open(dir, &config).unwrap()
}

#[test]
fn sync_opens_assigned_partitions_and_deletes_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let mut state = single_node_state(0, &[("a", 2), ("b", 1)]);
    // Partition a-1 lives on broker 1 only: not opened here.
    Arc::make_mut(state.topics.get_mut("a").unwrap()).partitions[1].replicas = vec![1];
    let report = reg.sync(&state, 0);
    assert!(report.failed.is_empty());
    let a = reg.get("a").unwrap();
    assert_eq!(a.partition_count(), 2);
    assert!(a.partition(0).is_some() && a.partition(1).is_none());
    assert!(dir.path().join("a-0").join(PARTITION_METADATA).exists());
    assert!(!dir.path().join("a-1").exists());
    state.topics.remove("b");
    Arc::make_mut(state.topics.get_mut("a").unwrap()).partitions[0].replicas = vec![1];
    let report = reg.sync(&state, 0);
    assert_eq!(report.removed_topics.len(), 1);
    assert!(reg.get("b").is_none());
    assert!(!dir.path().join("b-0").exists());
    assert!(!dir.path().join("a-0").exists());
    assert!(reg.get("a").unwrap().partitions().is_empty());
}

#[test]
fn a_recreated_topic_never_reuses_the_old_directory() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let state = single_node_state(0, &[("t", 1)]);
    reg.sync(&state, 0);
    assert!(reg.get("t").unwrap().partition(0).is_some());
    reg.close_all();
    // Same name, new id: a fresh registry (a restart) must not open the old data.
    let mut next = state.clone();
    Arc::make_mut(next.topics.get_mut("t").unwrap()).id = Uuid::new_v4();
    std::fs::write(dir.path().join("t-0").join("marker"), b"old").unwrap();
    let reg = registry(dir.path());
    reg.sync(&next, 0);
    assert!(!dir.path().join("t-0").join("marker").exists());
    assert_eq!(
        recorded_topic_id(&dir.path().join("t-0")),
        Some(next.topics["t"].id)
    );
}

#[test]
fn unowned_dirs_and_stray_replicas_are_removed_but_assigned_partitions_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let mut state = single_node_state(0, &[("keep", 2)]);
    Arc::make_mut(state.topics.get_mut("keep").unwrap()).partitions[1].replicas = vec![2];
    for d in [
        "keep-0",
        "keep-1",
        "gone-0",
        "x-1.abc-delete",
        "__cluster_metadata",
    ] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    // Broker 0 unknown to the metadata: only strays of nothing go.
    reg.remove_unowned_dirs(&state, 0).unwrap();
    assert!(dir.path().join("keep-1").exists());
    assert!(!dir.path().join("gone-0").exists());
    state.brokers.insert(
        0,
        runnel_meta::BrokerInfo {
            id: 0,
            host: "h".into(),
            port: 1,
            endpoints: Vec::new(),
            rack: None,
            controller_addr: "h:2".into(),
            incarnation: Uuid::new_v4(),
            fenced: false,
        },
    );
    reg.remove_unowned_dirs(&state, 0).unwrap();
    assert!(dir.path().join("keep-0").exists());
    assert!(dir.path().join("__cluster_metadata").exists());
    assert!(!dir.path().join("keep-1").exists(), "stray replica kept");
    assert!(!dir.path().join("x-1.abc-delete").exists());
}

#[test]
fn min_insync_replicas_follows_the_overrides_as_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let mut state = single_node_state(0, &[("t", 1)]);
    reg.sync(&state, 0);
    assert_eq!(reg.get("t").unwrap().min_insync_replicas(), None);
    let configs = &mut Arc::make_mut(state.topics.get_mut("t").unwrap()).configs;
    configs.insert("min.insync.replicas".into(), "2".into());
    reg.sync(&state, 0);
    let topic = reg.get("t").unwrap();
    assert_eq!(topic.min_insync_replicas(), Some(2));
    assert_eq!(topic.overrides()["min.insync.replicas"], "2");
    Arc::make_mut(state.topics.get_mut("t").unwrap())
        .configs
        .clear();
    reg.sync(&state, 0);
    assert_eq!(topic.min_insync_replicas(), None);
}

#[test]
fn partition_dirs_follow_kafka_layout() {
    assert_eq!(
        partition_dir(Path::new("/d"), "a-1", 0),
        PathBuf::from("/d/a-1-0")
    );
}

/// Descriptors of this process open on files under `dir`.
fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

fn one_record(value: &str) -> bytes::Bytes {
    let record = (
        bytes::Bytes::from_static(b"k"),
        Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
    );
    crate::internal_batch::encode(&[record], 0, 1000, None, false).unwrap()
}

#[test]
fn twenty_partitions_take_and_serve_records_within_four_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        log_max_open_files: 4,
        ..Default::default()
    };
    let reg = TopicRegistry::open(dir.path(), &config).unwrap();
    assert_eq!(reg.open_files().limit(), 4);
    let report = reg.sync(&single_node_state(0, &[("t", 20)]), 0);
    assert!(report.failed.is_empty());
    assert_eq!(report.opened.len(), 20);
    assert!(fds_under(dir.path()) <= 4);
    let topic = reg.get("t").unwrap();
    for round in 0..3 {
        for p in topic.partitions() {
            let info = p
                .log
                .append(one_record(&format!("{}-{round}", p.index)), 0, 1000)
                .unwrap();
            p.log.sync(info.last_offset + 1).unwrap();
            assert!(fds_under(dir.path()) <= 4, "at most 4 segment files open");
        }
    }
    for p in topic.partitions() {
        assert_eq!(p.log.log_end_offset(), 3);
        for round in 0..3i64 {
            // One record per batch: a one-byte read returns just that batch.
            let read = p.log.read(round, 1, true, i64::MAX).unwrap();
            let records = runnel_log::records::decode_batch(read.records, 1 << 20).unwrap();
            let value = records[0].value.clone().unwrap();
            assert_eq!(value, bytes::Bytes::from(format!("{}-{round}", p.index)));
        }
    }
    assert!(fds_under(dir.path()) <= 4);
}

#[test]
fn close_all_flushes_and_checkpoints_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    reg.sync(&single_node_state(0, &[("a", 40), ("b", 25)]), 0);
    for topic in reg.list() {
        for p in topic.partitions() {
            p.log.append(one_record("x"), 0, 1000).unwrap();
        }
    }
    reg.close_all();
    for (name, count) in [("a", 40), ("b", 25)] {
        for index in 0..count {
            let checkpoint = dir
                .path()
                .join(format!("{name}-{index}"))
                .join("recovery-point.checkpoint");
            let text = std::fs::read_to_string(&checkpoint).unwrap();
            assert!(
                text.ends_with(" 1\n"),
                "{name}-{index} was closed cleanly: {text:?}"
            );
        }
    }
}
