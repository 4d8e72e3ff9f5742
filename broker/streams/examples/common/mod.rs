//! Options both examples take, and their start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use runnel_streams::{ProcessingGuarantee, StreamsConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Guarantee {
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Args, Debug)]
pub(crate) struct Common {
    /// Brokers (`host:port[,host:port]`).
    #[arg(long, default_value = "localhost:9092")]
    pub(crate) bootstrap_servers: String,
    /// The application id (consumer group, internal topic prefix).
    #[arg(long)]
    pub(crate) application_id: Option<String>,
    /// Processing guarantee.
    #[arg(long, value_enum, default_value = "exactly-once")]
    pub(crate) guarantee: Guarantee,
    /// Directory of the local state stores.
    #[arg(long, default_value = "/tmp/runnel-streams")]
    pub(crate) state_dir: PathBuf,
    /// A stable name of this instance (its transactional id is `<application id>-<instance id>`).
    #[arg(long, default_value = "0")]
    pub(crate) instance_id: String,
    /// Commit interval in milliseconds (default: 100 exactly once, 30000 at least once).
    #[arg(long)]
    pub(crate) commit_interval_ms: Option<u64>,
    /// Serve interactive queries and /metrics here (e.g. 127.0.0.1:8080; port 0 picks one).
    #[arg(long)]
    pub(crate) http: Option<SocketAddr>,
    /// Consumer group session timeout in milliseconds: how long a stopped instance keeps its
    /// partitions before the others take them (librdkafka's default: 45000).
    #[arg(long)]
    pub(crate) session_timeout_ms: Option<u64>,
    /// Replication factor of the internal topics (-1: the broker's default).
    #[arg(long, default_value_t = -1)]
    pub(crate) replication_factor: i32,
}

impl Common {
    pub(crate) fn config(&self, default_app: &str) -> StreamsConfig {
        let guarantee = match self.guarantee {
            Guarantee::AtLeastOnce => ProcessingGuarantee::AtLeastOnce,
            Guarantee::ExactlyOnce => ProcessingGuarantee::ExactlyOnce,
        };
        let app = self
            .application_id
            .clone()
            .unwrap_or_else(|| default_app.to_string());
        let mut config = StreamsConfig::new(app, &self.bootstrap_servers, guarantee);
        config.state_dir = self.state_dir.clone();
        config.instance_id = self.instance_id.clone();
        config.http_listen = self.http;
        config.replication_factor = self.replication_factor;
        if let Some(ms) = self.session_timeout_ms {
            config
                .consumer_properties
                .push(("session.timeout.ms".into(), ms.to_string()));
        }
        if let Some(ms) = self.commit_interval_ms {
            config.commit_interval = Duration::from_millis(ms);
        }
        config
    }
}

pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}
