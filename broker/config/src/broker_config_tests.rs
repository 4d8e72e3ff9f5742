//! Unit tests of `broker_config.rs`: defaults, file and environment loading,
//! validation, and the agreement of [`KEYS`] with the struct's fields.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_contract() {
    let c = BrokerConfig::default();
    assert_eq!(c.listen, "127.0.0.1:9092");
    assert_eq!(c.admin_listen, "127.0.0.1:9644");
    assert_eq!(c.max_request_bytes, 104_857_600);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert!(c.log_flush_on_ack && c.auto_create_topics);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_retention_minutes, 10080);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
}

#[test]
fn group_keys_are_validated_and_settable_from_env() {
    let c = BrokerConfig::load_with_env(
        None,
        env(&[
            ("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "3"),
            ("RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(c.offsets_topic_num_partitions, 3);
    assert_eq!(c.group_initial_rebalance_delay_ms, 0);
    let err =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "0")]))
            .unwrap_err();
    assert!(err.to_string().contains("offsets_topic_num_partitions"));
    let err =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_GROUP_MAX_SESSION_TIMEOUT_MS", "10")]))
            .unwrap_err();
    assert!(err.to_string().contains("group_max_session_timeout_ms"));
}

#[test]
fn memory_and_connection_limits_are_validated() {
    let d = BrokerConfig::default();
    assert_eq!(d.queued_max_request_bytes, 268_435_456);
    assert_eq!(
        (d.max_connections_per_ip, d.max_connections),
        (1000, 10_000)
    );
    let c = BrokerConfig::load_with_env(
        None,
        env(&[
            ("RUNNEL_MAX_REQUEST_BYTES", "4096"),
            ("RUNNEL_QUEUED_MAX_REQUEST_BYTES", "4096"),
            ("RUNNEL_MAX_CONNECTIONS_PER_IP", "2"),
            ("RUNNEL_MAX_CONNECTIONS", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(c.queued_max_request_bytes, 4096);
    assert_eq!((c.max_connections_per_ip, c.max_connections), (2, 3));
    // The pool must hold one request of the largest size.
    let err = BrokerConfig::load_with_env(
        None,
        env(&[("RUNNEL_QUEUED_MAX_REQUEST_BYTES", "104857599")]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("queued_max_request_bytes") && msg.contains("max_request_bytes (104857600)"),
        "{msg}"
    );
    for (var, key) in [
        ("RUNNEL_MAX_CONNECTIONS_PER_IP", "max_connections_per_ip"),
        ("RUNNEL_MAX_CONNECTIONS", "max_connections"),
    ] {
        let err = BrokerConfig::load_with_env(None, env(&[(var, "0")])).unwrap_err();
        assert!(err.to_string().contains(key), "{var}: {err}");
    }
    let mut c = BrokerConfig::default();
    assert!(c.set("queued_max_request_bytes", "-1").is_err());
}

#[test]
fn unknown_key_in_file_is_rejected_naming_the_key() {
    let err = BrokerConfig::from_toml_str("node_id = 1\nretention_hours = 3\n").unwrap_err();
    assert!(err.contains("retention_hours"), "{err}");
}

#[test]
fn bad_value_in_file_names_the_key() {
    let err = BrokerConfig::from_toml_str("num_partitions = \"many\"\n").unwrap_err();
    assert!(err.contains("num_partitions"), "{err}");
}

#[test]
fn file_then_env_overrides_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runnel.toml");
    std::fs::write(
        &path,
        "node_id = 3\nnum_partitions = 4\nlisten = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let c = BrokerConfig::load_with_env(
        Some(&path),
        env(&[
            ("RUNNEL_NUM_PARTITIONS", "6"),
            ("RUNNEL_AUTO_CREATE_TOPICS", "false"),
            ("RUNNEL_DATA_DIR", "/tmp/x"),
            ("RUNNEL_BOOTSTRAP_SERVER", "ignored:1"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(c.node_id, 3);
    assert_eq!(c.num_partitions, 6);
    assert!(!c.auto_create_topics);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(c.listen, "0.0.0.0:1");
}

#[test]
fn bad_env_value_is_a_clear_error_naming_the_key() {
    let err = BrokerConfig::load_with_env(None, env(&[("RUNNEL_NODE_ID", "abc")])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("RUNNEL_NODE_ID") && msg.contains("node_id"),
        "{msg}"
    );
    let err =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_LOG_FLUSH_ON_ACK", "yes")])).unwrap_err();
    assert!(err.to_string().contains("log_flush_on_ack"));
}

#[test]
fn out_of_range_values_are_rejected() {
    let err =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_NUM_PARTITIONS", "0")])).unwrap_err();
    assert!(err.to_string().contains("num_partitions"));
    let mut c = BrokerConfig::default();
    assert!(c.set("max_request_bytes", "-5").is_err());
}

#[test]
fn keys_table_lists_every_field() {
    let json = serde_json::to_value(BrokerConfig::default()).unwrap();
    let mut fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    let mut keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    keys.sort();
    assert_eq!(fields, keys);
}

#[test]
fn cluster_keys_parse_from_env_and_are_validated() {
    let c = BrokerConfig::load_with_env(
        None,
        env(&[
            ("RUNNEL_SEEDS", "10.0.0.1:9093, b:9093"),
            ("RUNNEL_DEFAULT_REPLICATION_FACTOR", "3"),
            ("RUNNEL_BROKER_RACK", "r1"),
            ("RUNNEL_UNCLEAN_LEADER_ELECTION_ENABLE", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(c.seeds, vec!["10.0.0.1:9093".to_string(), "b:9093".into()]);
    assert_eq!(c.default_replication_factor, 3);
    assert_eq!(c.broker_rack.as_deref(), Some("r1"));
    assert!(c.unclean_leader_election_enable);
    assert_eq!(c.value_of("seeds").as_deref(), Some("10.0.0.1:9093,b:9093"));
    let d = BrokerConfig::default();
    assert_eq!(d.controller_listen, "127.0.0.1:9093");
    assert_eq!((d.metadata_voters, d.min_insync_replicas), (3, 1));
    assert_eq!(
        (d.broker_heartbeat_interval_ms, d.broker_session_timeout_ms),
        (500, 6000)
    );
    for (var, value, key) in [
        ("RUNNEL_SEEDS", "nohost", "seeds"),
        (
            "RUNNEL_DEFAULT_REPLICATION_FACTOR",
            "0",
            "default_replication_factor",
        ),
        (
            "RUNNEL_BROKER_SESSION_TIMEOUT_MS",
            "100",
            "broker_session_timeout_ms",
        ),
        ("RUNNEL_CONTROLLER_LISTEN", "x", "controller_listen"),
        ("RUNNEL_MIN_INSYNC_REPLICAS", "0", "min_insync_replicas"),
    ] {
        let err = BrokerConfig::load_with_env(None, env(&[(var, value)])).unwrap_err();
        assert!(err.to_string().contains(key), "{var}: {err}");
    }
}

#[test]
fn declared_ranges_are_checked_with_their_bounds_in_the_message() {
    for (var, value, message) in [
        ("RUNNEL_NODE_ID", "-1", "node_id: must be >= 0"),
        (
            "RUNNEL_LOG_RETENTION_MS",
            "-2",
            "log_retention_ms: must be >= -1",
        ),
        (
            "RUNNEL_LOG_SEGMENT_BYTES",
            "13",
            "log_segment_bytes: must be >= 14",
        ),
        (
            "RUNNEL_MAX_REQUEST_BYTES",
            "1023",
            "max_request_bytes: must be between 1024 and 2147483647",
        ),
        (
            "RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS",
            "10001",
            "offsets_topic_num_partitions: must be between 1 and 10000",
        ),
        (
            "RUNNEL_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE",
            "101",
            "leader_imbalance_per_broker_percentage: must be between 0 and 100",
        ),
        (
            "RUNNEL_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS",
            "0",
            "leader_imbalance_check_interval_seconds: must be >= 1",
        ),
    ] {
        let err = BrokerConfig::load_with_env(None, env(&[(var, value)])).unwrap_err();
        assert!(err.to_string().ends_with(message), "{var}={value}: {err}");
    }
    // The bounds themselves are allowed.
    BrokerConfig::load_with_env(
        None,
        env(&[
            ("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "10000"),
            ("RUNNEL_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE", "100"),
            ("RUNNEL_LOG_RETENTION_MS", "-1"),
        ]),
    )
    .unwrap();
}

#[test]
fn a_key_s_kind_variable_flag_and_names_follow_its_declaration() {
    let key = |name| find_key(name).unwrap();
    assert_eq!(key("node_id").kind, KeyKind::Int);
    assert_eq!(key("data_dir").kind, KeyKind::Str);
    assert_eq!(key("cluster_id").kind, KeyKind::Str);
    assert_eq!(key("log_flush_on_ack").kind, KeyKind::Bool);
    assert_eq!(key("seeds").kind, KeyKind::List);
    assert_eq!(key("node_id").env_var(), "RUNNEL_NODE_ID");
    assert_eq!(key("log_retention_ms").flag(), "log-retention-ms");
    assert_eq!(key("node_id").kafka_names, ["node.id", "broker.id"]);
    assert!(key("admin_listen").kafka_names.is_empty());
    // The help line is the doc unless declared apart.
    assert_eq!(key("admin_listen").help, key("admin_listen").doc);
    assert_eq!(key("log_retention_ms").help, "Default retention.ms");
    assert_eq!(key("node_id").cluster, crate::ClusterAccess::Reserved);
    assert!(find_key("retention_hours").is_none());
}

#[test]
fn the_rack_file_gives_the_rack_and_a_missing_empty_or_doubled_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rack");
    std::fs::write(&file, "eu-west-1b\n").unwrap();
    let path = file.to_str().unwrap().to_string();
    let mut c =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_BROKER_RACK_FILE", &path)])).unwrap();
    c.resolve_rack_file().unwrap();
    assert_eq!(c.broker_rack.as_deref(), Some("eu-west-1b"));
    // Both sources at once: refused, naming the file key.
    let both = BrokerConfig::load_with_env(
        None,
        env(&[
            ("RUNNEL_BROKER_RACK_FILE", &path),
            ("RUNNEL_BROKER_RACK", "r1"),
        ]),
    );
    assert!(
        matches!(&both, Err(ConfigError::Invalid { key, .. }) if key == "broker_rack_file"),
        "{both:?}"
    );
    // An empty (whitespace only) file is refused, naming it.
    std::fs::write(&file, " \n").unwrap();
    let mut c =
        BrokerConfig::load_with_env(None, env(&[("RUNNEL_BROKER_RACK_FILE", &path)])).unwrap();
    match c.resolve_rack_file() {
        Err(ConfigError::Invalid { key, message }) => {
            assert_eq!(key, "broker_rack_file");
            assert!(message.contains(&path), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(c.broker_rack, None);
    // A missing file is a read error naming it.
    let missing = dir.path().join("absent");
    let mut c = BrokerConfig::load_with_env(
        None,
        env(&[("RUNNEL_BROKER_RACK_FILE", missing.to_str().unwrap())]),
    )
    .unwrap();
    assert!(
        matches!(c.resolve_rack_file(), Err(ConfigError::Read { path, .. }) if path == missing)
    );
}

#[test]
fn the_replica_selector_is_leader_or_rack_aware() {
    assert_eq!(BrokerConfig::default().replica_selector, "leader");
    let c = BrokerConfig::load_with_env(None, env(&[("RUNNEL_REPLICA_SELECTOR", "rack_aware")]))
        .unwrap();
    assert_eq!(c.replica_selector, "rack_aware");
    let bad = BrokerConfig::load_with_env(None, env(&[("RUNNEL_REPLICA_SELECTOR", "nearest")]));
    match bad {
        Err(ConfigError::Invalid { key, message }) => {
            assert_eq!(key, "replica_selector");
            assert!(message.contains("\"nearest\""), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A config with the listener keys given as `RUNNEL_*` values.
fn with_listeners(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::load_with_env(None, env(pairs))
}

/// The key a listener config error names.
fn listener_error_key(pairs: &[(&str, &str)]) -> String {
    match with_listeners(pairs) {
        Err(ConfigError::Invalid { key, message }) => {
            assert!(!message.is_empty());
            key
        }
        other => panic!("expected Invalid for {pairs:?}, got {other:?}"),
    }
}

#[test]
fn without_listeners_the_broker_has_one_plaintext_listener_on_listen() {
    let c = with_listeners(&[
        ("RUNNEL_LISTEN", "0.0.0.0:0"),
        ("RUNNEL_ADVERTISED_ADDRESS", "kafka.example:9092"),
    ])
    .unwrap();
    let listeners = c.listener_configs().unwrap();
    assert_eq!(
        listeners,
        vec![crate::ListenerConfig {
            name: "PLAINTEXT".into(),
            protocol: "PLAINTEXT",
            bind: "0.0.0.0:0".into(),
            advertised: Some(("kafka.example".into(), 9092)),
        }]
    );
    assert_eq!(c.inter_broker_listener().unwrap().name, "PLAINTEXT");
    assert_eq!(c.ssl_client_auth, "none");
}

#[test]
fn named_listeners_take_protocols_from_the_map_or_their_name() {
    let c = with_listeners(&[
        (
            "RUNNEL_LISTENERS",
            "plaintext://127.0.0.1:0, SECURE://0.0.0.0:9094,INTERNAL://[::1]:9095",
        ),
        (
            "RUNNEL_ADVERTISED_LISTENERS",
            "SECURE://kafka.example:19094",
        ),
        (
            "RUNNEL_LISTENER_SECURITY_PROTOCOL_MAP",
            "SECURE:ssl,INTERNAL:PLAINTEXT,UNUSED:SASL_SSL",
        ),
        ("RUNNEL_INTER_BROKER_LISTENER_NAME", "internal"),
        ("RUNNEL_SSL_CERTIFICATE_LOCATION", "/tls/cert.pem"),
        ("RUNNEL_SSL_KEY_LOCATION", "/tls/key.pem"),
    ])
    .unwrap();
    let listeners = c.listener_configs().unwrap();
    let advertised = |host: &str, port| Some((host.to_string(), port));
    let expected = [
        ("PLAINTEXT", "PLAINTEXT", "127.0.0.1:0", None),
        (
            "SECURE",
            "SSL",
            "0.0.0.0:9094",
            advertised("kafka.example", 19094),
        ),
        ("INTERNAL", "PLAINTEXT", "[::1]:9095", None),
    ];
    assert_eq!(listeners.len(), expected.len());
    for (l, (name, protocol, bind, advertised)) in listeners.iter().zip(expected) {
        assert_eq!(
            (l.name.as_str(), l.protocol, l.bind.as_str(), &l.advertised),
            (name, protocol, bind, &advertised)
        );
    }
    assert!(listeners[1].uses_tls() && !listeners[0].uses_tls());
    assert_eq!(c.inter_broker_listener().unwrap().name, "INTERNAL");
    // Without a name the first listener is the inter-broker one.
    let c = with_listeners(&[
        (
            "RUNNEL_LISTENERS",
            "INTERNAL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ),
        (
            "RUNNEL_LISTENER_SECURITY_PROTOCOL_MAP",
            "INTERNAL:PLAINTEXT",
        ),
    ])
    .unwrap();
    assert_eq!(c.inter_broker_listener().unwrap().name, "INTERNAL");
}

#[test]
fn listener_mistakes_are_refused_naming_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(
                "RUNNEL_LISTENERS",
                "PLAINTEXT://127.0.0.1:0,plaintext://127.0.0.1:0",
            )],
            "listeners",
        ),
        (&[("RUNNEL_LISTENERS", "127.0.0.1:9092")], "listeners"),
        (&[("RUNNEL_LISTENERS", "PLAIN TEXT://h:1")], "listeners"),
        (&[("RUNNEL_LISTENERS", "PLAINTEXT://nohost")], "listeners"),
        (
            &[("RUNNEL_LISTENERS", "PLAINTEXT://h:9092,SSL://h:9092")],
            "listeners",
        ),
        (
            &[("RUNNEL_LISTENERS", "PLAINTEXT://h:0,EXTERNAL://h:0")],
            "listener_security_protocol_map",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0,EXTERNAL://h:0"),
                ("RUNNEL_LISTENER_SECURITY_PROTOCOL_MAP", "EXTERNAL:TLS"),
            ],
            "listener_security_protocol_map",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_LISTENER_SECURITY_PROTOCOL_MAP", "PLAINTEXT"),
            ],
            "listener_security_protocol_map",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_ADVERTISED_LISTENERS", "EXTERNAL://e:9092"),
            ],
            "advertised_listeners",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_ADVERTISED_LISTENERS", "PLAINTEXT://0.0.0.0:9092"),
            ],
            "advertised_listeners",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_ADVERTISED_LISTENERS", "PLAINTEXT://e:0"),
            ],
            "advertised_listeners",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_INTER_BROKER_LISTENER_NAME", "INTERNAL"),
            ],
            "inter_broker_listener_name",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_LISTEN", "127.0.0.1:0"),
            ],
            "listen",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0"),
                ("RUNNEL_ADVERTISED_ADDRESS", "e:9092"),
            ],
            "advertised_address",
        ),
        (
            &[("RUNNEL_ADVERTISED_LISTENERS", "PLAINTEXT://e:9092")],
            "advertised_listeners",
        ),
        // A SASL_SSL inter-broker listener needs a user too.
        (
            &[
                ("RUNNEL_LISTENERS", "SASL_SSL://h:0"),
                ("RUNNEL_SSL_CERTIFICATE_LOCATION", "c.pem"),
                ("RUNNEL_SSL_KEY_LOCATION", "k.pem"),
            ],
            "inter_broker_sasl_username",
        ),
        // A SASL inter-broker listener needs a user for the brokers, and the user its file.
        (
            &[("RUNNEL_LISTENERS", "SASL_PLAINTEXT://h:0")],
            "inter_broker_sasl_username",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "SASL_PLAINTEXT://h:0"),
                ("RUNNEL_INTER_BROKER_SASL_USERNAME", "broker"),
            ],
            "inter_broker_sasl_username",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "SASL_PLAINTEXT://h:0"),
                ("RUNNEL_INTER_BROKER_SASL_USERNAME", "broker"),
                ("RUNNEL_INTER_BROKER_SASL_PASSWORD_FILE", "pw"),
                ("RUNNEL_INTER_BROKER_SASL_MECHANISM", "GSSAPI"),
            ],
            "inter_broker_sasl_mechanism",
        ),
        // A TLS listener needs a certificate and its key.
        (
            &[("RUNNEL_LISTENERS", "PLAINTEXT://h:0,SSL://h:0")],
            "ssl_certificate_location",
        ),
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0,SSL://h:0"),
                ("RUNNEL_SSL_CERTIFICATE_LOCATION", "c.pem"),
            ],
            "ssl_key_location",
        ),
        // Verifying client certificates needs the CAs to verify them with.
        (
            &[
                ("RUNNEL_LISTENERS", "PLAINTEXT://h:0,SSL://h:0"),
                ("RUNNEL_SSL_CERTIFICATE_LOCATION", "c.pem"),
                ("RUNNEL_SSL_KEY_LOCATION", "k.pem"),
                ("RUNNEL_SSL_CLIENT_AUTH", "required"),
            ],
            "ssl_truststore_location",
        ),
        (&[("RUNNEL_SSL_CLIENT_AUTH", "always")], "ssl_client_auth"),
    ];
    for (pairs, key) in cases {
        assert_eq!(listener_error_key(pairs), *key, "{pairs:?}");
    }
}

#[test]
fn listener_errors_say_what_to_do() {
    let err = with_listeners(&[("RUNNEL_LISTENERS", "PLAINTEXT://h:0,EXTERNAL://h:0")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("add EXTERNAL:PROTOCOL"), "{err}");
    let err = with_listeners(&[("RUNNEL_LISTENERS", "PLAINTEXT://h:0,plaintext://h:1")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("listener PLAINTEXT is declared twice"),
        "{err}"
    );
}
