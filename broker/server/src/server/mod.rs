//! The broker's start-up and shutdown: [`Server::bind`] opens the data
//! directory, joins (or founds) the metadata quorum, binds the listeners and
//! opens every local partition; [`Server::serve`] starts the background tasks,
//! accepts Kafka connections and, when its shutdown future resolves, drains.
//! Shutdown starts with a controlled shutdown (the controller moves this
//! broker's leaderships elsewhere while it keeps serving), then is one
//! `watch` flag: the accept loop stops, readers stop reading, writers finish
//! what was queued (a produce still waiting for its followers is answered
//! NOT_LEADER_OR_FOLLOWER), then every log is fsynced and closed.
//!
//! Files:
//! - `mod.rs`: [`Server`], the metadata node's settings and the cluster id.
//! - `legacy_import.rs`: the one-time import of a pre-quorum broker's files.
//! - `controlled_shutdown.rs`: moving leadership off the broker before it stops.
//! - `connection.rs`: the Kafka accept loops (one per listener), TLS
//!   handshakes, connection limits, the request memory pool and
//!   per-connection framing and dispatch.
//! - `response_writer.rs`: writing a response frame, with `sendfile` for the record
//!   batches a Fetch leaves in their segment files on a plaintext socket.
//! - `housekeeping.rs`: the periodic retention, segment roll and compaction passes.

mod connection;
mod controlled_shutdown;
mod housekeeping;
mod legacy_import;
mod response_writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::data_dir_lock::DataDirLock;
use crate::errors::Error;
use crate::persist;
use crate::session::{Listener, SecurityProtocol};
use crate::tls::{ReloadingTls, TlsFiles};
use crate::topics::TopicRegistry;
use connection::KafkaListener;
use runnel_meta::{BrokerInfo, Command, Endpoint, MetaConfig, MetaNode};
use uuid::Uuid;

/// Directory of the metadata quorum's Raft log and snapshots under `data_dir`.
pub(crate) const METADATA_DIR: &str = "__cluster_metadata";

/// The seeds this broker joins through. The same list may be given to every
/// broker (e.g. pod 0's address in a StatefulSet): a broker ignores its own
/// address, and one left without seeds founds the cluster.
fn seeds(config: &BrokerConfig) -> Vec<String> {
    let own = config
        .controller_advertised_address
        .as_deref()
        .unwrap_or(config.controller_listen.as_str());
    config
        .seeds
        .iter()
        .filter(|seed| seed.as_str() != own)
        .cloned()
        .collect()
}

/// The metadata node's settings from the broker config.
fn meta_config(config: &BrokerConfig, dir: std::path::PathBuf) -> MetaConfig {
    let mut mc = MetaConfig::new(config.node_id, dir);
    mc.listen = config.controller_listen.clone();
    mc.advertised = config.controller_advertised_address.clone();
    mc.seeds = seeds(config);
    mc.voters = config.metadata_voters;
    mc.heartbeat_interval = Duration::from_millis(config.broker_heartbeat_interval_ms);
    mc.session_timeout = Duration::from_millis(config.broker_session_timeout_ms);
    mc.auto_leader_rebalance = config.auto_leader_rebalance_enable;
    mc.leader_imbalance_check_interval =
        Duration::from_secs(config.leader_imbalance_check_interval_seconds);
    mc.leader_imbalance_per_broker_percentage = config.leader_imbalance_per_broker_percentage;
    if mc.seeds.is_empty() {
        // The founding node starts as a one-voter quorum: it must elect itself
        // quickly at every start (a single broker waits for this).
        mc.election_timeout = Duration::from_millis(300);
    }
    mc
}

/// Settles the cluster id: the one in meta.json (or configured, or a new one)
/// is proposed once; the metadata's id wins and must match what is stored.
async fn init_cluster_id(
    config: &BrokerConfig,
    stored: Option<&persist::Meta>,
    meta: &MetaNode,
) -> Result<String, Error> {
    if meta.state().borrow().cluster_id.is_none() {
        let proposed = stored
            .map(|m| m.cluster_id.clone())
            .or_else(|| config.cluster_id.clone())
            .unwrap_or_else(runnel_meta::generate_cluster_id);
        meta.propose(Command::InitCluster {
            cluster_id: proposed,
        })
        .await?;
    }
    let cluster_id = meta
        .state()
        .borrow()
        .cluster_id
        .clone()
        .ok_or_else(|| Error::Metadata("the metadata has no cluster id".into()))?;
    let mismatch = |what: &str, other: &str| {
        Err(Error::Metadata(format!(
            "data_dir {} belongs to cluster {other} ({what}) but the metadata quorum is cluster {cluster_id}; refusing to start",
            config.data_dir.display()
        )))
    };
    if let Some(stored) = stored {
        if stored.cluster_id != cluster_id {
            return mismatch("meta.json", &stored.cluster_id);
        }
    } else {
        if let Some(configured) = &config.cluster_id {
            if *configured != cluster_id {
                return mismatch("cluster_id", configured);
            }
        }
        persist::store_meta(
            &config.data_dir,
            &persist::Meta {
                cluster_id: cluster_id.clone(),
                node_id: config.node_id,
            },
        )?;
    }
    Ok(cluster_id)
}

/// Creates the SCRAM user `sasl_bootstrap_user` (both mechanisms) with the
/// password in `sasl_bootstrap_password_file` when the cluster has no
/// credential for that name; an existing user is left as it is, so a password
/// changed later through AlterUserScramCredentials stays changed.
async fn create_bootstrap_user(config: &BrokerConfig, meta: &MetaNode) -> Result<(), Error> {
    let (Some(user), Some(file)) = (
        &config.sasl_bootstrap_user,
        &config.sasl_bootstrap_password_file,
    ) else {
        return Ok(());
    };
    if meta.state().borrow().scram_credentials.contains_key(user) {
        return Ok(());
    }
    let invalid = |message: String| {
        Error::Config(crate::config::ConfigError::Invalid {
            key: "sasl_bootstrap_password_file".into(),
            message,
        })
    };
    let password =
        std::fs::read_to_string(file).map_err(|e| invalid(format!("cannot read {file}: {e}")))?;
    let password = password.trim();
    if password.is_empty() {
        return Err(invalid(format!("{file} is empty")));
    }
    for mechanism in runnel_meta::ScramMechanism::ALL {
        let credential = crate::auth::scram::new_credential(mechanism, password.as_bytes(), 4096)
            .map_err(invalid)?;
        meta.propose(Command::AlterScramCredential {
            user: user.clone(),
            mechanism,
            credential: Some(credential),
        })
        .await?;
    }
    tracing::info!(%user, "created the SASL bootstrap user");
    Ok(())
}

/// With the authorizer on and a PLAINTEXT inter-broker listener, brokers reach
/// each other as `User:ANONYMOUS`; unless that principal may act for the
/// cluster, followers cannot fetch. Kafka behaves the same; say so at start.
fn warn_if_brokers_cannot_replicate(config: &BrokerConfig) {
    let plaintext = config
        .inter_broker_listener()
        .is_ok_and(|l| l.protocol == "PLAINTEXT");
    if config.authorizer_enabled
        && plaintext
        && !config.super_users.iter().any(|u| u == "User:ANONYMOUS")
    {
        tracing::warn!(
            "the authorizer is on and brokers reach each other on a PLAINTEXT listener as User:ANONYMOUS: \
             give it CLUSTER_ACTION on the cluster (or put it in super_users), or use a SASL_PLAINTEXT \
             inter-broker listener, or followers cannot replicate"
        );
    }
}

/// Binds every Kafka listener (loading the TLS files first when one uses
/// TLS) and returns them with the endpoints they advertise, in configuration order.
async fn bind_listeners(
    config: &BrokerConfig,
) -> Result<(Vec<KafkaListener>, Vec<Endpoint>), Error> {
    let configs = config.listener_configs()?;
    let tls = match TlsFiles::from_config(config).map_err(|e| Error::Tls(e.to_string()))? {
        Some(files) if configs.iter().any(|l| l.uses_tls()) => Some(Arc::new(
            ReloadingTls::load(files).map_err(|e| Error::Tls(e.to_string()))?,
        )),
        _ => None,
    };
    let mut listeners = Vec::new();
    let mut endpoints = Vec::new();
    for lc in configs {
        // A broker configured with `listen` alone names the address as it always did.
        let addr = if config.listeners.is_empty() {
            lc.bind.clone()
        } else {
            format!("{}://{}", lc.name, lc.bind)
        };
        let bind_error = |source| Error::Bind {
            what: "kafka",
            addr: addr.clone(),
            source,
        };
        let socket = TcpListener::bind(&lc.bind).await.map_err(bind_error)?;
        let bound = socket.local_addr().map_err(bind_error)?;
        let (host, port) = lc
            .advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()));
        let protocol = SecurityProtocol::parse(lc.protocol).ok_or_else(|| {
            Error::Metadata(format!("listener {} has no known protocol", lc.name))
        })?;
        endpoints.push(Endpoint {
            listener: lc.name.clone(),
            host,
            port,
            security_protocol: protocol.name().to_string(),
        });
        listeners.push(KafkaListener {
            listener: Arc::new(Listener {
                name: lc.name.clone(),
                protocol,
            }),
            socket,
            tls: if lc.uses_tls() { tls.clone() } else { None },
        });
    }
    Ok((listeners, endpoints))
}

/// A bound broker, ready to serve.
pub struct Server {
    broker: Arc<Broker>,
    kafka: Vec<KafkaListener>,
    admin: TcpListener,
    shutdown_tx: watch::Sender<bool>,
    // Held until every log is closed in `serve`.
    lock: DataDirLock,
}

impl Server {
    /// Opens the data directory, starts this broker's metadata node (joining
    /// through `seeds`, or starting a new one-voter cluster; the rack is read
    /// from `broker_rack_file` first when set), waits until the
    /// metadata has caught up, binds both listeners, registers the broker and
    /// opens (recovering) every partition the metadata assigns here.
    pub async fn bind(mut config: BrokerConfig) -> Result<Server, Error> {
        config.validate()?;
        config.resolve_rack_file()?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::Io {
            path: data_dir.clone(),
            source,
        })?;
        // Before anything reads or writes the directory.
        let lock = DataDirLock::acquire(&data_dir)?;
        let stored = persist::read_meta(&data_dir, config.node_id, config.cluster_id.as_deref())?;
        let meta_dir = data_dir.join(METADATA_DIR);
        let new_cluster = seeds(&config).is_empty() && !meta_dir.exists();
        let mut mc = meta_config(&config, meta_dir);
        mc.tls = crate::tls::quorum_tls(&config).map_err(|e| Error::Tls(e.to_string()))?;
        mc.cluster_id = stored
            .as_ref()
            .map(|m| m.cluster_id.clone())
            .or_else(|| config.cluster_id.clone());
        let meta = MetaNode::start(mc).await?;
        match Self::bind_with(config, stored, new_cluster, meta.clone(), lock).await {
            Ok(server) => Ok(server),
            Err(err) => {
                let _ = meta.shutdown().await;
                Err(err)
            }
        }
    }

    async fn bind_with(
        config: BrokerConfig,
        stored: Option<persist::Meta>,
        new_cluster: bool,
        meta: MetaNode,
        lock: DataDirLock,
    ) -> Result<Server, Error> {
        let data_dir = config.data_dir.clone();
        tracing::info!(controller = %meta.listen_addr(), seeds = ?config.seeds,
            "waiting for the metadata quorum");
        meta.wait_ready().await?;
        let cluster_id = init_cluster_id(&config, stored.as_ref(), &meta).await?;
        create_bootstrap_user(&config, &meta).await?;
        warn_if_brokers_cannot_replicate(&config);
        let (kafka, endpoints) = bind_listeners(&config).await?;
        let admin = TcpListener::bind(&config.admin_listen)
            .await
            .map_err(|source| Error::Bind {
                what: "admin",
                addr: config.admin_listen.clone(),
                source,
            })?;
        // Other brokers connect to the inter-broker listener: its endpoint is
        // the registration's host and port.
        let inter_broker = config.inter_broker_listener()?;
        let (host, port) = endpoints
            .iter()
            .find(|e| e.listener == inter_broker.name)
            .map(|e| (e.host.clone(), e.port))
            .ok_or_else(|| Error::Metadata("the inter-broker listener is not bound".into()))?;
        let controller_addr = config
            .controller_advertised_address
            .clone()
            .unwrap_or_else(|| meta.listen_addr().to_string());
        meta.register(BrokerInfo {
            id: config.node_id,
            host,
            port,
            endpoints: endpoints.clone(),
            rack: config.broker_rack.clone(),
            controller_addr,
            incarnation: Uuid::new_v4(),
            fenced: false,
        })
        .await?;
        let imported = if seeds(&config).is_empty() {
            legacy_import::import_legacy(&config, &meta).await?
        } else {
            false
        };
        let topics = Arc::new(TopicRegistry::open(&data_dir, &config)?);
        let state = meta.state().borrow().clone();
        {
            let (topics, config, state) = (topics.clone(), config.clone(), state.clone());
            // A brand-new metadata quorum that imported nothing knows nothing
            // of directories already here: leave them alone, as a broker
            // without its topic list always did.
            let remove_unowned = !new_cluster || imported;
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                if remove_unowned {
                    topics.remove_unowned_dirs(&state, config.node_id)?;
                }
                let report = topics.sync(&state, config.node_id);
                if let Some((topic, partition, err)) = report.failed.into_iter().next() {
                    return Err(Error::Metadata(format!(
                        "cannot open partition {topic}-{partition}: {err}"
                    )));
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Metadata(format!("recovery task failed: {e}")))??;
        }
        topics.mark_synced(state.applied_index);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let inter_broker = crate::auth::InterBroker::from_config(&config).map_err(|message| {
            Error::Config(crate::config::ConfigError::Invalid {
                key: "inter_broker_listener_name".into(),
                message,
            })
        })?;
        let broker = Arc::new(Broker::new(
            config,
            cluster_id,
            endpoints,
            topics,
            meta,
            shutdown_rx,
            inter_broker,
        ));
        Ok(Server {
            broker,
            kafka,
            admin,
            shutdown_tx,
            lock,
        })
    }

    /// The bound metadata quorum (controller) listener address.
    pub fn controller_addr(&self) -> SocketAddr {
        self.broker.meta.listen_addr()
    }

    /// The bound address of the first Kafka listener (the only one unless `listeners` is set).
    pub fn kafka_addr(&self) -> SocketAddr {
        self.listener_addrs()
            .into_iter()
            .next()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |(_, addr)| addr)
    }

    /// Every Kafka listener's name and bound address, in configuration order.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.kafka
            .iter()
            .map(|k| {
                let addr = k
                    .socket
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                (k.listener.name.clone(), addr)
            })
            .collect()
    }

    /// The bound admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The shared broker state (for tests and embedding).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` resolves, then drains connections and closes every log.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Server {
            broker,
            kafka,
            admin,
            shutdown_tx,
            lock,
        } = self;
        let admin_task = tokio::spawn(crate::admin_http::serve(admin, broker.clone()));
        let housekeeping = tokio::spawn(housekeeping::retention_and_rolls(broker.clone()));
        let cleaner = tokio::spawn(housekeeping::log_cleaner(broker.clone()));
        let metadata_sync = tokio::spawn(broker.clone().run_metadata_sync());
        let replication = tokio::spawn(broker.replicas.clone().run());
        let fetchers = tokio::spawn(crate::replica::supervise_fetchers(broker.replicas.clone()));
        // Loads __consumer_offsets in the background: group requests get
        // COORDINATOR_LOAD_IN_PROGRESS until it is done.
        let coordinator = tokio::spawn(
            broker
                .groups
                .clone()
                .run(Some((broker.meta.state(), broker.node_id()))),
        );
        let txn_coordinator = tokio::spawn(broker.txns.clone().run(broker.clone()));
        // Each connection holds a clone; recv() returns None once all are gone.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        broker.set_ready(true);
        let addrs: Vec<String> = kafka
            .iter()
            .map(|k| {
                let addr = k
                    .socket
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                format!("{}://{addr}", k.listener.name)
            })
            .collect();
        tracing::info!(
            listeners = %addrs.join(","),
            cluster_id = %broker.cluster_id,
            node_id = broker.node_id(),
            topics = broker.topics.list().len(),
            "broker serving"
        );
        // The listener keeps serving through the controlled shutdown: followers
        // fetch, and clients learn where their partitions went.
        let controlled = {
            let broker = broker.clone();
            async move {
                shutdown.await;
                controlled_shutdown::run(&broker).await;
            }
        };
        // Returns once every listener's socket is closed.
        connection::accept_until(kafka, &broker, &done_tx, controlled).await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        broker.set_ready(false);
        let _ = shutdown_tx.send(true);
        drop(done_tx);
        let _ = done_rx.recv().await;
        let _ = admin_task.await;
        let _ = housekeeping.await;
        let _ = cleaner.await;
        let _ = coordinator.await;
        let _ = txn_coordinator.await;
        let _ = metadata_sync.await;
        let _ = replication.await;
        let _ = fetchers.await;
        // Fences this broker at once, so its partitions move without waiting
        // for the session timeout.
        if let Err(err) = broker.meta.shutdown().await {
            tracing::warn!(error = %err, "metadata node shutdown failed");
        }
        let topics = broker.topics.clone();
        let _ = tokio::task::spawn_blocking(move || topics.close_all()).await;
        // Only now may another broker open the directory.
        drop(lock);
        tracing::info!("shutdown complete: all logs flushed and closed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_ignores_its_own_address_among_the_seeds_and_founds_when_none_is_left() {
        let mut config = BrokerConfig {
            controller_listen: "0.0.0.0:9093".into(),
            controller_advertised_address: Some("b-0.brokers.ns.svc:9093".into()),
            seeds: vec!["b-0.brokers.ns.svc:9093".into()],
            ..BrokerConfig::default()
        };
        assert!(seeds(&config).is_empty(), "pod 0 founds the cluster");
        assert!(meta_config(&config, "/tmp/m".into()).seeds.is_empty());
        config.controller_advertised_address = Some("b-1.brokers.ns.svc:9093".into());
        assert_eq!(seeds(&config), vec!["b-0.brokers.ns.svc:9093".to_string()]);
        // Without an advertised address the listen address is this broker's own.
        config.controller_advertised_address = None;
        config.controller_listen = "b-0.brokers.ns.svc:9093".into();
        assert!(seeds(&config).is_empty());
    }
}
