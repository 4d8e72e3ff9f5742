//! Conformance suite for the runnel-log storage engine.

#![allow(clippy::unwrap_used)]

mod basic;
mod common;
mod compaction;
mod full_disk;
mod group_commit;
mod hostile;
mod idempotent;
mod open_files;
mod properties;
mod recovery;
mod replication;
mod retention;
mod roll;
mod timestamps;
mod transactions;
mod truncate;
mod truncate_append;
