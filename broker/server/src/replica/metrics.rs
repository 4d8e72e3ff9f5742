//! Replication metrics, registered on the broker's Prometheus registry.

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

/// Replication metrics of one broker.
pub struct ReplicaMetrics {
    /// ISR shrinks committed for partitions this broker leads.
    pub isr_shrinks: IntCounter,
    /// ISR expansions committed for partitions this broker leads.
    pub isr_expands: IntCounter,
    /// Records each follower is behind the leader's log end (leader side).
    pub follower_lag: IntGaugeVec,
    /// Partitions led here whose ISR is smaller than their replica set.
    pub under_replicated: IntGauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition error: {e}"),
    }
}

impl ReplicaMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> ReplicaMetrics {
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
        // A second manager on the same registry (tests) keeps its own copies.
        let _ = registry.register(Box::new(isr_shrinks.clone()));
        let _ = registry.register(Box::new(isr_expands.clone()));
        let _ = registry.register(Box::new(follower_lag.clone()));
        let _ = registry.register(Box::new(under_replicated.clone()));
        ReplicaMetrics {
            isr_shrinks,
            isr_expands,
            follower_lag,
            under_replicated,
        }
    }
}
