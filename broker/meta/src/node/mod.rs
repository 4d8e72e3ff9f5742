//! [`MetaNode`]: one broker's member of the metadata quorum — Raft storage on
//! disk, the Raft network, command forwarding to the controller, broker
//! heartbeats, and the controller's timers (session expiry, preferred-leader
//! rebalance).
//!
//! This file has the API and the shared state ([`Inner`]) with proposing and
//! forwarding; joining and heartbeats are in `membership.rs`, the
//! controller's timers in `controller.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, RaftError};
use openraft::{BasicNode, Config, RaftMetrics, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::MetaConfig;
use crate::error::MetaError;
use crate::metrics::MetaMetrics;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::rpc::{self, CallError, Forwarded, Handler, Pool, Request, Response};
use crate::raft::state_machine::StateMachine;
use crate::raft::{NodeId, Raft};
use crate::types::{Applied, BrokerId, BrokerInfo, ClusterState, Command};

mod controller;
mod membership;

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
    /// On the leader only: the last log index each other member is known to hold (from
    /// replication); empty elsewhere.
    pub matched: BTreeMap<BrokerId, u64>,
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

        let pool = Arc::new(Pool::new(config.tls.as_ref()));
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
            inner.config.tls.clone(),
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

    /// A read barrier: returns once this node's [`MetaNode::state`] includes every command the
    /// quorum had committed when it was called (Raft's ReadIndex, asked of the leader), so a
    /// broker can answer "no such topic" only after seeing what the client may already have
    /// seen elsewhere (a topic created through another broker). Costs a round trip to the
    /// leader and the leader's quorum check; writes nothing.
    pub async fn read_barrier(&self) -> Result<(), MetaError> {
        self.inner
            .read_barrier(Instant::now() + PROPOSE_TIMEOUT)
            .await
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
            matched: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .filter(|(id, _)| to_broker_id(**id) != self.inner.config.node_id)
                        .filter_map(|(id, log)| Some((to_broker_id(*id), log.as_ref()?.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Controlled shutdown, the first step of a clean stop: asks the
    /// controller to move leadership of this broker's partitions to other
    /// in-sync replicas and to take it out of every ISR
    /// ([`Command::ControlledShutdown`]), retrying while no controller is
    /// reachable until `deadline`. Returns once the command is applied here;
    /// the broker then watches [`MetaNode::state`] for the moves to land.
    /// [`MetaError::ShuttingDown`] when this broker never registered.
    pub async fn controlled_shutdown(&self, deadline: Instant) -> Result<Applied, MetaError> {
        let inner = &self.inner;
        let registered = inner.registration.lock().clone();
        let Some(broker) = registered else {
            return Err(MetaError::ShuttingDown);
        };
        let command = Command::ControlledShutdown {
            id: broker.id,
            incarnation: broker.incarnation,
        };
        loop {
            match inner.propose(command.clone(), deadline).await {
                Err(e) if is_retriable(&e) && Instant::now() + RETRY_PAUSE < deadline => {
                    tracing::debug!(broker = broker.id, error = %e, "controlled shutdown request will be retried");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return other,
            }
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

    /// Raft's ReadIndex on this node, which must be the leader: confirms the leadership with a
    /// quorum (so no newer leader can have committed more) and returns the index every
    /// linearizable read must see, once applied here.
    async fn local_read_index(&self, deadline: Instant) -> Result<u64, MetaError> {
        match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
            Ok(Ok(read)) => Ok(read.map_or(0, |l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(MetaError::NoController(match f.leader_id {
                    Some(leader) => format!("not the controller; node {leader} is"),
                    None => "no controller elected".into(),
                }))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                Err(MetaError::NoController(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(fatal_error(&f)),
            Err(_) => Err(MetaError::Timeout(
                "the controller did not confirm its leadership in time".into(),
            )),
        }
    }

    /// Waits until this node has applied everything the quorum had committed when it was
    /// called (the leader's ReadIndex), asking the leader wherever it is; retried while no
    /// leader is known or reachable, until `deadline`.
    async fn read_barrier(&self, deadline: Instant) -> Result<(), MetaError> {
        loop {
            let m = self.wait_leader(deadline).await?;
            let leader = m.current_leader.unwrap_or(self.id);
            let attempt = if leader == self.id {
                self.local_read_index(deadline).await
            } else {
                match Self::node_addr(&m, leader) {
                    Some(addr) => {
                        let timeout = deadline.saturating_duration_since(Instant::now());
                        match self.pool.call(&addr, Request::ReadIndex, timeout).await {
                            Ok(Response::ReadIndex(result)) => result,
                            Ok(other) => Err(MetaError::Internal(format!(
                                "unexpected reply to ReadIndex: {other:?}"
                            ))),
                            Err(e) => Err(call_error(e)),
                        }
                    }
                    None => Err(MetaError::NoController(format!(
                        "address of controller {leader} unknown"
                    ))),
                }
            };
            match attempt {
                Ok(index) => return self.wait_applied(index, deadline).await,
                Err(e) if is_retriable(&e) && Instant::now() + RETRY_PAUSE < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
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
            Request::ReadIndex => Response::ReadIndex(
                self.local_read_index(Instant::now() + PROPOSE_TIMEOUT)
                    .await,
            ),
        }
    }
}
