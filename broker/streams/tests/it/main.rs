//! runnel-streams against an in-process Runnel broker, with inputs written and outputs read by
//! librdkafka (the `rdkafka` crate), not by the library under test.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod dsl;
mod errors;
mod harness;
