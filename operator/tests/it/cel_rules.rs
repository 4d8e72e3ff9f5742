//! The CEL rules (`x-kubernetes-validations`) of the generated CRDs, evaluated client-side with
//! kube's CEL validator: what can never be applied is refused on create or update.

use kube::core::cel::{compile_schema, Validator};
use serde_json::{json, Value};

use crate::crds::crd_schema;

fn check(kind: &str, object: &Value, old: Option<&Value>) -> Result<(), String> {
    Validator::new()
        .validate(&crd_schema(kind), object, old)
        .map_err(|e| e.to_string())
}

fn refused(kind: &str, object: &Value, old: Option<&Value>, message: &str) {
    match check(kind, object, old) {
        Ok(()) => panic!("{kind} update was accepted, expected refusal with {message:?}"),
        Err(e) => assert!(e.contains(message), "expected {message:?} in {e}"),
    }
}

fn topic(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Topic",
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    })
}

#[test]
fn every_cel_rule_compiles() {
    for kind in ["Cluster", "Topic", "Consumer", "User"] {
        let compiled = compile_schema(&crd_schema(kind));
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
    }
}

#[test]
fn topic_partitions_may_only_grow() {
    let old = topic(
        "orders",
        json!({ "clusterRef": { "name": "c" }, "partitions": 6 }),
    );
    let fewer = topic(
        "orders",
        json!({ "clusterRef": { "name": "c" }, "partitions": 3 }),
    );
    let more = topic(
        "orders",
        json!({ "clusterRef": { "name": "c" }, "partitions": 8 }),
    );
    refused("Topic", &fewer, Some(&old), "partitions may only grow");
    check("Topic", &more, Some(&old)).expect("growing partitions is allowed");
    check("Topic", &fewer, None).expect("any partition count on create");
}

#[test]
fn topic_cluster_ref_is_immutable() {
    let old = topic(
        "orders",
        json!({ "clusterRef": { "name": "a" }, "partitions": 1 }),
    );
    let new = topic(
        "orders",
        json!({ "clusterRef": { "name": "b" }, "partitions": 1 }),
    );
    refused("Topic", &new, Some(&old), "clusterRef is immutable");
}

#[test]
fn topic_name_is_immutable_and_defaults_to_object_name() {
    let old = topic("orders", json!({ "clusterRef": { "name": "c" } }));
    let renamed = topic(
        "orders",
        json!({ "clusterRef": { "name": "c" }, "topicName": "payments" }),
    );
    let explicit_same = topic(
        "orders",
        json!({ "clusterRef": { "name": "c" }, "topicName": "orders" }),
    );
    refused("Topic", &renamed, Some(&old), "topicName is immutable");
    check("Topic", &explicit_same, Some(&old))
        .expect("spelling out the defaulted name is no change");
    let old_named = topic(
        "x",
        json!({ "clusterRef": { "name": "c" }, "topicName": "payments" }),
    );
    let cleared = topic("x", json!({ "clusterRef": { "name": "c" } }));
    refused(
        "Topic",
        &cleared,
        Some(&old_named),
        "topicName is immutable",
    );
}

#[test]
fn topic_replication_factor_and_partitions_have_minimum_one() {
    let spec = &crd_schema("Topic")["properties"]["spec"]["properties"];
    assert_eq!(spec["replicationFactor"]["minimum"], json!(1.0));
    assert_eq!(spec["partitions"]["minimum"], json!(1.0));
    assert_eq!(spec["deletionPolicy"]["enum"], json!(["Delete", "Retain"]));
    assert_eq!(
        spec["config"]["additionalProperties"]["nullable"],
        json!(true)
    );
}

#[test]
fn consumer_cluster_ref_is_immutable() {
    let consumer = |cluster: &str| {
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Consumer",
            "metadata": { "name": "billing", "namespace": "default" },
            "spec": { "clusterRef": { "name": cluster }, "groupId": "billing" },
        })
    };
    refused(
        "Consumer",
        &consumer("b"),
        Some(&consumer("a")),
        "clusterRef is immutable",
    );
    check("Consumer", &consumer("a"), Some(&consumer("a"))).expect("unchanged is fine");
}

#[test]
fn consumer_offset_reset_needs_its_strategy_argument() {
    let consumer = |reset: Value| {
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Consumer",
            "metadata": { "name": "billing", "namespace": "default" },
            "spec": { "clusterRef": { "name": "c" }, "groupId": "billing", "offsetReset": reset },
        })
    };
    refused(
        "Consumer",
        &consumer(json!({ "strategy": "timestamp", "nonce": "1" })),
        None,
        "strategy timestamp needs timestamp",
    );
    refused(
        "Consumer",
        &consumer(json!({ "strategy": "offsets", "nonce": "1" })),
        None,
        "strategy offsets needs offsets",
    );
    check(
        "Consumer",
        &consumer(
            json!({ "strategy": "timestamp", "timestamp": "2026-01-01T00:00:00Z", "nonce": "1" }),
        ),
        None,
    )
    .expect("timestamp reset with a timestamp");
    check(
        "Consumer",
        &consumer(json!({ "strategy": "earliest", "nonce": "1" })),
        None,
    )
    .expect("earliest needs nothing else");
}

#[test]
fn cluster_config_cannot_override_operator_owned_keys() {
    let cluster = |config: Value| {
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": { "name": "c", "namespace": "default" },
            "spec": { "storage": { "size": "1Gi" }, "config": config },
        })
    };
    let reserved: Vec<&str> = runnel_operator::crd::reserved_config_keys().collect();
    assert_eq!(
        reserved,
        [
            "node_id",
            "data_dir",
            "listen",
            "advertised_address",
            "admin_listen",
            "broker_rack_file"
        ]
    );
    for key in reserved {
        refused(
            "Cluster",
            &cluster(json!({ key: "1" })),
            None,
            "set by the operator",
        );
    }
    check(
        "Cluster",
        &cluster(json!({ "log_retention_ms": "1000" })),
        None,
    )
    .expect("ordinary broker keys are allowed");
    for key in runnel_config::KEYS {
        if key.cluster == runnel_config::ClusterAccess::Settable {
            check("Cluster", &cluster(json!({ key.name: "1" })), None)
                .unwrap_or_else(|e| panic!("{} is refused: {e:?}", key.name));
        }
    }
}

#[test]
fn cluster_broker_rack_is_refused_with_rack_label() {
    let cluster = |spec: Value| {
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": { "name": "c", "namespace": "default" },
            "spec": spec,
        })
    };
    refused(
        "Cluster",
        &cluster(json!({
            "storage": { "size": "1Gi" },
            "rackLabel": "topology.kubernetes.io/zone",
            "config": { "broker_rack": "r1" },
        })),
        None,
        "config.broker_rack cannot be set with rackLabel",
    );
    for spec in [
        json!({ "storage": { "size": "1Gi" }, "config": { "broker_rack": "r1" } }),
        json!({ "storage": { "size": "1Gi" }, "rackLabel": "topology.kubernetes.io/zone" }),
        json!({
            "storage": { "size": "1Gi" },
            "rackLabel": "topology.kubernetes.io/zone",
            "config": { "log_retention_ms": "1000" },
        }),
    ] {
        check("Cluster", &cluster(spec.clone()), None)
            .unwrap_or_else(|e| panic!("{spec} is refused: {e}"));
    }
}

fn cluster_with_storage(storage: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": { "name": "c", "namespace": "default" },
        "spec": { "storage": storage },
    })
}

#[test]
fn cluster_storage_may_grow_but_never_shrink() {
    let old = cluster_with_storage(json!({ "size": "10Gi" }));
    check(
        "Cluster",
        &cluster_with_storage(json!({ "size": "20Gi" })),
        Some(&old),
    )
    .expect("growing storage is allowed");
    check(
        "Cluster",
        &cluster_with_storage(json!({ "size": "10240Mi" })),
        Some(&old),
    )
    .expect("the same size spelled otherwise is no change");
    for smaller in ["5Gi", "10G", "10239Mi"] {
        refused(
            "Cluster",
            &cluster_with_storage(json!({ "size": smaller })),
            Some(&old),
            "storage.size may only grow",
        );
    }
    check(
        "Cluster",
        &cluster_with_storage(json!({ "size": "1Gi" })),
        None,
    )
    .expect("any size on create");
    refused(
        "Cluster",
        &cluster_with_storage(json!({ "size": "ten gigs" })),
        None,
        "must be a Kubernetes quantity",
    );
}

#[test]
fn cluster_storage_class_is_immutable() {
    let fast = cluster_with_storage(json!({ "size": "10Gi", "storageClass": "fast" }));
    let default = cluster_with_storage(json!({ "size": "10Gi" }));
    for (old, new) in [
        (
            &fast,
            cluster_with_storage(json!({ "size": "10Gi", "storageClass": "slow" })),
        ),
        (&fast, default.clone()),
        (&default, fast.clone()),
    ] {
        refused(
            "Cluster",
            &new,
            Some(old),
            "storage.storageClass is immutable",
        );
    }
    check(
        "Cluster",
        &cluster_with_storage(json!({ "size": "20Gi", "storageClass": "fast" })),
        Some(&fast),
    )
    .expect("a grow in the same class is allowed");
}

fn user(cluster: &str, authentication: Value, acls: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "User",
        "metadata": { "name": "alice", "namespace": "default" },
        "spec": { "cluster": cluster, "authentication": authentication, "acls": acls },
    })
}

#[test]
fn user_cluster_is_immutable() {
    let scram = json!({ "type": "scram-sha-512" });
    let old = user("a", scram.clone(), json!([]));
    refused(
        "User",
        &user("b", scram.clone(), json!([])),
        Some(&old),
        "cluster is immutable",
    );
    check(
        "User",
        &user("a", json!({ "type": "scram-sha-256" }), json!([])),
        Some(&old),
    )
    .expect("the mechanism may change");
}

#[test]
fn user_tls_authentication_takes_no_password() {
    let with_password = json!({
        "type": "tls",
        "password": { "secretKeyRef": { "name": "s", "key": "password" } },
    });
    refused(
        "User",
        &user("a", with_password, json!([])),
        None,
        "a tls user has no password",
    );
    check(
        "User",
        &user("a", json!({ "type": "tls" }), json!([])),
        None,
    )
    .expect("tls alone");
}

#[test]
fn user_acls_name_their_resource_except_the_cluster() {
    let scram = json!({ "type": "scram-sha-512" });
    refused(
        "User",
        &user(
            "a",
            scram.clone(),
            json!([{ "resourceType": "topic", "operation": "read" }]),
        ),
        None,
        "name is required",
    );
    refused(
        "User",
        &user(
            "a",
            scram.clone(),
            json!([{ "resourceType": "cluster", "name": "other", "operation": "alter" }]),
        ),
        None,
        "name is required, except for the cluster resource",
    );
    refused(
        "User",
        &user(
            "a",
            scram.clone(),
            json!([{ "resourceType": "cluster", "patternType": "prefixed", "operation": "alter" }]),
        ),
        None,
        "the cluster resource takes patternType literal",
    );
    check(
        "User",
        &user(
            "a",
            scram,
            json!([
                { "resourceType": "cluster", "operation": "idempotentWrite" },
                { "resourceType": "topic", "name": "orders-", "patternType": "prefixed",
                  "operation": "read" },
            ]),
        ),
        None,
    )
    .expect("a cluster ACL without a name and a prefixed topic ACL");
}

fn cluster_with_listeners(listeners: Value, require_tls_external: bool) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": { "name": "demo", "namespace": "default" },
        "spec": {
            "replicas": 3,
            "storage": { "size": "1Gi" },
            "listeners": listeners,
            "requireTlsExternal": require_tls_external,
        },
    })
}

#[test]
fn cluster_listeners_refuse_impossible_specs() {
    let tls = json!({ "secretName": "kafka-tls" });
    let cases = [
        (
            json!([{ "name": "a", "port": 9094 }, { "name": "a", "port": 9095 }]),
            false,
            "listener names must be unique",
        ),
        (
            json!([{ "name": "a", "port": 9094 }, { "name": "b", "port": 9094 }]),
            false,
            "listener ports must be unique",
        ),
        (
            json!([{ "name": "a", "port": 9094, "authentication": "tls" }]),
            false,
            "authentication tls (client certificates) needs tls: true",
        ),
        (
            json!([{ "name": "a", "port": 9094, "tls": true }]),
            false,
            "a tls listener needs a certificate",
        ),
        (
            json!([{ "name": "a", "port": 9092 }]),
            false,
            "are the brokers' own",
        ),
        (
            json!([{ "name": "replication", "port": 9094 }]),
            false,
            "the listener name replication is the operator's own",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "loadbalancer",
                     "advertisedHostTemplate": "b{ordinal}.example.com" }]),
            true,
            "requireTlsExternal: every loadbalancer and nodeport listener needs tls: true",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "nodeport",
                     "advertisedHostTemplate": "n{ordinal}.example.com" }]),
            true,
            "requireTlsExternal: every loadbalancer and nodeport listener needs tls: true",
        ),
        (
            json!([{ "name": "a", "port": 9094, "tls": true,
                     "certificate": { "secretName": "kafka-tls",
                                      "certManager": { "issuerRef": { "name": "ca" } } } }]),
            false,
            "a certificate is exactly one of secretName and certManager",
        ),
        (
            json!([{ "name": "a", "port": 9094, "tls": true, "certificate": {} }]),
            false,
            "a certificate is exactly one of secretName and certManager",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "nodeport" }]),
            false,
            "a nodeport listener needs advertisedHostTemplate",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "loadbalancer",
                     "advertisedHostTemplate": "b{ordinal}.example.com",
                     "nodePorts": [31000] }]),
            false,
            "nodePorts is only for nodeport listeners",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "nodeport",
                     "advertisedHostTemplate": "n{ordinal}.example.com",
                     "nodePorts": [31000, 9094] }]),
            false,
            "node ports are in 30000-32767",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "nodeport",
                     "advertisedHostTemplate": "n{ordinal}.example.com",
                     "nodePorts": [31000, 31000] }]),
            false,
            "nodePorts must be unique",
        ),
        (
            json!([{ "name": "ext", "port": 9094, "type": "loadbalancer" }]),
            false,
            "a loadbalancer listener needs advertisedHostTemplate",
        ),
        (
            json!([
                { "name": "a", "port": 9094, "tls": true, "certificate": tls },
                { "name": "b", "port": 9095, "tls": true, "authentication": "tls",
                  "certificate": tls },
            ]),
            false,
            "apply to every tls listener or to none",
        ),
        (
            json!([
                { "name": "a", "port": 9094, "tls": true, "certificate": tls },
                { "name": "b", "port": 9095, "tls": true,
                  "certificate": { "secretName": "other" } },
            ]),
            false,
            "every tls listener uses the same certificate",
        ),
    ];
    for (listeners, require, message) in cases {
        refused(
            "Cluster",
            &cluster_with_listeners(listeners, require),
            None,
            message,
        );
    }
    check(
        "Cluster",
        &cluster_with_listeners(
            json!([
                { "name": "internal", "port": 9094, "authentication": "scram-sha-512" },
                { "name": "ext", "port": 9095, "type": "loadbalancer", "tls": true,
                  "authentication": "tls", "certificate": tls,
                  "advertisedHostTemplate": "b{ordinal}.example.com" },
            ]),
            true,
        ),
        None,
    )
    .expect("an internal SASL listener and an external mTLS one");
    check(
        "Cluster",
        &cluster_with_listeners(
            json!([
                { "name": "ext", "port": 9095, "type": "nodeport", "tls": true,
                  "certificate": tls, "advertisedHostTemplate": "n{ordinal}.example.com",
                  "nodePorts": [31000, 31001] },
                { "name": "other", "port": 9096, "type": "nodeport", "tls": true,
                  "certificate": tls, "advertisedHostTemplate": "n{ordinal}.example.com" },
            ]),
            true,
        ),
        None,
    )
    .expect("nodeport listeners with given and allocated node ports");
    let cert_manager = json!({ "certManager": { "issuerRef": { "name": "ca",
                                                               "kind": "ClusterIssuer" } } });
    check(
        "Cluster",
        &cluster_with_listeners(
            json!([{ "name": "a", "port": 9094, "tls": true, "certificate": cert_manager }]),
            false,
        ),
        None,
    )
    .expect("a certificate from cert-manager");
}
