//! Conformance suite for the runnel-log storage engine.

#![allow(clippy::unwrap_used)]

mod basic;
mod common;
