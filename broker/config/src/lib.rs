//! Runnel's broker configuration, each key declared once. One entry of the
//! declaration in `broker_config.rs` is the source of everything derived from a
//! key: the `runnel.toml` field and its default, the `RUNNEL_<KEY>` environment
//! variable, the `runnel-broker --<key>` flag and its help line, the Kafka names
//! DescribeConfigs reports it under, the range its value must lie in, and whether
//! a Kubernetes `Cluster` may set it. [`KEYS`] lists them all; the broker configs
//! that change at runtime (Kafka names only, stored in the metadata quorum) are
//! in [`dynamic`].
//!
//! The crate is kept light (serde, toml, thiserror) because the operator uses it
//! too: its list of keys a `Cluster` may set is [`KEYS`] itself.
//!
//! Modules:
//! - `broker_config`: the declaration of every key, loading (TOML, `RUNNEL_*`,
//!   flags) and validation ([`BrokerConfig`]).
//! - `declare`: the macro that turns the declaration into the struct and [`KEYS`].
//! - `key`: what is known about one key ([`Key`], [`KeyKind`], [`ClusterAccess`]).
//! - `listeners`: the named listeners and their security protocols
//!   ([`ListenerConfig`]), read from the listener keys together.
//! - [`dynamic`]: the configs changed at runtime through the admin API.

mod broker_config;
mod declare;
pub mod dynamic;
mod key;
mod listeners;

pub use broker_config::{BrokerConfig, ConfigError, KEYS};
pub use key::{find_key, ClusterAccess, Key, KeyKind};
pub use listeners::{ListenerConfig, DEFAULT_LISTENER, SECURITY_PROTOCOLS, SSL_CLIENT_AUTH};

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "RUNNEL_";

/// Upper bound on a topic's partition count: each partition is a directory
/// with open files, so an absurd request must not exhaust the machine.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Splits `host:port` (IPv6 hosts in brackets) into host and port.
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("localhost:9092"),
            Some(("localhost".into(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(split_host_port("nohost"), None);
    }
}
