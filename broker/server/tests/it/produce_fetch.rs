use std::time::Duration;

use kafka_protocol::messages::*;

use crate::harness::*;

#[tokio::test]
async fn produce_then_fetch_round_trips_with_every_acks_mode() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "rt", 1, &[]).await;
    let r1 = conn
        .send(&produce_request("rt", 0, 1, batch(&["a", "b"], 1_000)), 9)
        .await;
    assert_eq!(r1.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(r1.responses[0].partition_responses[0].base_offset, 0);
    assert_eq!(r1.responses[0].partition_responses[0].log_start_offset, 0);
    let (code, base) = produce(&mut conn, "rt", 0, batch(&["c"], 2_000)).await;
    assert_eq!((code, base), (0, 2));
    // acks=0 gets no response: the next response must belong to the next request.
    conn.write(&produce_request("rt", 0, 0, batch(&["d"], 3_000)), 9)
        .await;
    let partition = fetch(&mut conn, "rt", 0, 0).await;
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 4);
    assert_eq!(partition.last_stable_offset, 4);
    assert_eq!(partition.log_start_offset, 0);
    let values = decode_values(partition.records.unwrap());
    assert_eq!(
        values,
        vec![
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (3, "d".into())
        ]
    );
}

#[tokio::test]
async fn fetch_from_the_middle_of_a_batch_and_at_the_end() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "mid", 1, &[]).await;
    produce(&mut conn, "mid", 0, batch(&["0", "1", "2"], 1)).await;
    let p = fetch(&mut conn, "mid", 0, 1).await;
    let offsets: Vec<i64> = decode_values(p.records.unwrap())
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert!(offsets.contains(&1) && offsets.contains(&2));
    let end = fetch(&mut conn, "mid", 0, 3).await;
    assert_eq!(end.error_code, 0);
    assert!(end.records.unwrap_or_default().is_empty());
    let beyond = fetch(&mut conn, "mid", 0, 10).await;
    assert_eq!(beyond.error_code, 1, "OFFSET_OUT_OF_RANGE");
}

#[tokio::test]
async fn batch_over_max_message_bytes_is_message_too_large() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "small", 1, &[("max.message.bytes", "200")]).await;
    let big = "x".repeat(500);
    let (code, _) = produce(&mut conn, "small", 0, batch(&[big.as_str()], 1)).await;
    assert_eq!(code, 10);
    let (code, base) = produce(&mut conn, "small", 0, batch(&["ok"], 1)).await;
    assert_eq!(
        (code, base),
        (0, 0),
        "nothing of the refused batch may be stored"
    );
}

#[tokio::test]
async fn flipped_crc_is_corrupt_message_and_stored_data_is_untouched() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "crc", 1, &[]).await;
    produce(&mut conn, "crc", 0, batch(&["good"], 1)).await;
    let mut bad = batch(&["evil"], 1).to_vec();
    bad[17] ^= 0xFF; // inside the CRC field (bytes 17..21)
    let (code, _) = produce(&mut conn, "crc", 0, bad.into()).await;
    assert_eq!(code, 2);
    let mut bad = batch(&["evil"], 1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x01; // payload byte: CRC no longer matches
    let (code, _) = produce(&mut conn, "crc", 0, bad.into()).await;
    assert_eq!(code, 2);
    let p = fetch(&mut conn, "crc", 0, 0).await;
    assert_eq!(p.high_watermark, 1);
    assert_eq!(
        decode_values(p.records.unwrap()),
        vec![(0, "good".to_string())]
    );
}

#[tokio::test]
async fn produce_to_unknown_topic_or_partition() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let (code, _) = produce(&mut conn, "nope", 0, batch(&["x"], 1)).await;
    assert_eq!(code, 3);
    create_topic(&mut conn, "one", 1, &[]).await;
    let (code, _) = produce(&mut conn, "one", 5, batch(&["x"], 1)).await;
    assert_eq!(code, 3);
    let meta = user_topics(&mut conn).await;
    assert_eq!(meta.topics.len(), 1, "auto-create is off: nothing created");
}

#[tokio::test]
async fn produce_auto_creates_when_enabled() {
    let broker = TestBroker::start_with(|c| c.auto_create_topics = true).await;
    let mut conn = broker.connect().await;
    let (code, base) = produce(&mut conn, "fresh", 0, batch(&["x"], 1)).await;
    assert_eq!((code, base), (0, 0));
}

#[tokio::test]
async fn fetch_long_poll_returns_when_data_arrives() {
    let broker = TestBroker::start().await;
    let mut setup = broker.connect().await;
    create_topic(&mut setup, "poll", 1, &[]).await;
    let mut consumer = broker.connect().await;
    let started = tokio::time::Instant::now();
    let correlation = consumer
        .write(&fetch_request("poll", 0, 0, 15_000, 1), 11)
        .await;
    // Produce only once the broker has taken the fetch in.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, metrics) = http_get(broker.admin, "/metrics").await;
        if metrics.contains("runnel_requests_total{api=\"Fetch\"} 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fetch never arrived"
        );
        tokio::task::yield_now().await;
    }
    produce(&mut setup, "poll", 0, batch(&["wake"], 1)).await;
    let (got, response) = consumer.read::<FetchResponse>(11).await;
    assert_eq!(got, correlation);
    let p = &response.responses[0].partitions[0];
    assert_eq!(
        decode_values(p.records.clone().unwrap()),
        vec![(0, "wake".to_string())]
    );
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the fetch waited for max_wait instead of waking"
    );
}

#[tokio::test]
async fn fetch_long_poll_times_out_empty_after_max_wait() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "quiet", 1, &[]).await;
    let started = tokio::time::Instant::now();
    let response = conn.send(&fetch_request("quiet", 0, 0, 300, 1), 11).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "min_bytes not met: must wait"
    );
    assert!(response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn fetch_max_bytes_still_returns_the_first_batch() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "big", 1, &[]).await;
    let value = "y".repeat(4000);
    produce(&mut conn, "big", 0, batch(&[value.as_str()], 1)).await;
    produce(&mut conn, "big", 0, batch(&[value.as_str()], 1)).await;
    let mut request = fetch_request("big", 0, 0, 0, 0);
    request.max_bytes = 100;
    request.topics[0].partitions[0].partition_max_bytes = 100;
    let response = conn.send(&request, 11).await;
    let values = decode_values(response.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(values.len(), 1, "exactly the first batch beyond the limit");
}

#[tokio::test]
async fn fetch_by_topic_id_and_unknown_topic_id() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "ids", 1, &[]).await;
    produce(&mut conn, "ids", 0, batch(&["v"], 1)).await;
    let meta = user_topics(&mut conn).await;
    let id = meta.topics[0].topic_id;
    let mut request = fetch_request("ids", 0, 0, 0, 0);
    request.topics[0].topic_id = id;
    let response = conn.send(&request, 13).await;
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(response.session_id, 0);
    assert_eq!(
        decode_values(response.responses[0].partitions[0].records.clone().unwrap()).len(),
        1
    );
    request.topics[0].topic_id = uuid::Uuid::new_v4();
    let response = conn.send(&request, 13).await;
    assert_eq!(response.responses[0].partitions[0].error_code, 100);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "pipe", 1, &[]).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let value = format!("m{i}");
        sent.push(
            conn.write(
                &produce_request("pipe", 0, -1, batch(&[value.as_str()], 1)),
                9,
            )
            .await,
        );
        sent.push(conn.write(&ApiVersionsRequest::default(), 3).await);
    }
    for (i, correlation) in sent.iter().enumerate() {
        if i % 2 == 0 {
            let (got, response) = conn.read::<ProduceResponse>(9).await;
            assert_eq!(got, *correlation);
            assert_eq!(
                response.responses[0].partition_responses[0].base_offset,
                (i / 2) as i64
            );
        } else {
            let (got, _) = conn.read::<ApiVersionsResponse>(3).await;
            assert_eq!(got, *correlation);
        }
    }
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "lo", 1, &[]).await;
    produce(&mut conn, "lo", 0, batch(&["a"], 1_000)).await;
    produce(&mut conn, "lo", 0, batch(&["b"], 2_000)).await;
    produce(&mut conn, "lo", 0, batch(&["c"], 3_000)).await;
    let query = |ts: i64| {
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("lo"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)])])
    };
    let mut answer = Vec::new();
    for (ts, version) in [
        (-2, 7),
        (-1, 7),
        (1_500, 7),
        (3_000, 1),
        (9_999, 7),
        (-3, 7),
    ] {
        let r = conn.send(&query(ts), version).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        answer.push((p.offset, p.timestamp));
    }
    assert_eq!(
        answer,
        vec![
            (0, -1),
            (3, -1),
            (1, 2_000),
            (2, 3_000),
            (-1, -1),
            (2, 3_000)
        ]
    );
}
