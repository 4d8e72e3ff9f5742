//! Storage changes of a Cluster against the strict fake apiserver: what the apiserver refuses
//! of StatefulSet and PersistentVolumeClaim updates, and a `storage.size` grow carried out by
//! expanding the claims and replacing the StatefulSet without restarting a broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use runnel_operator::controller::{self, find_condition};
use runnel_operator::crd::{Cluster, ClusterStatus};
use serde_json::{json, Value};

use crate::harness::{cluster_spec, Env, NS};

fn status_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("an API error, got {other:?}"),
    }
}

/// A StorageClass (cluster-scoped), optionally the default one.
async fn storage_class(env: &Env, name: &str, expandable: bool, default: bool) {
    let resource = ApiResource {
        group: "storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "storage.k8s.io/v1".into(),
        kind: "StorageClass".into(),
        plural: "storageclasses".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &resource);
    let mut obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "example.com/csi",
        "allowVolumeExpansion": expandable,
    }))
    .expect("StorageClass");
    if default {
        obj.metadata.annotations = Some(BTreeMap::from([(
            "storageclass.kubernetes.io/is-default-class".to_string(),
            "true".to_string(),
        )]));
    }
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create StorageClass");
}

async fn seed_stateful_set(env: &Env) -> Api<StatefulSet> {
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let sts = json!({
        "metadata": {"name": "s"},
        "spec": {
            "replicas": 1,
            "serviceName": "s",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "s"}},
            "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [
                {"name": "c", "image": "i:1"}
            ]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }}],
        },
    });
    api.create(
        &PostParams::default(),
        &serde_json::from_value(sts).expect("sts"),
    )
    .await
    .expect("seed StatefulSet");
    api
}

#[tokio::test]
async fn the_fake_refuses_every_immutable_stateful_set_field_change_with_422() {
    let env = Env::new();
    let api = seed_stateful_set(&env).await;
    let changes: [(&str, Value); 4] = [
        ("selector", json!({"matchLabels": {"app": "other"}})),
        ("serviceName", json!("other")),
        (
            "volumeClaimTemplates",
            json!([{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "2Gi"}},
            }}]),
        ),
        ("podManagementPolicy", json!("OrderedReady")),
    ];
    let apply = PatchParams::apply("test").force();
    for (field, value) in changes {
        let merge = api
            .patch(
                "s",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {field: value}})),
            )
            .await
            .expect_err(field);
        let applied = api
            .patch(
                "s",
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": {"name": "s"}, "spec": {field: value},
                })),
            )
            .await
            .expect_err(field);
        let mut replaced = api.get("s").await.expect("get");
        let mut spec = serde_json::to_value(&replaced.spec).expect("json");
        spec[field] = value.clone();
        replaced.spec = serde_json::from_value(spec).expect("spec");
        let put = api
            .replace("s", &PostParams::default(), &replaced)
            .await
            .expect_err(field);
        for err in [merge, applied, put] {
            let (code, message) = status_code(err);
            assert_eq!(code, 422, "{field}: {message}");
            assert!(
                message.contains(
                    "updates to statefulset spec for fields other than 'replicas', \
                 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' \
                 and 'minReadySeconds' are forbidden"
                ),
                "{field}: {message}"
            );
        }
    }
    let sts = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "replicas": 3, "minReadySeconds": 5, "updateStrategy": {"type": "OnDelete"},
                "template": {"spec": {"containers": [{"name": "c", "image": "i:2"}]}},
            }})),
        )
        .await
        .expect("replicas, template, updateStrategy and minReadySeconds may change");
    assert_eq!(sts.spec.replicas, Some(3));
    assert_eq!(sts.spec.service_name.as_deref(), Some("s"));
}

async fn seed_claim(env: &Env, class: Option<&str>, bound: bool) -> Api<PersistentVolumeClaim> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), NS);
    let mut claim = json!({
        "metadata": {"name": "data-s-0"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
        },
    });
    if let Some(class) = class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(claim).expect("claim"),
    )
    .await
    .expect("seed claim");
    // A create resets the status; the volume binder writes it through /status.
    let status = if bound {
        json!({"phase": "Bound", "capacity": {"storage": "2Gi"}})
    } else {
        json!({"phase": "Pending"})
    };
    api.patch_status(
        "data-s-0",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("bind seeded claim");
    api
}

fn size_patch(size: &str) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}}))
}

#[tokio::test]
async fn the_fake_refuses_shrinking_a_claim_and_growing_one_its_class_cannot_expand() {
    let env = Env::new();
    storage_class(&env, "expandable", true, true).await;
    storage_class(&env, "fixed", false, false).await;
    let claims = seed_claim(&env, None, true).await;
    for smaller in ["1Gi", "2047Mi", "2G"] {
        let (code, message) = status_code(
            claims
                .patch("data-s-0", &PatchParams::default(), &size_patch(smaller))
                .await
                .expect_err(smaller),
        );
        assert_eq!(code, 422, "{message}");
        assert!(
            message.contains(
                "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
            ),
            "{message}"
        );
    }
    let (code, message) = status_code(
        claims
            .patch(
                "data-s-0",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"storageClassName": "fixed"}})),
            )
            .await
            .expect_err("class change"),
    );
    assert_eq!(code, 422, "{message}");
    let grown = claims
        .patch("data-s-0", &PatchParams::default(), &size_patch("3Gi"))
        .await
        .expect("the default class allows expansion");
    let requests = grown
        .spec
        .and_then(|s| s.resources)
        .and_then(|r| r.requests);
    assert_eq!(requests.expect("requests")["storage"].0, "3Gi");

    let env = Env::new();
    storage_class(&env, "fixed", false, false).await;
    let claims = seed_claim(&env, Some("fixed"), true).await;
    let (code, message) = status_code(
        claims
            .patch("data-s-0", &PatchParams::default(), &size_patch("3Gi"))
            .await
            .expect_err("no expansion in class fixed"),
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("storageclass that provisions the pvc must support resize"));

    let env = Env::new();
    storage_class(&env, "expandable", true, true).await;
    let claims = seed_claim(&env, None, false).await;
    let (code, message) = status_code(
        claims
            .patch("data-s-0", &PatchParams::default(), &size_patch("3Gi"))
            .await
            .expect_err("unbound claims do not grow"),
    );
    assert_eq!(code, 422, "{message}");
}

#[tokio::test]
async fn deleting_a_stateful_set_deletes_its_pods_unless_they_are_orphaned() {
    for (policy, pods_left) in [
        (PropagationPolicy::Orphan, 1),
        (PropagationPolicy::Background, 0),
    ] {
        let mut env = Env::new();
        env.ready_cluster("demo", 1).await;
        let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
        let delete = DeleteParams {
            propagation_policy: Some(policy.clone()),
            ..DeleteParams::default()
        };
        sts.delete("demo-brokers", &delete).await.expect("delete");
        assert!(sts.get_opt("demo-brokers").await.expect("get").is_none());
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);
        let left = pods.list(&Default::default()).await.expect("list").items;
        assert_eq!(left.len(), pods_left, "{policy:?}");
        for pod in left {
            assert!(
                pod.metadata.owner_references.unwrap_or_default().is_empty(),
                "an orphaned pod has no owner"
            );
        }
    }
}

async fn reconcile(env: &Env, name: &str) -> ClusterStatus {
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api.get(name).await.expect("Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile Cluster");
    api.get(name)
        .await
        .expect("Cluster")
        .status
        .expect("status")
}

fn condition(status: &ClusterStatus, type_: &str) -> (String, String, String) {
    let c = find_condition(&status.conditions, type_)
        .unwrap_or_else(|| panic!("{type_} condition in {:?}", status.conditions));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn grow_cluster(env: &Env, name: &str, size: &str) {
    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"storage": {"size": size}}})),
        )
        .await
        .expect("grow storage.size");
}

fn claim_size(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .map(|r| r["storage"].0.clone())
        .unwrap_or_default()
}

fn template_size(sts: &StatefulSet) -> String {
    let templates = sts.spec.volume_claim_templates.clone().unwrap_or_default();
    assert_eq!(templates.len(), 1);
    templates[0]
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .map(|r| r["storage"].0.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn growing_storage_expands_every_claim_and_replaces_the_stateful_set_without_restarting_a_broker(
) {
    let mut env = Env::new();
    storage_class(&env, "standard", true, true).await;
    env.ready_cluster("demo", 2).await;
    let pids: BTreeMap<String, u32> = env
        .brokers
        .iter()
        .map(|(p, b)| (p.clone(), b.pid()))
        .collect();
    assert_eq!(pids.len(), 2);
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let old_uid = sts_api.get("demo-brokers").await.expect("sts").metadata.uid;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), NS);

    grow_cluster(&env, "demo", "2Gi").await;
    let status = reconcile(&env, "demo").await;
    for ordinal in 0..2 {
        let claim = claims
            .get(&format!("data-demo-brokers-{ordinal}"))
            .await
            .expect("claim");
        assert_eq!(claim_size(&claim), "2Gi", "claim of broker {ordinal}");
    }
    let sts = sts_api
        .get("demo-brokers")
        .await
        .expect("re-created StatefulSet");
    assert_ne!(
        sts.metadata.uid, old_uid,
        "the StatefulSet object was replaced"
    );
    assert_eq!(template_size(&sts), "2Gi");
    let (st, reason, message) = condition(&status, "Storage");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "StorageResizing"),
        "{message}"
    );
    assert!(message.contains("data-demo-brokers-0"), "{message}");
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .contains(&"StorageResizing".to_string()));

    // The StatefulSet controller adopts the orphaned pods and the volumes finish expanding.
    env.kubelet("demo").await;
    let after: BTreeMap<String, u32> = env
        .brokers
        .iter()
        .map(|(p, b)| (p.clone(), b.pid()))
        .collect();
    assert_eq!(after, pids, "no broker process was restarted");
    for (pod_name, pid) in &pids {
        let pod = pods.get(pod_name).await.expect("the pod survived");
        assert_eq!(
            pod.metadata.annotations.unwrap_or_default()["runnel.test/pid"],
            pid.to_string()
        );
        let owners = pod.metadata.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(Some(owners[0].uid.clone()), sts.metadata.uid, "adopted");
    }
    let status = reconcile(&env, "demo").await;
    assert_eq!(condition(&status, "Storage").1, "AsRequested");
    assert_eq!(condition(&status, "Ready").0, "True");
    assert_eq!(status.ready_brokers, 2);
    assert_eq!(
        sts_api.get("demo-brokers").await.expect("sts").metadata.uid,
        sts.metadata.uid,
        "replaced once"
    );
    assert!(
        env.api.forbidden_requests().is_empty(),
        "{:?}",
        env.api.forbidden_requests()
    );
}

#[tokio::test]
async fn a_grow_the_storage_class_cannot_expand_sets_a_condition_and_keeps_the_stateful_set() {
    let mut env = Env::new();
    storage_class(&env, "fixed", false, false).await;
    let mut spec = cluster_spec(1);
    spec.storage.storage_class = Some("fixed".into());
    env.ready_cluster_with("demo", spec).await;
    let sts_api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NS);
    let before = sts_api.get("demo-brokers").await.expect("sts");

    grow_cluster(&env, "demo", "2Gi").await;
    let status = reconcile(&env, "demo").await;
    let (st, reason, message) = condition(&status, "Storage");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "StorageResizeFailed")
    );
    assert!(
        message.contains("data-demo-brokers-0 cannot grow to 2Gi")
            && message.contains("must support resize"),
        "{message}"
    );
    assert!(env
        .api
        .event_reasons(NS, "demo")
        .contains(&"StorageResizeFailed".to_string()));
    let after = sts_api.get("demo-brokers").await.expect("sts kept");
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(template_size(&after), "1Gi");
    assert_eq!(
        condition(&status, "Ready").0,
        "True",
        "the brokers still serve"
    );
}
