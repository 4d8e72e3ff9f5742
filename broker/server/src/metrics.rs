//! Prometheus metrics of the broker, in one registry served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::topics::TopicRegistry;
use runnel_meta::{BrokerId, ClusterState, QuorumStatus};

/// All broker metrics.
pub struct Metrics {
    registry: Registry,
    /// Cluster and quorum gauges (refreshed on scrape from the metadata).
    pub cluster: ClusterGauges,
    /// Bytes of record batches produced, per topic.
    pub bytes_in: IntCounterVec,
    /// Bytes of record batches fetched, per topic.
    pub bytes_out: IntCounterVec,
    /// Record bytes Fetch responses sent from segment files, by how (`sendfile`, `read`).
    pub fetch_file_bytes: IntCounterVec,
    /// Records produced (sum of batch record counts), per topic.
    pub records_in: IntCounterVec,
    /// Records fetched (offsets the returned batches take readers past), per topic.
    pub records_out: IntCounterVec,
    /// Requests handled, per API.
    pub requests: IntCounterVec,
    /// Request latency, per API.
    pub request_duration: HistogramVec,
    /// Log end offset per partition (refreshed on scrape).
    pub log_end_offset: IntGaugeVec,
    /// Log size in bytes per partition (refreshed on scrape).
    pub log_size_bytes: IntGaugeVec,
    /// Open client connections.
    pub open_connections: IntGauge,
    /// Connections closed at accept, per reason (`per_ip`, `total`).
    pub connections_refused: IntCounterVec,
    /// SASL authentications per outcome (`success`, `failure`).
    pub sasl_authentications: IntCounterVec,
    /// Authorizer decisions: `[denied, allowed]` (one counter each, so a decision
    /// costs no label lookup).
    pub authorizer_decisions: [prometheus::IntCounter; 2],
    /// TLS handshakes that failed, per listener (a plaintext client on a TLS
    /// port, an untrusted or missing client certificate, a timeout).
    pub tls_handshake_failures: IntCounterVec,
    /// Bytes of the request memory pool (`queued_max_request_bytes`) in use:
    /// requests being read (as much as has arrived) or not yet answered.
    pub queued_request_bytes: IntGauge,
    /// Members per consumer group (refreshed on scrape).
    pub group_members: IntGaugeVec,
    /// Committed offset per group and partition (refreshed on scrape).
    pub group_committed_offset: IntGaugeVec,
    /// Log end offset minus committed offset per group and partition (refreshed on scrape).
    pub group_lag: IntGaugeVec,
    /// Completed rebalances (generations) per group.
    pub group_rebalances: IntCounterVec,
    /// Fetch requests per session kind (`sessionless`, `full`: opening a session,
    /// `incremental`, `refused`: unknown session or wrong epoch; KIP-227).
    pub fetch_session_requests: IntCounterVec,
    /// Open incremental fetch sessions.
    pub fetch_sessions: IntGauge,
    /// Requests throttled by a client quota, per quota key.
    pub quota_throttled: IntCounterVec,
    /// PushTelemetry requests by result (KIP-714).
    pub telemetry_pushes: IntCounterVec,
    /// Transactions this broker coordinates that are open or completing.
    pub txn_open: IntGauge,
    /// Transactions completed, by outcome (commit, abort).
    pub txn_completed: IntCounterVec,
    /// Transactions the coordinator aborted after their timeout.
    pub txn_timed_out: prometheus::IntCounter,
    /// Time from a decision being durable to every partition having its marker.
    pub txn_marker_seconds: prometheus::Histogram,
}

/// Errors only arise from duplicate registration, a programming error caught by tests.
fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition error: {e}"),
    }
}

impl Metrics {
    /// The registry every broker metric is registered in (other components add theirs).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let gauge_vec = |name: &str, help: &str| {
            let g = must(IntGaugeVec::new(
                Opts::new(name, help),
                &["topic", "partition"],
            ));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let bytes_in = counter(
            "runnel_bytes_in_total",
            "Bytes of record batches produced",
            &["topic"],
        );
        let bytes_out = counter(
            "runnel_bytes_out_total",
            "Bytes of record batches fetched",
            &["topic"],
        );
        let records_in = counter("runnel_records_in_total", "Records produced", &["topic"]);
        let fetch_file_bytes = counter(
            "runnel_fetch_file_bytes_total",
            "Record bytes Fetch responses sent from segment files: with sendfile (plaintext \
             listeners, zero-copy) or read into memory first (TLS)",
            &["method"],
        );
        let records_out = counter(
            "runnel_records_out_total",
            "Records fetched (the offsets the returned batches take readers past)",
            &["topic"],
        );
        let requests = counter("runnel_requests_total", "Kafka requests handled", &["api"]);
        let request_duration = must(HistogramVec::new(
            HistogramOpts::new("runnel_request_duration_seconds", "Kafka request latency").buckets(
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
            &["api"],
        ));
        must(registry.register(Box::new(request_duration.clone())));
        let log_end_offset = gauge_vec(
            "runnel_log_end_offset",
            "Next offset to be written, per partition",
        );
        let log_size_bytes = gauge_vec(
            "runnel_log_size_bytes",
            "Bytes of segment files, per partition",
        );
        let open_connections = must(IntGauge::new(
            "runnel_open_connections",
            "Open client connections",
        ));
        must(registry.register(Box::new(open_connections.clone())));
        let connections_refused = counter(
            "runnel_connections_refused_total",
            "Kafka connections closed as soon as accepted, per reason (per_ip, total)",
            &["reason"],
        );
        for reason in ["per_ip", "total"] {
            connections_refused.with_label_values(&[reason]);
        }
        let sasl_authentications = counter(
            "runnel_sasl_authentications_total",
            "SASL authentications of client connections, per outcome (success, failure)",
            &["outcome"],
        );
        for outcome in ["success", "failure"] {
            sasl_authentications.with_label_values(&[outcome]);
        }
        let decisions = counter(
            "runnel_authorizer_decisions_total",
            "Authorizer decisions on requests, per result (allowed, denied)",
            &["result"],
        );
        let authorizer_decisions = [
            decisions.with_label_values(&["denied"]),
            decisions.with_label_values(&["allowed"]),
        ];
        let tls_handshake_failures = counter(
            "runnel_tls_handshake_failures_total",
            "TLS handshakes that failed, per listener",
            &["listener"],
        );
        let queued_request_bytes = must(IntGauge::new(
            "runnel_queued_request_bytes",
            "Bytes of the request memory pool in use (requests being read or not yet answered)",
        ));
        must(registry.register(Box::new(queued_request_bytes.clone())));
        let group_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let group_members = group_gauge(
            "runnel_group_members",
            "Members of a consumer group",
            &["group"],
        );
        let partition_labels = ["group", "topic", "partition"];
        let group_committed_offset = group_gauge(
            "runnel_group_committed_offset",
            "Committed offset of a consumer group, per partition",
            &partition_labels,
        );
        let group_lag = group_gauge(
            "runnel_group_lag",
            "Log end offset minus the committed offset, per group and partition",
            &partition_labels,
        );
        let group_rebalances = counter(
            "runnel_group_rebalances_total",
            "Completed rebalances (new generations) of a consumer group",
            &["group"],
        );
        let fetch_session_requests = counter(
            "runnel_fetch_session_requests_total",
            "Fetch requests by incremental fetch session use (KIP-227)",
            &["kind"],
        );
        let fetch_sessions = must(IntGauge::new(
            "runnel_fetch_sessions",
            "Open incremental fetch sessions",
        ));
        must(registry.register(Box::new(fetch_sessions.clone())));
        let quota_throttled = counter(
            "runnel_quota_throttled_requests_total",
            "Requests throttled by a client quota (KIP-13)",
            &["quota"],
        );
        let telemetry_pushes = counter(
            "runnel_client_telemetry_pushes_total",
            "PushTelemetry requests by result (KIP-714)",
            &["result"],
        );
        let txn_completed = counter(
            "runnel_transactions_completed_total",
            "Transactions completed by this broker's coordinator, by outcome",
            &["outcome"],
        );
        let txn_timed_out = must(prometheus::IntCounter::new(
            "runnel_transactions_timed_out_total",
            "Transactions aborted by the coordinator after transaction.timeout.ms",
        ));
        must(registry.register(Box::new(txn_timed_out.clone())));
        let txn_marker_seconds = must(prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "runnel_transaction_markers_seconds",
                "From a transaction's decision to its last marker written",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
        ));
        must(registry.register(Box::new(txn_marker_seconds.clone())));
        let gauge = |name: &str, help: &str| {
            let g = must(IntGauge::new(name, help));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let txn_open = gauge(
            "runnel_transactions_open",
            "Transactions this broker coordinates that are open or completing",
        );
        let cluster = ClusterGauges {
            leaders: gauge("runnel_partition_leaders", "Partitions this broker leads"),
            partitions: gauge(
                "runnel_partitions",
                "Partitions with a replica on this broker",
            ),
            controller_active: gauge(
                "runnel_controller_active",
                "1 on the metadata quorum's leader (the controller), else 0",
            ),
            committed_index: gauge(
                "runnel_metadata_committed_index",
                "Last metadata log index known committed",
            ),
            applied_index: gauge(
                "runnel_metadata_applied_index",
                "Last metadata log index applied on this broker",
            ),
            under_replicated: gauge(
                "runnel_cluster_under_replicated_partitions",
                "Partitions of the cluster whose ISR is smaller than their replica set",
            ),
            offline: gauge(
                "runnel_cluster_offline_partitions",
                "Partitions of the cluster without a leader",
            ),
            live_brokers: gauge(
                "runnel_cluster_live_brokers",
                "Registered brokers that are not fenced",
            ),
            leader_elections: counter(
                "runnel_leader_elections_total",
                "Partition leaderships won by this broker (clean: from the ISR, unclean: from outside it)",
                &["kind"],
            ),
        };
        Metrics {
            registry,
            cluster,
            bytes_in,
            bytes_out,
            fetch_file_bytes,
            records_in,
            records_out,
            requests,
            request_duration,
            log_end_offset,
            log_size_bytes,
            open_connections,
            connections_refused,
            sasl_authentications,
            authorizer_decisions,
            tls_handshake_failures,
            queued_request_bytes,
            group_members,
            group_committed_offset,
            group_lag,
            group_rebalances,
            fetch_session_requests,
            fetch_sessions,
            quota_throttled,
            telemetry_pushes,
            txn_open,
            txn_completed,
            txn_timed_out,
            txn_marker_seconds,
        }
    }

    /// Refreshes per-partition gauges from the logs and renders the text format.
    pub fn render(
        &self,
        topics: &TopicRegistry,
        extra: Option<prometheus::proto::MetricFamily>,
    ) -> String {
        self.log_end_offset.reset();
        self.log_size_bytes.reset();
        for topic in topics.list() {
            for partition in topic.partitions() {
                let index = partition.index.to_string();
                let labels = [topic.name.as_str(), index.as_str()];
                self.log_end_offset
                    .with_label_values(&labels)
                    .set(partition.log.log_end_offset());
                self.log_size_bytes
                    .with_label_values(&labels)
                    .set(i64::try_from(partition.log.size_bytes()).unwrap_or(i64::MAX));
            }
        }
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        families.extend(extra);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Forgets the per-topic series of a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        for c in [
            &self.bytes_in,
            &self.bytes_out,
            &self.records_in,
            &self.records_out,
        ] {
            let _ = c.remove_label_values(&[topic]);
        }
    }
}

/// Gauges of the cluster metadata and the quorum, as this broker sees them.
pub struct ClusterGauges {
    /// Partitions this broker leads.
    pub leaders: IntGauge,
    /// Partitions with a replica on this broker.
    pub partitions: IntGauge,
    /// 1 on the controller (the Raft leader).
    pub controller_active: IntGauge,
    /// Metadata log index known committed.
    pub committed_index: IntGauge,
    /// Metadata log index applied here.
    pub applied_index: IntGauge,
    /// Under-replicated partitions of the whole cluster.
    pub under_replicated: IntGauge,
    /// Offline partitions of the whole cluster.
    pub offline: IntGauge,
    /// Unfenced brokers.
    pub live_brokers: IntGauge,
    /// Partition leaderships this broker won, by kind (`clean`: from the ISR,
    /// `unclean`: from outside it). Summed over the brokers: the cluster's elections.
    pub leader_elections: IntCounterVec,
}

impl ClusterGauges {
    /// Counts the partitions whose leadership passed to `node` between two
    /// applied states. A partition new in `next` had no election (its first
    /// leader is placed), and a leader that merely keeps its role is not counted.
    pub fn count_elections(&self, prev: &ClusterState, next: &ClusterState, node: BrokerId) {
        for (name, topic) in &next.topics {
            let Some(before) = prev.topics.get(name).filter(|t| t.id == topic.id) else {
                continue;
            };
            let led = topic.partitions.iter().enumerate();
            for (index, _) in led.filter(|(_, p)| p.leader == node) {
                let Some(old) = before.partitions.get(index) else {
                    continue;
                };
                if old.leader == node {
                    continue;
                }
                let kind = if old.isr.contains(&node) {
                    "clean"
                } else {
                    "unclean"
                };
                self.leader_elections.with_label_values(&[kind]).inc();
            }
        }
    }

    /// Sets every gauge from the applied metadata and the quorum status.
    pub fn refresh(&self, state: &ClusterState, quorum: &QuorumStatus, node: BrokerId) {
        let partitions = state.topics.values().flat_map(|t| &t.partitions);
        let (mut leaders, mut hosted) = (0i64, 0i64);
        for p in partitions {
            leaders += i64::from(p.leader == node);
            hosted += i64::from(p.replicas.contains(&node));
        }
        self.leaders.set(leaders);
        self.partitions.set(hosted);
        self.controller_active
            .set(i64::from(quorum.leader == Some(node)));
        self.committed_index
            .set(i64::try_from(quorum.committed).unwrap_or(i64::MAX));
        self.applied_index
            .set(i64::try_from(state.applied_index).unwrap_or(i64::MAX));
        self.under_replicated
            .set(state.under_replicated_count() as i64);
        self.offline.set(state.offline_count() as i64);
        self.live_brokers.set(state.live_brokers().count() as i64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_families_are_rendered() {
        let m = Metrics::new();
        m.bytes_in.with_label_values(&["t"]).inc_by(5);
        m.requests.with_label_values(&["Produce"]).inc();
        m.request_duration
            .with_label_values(&["Produce"])
            .observe(0.001);
        let dir = tempfile::tempdir().unwrap();
        let topics =
            TopicRegistry::open(dir.path(), &crate::config::BrokerConfig::default()).unwrap();
        let text = m.render(&topics, None);
        assert!(
            text.contains("runnel_bytes_in_total{topic=\"t\"} 5"),
            "{text}"
        );
        assert!(text.contains("runnel_request_duration_seconds_bucket"));
        assert!(text.contains("runnel_open_connections 0"));
        assert!(text.contains("runnel_connections_refused_total{reason=\"per_ip\"} 0"));
        assert!(text.contains("runnel_queued_request_bytes 0"));
    }

    fn partition(leader: BrokerId, isr: &[BrokerId]) -> runnel_meta::PartitionMeta {
        runnel_meta::PartitionMeta {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
        }
    }

    fn state(partitions: Vec<runnel_meta::PartitionMeta>, id: uuid::Uuid) -> ClusterState {
        let mut state = ClusterState::default();
        let topic = runnel_meta::TopicMeta {
            name: "t".into(),
            id,
            partitions,
            configs: Default::default(),
        };
        state.topics.insert("t".into(), std::sync::Arc::new(topic));
        state
    }

    fn elections(m: &Metrics, kind: &str) -> u64 {
        m.cluster.leader_elections.with_label_values(&[kind]).get()
    }

    #[test]
    fn leaderships_won_are_counted_as_clean_or_unclean_elections() {
        let m = Metrics::new();
        let id = uuid::Uuid::new_v4();
        let before = state(
            vec![
                partition(1, &[1, 2]),
                partition(3, &[3]),
                partition(2, &[2]),
            ],
            id,
        );
        // Partition 0 moves 1 -> 2 (2 was in the ISR), partition 1 goes to 2 from
        // outside its ISR, partition 2 stays with 2 (no election).
        let after = state(
            vec![partition(2, &[2]), partition(2, &[2]), partition(2, &[2])],
            id,
        );
        m.cluster.count_elections(&before, &after, 2);
        assert_eq!(elections(&m, "clean"), 1);
        assert_eq!(elections(&m, "unclean"), 1);
        // Broker 1 won nothing; a recreated topic (new id) is placement, not an election.
        m.cluster.count_elections(&before, &after, 1);
        let recreated = state(vec![partition(2, &[2]); 3], uuid::Uuid::new_v4());
        m.cluster.count_elections(&before, &recreated, 2);
        assert_eq!(elections(&m, "clean") + elections(&m, "unclean"), 2);
        let text = m.render(
            &TopicRegistry::open(tempfile::tempdir().unwrap().path(), &Default::default()).unwrap(),
            None,
        );
        assert!(
            text.contains("runnel_leader_elections_total{kind=\"clean\"} 1"),
            "{text}"
        );
    }
}
