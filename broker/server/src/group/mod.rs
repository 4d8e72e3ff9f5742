//! Consumer groups: Kafka's classic group protocol and committed offsets.
//!
//! The sans-IO core, each file depending only on those above it:
//! - [`error`]: [`GroupError`], every refusal with its Kafka meaning.
//! - [`placement`]: `__consumer_offsets` and the partition a group lives on.
//! - [`messages`]: requests into the state machine, replies and actions out
//!   of it, and what the coordinator hands the API handlers.
//! - [`member`]: a [`Member`](member::Member), the protocol choice among
//!   members, consumer-protocol subscriptions.
//! - [`offsets`]: a committed offset and a group's table of them.
//! - [`records`]: the record format of `__consumer_offsets` (keys, offset and
//!   group values), and nothing else.
//! - [`state`]: the [`Group`] state machine and its conversion to and from
//!   its record; `state/mod.rs` holds the group and the join barrier, and one
//!   file per request adds its transitions (`join`, `sync`, `heartbeat`,
//!   `leave`, `offsets`, `timers`).
//!
//! The runtime:
//! - [`store`]: appending to and replaying `__consumer_offsets`, waiting for
//!   fsync and replication.
//! - [`coordinator`]: the [`Coordinator`]: every group under one lock, parked
//!   answers, timers, leadership of the `__consumer_offsets` partitions
//!   (`coordinator/mod.rs`), and its requests by concept (`membership`,
//!   `offsets`, `admin`).
//!
//! Inside `state/` and `coordinator/`, the request files use their
//! `mod.rs` and the modules above, never each other.

pub(crate) mod consumer;
pub(crate) mod coordinator;
pub(crate) mod error;
pub(crate) mod member;
pub(crate) mod messages;
pub(crate) mod offsets;
pub(crate) mod placement;
pub mod records;
pub(crate) mod state;
pub(crate) mod store;

pub(crate) use coordinator::Coordinator;
pub(crate) use error::GroupError;
pub(crate) use messages::GroupState;
pub use placement::{partition_for, OFFSETS_TOPIC};
