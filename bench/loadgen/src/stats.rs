//! Counters shared by the generator's threads, latency histograms, the once-a-second sampler
//! and the run's summary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histograms hold (longer ones are recorded as this), in microseconds.
const MAX_LATENCY_US: u64 = 300_000_000;

/// A new latency histogram in microseconds with 3 significant digits.
pub(crate) fn histogram() -> crate::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| crate::Error::Invalid(format!("latency histogram: {e:?}")))
}

/// Records a latency given in nanoseconds.
pub(crate) fn record_nanos(h: &mut Histogram<u64>, nanos: u64) {
    h.saturating_record((nanos / 1_000).max(1));
}

/// Locks a mutex even if a thread panicked while holding it (the data is only statistics).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Monotonic counters every thread adds to; the sampler reads them once a second.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records handed to librdkafka (by producer threads).
    pub(crate) sent: AtomicU64,
    /// Records acknowledged without error (by delivery callbacks).
    pub(crate) acked: AtomicU64,
    /// Value bytes acknowledged.
    pub(crate) acked_bytes: AtomicU64,
    /// Records whose delivery failed.
    pub(crate) errors: AtomicU64,
    /// Records of this run consumed (by consumer threads).
    pub(crate) consumed: AtomicU64,
    /// Value bytes consumed (every record read, this run's or not).
    pub(crate) consumed_bytes: AtomicU64,
    /// Records read that belong to another run or the warm-up.
    pub(crate) foreign: AtomicU64,
}

impl Counters {
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// Acknowledged value MB/s (10^6 bytes) in this interval.
    pub produce_mb_s: f64,
    /// Acknowledged records/s in this interval.
    pub produce_records_s: f64,
    /// Consumed value MB/s in this interval.
    pub consume_mb_s: f64,
    /// Consumed records/s in this interval.
    pub consume_records_s: f64,
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Records in the histogram.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1_000.0,
        }
    }
}

/// Records and bytes moved in a time span.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// Records (acknowledged, or consumed of this run).
    pub records: u64,
    /// Value bytes.
    pub bytes: u64,
    /// Length of the span in seconds.
    pub seconds: f64,
    /// `bytes` / `seconds` in MB/s (10^6 bytes).
    pub mb_s: f64,
    /// `records` / `seconds`.
    pub records_s: f64,
}

impl Throughput {
    pub(crate) fn new(records: u64, bytes: u64, span: Duration) -> Throughput {
        let seconds = span.as_secs_f64();
        let per = |x: u64| {
            if seconds > 0.0 {
                x as f64 / seconds
            } else {
                0.0
            }
        };
        Throughput {
            records,
            bytes,
            seconds,
            mb_s: per(bytes) / 1e6,
            records_s: per(records),
        }
    }
}

/// What a run measured; `--json` prints it as one object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// `run` (produce, and consume with consumers) or `consume` (read a backlog).
    pub mode: String,
    /// The bootstrap servers.
    pub bootstrap: String,
    /// The topic.
    pub topic: String,
    /// Value size in bytes.
    pub record_size: usize,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Producer clients.
    pub producers: usize,
    /// Consumer clients.
    pub consumers: usize,
    /// Target total rate in MB/s (0: as fast as possible).
    pub target_mb_s: f64,
    /// Producer `acks`.
    pub acks: String,
    /// Records handed to librdkafka.
    pub sent: u64,
    /// Records whose delivery failed.
    pub errors: u64,
    /// The first delivery or consume error, if any.
    pub first_error: Option<String>,
    /// Acknowledged records over the time from the first send to the last acknowledgement.
    pub produce: Throughput,
    /// Send → delivery report.
    pub ack_latency: Latency,
    /// Records of this run consumed, from the first consumed record to the last.
    pub consume: Throughput,
    /// Records read that were not this run's (warm-up records, older records).
    pub consumed_foreign: u64,
    /// Send time in the payload → the consumer reading it.
    pub e2e_latency: Latency,
    /// Longest time a paced producer was behind its schedule, in ms (0 when unpaced).
    pub max_behind_schedule_ms: f64,
    /// One sample a second.
    pub timeline: Vec<Sample>,
}

/// Prints a line a second to stderr and keeps the samples.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    pub(crate) fn start(counters: Arc<Counters>, quiet: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut out = Vec::new();
            let mut last = (0, 0, 0, 0);
            let mut next = start + Duration::from_secs(1);
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += Duration::from_secs(1);
                let cur = (
                    Counters::get(&counters.acked),
                    Counters::get(&counters.acked_bytes),
                    Counters::get(&counters.consumed) + Counters::get(&counters.foreign),
                    Counters::get(&counters.consumed_bytes),
                );
                let sample = Sample {
                    t: (now - start).as_secs_f64().round(),
                    produce_records_s: (cur.0 - last.0) as f64,
                    produce_mb_s: (cur.1 - last.1) as f64 / 1e6,
                    consume_records_s: (cur.2 - last.2) as f64,
                    consume_mb_s: (cur.3 - last.3) as f64 / 1e6,
                };
                last = cur;
                if !quiet {
                    eprintln!(
                        "{:>4.0}s  produced {:>8.1} MB/s {:>10.0} rec/s   consumed {:>8.1} MB/s {:>10.0} rec/s",
                        sample.t,
                        sample.produce_mb_s,
                        sample.produce_records_s,
                        sample.consume_mb_s,
                        sample.consume_records_s
                    );
                }
                out.push(sample);
            }
            out
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
