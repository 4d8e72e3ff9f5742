//! The cluster-aware client: bootstrap, metadata (leaders per partition and
//! node id -> address), and routing of each request to the right broker over
//! a pool of [`Connection`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sasl::SaslCredentials;
use crate::tls::ClientTls;

/// UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// LEADER_NOT_AVAILABLE: normal for a moment after a topic is created.
const LEADER_NOT_AVAILABLE: i16 = 5;

/// How the client reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Comma-separated `host:port` list; the first reachable one is used.
    pub bootstrap_servers: String,
    /// Sent in every request header; brokers log it.
    pub client_id: String,
    /// Limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Limit for one request/response round trip.
    pub request_timeout: Duration,
    /// How long to wait for a new topic to get partition leaders.
    pub metadata_wait: Duration,
    /// SASL credentials every connection authenticates with (SASL_PLAINTEXT and
    /// SASL_SSL listeners).
    pub sasl: Option<SaslCredentials>,
    /// TLS for every connection (SSL and SASL_SSL listeners).
    pub tls: Option<ClientTls>,
}

impl ClientConfig {
    /// Defaults for the given bootstrap list.
    pub fn new(bootstrap_servers: impl Into<String>) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "runnel".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            metadata_wait: Duration::from_secs(10),
            sasl: None,
            tls: None,
        }
    }
}

/// One broker as listed in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition as listed in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, -1 when there is none.
    pub leader: i32,
    /// Leader epoch, -1 when the broker did not say.
    pub leader_epoch: i32,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Offline replicas.
    pub offline_replicas: Vec<i32>,
    /// Partition-level Kafka error code (0 = none).
    pub error_code: i16,
}

/// One topic as listed in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil from brokers older than Metadata v10).
    pub topic_id: Uuid,
    /// Whether the topic is internal (e.g. `__consumer_offsets`).
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
    /// Topic-level Kafka error code (0 = none).
    pub error_code: i16,
}

impl TopicMetadata {
    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Replication factor, read from the first partition's replica list.
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }

    /// The partition with index `partition`.
    pub fn partition(&self, partition: i32) -> Result<&PartitionMetadata> {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                count: self.partitions.len(),
            })
    }
}

/// The whole answer to a Metadata request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Controller node id, -1 if unknown.
    pub controller_id: i32,
    /// Live brokers.
    pub brokers: Vec<BrokerMetadata>,
    /// Topics asked for (or all topics), including ones with errors.
    pub topics: Vec<TopicMetadata>,
}

/// Where a request should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// Any broker: the first connection we have, else a bootstrap server.
    Any,
    /// A specific node by id.
    Node(i32),
    /// A group coordinator by node id, on its own connection (as the Java
    /// client does) so a JoinGroup parked for a whole rebalance never holds
    /// up fetches from the same broker.
    Coordinator(i32),
}

/// What the client knows about the cluster; replaced by every Metadata answer.
#[derive(Debug, Default)]
struct ClusterState {
    /// node id -> `host:port`.
    brokers: HashMap<i32, String>,
    controller: Option<i32>,
    /// group id -> coordinator node id, from FindCoordinator.
    coordinators: HashMap<String, i32>,
}

/// A Kafka client for admin, produce and fetch requests.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// Guarded by a std mutex: held only for map lookups, never across awaits.
    state: SyncMutex<ClusterState>,
    /// Open connections. The map lock is held while connecting so two tasks
    /// never open the same connection twice; each connection has its own lock
    /// because a connection carries one request at a time.
    connections: Mutex<HashMap<Route, Arc<Mutex<Connection>>>>,
}

impl Client {
    /// Connects to the first reachable bootstrap server and reads cluster metadata.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let client = Client {
            config,
            state: SyncMutex::new(ClusterState::default()),
            connections: Mutex::new(HashMap::new()),
        };
        client.metadata(Some(&[]), false).await?;
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Fetches metadata for `topics` (`None` = all topics) and refreshes the
    /// node address map.
    pub async fn metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let resp: MetadataResponse = self
            .request(Route::Any, i16::MAX, |version| {
                let topics = match topics {
                    Some(names) => Some(
                        names
                            .iter()
                            .map(|n| {
                                MetadataRequestTopic::default()
                                    .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                            })
                            .collect(),
                    ),
                    // v0 has no null array: an empty one means "all topics".
                    None if version == 0 => Some(Vec::new()),
                    None => None,
                };
                let mut req = MetadataRequest::default().with_topics(topics);
                // Before v4 the field does not exist and auto-creation is implied.
                req = req.with_allow_auto_topic_creation(allow_auto_create || version < 4);
                Ok(req)
            })
            .await?;
        let meta = convert_metadata(resp);
        {
            let mut state = self.lock_state();
            state.brokers = meta
                .brokers
                .iter()
                .map(|b| (b.node_id, b.address()))
                .collect();
            state.controller = (meta.controller_id >= 0).then_some(meta.controller_id);
        }
        Ok(meta)
    }

    /// Metadata for one topic; [`Error::UnknownTopic`] if it does not exist.
    ///
    /// Waits (up to `metadata_wait`) while the broker reports the topic as
    /// still being created, which happens right after auto-creation.
    pub async fn topic_metadata(
        &self,
        topic: &str,
        allow_auto_create: bool,
    ) -> Result<TopicMetadata> {
        let deadline = Instant::now() + self.config.metadata_wait;
        let names = [topic.to_string()];
        loop {
            let meta = self.metadata(Some(&names), allow_auto_create).await?;
            let found = meta.topics.into_iter().find(|t| t.name == topic);
            let Some(t) = found else {
                return Err(Error::UnknownTopic(topic.to_string()));
            };
            match t.error_code {
                0 => return Ok(t),
                UNKNOWN_TOPIC_OR_PARTITION if !allow_auto_create => {
                    return Err(Error::UnknownTopic(topic.to_string()))
                }
                code if retriable(code) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                UNKNOWN_TOPIC_OR_PARTITION => return Err(Error::UnknownTopic(topic.to_string())),
                code => {
                    return Err(Error::broker(code, format!("topic '{topic}'"), None));
                }
            }
        }
    }

    /// Like [`Client::topic_metadata`], but also waits until every partition
    /// has a leader, as producing and fetching need one.
    pub async fn topic_with_leaders(
        &self,
        topic: &str,
        allow_auto_create: bool,
    ) -> Result<TopicMetadata> {
        let deadline = Instant::now() + self.config.metadata_wait;
        loop {
            let t = self.topic_metadata(topic, allow_auto_create).await?;
            let leaderless = t.partitions.iter().find(|p| p.leader < 0);
            match leaderless {
                None if !t.partitions.is_empty() => return Ok(t),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(p) => {
                    return Err(Error::NoLeader {
                        topic: topic.to_string(),
                        partition: p.partition,
                    })
                }
                None => {
                    return Err(Error::Broker {
                        error: crate::error::KafkaErrorName(
                            kafka_protocol::ResponseError::LeaderNotAvailable,
                        ),
                        target: format!("topic '{topic}'"),
                        message: Some("the broker lists no partitions for it".into()),
                    })
                }
            }
        }
    }

    /// Route for admin requests: the controller if known, else any broker.
    pub(crate) fn controller_route(&self) -> Route {
        self.lock_state().controller.map_or(Route::Any, Route::Node)
    }

    /// Sends a request built for the negotiated version (capped at
    /// `max_version`) to `route` and returns the response.
    pub(crate) async fn request<R, F>(
        &self,
        route: Route,
        max_version: i16,
        build: F,
    ) -> Result<R::Response>
    where
        R: Request,
        F: FnOnce(i16) -> Result<R>,
    {
        self.request_with_timeout(route, max_version, None, build)
            .await
    }

    /// Like [`Client::request`] with a round-trip limit other than the
    /// configured one (JoinGroup may legitimately wait a whole rebalance).
    pub(crate) async fn request_with_timeout<R, F>(
        &self,
        route: Route,
        max_version: i16,
        timeout: Option<Duration>,
        build: F,
    ) -> Result<R::Response>
    where
        R: Request,
        F: FnOnce(i16) -> Result<R>,
    {
        let conn = self.connection(route).await?;
        let mut guard = conn.lock().await;
        let version = guard.version::<R>()?.min(max_version);
        let req = build(version)?;
        let result = match timeout {
            Some(t) => guard.send_with_timeout(&req, version, t).await,
            None => guard.send(&req, version).await,
        };
        let broken = guard.is_broken();
        drop(guard);
        if broken {
            self.forget(&conn).await;
        }
        result
    }

    /// Like [`Client::request`] for requests the broker never answers (acks=0).
    pub(crate) async fn request_without_response<R, F>(
        &self,
        route: Route,
        max_version: i16,
        build: F,
    ) -> Result<()>
    where
        R: Request,
        F: FnOnce(i16) -> Result<R>,
    {
        let conn = self.connection(route).await?;
        let mut guard = conn.lock().await;
        let version = guard.version::<R>()?.min(max_version);
        let req = build(version)?;
        let result = guard.send_without_response(&req, version).await;
        let broken = guard.is_broken();
        drop(guard);
        if broken {
            self.forget(&conn).await;
        }
        result
    }

    async fn connection(&self, route: Route) -> Result<Arc<Mutex<Connection>>> {
        let mut conns = self.connections.lock().await;
        if let Some(conn) = conns.get(&route) {
            return Ok(conn.clone());
        }
        if route == Route::Any {
            if let Some(conn) = conns.values().next() {
                return Ok(conn.clone());
            }
        }
        let conn = match route {
            Route::Any => self.connect_bootstrap().await?,
            Route::Node(id) | Route::Coordinator(id) => {
                let addr = self
                    .lock_state()
                    .brokers
                    .get(&id)
                    .cloned()
                    .ok_or(Error::UnknownNode(id))?;
                self.open(&addr).await?
            }
        };
        let conn = Arc::new(Mutex::new(conn));
        conns.insert(route, conn.clone());
        Ok(conn)
    }

    async fn connect_bootstrap(&self) -> Result<Connection> {
        let mut last_err = None;
        for addr in self
            .config
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match self.open(addr).await {
                Ok(conn) => return Ok(conn),
                Err(err) => {
                    tracing::debug!(%addr, %err, "bootstrap server unreachable");
                    last_err = Some(err);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| Error::InvalidInput("no bootstrap server given".to_string())))
    }

    async fn open(&self, addr: &str) -> Result<Connection> {
        let mut conn = Connection::connect_with(
            addr,
            &self.config.client_id,
            self.config.connect_timeout,
            self.config.request_timeout,
            self.config.tls.as_ref(),
        )
        .await?;
        if let Some(creds) = &self.config.sasl {
            conn.authenticate(creds).await?;
        }
        Ok(conn)
    }

    /// Drops a broken connection so the next request reconnects. Every route
    /// pointing at that connection goes (Any may share one with a Node).
    async fn forget(&self, conn: &Arc<Mutex<Connection>>) {
        let mut conns = self.connections.lock().await;
        conns.retain(|_, c| !Arc::ptr_eq(c, conn));
    }

    /// The cached coordinator node of `group`, if known.
    pub(crate) fn cached_coordinator(&self, group: &str) -> Option<i32> {
        self.lock_state().coordinators.get(group).copied()
    }

    /// Remembers `group`'s coordinator and its address (the coordinator may
    /// be a node that the last Metadata answer did not list).
    pub(crate) fn set_coordinator(&self, group: &str, node: i32, addr: String) {
        let mut state = self.lock_state();
        state.brokers.entry(node).or_insert(addr);
        state.coordinators.insert(group.to_string(), node);
    }

    /// Forgets `group`'s coordinator and drops its connection, after the
    /// broker said it no longer coordinates the group.
    pub(crate) async fn forget_coordinator(&self, group: &str) {
        let node = self.lock_state().coordinators.remove(group);
        if let Some(node) = node {
            self.connections
                .lock()
                .await
                .remove(&Route::Coordinator(node));
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        // A panic while holding this lock cannot leave the maps half-written
        // in a harmful way (each write replaces whole values), so recover.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn retriable(code: i16) -> bool {
    code == LEADER_NOT_AVAILABLE
        || kafka_protocol::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

fn convert_metadata(resp: MetadataResponse) -> ClusterMetadata {
    let brokers = resp
        .brokers
        .into_iter()
        .map(|b| BrokerMetadata {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.map(|r| r.to_string()),
        })
        .collect();
    let topics = resp
        .topics
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .into_iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|n| n.0).collect(),
                    offline_replicas: p.offline_replicas.into_iter().map(|n| n.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicMetadata {
                name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                topic_id: t.topic_id,
                is_internal: t.is_internal,
                partitions,
                error_code: t.error_code,
            }
        })
        .collect();
    ClusterMetadata {
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
        controller_id: resp.controller_id.0,
        brokers,
        topics,
    }
}

/// Kafka's textual form of a topic id: URL-safe base64 without padding, as
/// `org.apache.kafka.common.Uuid.toString()` and `kafka-topics` print it.
/// The broker prints new cluster ids in the same form.
pub fn topic_id_string(id: &Uuid) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_like_kafka() {
        // All-zero id is Kafka's ZERO_UUID, printed as "AAAAAAAAAAAAAAAAAAAAAA".
        assert_eq!(topic_id_string(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        // 0xfb 0xff... exercises the URL-safe characters '-' and '_'.
        let id = Uuid::from_bytes([
            0xfb, 0xef, 0xff, 0xfb, 0xef, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ]);
        let s = topic_id_string(&id);
        assert_eq!(s.len(), 22);
        assert!(s.starts_with("--__--__"), "{s}");
        assert!(s.ends_with("AAAQ"), "{s}");
    }

    #[test]
    fn ipv6_broker_addresses_are_bracketed() {
        let b = BrokerMetadata {
            node_id: 0,
            host: "::1".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(b.address(), "[::1]:9092");
    }
}
