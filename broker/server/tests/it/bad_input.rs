use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use tokio::io::AsyncWriteExt;

use crate::harness::*;

#[tokio::test]
async fn frame_claiming_2_gib_is_refused_before_reading_and_broker_keeps_serving() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let mut frame = BytesMut::new();
    frame.put_i32(i32::MAX);
    frame.put_slice(&[0u8; 64]);
    conn.stream.write_all(&frame).await.unwrap();
    assert!(conn.closed_by_broker().await);
    let mut other = broker.connect().await;
    assert_eq!(
        other
            .send(&ApiVersionsRequest::default(), 3)
            .await
            .error_code,
        0
    );
}

#[tokio::test]
async fn frame_above_max_request_bytes_closes_the_connection() {
    let broker = TestBroker::start_with(|c| c.max_request_bytes = 4096).await;
    let mut conn = broker.connect().await;
    let mut frame = BytesMut::new();
    frame.put_i32(8192);
    conn.stream.write_all(&frame).await.unwrap();
    assert!(conn.closed_by_broker().await);
}

#[tokio::test]
async fn random_bytes_and_tiny_frames_close_the_connection_only() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "keep", 1, &[]).await;
    assert_eq!(
        produce(&mut conn, "keep", 0, batch(&["safe"], 1)).await.0,
        0
    );
    let mut seed = 0x2545F4914F6CDD1Du64;
    for round in 0..20 {
        let mut bad = broker.connect().await;
        let mut junk = Vec::new();
        for _ in 0..(64 + round * 13) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        // Small declared size so the body is read and must be rejected by decoding.
        junk[0..4].copy_from_slice(&(60i32).to_be_bytes());
        let _ = bad.stream.write_all(&junk).await;
        assert!(bad.closed_by_broker().await, "round {round}");
    }
    let mut tiny = broker.connect().await;
    tiny.stream.write_all(&[0, 0, 0, 2, 0, 18]).await.unwrap();
    assert!(tiny.closed_by_broker().await);
    let mut conn = broker.connect().await;
    let p = fetch(&mut conn, "keep", 0, 0).await;
    assert_eq!(
        decode_values(p.records.unwrap()),
        vec![(0, "safe".to_string())]
    );
}

#[tokio::test]
async fn truncated_request_body_closes_the_connection() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    let mut frame = BytesMut::new();
    // Metadata v9 header then a topic array claiming 1000 entries that are not there.
    frame.put_i32(15);
    frame.put_i16(3);
    frame.put_i16(9);
    frame.put_i32(5);
    frame.put_i16(-1);
    frame.put_u8(0); // header tagged fields
    frame.put_u32(0xE9070000); // garbage varint-ish
    conn.stream.write_all(&frame).await.unwrap();
    assert!(conn.closed_by_broker().await);
}
