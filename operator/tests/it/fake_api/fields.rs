//! Server-side apply bookkeeping for the fake apiserver: field paths and sets in the shape of
//! structured-merge-diff (the apiserver's library), `metadata.managedFields` entries in their
//! FieldsV1 encoding, the apply merge, conflicts and the removal of fields a manager stops
//! applying.
//!
//! Lists are merged the way the Kubernetes schemas declare them: lists of objects named by a key
//! (`containers` by `name`, `ports` by `containerPort`/`port`, `conditions` by `type`,
//! `ownerReferences` by `uid`, ...) are keyed maps, `finalizers` is a set, every other list is
//! atomic (replaced and owned whole).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// One step of a field path, as structured-merge-diff names them in FieldsV1
/// (`f:name`, `k:{"name":"c"}`, `v:"x"`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Step {
    /// A field of an object or an entry of a map (`f:`).
    Field(String),
    /// An item of a keyed list, by the JSON object of its key fields, keys sorted (`k:`).
    Key(String),
    /// An item of a set list, by its JSON value (`v:`).
    Value(String),
}

/// A path from the object's root.
pub(crate) type Path = Vec<Step>;

/// The fields one manager owns.
pub(crate) type FieldSet = BTreeSet<Path>;

/// How the items of a list are told apart when merging and tracking ownership.
enum ListKind {
    /// Items are objects identified by these fields.
    Map(&'static [&'static str]),
    /// Items are scalars identified by their value.
    Set,
    /// The list is one value.
    Atomic,
}

/// The list type of the field `name` (Kubernetes' `x-kubernetes-list-type` and
/// `patchMergeKey` markers of the built-in types; the runnel CRDs' only list-map is
/// `conditions`, keyed by `type`).
fn list_kind(name: &str, items: &[Value]) -> ListKind {
    let objects = items.iter().all(Value::is_object);
    match name {
        "finalizers" => ListKind::Set,
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases"
            if objects =>
        {
            ListKind::Map(&["name"])
        }
        "volumeMounts" if objects => ListKind::Map(&["mountPath"]),
        "ownerReferences" if objects => ListKind::Map(&["uid"]),
        "conditions" if objects => ListKind::Map(&["type"]),
        "ports" if objects => {
            if items.iter().all(|i| i.get("containerPort").is_some()) {
                ListKind::Map(&["containerPort"])
            } else if items.iter().all(|i| i.get("port").is_some()) {
                ListKind::Map(&["port"])
            } else {
                ListKind::Map(&["name"])
            }
        }
        _ => ListKind::Atomic,
    }
}

/// The `k:` identity of a keyed-list item: its key fields as compact JSON, keys sorted.
fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    let mut sorted: Vec<&&str> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        if let Some(v) = item.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(m).to_string()
}

/// Every owned path of `value` (rooted at `path`): leaves, plus keyed-list items and set items
/// themselves, as structured-merge-diff records them.
pub(crate) fn field_set(value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(value, &mut Vec::new(), None, &mut out);
    out
}

fn collect(value: &Value, path: &mut Path, field: Option<&str>, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(Step::Field(k.clone()));
                collect(v, path, Some(k), out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            match list_kind(field.unwrap_or_default(), items) {
                ListKind::Map(keys) => {
                    for item in items {
                        path.push(Step::Key(item_key(item, keys)));
                        out.insert(path.clone());
                        collect(item, path, None, out);
                        path.pop();
                    }
                }
                ListKind::Set => {
                    for item in items {
                        path.push(Step::Value(item.to_string()));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                ListKind::Atomic => {
                    out.insert(path.clone());
                }
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn get<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = root;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => {
                let key: Value = serde_json::from_str(k).ok()?;
                let key = key.as_object()?;
                cur.as_array()?
                    .iter()
                    .find(|i| key.iter().all(|(kf, kv)| i.get(kf) == Some(kv)))?
            }
            Step::Value(v) => {
                let v: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|i| **i == v)?
            }
        };
    }
    Some(cur)
}

/// Removes the value at `path` (a field, a keyed item or a set item); true if it was there.
pub(crate) fn remove(root: &mut Value, path: &[Step]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let Some(parent) = get_mut(root, parent) else {
        return false;
    };
    match last {
        Step::Field(f) => parent
            .as_object_mut()
            .is_some_and(|o| o.remove(f).is_some()),
        Step::Key(_) | Step::Value(_) => {
            let Some(target) = get(parent, std::slice::from_ref(last)).cloned() else {
                return false;
            };
            parent.as_array_mut().is_some_and(|a| {
                let before = a.len();
                a.retain(|i| *i != target);
                a.len() != before
            })
        }
    }
}

fn get_mut<'a>(root: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = root;
    for step in path {
        let found = get(cur, std::slice::from_ref(step))?.clone();
        cur = match step {
            Step::Field(f) => cur.get_mut(f)?,
            Step::Key(_) | Step::Value(_) => {
                cur.as_array_mut()?.iter_mut().find(|i| **i == found)?
            }
        };
    }
    Some(cur)
}

/// structured-merge-diff's rendering of a path (`.spec.containers[name="c"].image`), as it
/// appears in apply conflict messages.
pub(crate) fn path_string(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = key
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(kf, kv)| format!("{kf}={kv}"))
                    .collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

fn step_name(step: &Step) -> String {
    match step {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{k}"),
        Step::Value(v) => format!("v:{v}"),
    }
}

fn parse_step(name: &str) -> Option<Step> {
    let (kind, rest) = name.split_once(':')?;
    Some(match kind {
        "f" => Step::Field(rest.to_string()),
        "k" => Step::Key(rest.to_string()),
        "v" => Step::Value(rest.to_string()),
        _ => return None,
    })
}

/// The FieldsV1 encoding of a set: nested `f:`/`k:`/`v:` objects, `{}` for a member with
/// nothing below it, `".": {}` for a member that also has members below it.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = json!({});
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node
                .as_object_mut()
                .map(|o| o.entry(step_name(step)).or_insert_with(|| json!({})))
                .expect("FieldsV1 nodes are objects");
        }
    }
    // A member with members below it is marked with ".".
    fn mark(node: &mut Value, path: &mut Path, set: &FieldSet) {
        if let Some(o) = node.as_object_mut() {
            let has_children = o.keys().any(|k| k != ".");
            if has_children && !path.is_empty() && set.contains(path) {
                o.insert(".".into(), json!({}));
            }
            for (k, child) in o.iter_mut() {
                if let Some(step) = parse_step(k) {
                    path.push(step);
                    mark(child, path, set);
                    path.pop();
                }
            }
        }
    }
    mark(&mut root, &mut Vec::new(), set);
    root
}

/// Decodes FieldsV1 back into a set.
pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(node: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(o) = node.as_object() else { return };
        if (o.is_empty() || o.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in o {
            if let Some(step) = parse_step(k) {
                path.push(step);
                walk(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// The apply merge: `applied` laid over `current`; objects merge field by field, keyed lists
/// item by item (new items appended), set lists by union, anything else is replaced.
pub(crate) fn apply_merge(current: &mut Value, applied: &Value, field: Option<&str>) {
    match (current, applied) {
        (Value::Object(cur), Value::Object(app)) => {
            for (k, v) in app {
                match cur.get_mut(k) {
                    Some(c) => apply_merge(c, v, Some(k)),
                    None => {
                        cur.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(cur), Value::Array(app)) if !app.is_empty() && !cur.is_empty() => {
            let mut all = cur.clone();
            all.extend(app.iter().cloned());
            match list_kind(field.unwrap_or_default(), &all) {
                ListKind::Map(keys) => {
                    for item in app {
                        let key = item_key(item, keys);
                        match cur.iter_mut().find(|c| item_key(c, keys) == key) {
                            Some(c) => apply_merge(c, item, None),
                            None => cur.push(item.clone()),
                        }
                    }
                }
                ListKind::Set => {
                    for item in app {
                        if !cur.contains(item) {
                            cur.push(item.clone());
                        }
                    }
                }
                ListKind::Atomic => *cur = app.clone(),
            }
        }
        (cur, app) => *cur = app.clone(),
    }
}

/// Removes empty objects and lists left behind at `path` and above once something below them
/// was removed, unless someone owns them as such.
pub(crate) fn prune_empty_parents(root: &mut Value, path: &[Step], owned: &FieldSet) {
    let mut path = path.to_vec();
    while path.pop().is_some() {
        if path.is_empty() || owned.contains(&path) {
            return;
        }
        let empty = match get(root, &path) {
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if !empty || !remove(root, &path) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_keyed_items_and_leaves() {
        let obj = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "c", "image": "i", "ports": [{"containerPort": 9092}]}
        ]}}}, "metadata": {"finalizers": ["a"]}});
        let set = field_set(&obj);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."],
            json!({})
        );
        assert_eq!(v1["f:metadata"]["f:finalizers"]["v:\"a\""], json!({}));
        assert_eq!(from_fields_v1(&v1), set);
        let image: Path = vec![
            Step::Field("spec".into()),
            Step::Field("template".into()),
            Step::Field("spec".into()),
            Step::Field("containers".into()),
            Step::Key("{\"name\":\"c\"}".into()),
            Step::Field("image".into()),
        ];
        assert_eq!(
            path_string(&image),
            ".spec.template.spec.containers[name=\"c\"].image"
        );
        assert_eq!(get(&obj, &image), Some(&json!("i")));
    }
}
