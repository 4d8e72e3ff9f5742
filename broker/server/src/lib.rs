//! Runnel broker: a Kafka-compatible server over the `runnel-log` storage
//! engine, coordinated with other brokers through the `runnel-meta` quorum.
//! [`run`] binds the listeners, prints the ready line and serves until its
//! shutdown future resolves; [`server::Server`] exposes the same steps
//! separately so tests can read the bound addresses.

pub mod admin_http;
pub mod api;
pub mod broker;
pub mod config;
pub mod data_dir_lock;
pub mod errors;
pub mod group;
pub mod metrics;
pub mod names;
pub mod persist;
pub mod producer_ids;
pub mod replica;
pub mod runtime;
pub mod server;
pub mod topic_config;
pub mod topics;

use std::future::Future;
use std::io::Write;

pub use config::BrokerConfig;
pub use errors::Error;
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
