//! [`MetaNode`]: one broker's member of the metadata quorum — Raft storage on
//! disk, the Raft network, command forwarding to the controller, broker
//! heartbeats, and the controller's timers (session expiry, preferred-leader
//! rebalance).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::MetaConfig;
use crate::metrics::MetaMetrics;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::rpc::{self, CallError, Forwarded, Handler, Pool, Request, Response};
use crate::raft::state_machine::StateMachine;
use crate::raft::{NodeId, Raft};
use crate::rebalance;
use crate::types::{Applied, BrokerId, BrokerInfo, ClusterState, Command, Election};
use crate::MetaError;

/// How long a proposal may take end to end (finding a leader, committing, applying here).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of a Join request (the leader waits for the learner to catch up).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the leader waits for a new learner to catch up before promoting it.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// Best-effort self-fencing on clean shutdown.
const SHUTDOWN_FENCE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between retries of a request that found no controller.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between retries of `register`.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Raft view of the quorum, for `runnel cluster describe` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node.
    pub node_id: BrokerId,
    /// Current Raft leader (the controller), if known.
    pub leader: Option<BrokerId>,
    /// Current term.
    pub term: u64,
    /// Voter ids.
    pub voters: Vec<BrokerId>,
    /// Learner (observer) ids.
    pub learners: Vec<BrokerId>,
    /// Last log index known committed.
    pub committed: u64,
    /// Last log index applied to the local state.
    pub applied: u64,
}

/// One broker's metadata node. Cheap to clone.
#[derive(Clone)]
pub struct MetaNode {
    inner: Arc<Inner>,
}

/// A broker session as the controller sees it.
struct Session {
    incarnation: Uuid,
    last_seen: Instant,
}

/// Shared state of a node; every background task holds an `Arc` of it.
struct Inner {
    id: NodeId,
    config: MetaConfig,
    raft: Raft,
    /// Outgoing connections, shared with openraft's network.
    pool: Arc<Pool>,
    listen_addr: SocketAddr,
    /// Address other nodes reach this one at (stored in the membership).
    advertised: String,
    state: watch::Receiver<Arc<ClusterState>>,
    /// Last committed index (written by the log store).
    committed: Arc<AtomicU64>,
    /// Turns true once on shutdown; every task watches it.
    shutdown: watch::Sender<bool>,
    /// Controller only: last heartbeat per broker (reset on becoming leader).
    sessions: Mutex<HashMap<BrokerId, Session>>,
    /// Serializes membership changes on the leader.
    membership_lock: tokio::sync::Mutex<()>,
    /// The broker this node registered (heartbeats and re-registration use it).
    registration: Mutex<Option<BrokerInfo>>,
    /// Background tasks: the listener (awaited on shutdown so its port is free) and the others.
    listener_task: Mutex<Option<JoinHandle<()>>>,
    /// The heartbeat loop, stopped before the shutdown fence so it cannot register again.
    heartbeat_task: Mutex<Option<JoinHandle<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    metrics: MetaMetrics,
}

fn to_node_id(id: BrokerId) -> Result<NodeId, MetaError> {
    NodeId::try_from(id).map_err(|_| MetaError::Internal(format!("invalid broker id {id}")))
}

fn to_broker_id(id: NodeId) -> BrokerId {
    BrokerId::try_from(id).unwrap_or(BrokerId::MAX)
}

fn fatal_error(e: &Fatal<NodeId>) -> MetaError {
    match e {
        Fatal::Stopped => MetaError::ShuttingDown,
        other => MetaError::Internal(other.to_string()),
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MetaError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            MetaError::NoController(match f.leader_id {
                Some(leader) => format!("not the controller; node {leader} is"),
                None => "no controller elected".into(),
            })
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MetaError::NoController(e.to_string())
        }
        RaftError::Fatal(f) => fatal_error(&f),
    }
}

fn call_error(e: CallError) -> MetaError {
    match e {
        CallError::Unreachable { .. } => MetaError::NoController(e.to_string()),
        CallError::Timeout { .. } | CallError::Io { .. } => MetaError::Timeout(e.to_string()),
        CallError::Protocol { .. } => MetaError::Internal(e.to_string()),
    }
}

fn is_retriable(e: &MetaError) -> bool {
    matches!(e, MetaError::NoController(_) | MetaError::Timeout(_))
}

impl MetaNode {
    /// Opens the Raft storage in `config.dir`, binds the metadata listener and
    /// starts Raft. A node with no seeds and no stored state initializes a new
    /// one-voter cluster; a node with seeds and no stored state asks a seed to
    /// add it (as a learner, promoted to voter while there are fewer than
    /// `config.voters`); a node with stored state rejoins as what it was.
    /// Returns once the listener is bound (not waiting for a leader).
    pub async fn start(config: MetaConfig) -> Result<MetaNode, MetaError> {
        let id = to_node_id(config.node_id)?;
        let storage_err = |e: std::io::Error| {
            MetaError::Internal(format!("metadata storage in {}: {e}", config.dir.display()))
        };
        let log_store = LogStore::open(&config.dir).map_err(storage_err)?;
        let committed = log_store.committed_index();
        let (state_tx, state_rx) = watch::channel(Arc::new(ClusterState::default()));
        let state_machine = StateMachine::open(&config.dir, state_tx).map_err(storage_err)?;

        let listener = TcpListener::bind(&config.listen).await.map_err(|e| {
            MetaError::Internal(format!(
                "cannot bind metadata listener {}: {e}",
                config.listen
            ))
        })?;
        let listen_addr = listener
            .local_addr()
            .map_err(|e| MetaError::Internal(format!("metadata listener address: {e}")))?;
        let advertised = config
            .advertised
            .clone()
            .unwrap_or_else(|| listen_addr.to_string());

        let election_ms = u64::try_from(config.election_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(10);
        let raft_config = Config {
            cluster_name: "runnel-metadata".into(),
            election_timeout_min: election_ms,
            election_timeout_max: election_ms.saturating_mul(2),
            heartbeat_interval: (election_ms / 4).max(1),
            install_snapshot_timeout: election_ms.saturating_mul(5).max(5000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            // Purge the whole snapshotted prefix: a lagging node gets the snapshot.
            max_in_snapshot_log_to_keep: 0,
            ..Config::default()
        }
        .validate()
        .map_err(|e| MetaError::Internal(format!("raft config: {e}")))?;

        let pool = Arc::new(Pool::default());
        let network = NetworkFactory {
            id,
            pool: pool.clone(),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| fatal_error(&e))?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            id,
            config,
            raft,
            pool,
            listen_addr,
            advertised,
            state: state_rx,
            committed,
            shutdown,
            sessions: Mutex::new(HashMap::new()),
            membership_lock: tokio::sync::Mutex::new(()),
            registration: Mutex::new(None),
            listener_task: Mutex::new(None),
            heartbeat_task: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            metrics: MetaMetrics::new(),
        });
        *inner.listener_task.lock() = Some(tokio::spawn(rpc::serve(
            listener,
            inner.clone(),
            shutdown_rx,
        )));

        let initialized = inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| fatal_error(&e))?;
        if inner.config.seeds.is_empty() {
            if !initialized {
                let members = BTreeMap::from([(id, BasicNode::new(&inner.advertised))]);
                match inner.raft.initialize(members).await {
                    Ok(()) => tracing::info!(node = id, "initialized a new metadata quorum"),
                    Err(RaftError::APIError(e)) => {
                        tracing::info!(node = id, error = %e, "metadata quorum already initialized")
                    }
                    Err(RaftError::Fatal(f)) => return Err(fatal_error(&f)),
                }
            }
        } else {
            // A new node asks to be added; a known one asks too, which is a
            // no-op unless its advertised address changed (then it is updated).
            let task = tokio::spawn(inner.clone().join_loop());
            inner.tasks.lock().push(task);
        }
        let controller = tokio::spawn(inner.clone().controller_loop());
        inner.tasks.lock().push(controller);
        Ok(MetaNode { inner })
    }

    /// The bound metadata listener address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// The applied state; changes after every applied command. Brokers react to it.
    pub fn state(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.inner.state.clone()
    }

    /// Proposes a command through the controller (forwarded when this node is
    /// not the Raft leader) and returns once it is committed AND applied to this
    /// node's local state, so a caller reading [`MetaNode::state`] afterwards sees it.
    pub async fn propose(&self, command: Command) -> Result<Applied, MetaError> {
        let started = Instant::now();
        let result = self.inner.propose(command, started + PROPOSE_TIMEOUT).await;
        if result.is_ok() {
            self.inner
                .metrics
                .propose_latency
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// The quorum's metrics on this node (the broker registers them).
    pub fn metrics(&self) -> &MetaMetrics {
        &self.inner.metrics
    }

    /// Waits until a controller is known and this node's state has caught up
    /// with the commit index seen at the call (so reads reflect the cluster),
    /// and the cluster id is set.
    pub async fn wait_ready(&self) -> Result<(), MetaError> {
        let inner = &self.inner;
        let mut metrics = inner.raft.metrics();
        let mut shutdown = inner.shutdown.subscribe();
        let mut target = None;
        loop {
            if *shutdown.borrow() {
                return Err(MetaError::ShuttingDown);
            }
            {
                let m = metrics.borrow_and_update();
                if m.current_leader.is_some() {
                    let target =
                        *target.get_or_insert_with(|| inner.committed.load(Ordering::Acquire));
                    let applied = m.last_applied.map_or(0, |l| l.index);
                    if applied >= target && inner.state.borrow().cluster_id.is_some() {
                        return Ok(());
                    }
                }
            }
            // The committed index and the state change without waking the
            // metrics channel every time; a short tick covers them.
            tokio::select! {
                _ = metrics.changed() => {}
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Registers this broker (RegisterBroker, retried until it succeeds or
    /// shutdown) and keeps heartbeating the controller every
    /// `heartbeat_interval`; after a fence it registers again.
    pub async fn register(&self, broker: BrokerInfo) -> Result<(), MetaError> {
        let inner = &self.inner;
        let broker = BrokerInfo {
            fenced: false,
            ..broker
        };
        *inner.registration.lock() = Some(broker.clone());
        let mut backoff = RETRY_PAUSE;
        loop {
            if *inner.shutdown.borrow() {
                return Err(MetaError::ShuttingDown);
            }
            match inner
                .propose(
                    Command::RegisterBroker(broker.clone()),
                    Instant::now() + PROPOSE_TIMEOUT,
                )
                .await
            {
                Ok(_) => break,
                Err(e) if is_retriable(&e) => {
                    tracing::debug!(broker = broker.id, error = %e, "broker registration will be retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
        let mut heartbeat = inner.heartbeat_task.lock();
        if heartbeat.is_none() && !inner.is_shutdown() {
            *heartbeat = Some(tokio::spawn(inner.clone().heartbeat_loop()));
        }
        Ok(())
    }

    /// Raft view of the quorum.
    pub fn quorum(&self) -> QuorumStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        QuorumStatus {
            node_id: self.inner.config.node_id,
            leader: m.current_leader.map(to_broker_id),
            term: m.current_term,
            voters: membership.voter_ids().map(to_broker_id).collect(),
            learners: membership.learner_ids().map(to_broker_id).collect(),
            committed: self.inner.committed.load(Ordering::Acquire),
            applied: m.last_applied.map_or(0, |l| l.index),
        }
    }

    /// Clean shutdown: fences this broker (so leadership moves at once instead
    /// of after the session timeout), then stops Raft and closes the storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        let inner = &self.inner;
        if *inner.shutdown.borrow() {
            return Ok(());
        }
        let heartbeat = inner.heartbeat_task.lock().take();
        if let Some(task) = heartbeat {
            task.abort();
            let _ = task.await;
        }
        let registered = inner.registration.lock().take();
        if let Some(broker) = registered {
            let fence = Command::FenceBroker {
                id: broker.id,
                incarnation: broker.incarnation,
            };
            if let Err(e) = inner
                .propose(fence, Instant::now() + SHUTDOWN_FENCE_TIMEOUT)
                .await
            {
                tracing::info!(broker = broker.id, error = %e, "could not fence this broker on shutdown");
            }
        }
        inner.shutdown.send_replace(true);
        let tasks: Vec<_> = inner.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
        }
        let result = inner.raft.shutdown().await;
        let listener = inner.listener_task.lock().take();
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        result.map_err(|e| MetaError::Internal(format!("raft shutdown: {e}")))
    }
}

impl Inner {
    fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    fn node_addr(m: &RaftMetrics<NodeId, BasicNode>, id: NodeId) -> Option<String> {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// Waits until some leader is known (by metrics), or fails at `deadline`.
    async fn wait_leader(
        &self,
        deadline: Instant,
    ) -> Result<RaftMetrics<NodeId, BasicNode>, MetaError> {
        let mut metrics = self.raft.metrics();
        loop {
            if self.is_shutdown() {
                return Err(MetaError::ShuttingDown);
            }
            let m = metrics.borrow_and_update().clone();
            if m.current_leader.is_some() {
                return Ok(m);
            }
            if let Err(f) = &m.running_state {
                return Err(fatal_error(f));
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(MetaError::ShuttingDown),
                Err(_) => return Err(MetaError::NoController("no controller elected".into())),
            }
        }
    }

    /// Waits until this node has applied `index`.
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), MetaError> {
        let mut metrics = self.raft.metrics();
        let reached = metrics.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index));
        let outcome = tokio::time::timeout_at(deadline, reached)
            .await
            .map(|r| r.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MetaError::ShuttingDown),
            Err(_) => Err(MetaError::Timeout(format!(
                "entry {index} is committed but this node has not applied it yet"
            ))),
        }
    }

    /// Appends `command` at this node, which must be the leader, and waits for it to commit.
    async fn write_local(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<Forwarded, MetaError> {
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, self.raft.client_write(command)).await {
            Ok(Ok(response)) => {
                self.metrics
                    .commit_latency
                    .observe(started.elapsed().as_secs_f64());
                Ok(Forwarded {
                    index: response.log_id.index,
                    result: response.data,
                })
            }
            Ok(Err(e)) => Err(write_error(e)),
            Err(_) => Err(MetaError::Timeout(
                "the command was not committed in time".into(),
            )),
        }
    }

    /// Proposes through the current leader and waits until applied here.
    async fn propose(&self, command: Command, deadline: Instant) -> Result<Applied, MetaError> {
        loop {
            let m = self.wait_leader(deadline).await?;
            let leader = m.current_leader.unwrap_or(self.id);
            let attempt = if leader == self.id {
                self.write_local(command.clone(), deadline).await
            } else {
                match Self::node_addr(&m, leader) {
                    Some(addr) => self.forward(&addr, command.clone(), deadline).await,
                    None => Err(MetaError::NoController(format!(
                        "address of controller {leader} unknown"
                    ))),
                }
            };
            match attempt {
                Ok(forwarded) => {
                    self.wait_applied(forwarded.index, deadline).await?;
                    return forwarded.result.map_err(MetaError::Rejected);
                }
                // Not appended anywhere (no leader, wrong leader, unreachable): safe to retry.
                Err(MetaError::NoController(reason)) => {
                    if Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(MetaError::NoController(reason));
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn forward(
        &self,
        addr: &str,
        command: Command,
        deadline: Instant,
    ) -> Result<Forwarded, MetaError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self
            .pool
            .call(addr, Request::Forward(command), timeout)
            .await
        {
            Ok(Response::Forward(result)) => result,
            Ok(other) => Err(MetaError::Internal(format!(
                "unexpected reply to a forwarded command: {other:?}"
            ))),
            Err(e) => Err(call_error(e)),
        }
    }

    /// Adds `node_id` to the quorum: a learner, promoted to voter while there
    /// are fewer than `config.voters`. A follower passes the request on to the leader.
    async fn join(&self, node_id: NodeId, addr: String, hops: u8) -> Result<(), MetaError> {
        let m = self.metrics();
        match m.current_leader {
            Some(leader) if leader == self.id => {}
            Some(leader) if hops > 0 => {
                let leader_addr = Self::node_addr(&m, leader).ok_or_else(|| {
                    MetaError::NoController(format!("address of controller {leader} unknown"))
                })?;
                let request = Request::Join {
                    node_id,
                    addr,
                    hops: hops - 1,
                };
                return match self.pool.call(&leader_addr, request, JOIN_TIMEOUT).await {
                    Ok(Response::Join(result)) => result,
                    Ok(other) => Err(MetaError::Internal(format!(
                        "unexpected reply to join: {other:?}"
                    ))),
                    Err(e) => Err(call_error(e)),
                };
            }
            _ => {
                return Err(MetaError::NoController(
                    "no controller to join through".into(),
                ))
            }
        }

        let _serialized = self.membership_lock.lock().await;
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let node = BasicNode::new(&addr);
        match membership.get_node(&node_id) {
            Some(known) if known.addr == addr => {}
            Some(_) => {
                let change = ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)]));
                self.raft
                    .change_membership(change, true)
                    .await
                    .map_err(write_error)?;
            }
            None => {
                tracing::info!(node = node_id, %addr, "adding metadata node as learner");
                let added = tokio::time::timeout(
                    CATCH_UP_TIMEOUT,
                    self.raft.add_learner(node_id, node, true),
                )
                .await;
                match added {
                    Ok(result) => {
                        result.map_err(write_error)?;
                    }
                    Err(_) => {
                        return Err(MetaError::Timeout(format!(
                            "learner {node_id} did not catch up"
                        )))
                    }
                }
            }
        }
        let voters: BTreeSet<NodeId> = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if !voters.contains(&node_id) && voters.len() < self.config.voters {
            tracing::info!(node = node_id, "promoting metadata node to voter");
            let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
            self.raft
                .change_membership(change, true)
                .await
                .map_err(write_error)?;
        }
        Ok(())
    }

    /// Records a broker heartbeat (leader only).
    fn heartbeat(&self, broker_id: BrokerId, incarnation: Uuid) -> Result<(), MetaError> {
        let m = self.metrics();
        if m.current_leader != Some(self.id) {
            return Err(MetaError::NoController("not the controller".into()));
        }
        self.sessions.lock().insert(
            broker_id,
            Session {
                incarnation,
                last_seen: Instant::now(),
            },
        );
        Ok(())
    }

    /// Asks the seeds to add this node until one accepts.
    async fn join_loop(self: Arc<Self>) {
        let mut backoff = RETRY_PAUSE;
        loop {
            for seed in &self.config.seeds {
                if self.is_shutdown() {
                    return;
                }
                let request = Request::Join {
                    node_id: self.id,
                    addr: self.advertised.clone(),
                    hops: 2,
                };
                match self.pool.call(seed, request, JOIN_TIMEOUT).await {
                    Ok(Response::Join(Ok(()))) => {
                        tracing::info!(node = self.id, %seed, "joined the metadata quorum");
                        return;
                    }
                    Ok(other) => tracing::debug!(%seed, reply = ?other, "join refused; retrying"),
                    Err(e) => tracing::debug!(%seed, error = %e, "join failed; retrying"),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends this broker's heartbeats and registers it again after a fence.
    async fn heartbeat_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = rpc::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
            }
            let Some(broker) = self.registration.lock().clone() else {
                continue;
            };
            let fenced = self
                .state
                .borrow()
                .brokers
                .get(&broker.id)
                .is_none_or(|b| b.fenced && b.incarnation == broker.incarnation);
            if fenced {
                tracing::info!(
                    broker = broker.id,
                    "this broker is fenced; registering again"
                );
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                if let Err(e) = self
                    .propose(Command::RegisterBroker(broker.clone()), deadline)
                    .await
                {
                    tracing::debug!(broker = broker.id, error = %e, "re-registration failed; will retry");
                }
            }
            let m = self.metrics();
            match m.current_leader {
                Some(leader) if leader == self.id => {
                    let _ = self.heartbeat(broker.id, broker.incarnation);
                }
                Some(leader) => {
                    let Some(addr) = Self::node_addr(&m, leader) else {
                        continue;
                    };
                    let request = Request::Heartbeat {
                        broker_id: broker.id,
                        incarnation: broker.incarnation,
                    };
                    let timeout = self
                        .config
                        .heartbeat_interval
                        .max(Duration::from_millis(100));
                    if let Err(e) = self.pool.call(&addr, request, timeout).await {
                        tracing::debug!(broker = broker.id, error = %e, "heartbeat failed");
                    }
                }
                None => {}
            }
        }
    }

    /// The controller's duties while this node leads: set the cluster id of a
    /// new cluster, fence brokers whose session expired and, every
    /// `leader_imbalance_check_interval`, move leadership back to preferred replicas.
    async fn controller_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let period = (self.config.session_timeout / 4)
            .min(self.config.heartbeat_interval)
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        // Like Kafka, the first imbalance check comes one interval after
        // becoming controller (brokers have had time to come back by then).
        let mut last_rebalance = Instant::now();
        let mut metrics = self.raft.metrics();
        let mut applied = self.state.clone();
        loop {
            // Leadership and applied-state changes wake it at once (a new
            // cluster gets its id without waiting a tick); the tick drives expiry.
            tokio::select! {
                _ = rpc::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
                changed = metrics.changed() => if changed.is_err() { return },
                changed = applied.changed() => if changed.is_err() { return },
            }
            let m = self.metrics();
            if m.current_leader != Some(self.id) || m.state != ServerState::Leader {
                leading = false;
                continue;
            }
            if !leading {
                // A new controller gives every broker a full session.
                leading = true;
                self.metrics.controller_elections.inc();
                self.sessions.lock().clear();
                last_rebalance = Instant::now();
            }
            let state = self.state.borrow().clone();
            if state.cluster_id.is_none() {
                let cluster_id = self
                    .config
                    .cluster_id
                    .clone()
                    .unwrap_or_else(generate_cluster_id);
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                match self
                    .write_local(Command::InitCluster { cluster_id }, deadline)
                    .await
                {
                    Ok(_) => tracing::info!("cluster id set"),
                    Err(e) => {
                        tracing::debug!(error = %e, "could not set the cluster id; will retry")
                    }
                }
            }
            for (id, incarnation) in self.expired_sessions(&state) {
                tracing::warn!(broker = id, "broker session expired; fencing it");
                let fence = Command::FenceBroker { id, incarnation };
                let deadline = Instant::now() + PROPOSE_TIMEOUT;
                if let Err(e) = self.write_local(fence, deadline).await {
                    tracing::debug!(broker = id, error = %e, "fencing failed; will retry");
                }
            }
            if self.config.auto_leader_rebalance
                && last_rebalance.elapsed() >= self.config.leader_imbalance_check_interval
            {
                last_rebalance = Instant::now();
                self.rebalance_preferred_leaders(&state).await;
            }
        }
    }

    /// Elects the preferred leader of the partitions
    /// [`rebalance::preferred_leader_elections`] picks. The state machine
    /// checks each election again when applying it, so a decision on a
    /// slightly stale state is refused or a no-op, never wrong.
    async fn rebalance_preferred_leaders(&self, state: &ClusterState) {
        let chosen = rebalance::preferred_leader_elections(
            state,
            self.config.leader_imbalance_per_broker_percentage,
        );
        if chosen.is_empty() {
            return;
        }
        let mut moved = Vec::new();
        for (topic, partition) in chosen {
            let command = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                election: Election::Preferred,
            };
            let deadline = Instant::now() + PROPOSE_TIMEOUT;
            match self.write_local(command, deadline).await {
                Ok(Forwarded {
                    result: Ok(Applied::Done),
                    ..
                }) => moved.push(format!("{topic}-{partition}")),
                Ok(Forwarded { result, .. }) => {
                    tracing::debug!(%topic, partition, ?result, "preferred-leader election not applied")
                }
                Err(e) => {
                    // Lost leadership, shutting down or no quorum: the next check (on whichever node leads) retries.
                    tracing::debug!(%topic, partition, error = %e, "preferred-leader election failed; stopping this round");
                    break;
                }
            }
        }
        if !moved.is_empty() {
            tracing::info!(
                count = moved.len(),
                partitions = %moved.join(", "),
                "preferred-leader rebalance: leadership moved back to preferred replicas"
            );
        }
    }

    /// Brokers (id, incarnation) whose session expired. A broker the
    /// controller has not heard from since it became leader, or since the
    /// broker registered anew, starts a session now.
    fn expired_sessions(&self, state: &ClusterState) -> Vec<(BrokerId, Uuid)> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let mut expired = Vec::new();
        for broker in state.brokers.values() {
            if broker.fenced {
                sessions.remove(&broker.id);
                continue;
            }
            match sessions.get(&broker.id) {
                Some(s) if s.incarnation == broker.incarnation => {
                    if now.duration_since(s.last_seen) > self.config.session_timeout {
                        expired.push((broker.id, broker.incarnation));
                    }
                }
                _ => {
                    sessions.insert(
                        broker.id,
                        Session {
                            incarnation: broker.incarnation,
                            last_seen: now,
                        },
                    );
                }
            }
        }
        expired
    }
}

impl Handler for Inner {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Request::Forward(command) => Response::Forward(
                self.write_local(command, Instant::now() + PROPOSE_TIMEOUT)
                    .await,
            ),
            Request::Join {
                node_id,
                addr,
                hops,
            } => Response::Join(self.join(node_id, addr, hops).await),
            Request::Heartbeat {
                broker_id,
                incarnation,
            } => Response::Heartbeat(self.heartbeat(broker_id, incarnation)),
        }
    }
}

/// A random Kafka cluster id: a UUID in URL-safe base64 without padding (22 characters).
pub fn generate_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut word = [0u8; 3];
        word[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(word[0]) << 16) | (u32::from(word[1]) << 8) | u32::from(word[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_22_url_safe_characters() {
        let id = generate_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, generate_cluster_id());
    }
}
