//! The [`ReplicaManager`]: owns the replication role of every local
//! partition. It watches the cluster metadata and brings each local
//! [`Replica`] in line with it (leader, follower or offline), announces role
//! changes to the fetcher supervisor (`fetcher.rs`), feeds the leaders' replication
//! state from follower fetches and fsyncs, proposes ISR changes through the
//! [`IsrProposer`], and applies the replication throttle's quotas.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use runnel_log::Log;
use runnel_meta::{BrokerId, ClusterState, Command, PartitionMeta};
use tokio::sync::watch;
use tokio::time::Instant;

use super::isr::IsrProposer;
use super::metrics::ReplicaMetrics;
use super::partition::{replica_isr_len, Replica, Role};
use super::state::{IsrChange, LeaderInit, LeaderState};
use super::throttle::{ReplicationQuota, ThrottleSide, ThrottleView};
use crate::errors::ApiError;
use crate::topics::TopicRegistry;

/// Settings of the replica manager (from the broker config).
#[derive(Debug, Clone)]
pub(crate) struct ReplicaSettings {
    /// This broker's id.
    pub node_id: BrokerId,
    /// `replica_lag_time_max_ms`.
    pub lag_max_ms: i64,
    /// `replica_fetch_max_bytes`: bytes a follower asks for per partition.
    pub fetch_max_bytes: i32,
    /// Broker default `min_insync_replicas`.
    pub min_insync_default: i32,
    /// `log_flush_on_ack`: the leader counts only fsynced data towards the
    /// high watermark (else its log end offset counts).
    pub durable_leader: bool,
    /// Longest a follower fetch waits at the leader for data.
    pub fetch_wait_ms: i32,
    /// Pause after a failed follower fetch or connection before retrying.
    pub retry_backoff: Duration,
    /// How follower connections reach leaders (TLS and SASL of the inter-broker listener).
    pub inter_broker: crate::auth::InterBroker,
}

impl ReplicaSettings {
    /// Defaults for `node_id` (Kafka's defaults).
    pub(crate) fn new(node_id: BrokerId) -> ReplicaSettings {
        ReplicaSettings {
            node_id,
            lag_max_ms: 30_000,
            fetch_max_bytes: 1_048_576,
            min_insync_default: 1,
            durable_leader: true,
            fetch_wait_ms: 500,
            retry_backoff: Duration::from_millis(100),
            inter_broker: crate::auth::InterBroker::default(),
        }
    }
}

type PartitionKey = (String, i32);

/// Owns the replication role of every local partition. See the module docs.
pub(crate) struct ReplicaManager {
    // For spawning fetcher tasks from `&self` methods.
    this: Weak<ReplicaManager>,
    pub(super) settings: ReplicaSettings,
    pub(super) topics: Arc<TopicRegistry>,
    state: watch::Receiver<Arc<ClusterState>>,
    proposer: Arc<dyn IsrProposer>,
    replicas: RwLock<HashMap<PartitionKey, Arc<Replica>>>,
    /// Replication metrics.
    pub metrics: ReplicaMetrics,
    // Bumped when any HW advances, so consumer long polls wake.
    hw_advanced: watch::Sender<u64>,
    // Bumped on every role change (fetchers regroup on it).
    follower_changes: watch::Sender<u64>,
    clock: Instant,
    shutdown: watch::Receiver<bool>,
    // Fault injection: while true, followers send no fetches (tests use it to
    // make a live follower fall behind without fencing its broker).
    pub(super) fetch_paused: watch::Sender<bool>,
    // The throttle settings of the metadata at the applied index they were
    // derived from (recomputed when the metadata moves on).
    throttle_view: Mutex<(u64, Arc<ThrottleView>)>,
    /// Leader-side replication quota (shared by every throttled partition led here).
    pub leader_quota: ReplicationQuota,
    /// Follower-side replication quota (shared by every throttled partition followed here).
    pub follower_quota: ReplicationQuota,
}

impl ReplicaManager {
    /// A manager for the partitions in `topics`, driven by the metadata in `state`.
    pub(crate) fn new(
        settings: ReplicaSettings,
        topics: Arc<TopicRegistry>,
        state: watch::Receiver<Arc<ClusterState>>,
        proposer: Arc<dyn IsrProposer>,
        registry: &prometheus::Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<ReplicaManager> {
        Arc::new_cyclic(|this| ReplicaManager {
            this: this.clone(),
            settings,
            topics,
            state,
            proposer,
            replicas: RwLock::new(HashMap::new()),
            metrics: ReplicaMetrics::new(registry),
            hw_advanced: watch::channel(0).0,
            follower_changes: watch::channel(0).0,
            clock: Instant::now(),
            shutdown,
            fetch_paused: watch::channel(false).0,
            throttle_view: Mutex::new((u64::MAX, Arc::new(ThrottleView::default()))),
            leader_quota: ReplicationQuota::default(),
            follower_quota: ReplicationQuota::default(),
        })
    }

    /// This broker's replication throttle settings from the current metadata;
    /// the quotas follow the configured rates.
    pub(crate) fn throttle(&self) -> Arc<ThrottleView> {
        let state = self.state.borrow().clone();
        let mut cached = self.throttle_view.lock();
        if cached.0 != state.applied_index {
            let view = Arc::new(ThrottleView::new(&state, self.settings.node_id));
            let now = std::time::Instant::now();
            for (quota, rate, side) in [
                (&self.leader_quota, view.leader_rate, ThrottleSide::Leader),
                (
                    &self.follower_quota,
                    view.follower_rate,
                    ThrottleSide::Follower,
                ),
            ] {
                quota.configure(rate, now);
                self.metrics
                    .throttle_rate
                    .with_label_values(&[side.label()])
                    .set(rate.map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX)));
            }
            *cached = (state.applied_index, view);
        }
        cached.1.clone()
    }

    /// Whether the leader throttles what it sends `follower` of `replica`:
    /// the partition is listed for this broker in
    /// `leader.replication.throttled.replicas` and the follower is not in the
    /// ISR (Kafka never throttles in-sync followers, so acks=all stays fast).
    pub(crate) fn leader_throttled(&self, replica: &Replica, follower: BrokerId) -> bool {
        self.throttle()
            .leader_throttled(&replica.topic, replica.partition, self.settings.node_id)
            && !replica.is_in_sync(follower)
    }

    /// Whether this follower throttles its fetching of `replica`: listed for
    /// this broker in `follower.replication.throttled.replicas` and not in the ISR.
    pub(crate) fn follower_throttled(&self, view: &ThrottleView, replica: &Replica) -> bool {
        let me = self.settings.node_id;
        view.follower_throttled(&replica.topic, replica.partition, me)
            && !self
                .state
                .borrow()
                .partition(&replica.topic, replica.partition)
                .is_some_and(|m| m.isr.contains(&me))
    }

    /// The quota of one side.
    pub(crate) fn quota(&self, side: ThrottleSide) -> &ReplicationQuota {
        match side {
            ThrottleSide::Leader => &self.leader_quota,
            ThrottleSide::Follower => &self.follower_quota,
        }
    }

    /// Pays `bytes` of throttled replication on `side`.
    pub(crate) fn record_throttled(&self, side: ThrottleSide, bytes: u64) {
        if bytes > 0 {
            self.quota(side).record(bytes, std::time::Instant::now());
            self.metrics
                .throttled_bytes
                .with_label_values(&[side.label()])
                .inc_by(bytes);
        }
    }

    /// Counts a throttled partition held back on `side`.
    pub(crate) fn held_back(&self, side: ThrottleSide) {
        self.metrics
            .throttled_fetches
            .with_label_values(&[side.label()])
            .inc();
    }

    /// Milliseconds on the manager's monotonic clock (pausable in tests).
    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// A receiver that sees every later HW advance (consumer long polls wait on it).
    pub(crate) fn subscribe_hw(&self) -> watch::Receiver<u64> {
        self.hw_advanced.subscribe()
    }

    pub(super) fn notify_hw(&self) {
        self.hw_advanced.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// `min.insync.replicas` of a topic: its override, else the broker default.
    pub(crate) fn min_insync(&self, topic: &str) -> usize {
        self.topics
            .get(topic)
            .and_then(|t| t.min_insync_replicas())
            .unwrap_or(self.settings.min_insync_default)
            .max(1) as usize
    }

    /// The replica of a local partition, its role brought in line with the
    /// metadata first. A partition the metadata does not know (a broker
    /// without a quorum view of it) is led here alone, as a single broker.
    pub(crate) fn replica(&self, topic: &str, partition: i32, log: &Arc<Log>) -> Arc<Replica> {
        let meta = self.state.borrow().partition(topic, partition).cloned();
        self.reconcile(topic, partition, log, meta.as_ref())
    }

    /// Gives one partition the role its metadata says (idempotent).
    fn reconcile(
        &self,
        topic: &str,
        partition: i32,
        log: &Arc<Log>,
        meta: Option<&PartitionMeta>,
    ) -> Arc<Replica> {
        let key = (topic.to_string(), partition);
        let existing = self.replicas.read().get(&key).cloned();
        let me = self.settings.node_id;
        let standalone;
        let meta = match meta {
            Some(m) => m,
            None => {
                let epoch = log.latest_epoch().unwrap_or(crate::runtime::LEADER_EPOCH);
                standalone = PartitionMeta {
                    replicas: vec![me],
                    isr: vec![me],
                    leader: me,
                    leader_epoch: epoch,
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                };
                &standalone
            }
        };
        if let Some(replica) = existing.filter(|r| Arc::ptr_eq(&r.log, log)) {
            if self.update_role(&replica, meta) {
                replica.bump();
                self.after_role_change();
            }
            return replica;
        }
        let replica = Arc::new(Replica::new(
            topic,
            partition,
            log.clone(),
            Role::Offline { leader_epoch: -1 },
        ));
        self.update_role(&replica, meta);
        let mut map = self.replicas.write();
        // Another caller may have raced us; keep the first.
        let replica = map
            .entry(key)
            .and_modify(|r| {
                if !Arc::ptr_eq(&r.log, log) {
                    *r = replica.clone();
                }
            })
            .or_insert_with(|| replica.clone())
            .clone();
        drop(map);
        self.after_role_change();
        replica
    }

    /// Applies `meta` to the replica's role; true when the role or epoch changed.
    fn update_role(&self, replica: &Replica, meta: &PartitionMeta) -> bool {
        let me = self.settings.node_id;
        let now = self.now_ms();
        let mut role = replica.role.lock();
        let current_epoch = match &*role {
            Role::Leader(state) => state.leader_epoch(),
            Role::Follower { leader_epoch, .. } | Role::Offline { leader_epoch } => *leader_epoch,
        };
        // Callers read their snapshot before taking the role lock (request
        // handlers, and the manager's pass over every partition), so a newer
        // snapshot may have been applied in between. Leader epochs and
        // partition epochs only grow: an older one is stale and is ignored, as
        // Kafka ignores a LeaderAndIsr of an older epoch. Applying it would
        // take back a leadership, fencing the log against the epoch this
        // broker still leads, or revive a leadership that has moved on.
        if meta.leader_epoch < current_epoch {
            return false;
        }
        match &mut *role {
            Role::Leader(state)
                if meta.leader_epoch == state.leader_epoch()
                    && meta.partition_epoch < state.partition_epoch() =>
            {
                return false;
            }
            Role::Leader(state)
                if meta.leader == me && meta.leader_epoch == state.leader_epoch() =>
            {
                if meta.partition_epoch != state.partition_epoch()
                    || meta.isr != state.isr()
                    || meta.replicas != state.replicas()
                {
                    let advanced = state.update_assignment(
                        meta.partition_epoch,
                        meta.replicas.clone(),
                        meta.isr.clone(),
                        now,
                    );
                    drop(role);
                    if replica.apply_hw(advanced) {
                        self.notify_hw();
                    }
                    replica.bump();
                }
                return false;
            }
            Role::Follower {
                leader,
                leader_epoch,
                ..
            } if *leader == meta.leader && *leader_epoch == meta.leader_epoch => return false,
            Role::Offline { leader_epoch }
                if meta.leader == runnel_meta::NO_LEADER && *leader_epoch == meta.leader_epoch =>
            {
                return false
            }
            _ => {}
        }
        let log = &replica.log;
        end_leadership(&role, log);
        *role = if meta.leader == me {
            // Record the epoch start before accepting any produce under it, so
            // OffsetForLeaderEpoch answers for it at once.
            if let Err(err) = log.assign_epoch_start(meta.leader_epoch) {
                tracing::error!(topic = %replica.topic, partition = replica.partition, error = %err,
                    "cannot record the new leader epoch; not leading");
                Role::Offline {
                    leader_epoch: meta.leader_epoch,
                }
            } else {
                let leo = log.log_end_offset();
                let position = if self.settings.durable_leader {
                    log.synced_offset()
                } else {
                    leo
                };
                let state = LeaderState::new(
                    LeaderInit {
                        me,
                        leader_epoch: meta.leader_epoch,
                        partition_epoch: meta.partition_epoch,
                        replicas: meta.replicas.clone(),
                        isr: meta.isr.clone(),
                        epoch_start_offset: leo,
                        log_end_offset: leo,
                        leader_position: position,
                        high_watermark: log.high_watermark(),
                        lag_max_ms: self.settings.lag_max_ms,
                    },
                    now,
                );
                log.set_high_watermark(state.high_watermark());
                tracing::info!(topic = %replica.topic, partition = replica.partition,
                    leader_epoch = meta.leader_epoch, log_end_offset = leo,
                    high_watermark = state.high_watermark(), isr = ?meta.isr, "leading partition");
                Role::Leader(Box::new(state))
            }
        } else if meta.leader == runnel_meta::NO_LEADER {
            Role::Offline {
                leader_epoch: meta.leader_epoch,
            }
        } else {
            tracing::info!(topic = %replica.topic, partition = replica.partition,
                leader = meta.leader, leader_epoch = meta.leader_epoch, "following partition");
            Role::Follower {
                leader: meta.leader,
                leader_epoch: meta.leader_epoch,
                needs_truncation: true,
            }
        };
        true
    }

    fn after_role_change(&self) {
        self.follower_changes
            .send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Bumped whenever a local replica's role changes, so the fetcher
    /// supervisor starts a fetcher for a newly followed leader and a fetcher
    /// waiting at a leader regroups when the partitions it follows change.
    pub(super) fn subscribe_follower_changes(&self) -> watch::Receiver<u64> {
        self.follower_changes.subscribe()
    }

    /// The brokers that lead at least one local follower replica.
    pub(super) fn followed_leaders(&self) -> Vec<BrokerId> {
        let mut leaders: Vec<BrokerId> = self
            .replicas
            .read()
            .values()
            .filter_map(|r| match &*r.role.lock() {
                Role::Follower { leader, .. } => Some(*leader),
                _ => None,
            })
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        leaders
    }

    fn self_arc(&self) -> Option<Arc<ReplicaManager>> {
        self.this.upgrade()
    }

    /// A follower (`follower`, Fetch with replica_id) fetched `replica` from
    /// `offset`: it holds every offset below durably. May advance the HW
    /// (waking acks=all waiters and consumers) and propose an ISR expansion.
    pub(crate) fn follower_fetch(
        &self,
        replica: &Arc<Replica>,
        follower: BrokerId,
        offset: i64,
    ) -> Result<(), ApiError> {
        let (change, advanced) = replica.follower_fetched(follower, offset, self.now_ms())?;
        if advanced {
            self.notify_hw();
        }
        if let Some(change) = change {
            // A follower in controlled shutdown keeps fetching until it stops,
            // but the controller refuses it in any ISR: do not ask.
            let me = self.settings.node_id;
            let stopping = {
                let state = self.state.borrow();
                change
                    .isr
                    .iter()
                    .any(|&b| b != me && state.in_controlled_shutdown(b))
            };
            if stopping {
                replica.drop_isr_change(change.partition_epoch);
            } else {
                self.propose(replica.clone(), change);
            }
        }
        Ok(())
    }

    /// Brings every local replica's role in line with the applied metadata
    /// now, rather than on the manager's next pass (controlled shutdown: the
    /// produces waiting on moved partitions are answered at once).
    pub(crate) fn reconcile_now(&self) {
        self.reconcile_all();
    }

    /// The leader's log was fsynced (acks=all, or the background sync after acks=0/1).
    pub(crate) fn leader_synced(&self, replica: &Replica) {
        if replica.synced() {
            self.notify_hw();
        }
    }

    /// The leader appended up to `end`.
    pub(crate) fn leader_appended(&self, replica: &Replica, end: i64) {
        if replica.appended(end, self.settings.durable_leader) {
            self.notify_hw();
        }
    }

    /// Starts the leader's fsync of `replica` up to `end` (exclusive) on the
    /// blocking pool at once, and counts it towards the HW as soon as it is
    /// done, whether or not anyone awaits the handle. A produce starts it when
    /// it appends rather than when its response is next in line (a connection
    /// answers in order), so the fsyncs of pipelined requests overlap the
    /// replication of the ones before them instead of following it. A failed
    /// fsync poisons the log (see [`Log::sync`]) and is the handle's result.
    pub(crate) fn sync_leader(
        self: &Arc<Self>,
        replica: Arc<Replica>,
        end: i64,
    ) -> tokio::task::JoinHandle<runnel_log::Result<()>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let synced = replica.log.sync(end);
            match &synced {
                Ok(()) => this.leader_synced(&replica),
                Err(err) => {
                    tracing::error!(topic = %replica.topic, partition = replica.partition,
                        error = %err, "fsync failed; partition is poisoned")
                }
            }
            synced
        })
    }

    /// Sends an ISR change to the quorum in the background. A refusal (stale
    /// partition epoch, lost leadership) clears the in-flight change; the
    /// metadata that caused it arrives through the state watch.
    fn propose(&self, replica: Arc<Replica>, change: IsrChange) {
        let Some(this) = self.self_arc() else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let shrink = change.isr.len() < replica_isr_len(&replica);
            let command = Command::AlterIsr {
                topic: replica.topic.clone(),
                partition: replica.partition,
                leader: this.settings.node_id,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr.clone(),
            };
            tracing::info!(topic = %replica.topic, partition = replica.partition,
                isr = ?change.isr, partition_epoch = change.partition_epoch,
                "proposing ISR {}", if shrink { "shrink" } else { "expansion" });
            match this.proposer.alter_isr(command).await {
                Ok(()) => {
                    if shrink {
                        this.metrics.isr_shrinks.inc();
                    } else {
                        this.metrics.isr_expands.inc();
                    }
                    // Apply at once if the watch has it (propose returns once applied here).
                    this.refresh(&replica);
                }
                Err(err) => {
                    tracing::warn!(topic = %replica.topic, partition = replica.partition,
                        error = %err, "ISR change refused");
                    tokio::time::sleep(this.settings.retry_backoff).await;
                    let mut role = replica.role.lock();
                    if let Role::Leader(state) = &mut *role {
                        if state.partition_epoch() == change.partition_epoch {
                            state.isr_change_failed();
                        }
                    }
                    drop(role);
                    this.refresh(&replica);
                }
            }
        });
    }

    fn refresh(&self, replica: &Replica) {
        let meta = self
            .state
            .borrow()
            .partition(&replica.topic, replica.partition)
            .cloned();
        if let Some(meta) = meta {
            if self.update_role(replica, &meta) {
                replica.bump();
            }
        }
    }

    /// Partitions this broker follows from `leader`.
    pub(crate) fn following(&self, leader: BrokerId) -> Vec<Arc<Replica>> {
        self.replicas
            .read()
            .values()
            .filter(|r| matches!(&*r.role.lock(), Role::Follower { leader: l, .. } if *l == leader))
            .cloned()
            .collect()
    }

    /// The Kafka address (`host:port`) of a live broker.
    pub(crate) fn broker_addr(&self, id: BrokerId) -> Option<String> {
        self.state
            .borrow()
            .brokers
            .get(&id)
            .filter(|b| !b.fenced)
            .map(|b| format!("{}:{}", b.host, b.port))
    }

    /// Stops (`true`) or resumes this broker's follower fetching; the broker
    /// stays registered, so its leaders see it fall behind. For fault-injection tests.
    pub(crate) fn pause_fetching(&self, paused: bool) {
        self.fetch_paused.send_replace(paused);
    }

    /// Waits while fetching is paused.
    pub(super) async fn wait_unpaused(&self) {
        let mut rx = self.fetch_paused.subscribe();
        let _ = rx.wait_for(|paused| !*paused).await;
    }

    /// A receiver of the shutdown flag.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// How often the manager re-checks ISRs, metrics and fetcher tasks: half
    /// the replica lag limit, between 10 ms and 1 s.
    pub(super) fn tick(&self) -> Duration {
        Duration::from_millis((self.settings.lag_max_ms / 2).clamp(10, 1000) as u64)
    }

    /// Brings every local partition in line with the metadata, then keeps
    /// doing so on every metadata change; periodically shrinks ISRs, refreshes
    /// metrics and checkpoints high watermarks. Runs until shutdown.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let mut tick = tokio::time::interval(self.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_checkpoint = Instant::now();
        // A closed metadata channel (no quorum: a fixed view) still gets ticks.
        let mut metadata_open = true;
        loop {
            state.borrow_and_update();
            self.reconcile_all();
            tokio::select! {
                _ = crate::runtime::wait_shutdown(&mut shutdown) => break,
                changed = state.changed(), if metadata_open => if changed.is_err() { metadata_open = false },
                _ = tick.tick() => {
                    self.shrink_all();
                    self.update_metrics();
                    if last_checkpoint.elapsed() >= Duration::from_secs(5) {
                        last_checkpoint = Instant::now();
                        let replicas: Vec<_> = self.replicas.read().values().cloned().collect();
                        let _ = tokio::task::spawn_blocking(move || {
                            for r in replicas {
                                if let Err(err) = r.log.checkpoint_high_watermark() {
                                    tracing::warn!(topic = %r.topic, partition = r.partition, error = %err, "cannot checkpoint the high watermark");
                                }
                            }
                        }).await;
                    }
                }
            }
        }
    }

    /// One pass over the local partitions (also retried on every tick, since
    /// logs of newly assigned partitions may open after the metadata change).
    fn reconcile_all(&self) {
        let cluster = self.state.borrow().clone();
        let me = self.settings.node_id;
        let mut seen = std::collections::HashSet::new();
        let mut local = Vec::new();
        for topic in self.topics.list() {
            for partition in topic.partitions() {
                let meta = cluster.partition(&topic.name, partition.index);
                if meta.is_some_and(|m| !m.replicas.contains(&me)) {
                    continue;
                }
                seen.insert((topic.name.clone(), partition.index));
                local.push((topic.clone(), partition, meta));
            }
        }
        // A new leadership writes the epoch checkpoint (fsyncs): after a
        // restart every partition does, so many go at once.
        let threads = if local.len() > 64 {
            crate::parallel::IO_THREADS
        } else {
            1
        };
        crate::parallel::map(&local, threads, |(topic, partition, meta)| {
            self.reconcile(&topic.name, partition.index, &partition.log, *meta);
        });
        // A partition opened (and given its role by the metadata sync) while
        // this pass ran is not in `seen` but is local: it stays. Removing it
        // would fence its log against the epoch it leads.
        let now = self.state.borrow().clone();
        let still_local = |(topic, index): &PartitionKey, log: &Arc<Log>| {
            self.topics
                .get(topic)
                .and_then(|t| t.partition(*index))
                .is_some_and(|p| Arc::ptr_eq(&p.log, log))
                && now
                    .partition(topic, *index)
                    .is_none_or(|m| m.replicas.contains(&me))
        };
        let removed: Vec<Arc<Replica>> = {
            let mut map = self.replicas.write();
            let gone: Vec<PartitionKey> = map
                .iter()
                .filter(|(k, r)| !seen.contains(*k) && !still_local(k, &r.log))
                .map(|(k, _)| k.clone())
                .collect();
            gone.iter().filter_map(|k| map.remove(k)).collect()
        };
        for replica in removed {
            let mut role = replica.role.lock();
            end_leadership(&role, &replica.log);
            *role = Role::Offline {
                leader_epoch: i32::MAX,
            };
            drop(role);
            replica.bump();
        }
    }

    fn shrink_all(&self) {
        let now = self.now_ms();
        let replicas: Vec<_> = self.replicas.read().values().cloned().collect();
        for replica in replicas {
            let change = match &mut *replica.role.lock() {
                Role::Leader(state) => {
                    state.on_leader_append(replica.log.log_end_offset());
                    state.maybe_shrink(now)
                }
                _ => None,
            };
            if let Some(change) = change {
                self.propose(replica, change);
            }
        }
    }

    fn update_metrics(&self) {
        // Keeps the throttle gauges (and quotas) current without traffic.
        let _ = self.throttle();
        let replicas: Vec<_> = self.replicas.read().values().cloned().collect();
        let mut under = 0;
        self.metrics.follower_lag.reset();
        for replica in replicas {
            if let Role::Leader(state) = &*replica.role.lock() {
                if state.isr().len() < state.replicas().len() {
                    under += 1;
                }
                let partition = replica.partition.to_string();
                for (follower, lag) in state.follower_lags() {
                    self.metrics
                        .follower_lag
                        .with_label_values(&[
                            replica.topic.as_str(),
                            partition.as_str(),
                            follower.to_string().as_str(),
                        ])
                        .set(lag);
                }
            }
        }
        self.metrics.under_replicated.set(under);
    }
}

/// Called under the role lock before a role replaces `role`: when it is a
/// leadership, fences the log against appends under its epoch, so a produce
/// admitted by [`Replica::check_produce`] just before the change cannot
/// write after it (see [`Log::fence_leader_appends`]).
fn end_leadership(role: &Role, log: &Log) {
    if let Role::Leader(state) = role {
        log.fence_leader_appends(state.leader_epoch().saturating_add(1));
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
