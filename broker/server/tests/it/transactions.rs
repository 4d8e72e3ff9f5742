//! Transactions through the wire, with Kafka's error codes for bad input:
//! unknown producer ids, stale epochs, EndTxn without a transaction, unknown
//! partitions, a transactional produce to a partition outside the
//! transaction; and DescribeTransactions / ListTransactions.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::harness::*;

fn txn_id(s: &'static str) -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(s))
}

async fn init(conn: &mut Conn, id: &'static str) -> (i64, i16) {
    let fc = conn
        .send(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(StrBytes::from_static_str(id)),
            3,
        )
        .await;
    assert_eq!(fc.error_code, 0);
    let r = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

async fn add(conn: &mut Conn, id: &'static str, pid: i64, epoch: i16, topic: &str) -> Vec<i16> {
    let r = conn
        .send(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(name(topic))
                        .with_partitions(vec![0]),
                    AddPartitionsToTxnTopic::default()
                        .with_name(name("txn-a"))
                        .with_partitions(vec![1]),
                ]),
            3,
        )
        .await;
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

async fn end(conn: &mut Conn, id: &'static str, pid: i64, epoch: i16, commit: bool) -> i16 {
    conn.send(
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        3,
    )
    .await
    .error_code
}

async fn describe(conn: &mut Conn) -> DescribeTransactionsResponse {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![txn_id("app"), txn_id("nobody")]);
    conn.send(&request, 0).await
}

#[tokio::test]
async fn bad_transactional_requests_get_kafkas_error_codes_and_change_nothing() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "txn-a", 2, &[]).await;
    let (pid, epoch) = init(&mut conn, "app").await;
    // EndTxn before any partition was added: no transaction to end.
    assert_eq!(
        end(&mut conn, "app", pid, epoch, true).await,
        48,
        "INVALID_TXN_STATE"
    );
    // Unknown id, wrong producer id, stale epoch.
    assert_eq!(
        end(&mut conn, "nobody", pid, epoch, true).await,
        49,
        "INVALID_PRODUCER_ID_MAPPING"
    );
    assert_eq!(
        add(&mut conn, "app", pid + 1, epoch, "txn-a").await,
        vec![49, 49]
    );
    assert_eq!(
        add(&mut conn, "app", pid, epoch + 1, "txn-a").await,
        vec![90, 90],
        "PRODUCER_FENCED"
    );
    // An unknown topic: its partition UNKNOWN_TOPIC_OR_PARTITION, the rest not attempted.
    assert_eq!(
        add(&mut conn, "app", pid, epoch, "no-such-topic").await,
        vec![3, 55]
    );
    let d = describe(&mut conn).await;
    assert_eq!(d.transaction_states[0].transaction_state.as_str(), "Empty");
    assert_eq!(
        d.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    // A transactional produce to a partition not in the transaction is refused (KIP-890).
    assert_eq!(add(&mut conn, "app", pid, epoch, "txn-a").await, vec![0, 0]);
    let batch = runnel_testkit::transactional_batch(
        vec![record(None, "v", 0)],
        kafka_protocol::records::Compression::None,
        pid,
        epoch,
        0,
    );
    let mut request = produce_request("txn-a", 1, -1, batch.clone());
    request.transactional_id = Some(txn_id("app"));
    let r = conn.send(&request, 9).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 0,
        "partition 1 was added"
    );
    let mut request = produce_request("txn-a", 0, -1, batch);
    request.transactional_id = Some(txn_id("app"));
    let r = conn.send(&request, 9).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 0,
        "partition 0 was added"
    );
    let d = describe(&mut conn).await;
    let state = &d.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!((state.producer_id.0, state.producer_epoch), (pid, epoch));
    assert_eq!(state.topics[0].partitions, vec![0, 1]);
    let listed = conn
        .send(
            &ListTransactionsRequest::default().with_state_filters(vec![
                StrBytes::from_static_str("Ongoing"),
                StrBytes::from_static_str("Bogus"),
            ]),
            1,
        )
        .await;
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(
        listed.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    // The open transaction holds the LSO of both partitions at its first offset.
    let fetched = conn
        .send(
            &fetch_request("txn-a", 0, 0, 0, 0).with_isolation_level(1),
            11,
        )
        .await;
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (1, 0));
    // A produce under another epoch is INVALID_PRODUCER_EPOCH (what producers
    // treat as fatal fencing), not PRODUCER_FENCED.
    let stale = runnel_testkit::transactional_batch(
        vec![record(None, "zombie", 0)],
        kafka_protocol::records::Compression::None,
        pid,
        epoch + 1,
        0,
    );
    let mut request = produce_request("txn-a", 0, -1, stale);
    request.transactional_id = Some(txn_id("app"));
    let r = conn.send(&request, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 47);
    // A stale epoch cannot end it; the right one commits it.
    assert_eq!(end(&mut conn, "app", pid, epoch + 1, true).await, 90);
    assert_eq!(end(&mut conn, "app", pid, epoch, true).await, 0);
    // Committing again (a retry) is fine; aborting what was committed is not.
    let retried = loop {
        match end(&mut conn, "app", pid, epoch, true).await {
            51 => tokio::time::sleep(std::time::Duration::from_millis(20)).await, // markers in flight
            code => break code,
        }
    };
    assert_eq!(retried, 0);
    assert_eq!(end(&mut conn, "app", pid, epoch, false).await, 48);
    // Both partitions got their marker: the LSO passes the transaction.
    let fetched = conn
        .send(
            &fetch_request("txn-a", 0, 0, 0, 0).with_isolation_level(1),
            11,
        )
        .await;
    let p = &fetched.responses[0].partitions[0];
    assert_eq!(
        (p.high_watermark, p.last_stable_offset),
        (2, 2),
        "record and marker"
    );
    let values = decode_values(p.records.clone().unwrap_or_default());
    assert_eq!(values.len(), 2, "the record and the commit marker");
    assert_eq!(values[0], (0, "v".to_string()));
}
