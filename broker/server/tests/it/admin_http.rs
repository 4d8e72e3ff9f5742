use crate::harness::*;

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let broker = TestBroker::start().await;
    assert_eq!(
        http_get(broker.admin, "/healthz").await,
        (200, "ok".to_string())
    );
    assert_eq!(http_get(broker.admin, "/readyz").await.0, 200);
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "m", 1, &[]).await;
    produce(&mut conn, "m", 0, batch(&["a", "b", "c"], 1)).await;
    fetch(&mut conn, "m", 0, 0).await;
    let (status, text) = http_get(broker.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("runnel_records_in_total{topic=\"m\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("runnel_records_out_total{topic=\"m\"} 3"),
        "{text}"
    );
    assert!(text.contains("runnel_bytes_in_total{topic=\"m\"}"));
    assert!(text.contains("runnel_bytes_out_total{topic=\"m\"}"));
    assert!(
        text.contains("runnel_log_end_offset{partition=\"0\",topic=\"m\"} 3"),
        "{text}"
    );
    assert!(text.contains("runnel_log_size_bytes{partition=\"0\",topic=\"m\"}"));
    assert!(text.contains("runnel_requests_total{api=\"Produce\"} 1"));
    assert!(text.contains("runnel_request_duration_seconds_bucket{api=\"Produce\""));
    assert!(text.contains("runnel_open_connections 1"), "{text}");
}

#[tokio::test]
async fn cluster_metrics_report_leaders_controller_and_quorum_indexes() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "two", 2, &[]).await;
    let (_, text) = http_get(broker.admin, "/metrics").await;
    let value = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    // A single broker is the controller and leads every partition.
    assert_eq!(value("runnel_controller_active"), 1);
    assert_eq!(value("runnel_partition_leaders"), 2);
    assert_eq!(value("runnel_partitions"), 2);
    assert_eq!(value("runnel_cluster_live_brokers"), 1);
    assert_eq!(value("runnel_cluster_offline_partitions"), 0);
    assert_eq!(value("runnel_cluster_under_replicated_partitions"), 0);
    let applied = value("runnel_metadata_applied_index");
    assert!(applied > 0, "the topic's creation was applied");
    assert!(value("runnel_metadata_committed_index") >= applied);
}
