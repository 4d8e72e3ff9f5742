//! How the operator reaches a Cluster's brokers over the Kafka protocol: the bootstrap address
//! comes from a [`BootstrapResolver`] (the bootstrap Service's DNS name in a real cluster, local
//! broker processes in tests), and each reconcile opens a short-lived admin client.

use std::time::Duration;

use runnel_client::{Client, ClientConfig, SaslCredentials};

use crate::crd::Cluster;
use crate::resources::{agent_endpoint, bootstrap_address};
use crate::Error;

/// Maps a `Cluster` to the `host:port` list its brokers answer Kafka requests on, and each
/// broker to its sidecar agent.
pub trait BootstrapResolver: Send + Sync {
    /// The bootstrap servers of `cluster`.
    fn bootstrap(&self, cluster: &Cluster) -> Result<String, Error>;
    /// The gRPC endpoint (`http://host:port`) of the agent beside broker `ordinal` of `cluster`.
    fn agent(&self, cluster: &Cluster, ordinal: i32) -> Result<String, Error>;
}

/// The in-cluster resolver: the Cluster's bootstrap Service (`<name>-bootstrap.<ns>.svc:9092`)
/// and each pod's DNS name on the headless Service for its agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceDns;

impl BootstrapResolver for ServiceDns {
    fn bootstrap(&self, cluster: &Cluster) -> Result<String, Error> {
        bootstrap_address(cluster)
    }

    fn agent(&self, cluster: &Cluster, ordinal: i32) -> Result<String, Error> {
        agent_endpoint(cluster, ordinal)
    }
}

/// Opens an admin client to the brokers at `bootstrap`. Timeouts are short so a reconcile of
/// an unreachable cluster fails (and is retried with backoff) instead of blocking a worker.
pub async fn connect(bootstrap: &str) -> Result<Client, Error> {
    connect_as(bootstrap, None).await
}

/// [`connect`], authenticating every connection with `sasl` when given (the operator's user on
/// the replication listener of an authenticated Cluster).
pub async fn connect_as(bootstrap: &str, sasl: Option<SaslCredentials>) -> Result<Client, Error> {
    let mut config = ClientConfig::new(bootstrap);
    config.sasl = sasl;
    config.client_id = "runnel-operator".into();
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(15);
    config.metadata_wait = Duration::from_secs(10);
    Client::connect(config)
        .await
        .map_err(|source| Error::Kafka {
            what: format!("connect to brokers at {bootstrap}"),
            source,
        })
}

/// Wraps a client error with the call that failed.
pub(crate) fn kafka_err(what: impl Into<String>) -> impl FnOnce(runnel_client::Error) -> Error {
    let what = what.into();
    move |source| Error::Kafka { what, source }
}
