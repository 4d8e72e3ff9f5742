//! Runnel broker: a Kafka-compatible server over the `runnel-log` storage
//! engine, coordinated with other brokers through the `runnel-meta` quorum.
//! [`run`] binds the listeners, prints the ready line and serves until its
//! shutdown future resolves; [`server::Server`] exposes the same steps
//! separately so tests can read the bound addresses.

mod admin_http;
mod api;
mod broker;
mod config;
mod data_dir_lock;
mod errors;
mod group;
mod metrics;
mod names;
mod persist;
mod producer_ids;
mod replica;
mod runtime;
mod server;
mod topic_config;
mod topics;

use std::future::Future;
use std::io::Write;

pub use broker::Broker;
pub use errors::Error;
pub use group::records as consumer_offsets_records;
pub use group::{partition_for, OFFSETS_TOPIC};
pub use replica::throttle::{FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS};
pub use runnel_config::{split_host_port, BrokerConfig};
pub use runtime::{now_ms, shutdown_signal, DEFAULT_LOG_FILTER};
pub use server::Server;

/// Binds, prints `runnel-broker ready kafka=ADDR admin=ADDR controller=ADDR data=DIR` to
/// stdout (the one line that says where everything is), serves until `shutdown` resolves,
/// then fsyncs and closes every log.
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
        let _ = out.flush();
    }
    server.serve(shutdown).await
}
