//! A small in-memory Kubernetes apiserver behind a real `kube::Client`: GET, LIST, WATCH,
//! POST, PUT, PATCH (server-side apply, merge, JSON patch; main resource and `/status`) and
//! DELETE, generic over JSON objects keyed by API path. It is strict: what a real
//! kube-apiserver refuses, it refuses, so a reconciler that relies on leniency fails a test.
//! (kube-fake-client targets kube 4 and has no WATCH, so it cannot back kube 5's Controller.)
//!
//! The rules it enforces, each proven by a test in `fake_rules.rs` (or `storage.rs`, `rbac.rs`):
//! - **RBAC**: [`FakeApi::client_as`] is held to the chart's rules (403 before any lookup);
//!   [`FakeApi::client_as_service_account`] to what the stored ClusterRoleBindings and
//!   RoleBindings grant that ServiceAccount at the time of each request. Writing a binding is
//!   also held to Kubernetes' escalation check: the writer must have `bind` on the role or hold
//!   every rule of it (403), and a binding's `roleRef` never changes (422).
//! - **Server-side apply** (`fields`): `metadata.managedFields` per manager (Apply or Update,
//!   main resource or `subresource: status`) in FieldsV1; an apply owns exactly its applied
//!   fields and removes those it stops applying that no other manager owns; a different value
//!   for another manager's field is a 409 `Apply failed with N conflict(s): conflict with ...`
//!   unless `force=true`, which moves the ownership; an apply of a missing object creates it;
//!   `fieldManager` is required for apply (422), apiVersion and kind in the body (400); PUT,
//!   merge/JSON patch and POST record an Update manager (`fieldManager`, else the user agent's
//!   product, else `kube-client`) owning the fields they changed. Keyed lists (`containers`,
//!   `env`, `volumes` by name, `ports`, `conditions` by type, `ownerReferences` by uid) merge by
//!   key, `finalizers` as a set, other lists are atomic.
//! - **CRD schema and CEL** (`schema`, the YAML in `crds/`): custom resources are pruned of
//!   unknown fields, defaulted, then checked against the OpenAPI schema and the
//!   `x-kubernetes-validations` rules (`oldSelf` on update) on create and update; violations
//!   are a 422 Invalid with one cause per field (`Topic.runnel.dev "t" is invalid: spec...`).
//!   `/status` writes are checked against the status schema only.
//! - **Status subresource** (runnel CRDs, StatefulSets, Pods, claims, Services, PDBs, ...):
//!   main-resource writes ignore `.status`, `/status` writes ignore everything else, a create
//!   resets the status; `/status` of a resource without one is a 404.
//! - **Metadata**: empty lists and maps are omitted as Go's `omitempty` does (no
//!   `finalizers: []` after the last one is removed); `generation` moves only with changes outside metadata and status;
//!   `resourceVersion` with every change, never with a write that changes nothing; a stale
//!   `resourceVersion` in a PUT, patch or apply is a 409; `uid` cannot change (409 on PUT,
//!   422 on patch); `creationTimestamp`, `deletionTimestamp` and `generation` writes are
//!   ignored; DELETE `preconditions` must match (409).
//! - **Deletion**: finalizers hold an object with a `deletionTimestamp` until the last one is
//!   removed, and no new finalizer may be added meanwhile (422); once it is gone its
//!   dependents (ownerReferences to its uid) are deleted, or orphaned with
//!   `propagationPolicy: Orphan`, or only lose the reference while another owner lives; objects
//!   it does not own are untouched.
//! - **API discovery and installed groups**: `/api`, `/apis`, `/apis/<group>[/<version>]`
//!   list the core group, the built-in groups ([`BUILTIN_GROUPS`]) and the groups of installed
//!   CRDs (the runnel ones, and those a test installs with [`FakeApi::install_crd`], e.g.
//!   cert-manager's); any other group is not installed: 404 for discovery and for its
//!   resources. Discovery is readable by every client, as `system:discovery` grants.
//! - **Service node ports** (`service_node_ports`): a NodePort or LoadBalancer Service's ports
//!   get a free node port of 30000-32767 when none is given and keep it on later writes (server-side
//!   applies included) that leave it out; a given one out of the range or already allocated is
//!   a 422 Invalid, as is one on a ClusterIP Service.
//! - **Immutable built-in fields**: StatefulSet spec fields other than the mutable ones (422);
//!   PersistentVolumeClaim edits other than a permitted storage grow (see `validate_update`).
//!
//! Two kinds of client talk to it: [`FakeApi::client`] is a cluster admin (tests seed and
//! observe state through it, and the harness plays the kubelet with it), while
//! [`FakeApi::client_as`] is held to RBAC rules (the operator runs on one holding the chart's
//! rules, see `rbac.rs`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::rbac::{attributes, Forbidden, Grant, PolicyRule, Rbac};

mod fields;
mod schema;

use fields::{FieldSet, Path, Step};

/// Where an object lives: API base (`api/v1`, `apis/apps/v1`), plural, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) base: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

#[derive(Clone, Debug)]
struct WatchEvent {
    rv: u64,
    key: Key,
    type_: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<WatchEvent>,
    /// `METHOD path` of every request made by an RBAC-bound client, in order.
    rbac_requests: Vec<String>,
    /// The subset of `rbac_requests` refused with 403.
    forbidden: Vec<String>,
    /// CRDs installed by a test ([`FakeApi::install_crd`]) besides the runnel ones in `crds/`
    /// (leaked: a test installs a handful at most).
    installed: Vec<&'static schema::Crd>,
}

/// The fake apiserver; clone it freely (shared state).
#[derive(Clone)]
pub(crate) struct FakeApi {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<WatchEvent>,
}

type RespBody = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: &Value) -> Response<RespBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .expect("response")
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response<RespBody> {
    full(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Everything but metadata and status: a change to it bumps metadata.generation.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// Fields of a StatefulSet spec an update may change; the apiserver refuses any other change.
const MUTABLE_STATEFULSET_FIELDS: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn invalid(kind: &str, name: &str, cause: &str) -> Response<RespBody> {
    status_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{kind} {name:?} is invalid: {cause}"),
    )
}

/// The value in bytes of a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`), if it is one.
/// Written apart from the operator's `storage::quantity_value` on purpose: the fake plays the
/// apiserver, and sharing the operator's parser would let both agree on a bug.
pub(crate) fn quantity_bytes(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// What the apiserver's validation and admission refuse of an update of an existing object
/// (PUT or any PATCH, server-side apply included): StatefulSet spec fields other than
/// [`MUTABLE_STATEFULSET_FIELDS`] (422); PersistentVolumeClaim spec fields other than the
/// requests, a shrinking storage request (422), and a growing one unless the claim is bound
/// and its StorageClass has `allowVolumeExpansion: true` (403, the PersistentVolumeClaimResize
/// admission plugin).
fn validate_update(
    state: &State,
    key: &Key,
    current: &Value,
    next: &Value,
    status: bool,
) -> Result<(), Box<Response<RespBody>>> {
    if status {
        return Ok(());
    }
    match (key.base.as_str(), key.plural.as_str()) {
        ("apis/apps/v1", "statefulsets") => {
            let frozen = |obj: &Value| {
                let mut spec = obj["spec"].clone();
                if let Some(o) = spec.as_object_mut() {
                    for field in MUTABLE_STATEFULSET_FIELDS {
                        o.remove(field);
                    }
                }
                spec
            };
            if frozen(current) != frozen(next) {
                return Err(Box::new(invalid(
                    "StatefulSet.apps",
                    &key.name,
                    "spec: Forbidden: updates to statefulset spec for fields other than \
                     'replicas', 'ordinals', 'template', 'updateStrategy', \
                     'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                )));
            }
            Ok(())
        }
        ("api/v1", "persistentvolumeclaims") => {
            let without_requests = |obj: &Value| {
                let mut spec = obj["spec"].clone();
                if let Some(resources) = spec["resources"].as_object_mut() {
                    resources.remove("requests");
                }
                if let Some(o) = spec.as_object_mut() {
                    o.remove("volumeAttributesClassName");
                }
                spec
            };
            let bound = current["status"]["phase"] == "Bound";
            let immutable = "spec: Forbidden: spec is immutable after creation except \
                             resources.requests and volumeAttributesClassName for bound claims";
            if without_requests(current) != without_requests(next) {
                return Err(Box::new(invalid(
                    "PersistentVolumeClaim",
                    &key.name,
                    immutable,
                )));
            }
            let size = |obj: &Value| {
                obj["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .and_then(quantity_bytes)
            };
            let (old, new) = (size(current), size(next));
            if current["spec"]["resources"]["requests"] == next["spec"]["resources"]["requests"] {
                return Ok(());
            }
            if !bound {
                return Err(Box::new(invalid(
                    "PersistentVolumeClaim",
                    &key.name,
                    immutable,
                )));
            }
            match (old, new) {
                (Some(old), Some(new)) if new < old => Err(Box::new(invalid(
                    "PersistentVolumeClaim",
                    &key.name,
                    "spec.resources.requests.storage: Forbidden: field can not be less than \
                     previous value",
                ))),
                (Some(old), Some(new)) if new > old => {
                    let class = next["spec"]["storageClassName"].as_str().map_or_else(
                        || default_storage_class(state),
                        |name| storage_class(state, name),
                    );
                    if class.is_some_and(|c| c["allowVolumeExpansion"] == true) {
                        Ok(())
                    } else {
                        Err(Box::new(status_error(
                            StatusCode::FORBIDDEN,
                            "Forbidden",
                            format!(
                                "persistentvolumeclaims {:?} is forbidden: only dynamically \
                                 provisioned pvc can be resized and the storageclass that \
                                 provisions the pvc must support resize",
                                key.name
                            ),
                        )))
                    }
                }
                _ => Ok(()),
            }
        }
        ("apis/rbac.authorization.k8s.io/v1", "clusterrolebindings" | "rolebindings")
            if current["roleRef"] != next["roleRef"] =>
        {
            let kind = if key.plural == "rolebindings" {
                "RoleBinding.rbac.authorization.k8s.io"
            } else {
                "ClusterRoleBinding.rbac.authorization.k8s.io"
            };
            Err(Box::new(invalid(
                kind,
                &key.name,
                &format!(
                    "roleRef: Invalid value: {}: cannot change roleRef",
                    next["roleRef"]
                ),
            )))
        }
        _ => Ok(()),
    }
}

/// The CRD serving `key`'s resource: a runnel one from `crds/` or one a test installed.
fn crd_of(state: &State, key: &Key) -> Option<&'static schema::Crd> {
    schema::crd_at(&key.base, &key.plural).or_else(|| {
        state.installed.iter().copied().find(|c| {
            c.plural == key.plural && key.base == format!("apis/{}/{}", c.group, c.version)
        })
    })
}

/// A built-in resource in discovery: plural, kind, namespaced.
type BuiltinResource = (&'static str, &'static str, bool);
/// A served resource: plural, kind, namespaced.
type ServedResource = (String, String, bool);
/// A served group version: group, version, its resources.
type ServedGroup = (String, String, Vec<ServedResource>);

/// The built-in API groups the fake serves (group, version, resources as plural, kind,
/// namespaced), besides the core group `v1` and the groups of installed CRDs. The Prometheus
/// Operator's group is served as if its CRDs were installed (the ServiceMonitor tests expect
/// it); any other group is not installed: 404 for its resources, absent from discovery.
const BUILTIN_GROUPS: [(&str, &str, &[BuiltinResource]); 8] = [
    (
        "apps",
        "v1",
        &[
            ("statefulsets", "StatefulSet", true),
            ("deployments", "Deployment", true),
            ("replicasets", "ReplicaSet", true),
            ("controllerrevisions", "ControllerRevision", true),
        ],
    ),
    ("batch", "v1", &[("jobs", "Job", true)]),
    (
        "policy",
        "v1",
        &[("poddisruptionbudgets", "PodDisruptionBudget", true)],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        &[
            ("clusterroles", "ClusterRole", false),
            ("clusterrolebindings", "ClusterRoleBinding", false),
            ("roles", "Role", true),
            ("rolebindings", "RoleBinding", true),
        ],
    ),
    ("events.k8s.io", "v1", &[("events", "Event", true)]),
    (
        "storage.k8s.io",
        "v1",
        &[("storageclasses", "StorageClass", false)],
    ),
    ("coordination.k8s.io", "v1", &[("leases", "Lease", true)]),
    (
        "monitoring.coreos.com",
        "v1",
        &[("servicemonitors", "ServiceMonitor", true)],
    ),
];

/// The core group's resources (plural, kind, namespaced) in discovery.
const CORE_RESOURCES: [BuiltinResource; 10] = [
    ("pods", "Pod", true),
    ("services", "Service", true),
    ("configmaps", "ConfigMap", true),
    ("secrets", "Secret", true),
    ("serviceaccounts", "ServiceAccount", true),
    ("persistentvolumeclaims", "PersistentVolumeClaim", true),
    ("persistentvolumes", "PersistentVolume", false),
    ("namespaces", "Namespace", false),
    ("nodes", "Node", false),
    ("events", "Event", true),
];

/// Every served group version (`group/version`) with its resources, as discovery lists them.
fn served_groups(state: &State) -> Vec<ServedGroup> {
    let mut groups: Vec<ServedGroup> = BUILTIN_GROUPS
        .iter()
        .map(|(g, v, rs)| {
            (
                g.to_string(),
                v.to_string(),
                rs.iter()
                    .map(|(p, k, n)| (p.to_string(), k.to_string(), *n))
                    .collect(),
            )
        })
        .collect();
    for crd in schema::crds().iter().chain(state.installed.iter().copied()) {
        let resource = (crd.plural.clone(), crd.kind.clone(), crd.namespaced);
        match groups
            .iter_mut()
            .find(|(g, v, _)| *g == crd.group && *v == crd.version)
        {
            Some((_, _, rs)) => rs.push(resource),
            None => groups.push((crd.group.clone(), crd.version.clone(), vec![resource])),
        }
    }
    groups
}

/// Whether the resource at `key` (or collection `base`/`plural`) is served: the core group,
/// a built-in group version, or a CRD's resource.
fn served(state: &State, base: &str, plural: &str) -> bool {
    match base.split('/').collect::<Vec<_>>()[..] {
        ["api", "v1"] => true,
        ["apis", group, version] => served_groups(state).iter().any(|(g, v, rs)| {
            g == group
                && v == version
                && (BUILTIN_GROUPS.iter().any(|(bg, _, _)| *bg == group)
                    || rs.iter().any(|(p, _, _)| p == plural))
        }),
        _ => false,
    }
}

/// 404 for what the apiserver does not serve, in its words.
fn not_served() -> Response<RespBody> {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".into(),
    )
}

fn api_resource_list(group_version: &str, resources: &[ServedResource]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": resources.iter().map(|(plural, kind, namespaced)| json!({
            "name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
            "kind": kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                      "watch"],
        })).collect::<Vec<_>>(),
    })
}

/// API discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`):
/// what is served, and 404 for a group or version that is not; None for other paths.
fn discovery(state: &State, path: &str) -> Option<Response<RespBody>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let groups = served_groups(state);
    let group_json = |g: &str, v: &str| {
        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
        json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
    };
    let body = match segs[..] {
        ["api"] => json!({"kind": "APIVersions", "versions": ["v1"]}),
        ["api", "v1"] => {
            let core: Vec<ServedResource> = CORE_RESOURCES
                .iter()
                .map(|(p, k, n)| (p.to_string(), k.to_string(), *n))
                .collect();
            api_resource_list("v1", &core)
        }
        ["apis"] => json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": groups.iter().map(|(g, v, _)| group_json(g, v)).collect::<Vec<_>>(),
        }),
        ["apis", group] => match groups.iter().find(|(g, _, _)| g == group) {
            Some((g, v, _)) => {
                let mut body = group_json(g, v);
                body["kind"] = json!("APIGroup");
                body["apiVersion"] = json!("v1");
                body
            }
            None => return Some(not_served()),
        },
        ["apis", group, version] => {
            match groups.iter().find(|(g, v, _)| g == group && v == version) {
                Some((g, v, rs)) => api_resource_list(&format!("{g}/{v}"), rs),
                None => return Some(not_served()),
            }
        }
        _ => return None,
    };
    Some(full(StatusCode::OK, &body))
}

/// Whether `path` is an API discovery path, which the `system:discovery` ClusterRole lets
/// every authenticated user read.
fn is_discovery(method: &Method, path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    method == Method::GET
        && matches!(
            segs[..],
            ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _]
        )
}

/// The apiserver's default `--service-node-port-range`.
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// What the apiserver's Service storage does with node ports on a create or update of a
/// Service: a NodePort or LoadBalancer Service's port without `nodePort` keeps the one the
/// same port (number and protocol) held before, else gets the lowest free one of the range; a
/// given one out of the range or held by another Service (or another port of this one) is a
/// 422 Invalid; a `nodePort` on another type is a 422 Forbidden, unless it is the one the
/// Service held before the type changed (then it is dropped, with the type).
fn service_node_ports(
    state: &State,
    key: &Key,
    current: Option<&Value>,
    next: &mut Value,
) -> Result<(), Box<Response<RespBody>>> {
    if (key.base.as_str(), key.plural.as_str()) != ("api/v1", "services") {
        return Ok(());
    }
    let needs = matches!(
        next["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    );
    let type_ = next["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let old_ports: Vec<Value> = current
        .and_then(|c| c["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let protocol = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
    let old_node_port = |p: &Value| {
        old_ports
            .iter()
            .find(|o| o["port"] == p["port"] && protocol(o) == protocol(p))
            .and_then(|o| o["nodePort"].as_i64())
    };
    let mut used: std::collections::BTreeSet<i64> = state
        .objects
        .iter()
        .filter(|(k, _)| k.base == "api/v1" && k.plural == "services" && *k != key)
        .flat_map(|(_, v)| {
            v["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect::<Vec<_>>()
        })
        .collect();
    let Some(ports) = next["spec"]["ports"].as_array_mut() else {
        return Ok(());
    };
    let mut causes = Vec::new();
    // Given (or kept) node ports first, so an allocation never takes one of them.
    for (i, p) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let given = p["nodePort"].as_i64();
        if !needs {
            match given {
                Some(n) if Some(n) == old_node_port(p) => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("nodePort");
                    }
                }
                Some(_) => causes.push(schema::Cause {
                    field,
                    reason: "FieldValueForbidden",
                    message: format!("Forbidden: may not be used when `type` is '{type_}'"),
                }),
                None => {}
            }
            continue;
        }
        let Some(n) = given.or_else(|| old_node_port(p)) else {
            continue;
        };
        if !NODE_PORT_RANGE.contains(&n) {
            causes.push(schema::Cause {
                field,
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {n}: provided port is not in the valid range. The range of \
                     valid ports is {}-{}",
                    NODE_PORT_RANGE.start(),
                    NODE_PORT_RANGE.end()
                ),
            });
        } else if !used.insert(n) {
            causes.push(schema::Cause {
                field,
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {n}: provided port is already allocated"),
            });
        } else {
            p["nodePort"] = json!(n);
        }
    }
    if !causes.is_empty() {
        let obj = next.clone();
        return Err(Box::new(invalid_causes(key, &obj, &causes)));
    }
    if needs {
        for p in ports.iter_mut().filter(|p| p["nodePort"].is_null()) {
            let Some(free) = NODE_PORT_RANGE.clone().find(|n| !used.contains(n)) else {
                return Err(Box::new(status_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "failed to allocate a nodePort: range is full".into(),
                )));
            };
            used.insert(free);
            p["nodePort"] = json!(free);
        }
    }
    Ok(())
}

/// Where RBAC objects live in the fake.
const RBAC_BASE: &str = "apis/rbac.authorization.k8s.io/v1";

/// The rules of the (Cluster)Role `role_ref` names, looked up in `namespace` for a Role; None
/// when it does not exist.
fn role_rules(state: &State, role_ref: &Value, namespace: &str) -> Option<Vec<PolicyRule>> {
    let (plural, namespace) = match role_ref["kind"].as_str()? {
        "ClusterRole" => ("clusterroles", ""),
        "Role" => ("roles", namespace),
        _ => return None,
    };
    let role = state.objects.get(&Key {
        base: RBAC_BASE.into(),
        plural: plural.into(),
        namespace: namespace.into(),
        name: role_ref["name"].as_str()?.into(),
    })?;
    serde_json::from_value(role["rules"].clone()).ok()
}

/// The RBAC of ServiceAccount `namespace/name` as the stored bindings grant it: every
/// ClusterRoleBinding naming it (valid everywhere) and every RoleBinding of its namespace
/// naming it (valid there).
fn service_account_rbac(state: &State, namespace: &str, name: &str) -> Rbac {
    let names_it = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
            })
        })
    };
    let mut grants = Vec::new();
    for (key, binding) in &state.objects {
        if key.base != RBAC_BASE || !names_it(binding) {
            continue;
        }
        let scope = match key.plural.as_str() {
            "clusterrolebindings" => None,
            "rolebindings" => Some(key.namespace.clone()),
            _ => continue,
        };
        if let Some(rules) = role_rules(state, &binding["roleRef"], &key.namespace) {
            grants.push(Grant {
                namespace: scope,
                rules,
            });
        }
    }
    Rbac::new(format!("system:serviceaccount:{namespace}:{name}"), grants)
}

/// Who a client authenticates as.
#[derive(Clone)]
enum Identity {
    /// A user held to fixed rules (the operator under the chart's RBAC).
    Fixed(Arc<Rbac>),
    /// A ServiceAccount token: held to what the stored bindings grant at the time of each
    /// request.
    ServiceAccount { namespace: String, name: String },
}

fn forbidden_response(f: &Forbidden) -> Response<RespBody> {
    full(
        StatusCode::FORBIDDEN,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": f.message, "reason": "Forbidden",
            "details": {"name": f.name, "group": f.group, "kind": f.resource},
            "code": 403,
        }),
    )
}

fn storage_classes(state: &State) -> impl Iterator<Item = &Value> {
    state
        .objects
        .iter()
        .filter(|(k, _)| k.base == "apis/storage.k8s.io/v1" && k.plural == "storageclasses")
        .map(|(_, v)| v)
}

fn storage_class(state: &State, name: &str) -> Option<Value> {
    storage_classes(state)
        .find(|c| c["metadata"]["name"] == name)
        .cloned()
}

/// The StorageClass a claim without `storageClassName` gets (the DefaultStorageClass admission
/// plugin's choice).
fn default_storage_class(state: &State) -> Option<Value> {
    storage_classes(state)
        .find(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        })
        .cloned()
}

/// Resources whose status is a subresource: writes to the main resource ignore `.status`, and
/// `/status` writes change only `.status` (the runnel CRDs declare it too, see `schema`).
const STATUS_SUBRESOURCES: [(&str, &str); 10] = [
    ("api/v1", "pods"),
    ("api/v1", "persistentvolumeclaims"),
    ("api/v1", "persistentvolumes"),
    ("api/v1", "services"),
    ("api/v1", "namespaces"),
    ("apis/apps/v1", "statefulsets"),
    ("apis/apps/v1", "deployments"),
    ("apis/apps/v1", "replicasets"),
    ("apis/batch/v1", "jobs"),
    ("apis/policy/v1", "poddisruptionbudgets"),
];

/// `metadata` fields a client owns (and server-side apply tracks); the rest are the server's.
const CLIENT_METADATA: [&str; 5] = [
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "generateName",
];

/// The time every managedFields entry carries: a fixed one, so that a repeated identical write
/// stays a no-op.
const MANAGED_TIME: &str = "2026-01-01T00:00:00Z";

impl Key {
    fn group(&self) -> &str {
        match self.base.split('/').collect::<Vec<_>>()[..] {
            ["apis", group, _] => group,
            _ => "",
        }
    }

    /// `plural.group` (`statefulsets.apps`, `pods`), as errors name a resource.
    fn resource(&self) -> String {
        match self.group() {
            "" => self.plural.clone(),
            g => format!("{}.{g}", self.plural),
        }
    }

    /// `Kind.group` (`StatefulSet.apps`, `Pod`), as validation errors name a kind.
    fn qualified_kind(&self, obj: &Value) -> String {
        let kind = obj["kind"]
            .as_str()
            .map(str::to_string)
            .or_else(|| schema::crd_at(&self.base, &self.plural).map(|c| c.kind.clone()))
            .unwrap_or_else(|| self.plural.clone());
        match self.group() {
            "" => kind,
            g => format!("{kind}.{g}"),
        }
    }

    fn status_subresource(&self) -> bool {
        STATUS_SUBRESOURCES.contains(&(self.base.as_str(), self.plural.as_str()))
            || schema::crd_at(&self.base, &self.plural).is_some_and(|c| c.status_subresource)
    }
}

/// 409 for a stale resourceVersion (optimistic concurrency), in the apiserver's words.
fn modified_conflict(key: &Key) -> Response<RespBody> {
    status_error(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {:?}: the object has been modified; please \
             apply your changes to the latest version and try again",
            key.resource(),
            key.name
        ),
    )
}

/// 409 for a failed uid/resourceVersion precondition (a PUT's uid, a DELETE's preconditions).
fn precondition_conflict(
    key: &Key,
    what: &str,
    wanted: &Value,
    actual: &Value,
) -> Response<RespBody> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    status_error(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {:?}: Precondition failed: {what} in \
             precondition: {}, {what} in object meta: {}",
            key.resource(),
            key.name,
            s(wanted),
            s(actual)
        ),
    )
}

/// 422 Invalid with one cause per field error, as the apiserver answers a failed validation:
/// `Kind.group "name" is invalid: path: message` (several causes in `[..., ...]`).
fn invalid_causes(key: &Key, obj: &Value, causes: &[schema::Cause]) -> Response<RespBody> {
    let rendered: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let detail = if rendered.len() == 1 {
        rendered[0].clone()
    } else {
        format!("[{}]", rendered.join(", "))
    };
    let kind = obj["kind"]
        .as_str()
        .map(str::to_string)
        .or_else(|| schema::crd_at(&key.base, &key.plural).map(|c| c.kind.clone()))
        .unwrap_or_default();
    full(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{} {:?} is invalid: {detail}", key.qualified_kind(obj), key.name),
            "reason": "Invalid",
            "details": {
                "name": key.name, "group": key.group(), "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            },
            "code": 422,
        }),
    )
}

/// One `metadata.managedFields` entry, decoded.
#[derive(Clone, Debug)]
struct Manager {
    manager: String,
    /// `Apply` or `Update`.
    operation: String,
    /// `status` for writes through the status subresource, empty otherwise.
    subresource: String,
    api_version: String,
    fields: FieldSet,
}

impl Manager {
    fn same(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The manager as apply conflict messages print it (the apiserver's `printManager`).
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {} at {MANAGED_TIME}", self.api_version));
        }
        s
    }
}

fn managers(obj: &Value) -> Vec<Manager> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Manager {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().unwrap_or_default().into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            fields: fields::from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Stores `list` as `obj`'s managedFields, keeping only fields the object still has and
/// dropping managers left with none.
fn set_managers(obj: &mut Value, mut list: Vec<Manager>) {
    for m in &mut list {
        m.fields.retain(|p| fields::get(obj, p).is_some());
    }
    list.retain(|m| !m.fields.is_empty());
    let entries: Vec<Value> = list
        .iter()
        .map(|m| {
            let mut e = json!({
                "manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                "time": MANAGED_TIME, "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&m.fields),
            });
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    if entries.is_empty() {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = json!(entries);
    }
}

/// The part of `obj` that a write to the main resource (`status` false) or to `/status` owns:
/// the status alone, or everything but apiVersion, kind, the server's metadata and (with a
/// status subresource) the status.
fn owned_part(obj: &Value, status: bool, status_subresource: bool) -> Value {
    if status {
        return match &obj["status"] {
            Value::Null => json!({}),
            s => json!({ "status": s }),
        };
    }
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if status_subresource {
            o.remove("status");
        }
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| CLIENT_METADATA.contains(&k.as_str()));
        }
        if o.get("metadata")
            .is_some_and(|m| m.as_object().is_some_and(|m| m.is_empty()))
        {
            o.remove("metadata");
        }
        o.retain(|_, v| !v.is_null());
    }
    v
}

/// The field manager of a non-apply write: `?fieldManager=`, else the user agent's product
/// (`kubectl/v1.31` → `kubectl`), else `kube-client`.
fn update_manager(q: &BTreeMap<String, String>, user_agent: &str) -> String {
    q.get("fieldManager")
        .cloned()
        .or_else(|| {
            user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "kube-client".into())
}

/// What an Update (PUT, merge or JSON patch, POST) does to ownership: `manager` gets the
/// fields it added or changed, which every other manager of the same subresource loses.
fn record_update(
    list: &mut Vec<Manager>,
    manager: &str,
    subresource: &str,
    api_version: &str,
    before: &Value,
    after: &Value,
) {
    let old = fields::field_set(before);
    let changed: FieldSet = fields::field_set(after)
        .into_iter()
        .filter(|p| {
            let item = matches!(p.last(), Some(Step::Key(_) | Step::Value(_)));
            !old.contains(p) || (!item && fields::get(before, p) != fields::get(after, p))
        })
        .collect();
    if changed.is_empty() {
        return;
    }
    for m in list.iter_mut().filter(|m| m.subresource == subresource) {
        m.fields.retain(|p| !changed.contains(p));
    }
    match list
        .iter_mut()
        .find(|m| m.same(manager, "Update", subresource))
    {
        Some(m) => m.fields.extend(changed),
        None => list.push(Manager {
            manager: manager.into(),
            operation: "Update".into(),
            subresource: subresource.into(),
            api_version: api_version.into(),
            fields: changed,
        }),
    }
}

/// Whether `path` is a key field of a keyed-list item (`type` of a condition): it goes with its
/// item, never alone.
fn is_key_field(path: &[Step]) -> bool {
    match path {
        [.., Step::Key(key), Step::Field(f)] => {
            serde_json::from_str::<Value>(key).is_ok_and(|k| k.get(f).is_some())
        }
        _ => false,
    }
}

/// How a PATCH or PUT turns into the object the client asks for.
enum Write {
    /// PUT of a whole object, or a merge/JSON patch already applied to the current object.
    Update { written: Value, manager: String },
    /// Server-side apply of `config` by `manager`.
    Apply {
        config: Value,
        manager: String,
        force: bool,
    },
}

/// Server-side apply of `config` (already reduced to what this subresource owns) over
/// `current`: conflicts with other managers of the same subresource refuse it (409) unless
/// `force` moves their ownership; the manager then owns exactly the applied fields, and fields
/// it owned before but no longer applies are removed unless another manager owns them.
/// Returns the object and its new managers.
#[allow(clippy::result_large_err)]
fn server_side_apply(
    key: &Key,
    current: &Value,
    config: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
) -> Result<(Value, Vec<Manager>), Response<RespBody>> {
    let applied = fields::field_set(config);
    let mut list = managers(current);
    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        if m.same(manager, "Apply", subresource) || m.subresource != subresource {
            continue;
        }
        for p in m.fields.intersection(&applied) {
            let item = matches!(p.last(), Some(Step::Key(_) | Step::Value(_)));
            if !item && fields::get(current, p) != fields::get(config, p) {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let message = if let [(i, p)] = &conflicts[..] {
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                list[*i].printed(),
                fields::path_string(p)
            )
        } else {
            let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (i, p) in &conflicts {
                by_manager
                    .entry(list[*i].printed())
                    .or_default()
                    .push(format!("- {}", fields::path_string(p)));
            }
            let lines: Vec<String> = by_manager
                .into_iter()
                .flat_map(|(m, paths)| std::iter::once(format!("conflicts with {m}:")).chain(paths))
                .collect();
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(i, p)| {
                json!({
                    "type": "FieldManagerConflict",
                    "message": format!("conflict with {}", list[*i].printed()),
                    "field": fields::path_string(p),
                })
            })
            .collect();
        return Err(full(
            StatusCode::CONFLICT,
            &json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": "Conflict",
                "details": {"name": key.name, "group": key.group(), "kind": key.plural,
                            "causes": causes},
                "code": 409,
            }),
        ));
    }
    for (i, p) in &conflicts {
        list[*i].fields.remove(p);
    }
    let previously: FieldSet = list
        .iter()
        .find(|m| m.same(manager, "Apply", subresource))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    list.retain(|m| !m.same(manager, "Apply", subresource));
    let others: FieldSet = list.iter().flat_map(|m| m.fields.iter().cloned()).collect();
    let mut obj = current.clone();
    fields::apply_merge(&mut obj, config, None);
    let mut owned = others.clone();
    owned.extend(applied.iter().cloned());
    // In set order a keyed item comes before its fields: removing it removes them too.
    for p in previously.difference(&applied) {
        if others.iter().any(|o| o.starts_with(p)) || is_key_field(p) {
            continue;
        }
        if fields::remove(&mut obj, p) {
            fields::prune_empty_parents(&mut obj, p, &owned);
        }
    }
    list.push(Manager {
        manager: manager.into(),
        operation: "Apply".into(),
        subresource: subresource.into(),
        api_version: config["apiVersion"]
            .as_str()
            .or(current["apiVersion"].as_str())
            .unwrap_or_default()
            .into(),
        fields: applied,
    });
    Ok((obj, list))
}

fn not_found(key: &Key) -> Response<RespBody> {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {:?} not found", key.resource(), key.name),
    )
}

enum Target {
    Collection {
        base: String,
        plural: String,
        namespace: Option<String>,
    },
    Object {
        key: Key,
        status: bool,
    },
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (base, rest) = match *segs.first()? {
        "api" if segs.len() > 2 => (segs[..2].join("/"), &segs[2..]),
        "apis" if segs.len() > 3 => (segs[..3].join("/"), &segs[3..]),
        _ => return None,
    };
    match rest {
        [plural] => Some(Target::Collection {
            base,
            plural: plural.to_string(),
            namespace: None,
        }),
        ["namespaces", ns, plural] => Some(Target::Collection {
            base,
            plural: plural.to_string(),
            namespace: Some(ns.to_string()),
        }),
        // Cluster-scoped objects (StorageClasses) live under the empty namespace.
        [plural, name] => Some(Target::Object {
            key: Key {
                base,
                plural: plural.to_string(),
                namespace: String::new(),
                name: name.to_string(),
            },
            status: false,
        }),
        ["namespaces", ns, plural, name, sub @ ..] => Some(Target::Object {
            key: Key {
                base,
                plural: plural.to_string(),
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            status: sub == ["status"],
        }),
        _ => None,
    }
}

fn query(req: &Request<Body>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi::new()
    }
}

impl FakeApi {
    pub(crate) fn new() -> FakeApi {
        let (events, _) = broadcast::channel(4096);
        FakeApi {
            state: Arc::new(Mutex::new(State::default())),
            events,
        }
    }

    /// A kube client whose every request this fake answers.
    pub(crate) fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// A kube client of a user held to `rbac`: a request no rule allows gets 403 Forbidden.
    pub(crate) fn client_as(&self, rbac: Arc<Rbac>) -> kube::Client {
        self.client_of(Identity::Fixed(rbac))
    }

    /// A kube client holding a token of ServiceAccount `namespace/name`: held to the rules of
    /// the roles the stored (Cluster)RoleBindings grant it, looked up on every request.
    pub(crate) fn client_as_service_account(&self, namespace: &str, name: &str) -> kube::Client {
        self.client_of(Identity::ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    fn client_of(&self, identity: Identity) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            let identity = identity.clone();
            async move { Ok::<_, Infallible>(api.authorized(&identity, req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Authorizes `req` for `identity` as the apiserver does (RBAC before any lookup, then the
    /// escalation check of a binding write), then answers it.
    async fn authorized(&self, identity: &Identity, req: Request<Body>) -> Response<RespBody> {
        let rbac = match identity {
            Identity::Fixed(rbac) => rbac.clone(),
            Identity::ServiceAccount { namespace, name } => {
                Arc::new(service_account_rbac(&self.lock(), namespace, name))
            }
        };
        let line = format!("{} {}", req.method(), req.uri().path());
        let q = query(&req);
        let denied = if is_discovery(req.method(), req.uri().path()) {
            Ok(())
        } else {
            rbac.authorize(req.method(), req.uri().path(), &q)
        };
        {
            let mut state = self.lock();
            state.rbac_requests.push(line.clone());
            if denied.is_err() {
                state.forbidden.push(line.clone());
            }
        }
        if let Err(f) = denied {
            return forbidden_response(&f);
        }
        let attrs = attributes(req.method(), req.uri().path(), &q);
        let binding_write = attrs.as_ref().filter(|a| {
            a.group == "rbac.authorization.k8s.io"
                && matches!(a.resource.as_str(), "clusterrolebindings" | "rolebindings")
                && a.subresource.is_none()
                && matches!(a.verb, "create" | "update" | "patch")
        });
        let Some(attrs) = binding_write.cloned() else {
            return self.handle(req).await;
        };
        // The escalation check needs the binding's roleRef: from the body, else (a patch that
        // leaves it alone; it cannot change) from the stored binding.
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let sent: Value = serde_json::from_slice(&bytes)
            .or_else(|_| serde_yaml::from_slice(&bytes))
            .unwrap_or(Value::Null);
        let namespace = attrs.namespace.clone().unwrap_or_default();
        let name = attrs
            .name
            .clone()
            .or_else(|| sent["metadata"]["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        let checked = {
            let state = self.lock();
            let stored = state
                .objects
                .get(&Key {
                    base: RBAC_BASE.into(),
                    plural: attrs.resource.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
                .map(|b| b["roleRef"].clone());
            let role_ref = match (&sent["roleRef"], stored) {
                (r, _) if r.is_object() => Some(r.clone()),
                (_, stored) => stored,
            };
            match role_ref {
                // Nothing to bind: validation answers (a binding needs a roleRef).
                None => Ok(()),
                Some(role_ref) => {
                    let rules = role_rules(&state, &role_ref, &namespace);
                    rbac.may_bind(
                        &crate::rbac::Attributes {
                            name: Some(name),
                            ..attrs
                        },
                        role_ref["kind"].as_str().unwrap_or_default(),
                        role_ref["name"].as_str().unwrap_or_default(),
                        rules.as_deref(),
                    )
                }
            }
        };
        if let Err(f) = checked {
            self.lock().forbidden.push(line);
            return forbidden_response(&f);
        }
        self.handle(Request::from_parts(parts, Body::from(bytes.to_vec())))
            .await
    }

    /// Stores `obj` (with the server's metadata) as an admin would create it, e.g. a Node or
    /// a ClusterRole a test environment starts with; its key comes from `base`, `plural`, its
    /// namespace (empty: cluster-scoped) and its `metadata.name`.
    pub(crate) fn seed(&self, base: &str, plural: &str, namespace: &str, obj: Value) {
        let key = Key {
            base: base.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: obj["metadata"]["name"]
                .as_str()
                .expect("a seeded object has a name")
                .into(),
        };
        let mut state = self.lock();
        Self::create(&mut state, &self.events, key, obj);
    }

    /// Installs a CustomResourceDefinition (YAML, as `kubectl apply` would create it), as an
    /// admin installing e.g. cert-manager does: from then on its group is in discovery and its
    /// resources are served, pruned, defaulted and validated against its schema and rules.
    pub(crate) fn install_crd(&self, crd_yaml: &str) {
        let crd: Value = serde_yaml::from_str(crd_yaml).expect("CRD YAML");
        let crd: &'static schema::Crd = Box::leak(Box::new(schema::parse_crd(&crd)));
        self.lock().installed.push(crd);
    }

    /// `METHOD path` of every request RBAC-bound clients made so far.
    pub(crate) fn rbac_requests(&self) -> Vec<String> {
        self.lock().rbac_requests.clone()
    }

    /// `METHOD path` of every request refused with 403 so far.
    pub(crate) fn forbidden_requests(&self) -> Vec<String> {
        self.lock().forbidden.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored object, if any.
    pub(crate) fn get(
        &self,
        base: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.lock()
            .objects
            .get(&Key {
                base: base.into(),
                plural: plural.into(),
                namespace: namespace.into(),
                name: name.into(),
            })
            .cloned()
    }

    /// Every stored object of one resource, in one namespace.
    pub(crate) fn list(&self, base: &str, plural: &str, namespace: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| k.base == base && k.plural == plural && k.namespace == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Reasons of the Events recorded about the object named `name` (events.k8s.io/v1).
    pub(crate) fn event_reasons(&self, namespace: &str, name: &str) -> Vec<String> {
        self.list("apis/events.k8s.io/v1", "events", namespace)
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Stores `obj` at `key` (or removes it when it is being deleted and has no finalizers),
    /// stamping resourceVersion and telling watchers.
    fn store(
        state: &mut State,
        tx: &broadcast::Sender<WatchEvent>,
        key: Key,
        mut obj: Value,
        created: bool,
    ) -> Value {
        state.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        // Go's `omitempty`: the apiserver never returns an empty list or map in metadata (a
        // removed last finalizer leaves no `finalizers: []`, which a JSON patch `test` of null
        // relies on).
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.retain(|_, v| {
                !(v.as_array().is_some_and(Vec::is_empty)
                    || v.as_object().is_some_and(serde_json::Map::is_empty))
            });
        }
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let removed = deleting && !finalizers;
        let type_ = if removed {
            state.objects.remove(&key);
            "DELETED"
        } else {
            state.objects.insert(key.clone(), obj.clone());
            if created {
                "ADDED"
            } else {
                "MODIFIED"
            }
        };
        let ev_namespace = key.namespace.clone();
        let ev = WatchEvent {
            rv: state.rv,
            key,
            type_,
            object: obj.clone(),
        };
        state.log.push(ev.clone());
        let _ = tx.send(ev);
        let uid = obj["metadata"]["uid"].clone();
        if removed && !uid.is_null() {
            Self::collect_dependents(state, tx, &ev_namespace, &uid);
        }
        obj
    }

    fn create(
        state: &mut State,
        tx: &broadcast::Sender<WatchEvent>,
        key: Key,
        mut obj: Value,
    ) -> Value {
        state.uid += 1;
        let meta = &mut obj["metadata"];
        meta["name"] = json!(key.name);
        meta["namespace"] = json!(key.namespace);
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", state.uid));
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        Self::store(state, tx, key, obj, true)
    }

    /// What the apiserver does to a new object before storing it: a status subresource's
    /// status is reset, the server's metadata is its own, and a
    /// custom resource is pruned, defaulted and validated (422).
    #[allow(clippy::result_large_err)]
    fn admit_create(
        key: &Key,
        crd: Option<&schema::Crd>,
        mut obj: Value,
    ) -> Result<Value, Response<RespBody>> {
        if key.status_subresource() {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        if let Some(meta) = obj["metadata"].as_object_mut() {
            for field in [
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "managedFields",
            ] {
                meta.remove(field);
            }
        }
        if let Some(crd) = crd {
            schema::prune(&crd.schema, &mut obj);
            schema::default(&crd.schema, &mut obj);
            let causes = schema::validate(crd, &obj, None, false);
            if !causes.is_empty() {
                return Err(invalid_causes(key, &obj, &causes));
            }
        }
        Ok(obj)
    }

    /// Deletes the object at `key` (held by its finalizers, if any) and, as the garbage
    /// collector does once it is gone, its dependents (objects in the same namespace with an
    /// ownerReference to its uid): with `orphan` they lose that ownerReference and stay, as
    /// `propagationPolicy: Orphan` asks; otherwise they are deleted in turn, unless another
    /// owner of theirs still exists (then they only lose the reference). Objects with no
    /// ownerReference to it are never touched.
    fn delete(
        state: &mut State,
        tx: &broadcast::Sender<WatchEvent>,
        key: Key,
        orphan: bool,
    ) -> Value {
        let mut obj = state.objects.get(&key).cloned().unwrap_or(Value::Null);
        if obj["metadata"]["deletionTimestamp"].is_null() {
            obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
        }
        let uid = obj["metadata"]["uid"].clone();
        let held = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if orphan && !held && !uid.is_null() {
            // Orphaned dependents lose their ownerReference before the owner goes, so the
            // collection in `store` leaves them alone.
            let orphans: Vec<Key> = state
                .objects
                .iter()
                .filter(|(k, v)| k.namespace == key.namespace && Self::owned_by(v, &uid))
                .map(|(k, _)| k.clone())
                .collect();
            for dep in orphans {
                let Some(mut d) = state.objects.get(&dep).cloned() else {
                    continue;
                };
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                Self::store(state, tx, dep, d, false);
            }
        }
        Self::store(state, tx, key, obj, false)
    }

    /// Whether `v` has an ownerReference to `uid`.
    fn owned_by(v: &Value, uid: &Value) -> bool {
        v["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == *uid))
    }

    /// What the garbage collector does once the object with `uid` is gone (deleted outright,
    /// or when its last finalizer is removed): its dependents in `namespace` are deleted in
    /// turn, unless another owner of theirs still exists (then they only lose the reference).
    fn collect_dependents(
        state: &mut State,
        tx: &broadcast::Sender<WatchEvent>,
        namespace: &str,
        uid: &Value,
    ) {
        let dependents: Vec<Key> = state
            .objects
            .iter()
            .filter(|(k, v)| k.namespace == namespace && Self::owned_by(v, uid))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            let Some(mut d) = state.objects.get(&dep).cloned() else {
                continue;
            };
            let live_uids: Vec<Value> = state
                .objects
                .values()
                .map(|o| o["metadata"]["uid"].clone())
                .collect();
            let other_live_owner =
                d["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r["uid"] != *uid && live_uids.contains(&r["uid"]))
                    });
            if other_live_owner {
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != *uid);
                }
                Self::store(state, tx, dep, d, false);
            } else {
                Self::delete(state, tx, dep, false);
            }
        }
    }

    async fn handle(&self, req: Request<Body>) -> Response<RespBody> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let q = query(&req);
        let [content_type, user_agent] = ["content-type", "user-agent"].map(|name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        });
        let apply = method == Method::PATCH && content_type.contains("apply-patch");
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            let parsed = serde_json::from_slice(&body).map_err(|e| e.to_string());
            // An apply body may be YAML (kubectl sends it so); JSON is YAML too.
            let parsed = match parsed {
                Err(_) if apply => serde_yaml::from_slice(&body).map_err(|e| e.to_string()),
                other => other,
            };
            match parsed {
                Ok(v) => v,
                Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e),
            }
        };
        if method == Method::GET {
            if let Some(answer) = discovery(&self.lock(), &path) {
                return answer;
            }
        }
        let Some(target) = parse_path(&path) else {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            );
        };
        let (base, plural) = match &target {
            Target::Collection { base, plural, .. } => (base, plural),
            Target::Object { key, .. } => (&key.base, &key.plural),
        };
        if !served(&self.lock(), base, plural) {
            return not_served();
        }
        if let Target::Object { key, status: true } = &target {
            if !key.status_subresource() {
                return status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("the server could not find the requested resource ({path})"),
                );
            }
        }
        match (method, target) {
            (
                Method::GET,
                Target::Collection {
                    base,
                    plural,
                    namespace,
                },
            ) => {
                if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                    let since = q
                        .get("resourceVersion")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    return self.watch(base, plural, namespace, since);
                }
                let state = self.lock();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        k.base == base
                            && k.plural == plural
                            && namespace.as_ref().is_none_or(|n| *n == k.namespace)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                full(
                    StatusCode::OK,
                    &json!({
                        "apiVersion": "v1", "kind": "List",
                        "metadata": {"resourceVersion": state.rv.to_string()},
                        "items": items,
                    }),
                )
            }
            (
                Method::POST,
                Target::Collection {
                    base,
                    plural,
                    namespace,
                },
            ) => {
                let mut state = self.lock();
                let name = body["metadata"]["name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "{}{}",
                            body["metadata"]["generateName"].as_str().unwrap_or("obj-"),
                            state.uid + 1
                        )
                    });
                let key = Key {
                    base,
                    plural,
                    namespace: namespace.unwrap_or_default(),
                    name,
                };
                if state.objects.contains_key(&key) {
                    return status_error(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{} {:?} already exists", key.resource(), key.name),
                    );
                }
                let mut obj = match Self::admit_create(&key, crd_of(&state, &key), body) {
                    Ok(obj) => obj,
                    Err(refused) => return refused,
                };
                let mut list = Vec::new();
                let sub = key.status_subresource();
                record_update(
                    &mut list,
                    &update_manager(&q, &user_agent),
                    "",
                    obj["apiVersion"].as_str().unwrap_or_default(),
                    &json!({}),
                    &owned_part(&obj, false, sub),
                );
                set_managers(&mut obj, list);
                if let Err(refused) = service_node_ports(&state, &key, None, &mut obj) {
                    return *refused;
                }
                let obj = Self::create(&mut state, &self.events, key, obj);
                full(StatusCode::CREATED, &obj)
            }
            (Method::GET, Target::Object { key, .. }) => match self.lock().objects.get(&key) {
                Some(obj) => full(StatusCode::OK, obj),
                None => not_found(&key),
            },
            (Method::PUT, Target::Object { key, status }) => {
                let mut state = self.lock();
                let Some(current) = state.objects.get(&key).cloned() else {
                    return not_found(&key);
                };
                // A PUT names the object it replaces by uid (a precondition, 409), and by
                // resourceVersion when it carries one (optimistic concurrency, 409).
                let sent_uid = &body["metadata"]["uid"];
                if !sent_uid.is_null() && *sent_uid != current["metadata"]["uid"] {
                    return precondition_conflict(
                        &key,
                        "UID",
                        sent_uid,
                        &current["metadata"]["uid"],
                    );
                }
                let write = Write::Update {
                    written: body,
                    manager: update_manager(&q, &user_agent),
                };
                self.update(&mut state, key, status, current, write)
            }
            (Method::PATCH, Target::Object { key, status }) => {
                let mut state = self.lock();
                let current = state.objects.get(&key).cloned();
                if apply {
                    let Some(manager) = q.get("fieldManager").cloned() else {
                        return status_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required \
                             value: is required for apply patch"
                                .into(),
                        );
                    };
                    if !body["apiVersion"].is_string() || !body["kind"].is_string() {
                        return status_error(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("Object 'Kind' is missing in '{body}'"),
                        );
                    }
                    let force = q.get("force").is_some_and(|f| f == "true");
                    let Some(current) = current else {
                        if status {
                            return not_found(&key);
                        }
                        // An apply of a missing object creates it, owned by the applier.
                        let mut obj = match Self::admit_create(&key, crd_of(&state, &key), body) {
                            Ok(obj) => obj,
                            Err(refused) => return refused,
                        };
                        let config = owned_part(&obj, false, key.status_subresource());
                        let api_version = obj["apiVersion"].as_str().unwrap_or_default().into();
                        set_managers(
                            &mut obj,
                            vec![Manager {
                                manager,
                                operation: "Apply".into(),
                                subresource: String::new(),
                                api_version,
                                fields: fields::field_set(&config),
                            }],
                        );
                        // Allocated node ports are the server's: no manager owns them.
                        if let Err(refused) = service_node_ports(&state, &key, None, &mut obj) {
                            return *refused;
                        }
                        let obj = Self::create(&mut state, &self.events, key, obj);
                        return full(StatusCode::CREATED, &obj);
                    };
                    let write = Write::Apply {
                        config: body,
                        manager,
                        force,
                    };
                    return self.update(&mut state, key, status, current, write);
                }
                let Some(current) = current else {
                    return not_found(&key);
                };
                let mut patched = current.clone();
                if content_type.contains("json-patch") {
                    let mut ops: json_patch::Patch = match serde_json::from_value(body) {
                        Ok(p) => p,
                        Err(e) => {
                            return status_error(
                                StatusCode::BAD_REQUEST,
                                "BadRequest",
                                e.to_string(),
                            )
                        }
                    };
                    // Like the apiserver, a `test` for null passes on an absent field (Kubernetes
                    // omits empty lists such as metadata.finalizers).
                    ops.0.retain(|op| match op {
                        json_patch::PatchOperation::Test(t) => {
                            !(t.value.is_null() && patched.pointer(t.path.as_str()).is_none())
                        }
                        _ => true,
                    });
                    if let Err(e) = json_patch::patch(&mut patched, &ops) {
                        return status_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            e.to_string(),
                        );
                    }
                } else {
                    merge(&mut patched, &body);
                }
                // A patch that changes the uid is refused by validation, not as a precondition.
                let uid = &current["metadata"]["uid"];
                if !patched["metadata"]["uid"].is_null() && patched["metadata"]["uid"] != *uid {
                    return invalid_causes(
                        &key,
                        &current,
                        &[schema::Cause {
                            field: "metadata.uid".into(),
                            reason: "FieldValueInvalid",
                            message: format!(
                                "Invalid value: {}: field is immutable",
                                patched["metadata"]["uid"]
                            ),
                        }],
                    );
                }
                let write = Write::Update {
                    written: patched,
                    manager: update_manager(&q, &user_agent),
                };
                self.update(&mut state, key, status, current, write)
            }
            (Method::DELETE, Target::Object { key, .. }) => {
                let mut state = self.lock();
                let Some(current) = state.objects.get(&key) else {
                    return not_found(&key);
                };
                for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
                    let wanted = &body["preconditions"][field];
                    if !wanted.is_null() && *wanted != current["metadata"][field] {
                        return precondition_conflict(
                            &key,
                            what,
                            wanted,
                            &current["metadata"][field],
                        );
                    }
                }
                let policy = body["propagationPolicy"]
                    .as_str()
                    .or(q.get("propagationPolicy").map(String::as_str))
                    .unwrap_or("Background");
                let obj = Self::delete(&mut state, &self.events, key, policy == "Orphan");
                full(StatusCode::OK, &obj)
            }
            (m, _) => status_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{m} {path}"),
            ),
        }
    }

    /// The common end of every update (PUT, PATCH of any kind; main resource or `/status`):
    /// a stale resourceVersion is a 409; the written object is restricted to what the
    /// (sub)resource may change; finalizers may not be added once deletion started; custom
    /// resources are pruned, defaulted and validated, StatefulSets and claims checked by
    /// `validate_update`; field ownership is recorded; a write that changes nothing is not
    /// stored (no new resourceVersion, no watch event).
    fn update(
        &self,
        state: &mut State,
        key: Key,
        status: bool,
        current: Value,
        write: Write,
    ) -> Response<RespBody> {
        let sub = key.status_subresource();
        let subresource = if status { "status" } else { "" };
        let api_version = current["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (written, list) = match write {
            Write::Update { written, manager } => {
                let mut list = managers(&current);
                let before = owned_part(&current, status, sub);
                // Ownership follows what the write would change; computed on the object as
                // it will be stored, below.
                let after_written = Self::next(&current, written.clone(), status, sub);
                record_update(
                    &mut list,
                    &manager,
                    subresource,
                    &api_version,
                    &before,
                    &owned_part(&after_written, status, sub),
                );
                (written, list)
            }
            Write::Apply {
                config,
                manager,
                force,
            } => {
                let sent_rv = &config["metadata"]["resourceVersion"];
                if !sent_rv.is_null() && *sent_rv != current["metadata"]["resourceVersion"] {
                    return modified_conflict(&key);
                }
                let sent_uid = &config["metadata"]["uid"];
                if !sent_uid.is_null() && *sent_uid != current["metadata"]["uid"] {
                    return precondition_conflict(
                        &key,
                        "UID",
                        sent_uid,
                        &current["metadata"]["uid"],
                    );
                }
                let owned = owned_part(&config, status, sub);
                match server_side_apply(&key, &current, &owned, &manager, subresource, force) {
                    Ok(done) => done,
                    Err(refused) => return refused,
                }
            }
        };
        let sent_rv = &written["metadata"]["resourceVersion"];
        if !sent_rv.is_null() && *sent_rv != current["metadata"]["resourceVersion"] {
            return modified_conflict(&key);
        }
        if !current["metadata"]["deletionTimestamp"].is_null() && !status {
            let old = current["metadata"]["finalizers"].as_array().cloned();
            let old = old.unwrap_or_default();
            let new: Vec<&Value> = written["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| !old.contains(f))
                .collect();
            if !new.is_empty() {
                let names: Vec<String> = new.iter().map(|f| f.to_string()).collect();
                return invalid_causes(
                    &key,
                    &current,
                    &[schema::Cause {
                        field: "metadata.finalizers".into(),
                        reason: "FieldValueForbidden",
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being \
                             deleted, found new finalizers []string{{{}}}",
                            names.join(", ")
                        ),
                    }],
                );
            }
        }
        let mut next = Self::next(&current, written, status, sub);
        if let Some(crd) = crd_of(state, &key) {
            schema::prune(&crd.schema, &mut next);
            schema::default(&crd.schema, &mut next);
            let causes = schema::validate(crd, &next, Some(&current), status);
            if !causes.is_empty() {
                return invalid_causes(&key, &next, &causes);
            }
        }
        if let Err(refused) = validate_update(state, &key, &current, &next, status) {
            return *refused;
        }
        if !status {
            if let Err(refused) = service_node_ports(state, &key, Some(&current), &mut next) {
                return *refused;
            }
        }
        set_managers(&mut next, list);
        if next == current {
            return full(StatusCode::OK, &current);
        }
        let obj = Self::store(state, &self.events, key, next, false);
        full(StatusCode::OK, &obj)
    }

    /// The object after a write: a status write changes only status; a main-resource write
    /// keeps the status when the resource has a status subresource, and bumps generation on a
    /// change outside metadata and status. uid, creationTimestamp, deletionTimestamp,
    /// generation and resourceVersion are the server's (a write's own values are ignored, as
    /// the apiserver's `BeforeUpdate` does), managedFields too (set by the caller).
    fn next(current: &Value, mut written: Value, status: bool, status_subresource: bool) -> Value {
        let mut next = current.clone();
        if status {
            next["status"] = written["status"].take();
        } else {
            let bump = spec_part(current) != spec_part(&written);
            let meta = current["metadata"].clone();
            next = written;
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "resourceVersion",
                "managedFields",
            ] {
                next["metadata"][field] = meta[field].clone();
            }
            if let Some(o) = next["metadata"].as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            if bump {
                next["metadata"]["generation"] =
                    json!(meta["generation"].as_i64().unwrap_or(1) + 1);
            }
            if status_subresource {
                next["status"] = current["status"].clone();
            }
        }
        if next["status"].is_null() {
            if let Some(o) = next.as_object_mut() {
                o.remove("status");
            }
        }
        next
    }

    /// A watch: replays events after `since`, then streams new ones, as JSON lines.
    fn watch(
        &self,
        base: String,
        plural: String,
        namespace: Option<String>,
        since: u64,
    ) -> Response<RespBody> {
        let (tx, rx) = mpsc::channel::<Bytes>(1024);
        let (backlog, mut live) = {
            let state = self.lock();
            let live = self.events.subscribe();
            let backlog: Vec<WatchEvent> =
                state.log.iter().filter(|e| e.rv > since).cloned().collect();
            (backlog, live)
        };
        let matches = move |e: &WatchEvent| {
            e.key.base == base
                && e.key.plural == plural
                && namespace.as_ref().is_none_or(|n| *n == e.key.namespace)
        };
        tokio::spawn(async move {
            let line = |e: &WatchEvent| {
                Bytes::from(format!(
                    "{}\n",
                    json!({"type": e.type_, "object": e.object})
                ))
            };
            for e in backlog.iter().filter(|e| matches(e)) {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(e) if e.rv > since && matches(&e) => {
                        if tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Lagged or closed: end the watch; the client re-lists.
                    Err(_) => return,
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream.boxed()).boxed_unsync())
            .expect("response")
    }
}
