//! The runnel CRDs as the fake apiserver serves them: loaded from the checked-in YAML in
//! `crds/` (what the chart installs), with the apiextensions-apiserver's write path for custom
//! resources: unknown fields pruned (unless `x-kubernetes-preserve-unknown-fields`), schema
//! defaults applied, then the OpenAPI schema (type, nullable, required, enum, minimum/maximum,
//! length/items/properties bounds, pattern, int-or-string, date-time format, list-map keys) and
//! the `x-kubernetes-validations` CEL rules (with `oldSelf` on update, through kube's CEL
//! validator) checked, each failure a cause of a 422 Invalid.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use kube::core::cel::{apply_defaults, compile_schema, CompiledSchema, Validator};
use serde_json::{json, Value};

/// One custom resource definition, as installed.
pub(crate) struct Crd {
    /// API group (`runnel.dev`).
    pub(crate) group: String,
    /// Served version (`v1alpha1`).
    pub(crate) version: String,
    /// Kind (`Cluster`).
    pub(crate) kind: String,
    /// Plural resource name (`clusters`).
    pub(crate) plural: String,
    /// Whether its objects live in namespaces.
    pub(crate) namespaced: bool,
    /// The version's `openAPIV3Schema`.
    pub(crate) schema: Value,
    /// Whether the version has the status subresource.
    pub(crate) status_subresource: bool,
}

/// Every CRD in `crds/`, read once.
pub(crate) fn crds() -> &'static [Crd] {
    static CRDS: OnceLock<Vec<Crd>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("crds/ exists")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read CRD");
                parse_crd(&serde_yaml::from_str(&text).expect("CRD YAML"))
            })
            .collect()
    })
}

/// A CustomResourceDefinition object as the apiextensions-apiserver serves it (its first
/// version).
pub(crate) fn parse_crd(crd: &Value) -> Crd {
    let spec = &crd["spec"];
    let version = &spec["versions"][0];
    Crd {
        group: spec["group"].as_str().expect("group").into(),
        version: version["name"].as_str().expect("version").into(),
        kind: spec["names"]["kind"].as_str().expect("kind").into(),
        plural: spec["names"]["plural"].as_str().expect("plural").into(),
        namespaced: spec["scope"] != "Cluster",
        schema: version["schema"]["openAPIV3Schema"].clone(),
        status_subresource: version["subresources"]["status"].is_object(),
    }
}

/// The CRD served at `apis/<group>/<version>` as `plural`, if any.
pub(crate) fn crd_at(base: &str, plural: &str) -> Option<&'static Crd> {
    crds()
        .iter()
        .find(|c| c.plural == plural && base == format!("apis/{}/{}", c.group, c.version))
}

/// One reason a write is invalid: the field path and the message after it, as the apiserver's
/// `field.Error` renders them, and the `StatusCause` reason.
#[derive(Debug)]
pub(crate) struct Cause {
    pub(crate) field: String,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// Drops what the schema does not declare (the apiserver prunes, it does not refuse) and nulls
/// of non-nullable fields. At the root only `spec` and `status` are pruned: `apiVersion`,
/// `kind` and `metadata` are the apiserver's own.
pub(crate) fn prune(schema: &Value, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    let own = |k: &str| matches!(k, "apiVersion" | "kind" | "metadata");
    o.retain(|k, v| own(k) || (schema["properties"].get(k).is_some() && !v.is_null()));
    for (k, v) in o.iter_mut() {
        if !own(k) {
            prune_node(&schema["properties"][k], v);
        }
    }
}

fn prune_node(schema: &Value, value: &mut Value) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match value {
        Value::Object(o) => {
            let props = schema["properties"].as_object();
            let additional = schema["additionalProperties"].is_object();
            o.retain(|k, v| {
                let child = props
                    .and_then(|p| p.get(k))
                    .or(additional.then(|| &schema["additionalProperties"]));
                match child {
                    // A null of a non-nullable field is dropped (and defaulted, if it has one).
                    Some(c) => !(v.is_null() && c["nullable"] != true),
                    None => preserve || schema["additionalProperties"] == true,
                }
            });
            for (k, v) in o.iter_mut() {
                if let Some(c) = props.and_then(|p| p.get(k)) {
                    prune_node(c, v);
                } else if additional {
                    prune_node(&schema["additionalProperties"], v);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                prune_node(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// Fills in the schema's defaults (after pruning, before validation, as the apiserver does).
pub(crate) fn default(schema: &Value, obj: &mut Value) {
    *obj = apply_defaults(schema, obj);
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Go's `%#v`-like rendering of a value in `Invalid value: ...`.
fn shown(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// RFC 3339 date-time, the OpenAPI `date-time` format.
fn is_date_time(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
        )
        .expect("date-time regex")
    })
    .is_match(s)
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let invalid = |out: &mut Vec<Cause>, detail: String| {
        out.push(Cause {
            field: path.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", shown(value)),
        })
    };
    if value.is_null() {
        if schema["nullable"] != true {
            out.push(Cause {
                field: path.into(),
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            });
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(is_integer(value) || value.is_string()) {
            out.push(Cause {
                field: path.into(),
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer,string: \"{}\"",
                    type_name(value),
                    type_name(value)
                ),
            });
        }
        return;
    }
    if let Some(ty) = schema["type"].as_str() {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            out.push(Cause {
                field: path.into(),
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{}\": {path} in body must be of type {ty}: \"{}\"",
                    type_name(value),
                    type_name(value)
                ),
            });
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push(Cause {
                field: path.into(),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(value),
                    list.join(", ")
                ),
            });
        }
    }
    if let Some(n) = value.as_f64() {
        let bound = |k: &str| schema[k].as_f64();
        if let Some(min) = bound("minimum") {
            if schema["exclusiveMinimum"] == true && n <= min {
                invalid(out, format!("{path} in body should be greater than {min}"));
            } else if n < min {
                invalid(
                    out,
                    format!("{path} in body should be greater than or equal to {min}"),
                );
            }
        }
        if let Some(max) = bound("maximum") {
            if schema["exclusiveMaximum"] == true && n >= max {
                invalid(out, format!("{path} in body should be less than {max}"));
            } else if n > max {
                invalid(
                    out,
                    format!("{path} in body should be less than or equal to {max}"),
                );
            }
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64() {
            if chars > max {
                out.push(Cause {
                    field: path.into(),
                    reason: "FieldValueTooLong",
                    message: format!("Too long: may not be longer than {max}"),
                });
            }
        }
        if let Some(min) = schema["minLength"].as_u64() {
            if chars < min {
                invalid(
                    out,
                    format!("{path} in body should be at least {min} chars long"),
                );
            }
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(s) => {}
                _ => invalid(out, format!("{path} in body should match '{pattern}'")),
            }
        }
        if schema["format"] == "date-time" && !is_date_time(s) {
            invalid(
                out,
                format!("{path} in body must be of type date-time: {value}"),
            );
        }
    }
    match value {
        Value::Object(o) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = req.as_str() {
                    if !o.contains_key(name) {
                        out.push(Cause {
                            field: join(path, name),
                            reason: "FieldValueRequired",
                            message: "Required value".into(),
                        });
                    }
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64() {
                if o.len() as u64 > max {
                    out.push(Cause {
                        field: path.into(),
                        reason: "FieldValueTooMany",
                        message: format!("Too many: {}: must have at most {max} items", o.len()),
                    });
                }
            }
            for (k, v) in o {
                if let Some(c) = schema["properties"].get(k) {
                    check(c, v, &join(path, k), out);
                } else if schema["additionalProperties"].is_object() {
                    check(
                        &schema["additionalProperties"],
                        v,
                        &format!("{path}[{k}]"),
                        out,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    out.push(Cause {
                        field: path.into(),
                        reason: "FieldValueTooMany",
                        message: format!(
                            "Too many: {}: must have at most {max} items",
                            items.len()
                        ),
                    });
                }
            }
            if let Some(min) = schema["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    invalid(
                        out,
                        format!("{path} in body should have at least {min} items"),
                    );
                }
            }
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let set = schema["x-kubernetes-list-type"] == "set";
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                check(&schema["items"], item, &item_path, out);
                let identity = if !keys.is_empty() {
                    Some(json!(keys
                        .iter()
                        .map(|k| item[*k].clone())
                        .collect::<Vec<_>>()))
                } else if set {
                    Some(item.clone())
                } else {
                    None
                };
                if let Some(id) = identity {
                    if seen.contains(&id) {
                        out.push(Cause {
                            field: item_path,
                            reason: "FieldValueDuplicate",
                            message: format!("Duplicate value: {}", shown(item)),
                        });
                    }
                    seen.push(id);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.into()
    } else {
        format!("{path}.{field}")
    }
}

thread_local! {
    /// Compiled CEL rules per CRD kind; compiled programs are not `Sync`, so one set per thread.
    static COMPILED: RefCell<HashMap<String, CompiledSchema>> = RefCell::new(HashMap::new());
}

/// Checks `obj` (pruned and defaulted) against the CRD's schema and, if that holds, its CEL
/// rules, with `old` as `oldSelf` on update. With `status_only` only `.status` is checked
/// (a write through the status subresource).
pub(crate) fn validate(
    crd: &Crd,
    obj: &Value,
    old: Option<&Value>,
    status_only: bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let props = &crd.schema["properties"];
    for field in ["spec", "status"] {
        if status_only && field == "spec" {
            continue;
        }
        if let Some(v) = obj.get(field) {
            check(&props[field], v, field, &mut causes);
        }
    }
    if !status_only {
        for req in crd.schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = req.as_str() {
                if obj.get(name).is_none() {
                    causes.push(Cause {
                        field: name.into(),
                        reason: "FieldValueRequired",
                        message: "Required value".into(),
                    });
                }
            }
        }
    }
    if !causes.is_empty() {
        return causes;
    }
    let errors = COMPILED.with(|compiled| {
        let mut compiled = compiled.borrow_mut();
        let schema = compiled
            .entry(crd.kind.clone())
            .or_insert_with(|| compile_schema(&crd.schema));
        Validator::new().validate_compiled(schema, obj, old)
    });
    if let Err(errors) = errors {
        for e in errors.into_vec() {
            if status_only && !e.field_path.starts_with("status") {
                continue;
            }
            let value = e
                .field_path
                .split('.')
                .filter(|s| !s.is_empty())
                .try_fold(obj, |v, s| v.get(s))
                .unwrap_or(&Value::Null);
            causes.push(Cause {
                field: e.field_path.clone(),
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"{}\": {}", type_name(value), e.message),
            });
        }
    }
    causes
}
