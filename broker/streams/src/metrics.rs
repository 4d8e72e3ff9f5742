//! Prometheus metrics of a streams application, named and labelled as the broker's are
//! (`runnel_streams_*`, with the application id as a constant label).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::{Result, StreamsError};

/// Every metric of one application instance.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    processed: IntCounterVec,
    process_latency: HistogramVec,
    dropped_late: IntCounterVec,
    skipped: IntCounterVec,
    pub(crate) commit_latency: Histogram,
    pub(crate) commits: IntCounter,
    pub(crate) restored: IntCounterVec,
    pub(crate) restore_remaining: IntGaugeVec,
    pub(crate) lag: IntGaugeVec,
}

/// The handles one task uses.
#[derive(Clone)]
pub(crate) struct TaskMetrics {
    pub(crate) processed: IntCounter,
    pub(crate) process_latency: Histogram,
    pub(crate) dropped_late: IntCounter,
    pub(crate) skipped: IntCounter,
}

fn error(e: prometheus::Error) -> StreamsError {
    StreamsError::Config(format!("metrics: {e}"))
}

impl Metrics {
    pub(crate) fn new(application_id: &str) -> Result<Self> {
        let labels = [("application_id".to_string(), application_id.to_string())]
            .into_iter()
            .collect();
        let registry =
            Registry::new_custom(Some("runnel_streams".into()), Some(labels)).map_err(error)?;
        let processed = IntCounterVec::new(
            Opts::new(
                "records_processed_total",
                "Input records processed, per task",
            ),
            &["task"],
        )
        .map_err(error)?;
        let process_latency = HistogramVec::new(
            HistogramOpts::new(
                "process_latency_seconds",
                "Time to process one input record, per task",
            )
            .buckets(vec![
                1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1, 1.0,
            ]),
            &["task"],
        )
        .map_err(error)?;
        let dropped_late = IntCounterVec::new(
            Opts::new(
                "dropped_late_records_total",
                "Records dropped because their window had closed (end + grace before stream time), per task",
            ),
            &["task"],
        )
        .map_err(error)?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "skipped_records_total",
                "Input records skipped because they could not be deserialized, per task",
            ),
            &["task"],
        )
        .map_err(error)?;
        let commit_latency = Histogram::with_opts(
            HistogramOpts::new(
                "commit_latency_seconds",
                "Time of a commit (flush, offsets, transaction)",
            )
            .buckets(vec![1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 30.0]),
        )
        .map_err(error)?;
        let commits = IntCounter::new("commits_total", "Commits completed").map_err(error)?;
        let restored = IntCounterVec::new(
            Opts::new(
                "restored_records_total",
                "Changelog records applied while restoring, per store and partition",
            ),
            &["store", "partition"],
        )
        .map_err(error)?;
        let restore_remaining = IntGaugeVec::new(
            Opts::new(
                "restore_remaining_records",
                "Changelog records left to restore, per store and partition",
            ),
            &["store", "partition"],
        )
        .map_err(error)?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "lag_records",
                "Records of an input partition not yet processed (end offset - position)",
            ),
            &["topic", "partition"],
        )
        .map_err(error)?;
        for c in [
            Box::new(processed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(process_latency.clone()),
            Box::new(dropped_late.clone()),
            Box::new(skipped.clone()),
            Box::new(commit_latency.clone()),
            Box::new(commits.clone()),
            Box::new(restored.clone()),
            Box::new(restore_remaining.clone()),
            Box::new(lag.clone()),
        ] {
            registry.register(c).map_err(error)?;
        }
        Ok(Metrics {
            registry,
            processed,
            process_latency,
            dropped_late,
            skipped,
            commit_latency,
            commits,
            restored,
            restore_remaining,
            lag,
        })
    }

    pub(crate) fn task(&self, task: &str) -> TaskMetrics {
        TaskMetrics {
            processed: self.processed.with_label_values(&[task]),
            process_latency: self.process_latency.with_label_values(&[task]),
            dropped_late: self.dropped_late.with_label_values(&[task]),
            skipped: self.skipped.with_label_values(&[task]),
        }
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding to a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
