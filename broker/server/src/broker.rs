//! The state shared by every connection and handler of one broker, and the
//! task that keeps the local replicas in line with the cluster metadata.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use runnel_meta::{
    AclOperation, AclResourceType, Applied, ClusterState, Command, Endpoint, MetaError, MetaNode,
    PartitionMeta, Placement, Rejection, NO_LEADER,
};
use tokio::sync::watch;

use crate::api::fetch_session::FetchSessions;
use crate::auth::authorizer::Authorizer;
use crate::config::BrokerConfig;
use crate::errors::ApiError;
use crate::group::{Coordinator, GroupError, OFFSETS_TOPIC};
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::quota::{Mute, QuotaKind, Quotas, ANONYMOUS};
use crate::replica::offsets::OffsetsReplicator;
use crate::replica::throttle::ThrottleView;
use crate::replica::{ReplicaManager, ReplicaSettings};
use crate::runtime::wait_shutdown;
use crate::session::Session;
use crate::topics::TopicRegistry;

/// Shared broker state (one per running broker, behind an `Arc`).
pub struct Broker {
    /// Effective configuration.
    pub(crate) config: BrokerConfig,
    /// Cluster id (from meta.json).
    pub(crate) cluster_id: String,
    /// This broker's advertised endpoint on each listener, in configuration order.
    pub(crate) endpoints: Vec<Endpoint>,
    /// Topics and their logs.
    pub(crate) topics: Arc<TopicRegistry>,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// Producer id allocator.
    pub(crate) producer_ids: ProducerIdAllocator,
    /// The consumer group coordinator.
    pub(crate) groups: Arc<Coordinator>,
    /// This broker's member of the metadata quorum (proposals, applied state, quorum status).
    pub(crate) meta: MetaNode,
    /// Replication roles of the local partitions (leader/follower, ISR, high watermark).
    pub(crate) replicas: Arc<ReplicaManager>,
    /// Incremental fetch sessions (KIP-227).
    pub(crate) fetch_sessions: FetchSessions,
    /// Client quota measurements.
    pub(crate) quotas: Quotas,
    /// Client metrics clients push (KIP-714).
    pub(crate) telemetry: crate::telemetry::Telemetry,
    /// The transaction coordinator.
    pub(crate) txns: Arc<crate::txn::TxnCoordinator>,
    /// Who may do what (off unless `authorizer_enabled`).
    pub(crate) authorizer: Authorizer,
    /// How this broker reaches the others (TLS and SASL of the inter-broker listener).
    pub(crate) inter_broker: crate::auth::InterBroker,
    // The applied metadata; cloned from `meta.state()` once.
    state: watch::Receiver<Arc<ClusterState>>,
    // Bumped after every successful append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    // Flips to true once when shutdown starts; every task watches it.
    shutdown: watch::Receiver<bool>,
    ready: AtomicBool,
}

impl Broker {
    /// Assembles the shared state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: BrokerConfig,
        cluster_id: String,
        endpoints: Vec<Endpoint>,
        topics: Arc<TopicRegistry>,
        meta: MetaNode,
        shutdown: watch::Receiver<bool>,
        inter_broker: crate::auth::InterBroker,
    ) -> Broker {
        let metrics = Metrics::new();
        meta.metrics().register(metrics.registry());
        let mut settings = ReplicaSettings::new(config.node_id);
        settings.lag_max_ms = i64::try_from(config.replica_lag_time_max_ms).unwrap_or(i64::MAX);
        settings.fetch_max_bytes = config.replica_fetch_max_bytes;
        settings.min_insync_default = config.min_insync_replicas;
        settings.durable_leader = config.log_flush_on_ack;
        settings.inter_broker = inter_broker.clone();
        let replicas = ReplicaManager::new(
            settings,
            topics.clone(),
            meta.state(),
            Arc::new(meta.clone()),
            metrics.registry(),
            shutdown.clone(),
        );
        let groups = Arc::new(Coordinator::new(
            &config,
            topics.clone(),
            metrics.group_rebalances.clone(),
            shutdown.clone(),
        ));
        // The coordinator's writes carry the partition's leader epoch and
        // complete once every in-sync replica has them (acks=all).
        groups.set_replication(Arc::new(OffsetsReplicator::new(replicas.clone())));
        let fetch_sessions = FetchSessions::new(config.max_incremental_fetch_session_cache_slots);
        let quotas = Quotas::new(
            config.quota_window_num,
            i64::try_from(config.quota_window_size_ms).unwrap_or(i64::MAX),
        );
        let authorizer = Authorizer::from_config(&config);
        Broker {
            authorizer,
            inter_broker,
            config,
            cluster_id,
            endpoints,
            topics,
            metrics,
            producer_ids: ProducerIdAllocator::new(meta.clone()),
            groups,
            state: meta.state(),
            meta,
            replicas,
            fetch_sessions,
            quotas,
            telemetry: crate::telemetry::Telemetry::default(),
            txns: Arc::default(),
            appended: watch::channel(0).0,
            shutdown,
            ready: AtomicBool::new(false),
        }
    }

    /// This broker's advertised host and port on `listener`.
    pub(crate) fn own_endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .map(|e| (e.host.as_str(), e.port))
    }

    /// This broker's node id.
    pub(crate) fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Wakes fetches waiting for data.
    pub(crate) fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every later append (subscribe before reading).
    pub(crate) fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A receiver of the shutdown flag.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// True once listeners are bound and recovery is done, until shutdown starts.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !*self.shutdown.borrow()
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the connection may do `op` on the resource, by the ACLs of `state`;
    /// counted in `runnel_authorizer_decisions_total`. Always true with the authorizer off.
    pub(crate) fn authorize(
        &self,
        state: &ClusterState,
        session: &Session,
        op: AclOperation,
        resource: AclResourceType,
        name: &str,
    ) -> bool {
        if !self.authorizer.enabled {
            return true;
        }
        let allowed = self.authorizer.authorize(
            &state.acls,
            &session.principal.read(),
            session.peer.map(|p| p.ip()),
            op,
            resource,
            name,
        );
        self.metrics.authorizer_decisions[usize::from(allowed)].inc();
        allowed
    }
}

/// What the integration tests observe and steer of a running broker (the
/// fields stay crate-private).
impl Broker {
    /// The broker's Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The address the metadata quorum listens on.
    pub fn controller_addr(&self) -> std::net::SocketAddr {
        self.meta.listen_addr()
    }

    /// How many of the topic's partitions this broker holds open (`None`:
    /// the topic is unknown here).
    pub fn open_partitions(&self, topic: &str) -> Option<usize> {
        self.topics.get(topic).map(|t| t.partitions().len())
    }

    /// The partition's local log, while this broker holds it open.
    pub fn partition_log(&self, topic: &str, partition: i32) -> Option<Arc<runnel_log::Log>> {
        self.topics
            .get(topic)
            .and_then(|t| t.partition(partition))
            .map(|p| p.log.clone())
    }

    /// True once `__consumer_offsets` is loaded on this broker.
    pub fn groups_loaded(&self) -> bool {
        self.groups.is_loaded()
    }

    /// Runs the committed-offset expiry as if the clock read `now_ms`;
    /// returns how many offsets were removed.
    pub async fn expire_offsets(&self, now_ms: i64) -> usize {
        self.groups.expire_offsets(now_ms).await
    }

    /// Stops (or resumes) every follower fetch of this broker, as a stalled
    /// follower would.
    pub fn pause_replica_fetching(&self, paused: bool) {
        self.replicas.pause_fetching(paused);
    }

    /// The replication throttle in force (rates and throttled replicas).
    pub fn replication_throttle(&self) -> Arc<ThrottleView> {
        self.replicas.throttle()
    }
}

impl Broker {
    /// The applied cluster metadata (brokers, topics, leaders, ISR, configs).
    pub fn cluster(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// A partition's metadata (replicas, ISR, leader, leader epoch).
    pub fn partition_meta(&self, topic: &str, partition: i32) -> Option<PartitionMeta> {
        self.state.borrow().partition(topic, partition).cloned()
    }

    /// Checks that this broker leads a partition, and the client's view of the
    /// leader epoch (`current_leader_epoch`, -1 = unknown) as Kafka does:
    /// older -> FENCED_LEADER_EPOCH, newer -> UNKNOWN_LEADER_EPOCH. Returns the
    /// current leader epoch.
    pub(crate) fn check_leader(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<i32, ApiError> {
        let Some(meta) = self.partition_meta(topic, partition) else {
            return Err(ApiError::with_message(
                ResponseError::UnknownTopicOrPartition,
                format!("unknown partition {topic}-{partition}"),
            ));
        };
        if current_leader_epoch >= 0 && current_leader_epoch < meta.leader_epoch {
            return Err(ApiError::with_message(
                ResponseError::FencedLeaderEpoch,
                format!(
                    "leader epoch {current_leader_epoch} of {topic}-{partition} is older than {}",
                    meta.leader_epoch
                ),
            ));
        }
        if current_leader_epoch > meta.leader_epoch {
            return Err(ApiError::with_message(
                ResponseError::UnknownLeaderEpoch,
                format!(
                    "leader epoch {current_leader_epoch} of {topic}-{partition} is newer than {}",
                    meta.leader_epoch
                ),
            ));
        }
        if meta.leader != self.node_id() {
            let code = if meta.leader == NO_LEADER {
                ResponseError::LeaderNotAvailable
            } else {
                ResponseError::NotLeaderOrFollower
            };
            return Err(ApiError::with_message(
                code,
                format!(
                    "broker {} does not lead {topic}-{partition}",
                    self.node_id()
                ),
            ));
        }
        Ok(meta.leader_epoch)
    }

    /// Proposes a metadata change and returns once it is applied here and the
    /// local logs (and the broker's reactions, such as removing a deleted
    /// topic's committed offsets) reflect it.
    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, ApiError> {
        let applied = self.meta.propose(command).await.map_err(ApiError::from)?;
        let index = self.state.borrow().applied_index;
        self.wait_synced(index).await?;
        Ok(applied)
    }

    /// Before answering that a topic or partition does not exist: waits until this broker's
    /// metadata includes everything the quorum had committed (a read barrier, see
    /// [`MetaNode::read_barrier`]), so a topic a client just created through another broker is
    /// seen here. Only a lookup that missed pays for it. A failure (no controller) is logged and
    /// the caller answers from what it has.
    pub(crate) async fn catch_up_before_unknown(&self, what: &str) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            result = self.meta.read_barrier() => {
                if let Err(err) = result {
                    tracing::debug!(%err, what, "read barrier failed; answering from local metadata");
                }
            }
            _ = wait_shutdown(&mut shutdown) => {}
        }
    }

    /// Counts `bytes` of `kind` (for [`QuotaKind::Request`]: nanoseconds of thread time) for
    /// `client_id` against its quota, if one applies; when the client is over it, mutes the
    /// connection for the throttle time, which is returned (ms, for the response's
    /// `throttle_time_ms`). Without authentication every client is Kafka's ANONYMOUS user.
    pub(crate) fn record_quota(
        &self,
        kind: QuotaKind,
        client_id: &str,
        bytes: u64,
        mute: &Mute,
    ) -> i32 {
        let state = self.cluster();
        if state.client_quotas.is_empty() {
            return 0;
        }
        let now = std::time::Instant::now();
        let amount = match kind {
            QuotaKind::Request => crate::quota::percent_seconds(bytes),
            QuotaKind::Produce | QuotaKind::Fetch => bytes as f64,
        };
        let throttle = self.quotas.record(
            &state.client_quotas,
            kind,
            ANONYMOUS,
            client_id,
            amount,
            crate::quota::millis(now),
        );
        if throttle > 0 {
            mute.until(now + std::time::Duration::from_millis(throttle));
            self.metrics
                .quota_throttled
                .with_label_values(&[kind.key()])
                .inc();
        }
        i32::try_from(throttle).unwrap_or(i32::MAX)
    }

    /// Takes back `bytes` of `kind` counted for `client_id` (a throttled fetch sends nothing).
    pub(crate) fn unrecord_quota(&self, kind: QuotaKind, client_id: &str, bytes: u64) {
        let state = self.cluster();
        self.quotas.unrecord(
            &state.client_quotas,
            kind,
            ANONYMOUS,
            client_id,
            bytes,
            crate::quota::millis(std::time::Instant::now()),
        );
    }

    /// Waits until the local logs match the metadata up to `index` (or shutdown).
    pub(crate) async fn wait_synced(&self, index: u64) -> Result<(), ApiError> {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = self.topics.wait_synced(index) => Ok(()),
            _ = wait_shutdown(&mut shutdown) => Err(ApiError::from(MetaError::ShuttingDown)),
        }
    }

    /// Creates `__consumer_offsets` through the quorum on first use, as Kafka
    /// does: replication factor `offsets_topic_replication_factor`, clamped to
    /// the live brokers (Kafka's dev-setup behaviour), so a single broker gets 1.
    pub(crate) async fn ensure_offsets_topic(&self) -> Result<(), GroupError> {
        if self.topics.get(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let live = self.cluster().live_brokers().count().max(1);
        let rf = i16::try_from(live)
            .unwrap_or(i16::MAX)
            .min(self.config.offsets_topic_replication_factor)
            .max(1);
        let command = Command::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            id: uuid::Uuid::new_v4(),
            placement: Placement::Auto {
                partitions: self.config.offsets_topic_num_partitions,
                replication_factor: rf,
            },
            configs: crate::group::coordinator::offsets_topic_configs(),
        };
        match self.meta.propose(command).await {
            Ok(_) => {
                tracing::info!(
                    partitions = self.config.offsets_topic_num_partitions,
                    replication_factor = rf,
                    "created internal topic {OFFSETS_TOPIC}"
                );
            }
            Err(MetaError::Rejected(Rejection::TopicExists(_))) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot create {OFFSETS_TOPIC}");
                return Err(GroupError::CoordinatorNotAvailable);
            }
        }
        let index = self.state.borrow().applied_index;
        self.wait_synced(index)
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        self.groups.wait_following(index).await;
        if self.topics.get(OFFSETS_TOPIC).is_some() {
            Ok(())
        } else {
            Err(GroupError::CoordinatorNotAvailable)
        }
    }

    /// Creates `__transaction_state` if it does not exist yet (the first
    /// FindCoordinator for a transactional id does, as in Kafka) and waits
    /// until this broker follows its leadership.
    pub(crate) async fn ensure_transaction_topic(&self) -> Result<(), ApiError> {
        use crate::txn::TXN_TOPIC;
        let unavailable = || {
            ApiError::with_message(
                kafka_protocol::ResponseError::CoordinatorNotAvailable,
                format!("{TXN_TOPIC} is not available yet"),
            )
        };
        if self.topics.get(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let live = self.cluster().live_brokers().count().max(1);
        let rf = i16::try_from(live)
            .unwrap_or(i16::MAX)
            .min(self.config.transaction_state_log_replication_factor)
            .max(1);
        let min_isr = self
            .config
            .transaction_state_log_min_isr
            .min(i32::from(rf))
            .max(1);
        let command = Command::CreateTopic {
            name: TXN_TOPIC.to_string(),
            id: uuid::Uuid::new_v4(),
            placement: Placement::Auto {
                partitions: self.config.transaction_state_log_num_partitions,
                replication_factor: rf,
            },
            configs: crate::txn::topic_configs(min_isr),
        };
        match self.meta.propose(command).await {
            Ok(_) => tracing::info!(
                partitions = self.config.transaction_state_log_num_partitions,
                replication_factor = rf,
                "created internal topic {TXN_TOPIC}"
            ),
            Err(MetaError::Rejected(Rejection::TopicExists(_))) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot create {TXN_TOPIC}");
                return Err(unavailable());
            }
        }
        let index = self.state.borrow().applied_index;
        self.wait_synced(index).await.map_err(|_| unavailable())?;
        if self.topics.get(TXN_TOPIC).is_some() {
            Ok(())
        } else {
            Err(unavailable())
        }
    }

    /// Keeps the local replicas in line with the applied metadata until
    /// shutdown: opens and deletes partition logs, applies config changes, and
    /// removes the metrics and committed offsets of deleted topics.
    pub(crate) async fn run_metadata_sync(self: Arc<Self>) {
        let mut rx = self.meta.state();
        let mut shutdown = self.shutdown.clone();
        let mut retry = false;
        let mut seen: Option<Arc<ClusterState>> = None;
        loop {
            let state = rx.borrow_and_update().clone();
            // Elections are counted between consecutive states seen here (a
            // burst of applied commands may be seen as one change).
            if let Some(prev) = seen.filter(|p| p.applied_index < state.applied_index) {
                self.metrics
                    .cluster
                    .count_elections(&prev, &state, self.node_id());
            }
            seen = Some(state.clone());
            if retry || state.applied_index > self.topics.synced_index() {
                retry = self.sync_once(state).await;
            }
            // A partition that failed to open (disk full, permissions) is
            // retried every second until it opens or is unassigned.
            let pause = async {
                if retry {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = wait_shutdown(&mut shutdown) => return,
                changed = rx.changed() => if changed.is_err() { return },
                _ = pause => {}
            }
        }
    }

    /// One sync; returns whether some partition failed to open.
    async fn sync_once(&self, state: Arc<ClusterState>) -> bool {
        let topics = self.topics.clone();
        let node = self.node_id();
        let s = state.clone();
        let report = match tokio::task::spawn_blocking(move || topics.sync(&s, node)).await {
            Ok(report) => report,
            Err(err) => {
                tracing::error!(error = %err, "metadata sync task failed");
                return true;
            }
        };
        for (name, _) in &report.removed_topics {
            self.metrics.remove_topic(name);
            // As Kafka: committed offsets of a deleted topic go too, so a
            // topic recreated under the name starts fresh.
            self.groups.remove_topic_offsets(name).await;
        }
        // The replica manager saw this metadata before these logs existed:
        // give the new partitions their roles now (a follower starts fetching
        // at once) rather than on its next periodic pass. A new leader writes
        // its epoch checkpoint (fsyncs), so many partitions go in parallel.
        let opened: Vec<(String, i32, Arc<runnel_log::Log>)> = report
            .opened
            .iter()
            .filter_map(|(name, index)| {
                let partition = self.topics.get(name)?.partition(*index)?;
                Some((name.clone(), *index, partition.log.clone()))
            })
            .collect();
        let replicas = self.replicas.clone();
        let roles = tokio::task::spawn_blocking(move || {
            crate::parallel::map(
                &opened,
                crate::parallel::IO_THREADS,
                |(name, index, log)| {
                    replicas.replica(name, *index, log);
                },
            );
        });
        if let Err(err) = roles.await {
            tracing::error!(error = %err, "giving new partitions their roles failed");
        }
        if !report.opened.is_empty() || !report.closed.is_empty() {
            tracing::debug!(
                opened = report.opened.len(),
                closed = report.closed.len(),
                index = state.applied_index,
                "local replicas follow the metadata"
            );
        }
        self.topics.mark_synced(state.applied_index);
        !report.failed.is_empty()
    }
}
