//! The load generator against an in-process Runnel broker: every record it sends must be
//! acknowledged, consumed and timed, so a broken generator fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod harness;
mod workloads;
