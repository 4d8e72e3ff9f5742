//! Integration tests of the `runnel` binary against a real `runnel dev` broker.

mod broker_configs;
mod errors;
mod group_api;
mod groups;
mod harness;
mod produce_consume;
mod topics;
