use kafka_protocol::messages::*;

use crate::harness::*;

#[tokio::test]
async fn restart_keeps_data_topics_configs_cluster_id_and_producer_ids() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "durable", 2, &[("retention.ms", "99999")]).await;
    produce(&mut conn, "durable", 1, batch(&["x", "y"], 1)).await;
    let before = conn
        .send(&DescribeClusterRequest::default(), 1)
        .await
        .cluster_id
        .to_string();
    let meta = user_topics(&mut conn).await;
    let id = meta.topics[0].topic_id;
    let pid = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await
        .producer_id
        .0;
    drop(conn);

    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(
        conn.send(&DescribeClusterRequest::default(), 1)
            .await
            .cluster_id
            .to_string(),
        before
    );
    let meta = user_topics(&mut conn).await;
    assert_eq!(meta.topics.len(), 1);
    assert_eq!(meta.topics[0].topic_id, id, "topic id survives restart");
    assert_eq!(meta.topics[0].partitions.len(), 2);
    let p = fetch(&mut conn, "durable", 1, 0).await;
    assert_eq!(
        decode_values(p.records.unwrap()),
        vec![(0, "x".to_string()), (1, "y".to_string())]
    );
    assert_eq!(
        produce(&mut conn, "durable", 1, batch(&["z"], 1)).await,
        (0, 2)
    );
    let r = conn
        .send(
            &DescribeConfigsRequest::default().with_resources(vec![
                kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str("durable"))
                    .with_configuration_keys(None),
            ]),
            4,
        )
        .await;
    let retention = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "99999");
    let pid2 = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await
        .producer_id
        .0;
    assert!(
        pid2 > pid,
        "producer ids must not repeat after restart ({pid2} <= {pid})"
    );
}

#[tokio::test]
async fn mismatched_node_id_refuses_to_start() {
    let broker = TestBroker::start().await;
    let dir = broker.stop().await;
    let config = runnel_server::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        controller_listen: "127.0.0.1:0".into(),
        node_id: 7,
        ..Default::default()
    };
    let err = match runnel_server::Server::bind(config).await {
        Ok(_) => panic!("must refuse"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("node_id"), "{err}");
}

#[tokio::test]
async fn graceful_shutdown_answers_a_parked_fetch_and_returns_promptly() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "parked", 1, &[]).await;
    let correlation = conn
        .write(&fetch_request("parked", 0, 0, 25_000, 1), 11)
        .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, metrics) = http_get(broker.admin, "/metrics").await;
        if metrics.contains("runnel_requests_total{api=\"Fetch\"} 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn(broker.stop());
    let (got, _) = conn.read::<FetchResponse>(11).await;
    assert_eq!(
        got, correlation,
        "the in-flight fetch is answered before the connection closes"
    );
    stopping.await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "shutdown waited for the long poll"
    );
}
