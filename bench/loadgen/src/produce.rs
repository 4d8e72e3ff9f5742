//! One producer client: a librdkafka `ThreadedProducer` whose polling thread runs the delivery
//! callbacks (so an acknowledgement is timed when it arrives, not when the send loop next
//! polls), fed by a send loop that reuses one value buffer and paces to a steady schedule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::error::{kafka, Result};
use crate::payload;
use crate::stats::{self, Counters};

/// Delivery callbacks: count and time every acknowledgement. The opaque of each record is its
/// send time in nanoseconds after `epoch`, so no allocation is made per record.
pub(crate) struct Deliveries {
    epoch: Instant,
    value_len: u64,
    counters: Arc<Counters>,
    /// Written only by the producer's polling thread; read at the end.
    latency: Mutex<Histogram<u64>>,
    /// The first delivery error.
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => {
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .acked_bytes
                    .fetch_add(self.value_len, Ordering::Relaxed);
                stats::record_nanos(
                    &mut stats::lock(&self.latency),
                    now.saturating_sub(sent_at as u64),
                );
            }
            Err((e, _)) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                stats::lock(&self.first_error).get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// What one producer does.
pub(crate) struct ProducerPlan {
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    pub(crate) record_size: usize,
    pub(crate) run_id: u64,
    /// Records to send (u64::MAX: until the deadline).
    pub(crate) records: u64,
    pub(crate) duration: Option<Duration>,
    /// Records per second for this producer (0: as fast as possible).
    pub(crate) rate: f64,
    /// Number of distinct keys (0: no keys).
    pub(crate) keys: u64,
    /// Offset of this producer's key sequence, so producers do not send the same keys in step.
    pub(crate) key_offset: u64,
}

/// What one producer measured.
pub(crate) struct ProducerResult {
    pub(crate) last_ack: Instant,
    pub(crate) latency: Histogram<u64>,
    pub(crate) first_error: Option<String>,
    pub(crate) max_behind: Duration,
}

/// A connected producer, warmed up (one record to every partition acknowledged).
pub(crate) struct LoadProducer {
    producer: ThreadedProducer<Deliveries>,
    plan: ProducerPlan,
    epoch: Instant,
}

impl LoadProducer {
    pub(crate) fn new(
        config: &ClientConfig,
        plan: ProducerPlan,
        counters: Arc<Counters>,
    ) -> Result<LoadProducer> {
        let epoch = Instant::now();
        let ctx = Deliveries {
            epoch,
            value_len: plan.record_size as u64,
            counters,
            latency: Mutex::new(stats::histogram()?),
            first_error: Mutex::new(None),
        };
        let producer: ThreadedProducer<Deliveries> = config
            .create_with_context(ctx)
            .map_err(kafka("creating a producer"))?;
        let lp = LoadProducer {
            producer,
            plan,
            epoch,
        };
        lp.warm_up()?;
        Ok(lp)
    }

    /// Connects to every partition leader before timing starts. Warm-up values carry run id
    /// 0, which consumers skip, and their deliveries are not counted.
    fn warm_up(&self) -> Result<()> {
        let buf = payload::new_buffer(self.plan.record_size, 0);
        let ctx = self.producer.context();
        for p in 0..self.plan.partitions {
            let mut rec: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&self.plan.topic, 0)
                    .partition(p)
                    .payload(&buf);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        return Err(kafka(format!("warm-up send to {}", self.plan.topic))(e))
                    }
                }
            }
        }
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(kafka(format!("warm-up of {}", self.plan.topic)))?;
        // Forget the warm-up: counters and histogram start from zero for the timed part.
        let c = &ctx.counters;
        c.acked
            .fetch_sub(self.plan.partitions as u64, Ordering::Relaxed);
        c.acked_bytes.fetch_sub(
            self.plan.partitions as u64 * self.plan.record_size as u64,
            Ordering::Relaxed,
        );
        stats::lock(&ctx.latency).reset();
        if let Some(e) = stats::lock(&ctx.first_error).take() {
            return Err(crate::Error::Thread(format!(
                "warm-up delivery to {} failed: {e}",
                self.plan.topic
            )));
        }
        Ok(())
    }

    /// Sends until the plan's record count, its deadline or `stop`; then waits for every
    /// acknowledgement.
    pub(crate) fn run(self, start: Instant, stop: &AtomicBool) -> Result<ProducerResult> {
        let plan = &self.plan;
        let ctx = self.producer.context();
        let mut buf = payload::new_buffer(plan.record_size, plan.run_id);
        let deadline = plan.duration.map(|d| start + d);
        let interval = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
        let mut max_behind = Duration::ZERO;
        let mut sent: u64 = 0;
        'send: while sent < plan.records {
            // Looking at the clock and the flag every 256 records keeps them off the hot path.
            if sent & 255 == 0
                && (stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d))
            {
                break;
            }
            if let Some(interval) = interval {
                // Record `sent` is due at start + sent × interval: a steady schedule, so a
                // slow acknowledgement never delays the next send.
                let due = start + interval.mul_f64(sent as f64);
                let now = Instant::now();
                if now < due {
                    std::thread::sleep((due - now).min(Duration::from_millis(1)));
                    continue;
                }
                max_behind = max_behind.max(now - due);
                if deadline.is_some_and(|d| now >= d) || stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            let send_nanos = self.epoch.elapsed().as_nanos() as u64;
            payload::stamp(&mut buf, payload::wall_nanos());
            let key_bytes;
            let mut rec: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&plan.topic, send_nanos as usize).payload(&buf);
            if plan.keys > 0 {
                key_bytes = ((sent + plan.key_offset) % plan.keys).to_be_bytes();
                rec = rec.key(&key_bytes);
            }
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The client's queue is full: the broker is the bottleneck. Wait
                        // for acknowledgements to make room.
                        rec = r;
                        std::thread::sleep(Duration::from_micros(200));
                        if stop.load(Ordering::Relaxed) {
                            break 'send;
                        }
                    }
                    Err((e, _)) => {
                        return Err(kafka(format!("sending to {}", plan.topic))(e));
                    }
                }
            }
            sent += 1;
            ctx.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        self.producer
            .flush(Duration::from_secs(300))
            .map_err(kafka(format!("flushing the producer of {}", plan.topic)))?;
        let last_ack = Instant::now();
        let latency = stats::lock(&ctx.latency).clone();
        let first_error = stats::lock(&ctx.first_error).clone();
        Ok(ProducerResult {
            last_ack,
            latency,
            first_error,
            max_behind,
        })
    }
}
