//! Replication metrics, registered on the broker's Prometheus registry.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Replication metrics of one broker.
pub(crate) struct ReplicaMetrics {
    /// ISR shrinks committed for partitions this broker leads.
    pub isr_shrinks: IntCounter,
    /// ISR expansions committed for partitions this broker leads.
    pub isr_expands: IntCounter,
    /// Records each follower is behind the leader's log end (leader side).
    pub follower_lag: IntGaugeVec,
    /// Partitions led here whose ISR is smaller than their replica set.
    pub under_replicated: IntGauge,
    /// Bytes of throttled replicas replicated, by side (`leader` sent, `follower` fetched).
    pub throttled_bytes: IntCounterVec,
    /// Times a throttled partition was held back because its side's quota was spent.
    pub throttled_fetches: IntCounterVec,
    /// The replication throttle rate in effect by side (bytes/s; -1 = none).
    pub throttle_rate: IntGaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition error: {e}"),
    }
}

impl ReplicaMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub(crate) fn new(registry: &Registry) -> ReplicaMetrics {
        let isr_shrinks = must(IntCounter::new(
            "runnel_isr_shrinks_total",
            "ISR shrinks of partitions led by this broker",
        ));
        let isr_expands = must(IntCounter::new(
            "runnel_isr_expands_total",
            "ISR expansions of partitions led by this broker",
        ));
        let follower_lag = must(IntGaugeVec::new(
            Opts::new(
                "runnel_replica_lag_records",
                "Records a follower is behind the leader's log end",
            ),
            &["topic", "partition", "follower"],
        ));
        let under_replicated = must(IntGauge::new(
            "runnel_leader_under_replicated_partitions",
            "Partitions led by this broker with fewer in-sync replicas than replicas",
        ));
        let throttled_bytes = must(IntCounterVec::new(
            Opts::new(
                "runnel_replication_throttled_bytes_total",
                "Bytes of throttled replicas replicated (side=leader sent, side=follower fetched)",
            ),
            &["side"],
        ));
        let throttled_fetches = must(IntCounterVec::new(
            Opts::new(
                "runnel_replication_throttled_partition_fetches_total",
                "Times a throttled partition got no records because the side's quota was spent",
            ),
            &["side"],
        ));
        let throttle_rate = must(IntGaugeVec::new(
            Opts::new(
                "runnel_replication_throttle_rate_bytes",
                "Replication throttle in effect on this broker in bytes/s (-1 = none)",
            ),
            &["side"],
        ));
        for side in ["leader", "follower"] {
            throttle_rate.with_label_values(&[side]).set(-1);
            throttled_bytes.with_label_values(&[side]);
            throttled_fetches.with_label_values(&[side]);
        }
        // A second manager on the same registry (tests) keeps its own copies.
        let _ = registry.register(Box::new(isr_shrinks.clone()));
        let _ = registry.register(Box::new(isr_expands.clone()));
        let _ = registry.register(Box::new(follower_lag.clone()));
        let _ = registry.register(Box::new(under_replicated.clone()));
        let _ = registry.register(Box::new(throttled_bytes.clone()));
        let _ = registry.register(Box::new(throttled_fetches.clone()));
        let _ = registry.register(Box::new(throttle_rate.clone()));
        ReplicaMetrics {
            isr_shrinks,
            isr_expands,
            follower_lag,
            under_replicated,
            throttled_bytes,
            throttled_fetches,
            throttle_rate,
        }
    }
}
