//! Metrics of the metadata quorum: how long commands take to commit, and how
//! often the controller changes. The broker registers them on its registry.

use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

/// Latency buckets in seconds: a local fsync is ~1 ms, a quorum round trip a few ms,
/// an election seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The quorum's metrics of one node.
#[derive(Clone)]
pub struct MetaMetrics {
    /// On the controller: from appending a command until a quorum has it (committed).
    pub commit_latency: Histogram,
    /// On any node: from proposing a command (forwarded when not the controller)
    /// until it is applied here.
    pub propose_latency: Histogram,
    /// Times this node became the controller (the Raft leader).
    pub controller_elections: IntCounter,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition error: {e}"),
    }
}

impl MetaMetrics {
    /// Creates unregistered metrics.
    pub fn new() -> MetaMetrics {
        let histogram = |name: &str, help: &str| {
            must(Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
            ))
        };
        MetaMetrics {
            commit_latency: histogram(
                "runnel_metadata_commit_latency_seconds",
                "Time for the controller to commit a metadata command on a quorum",
            ),
            propose_latency: histogram(
                "runnel_metadata_propose_latency_seconds",
                "Time from proposing a metadata command until it is applied on this broker",
            ),
            controller_elections: must(IntCounter::new(
                "runnel_metadata_controller_elections_total",
                "Times this broker became the metadata controller",
            )),
        }
    }

    /// Registers every metric on `registry` (a second registration of the same
    /// names, as in tests running several nodes, is ignored).
    pub fn register(&self, registry: &Registry) {
        let _ = registry.register(Box::new(self.commit_latency.clone()));
        let _ = registry.register(Box::new(self.propose_latency.clone()));
        let _ = registry.register(Box::new(self.controller_elections.clone()));
    }
}

impl Default for MetaMetrics {
    fn default() -> Self {
        MetaMetrics::new()
    }
}
