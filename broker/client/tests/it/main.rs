//! Integration tests of runnel-client against scripted fake brokers.

mod fake;
mod negotiation;
mod producer;
