//! The ConfigMap holding the brokers' shared `runnel.toml`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;
use runnel_config::dynamic::find_dynamic;
use runnel_config::{find_key, ClusterAccess, KeyKind};

use super::{owned_meta, owner, ADMIN_PORT, KAFKA_PORT};
use crate::crd::Cluster;
use crate::Error;

/// File name of the broker configuration inside the ConfigMap and the mounted directory.
pub const CONFIG_FILE: &str = "runnel.toml";

/// Where each broker's volume is mounted; data_dir is a subdirectory so the volume root
/// (which may hold lost+found) is not a partition directory.
pub(crate) const DATA_MOUNT: &str = "/var/lib/runnel";

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
    if !cluster.spec.listeners.is_empty() {
        // The named listeners replace the single `listen` one.
        entries.remove("listen");
        entries.extend(super::listener_config(cluster));
    }
    for (key, value) in &cluster.spec.config {
        let invalid = |reason| Error::InvalidConfig {
            key: key.clone(),
            value: value.clone(),
            reason,
        };
        // Dynamic keys are applied through the admin API (no restart), not the file.
        if find_dynamic(key).is_ok() {
            dynamic_value(key, value)?;
            continue;
        }
        // The broker's own table says which keys a Cluster may set, and their types.
        let declared = find_key(key);
        if declared.is_some_and(|k| k.cluster == ClusterAccess::Reserved) {
            return Err(invalid("the operator sets this key"));
        }
        let kind = declared
            .filter(|k| k.cluster == ClusterAccess::Settable)
            .map(|k| k.kind)
            .ok_or_else(|| invalid("unknown broker config key"))?;
        let rendered = match kind {
            KeyKind::Int => value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("expected an integer"))?
                .to_string(),
            KeyKind::Bool => match value.trim() {
                "true" => "true".to_string(),
                "false" => "false".to_string(),
                _ => return Err(invalid("expected true or false")),
            },
            KeyKind::Str => toml_string(key, value)?,
            // Comma-separated, as in the broker's environment variables.
            KeyKind::List => {
                let items = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|item| toml_string(key, item))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("[{}]", items.join(", "))
            }
        };
        entries.insert(key.as_str(), rendered);
    }
    if super::authentication_enabled(cluster) {
        // The operator and the brokers log in as the operator's user with SCRAM-SHA-512.
        if let Some(value) = cluster.spec.config.get("sasl_enabled_mechanisms") {
            if !value.split(',').any(|m| m.trim() == "SCRAM-SHA-512") {
                return Err(Error::InvalidConfig {
                    key: "sasl_enabled_mechanisms".into(),
                    value: value.clone(),
                    reason: "must include SCRAM-SHA-512 (the operator's own login) when the Cluster authenticates",
                });
            }
        }
    }
    let mut out =
        String::from("# Generated by runnel-operator from the Cluster spec; do not edit.\n");
    for (key, value) in entries {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{key} = {value}");
    }
    Ok(out)
}

/// A dynamic broker config's value: a non-negative integer (Kafka's Long), as the broker
/// validates it.
fn dynamic_value(key: &str, value: &str) -> Result<u64, Error> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| Error::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: "expected a non-negative integer",
        })
}

/// The `spec.config` entries the brokers apply at runtime (runnel-config's dynamic keys, e.g.
/// `follower.replication.throttled.rate`): the operator sets them as cluster-wide dynamic
/// defaults through the admin API, so changing them restarts nothing. They are left out of
/// `runnel.toml` and so of the pod template's config hash.
pub fn dynamic_broker_config(cluster: &Cluster) -> Result<BTreeMap<String, String>, Error> {
    cluster
        .spec
        .config
        .iter()
        .filter(|(key, _)| find_dynamic(key).is_ok())
        .map(|(key, value)| Ok((key.clone(), dynamic_value(key, value)?.to_string())))
        .collect()
}

/// The ConfigMap `<cluster>-config` with `runnel.toml`; on a Cluster with a nodeport listener
/// also each broker's own file ([`super::broker_config_file`]): `runnel.toml` plus that
/// broker's `advertised_listeners`, with the node ports of its Services (`node_ports`, read
/// back from the API server).
pub fn config_map(cluster: &Cluster, node_ports: &super::NodePorts) -> Result<ConfigMap, Error> {
    let owner = owner(cluster)?;
    let shared = render_broker_config(cluster)?;
    let mut data = BTreeMap::new();
    if super::has_node_port_listener(cluster) {
        for ordinal in 0..cluster.spec.replicas {
            let advertised = super::broker_advertised_listeners(cluster, ordinal, node_ports)?;
            let items: Vec<String> = advertised.split(',').map(|a| format!("\"{a}\"")).collect();
            data.insert(
                super::broker_config_file(ordinal),
                format!("{shared}advertised_listeners = [{}]\n", items.join(", ")),
            );
        }
    }
    data.insert(CONFIG_FILE.to_string(), shared);
    Ok(ConfigMap {
        metadata: owned_meta(&owner, format!("{}-config", owner.name)),
        data: Some(data),
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
        let cm = config_map(&cluster(s), &Default::default()).expect("valid");
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
    fn dynamic_keys_stay_out_of_the_file_and_its_hash() {
        let mut s = spec();
        s.config = BTreeMap::from([("log_retention_ms".to_string(), "86400000".to_string())]);
        let before = render_broker_config(&cluster(s.clone())).expect("valid");
        s.config.insert(
            "follower.replication.throttled.rate".into(),
            " 1048576".into(),
        );
        let with_dynamic = cluster(s.clone());
        assert_eq!(render_broker_config(&with_dynamic).expect("valid"), before);
        assert_eq!(
            dynamic_broker_config(&with_dynamic).expect("valid"),
            BTreeMap::from([(
                "follower.replication.throttled.rate".to_string(),
                "1048576".to_string()
            )])
        );
        s.config
            .insert("leader.replication.throttled.rate".into(), "-1".into());
        let err = render_broker_config(&cluster(s)).expect_err("negative rate");
        assert!(
            err.to_string().contains("expected a non-negative integer"),
            "{err}"
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
    fn every_key_a_cluster_may_set_is_rendered_as_the_broker_reads_it() {
        let settable: Vec<&runnel_config::Key> = runnel_config::KEYS
            .iter()
            .filter(|k| k.cluster == ClusterAccess::Settable)
            .collect();
        assert!(settable.len() > 30, "{}", settable.len());
        let defaults = runnel_config::BrokerConfig::default();
        // A value other than the default, so a key dropped on the way shows.
        let value = |key: &runnel_config::Key| match key.kind {
            KeyKind::Int => "7".to_string(),
            KeyKind::Bool => (defaults.value_of(key.name).as_deref() != Some("true")).to_string(),
            KeyKind::Str => "x".to_string(),
            KeyKind::List => "a:1,b:2".to_string(),
        };
        let mut s = spec();
        s.config = settable
            .iter()
            .map(|k| (k.name.to_string(), value(k)))
            .collect();
        let toml = render_broker_config(&cluster(s)).expect("valid");
        let parsed =
            runnel_config::BrokerConfig::from_toml_str(&toml).expect("the broker reads it");
        for key in settable {
            assert_eq!(parsed.value_of(key.name), Some(value(key)), "{}", key.name);
            assert_ne!(parsed.value_of(key.name), defaults.value_of(key.name));
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
