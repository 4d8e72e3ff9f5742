//! Client metrics (KIP-714): operators subscribe clients to metrics with client metrics
//! resources (`metrics` prefixes, `interval.ms`, `match` selectors), stored in the metadata
//! quorum; a client asks which metrics to push (GetTelemetrySubscriptions) and pushes them
//! as OTLP protobuf (PushTelemetry); the broker keeps the latest value of every pushed
//! gauge and sum per client and shows them on its Prometheus endpoint as
//! `runnel_client_telemetry{client_instance_id, client_id, metric, ...}`.
//!
//! Matching, the subscription id and the push rules are plain functions and a state map
//! without I/O; the API handlers bring the request and the time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::records::Compression;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, MetricsData};
use parking_lot::Mutex;
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prost::Message;
use regex::Regex;
use uuid::Uuid;

/// Push interval of clients no subscription matches (Kafka's default), and of
/// subscriptions without `interval.ms`.
pub(crate) const DEFAULT_INTERVAL_MS: i32 = 300_000;
/// The `interval.ms` bounds Kafka enforces.
const INTERVAL_RANGE: std::ops::RangeInclusive<i32> = 100..=3_600_000;
/// The `metrics` value that subscribes to every metric.
pub(crate) const ALL_METRICS: &str = "*";
/// What a `match` entry may select on.
const SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];
/// The config keys of a client metrics resource.
pub(crate) const KEYS: [&str; 3] = ["metrics", "interval.ms", "match"];
/// Compression types accepted for pushed metrics, in the order offered (Kafka's).
pub(crate) const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];
/// Series kept per client (the rest of a push is dropped).
const MAX_POINTS_PER_CLIENT: usize = 2_000;
/// Clients remembered at once; the least recently seen go first.
const MAX_CLIENTS: usize = 10_000;

/// One client metrics subscription, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// Metric name prefixes (`*`: all).
    pub metrics: Vec<String>,
    /// How often matched clients push.
    pub interval_ms: i32,
    /// Selector and the regex its value must match in full; empty matches every client.
    matches: Vec<(String, Regex)>,
}

impl Subscription {
    /// Parses a resource's configs, refusing unknown keys and bad values with a message.
    pub(crate) fn parse(configs: &BTreeMap<String, String>) -> Result<Subscription, String> {
        if let Some(key) = configs.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown client metrics config '{key}' (known: {})",
                KEYS.join(", ")
            ));
        }
        let metrics = list(configs.get("metrics"));
        let interval_ms = match configs.get("interval.ms") {
            None => DEFAULT_INTERVAL_MS,
            Some(v) => match v.trim().parse::<i32>() {
                Ok(ms) if INTERVAL_RANGE.contains(&ms) => ms,
                _ => {
                    return Err(format!(
                        "interval.ms must be an integer from {} to {}, got '{v}'",
                        INTERVAL_RANGE.start(),
                        INTERVAL_RANGE.end()
                    ))
                }
            },
        };
        let mut matches = Vec::new();
        for entry in list(configs.get("match")) {
            let Some((selector, pattern)) = entry.split_once('=') else {
                return Err(format!(
                    "match entry '{entry}' is not selector=regex (selectors: {})",
                    SELECTORS.join(", ")
                ));
            };
            let selector = selector.trim();
            if !SELECTORS.contains(&selector) {
                return Err(format!(
                    "unknown match selector '{selector}' (known: {})",
                    SELECTORS.join(", ")
                ));
            }
            let regex = Regex::new(&format!("^(?:{})$", pattern.trim()))
                .map_err(|e| format!("match '{entry}': invalid regex: {e}"))?;
            matches.push((selector.to_string(), regex));
        }
        Ok(Subscription {
            metrics,
            interval_ms,
            matches,
        })
    }

    fn matches(&self, client: &ClientInfo) -> bool {
        self.matches.iter().all(|(selector, regex)| {
            let value = match selector.as_str() {
                "client_instance_id" => client.instance_id.to_string(),
                "client_id" => client.client_id.clone(),
                "client_software_name" => client.software_name.clone(),
                "client_software_version" => client.software_version.clone(),
                "client_source_address" => client.source_address.clone(),
                _ => client.source_port.to_string(),
            };
            regex.is_match(&value)
        })
    }
}

/// A comma-separated list, trimmed, without empty items.
fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The subscriptions of the cluster's client metrics resources (ones that no longer parse,
/// which the broker's validation prevents, are left out).
pub(crate) fn subscriptions(
    resources: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Subscription> {
    resources
        .values()
        .filter_map(|configs| Subscription::parse(configs).ok())
        .collect()
}

/// Who a client is, as `match` selects on.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    /// The id the broker gave it.
    pub instance_id: Uuid,
    /// Its request header's client id.
    pub client_id: String,
    /// From ApiVersions v3+.
    pub software_name: String,
    /// From ApiVersions v3+.
    pub software_version: String,
    /// Its IP address.
    pub source_address: String,
    /// Its port.
    pub source_port: u16,
}

/// What a client is told to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// Changes whenever what the client must push changes.
    pub subscription_id: i32,
    /// Metric prefixes (empty: none; `["*"]`: all).
    pub metrics: Vec<String>,
    /// How often to push.
    pub push_interval_ms: i32,
}

/// The union of the subscriptions matching `client`: their metrics, their shortest
/// interval, and an id derived from both and the client's instance id.
pub(crate) fn assign(subscriptions: &[Subscription], client: &ClientInfo) -> Assigned {
    let matched: Vec<&Subscription> = subscriptions.iter().filter(|s| s.matches(client)).collect();
    let mut metrics: BTreeSet<String> = matched
        .iter()
        .flat_map(|s| s.metrics.iter().cloned())
        .collect();
    if metrics.contains(ALL_METRICS) {
        metrics = [ALL_METRICS.to_string()].into();
    }
    let push_interval_ms = matched
        .iter()
        .map(|s| s.interval_ms)
        .min()
        .unwrap_or(DEFAULT_INTERVAL_MS);
    let metrics: Vec<String> = metrics.into_iter().collect();
    // Not a security boundary: a checksum that changes with the content.
    let mut digest = Vec::new();
    digest.extend_from_slice(client.instance_id.as_bytes());
    digest.extend_from_slice(&push_interval_ms.to_be_bytes());
    for m in &metrics {
        digest.extend_from_slice(m.as_bytes());
        digest.push(0);
    }
    Assigned {
        subscription_id: crc32c::crc32c(&digest) as i32,
        metrics,
        push_interval_ms,
    }
}

/// Why a push is refused, each a Kafka error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PushError {
    /// The client must ask for its subscription again (unknown instance, changed subscription).
    #[error("unknown client instance or subscription id; get the telemetry subscription again")]
    UnknownSubscriptionId,
    /// Pushed before its interval.
    #[error("pushed before the push interval")]
    Throttled,
    /// Larger than `telemetry_max_bytes`.
    #[error("the metrics are larger than telemetry_max_bytes")]
    TooLarge,
    /// A compression type the broker did not offer.
    #[error("compression type {0} was not offered")]
    UnsupportedCompression(i8),
    /// Not OTLP metrics, or not decompressible.
    #[error("invalid metrics payload: {0}")]
    InvalidRecord(String),
    /// A malformed request (a nil instance id, a push after the terminating one).
    #[error("{0}")]
    InvalidRequest(String),
}

/// One pushed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    /// OTLP metric name.
    pub metric: String,
    /// Its data point's attributes.
    pub attributes: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

struct ClientState {
    info: ClientInfo,
    assigned: Assigned,
    last_push_ms: Option<i64>,
    last_seen_ms: i64,
    terminated: bool,
    points: Vec<Point>,
}

/// The broker's view of telemetry clients.
#[derive(Default)]
pub(crate) struct Telemetry {
    clients: Mutex<HashMap<Uuid, ClientState>>,
}

impl Telemetry {
    /// Records what a client was told (GetTelemetrySubscriptions).
    pub(crate) fn subscribed(&self, info: ClientInfo, assigned: Assigned, now_ms: i64) {
        let mut clients = self.clients.lock();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&info.instance_id) {
            let oldest = clients
                .iter()
                .min_by_key(|(_, c)| c.last_seen_ms)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                clients.remove(&id);
            }
        }
        let entry = clients
            .entry(info.instance_id)
            .or_insert_with(|| ClientState {
                info: info.clone(),
                assigned: assigned.clone(),
                last_push_ms: None,
                last_seen_ms: now_ms,
                terminated: false,
                points: Vec::new(),
            });
        entry.info = info;
        entry.assigned = assigned;
        entry.last_seen_ms = now_ms;
        entry.terminated = false;
    }

    /// Checks and stores a push. `current` recomputes the client's subscription from the
    /// cluster's subscriptions now, so a push made under a changed one is refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &self,
        instance_id: Uuid,
        subscription_id: i32,
        terminating: bool,
        compression: i8,
        payload: &[u8],
        max_bytes: usize,
        current: impl Fn(&ClientInfo) -> Assigned,
        now_ms: i64,
    ) -> Result<usize, PushError> {
        if instance_id.is_nil() {
            return Err(PushError::InvalidRequest(
                "the client instance id is not set".into(),
            ));
        }
        let mut clients = self.clients.lock();
        let client = clients
            .get_mut(&instance_id)
            .ok_or(PushError::UnknownSubscriptionId)?;
        if client.terminated {
            return Err(PushError::InvalidRequest(
                "the client already sent its terminating push".into(),
            ));
        }
        let assigned = current(&client.info);
        if subscription_id != client.assigned.subscription_id || assigned != client.assigned {
            return Err(PushError::UnknownSubscriptionId);
        }
        // Clients add jitter to the interval: half of it is early enough.
        let early = client
            .last_push_ms
            .is_some_and(|t| now_ms - t < i64::from(assigned.push_interval_ms) / 2);
        if early && !terminating {
            return Err(PushError::Throttled);
        }
        if payload.len() > max_bytes {
            return Err(PushError::TooLarge);
        }
        let codec = match compression {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(PushError::UnsupportedCompression(other)),
        };
        let raw = runnel_log::records::decompress(codec, payload, max_bytes.saturating_mul(16))
            .map_err(|e| PushError::InvalidRecord(e.to_string()))?;
        let data = MetricsData::decode(raw.as_ref())
            .map_err(|e| PushError::InvalidRecord(format!("not OTLP metrics: {e}")))?;
        let points = points_of(&data);
        let count = points.len();
        client.points = points;
        client.last_push_ms = Some(now_ms);
        client.last_seen_ms = now_ms;
        client.terminated = terminating;
        Ok(count)
    }

    /// The latest pushed values of every client, as one Prometheus gauge family. Clients
    /// gone quiet for three push intervals (at least a minute), and those that sent their
    /// terminating push an interval ago, are forgotten first.
    pub(crate) fn family(&self, now_ms: i64) -> Option<MetricFamily> {
        let mut clients = self.clients.lock();
        clients.retain(|_, c| {
            let interval = i64::from(c.assigned.push_interval_ms);
            let quiet = now_ms - c.last_seen_ms;
            if c.terminated {
                quiet < interval
            } else {
                quiet < (3 * interval).max(60_000)
            }
        });
        let mut metrics = Vec::new();
        for (id, client) in clients.iter() {
            for p in &client.points {
                let mut labels = vec![
                    label("client_instance_id", &id.to_string()),
                    label("client_id", &client.info.client_id),
                    label("metric", &p.metric),
                ];
                let mut seen: BTreeSet<String> =
                    labels.iter().map(|l| l.name().to_string()).collect();
                for (k, v) in &p.attributes {
                    let name = label_name(k);
                    if seen.insert(name.clone()) {
                        labels.push(label(&name, v));
                    }
                }
                labels.sort_by(|a, b| a.name().cmp(b.name()));
                let mut gauge = Gauge::default();
                gauge.set_value(p.value);
                let mut m = Metric::from_label(labels);
                m.set_gauge(gauge);
                metrics.push(m);
            }
        }
        if metrics.is_empty() {
            return None;
        }
        let mut family = MetricFamily::default();
        family.set_name("runnel_client_telemetry".into());
        family.set_help(
            "Latest value of each metric clients push (KIP-714), per client instance".into(),
        );
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        Some(family)
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

/// An OTLP attribute key as a Prometheus label name (`node.id` → `node_id`).
fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The gauge and sum data points of an OTLP payload (histograms and summaries are left out).
fn points_of(data: &MetricsData) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &data.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let points = match &m.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for p in points {
                    let value = match p.value {
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    let attributes = p
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            let v = match kv.value.as_ref()?.value.as_ref()? {
                                any_value::Value::StringValue(s) => s.clone(),
                                any_value::Value::IntValue(i) => i.to_string(),
                                any_value::Value::DoubleValue(d) => d.to_string(),
                                any_value::Value::BoolValue(b) => b.to_string(),
                                _ => return None,
                            };
                            Some((kv.key.clone(), v))
                        })
                        .collect();
                    if out.len() == MAX_POINTS_PER_CLIENT {
                        return out;
                    }
                    out.push(Point {
                        metric: m.name.clone(),
                        attributes,
                        value,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
