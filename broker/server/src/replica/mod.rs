//! Partition replication, Kafka's model. The [`ReplicaManager`] watches the
//! cluster metadata and gives every local partition a role: the leader keeps
//! a [`state::LeaderState`] (followers' durable positions, ISR, high
//! watermark) fed by follower fetches and its own fsyncs, and proposes ISR
//! changes through the quorum; a follower truncates by leader epoch
//! (OffsetForLeaderEpoch) and fetches from its leader ([`fetcher`]).
//!
//! Files:
//! - `manager.rs`: [`ReplicaManager`] and its [`ReplicaSettings`]: roles from
//!   the metadata, HW notifications, ISR proposals, throttling.
//! - `partition.rs`: [`Replica`], one local partition's role, its produce and
//!   fetch checks (`check_epoch`) and the `acks=all` wait.
//! - `isr.rs`: `IsrProposer`, how ISR changes reach the quorum.
//! - [`state`]: the sans-IO ISR and high-watermark bookkeeping of a leader.
//! - [`fetcher`]: the follower fetch loop, one task per source broker, and
//!   the supervisor that starts and stops those tasks ([`supervise_fetchers`]).
//! - [`throttle`]: replication throttling (rates, throttled replicas, quotas).
//! - [`offsets`]: replication of the group coordinator's `__consumer_offsets` writes.
//! - [`metrics`]: the replication metrics.

pub(crate) mod fetcher;
mod isr;
mod manager;
pub(crate) mod metrics;
pub(crate) mod offsets;
mod partition;
pub(crate) mod state;
pub(crate) mod throttle;

pub(crate) use fetcher::supervise as supervise_fetchers;
pub(crate) use manager::{ReplicaManager, ReplicaSettings};
pub(crate) use partition::Replica;
pub(crate) use throttle::ThrottleSide;
