//! A small in-memory Kubernetes apiserver behind a real `kube::Client`: GET, LIST, WATCH,
//! POST, PUT (with resourceVersion conflicts), PATCH (apply, merge, JSON patch; status
//! subresource), DELETE (finalizers hold an object with a deletionTimestamp; dependents are
//! deleted or, with `propagationPolicy: Orphan`, orphaned). It is generic over
//! JSON objects keyed by API path, which is all the operator's reconcilers and controllers need,
//! except where a real apiserver refuses an update: immutable StatefulSet fields, and
//! PersistentVolumeClaim edits other than a permitted storage grow (see `validate_update`).
//! (kube-fake-client targets kube 4 and has no WATCH, so it cannot back kube 5's Controller.)
//!
//! Two kinds of client talk to it: [`FakeApi::client`] is a cluster admin (tests seed and
//! observe state through it, and the harness plays the kubelet with it), while
//! [`FakeApi::client_as`] is held to RBAC rules (the operator runs on one holding the chart's
//! rules, see `rbac.rs`), refused with 403 before the object is looked up.

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

use crate::rbac::Rbac;

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

/// RFC 7386 JSON merge patch (server-side apply is approximated by it: the operator always
/// applies whole objects and whole status).
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
        _ => Ok(()),
    }
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
        "api" => (segs[..2].join("/"), &segs[2..]),
        "apis" => (segs[..3].join("/"), &segs[3..]),
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
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            let rbac = rbac.clone();
            async move {
                let line = format!("{} {}", req.method(), req.uri().path());
                let denied = rbac.authorize(req.method(), req.uri().path(), &query(&req));
                {
                    let mut state = api.lock();
                    state.rbac_requests.push(line.clone());
                    if denied.is_err() {
                        state.forbidden.push(line);
                    }
                }
                if let Err(f) = denied {
                    return Ok::<_, Infallible>(full(
                        StatusCode::FORBIDDEN,
                        &json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": f.message, "reason": "Forbidden",
                            "details": {"name": f.name, "group": f.group, "kind": f.resource},
                            "code": 403,
                        }),
                    ));
                }
                Ok(api.handle(req).await)
            }
        });
        kube::Client::new(service, "default")
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
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let type_ = if deleting && !finalizers {
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
        let ev = WatchEvent {
            rv: state.rv,
            key,
            type_,
            object: obj.clone(),
        };
        state.log.push(ev.clone());
        let _ = tx.send(ev);
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

    /// Deletes the object at `key` (held by its finalizers, if any) and, as the garbage
    /// collector does once it is gone, its dependents (objects in the same namespace with an
    /// ownerReference to its uid): with `orphan` they lose that ownerReference and stay, as
    /// `propagationPolicy: Orphan` asks; otherwise they are deleted in turn.
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
        let namespace = key.namespace.clone();
        let obj = Self::store(state, tx, key.clone(), obj, false);
        if state.objects.contains_key(&key) || uid.is_null() {
            return obj;
        }
        let owned_by = |v: &Value| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        };
        let dependents: Vec<Key> = state
            .objects
            .iter()
            .filter(|(k, v)| k.namespace == namespace && owned_by(v))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            if orphan {
                let mut d = state.objects[&dep].clone();
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                Self::store(state, tx, dep, d, false);
            } else if state.objects.contains_key(&dep) {
                Self::delete(state, tx, dep, false);
            }
        }
        obj
    }

    async fn handle(&self, req: Request<Body>) -> Response<RespBody> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let q = query(&req);
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())
                }
            }
        };
        let Some(target) = parse_path(&path) else {
            return status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            );
        };
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
                        format!("{} exists", key.name),
                    );
                }
                let obj = Self::create(&mut state, &self.events, key, body);
                full(StatusCode::CREATED, &obj)
            }
            (Method::GET, Target::Object { key, .. }) => match self.lock().objects.get(&key) {
                Some(obj) => full(StatusCode::OK, obj),
                None => status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{} not found", key.name),
                ),
            },
            (Method::PUT, Target::Object { key, status }) => {
                let mut state = self.lock();
                let Some(current) = state.objects.get(&key).cloned() else {
                    return status_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{} not found", key.name),
                    );
                };
                let sent_rv = &body["metadata"]["resourceVersion"];
                if !sent_rv.is_null() && *sent_rv != current["metadata"]["resourceVersion"] {
                    return status_error(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!("the object {} has been modified", key.name),
                    );
                }
                let next = Self::next(&current, body, status);
                if let Err(refused) = validate_update(&state, &key, &current, &next, status) {
                    return *refused;
                }
                let obj = Self::store(&mut state, &self.events, key, next, false);
                full(StatusCode::OK, &obj)
            }
            (Method::PATCH, Target::Object { key, status }) => {
                let mut state = self.lock();
                let current = state.objects.get(&key).cloned();
                let Some(current) = current else {
                    if content_type.contains("apply-patch") && !status {
                        let obj = Self::create(&mut state, &self.events, key, body);
                        return full(StatusCode::CREATED, &obj);
                    }
                    return status_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{} not found", key.name),
                    );
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
                let next = Self::next(&current, patched, status);
                if let Err(refused) = validate_update(&state, &key, &current, &next, status) {
                    return *refused;
                }
                let obj = Self::store(&mut state, &self.events, key, next, false);
                full(StatusCode::OK, &obj)
            }
            (Method::DELETE, Target::Object { key, .. }) => {
                let mut state = self.lock();
                if !state.objects.contains_key(&key) {
                    return status_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{} not found", key.name),
                    );
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

    /// The object after a write: a status write changes only status; a main-resource write
    /// keeps the status (as with a status subresource) and bumps generation on a spec change.
    /// Identity fields are the server's.
    fn next(current: &Value, mut written: Value, status: bool) -> Value {
        let mut next = current.clone();
        if status {
            next["status"] = written["status"].take();
        } else {
            let keep_status = current["status"].clone();
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
            next["status"] = keep_status;
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
