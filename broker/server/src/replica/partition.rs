//! One local partition replica ([`Replica`]): its log and its role
//! (leader with its [`LeaderState`], follower, or offline), the leader-side
//! checks of produce and fetch (leader epoch, leadership, `min.insync.replicas`)
//! and the `acks=all` wait for the high watermark. The role is changed by the
//! [`ReplicaManager`](super::ReplicaManager) when the metadata moves.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use runnel_log::Log;
use runnel_meta::BrokerId;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::state::{AckError, AckStatus, IsrChange, LeaderState};
use crate::errors::ApiError;

/// A local partition's role.
#[derive(Debug)]
pub(super) enum Role {
    /// This broker leads: replication state, fed by fetches and fsyncs.
    Leader(Box<LeaderState>),
    /// Another broker leads; this one fetches from it.
    Follower {
        leader: BrokerId,
        leader_epoch: i32,
        /// Set on becoming follower: the log must be truncated (by
        /// OffsetForLeaderEpoch) before fetching.
        needs_truncation: bool,
    },
    /// No leader is available (offline partition).
    Offline { leader_epoch: i32 },
}

/// One local partition replica.
pub(crate) struct Replica {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The partition's log.
    pub log: Arc<Log>,
    // Never held across an await.
    pub(super) role: Mutex<Role>,
    // Notified when the HW, the ISR or the role changes (acks=all waiters). A
    // `Notify` lives inline; a watch channel cost ~320 heap bytes a partition.
    progress: Notify,
}

impl Replica {
    pub(super) fn new(topic: &str, partition: i32, log: Arc<Log>, role: Role) -> Replica {
        Replica {
            topic: topic.to_string(),
            partition,
            log,
            role: Mutex::new(role),
            progress: Notify::new(),
        }
    }

    pub(super) fn bump(&self) {
        self.progress.notify_waiters();
    }

    /// The leader epoch this broker knows for the partition.
    pub(crate) fn leader_epoch(&self) -> i32 {
        match &*self.role.lock() {
            Role::Leader(s) => s.leader_epoch(),
            Role::Follower { leader_epoch, .. } | Role::Offline { leader_epoch } => *leader_epoch,
        }
    }

    /// True when this broker leads the partition and `follower` is in its ISR.
    pub(crate) fn is_in_sync(&self, follower: BrokerId) -> bool {
        match &*self.role.lock() {
            Role::Leader(s) => s.isr().contains(&follower),
            _ => false,
        }
    }

    /// True when this broker leads the partition.
    pub(crate) fn is_leader(&self) -> bool {
        matches!(&*self.role.lock(), Role::Leader(_))
    }

    /// The high watermark (the log's, which the leader raises and a follower copies).
    pub(crate) fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    /// Checks a client's `current_leader_epoch` (-1 = not given): older than
    /// ours is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH; then that
    /// this broker leads, else NOT_LEADER_OR_FOLLOWER. Returns the epoch.
    pub(crate) fn check_leader(&self, current_leader_epoch: i32) -> Result<i32, ApiError> {
        let epoch = self.leader_epoch();
        check_epoch(&self.topic, self.partition, epoch, current_leader_epoch)?;
        if !self.is_leader() {
            return Err(ApiError::with_message(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "this broker does not lead {}-{}",
                    self.topic, self.partition
                ),
            ));
        }
        Ok(epoch)
    }

    /// Checks a consumer's read that a follower may serve (Fetch v11+, KIP-392): the epoch as
    /// [`Replica::check_leader`] does, then that this broker leads the partition or follows it
    /// under that epoch with its log reconciled (no truncation pending); it serves below its
    /// own high watermark. Returns the epoch.
    pub(crate) fn check_readable(&self, current_leader_epoch: i32) -> Result<i32, ApiError> {
        let epoch = self.leader_epoch();
        check_epoch(&self.topic, self.partition, epoch, current_leader_epoch)?;
        let readable = match &*self.role.lock() {
            Role::Leader(_) => true,
            Role::Follower {
                leader_epoch,
                needs_truncation,
                ..
            } => *leader_epoch == epoch && !*needs_truncation,
            Role::Offline { .. } => false,
        };
        if !readable {
            return Err(ApiError::with_message(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "this broker neither leads nor follows {}-{} in sync",
                    self.topic, self.partition
                ),
            ));
        }
        Ok(epoch)
    }

    /// The replica a consumer in `client_rack` should read `fetch_offset` from instead of this
    /// leader (KIP-392, see [`LeaderState::preferred_read_replica`]); None when this broker
    /// does not lead or should serve it itself.
    pub(crate) fn preferred_read_replica(
        &self,
        fetch_offset: i64,
        client_rack: &str,
        rack_of: impl Fn(BrokerId) -> Option<String>,
    ) -> Option<BrokerId> {
        match &*self.role.lock() {
            Role::Leader(state) => state.preferred_read_replica(fetch_offset, client_rack, rack_of),
            _ => None,
        }
    }

    /// Before appending a produce: checks leadership (and, for acks=all, the
    /// ISR size against `min_isr`); returns the leader epoch to write.
    pub(crate) fn check_produce(&self, acks: i16, min_isr: usize) -> Result<i32, ApiError> {
        let role = self.role.lock();
        let Role::Leader(state) = &*role else {
            return Err(ApiError::with_message(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "this broker does not lead {}-{}",
                    self.topic, self.partition
                ),
            ));
        };
        if acks == -1 {
            if let Err(err) = state.check_append(min_isr) {
                return Err(ack_error(err, self, state.isr().len(), min_isr));
            }
        }
        Ok(state.leader_epoch())
    }

    /// The leader appended up to `end` (exclusive); a non-durable leader
    /// counts it towards the HW at once.
    pub(crate) fn appended(&self, end: i64, durable: bool) -> bool {
        let advanced = {
            let mut role = self.role.lock();
            let Role::Leader(state) = &mut *role else {
                return false;
            };
            state.on_leader_append(end);
            if durable {
                None
            } else {
                state.on_leader_synced(end)
            }
        };
        self.apply_hw(advanced)
    }

    /// The leader's log was fsynced: its synced offset counts towards the HW.
    /// Returns true when the HW advanced.
    pub(crate) fn synced(&self) -> bool {
        let synced = self.log.synced_offset();
        let advanced = {
            let mut role = self.role.lock();
            let Role::Leader(state) = &mut *role else {
                return false;
            };
            state.on_leader_append(self.log.log_end_offset());
            state.on_leader_synced(synced)
        };
        self.apply_hw(advanced)
    }

    pub(super) fn apply_hw(&self, advanced: Option<i64>) -> bool {
        match advanced {
            Some(hw) => {
                self.log.set_high_watermark(hw);
                self.bump();
                true
            }
            None => false,
        }
    }

    /// Waits until an `acks=all` append ending at `end` (exclusive), written
    /// under `leader_epoch`, is committed, the ISR shrinks below `min_isr`
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND), the leadership of that epoch ends
    /// (NOT_LEADER_OR_FOLLOWER, also when this broker leads again under a
    /// newer epoch: the append may have been truncated since), the broker stops
    /// (`shutdown`; NOT_LEADER_OR_FOLLOWER: the followers' fetches stop with
    /// it, and the client's idempotent retry reaches the next leader) or
    /// `deadline` passes (REQUEST_TIMED_OUT).
    pub(crate) async fn wait_committed(
        &self,
        end: i64,
        leader_epoch: i32,
        min_isr: usize,
        deadline: Instant,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ApiError> {
        loop {
            // Registered before the state is read, so a change made after the
            // read still wakes the wait below.
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let stopping = *shutdown.borrow_and_update();
            {
                let role = self.role.lock();
                let state = match &*role {
                    Role::Leader(state) if state.leader_epoch() == leader_epoch => state,
                    _ => {
                        return Err(ApiError::with_message(
                            ResponseError::NotLeaderOrFollower,
                            format!(
                                "leadership of {}-{} moved before the append was committed",
                                self.topic, self.partition
                            ),
                        ))
                    }
                };
                match state.ack_status(end, min_isr) {
                    AckStatus::Done => return Ok(()),
                    AckStatus::Failed(err) => {
                        return Err(ack_error(err, self, state.isr().len(), min_isr))
                    }
                    AckStatus::Pending if stopping => {
                        return Err(ApiError::with_message(
                            ResponseError::NotLeaderOrFollower,
                            format!(
                                "broker is shutting down before offset {} of {}-{} was committed",
                                end - 1,
                                self.topic,
                                self.partition
                            ),
                        ));
                    }
                    AckStatus::Pending => {}
                }
            }
            tokio::select! {
                changed = shutdown.changed(), if !stopping => if changed.is_err() {
                    // The server is gone without saying so: as good as stopping.
                    return Err(ApiError::new(ResponseError::NotLeaderOrFollower));
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::with_message(
                        ResponseError::RequestTimedOut,
                        format!("{}-{}: in-sync replicas did not acknowledge offset {} in time", self.topic, self.partition, end - 1),
                    ));
                }
                () = &mut progressed => {}
            }
        }
    }

    /// A follower fetched from `offset` (leader side). Returns an ISR change
    /// to propose and whether the HW advanced; errors when not the leader.
    pub(super) fn follower_fetched(
        &self,
        follower: BrokerId,
        offset: i64,
        now_ms: i64,
    ) -> Result<(Option<IsrChange>, bool), ApiError> {
        let progress = {
            let mut role = self.role.lock();
            let Role::Leader(state) = &mut *role else {
                return Err(ApiError::with_message(
                    ResponseError::NotLeaderOrFollower,
                    format!(
                        "this broker does not lead {}-{}",
                        self.topic, self.partition
                    ),
                ));
            };
            state.on_leader_append(self.log.log_end_offset());
            state.on_follower_fetch(follower, offset, now_ms)
        };
        let advanced = self.apply_hw(progress.high_watermark);
        Ok((progress.isr_change, advanced))
    }

    /// Forgets an ISR change computed under `partition_epoch` that will not
    /// be proposed, so a later fetch may compute one again.
    pub(super) fn drop_isr_change(&self, partition_epoch: i32) {
        if let Role::Leader(state) = &mut *self.role.lock() {
            if state.partition_epoch() == partition_epoch {
                state.isr_change_failed();
            }
        }
    }

    /// The follower's view: (leader, leader epoch, needs truncation); `None` when not following.
    pub(crate) fn follower_view(&self) -> Option<(BrokerId, i32, bool)> {
        match &*self.role.lock() {
            Role::Follower {
                leader,
                leader_epoch,
                needs_truncation,
            } => Some((*leader, *leader_epoch, *needs_truncation)),
            _ => None,
        }
    }

    /// Runs `write` on the log only while this replica still follows under
    /// `epoch`, holding the role lock throughout, so the role cannot change
    /// in between (Kafka appends and truncates as follower under the
    /// partition's leader-ISR lock). `None`, without calling `write`, once the
    /// role moved on: a fetch or truncation planned as follower must not touch
    /// the log of the leader this replica may have become meanwhile. Blocking
    /// (the log write); call from a blocking thread.
    pub(crate) fn while_following<T>(
        &self,
        epoch: i32,
        write: impl FnOnce(&Log) -> T,
    ) -> Option<T> {
        let role = self.role.lock();
        match &*role {
            Role::Follower { leader_epoch, .. } if *leader_epoch == epoch => Some(write(&self.log)),
            _ => None,
        }
    }

    /// Sets whether the follower must truncate before fetching, if it still
    /// follows under `epoch`.
    pub(crate) fn set_needs_truncation(&self, epoch: i32, value: bool) {
        if let Role::Follower {
            leader_epoch,
            needs_truncation,
            ..
        } = &mut *self.role.lock()
        {
            if *leader_epoch == epoch {
                *needs_truncation = value;
            }
        }
    }
}

fn ack_error(err: AckError, replica: &Replica, isr: usize, min_isr: usize) -> ApiError {
    let (code, when) = match err {
        AckError::NotEnoughReplicas => (ResponseError::NotEnoughReplicas, "append"),
        AckError::NotEnoughReplicasAfterAppend => {
            (ResponseError::NotEnoughReplicasAfterAppend, "commit")
        }
    };
    ApiError::with_message(
        code,
        format!(
            "{}-{} has {isr} in-sync replicas at {when}, min.insync.replicas is {min_isr}",
            replica.topic, replica.partition
        ),
    )
}

/// The `current_leader_epoch` check of Fetch, Produce-adjacent APIs and
/// OffsetForLeaderEpoch (-1 = the client does not know; no check).
pub(crate) fn check_epoch(
    topic: &str,
    partition: i32,
    ours: i32,
    theirs: i32,
) -> Result<(), ApiError> {
    if theirs < 0 || theirs == ours {
        return Ok(());
    }
    let (code, relation) = if theirs < ours {
        (ResponseError::FencedLeaderEpoch, "older")
    } else {
        (ResponseError::UnknownLeaderEpoch, "newer")
    };
    Err(ApiError::with_message(
        code,
        format!(
            "leader epoch {theirs} of {topic}-{partition} is {relation} than this broker's {ours}"
        ),
    ))
}

pub(super) fn replica_isr_len(replica: &Replica) -> usize {
    match &*replica.role.lock() {
        Role::Leader(state) => state.isr().len(),
        _ => 0,
    }
}
