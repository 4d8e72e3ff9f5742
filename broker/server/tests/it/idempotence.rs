use kafka_protocol::messages::*;

use crate::harness::*;

async fn init_producer_id(conn: &mut Conn) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = conn.send(&request, 4).await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn producer_ids_are_unique_and_transactional_ids_get_new_epochs() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let a = init_producer_id(&mut conn).await;
    let b = init_producer_id(&mut conn).await;
    assert_ne!(a.0, b.0);
    assert_eq!(a.1, 0);
    let txn = |timeout_ms: i32| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(
                kafka_protocol::protocol::StrBytes::from_static_str("tx"),
            )))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // The coordinator's topic is created by the first lookup, as clients do first.
    let fc = conn
        .send(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(kafka_protocol::protocol::StrBytes::from_static_str("tx")),
            3,
        )
        .await;
    assert_eq!(fc.error_code, 0);
    let first = conn.send(&txn(60_000), 4).await;
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    assert_ne!(first.producer_id.0, a.0);
    let second = conn.send(&txn(60_000), 4).await;
    assert_eq!(second.error_code, 0);
    assert_eq!(
        (second.producer_id, second.producer_epoch),
        (first.producer_id, 1),
        "the same id, a new epoch"
    );
    let too_long = conn.send(&txn(i32::MAX), 4).await;
    assert_eq!(too_long.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
}

#[tokio::test]
async fn duplicate_batch_is_acknowledged_with_the_original_offset() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "idem", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut conn).await;
    assert_eq!(
        produce(&mut conn, "idem", 0, batch(&["plain"], 1)).await,
        (0, 0)
    );
    let first = idempotent_batch(&["a", "b"], pid, epoch, 0);
    assert_eq!(produce(&mut conn, "idem", 0, first.clone()).await, (0, 1));
    assert_eq!(
        produce(&mut conn, "idem", 0, first).await,
        (0, 1),
        "retry is deduplicated"
    );
    assert_eq!(
        produce(
            &mut conn,
            "idem",
            0,
            idempotent_batch(&["c"], pid, epoch, 2)
        )
        .await,
        (0, 3)
    );
    let (code, _) = produce(
        &mut conn,
        "idem",
        0,
        idempotent_batch(&["gap"], pid, epoch, 10),
    )
    .await;
    assert_eq!(code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let p = fetch(&mut conn, "idem", 0, 0).await;
    let values: Vec<String> = decode_values(p.records.unwrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec!["plain", "a", "b", "c"]);
}

/// Until the transaction coordinator exists, a transactional batch could only be an
/// unchecked one (it would hold read_committed consumers at its offset forever), and a
/// client may never write a transaction marker: both are refused and nothing is stored.
#[tokio::test]
async fn transactional_and_control_batches_from_clients_are_refused() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "txn-refused", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut conn).await;
    let txn = runnel_testkit::transactional_batch(
        vec![record(None, "v", 0)],
        kafka_protocol::records::Compression::None,
        pid,
        epoch,
        0,
    );
    let (code, _) = produce(&mut conn, "txn-refused", 0, txn).await;
    assert_eq!(code, 48, "INVALID_TXN_STATE");
    let marker = runnel_testkit::control_batch(pid, epoch, true, 0);
    let (code, _) = produce(&mut conn, "txn-refused", 0, marker).await;
    assert_eq!(code, 87, "INVALID_RECORD");
    let (code, offset) = produce(&mut conn, "txn-refused", 0, batch(&["plain"], 0)).await;
    assert_eq!((code, offset), (0, 0), "nothing was stored before");
    // read_committed: up to the last stable offset (the high watermark without
    // transactions), with an (empty) list of aborted transactions.
    let request = fetch_request("txn-refused", 0, 0, 0, 0).with_isolation_level(1);
    let response = conn.send(&request, 11).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (1, 1));
    assert_eq!(p.aborted_transactions.as_deref(), Some(&[][..]));
    assert_eq!(
        decode_values(p.records.clone().unwrap_or_default()).len(),
        1
    );
}
