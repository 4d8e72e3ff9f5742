//! Compacted topics through the Kafka protocol: keyless records are refused
//! with INVALID_RECORD, and the background cleaner compacts closed segments.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test]
async fn keyless_record_on_a_compacted_topic_is_invalid_record() {
    let broker = TestBroker::start().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "table", 1, &[("cleanup.policy", "compact")]).await;
    let (code, _) = produce(&mut conn, "table", 0, batch(&["no key"], 1)).await;
    assert_eq!(code, 87, "INVALID_RECORD");
    let keyed = encode_batch(&[record(Some("k"), "v", 1)]);
    let (code, base) = produce(&mut conn, "table", 0, keyed).await;
    assert_eq!(
        (code, base),
        (0, 0),
        "nothing of the refused batch is stored"
    );

    create_topic(&mut conn, "plain", 1, &[]).await;
    let (code, _) = produce(&mut conn, "plain", 0, batch(&["no key"], 1)).await;
    assert_eq!(code, 0, "delete-policy topics take keyless records");
}

#[tokio::test]
async fn the_background_cleaner_keeps_the_latest_value_per_key() {
    let broker = TestBroker::start_with(|c| {
        c.log_cleaner_interval_ms = 20;
        c.log_retention_check_interval_ms = 20;
    })
    .await;
    let mut conn = broker.connect().await;
    create_topic(
        &mut conn,
        "state",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let mut latest = BTreeMap::new();
    let produced = 200;
    for i in 0..produced {
        let (k, v) = (format!("k{}", i % 5), format!("v{i}"));
        let (code, _) = produce(
            &mut conn,
            "state",
            0,
            encode_batch(&[record(Some(&k), &v, 1000 + i)]),
        )
        .await;
        assert_eq!(code, 0);
        latest.insert(k, v);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut values = Vec::new();
        let mut offset = 0;
        loop {
            let p = fetch(&mut conn, "state", 0, offset).await;
            assert_eq!(p.error_code, 0);
            let got = decode_values(p.records.clone().unwrap_or_default());
            let Some(&(last, _)) = got.last() else { break };
            values.extend(got.into_iter().filter(|(o, _)| *o >= offset));
            offset = last + 1;
            if offset >= p.high_watermark {
                break;
            }
        }
        assert!(
            values.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets increase"
        );
        assert_eq!(values.last().map(|v| v.0), Some(produced - 1));
        if values.len() < produced as usize {
            // Whatever was compacted away, every key's latest value is still the last one read.
            let mut view = BTreeMap::new();
            for (o, v) in &values {
                let key = format!("k{}", o % 5);
                view.insert(key, v.clone());
            }
            assert_eq!(view, latest);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never compacted the topic"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await;
}
