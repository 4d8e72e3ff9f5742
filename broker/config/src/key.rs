//! What is known about one config key ([`Key`]) apart from its Rust type and
//! default, which live in [`BrokerConfig`](crate::BrokerConfig)'s field.

use std::path::PathBuf;

use crate::{ENV_PREFIX, KEYS};

/// How a key's value is written in TOML and in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A string (paths, addresses, ids).
    Str,
    /// An integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// A list of strings (comma-separated in the environment and flags).
    List,
}

/// What a Kubernetes `Cluster` may do with a key in its `spec.config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAccess {
    /// The Cluster may set it; the operator writes it into the brokers' shared `runnel.toml`.
    Settable,
    /// The operator sets it itself (per pod or for the pod layout) and refuses a
    /// Cluster's value as "set by the operator".
    Reserved,
    /// Not offered to a Cluster (the operator passes it per pod through the
    /// environment, or it has no use there); refused as an unknown key.
    Hidden,
}

/// One broker config key, as declared with [`BrokerConfig`](crate::BrokerConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The TOML key, e.g. `log_retention_ms`; it also names the variable and the flag.
    pub name: &'static str,
    /// How its value is written (follows from the field's type).
    pub kind: KeyKind,
    /// One-line description (DescribeConfigs documentation).
    pub doc: &'static str,
    /// The `runnel-broker --help` line of its flag.
    pub help: &'static str,
    /// Kafka's names for it in DescribeConfigs; empty = reported under Runnel's name.
    pub kafka_names: &'static [&'static str],
    /// Whether a Kubernetes `Cluster` may set it.
    pub cluster: ClusterAccess,
}

impl Key {
    /// The environment variable that overrides it: `RUNNEL_<NAME>`.
    pub fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.name.to_ascii_uppercase())
    }

    /// Its command-line flag without the leading `--`: the name with dashes.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }
}

/// Looks a key up by its TOML name.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The [`KeyKind`] of a field type, so a key's kind cannot disagree with its type.
pub(crate) trait ValueKind {
    const KIND: KeyKind;
}

macro_rules! value_kind {
    ($kind:ident: $($ty:ty),+) => {
        $(impl ValueKind for $ty {
            const KIND: KeyKind = KeyKind::$kind;
        })+
    };
}

value_kind!(Int: i16, i32, i64, u32, u64, usize);
value_kind!(Bool: bool);
value_kind!(Str: String, Option<String>, PathBuf);
value_kind!(List: Vec<String>);
