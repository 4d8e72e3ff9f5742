//! Integration tests of runnel-operator (one test binary).

mod bench_rebalance;
mod cel_rules;
mod crds;
mod day2;
mod fake_api;
mod fake_rules;
mod harness;
mod kubelet;
mod listeners;
mod load;
mod rack_label;
mod rbac;
mod real_cluster;
mod reconcile;
mod run_loop;
mod service_monitors;
mod storage;
mod users;
