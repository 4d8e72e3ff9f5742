//! Transactions (issue 13): the transaction coordinator and the markers it
//! has partition leaders write.
//!
//! - [`state`]: one transactional id's state machine, free of I/O.
//! - [`records`]: the record format of `__transaction_state`.
//! - [`append`]: the broker's own acks=all writes (state records, markers).
//! - [`markers`]: writing a decision's markers to every partition.
//! - [`coordinator`]: the runtime: persisted transitions, leadership of
//!   `__transaction_state`, loading, markers, timeouts.
//! - [`verify`]: a partition leader's check of a transactional produce.

pub(crate) mod append;
pub(crate) mod coordinator;
pub(crate) mod markers;
pub(crate) mod records;
pub(crate) mod state;
pub(crate) mod verify;

pub(crate) use coordinator::TxnCoordinator;

/// The internal topic holding the coordinators' state.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";

/// The `__transaction_state` partition of a transactional id (Kafka's rule,
/// the same as for groups).
pub(crate) fn partition_for(txn_id: &str, partitions: i32) -> i32 {
    crate::group::partition_for(txn_id, partitions)
}

/// Overrides of `__transaction_state`: compacted, 100 MiB segments, and
/// `transaction_state_log_min_isr` in-sync replicas for a write.
pub(crate) fn topic_configs(min_isr: i32) -> crate::topic_config::TopicOverrides {
    let mut configs = crate::topic_config::TopicOverrides::new();
    configs.insert("cleanup.policy".into(), "compact".into());
    configs.insert("segment.bytes".into(), "104857600".into());
    configs.insert("min.insync.replicas".into(), min_isr.to_string());
    configs
}
