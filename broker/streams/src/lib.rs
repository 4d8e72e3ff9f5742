//! runnel-streams: stream processing on Kafka topics, in the manner of Kafka Streams.
//!
//! A topology is built with the DSL ([`StreamsBuilder`], [`KStream`], [`KTable`]) or the
//! processor API ([`Processor`]), and run by [`KafkaStreams`]: one consumer group per
//! application id, one task per sub-topology and input partition, state stores on local disk
//! (redb) backed up to compacted changelog topics, at-least-once or exactly-once (Kafka
//! transactions) processing, interactive queries and metrics over HTTP.
//!
//! The Kafka client is librdkafka (the `rdkafka` crate): its consumer groups and transactional
//! producer are proven against Kafka itself, so an application runs against any
//! Kafka-compatible broker.
//!
//! Modules:
//! - [`serdes`]: bytes, UTF-8, `i64`, JSON and windowed-key serdes.
//! - `topology`, `graph`, `topic_ref`, `stream`, `table`, `group`, `join`, `window`,
//!   `processor`: the DSL and processor API.
//! - `node`: the running form of a topology inside a task.
//! - `store`: redb-backed stores; `restore`: changelog restore; `task`: tasks and checkpoints.
//! - `app`: the runtime (`KafkaStreams`); `topics`: internal topics; `http`, `query`:
//!   interactive queries; `metrics`.

mod app;
mod config;
mod error;
mod graph;
mod group;
mod http;
mod join;
mod metrics;
mod node;
mod processor;
mod query;
mod record;
mod restore;
pub mod serdes;
mod store;
mod stream;
mod table;
mod task;
mod topic_ref;
mod topics;
mod topology;
mod window;

pub use app::{KafkaStreams, ShutdownHandle};
pub use config::{OnDeserializationError, ProcessingGuarantee, StreamsConfig};
pub use error::{Result, StreamsError};
pub use graph::Data;
pub use group::{KGroupedStream, WindowedKStream};
pub use node::{ProcessorContext, TaskBuild};
pub use processor::{Processor, StoreAccess, StoreDecl};
pub use record::{Change, Record};
pub use store::KeyValueStore;
pub use store::StoreKind;
pub use stream::{KStream, Predicate};
pub use table::KTable;
pub use topic_ref::TopicRef;
pub use topology::{StreamsBuilder, Topology};
pub use window::{TimeWindows, Windowed};
