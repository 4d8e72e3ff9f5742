//! One module per `runnel` command.

pub(crate) mod acl;
pub(crate) mod broker;
pub(crate) mod client_metrics;
pub(crate) mod cluster;
pub(crate) mod consume;
pub(crate) mod dev;
pub(crate) mod group;
pub(crate) mod offset_reset;
pub(crate) mod produce;
pub(crate) mod quota;
pub(crate) mod reassign;
pub(crate) mod topic;
pub(crate) mod transactions;
pub(crate) mod user;
