//! Prometheus metrics of the operator: reconciles and failures per kind (and failure reason),
//! reconcile duration per kind, and the number of managed objects per kind.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The operator's metrics, registered in their own registry (served at `/metrics`).
#[derive(Clone)]
pub struct Metrics {
    /// The registry every metric below lives in.
    pub registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    managed: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // The names and label sets are constants, so creating and registering them cannot fail;
        // expect() documents that rather than threading an impossible error through.
        #[allow(clippy::expect_used)]
        let (reconciles, failures, duration, managed) = {
            let reconciles = IntCounterVec::new(
                Opts::new(
                    "runnel_operator_reconciles_total",
                    "Reconciles run, per kind",
                ),
                &["kind"],
            )
            .expect("valid metric");
            let failures = IntCounterVec::new(
                Opts::new(
                    "runnel_operator_reconcile_failures_total",
                    "Reconciles that failed, per kind and reason",
                ),
                &["kind", "reason"],
            )
            .expect("valid metric");
            let duration = HistogramVec::new(
                HistogramOpts::new(
                    "runnel_operator_reconcile_duration_seconds",
                    "Duration of one reconcile, per kind",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["kind"],
            )
            .expect("valid metric");
            let managed = IntGaugeVec::new(
                Opts::new(
                    "runnel_operator_managed_objects",
                    "Objects the operator manages, per kind",
                ),
                &["kind"],
            )
            .expect("valid metric");
            for m in [
                Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(failures.clone()),
                Box::new(duration.clone()),
                Box::new(managed.clone()),
            ] {
                registry.register(m).expect("unique metric names");
            }
            (reconciles, failures, duration, managed)
        };
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            managed,
        }
    }

    /// Counts one reconcile of `kind` and times it until the returned guard drops.
    pub fn reconcile(&self, kind: &str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[kind]).inc();
        ReconcileTimer {
            histogram: self.duration.with_label_values(&[kind]),
            start: Instant::now(),
        }
    }

    /// Counts one failed reconcile of `kind`.
    pub fn failure(&self, kind: &str, reason: &str) {
        self.failures.with_label_values(&[kind, reason]).inc();
    }

    /// Sets the number of managed objects of `kind`.
    pub fn set_managed(&self, kind: &str, count: usize) {
        self.managed
            .with_label_values(&[kind])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Number of reconciles of `kind` so far.
    pub fn reconciles_of(&self, kind: &str) -> u64 {
        self.reconciles.with_label_values(&[kind]).get()
    }

    /// Number of failed reconciles of `kind` with `reason` so far.
    pub fn failures_of(&self, kind: &str, reason: &str) -> u64 {
        self.failures.with_label_values(&[kind, reason]).get()
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which we never build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_failures_duration_and_managed_objects_are_exported() {
        let m = Metrics::new();
        drop(m.reconcile("Topic"));
        m.failure("Topic", "kafka");
        m.set_managed("Topic", 3);
        let text = m.render();
        assert!(
            text.contains("runnel_operator_reconciles_total{kind=\"Topic\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "runnel_operator_reconcile_failures_total{kind=\"Topic\",reason=\"kafka\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("runnel_operator_reconcile_duration_seconds_count{kind=\"Topic\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("runnel_operator_managed_objects{kind=\"Topic\"} 3"),
            "{text}"
        );
    }
}
