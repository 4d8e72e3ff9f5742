//! Integration tests of runnel-client against scripted fake brokers.

mod negotiation;
