//! Integration tests of runnel-operator (one test binary).

mod cel_rules;
mod crds;
