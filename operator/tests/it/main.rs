//! Integration tests of runnel-operator (one test binary).

mod cel_rules;
mod crds;
mod fake_api;
mod harness;
mod reconcile;
mod run_loop;
