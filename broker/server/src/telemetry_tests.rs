use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge as OtlpGauge, Metric as OtlpMetric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};

use super::*;

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn client(client_id: &str) -> ClientInfo {
    ClientInfo {
        instance_id: Uuid::from_bytes([9; 16]),
        client_id: client_id.into(),
        software_name: "librdkafka".into(),
        software_version: "2.16.0".into(),
        source_address: "127.0.0.1".into(),
        source_port: 50_000,
    }
}

#[test]
fn subscriptions_are_validated_with_a_message() {
    let err = |pairs: &[(&str, &str)]| Subscription::parse(&configs(pairs)).unwrap_err();
    assert!(err(&[("metric", "a")]).contains("unknown client metrics config 'metric'"));
    assert!(err(&[("interval.ms", "50")]).contains("from 100 to 3600000"));
    assert!(err(&[("interval.ms", "soon")]).contains("got 'soon'"));
    assert!(err(&[("match", "client_id")]).contains("not selector=regex"));
    assert!(err(&[("match", "client_rack=a")]).contains("unknown match selector 'client_rack'"));
    assert!(err(&[("match", "client_id=(")]).contains("invalid regex"));
    let s = Subscription::parse(&configs(&[
        ("metrics", " a. , b.,"),
        ("match", "client_id=app-.*"),
    ]))
    .unwrap();
    assert_eq!(s.metrics, vec!["a.", "b."]);
    assert_eq!(s.interval_ms, DEFAULT_INTERVAL_MS);
}

#[test]
fn matching_subscriptions_are_merged_and_the_id_follows_their_content() {
    let subs = vec![
        Subscription::parse(&configs(&[
            ("metrics", "org.apache.kafka.producer."),
            ("interval.ms", "60000"),
            ("match", "client_id=app-.*,client_software_name=librdkafka"),
        ]))
        .unwrap(),
        Subscription::parse(&configs(&[
            ("metrics", "org.apache.kafka.client.request"),
            ("interval.ms", "1000"),
        ]))
        .unwrap(),
    ];
    let app = assign(&subs, &client("app-1"));
    assert_eq!(
        app.metrics,
        vec![
            "org.apache.kafka.client.request",
            "org.apache.kafka.producer."
        ]
    );
    assert_eq!(app.push_interval_ms, 1000);
    // The whole value must match: "xapp-1" is not an app.
    let other = assign(&subs, &client("xapp-1"));
    assert_eq!(other.metrics, vec!["org.apache.kafka.client.request"]);
    assert_ne!(other.subscription_id, app.subscription_id);
    assert_eq!(assign(&subs, &client("app-1")), app, "stable");
    // No subscription: nothing to push, the default interval.
    let none = assign(&[], &client("app-1"));
    assert!(none.metrics.is_empty());
    assert_eq!(none.push_interval_ms, DEFAULT_INTERVAL_MS);
    // "*" subsumes every prefix.
    let all = Subscription::parse(&configs(&[("metrics", "*")])).unwrap();
    assert_eq!(
        assign(&[all, subs[0].clone()], &client("app-1")).metrics,
        vec!["*"]
    );
}

fn payload() -> Vec<u8> {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let point = |v: f64, attrs: Vec<KeyValue>| NumberDataPoint {
        attributes: attrs,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = MetricsData {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    OtlpMetric {
                        name: "org.apache.kafka.producer.node.request.latency.avg".into(),
                        data: Some(metric::Data::Gauge(OtlpGauge {
                            data_points: vec![point(2.5, vec![attr("node.id", "1")])],
                        })),
                        ..Default::default()
                    },
                    OtlpMetric {
                        name: "org.apache.kafka.producer.record.queue.time.max".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![point(7.0, vec![])],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    data.encode_to_vec()
}

#[test]
fn pushes_follow_the_subscription_and_the_latest_values_are_shown() {
    let t = Telemetry::default();
    let info = client("app-1");
    let id = info.instance_id;
    let subs =
        vec![Subscription::parse(&configs(&[("metrics", "*"), ("interval.ms", "1000")])).unwrap()];
    let current = |c: &ClientInfo| assign(&subs, c);
    let assigned = current(&info);
    let sid = assigned.subscription_id;
    let body = payload();
    let push = |sid: i32, terminating: bool, codec: i8, bytes: &[u8], now: i64| {
        t.push(id, sid, terminating, codec, bytes, 1 << 20, current, now)
    };
    // Before GetTelemetrySubscriptions, the instance is unknown.
    assert_eq!(
        push(sid, false, 0, &body, 0),
        Err(PushError::UnknownSubscriptionId)
    );
    t.subscribed(info.clone(), assigned, 0);
    assert_eq!(
        push(sid + 1, false, 0, &body, 0),
        Err(PushError::UnknownSubscriptionId)
    );
    assert_eq!(push(sid, false, 0, &body, 0), Ok(2));
    // Too soon after the last push; a terminating push is let through.
    assert_eq!(push(sid, false, 0, &body, 400), Err(PushError::Throttled));
    assert_eq!(
        push(sid, false, 9, &body, 600),
        Err(PushError::UnsupportedCompression(9))
    );
    assert!(matches!(
        push(sid, false, 0, b"\xff\xff\xff", 700),
        Err(PushError::InvalidRecord(_))
    ));
    assert_eq!(
        t.push(id, sid, false, 0, &body, 10, current, 800),
        Err(PushError::TooLarge)
    );
    let family = t.family(800).expect("pushed values");
    assert_eq!(family.name(), "runnel_client_telemetry");
    let mut text = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &[family], &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!(
            "runnel_client_telemetry{{client_id=\"app-1\",client_instance_id=\"{id}\",metric=\"org.apache.kafka.producer.node.request.latency.avg\",node_id=\"1\"}} 2.5"
        )),
        "{text}"
    );
    assert_eq!(push(sid, true, 0, &body, 900), Ok(2));
    assert!(matches!(
        push(sid, false, 0, &body, 5_000),
        Err(PushError::InvalidRequest(_))
    ));
    // A changed subscription: the client must ask again.
    let t2 = Telemetry::default();
    t2.subscribed(info.clone(), assign(&subs, &info), 0);
    let changed = |c: &ClientInfo| assign(&[], c);
    assert_eq!(
        t2.push(id, sid, false, 0, &body, 1 << 20, changed, 0),
        Err(PushError::UnknownSubscriptionId)
    );
    assert!(matches!(
        t2.push(Uuid::nil(), sid, false, 0, &body, 1 << 20, changed, 0),
        Err(PushError::InvalidRequest(_))
    ));
}

#[test]
fn compressed_pushes_are_decompressed() {
    use std::io::Write;
    let t = Telemetry::default();
    let info = client("app-1");
    let subs = vec![Subscription::parse(&configs(&[("metrics", "*")])).unwrap()];
    let assigned = assign(&subs, &info);
    t.subscribed(info.clone(), assigned.clone(), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&payload()).unwrap();
    let gz = gz.finish().unwrap();
    let current = |c: &ClientInfo| assign(&subs, c);
    assert_eq!(
        t.push(
            info.instance_id,
            assigned.subscription_id,
            false,
            1,
            &gz,
            1 << 20,
            current,
            0
        ),
        Ok(2)
    );
}
