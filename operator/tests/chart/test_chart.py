"""Renders charts/runnel with Helm's own engine (helm-python-sdk) and validates the output and
deploy/ against the Kubernetes schemas (kubernetes-validate) and the Runnel CRD schemas.

Regenerate deploy/operator.yaml from the chart defaults, and the RBAC fixtures the operator's
Rust tests enforce in their fake API server (operator/tests/rbac/), with:
    python3 operator/tests/chart/test_chart.py --write
"""

from __future__ import annotations

import copy
import pathlib
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "runnel"
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.33"  # oldest minor of the validated range that has every API we use
RELEASE = "runnel"
NAMESPACE = "runnel-system"
# Kinds that are not part of Kubernetes itself (validated elsewhere or by their own CRD).
EXTERNAL_KINDS = {"ServiceMonitor"}
# Labels Helm adds that make no sense in plain manifests.
HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}
RBAC_FIXTURES = ROOT / "operator" / "tests" / "rbac"
# Fixture file -> (what the values are, the chart values it is rendered with).
RBAC_VARIANTS = {
    "default.yaml": ("default values", None),
    "service-monitor.yaml": ("serviceMonitor.enabled=true", {"serviceMonitor": {"enabled": True}}),
}


def render(values: dict | None = None) -> list[dict]:
    chart = helm.Chart.load(CHART)
    chart.validate_schema(values)
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path in sorted(out):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(d for d in yaml.safe_load_all(out[path]) if d)
    return docs


def crd_docs() -> list[dict]:
    return [yaml.safe_load((CHART / "crds" / f"{k}.yaml").read_text()) for k in ("cluster", "topic", "consumer")]


def validate_k8s(doc: dict) -> None:
    if doc["kind"] in EXTERNAL_KINDS:
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_default_render_is_valid_kubernetes():
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
        "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount",
    ])
    for doc in docs + crd_docs():
        validate_k8s(doc)
    (deployment,) = of_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["run", "--leader-election", "--rack-cluster-role=runnel-broker-rack"]


def test_watch_namespaces_without_rack_awareness_gives_namespaced_roles_only():
    docs = render({"watchNamespaces": ["team-a", "team-b"], "replicas": 2,
                   "serviceMonitor": {"enabled": True}, "leaderElection": {"enabled": True},
                   "rackAwareness": {"enabled": False}})
    for doc in docs:
        validate_k8s(doc)
    assert of_kind(docs, "ClusterRole") == [] and of_kind(docs, "ClusterRoleBinding") == []
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in of_kind(docs, "Role")}
    assert roles == {("team-a", "runnel"), ("team-b", "runnel"), (NAMESPACE, "runnel-leader-election")}
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # --service-monitors goes with the servicemonitors rule below: the operator touches them
    # only when its role allows it.
    assert args == ["run", "--leader-election", "--namespace=team-a", "--namespace=team-b",
                    "--service-monitors"]
    assert len(of_kind(docs, "ServiceMonitor")) == 1
    team_a = next(r for r in of_kind(docs, "Role") if r["metadata"]["namespace"] == "team-a")
    assert any("servicemonitors" in rule["resources"] for rule in team_a["rules"])


def test_rack_awareness_is_the_only_cluster_scoped_rbac_with_watch_namespaces():
    docs = render({"watchNamespaces": ["team-a"]})
    cluster_roles = {r["metadata"]["name"]: r["rules"] for r in of_kind(docs, "ClusterRole")}
    assert cluster_roles == {
        "runnel-broker-rack": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        "runnel-rack-bindings": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterrolebindings"],
             "verbs": ["get", "create", "patch", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
             "verbs": ["bind"], "resourceNames": ["runnel-broker-rack"]},
        ],
    }
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "runnel-rack-bindings"
    (deployment,) = of_kind(docs, "Deployment")
    assert "--rack-cluster-role=runnel-broker-rack" in (
        deployment["spec"]["template"]["spec"]["containers"][0]["args"])


def test_leader_election_off_has_no_lease_rbac():
    docs = render({"leaderElection": {"enabled": False}})
    assert of_kind(docs, "Role") == []
    rules = of_kind(docs, "ClusterRole")[0]["rules"]
    assert not any("leases" in r["resources"] for r in rules)
    # Secrets only for User passwords: read, watched and created, never changed or deleted.
    secret_verbs = {v for r in rules if "secrets" in r["resources"] for v in r["verbs"]}
    assert secret_verbs == {"get", "list", "watch", "create"}, secret_verbs


@pytest.mark.parametrize("values", [
    {"replicas": 0},
    {"unknownKey": True},
    {"image": {"repository": "x", "pullPolicy": "Sometimes"}},
    {"watchNamespaces": ["Not_A_Namespace"]},
])
def test_values_schema_refuses_bad_values(values):
    with pytest.raises(helm.HelmError):
        helm.Chart.load(CHART).validate_schema(values)


def plain_manifests() -> list[dict]:
    """The chart's default render as plain manifests: Namespace, CRDs, then the templates."""
    docs = copy.deepcopy(render())
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        for key in HELM_ONLY_LABELS:
            labels.pop(key, None)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return [namespace] + crd_docs() + docs


def test_deploy_operator_yaml_equals_chart_defaults():
    actual = [d for d in yaml.safe_load_all((DEPLOY / "operator.yaml").read_text()) if d]
    assert actual == plain_manifests(), (
        "deploy/operator.yaml differs from the chart's default render; regenerate with "
        "`python3 operator/tests/chart/test_chart.py --write`"
    )
    for doc in actual:
        validate_k8s(doc)


def openapi_to_jsonschema(schema):
    """OpenAPI v3 `nullable` -> JSON Schema null type, recursively."""
    if isinstance(schema, dict):
        out = {k: openapi_to_jsonschema(v) for k, v in schema.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [openapi_to_jsonschema(s) for s in schema]
    return schema


@pytest.mark.parametrize("name", ["cluster", "topic", "consumer", "user"])
def test_examples_validate_against_their_crd(name):
    crd = yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())
    schema = openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    docs = [d for d in yaml.safe_load_all((DEPLOY / "examples" / f"{name}.yaml").read_text()) if d]
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == "runnel.dev/v1alpha1"
        assert doc["kind"] == crd["spec"]["names"]["kind"]
        jsonschema.validate(doc, schema)


def test_crd_schema_check_refuses_a_bad_example():
    crd = yaml.safe_load((ROOT / "crds" / "topic.yaml").read_text())
    schema = openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    bad = {"apiVersion": "runnel.dev/v1alpha1", "kind": "Topic", "metadata": {"name": "t"},
           "spec": {"clusterRef": {"name": "c"}, "partitions": 3, "replicationFactor": 0}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_grafana_dashboard_queries_only_metrics_the_broker_or_operator_exports():
    import json
    import re

    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    sources = [ROOT / "broker" / "server" / "src", ROOT / "operator" / "src"]
    source = "\n".join(p.read_text() for d in sources for p in d.rglob("*.rs"))
    exported = set(re.findall(r'"(runnel_[a-z_]+)"', source))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert exprs
    for expr in exprs:
        for metric in re.findall(r"\b(runnel_[A-Za-z0-9_:]*)", expr):
            base = re.sub(r"_bucket$", "", metric)
            assert base in exported, f"{metric} in {expr!r} is exported by neither the broker nor the operator"


def operator_grants(docs: list[dict]) -> dict:
    """What the operator's ServiceAccount may do in a render: the rules of every role bound to
    it, each with the namespace the binding limits it to (None: a ClusterRoleBinding, every
    namespace)."""
    (deployment,) = of_kind(docs, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = deployment["metadata"]["namespace"]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("ClusterRole", "Role")}
    grants = []
    for binding in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding"):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account
                   and s.get("namespace") == namespace for s in binding["subjects"]):
            continue
        scope = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        grants.append({"role": f"{ref['kind']}/{ref['name']}", "namespace": scope,
                       "rules": role["rules"]})
    # The ClusterRole the operator binds to brokers for rackLabel (its --rack-cluster-role flag),
    # with its rules: the fake API server stores it as a real cluster would hold it.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (rack_role,) = [a.split("=", 1)[1] for a in container["args"]
                    if a.startswith("--rack-cluster-role=")]
    rack_rules = roles[("ClusterRole", None, rack_role)]["rules"]
    return {"user": f"system:serviceaccount:{namespace}:{account}", "grants": grants,
            "rackClusterRole": {"name": rack_role, "rules": rack_rules}}


RBAC_HEADER = ("# The RBAC the chart grants the operator's ServiceAccount, rendered with {values}.\n"
               "# Generated by operator/tests/chart/test_chart.py --write; do not edit. The fake API\n"
               "# server of the operator's Rust tests (operator/tests/it/rbac.rs) enforces it.\n")


def rbac_fixture_text(described: str, values: dict | None) -> str:
    body = yaml.safe_dump(operator_grants(render(values)), sort_keys=False, width=1000)
    return RBAC_HEADER.format(values=described) + body


@pytest.mark.parametrize("name", sorted(RBAC_VARIANTS))
def test_rbac_fixtures_equal_what_the_chart_grants(name):
    expected = rbac_fixture_text(*RBAC_VARIANTS[name])
    assert (RBAC_FIXTURES / name).read_text() == expected, (
        f"operator/tests/rbac/{name} differs from the chart's RBAC; regenerate with "
        "`python3 operator/tests/chart/test_chart.py --write`"
    )


def test_only_the_service_monitor_variant_grants_service_monitors():
    def grants_monitors(values):
        return any("servicemonitors" in rule["resources"]
                   for grant in operator_grants(render(values))["grants"] for rule in grant["rules"])
    assert not grants_monitors(RBAC_VARIANTS["default.yaml"][1])
    assert grants_monitors(RBAC_VARIANTS["service-monitor.yaml"][1])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    header = ("# Runnel operator, plain-manifest install (generated from charts/runnel defaults by\n"
              "# operator/tests/chart/test_chart.py --write; do not edit):\n"
              "#   kubectl apply --server-side -f deploy/operator.yaml\n")
    body = yaml.safe_dump_all(plain_manifests(), sort_keys=False, width=1000)
    (DEPLOY / "operator.yaml").write_text(header + "---\n" + body)
    RBAC_FIXTURES.mkdir(exist_ok=True)
    for name, variant in RBAC_VARIANTS.items():
        (RBAC_FIXTURES / name).write_text(rbac_fixture_text(*variant))
