//! The checked-in CRDs (crds/, charts/runnel/crds/) match the Rust types, and every schema is
//! structural.

use std::path::{Path, PathBuf};

use serde_json::Value;

const KINDS: [&str; 4] = ["cluster", "topic", "consumer", "user"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

fn generated() -> Vec<(String, String)> {
    let crds = runnel_operator::crds();
    assert_eq!(crds.len(), KINDS.len());
    KINDS
        .iter()
        .zip(crds.iter())
        .map(|(kind, crd)| {
            (
                format!("{kind}.yaml"),
                runnel_operator::crd::crd_yaml(crd).expect("CRD serializes"),
            )
        })
        .collect()
}

fn assert_dir_matches_generated(dir: &Path) {
    for (file, expected) in generated() {
        let path = dir.join(&file);
        let actual = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            actual == expected,
            "{} differs from the generated CRD; regenerate with \
             `cargo run -p runnel-operator -- crd` (see crds/README.md)",
            path.display()
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut expected: Vec<String> = KINDS.iter().map(|k| format!("{k}.yaml")).collect();
    expected.sort();
    assert_eq!(
        files,
        expected,
        "unexpected YAML files in {}",
        dir.display()
    );
}

#[test]
fn checked_in_crds_equal_generated_output() {
    assert_dir_matches_generated(&repo_root().join("crds"));
}

#[test]
fn chart_crds_equal_checked_in_crds() {
    assert_dir_matches_generated(&repo_root().join("charts/runnel/crds"));
}

#[test]
fn crd_subcommand_output_is_the_four_crds() {
    let out = runnel_operator::crds_yaml().expect("CRDs serialize");
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
        .collect();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("CRD has a name"))
        .collect();
    assert_eq!(
        names,
        [
            "clusters.runnel.dev",
            "topics.runnel.dev",
            "consumers.runnel.dev",
            "users.runnel.dev"
        ]
    );
    for doc in &docs {
        let version = &doc["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(
            version["subresources"]["status"].is_object(),
            "status subresource"
        );
        assert!(!doc["spec"]["names"]["shortNames"]
            .as_array()
            .expect("short names")
            .is_empty());
        assert!(
            version["additionalPrinterColumns"]
                .as_array()
                .expect("columns")
                .len()
                >= 3
        );
    }
}

/// Schema paths where `x-kubernetes-preserve-unknown-fields` is intended (none today).
const PRESERVE_UNKNOWN_ALLOWED: &[&str] = &[];

/// Checks the rules of a structural schema (Kubernetes "Specifying a structural schema"):
/// every node has a `type` (or is int-or-string / preserve-unknown-fields), no `$ref`, and the
/// logical junctors (`anyOf`, `oneOf`, `allOf`, `not`) carry no types, properties or defaults.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    if obj.contains_key("$ref") {
        out.push(format!("{path}: $ref is not allowed"));
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if preserve && !PRESERVE_UNKNOWN_ALLOWED.contains(&path) {
        out.push(format!(
            "{path}: x-kubernetes-preserve-unknown-fields is not intended here"
        ));
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        Some(other) => out.push(format!("{path}: unknown type {other}")),
        None if int_or_string || preserve => {}
        None => out.push(format!("{path}: missing type")),
    }
    for junctor in ["anyOf", "oneOf", "allOf", "not"] {
        if let Some(j) = obj.get(junctor) {
            let branches: Vec<&Value> = match j {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for b in branches {
                for forbidden in [
                    "type",
                    "properties",
                    "items",
                    "additionalProperties",
                    "default",
                    "nullable",
                    "description",
                ] {
                    if b.get(forbidden).is_some() {
                        out.push(format!("{path}.{junctor}: {forbidden} inside a junctor"));
                    }
                }
            }
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_violations(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            structural_violations(ap, &format!("{path}{{}}"), out);
        }
    }
    if obj.get("type").and_then(Value::as_str) == Some("array") && !obj.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("CRD has an openAPIV3Schema"),
    )
    .expect("schema serializes")
}

#[test]
fn every_crd_schema_is_structural() {
    for crd in runnel_operator::crds() {
        let schema = schema_of(&crd);
        let mut violations = Vec::new();
        structural_violations(&schema, "", &mut violations);
        assert!(
            violations.is_empty(),
            "{} is not structural:\n{}",
            crd.metadata.name.unwrap_or_default(),
            violations.join("\n")
        );
    }
}

#[test]
fn structural_checker_rejects_non_structural_schemas() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "description": "no type" },
            "b": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            "c": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
            "d": { "type": "array" }
        }
    });
    let mut violations = Vec::new();
    structural_violations(&bad, "", &mut violations);
    for needle in [
        ".a: missing type",
        ".b: x-kubernetes-preserve",
        ".c.anyOf: type",
        ".d: array without items",
    ] {
        assert!(
            violations.iter().any(|v| v.starts_with(needle)),
            "expected a violation {needle:?} in {violations:?}"
        );
    }
}

pub(crate) fn crd_schema(kind: &str) -> Value {
    let crd = runnel_operator::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("kind exists");
    schema_of(&crd)
}
