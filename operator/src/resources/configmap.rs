//! The ConfigMap holding the brokers' shared `runnel.toml`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{owned_meta, owner, ADMIN_PORT, KAFKA_PORT};
use crate::crd::{Cluster, RESERVED_CONFIG_KEYS};
use crate::Error;

/// File name of the broker configuration inside the ConfigMap and the mounted directory.
pub const CONFIG_FILE: &str = "runnel.toml";

/// Where each broker's volume is mounted; data_dir is a subdirectory so the volume root
/// (which may hold lost+found) is not a partition directory.
pub(crate) const DATA_MOUNT: &str = "/var/lib/runnel";

#[derive(Clone, Copy)]
enum KeyType {
    Integer,
    Bool,
    String,
}

/// Broker keys a Cluster may set (see broker/server/runnel.example.toml) and their types.
fn key_type(key: &str) -> Option<KeyType> {
    Some(match key {
        "auto_create_topics"
        | "log_flush_on_ack"
        | "unclean_leader_election_enable"
        | "auto_leader_rebalance_enable" => KeyType::Bool,
        "cluster_id" => KeyType::String,
        "num_partitions"
        | "leader_imbalance_check_interval_seconds"
        | "leader_imbalance_per_broker_percentage"
        | "default_replication_factor"
        | "max_request_bytes"
        | "queued_max_request_bytes"
        | "max_connections_per_ip"
        | "max_connections"
        | "log_segment_bytes"
        | "log_segment_ms"
        | "log_retention_ms"
        | "log_retention_bytes"
        | "message_max_bytes"
        | "log_retention_check_interval_ms"
        | "log_cleaner_interval_ms"
        | "offsets_topic_num_partitions"
        | "offsets_retention_minutes"
        | "offsets_retention_check_interval_ms"
        | "group_initial_rebalance_delay_ms"
        | "group_min_session_timeout_ms"
        | "group_max_session_timeout_ms"
        | "offsets_topic_replication_factor"
        | "metadata_voters"
        | "broker_heartbeat_interval_ms"
        | "broker_session_timeout_ms"
        | "min_insync_replicas"
        | "replica_lag_time_max_ms"
        | "replica_fetch_max_bytes" => KeyType::Integer,
        _ => return None,
    })
}

fn toml_string(key: &str, value: &str) -> Result<String, Error> {
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: "control characters are not allowed",
        });
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Kafka-style cluster id (22 characters, URL-safe base64 of 16 bytes) from the Cluster's uid,
/// so every broker of a Cluster agrees on it and it survives operator restarts.
pub fn cluster_id_from_uid(uid: &str) -> Option<String> {
    let hex: String = uid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    Some(out)
}

/// The `runnel.toml` shared by every broker of the Cluster. Per-pod keys (node_id,
/// advertised_address) come from environment variables instead; unknown keys or values of the
/// wrong type are refused here rather than crash-looping the brokers.
pub fn render_broker_config(cluster: &Cluster) -> Result<String, Error> {
    let mut entries: BTreeMap<&str, String> = BTreeMap::new();
    entries.insert("data_dir", format!("\"{DATA_MOUNT}/data\""));
    entries.insert("listen", format!("\"0.0.0.0:{KAFKA_PORT}\""));
    entries.insert("admin_listen", format!("\"0.0.0.0:{ADMIN_PORT}\""));
    entries.insert(
        "controller_listen",
        format!("\"0.0.0.0:{}\"", super::CONTROLLER_PORT),
    );
    if let Some(id) = cluster
        .metadata
        .uid
        .as_deref()
        .and_then(cluster_id_from_uid)
    {
        entries.insert("cluster_id", format!("\"{id}\""));
    }
    for (key, value) in &cluster.spec.config {
        let invalid = |reason| Error::InvalidConfig {
            key: key.clone(),
            value: value.clone(),
            reason,
        };
        if RESERVED_CONFIG_KEYS.contains(&key.as_str()) {
            return Err(invalid("the operator sets this key"));
        }
        let rendered = match key_type(key).ok_or_else(|| invalid("unknown broker config key"))? {
            KeyType::Integer => value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("expected an integer"))?
                .to_string(),
            KeyType::Bool => match value.trim() {
                "true" => "true".to_string(),
                "false" => "false".to_string(),
                _ => return Err(invalid("expected true or false")),
            },
            KeyType::String => toml_string(key, value)?,
        };
        entries.insert(key.as_str(), rendered);
    }
    let mut out =
        String::from("# Generated by runnel-operator from the Cluster spec; do not edit.\n");
    for (key, value) in entries {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{key} = {value}");
    }
    Ok(out)
}

/// The ConfigMap `<cluster>-config` with `runnel.toml`.
pub fn config_map(cluster: &Cluster) -> Result<ConfigMap, Error> {
    let owner = owner(cluster)?;
    Ok(ConfigMap {
        metadata: owned_meta(&owner, format!("{}-config", owner.name)),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_string(),
            render_broker_config(cluster)?,
        )])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};
    use serde_json::json;

    #[test]
    fn config_map_renders_typed_broker_config() {
        let mut s = spec();
        s.config = BTreeMap::from([
            ("log_retention_ms".to_string(), "86400000".to_string()),
            ("auto_create_topics".to_string(), "false".to_string()),
        ]);
        let cm = config_map(&cluster(s)).expect("valid");
        assert_eq!(
            serde_json::to_value(&cm).expect("serializes"),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "demo-config",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "data": {
                    "runnel.toml": "# Generated by runnel-operator from the Cluster spec; do not edit.\n\
                        admin_listen = \"0.0.0.0:9644\"\n\
                        auto_create_topics = false\n\
                        cluster_id = \"D45aTDsqTB2ej3prXE0-Lw\"\n\
                        controller_listen = \"0.0.0.0:9093\"\n\
                        data_dir = \"/var/lib/runnel/data\"\n\
                        listen = \"0.0.0.0:9092\"\n\
                        log_retention_ms = 86400000\n"
                }
            })
        );
    }

    #[test]
    fn cluster_id_is_22_chars_of_url_safe_base64_of_the_uid() {
        assert_eq!(
            cluster_id_from_uid("00000000-0000-0000-0000-000000000000").as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAAAA")
        );
        assert_eq!(
            cluster_id_from_uid("ffffffff-ffff-ffff-ffff-ffffffffffff").as_deref(),
            Some("_____________________w")
        );
        assert_eq!(cluster_id_from_uid("not-a-uuid"), None);
    }

    #[test]
    fn bad_broker_config_is_refused_with_the_key() {
        for (key, value, reason) in [
            ("no_such_key", "1", "unknown broker config key"),
            ("log_retention_ms", "a day", "expected an integer"),
            ("log_flush_on_ack", "yes", "expected true or false"),
            ("node_id", "1", "the operator sets this key"),
        ] {
            let mut s = spec();
            s.config = BTreeMap::from([(key.to_string(), value.to_string())]);
            match render_broker_config(&cluster(s)) {
                Err(Error::InvalidConfig {
                    key: k, reason: r, ..
                }) => {
                    assert_eq!((k.as_str(), r), (key, reason));
                }
                other => panic!("{key}={value} gave {other:?}"),
            }
        }
    }

    #[test]
    fn string_values_are_escaped_for_toml() {
        let mut s = spec();
        s.config = BTreeMap::from([("cluster_id".to_string(), "a\"b\\c".to_string())]);
        let toml = render_broker_config(&cluster(s)).expect("valid");
        assert!(toml.contains("cluster_id = \"a\\\"b\\\\c\"\n"), "{toml}");
    }
}
