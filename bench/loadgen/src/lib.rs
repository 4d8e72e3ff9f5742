//! Runnel's native load generator: OpenMessaging-Benchmark-style workloads (record size,
//! partitions, producers, consumers, target rate, keys, acks) run with librdkafka (the `rdkafka`
//! crate) against any Kafka-compatible bootstrap, with producer-acknowledgement and end-to-end
//! latency in HdrHistograms and throughput sampled once a second.
//!
//! [`run`] produces (and consumes what it produced, with consumers); [`consume_backlog`] reads an
//! existing topic from the beginning as fast as one or more consumers can.

mod admin;
mod consume;
mod error;
mod payload;
mod produce;
mod stats;
mod workload;

pub use admin::{create_topic, ensure_topic};
pub use error::{Error, Result};
pub use payload::HEADER_LEN;
pub use stats::{Latency, Sample, Summary, Throughput};
pub use workload::{consume_backlog, run, Acks, BacklogSpec, ConsumerMode, Workload};
