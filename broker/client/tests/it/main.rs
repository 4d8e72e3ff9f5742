//! Integration tests of runnel-client against scripted fake brokers.

mod fake;
mod group;
mod hostile_broker;
mod negotiation;
mod producer;
