//! Integration tests: an in-process broker on port 0, driven with raw Kafka
//! protocol requests encoded by the kafka-protocol crate.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admin;
mod admin_http;
mod api_versions;
mod bad_input;
mod binary;
mod cluster;
mod compaction;
mod data_dir_lock;
mod groups;
mod harness;
mod idempotence;
mod inter_broker_sasl;
mod inter_broker_tls;
mod listeners;
mod memory_limits;
mod metadata;
mod produce_fetch;
mod quorum_tls;
mod replication;
mod restart;
mod sasl_sessions;
mod throttle;
mod transactions;
