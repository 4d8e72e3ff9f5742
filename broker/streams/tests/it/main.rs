//! runnel-streams against an in-process Runnel broker, with inputs written and outputs read by
//! librdkafka (the `rdkafka` crate), not by the library under test.

mod dsl;
mod errors;
mod harness;
