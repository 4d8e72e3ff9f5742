//! Partition replication, Kafka's model: the leader tracks each follower's
//! durable position, the ISR and the high watermark ([`state`], sans-IO);
//! followers fetch from leaders and truncate by leader epoch after failover.

pub mod state;
