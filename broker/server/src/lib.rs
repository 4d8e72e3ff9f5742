//! Runnel broker: a Kafka-compatible server over the `runnel-log` storage
//! engine, coordinated with other brokers through the `runnel-meta` quorum.
//! [`run`] binds the listeners, prints the ready line and serves until its
//! shutdown future resolves; [`Server`] exposes the same steps separately so
//! tests can read the bound addresses, and [`Broker`] what they observe.
//!
//! Modules (all private; this file re-exports the public surface):
//! - `server`: start-up and shutdown (`mod.rs`), the Kafka connection loop
//!   with its connection and memory limits (`connection.rs`), housekeeping
//!   timers (`housekeeping.rs`), the import of pre-quorum data (`legacy_import.rs`).
//! - `broker`: [`Broker`], the state every connection and handler shares, and
//!   the task that keeps local replicas in line with the cluster metadata.
//! - `api`: one file per Kafka API handler, and the dispatch table.
//! - `replica`: replication (the replica manager, one local partition, ISR
//!   proposals, the follower fetchers, the leader's ISR/HW state, throttling).
//! - `group`: the classic consumer-group protocol (the `Group` state machine,
//!   one file per request), the coordinator and the `__consumer_offsets` store.
//! - `topics`, `topic_config`, `names`: the local replica store, topic configs
//!   and topic name rules.
//! - `config`: the broker config, declared once in `runnel-config`.
//! - `errors`: the broker's errors and their one mapping to Kafka error codes.
//! - `frame`: a response frame with Fetch's record batches left in their files (zero-copy).
//! - `producer_ids`, `persist`, `data_dir_lock`: producer id blocks, small
//!   metadata files, the data directory lock.
//! - `principal_rules`: `ssl_principal_mapping_rules`, certificate subject → principal name.
//! - `session`, `tls`: a connection's listener and principal; TLS
//!   configuration (reloaded when its files change) and certificate subjects.
//! - `metrics`, `admin_http`: Prometheus metrics and the admin HTTP port.
//! - `parallel`: bounded parallelism for blocking file work over many partitions.
//! - `runtime`: the clock, the shutdown flag and signals, log filter defaults.

mod admin_http;
mod api;
mod auth;
mod broker;
mod config;
mod data_dir_lock;
mod errors;
mod frame;
mod group;
mod internal_batch;
mod metrics;
mod names;
mod parallel;
mod persist;
mod principal_rules;
mod producer_ids;
mod quota;
mod replica;
mod runtime;
mod server;
mod session;
mod telemetry;
mod tls;
mod topic_config;
mod topics;
mod txn;

use std::future::Future;
use std::io::Write;

pub use auth::authorizer::bench_decisions as bench_authorizer_decisions;
pub use auth::fuzz_sasl_exchange;
pub use broker::Broker;
pub use errors::Error;
pub use group::records as consumer_offsets_records;
pub use group::{partition_for, OFFSETS_TOPIC};
pub use replica::throttle::{FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS};
pub use runnel_config::{split_host_port, BrokerConfig};
pub use runtime::{now_ms, shutdown_signal, DEFAULT_LOG_FILTER};
pub use server::Server;

/// Binds, prints `runnel-broker ready kafka=ADDR admin=ADDR controller=ADDR data=DIR` to
/// stdout (the line that says where everything is; `kafka` is the first listener), then
/// `runnel-broker listener NAME address=ADDR` for each further listener, serves until
/// `shutdown` resolves, then fsyncs and closes every log.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "runnel-broker ready kafka={} admin={} controller={} data={}",
            server.kafka_addr(),
            server.admin_addr(),
            server.controller_addr(),
            data_dir.display()
        );
        // On lines of their own, so that every reader of the ready line keeps working.
        for (name, addr) in server.listener_addrs().into_iter().skip(1) {
            let _ = writeln!(out, "runnel-broker listener {name} address={addr}");
        }
        let _ = out.flush();
    }
    server.serve(shutdown).await
}
