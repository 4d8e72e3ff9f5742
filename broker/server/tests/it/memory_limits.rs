//! Memory and connection bounds of the Kafka listener: a frame header's claim
//! takes no memory until bytes arrive, the request pool applies backpressure
//! instead of failing, and connections are limited per client address.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::AsyncWriteExt;

use crate::harness::*;

/// Waits (with a generous deadline) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_header_claiming_max_request_bytes_takes_no_memory_until_bytes_arrive() {
    let broker = TestBroker::start().await;
    let max = broker.config.max_request_bytes;
    let queued = broker.broker.metrics().queued_request_bytes.clone();
    let mut slow = broker.connect().await;
    slow.stream.write_all(&max.to_be_bytes()).await.unwrap();
    slow.stream.write_all(&[0u8; 10]).await.unwrap();
    // The broker read the header and took memory for the first chunk only.
    until("the header is read", || queued.get() > 0).await;
    let held = queued.get();
    assert!(
        held <= 64 * 1024,
        "a {max}-byte claim took {held} bytes of the pool"
    );
    // Other clients are served meanwhile.
    let mut other = broker.connect().await;
    assert_eq!(
        other
            .send(&ApiVersionsRequest::default(), 3)
            .await
            .error_code,
        0
    );
    // The half-read request gives its memory back when the client leaves.
    drop(slow);
    until("the pool is empty again", || queued.get() == 0).await;
}

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed_until_one_leaves() {
    let broker = TestBroker::start_with(|c| c.max_connections_per_ip = 2).await;
    let metrics = broker.broker.metrics();
    let refused = metrics.connections_refused.with_label_values(&["per_ip"]);
    let mut first = broker.connect().await;
    let mut second = broker.connect().await;
    for conn in [&mut first, &mut second] {
        let response = conn.send(&ApiVersionsRequest::default(), 3).await;
        assert_eq!(response.error_code, 0);
    }
    let mut third = broker.connect().await;
    assert!(third.closed_by_broker().await, "the third connection");
    assert_eq!(refused.get(), 1);
    // Once one leaves (and the broker has seen it go) a new one is accepted.
    drop(first);
    until("the first connection is closed", || {
        metrics.open_connections.get() == 1
    })
    .await;
    let mut fourth = broker.connect().await;
    let response = fourth.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(refused.get(), 1);
    let (_, text) = http_get(broker.admin, "/metrics").await;
    assert!(
        text.contains("runnel_connections_refused_total{reason=\"per_ip\"} 1"),
        "{text}"
    );
}

/// An ApiVersions v0 request padded (through its client id) to `size` bytes.
fn padded_api_versions(correlation_id: i32, size: usize) -> BytesMut {
    let header_len = 2 + 2 + 4 + 2;
    let client_id = "p".repeat(size - header_len);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(0)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id)));
    let mut body = BytesMut::new();
    header.encode(&mut body, 1).unwrap();
    ApiVersionsRequest::default().encode(&mut body, 0).unwrap();
    assert_eq!(body.len(), size);
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn a_burst_of_pipelined_requests_larger_than_the_pool_is_all_answered() {
    // The pool holds one request of 1000 bytes at a time.
    let broker = TestBroker::start_with(|c| {
        c.max_request_bytes = 1024;
        c.queued_max_request_bytes = 1024;
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(broker.connect().await);
    }
    const REQUESTS: i32 = 100;
    let mut burst = BytesMut::new();
    for id in 1..=REQUESTS {
        burst.extend_from_slice(&padded_api_versions(id, 1000));
    }
    for client in &mut clients {
        client.stream.write_all(&burst).await.unwrap();
    }
    for client in &mut clients {
        for id in 1..=REQUESTS {
            let (correlation, response) = client.read::<ApiVersionsResponse>(0).await;
            assert_eq!((correlation, response.error_code), (id, 0));
        }
    }
    until("every request released its memory", || {
        broker.broker.metrics().queued_request_bytes.get() == 0
    })
    .await;
}

/// Writes `bytes` to a new admin connection and returns what came back
/// before the server closed it (write errors are fine: it may close early).
async fn admin_exchange(broker: &TestBroker, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(broker.admin).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out),
    )
    .await
    .expect("the admin port must answer or close");
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn the_admin_port_refuses_garbage_and_huge_heads_and_keeps_answering() {
    let broker = TestBroker::start().await;
    let garbage = admin_exchange(&broker, b"\x00\xff\x13 not http at all\r\n\r\n").await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    // A 1 MiB header: refused (431) or cut off, never buffered whole.
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let answer = admin_exchange(&broker, &huge).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // A body claiming 10 GB is not read: the request is answered at once.
    let post = b"POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10000000000\r\n\r\npartial";
    let answer = admin_exchange(&broker, post).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(
        http_get(broker.admin, "/healthz").await,
        (200, "ok".to_string())
    );
}
