//! Integration tests of runnel-client against scripted fake brokers.

mod fake;
mod group;
mod negotiation;
mod producer;
