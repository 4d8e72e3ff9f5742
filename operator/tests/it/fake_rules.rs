//! The fake apiserver refuses and behaves as a real kube-apiserver does: server-side apply
//! field ownership, CRD schema and CEL validation, the status subresource, resourceVersion,
//! generation, finalizers and owner-reference garbage collection. Each test cites the
//! Kubernetes behaviour it holds the fake to; they talk raw HTTP through a `kube::Client` so the
//! exact status codes and Status bodies are visible.

use http::{Method, Request};
use kube::api::{Api, DeleteParams, PropagationPolicy};
use kube::client::Body;
use runnel_operator::crd::Cluster;
use serde_json::{json, Value};

use crate::fake_api::FakeApi;
use crate::harness::{Env, NS};

const CM: &str = "/api/v1/namespaces/kafka/configmaps";
const STS: &str = "/apis/apps/v1/namespaces/kafka/statefulsets";
const TOPICS: &str = "/apis/runnel.dev/v1alpha1/namespaces/kafka/topics";

/// One raw request: (status code, JSON body).
async fn call(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Value,
) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let res = client.send(req).await.expect("the fake answers");
    let code = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn get(client: &kube::Client, path: &str) -> Value {
    let (code, obj) = call(client, Method::GET, path, "", Value::Null).await;
    assert_eq!(code, 200, "GET {path}: {obj}");
    obj
}

async fn post(client: &kube::Client, collection: &str, obj: Value) -> Value {
    let (code, created) = call(client, Method::POST, collection, "application/json", obj).await;
    assert_eq!(code, 201, "POST {collection}: {created}");
    created
}

async fn apply(
    client: &kube::Client,
    path: &str,
    manager: &str,
    force: bool,
    obj: Value,
) -> (u16, Value) {
    let path = format!("{path}?fieldManager={manager}&force={force}");
    call(
        client,
        Method::PATCH,
        &path,
        "application/apply-patch+yaml",
        obj,
    )
    .await
}

async fn merge_patch(client: &kube::Client, path: &str, query: &str, patch: Value) -> (u16, Value) {
    let path = format!("{path}{query}");
    call(
        client,
        Method::PATCH,
        &path,
        "application/merge-patch+json",
        patch,
    )
    .await
}

async fn put(client: &kube::Client, path: &str, obj: Value) -> (u16, Value) {
    call(client, Method::PUT, path, "application/json", obj).await
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data})
}

/// The managedFields entry of `manager` with `operation` (and `subresource`, "" for none).
fn entry<'a>(
    obj: &'a Value,
    manager: &str,
    operation: &str,
    subresource: &str,
) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| {
            e["manager"] == manager
                && e["operation"] == operation
                && e["subresource"].as_str().unwrap_or_default() == subresource
        })
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string()
}

fn topic(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1", "kind": "Topic",
        "metadata": {"name": name}, "spec": spec,
    })
}

fn causes(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["field"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Server-side apply: the applier owns exactly the fields of its applied configuration, and
/// fields it applied before but no longer does are removed ("Server-Side Apply", section
/// "Merge strategy": fields removed from a manager's config are removed from the object when no
/// other manager owns them).
#[tokio::test]
async fn apply_owns_exactly_the_applied_fields_and_removes_the_ones_it_stops_applying() {
    let client = FakeApi::new().client();
    let path = format!("{CM}/cm");
    let (code, created) = apply(
        &client,
        &path,
        "alice",
        false,
        config_map(json!({"a": "1", "b": "2"})),
    )
    .await;
    assert_eq!(
        code, 201,
        "an apply of a missing object creates it: {created}"
    );
    let alice = entry(&created, "alice", "Apply", "").expect("alice's Apply entry");
    assert_eq!(alice["fieldsType"], "FieldsV1");
    assert_eq!(alice["fieldsV1"], json!({"f:data": {"f:a": {}, "f:b": {}}}));

    let (code, cm) = apply(
        &client,
        &path,
        "alice",
        false,
        config_map(json!({"a": "1"})),
    )
    .await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(
        cm["data"],
        json!({"a": "1"}),
        "b is no longer applied by its only owner"
    );
    assert_eq!(
        entry(&cm, "alice", "Apply", "").expect("entry")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );

    // A field that another manager also owns stays when one of them stops applying it.
    apply(
        &client,
        &path,
        "alice",
        false,
        config_map(json!({"a": "1", "b": "2"})),
    )
    .await;
    let (code, _) = apply(&client, &path, "bob", false, config_map(json!({"b": "2"}))).await;
    assert_eq!(
        code, 200,
        "the same value is shared ownership, not a conflict"
    );
    let (_, cm) = apply(
        &client,
        &path,
        "alice",
        false,
        config_map(json!({"a": "1"})),
    )
    .await;
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}), "bob still owns b");
}

/// Keyed lists (`containers` by `name`) merge item by item under server-side apply: an item
/// the applier stops applying goes, another manager's item stays (`x-kubernetes-list-type:
/// map`, `patchMergeKey: name`).
#[tokio::test]
async fn apply_merges_keyed_lists_by_key_and_removes_items_the_applier_dropped() {
    let client = FakeApi::new().client();
    let sts = |containers: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"serviceName": "s", "selector": {"matchLabels": {"app": "s"}},
                     "template": {"metadata": {"labels": {"app": "s"}},
                                  "spec": {"containers": containers}}},
        })
    };
    let path = format!("{STS}/s");
    let (code, _) = apply(
        &client,
        &path,
        "op",
        false,
        sts(json!([
            {"name": "broker", "image": "b:1"}, {"name": "agent", "image": "a:1"}
        ])),
    )
    .await;
    assert_eq!(code, 201);
    let (code, obj) = apply(
        &client,
        &path,
        "sidecar-injector",
        false,
        sts(json!([
            {"name": "proxy", "image": "p:1"}
        ])),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    let names = |obj: &Value| -> Vec<String> {
        obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert_eq!(
        names(&obj),
        ["broker", "agent", "proxy"],
        "items merge by name"
    );
    let (_, obj) = apply(
        &client,
        &path,
        "op",
        false,
        sts(json!([
            {"name": "broker", "image": "b:2"}
        ])),
    )
    .await;
    assert_eq!(
        names(&obj),
        ["broker", "proxy"],
        "agent dropped, proxy is another manager's"
    );
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "b:2"
    );
}

/// Applying a field another manager owns with a different value is a 409 Conflict naming the
/// manager and the field, unless forced; forcing moves the ownership ("Server-Side Apply",
/// section "Conflicts").
#[tokio::test]
async fn apply_of_another_managers_field_conflicts_unless_forced() {
    let client = FakeApi::new().client();
    let path = format!("{CM}/cm");
    apply(
        &client,
        &path,
        "other-manager",
        false,
        config_map(json!({"foo": "1"})),
    )
    .await;
    let (code, status) = apply(&client, &path, "me", false, config_map(json!({"foo": "2"}))).await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"other-manager\": .data.foo"
    );
    assert_eq!(
        status["details"]["causes"][0]["type"],
        "FieldManagerConflict"
    );
    assert_eq!(
        get(&client, &path).await["data"]["foo"],
        "1",
        "nothing changed"
    );

    let (code, cm) = apply(&client, &path, "me", true, config_map(json!({"foo": "2"}))).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["data"]["foo"], "2");
    assert!(
        entry(&cm, "other-manager", "Apply", "").is_none(),
        "other-manager lost its only field: {cm}"
    );
    assert_eq!(
        entry(&cm, "me", "Apply", "").expect("me")["fieldsV1"],
        json!({"f:data": {"f:foo": {}}})
    );

    // A field owned through an Update (kubectl edit, a merge patch) conflicts too, and the
    // message says so with the manager's API version and time.
    merge_patch(
        &client,
        &path,
        "?fieldManager=editor",
        json!({"data": {"bar": "x"}}),
    )
    .await;
    let (code, status) = apply(
        &client,
        &path,
        "me",
        false,
        config_map(json!({"foo": "2", "bar": "y"})),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with("Apply failed with 1 conflict: conflict with \"editor\" using v1 at ")
            && message.ends_with(": .data.bar"),
        "{message}"
    );
}

/// Non-apply writes (POST, PUT, merge and JSON patch) record an `Update` manager owning the
/// fields they set or changed, taken from whoever owned them before ("Server-Side Apply",
/// section "Field management").
#[tokio::test]
async fn updates_record_an_update_manager_owning_the_fields_they_changed() {
    let client = FakeApi::new().client();
    let (code, cm) = call(
        &client,
        Method::POST,
        &format!("{CM}?fieldManager=creator"),
        "application/json",
        config_map(json!({"a": "1", "b": "2"})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        entry(&cm, "creator", "Update", "").expect("creator")["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    let path = format!("{CM}/cm");
    let (_, cm) = merge_patch(
        &client,
        &path,
        "?fieldManager=patcher",
        json!({"data": {"a": "9"}}),
    )
    .await;
    assert_eq!(
        entry(&cm, "patcher", "Update", "").expect("patcher")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&cm, "creator", "Update", "").expect("creator")["fieldsV1"],
        json!({"f:data": {"f:b": {}}}),
        "the changed field moved to the patcher"
    );
}

/// The status subresource's writes are managed apart: an apply to `/status` is recorded with
/// `subresource: status`, and the same manager's apply of the main resource neither conflicts
/// with nor removes it ("Server-Side Apply", managedFields `subresource`).
#[tokio::test]
async fn status_applies_are_tracked_apart_from_the_main_resource() {
    let client = FakeApi::new().client();
    let path = format!("{TOPICS}/t");
    let (code, _) = apply(
        &client,
        &path,
        "op",
        true,
        topic("t", json!({"clusterRef": {"name": "c"}})),
    )
    .await;
    assert_eq!(code, 201);
    let status = json!({"apiVersion": "runnel.dev/v1alpha1", "kind": "Topic",
                        "status": {"partitions": 1}});
    let (code, t) = apply(&client, &format!("{path}/status"), "op", true, status).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        entry(&t, "op", "Apply", "status").expect("status entry")["fieldsV1"],
        json!({"f:status": {"f:partitions": {}}})
    );
    assert!(
        entry(&t, "op", "Apply", "").is_some(),
        "the main entry stays"
    );
    let (_, t) = apply(
        &client,
        &path,
        "op",
        true,
        topic("t", json!({"clusterRef": {"name": "c"}, "partitions": 2})),
    )
    .await;
    assert_eq!(
        t["status"]["partitions"], 1,
        "a main apply leaves the status alone"
    );
    assert_eq!(t["spec"]["partitions"], 2);
}

/// Custom resources are checked against the CRD's OpenAPI schema on create and update; each
/// violation is a cause of a 422 Invalid naming the field ("Validation" in "Extend the
/// Kubernetes API with CustomResourceDefinitions").
#[tokio::test]
async fn custom_resources_violating_the_crd_schema_are_refused_with_422() {
    let client = FakeApi::new().client();
    let cases = [
        (
            json!({"clusterRef": {"name": "c"}, "partitions": 0}),
            "Topic.runnel.dev \"t\" is invalid: spec.partitions: Invalid value: 0: spec.partitions \
             in body should be greater than or equal to 1",
        ),
        (
            json!({"clusterRef": {"name": "c"}, "partitions": "three"}),
            "Topic.runnel.dev \"t\" is invalid: spec.partitions: Invalid value: \"string\": \
             spec.partitions in body must be of type integer: \"string\"",
        ),
        (
            json!({"clusterRef": {"name": "c"}, "deletionPolicy": "Keep"}),
            "Topic.runnel.dev \"t\" is invalid: spec.deletionPolicy: Unsupported value: \"Keep\": \
             supported values: \"Delete\", \"Retain\"",
        ),
        (
            json!({"clusterRef": {"name": "c"}, "topicName": "no spaces"}),
            "Topic.runnel.dev \"t\" is invalid: spec.topicName: Invalid value: \"no spaces\": \
             spec.topicName in body should match '^[a-zA-Z0-9._-]+$'",
        ),
        (
            json!({"clusterRef": {"name": "c"}, "topicName": "x".repeat(250)}),
            "Topic.runnel.dev \"t\" is invalid: spec.topicName: Too long: may not be longer than 249",
        ),
        (json!({"partitions": 1}), "Topic.runnel.dev \"t\" is invalid: spec.clusterRef: Required value"),
    ];
    for (spec, message) in cases {
        let (code, status) = call(
            &client,
            Method::POST,
            TOPICS,
            "application/json",
            topic("t", spec.clone()),
        )
        .await;
        assert_eq!(code, 422, "{spec}: {status}");
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["message"], message, "{spec}");
    }
    // The same checks hold on update.
    post(
        &client,
        TOPICS,
        topic("t", json!({"clusterRef": {"name": "c"}})),
    )
    .await;
    let (code, status) = merge_patch(
        &client,
        &format!("{TOPICS}/t"),
        "",
        json!({"spec": {"replicationFactor": 0}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(causes(&status), ["spec.replicationFactor"]);
}

/// Unknown fields are pruned, not refused, and schema defaults are filled in ("Field pruning"
/// and "Defaulting" in the CustomResourceDefinition docs); a create resets the status of a
/// resource with a status subresource.
#[tokio::test]
async fn unknown_fields_are_pruned_and_defaults_applied() {
    let client = FakeApi::new().client();
    let mut t = topic(
        "t",
        json!({"clusterRef": {"name": "c", "extra": 1}, "bogus": true}),
    );
    t["status"] = json!({"partitions": 7});
    t["unknownTop"] = json!("x");
    let created = post(&client, TOPICS, t).await;
    assert_eq!(created["spec"]["clusterRef"], json!({"name": "c"}));
    assert!(created["spec"].get("bogus").is_none(), "{created}");
    assert!(created.get("unknownTop").is_none(), "{created}");
    assert_eq!(created["spec"]["partitions"], 1, "schema default");
    assert_eq!(
        created["spec"]["deletionPolicy"], "Delete",
        "schema default"
    );
    assert!(
        created.get("status").is_none(),
        "status is not written by a create: {created}"
    );
}

/// `x-kubernetes-validations` rules run on create and update, with `oldSelf` on update; a
/// failure is a 422 whose cause is the rule's field and message ("Validation rules").
#[tokio::test]
async fn cel_rules_refuse_what_can_never_be_applied_with_422() {
    let client = FakeApi::new().client();
    post(
        &client,
        TOPICS,
        topic("t", json!({"clusterRef": {"name": "c"}, "partitions": 6})),
    )
    .await;
    let path = format!("{TOPICS}/t");
    let (code, status) = merge_patch(&client, &path, "", json!({"spec": {"partitions": 3}})).await;
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with("Topic.runnel.dev \"t\" is invalid: spec")
            && message.contains("Invalid value: ")
            && message.contains("partitions may only grow"),
        "{message}"
    );
    let (code, status) = merge_patch(
        &client,
        &path,
        "",
        json!({"spec": {"clusterRef": {"name": "d"}}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .expect("message")
        .contains("clusterRef is immutable"));
    let (code, _) = merge_patch(&client, &path, "", json!({"spec": {"partitions": 8}})).await;
    assert_eq!(code, 200, "growing is allowed");
}

/// Writes through `/status` are validated against the status schema only: a spec that the
/// schema would refuse is not looked at, an invalid status is refused ("Status subresource").
#[tokio::test]
async fn status_writes_are_validated_against_the_status_schema() {
    let client = FakeApi::new().client();
    post(
        &client,
        TOPICS,
        topic("t", json!({"clusterRef": {"name": "c"}})),
    )
    .await;
    let path = format!("{TOPICS}/t/status");
    let (code, status) = merge_patch(
        &client,
        &path,
        "",
        json!({"status": {"conditions": [{"type": "Ready"}]}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        causes(&status)
            .iter()
            .all(|f| f.starts_with("status.conditions[0].")),
        "{status}"
    );
    assert!(causes(&status).contains(&"status.conditions[0].reason".to_string()));
    let (code, t) = merge_patch(
        &client,
        &path,
        "",
        json!({"status": {"partitions": 1}, "spec": {"partitions": -5}}),
    )
    .await;
    assert_eq!(
        code, 200,
        "the spec in a status write is ignored, not validated: {t}"
    );
    assert_eq!(t["spec"]["partitions"], 1);
    assert_eq!(t["status"]["partitions"], 1);
}

/// With a status subresource, writes to the main resource ignore `.status`, and writes to
/// `/status` ignore everything but `.status` ("Subresources": "PUT/POST/PATCH requests to the
/// custom resource ignore changes to the status stanza"; the same holds for StatefulSets,
/// Pods and claims).
#[tokio::test]
async fn status_and_main_resource_writes_touch_only_their_own_part() {
    let client = FakeApi::new().client();
    post(
        &client,
        TOPICS,
        topic("t", json!({"clusterRef": {"name": "c"}})),
    )
    .await;
    let path = format!("{TOPICS}/t");
    merge_patch(
        &client,
        &format!("{path}/status"),
        "",
        json!({"status": {"partitions": 1}}),
    )
    .await;
    let (code, t) = merge_patch(
        &client,
        &path,
        "",
        json!({"status": {"partitions": 9}, "metadata": {"labels": {"l": "1"}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        t["status"]["partitions"], 1,
        "a main write does not change status"
    );
    assert_eq!(t["metadata"]["labels"]["l"], "1");
    let (_, t) = merge_patch(
        &client,
        &format!("{path}/status"),
        "",
        json!({"status": {"partitions": 2}, "spec": {"partitions": 4},
               "metadata": {"labels": {"l": "2"}, "annotations": {"a": "1"}}}),
    )
    .await;
    assert_eq!(t["status"]["partitions"], 2);
    assert_eq!(
        t["spec"]["partitions"], 1,
        "a status write does not change spec"
    );
    assert_eq!(t["metadata"]["labels"], json!({"l": "1"}), "nor labels");
    assert!(
        t["metadata"].get("annotations").is_none(),
        "nor annotations"
    );

    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                     "spec": {"replicas": 1, "serviceName": "s"}, "status": {"replicas": 5}});
    let created = post(&client, STS, sts).await;
    assert!(
        created.get("status").is_none(),
        "a create resets the status: {created}"
    );
    let (_, s) = merge_patch(
        &client,
        &format!("{STS}/s"),
        "",
        json!({"status": {"replicas": 3}}),
    )
    .await;
    assert!(s.get("status").is_none(), "{s}");
}

/// `metadata.generation` moves only with the spec (not metadata, not status), while
/// `resourceVersion` moves with every change and not with a write that changes nothing
/// (the apiserver skips writing an unchanged object).
#[tokio::test]
async fn generation_follows_the_spec_and_no_op_writes_keep_the_resource_version() {
    let client = FakeApi::new().client();
    let created = post(
        &client,
        TOPICS,
        topic("t", json!({"clusterRef": {"name": "c"}})),
    )
    .await;
    assert_eq!(created["metadata"]["generation"], 1);
    let path = format!("{TOPICS}/t");
    let (_, t) = merge_patch(
        &client,
        &path,
        "",
        json!({"metadata": {"labels": {"l": "1"}}}),
    )
    .await;
    assert_eq!(t["metadata"]["generation"], 1, "a label is not the spec");
    assert_ne!(rv(&t), rv(&created));
    let (_, s) = merge_patch(
        &client,
        &format!("{path}/status"),
        "",
        json!({"status": {"partitions": 1}}),
    )
    .await;
    assert_eq!(
        s["metadata"]["generation"], 1,
        "a status write is not the spec"
    );
    assert_ne!(rv(&s), rv(&t));
    let (_, g) = merge_patch(&client, &path, "", json!({"spec": {"partitions": 2}})).await;
    assert_eq!(g["metadata"]["generation"], 2);

    let (code, same) = merge_patch(&client, &path, "", json!({"spec": {"partitions": 2}})).await;
    assert_eq!(code, 200);
    assert_eq!(rv(&same), rv(&g), "a no-op patch keeps the resourceVersion");
    let (code, same) = put(&client, &path, g.clone()).await;
    assert_eq!(code, 200, "{same}");
    assert_eq!(rv(&same), rv(&g), "a no-op PUT keeps the resourceVersion");
    let applied = topic("t", json!({"clusterRef": {"name": "c"}, "partitions": 2}));
    let (_, first) = apply(&client, &path, "op", true, applied.clone()).await;
    let (_, again) = apply(&client, &path, "op", true, applied).await;
    assert_eq!(
        rv(&again),
        rv(&first),
        "a repeated identical apply is a no-op"
    );
}

/// A write carrying a stale `metadata.resourceVersion` is refused with 409 Conflict
/// (optimistic concurrency, "API Concepts": resource versions), whether PUT, patch or apply.
#[tokio::test]
async fn a_stale_resource_version_is_a_409_conflict() {
    let client = FakeApi::new().client();
    let created = post(&client, CM, config_map(json!({"a": "1"}))).await;
    let path = format!("{CM}/cm");
    let (_, newer) = merge_patch(&client, &path, "", json!({"data": {"a": "2"}})).await;
    assert_ne!(rv(&newer), rv(&created));
    let mut stale = created.clone();
    stale["data"]["a"] = json!("3");
    let (code, status) = put(&client, &path, stale).await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    let stale_rv = json!({"metadata": {"resourceVersion": rv(&created)}, "data": {"a": "4"}});
    assert_eq!(merge_patch(&client, &path, "", stale_rv).await.0, 409);
    let mut applied = config_map(json!({"a": "5"}));
    applied["metadata"]["resourceVersion"] = json!(rv(&created));
    assert_eq!(apply(&client, &path, "op", true, applied).await.0, 409);
    assert_eq!(get(&client, &path).await["data"]["a"], "2");
}

/// `metadata.uid` cannot change (a PUT naming another uid fails its precondition with 409, a
/// patch changing it is invalid), and `creationTimestamp` changes are ignored
/// (the apiserver's `BeforeUpdate` and `ValidateObjectMetaUpdate`).
#[tokio::test]
async fn uid_and_creation_timestamp_are_the_servers() {
    let client = FakeApi::new().client();
    let created = post(&client, CM, config_map(json!({"a": "1"}))).await;
    let path = format!("{CM}/cm");
    let mut other = created.clone();
    other["metadata"]["uid"] = json!("11111111-1111-4111-8111-111111111111");
    let (code, status) = put(&client, &path, other).await;
    assert_eq!(code, 409, "{status}");
    assert!(status["message"]
        .as_str()
        .expect("message")
        .contains("Precondition failed: UID"));
    let (code, status) = merge_patch(&client, &path, "", json!({"metadata": {"uid": "x"}})).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(causes(&status), ["metadata.uid"]);
    let (code, cm) = merge_patch(
        &client,
        &path,
        "",
        json!({"metadata": {"creationTimestamp": "2030-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        cm["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    assert_eq!(cm["metadata"]["uid"], created["metadata"]["uid"]);
}

/// Finalizers hold a deleted object with `deletionTimestamp` set until the last one is removed;
/// no new finalizer may be added meanwhile ("Finalizers"; `ValidateObjectMetaUpdate`: "no new
/// finalizers can be added if the object is being deleted").
#[tokio::test]
async fn finalizers_hold_deletion_and_none_may_be_added_once_it_started() {
    let client = FakeApi::new().client();
    let mut cm = config_map(json!({}));
    cm["metadata"]["finalizers"] = json!(["example.com/a"]);
    post(&client, CM, cm).await;
    let path = format!("{CM}/cm");
    let (code, held) = call(
        &client,
        Method::DELETE,
        &path,
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert!(get(&client, &path).await["metadata"]["deletionTimestamp"].is_string());
    let (code, status) = merge_patch(
        &client,
        &path,
        "",
        json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}}),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "ConfigMap \"cm\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be \
         added if the object is being deleted, found new finalizers []string{\"example.com/b\"}"
    );
    let (code, _) = merge_patch(
        &client,
        &path,
        "",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = call(&client, Method::GET, &path, "", Value::Null).await;
    assert_eq!(code, 404, "gone once the last finalizer is");
}

/// DELETE preconditions (`uid`, `resourceVersion`) that do not match are a 409 Conflict
/// ("DeleteOptions.preconditions").
#[tokio::test]
async fn delete_preconditions_must_match() {
    let client = FakeApi::new().client();
    post(&client, CM, config_map(json!({}))).await;
    let path = format!("{CM}/cm");
    let (code, status) = call(
        &client,
        Method::DELETE,
        &path,
        "application/json",
        json!({"preconditions": {"uid": "not-this-one"}}),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    get(&client, &path).await;
}

/// Garbage collection: deleting an owner deletes the dependents that name its uid in
/// `ownerReferences` (background propagation), a dependent with another live owner only loses
/// the reference, and objects that have no owner reference survive: a Cluster's
/// PersistentVolumeClaims, made by the StatefulSet controller from `volumeClaimTemplates`
/// without an owner, outlive the Cluster and its StatefulSet ("Garbage Collection";
/// "StatefulSets": deleting a StatefulSet does not delete its volumes).
#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_but_claims_outlive_cluster_and_stateful_set() {
    let mut env = Env::new();
    env.ready_cluster("demo", 1).await;
    let api = env.api.clone();
    let claims = || api.list("api/v1", "persistentvolumeclaims", NS);
    assert_eq!(claims().len(), 1, "the kubelet made the claim");
    assert!(
        claims()[0]["metadata"]["ownerReferences"].is_null(),
        "claims from volumeClaimTemplates have no owner"
    );
    assert!(!api.list("api/v1", "pods", NS).is_empty());
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    clusters
        .delete(
            "demo",
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            },
        )
        .await
        .expect("delete Cluster");
    assert!(
        api.get("apis/runnel.dev/v1alpha1", "clusters", NS, "demo")
            .is_none(),
        "the Cluster has no finalizer and is gone"
    );
    assert!(
        api.list("apis/apps/v1", "statefulsets", NS).is_empty(),
        "the Cluster's StatefulSet went with it"
    );
    assert!(api.list("api/v1", "pods", NS).is_empty(), "and its pods");
    assert!(
        api.list("api/v1", "configmaps", NS).is_empty(),
        "and its ConfigMap"
    );
    assert_eq!(
        claims().len(),
        1,
        "the claim outlives its Cluster and StatefulSet"
    );

    // A dependent with two owners survives the deletion of one.
    let client = env.client.clone();
    let a = post(&client, CM, json!({"metadata": {"name": "owner-a"}})).await;
    let b = post(&client, CM, json!({"metadata": {"name": "owner-b"}})).await;
    let owner = |o: &Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]})
    };
    post(
        &client,
        CM,
        json!({"metadata": {"name": "shared", "ownerReferences": [owner(&a), owner(&b)]}}),
    )
    .await;
    call(
        &client,
        Method::DELETE,
        &format!("{CM}/owner-a"),
        "application/json",
        Value::Null,
    )
    .await;
    let shared = get(&client, &format!("{CM}/shared")).await;
    assert_eq!(shared["metadata"]["ownerReferences"], json!([owner(&b)]));
    call(
        &client,
        Method::DELETE,
        &format!("{CM}/owner-b"),
        "application/json",
        Value::Null,
    )
    .await;
    let (code, _) = call(
        &client,
        Method::GET,
        &format!("{CM}/shared"),
        "",
        Value::Null,
    )
    .await;
    assert_eq!(code, 404, "gone with its last owner");
}

#[tokio::test]
async fn an_owner_held_by_a_finalizer_takes_its_dependents_when_the_last_finalizer_goes() {
    let api = FakeApi::new();
    let client = api.client();
    let owner = post(
        &client,
        CM,
        json!({"metadata": {"name": "owner", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    post(
        &client,
        CM,
        json!({"metadata": {"name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": "owner", "uid": owner["metadata"]["uid"],
        }]}}),
    )
    .await;
    call(
        &client,
        Method::DELETE,
        &format!("{CM}/owner"),
        "application/json",
        Value::Null,
    )
    .await;
    let (code, _) = call(
        &client,
        Method::GET,
        &format!("{CM}/dependent"),
        "",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "the owner still exists (held by its finalizer)");
    let (code, body) = call(
        &client,
        Method::PATCH,
        &format!("{CM}/owner"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    for name in ["owner", "dependent"] {
        let (code, _) = call(
            &client,
            Method::GET,
            &format!("{CM}/{name}"),
            "",
            Value::Null,
        )
        .await;
        assert_eq!(
            code, 404,
            "{name} is gone once the last finalizer is removed"
        );
    }
}

const SVC: &str = "/api/v1/namespaces/kafka/services";

fn service(name: &str, type_: &str, port: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "ports": [port]},
    })
}

fn node_port(svc: &Value) -> Option<i64> {
    svc["spec"]["ports"][0]["nodePort"].as_i64()
}

/// kube-apiserver's Service storage: a NodePort Service without a node port gets a free one of
/// the node port range; a given one out of the range or already allocated is a 422 Invalid;
/// an allocated one stays on a server-side apply that omits it; a ClusterIP Service may not
/// have one (422 Forbidden), and one that was NodePort loses it with the type.
#[tokio::test]
async fn node_ports_are_allocated_checked_and_kept_as_the_apiserver_does() {
    let client = FakeApi::new().client();
    let a = post(
        &client,
        SVC,
        service("a", "NodePort", json!({"port": 9095})),
    )
    .await;
    let first = node_port(&a).expect("an allocated node port");
    assert!((30000..=32767).contains(&first), "{a}");

    let (code, status) = call(
        &client,
        Method::POST,
        SVC,
        "application/json",
        service("b", "NodePort", json!({"port": 9095, "nodePort": first})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!(
            "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: {first}: provided \
             port is already allocated"
        )
    );
    let (code, status) = call(
        &client,
        Method::POST,
        SVC,
        "application/json",
        service("b", "NodePort", json!({"port": 9095, "nodePort": 8080})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().is_some_and(|m| m.ends_with(
            "Invalid value: 8080: provided port is not in the valid \
                                          range. The range of valid ports is 30000-32767"
        )),
        "{status}"
    );

    // An apply that creates the Service allocates too; a given free port is taken as given.
    let (code, b) = apply(
        &client,
        &format!("{SVC}/b"),
        "op",
        true,
        service("b", "NodePort", json!({"port": 9095})),
    )
    .await;
    assert_eq!(code, 201, "{b}");
    let second = node_port(&b).expect("allocated");
    assert_ne!(second, first);
    let c = post(
        &client,
        SVC,
        service("c", "NodePort", json!({"port": 9095, "nodePort": 32000})),
    )
    .await;
    assert_eq!(node_port(&c), Some(32000));

    // Later applies that leave nodePort out keep the allocated one, for its manager and others.
    for (manager, name, port) in [("op", "b", second), ("other", "a", first)] {
        let (code, svc) = apply(
            &client,
            &format!("{SVC}/{name}"),
            manager,
            true,
            service(name, "NodePort", json!({"port": 9095, "name": "kafka"})),
        )
        .await;
        assert_eq!(code, 200, "{svc}");
        assert_eq!(node_port(&svc), Some(port), "{svc}");
    }

    // A ClusterIP Service has none: refused when given, dropped with a change of type.
    let (code, status) = call(
        &client,
        Method::POST,
        SVC,
        "application/json",
        service("d", "ClusterIP", json!({"port": 9095, "nodePort": 31000})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("Forbidden: may not be used when `type` is 'ClusterIP'")),
        "{status}"
    );
    let (code, svc) = apply(
        &client,
        &format!("{SVC}/b"),
        "op",
        true,
        service("b", "ClusterIP", json!({"port": 9095})),
    )
    .await;
    assert_eq!(code, 200, "{svc}");
    assert_eq!(node_port(&svc), None, "{svc}");
    // Its port is free again.
    let e = post(
        &client,
        SVC,
        service("e", "NodePort", json!({"port": 9095, "nodePort": second})),
    )
    .await;
    assert_eq!(node_port(&e), Some(second));
}
