//! The fake API server's authorizer: Kubernetes RBAC over the rules the chart grants the
//! operator's ServiceAccount (`operator/tests/rbac/*.yaml`, generated from the chart by
//! `operator/tests/chart/test_chart.py --write`). A request is turned into the attributes the
//! apiserver authorizes (verb, API group, resource, subresource, namespace, name) the way its
//! RequestInfo resolver does, and refused unless some rule of some bound role allows it. As on
//! a real apiserver this happens before the object is looked up: a missing object the operator
//! may not touch is a 403, not a 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use serde::Deserialize;

/// Which rendering of the chart the RBAC comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChartValues {
    /// `helm install` with the chart's default values.
    Default,
    /// `--set serviceMonitor.enabled=true`.
    ServiceMonitor,
}

/// One PolicyRule of a Role or ClusterRole.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyRule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// A role bound to a user (the fixture also names it, for readers): its rules, limited to
/// `namespace` (a RoleBinding) or valid everywhere (None: a ClusterRoleBinding).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Grant {
    pub(crate) namespace: Option<String>,
    pub(crate) rules: Vec<PolicyRule>,
}

/// A ClusterRole the chart installs for the operator to bind to others.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NamedRole {
    pub(crate) name: String,
    /// Its rules as YAML gives them (stored in the fake as the ClusterRole's `rules`).
    pub(crate) rules: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fixture {
    user: String,
    grants: Vec<Grant>,
    rack_cluster_role: NamedRole,
}

fn fixture(values: ChartValues) -> Fixture {
    let text = match values {
        ChartValues::Default => include_str!("../rbac/default.yaml"),
        ChartValues::ServiceMonitor => include_str!("../rbac/service-monitor.yaml"),
    };
    serde_yaml::from_str(text).expect("RBAC fixture parses")
}

/// What the apiserver authorizes about one resource request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub(crate) verb: &'static str,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) subresource: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
}

/// A refused request: what the Status body of the 403 says.
#[derive(Debug)]
pub(crate) struct Forbidden {
    pub(crate) message: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) name: String,
}

/// The RBAC rules of one user (the operator's ServiceAccount).
#[derive(Debug)]
pub(crate) struct Rbac {
    user: String,
    grants: Vec<Grant>,
}

impl Rbac {
    /// The rules the chart grants the operator when rendered with `values`.
    pub(crate) fn chart(values: ChartValues) -> Arc<Rbac> {
        let fixture = fixture(values);
        Arc::new(Rbac {
            user: fixture.user,
            grants: fixture.grants,
        })
    }

    /// The ClusterRole the chart installs for brokers of Clusters with `rackLabel` (the
    /// operator's `--rack-cluster-role`), which the operator may bind but not hold.
    pub(crate) fn chart_rack_role(values: ChartValues) -> NamedRole {
        fixture(values).rack_cluster_role
    }

    /// The rules of `user`, from the roles its bindings grant.
    pub(crate) fn new(user: String, grants: Vec<Grant>) -> Rbac {
        Rbac { user, grants }
    }

    /// Kubernetes' guard against privilege escalation through a binding (`BindingAuthorized`,
    /// then `ConfirmNoEscalation`): writing `binding` (its create, update or patch attributes)
    /// that grants the role `role_kind`/`role_name` is allowed only to a user who may `bind`
    /// that role, or who already holds every rule of it (`role_rules`; None when the role does
    /// not exist, which nobody holds).
    pub(crate) fn may_bind(
        &self,
        binding: &Attributes,
        role_kind: &str,
        role_name: &str,
        role_rules: Option<&[PolicyRule]>,
    ) -> Result<(), Forbidden> {
        let bind = Attributes {
            verb: "bind",
            group: "rbac.authorization.k8s.io".into(),
            resource: if role_kind == "ClusterRole" {
                "clusterroles"
            } else {
                "roles"
            }
            .into(),
            subresource: None,
            namespace: binding.namespace.clone(),
            name: Some(role_name.to_string()),
        };
        if self.allows(&bind) {
            return Ok(());
        }
        let held = role_rules.is_some_and(|rules| {
            rules.iter().all(|rule| {
                let names: Vec<Option<String>> = if rule.resource_names.is_empty() {
                    vec![None]
                } else {
                    rule.resource_names.iter().cloned().map(Some).collect()
                };
                rule.verbs.iter().all(|verb| {
                    rule.api_groups.iter().all(|group| {
                        rule.resources.iter().all(|resource| {
                            let (resource, subresource) = match resource.split_once('/') {
                                Some((r, sub)) => (r.to_string(), Some(sub.to_string())),
                                None => (resource.clone(), None),
                            };
                            names.iter().all(|name| {
                                self.allows(&Attributes {
                                    verb: static_verb(verb),
                                    group: group.clone(),
                                    resource: resource.clone(),
                                    subresource: subresource.clone(),
                                    namespace: binding.namespace.clone(),
                                    name: name.clone(),
                                })
                            })
                        })
                    })
                })
            })
        });
        if held {
            return Ok(());
        }
        let qualified = format!("{}.rbac.authorization.k8s.io", binding.resource);
        let name = binding.name.clone().unwrap_or_default();
        Err(Forbidden {
            message: format!(
                "{qualified} {name:?} is forbidden: user {:?} is attempting to grant RBAC \
                 permissions not currently held (the rules of {role_kind} {role_name:?}) and \
                 may not bind it",
                self.user
            ),
            group: "rbac.authorization.k8s.io".into(),
            resource: binding.resource.clone(),
            name,
        })
    }

    /// Allows the request `method path?query` or says why not, in the apiserver's words.
    pub(crate) fn authorize(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
    ) -> Result<(), Forbidden> {
        let Some(attrs) = attributes(method, path, query) else {
            // Non-resource URLs (/version, /openapi): the chart grants none.
            return Err(Forbidden {
                message: format!(
                    "forbidden: User {:?} cannot {} path {path:?}",
                    self.user,
                    method.as_str().to_lowercase()
                ),
                group: String::new(),
                resource: String::new(),
                name: String::new(),
            });
        };
        if self.allows(&attrs) {
            return Ok(());
        }
        Err(self.forbidden(&attrs))
    }

    pub(crate) fn allows(&self, a: &Attributes) -> bool {
        self.grants
            .iter()
            .filter(|g| g.namespace.is_none() || g.namespace == a.namespace)
            .flat_map(|g| &g.rules)
            .any(|r| rule_allows(r, a))
    }

    /// The message of `k8s.io/apiserver`'s `forbiddenMessage` wrapped by `NewForbidden`.
    fn forbidden(&self, a: &Attributes) -> Forbidden {
        let resource = match &a.subresource {
            Some(sub) => format!("{}/{sub}", a.resource),
            None => a.resource.clone(),
        };
        let scope = match &a.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".into(),
        };
        let reason = format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            self.user, a.verb, a.group
        );
        let qualified = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        let name = a.name.clone().unwrap_or_default();
        let message = if name.is_empty() {
            format!("{qualified} is forbidden: {reason}")
        } else {
            format!("{qualified} {name:?} is forbidden: {reason}")
        };
        Forbidden {
            message,
            group: a.group.clone(),
            resource: a.resource.clone(),
            name,
        }
    }
}

/// The verbs a role rule can name, as the `&'static str` [`Attributes`] carries; any other verb
/// (`*` or a custom one) is kept as `*`, which only a `*` rule matches.
fn static_verb(verb: &str) -> &'static str {
    const VERBS: [&str; 12] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "bind",
        "escalate",
        "impersonate",
        "use",
    ];
    VERBS.into_iter().find(|v| *v == verb).unwrap_or("*")
}

fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    let any_or = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
    let resource_matches = rule.resources.iter().any(|r| match &a.subresource {
        None => r == "*" || *r == a.resource,
        Some(sub) => r == "*" || *r == format!("{}/{sub}", a.resource) || *r == format!("*/{sub}"),
    });
    let name_matches = rule.resource_names.is_empty()
        || a.name
            .as_ref()
            .is_some_and(|n| rule.resource_names.contains(n));
    any_or(&rule.verbs, a.verb)
        && any_or(&rule.api_groups, &a.group)
        && resource_matches
        && name_matches
}

/// The authorization attributes of a request, as the apiserver's RequestInfo resolver derives
/// them; None for a path that names no resource.
pub(crate) fn attributes(
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Option<Attributes> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, mut rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    // `namespaces/<ns>/<resource>...` is namespaced; `namespaces[/<ns>]` is the Namespace
    // resource itself.
    let mut namespace = None;
    if let ["namespaces", ns, tail @ ..] = rest {
        if !tail.is_empty() {
            namespace = Some(ns.to_string());
            rest = tail;
        }
    }
    let (resource, name, subresource) = match rest {
        [resource] => (resource, None, None),
        [resource, name] => (resource, Some(name.to_string()), None),
        [resource, name, sub] => (resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method, name.is_some()) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return None,
    };
    Some(Attributes {
        verb,
        group,
        resource: resource.to_string(),
        subresource,
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Node, Secret};
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::core::DynamicObject;
    use runnel_operator::crd::Cluster;
    use runnel_operator::resources::service_monitor_resource;
    use serde_json::json;

    use super::*;
    use crate::fake_api::FakeApi;

    const RBAC_BASE: &str = "apis/rbac.authorization.k8s.io/v1";
    use crate::harness::{cluster_spec, NS};

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requests_map_to_the_verbs_and_resources_the_apiserver_authorizes() {
        let none = q(&[]);
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/kafka/services/a",
                &none,
                "get",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/kafka/services",
                &none,
                "list",
            ),
            (
                Method::GET,
                "/api/v1/services",
                &q(&[("watch", "true")]),
                "watch",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/kafka/services",
                &none,
                "create",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/kafka/services/a",
                &none,
                "update",
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/kafka/services/a",
                &none,
                "patch",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/kafka/services/a",
                &none,
                "delete",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/kafka/services",
                &none,
                "deletecollection",
            ),
        ];
        for (method, path, query, verb) in cases {
            let a = attributes(&method, path, query).expect("a resource request");
            assert_eq!(a.verb, verb, "{method} {path}");
            assert_eq!(a.resource, "services");
        }
        let status = attributes(
            &Method::PATCH,
            "/apis/runnel.dev/v1alpha1/namespaces/kafka/clusters/demo/status",
            &none,
        )
        .expect("status");
        assert_eq!(
            status,
            Attributes {
                verb: "patch",
                group: "runnel.dev".into(),
                resource: "clusters".into(),
                subresource: Some("status".into()),
                namespace: Some("kafka".into()),
                name: Some("demo".into()),
            }
        );
        let all = attributes(&Method::GET, "/apis/runnel.dev/v1alpha1/clusters", &none)
            .expect("cluster-wide list");
        assert_eq!(all.namespace, None);
        let ns = attributes(&Method::GET, "/api/v1/namespaces/kafka", &none).expect("namespace");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref()),
            ("namespaces", Some("kafka"))
        );
        assert_eq!(attributes(&Method::GET, "/version", &none), None);
    }

    #[test]
    fn chart_rules_allow_only_what_they_grant() {
        let rbac = Rbac::chart(ChartValues::Default);
        let none = q(&[]);
        let allowed = |method: Method, path: &str| rbac.authorize(&method, path, &none).is_ok();
        assert!(allowed(
            Method::PATCH,
            "/apis/apps/v1/namespaces/kafka/statefulsets/x"
        ));
        assert!(allowed(Method::GET, "/apis/runnel.dev/v1alpha1/topics"));
        assert!(allowed(
            Method::PATCH,
            "/apis/runnel.dev/v1alpha1/namespaces/a/topics/t/status"
        ));
        // A verb not granted: the operator never creates or deletes its own custom resources.
        assert!(!allowed(
            Method::DELETE,
            "/apis/runnel.dev/v1alpha1/namespaces/a/topics/t"
        ));
        assert!(!allowed(
            Method::POST,
            "/apis/runnel.dev/v1alpha1/namespaces/a/clusters"
        ));
        // A resource not granted.
        assert!(!allowed(
            Method::GET,
            "/api/v1/namespaces/a/resourcequotas/q"
        ));
        // Secrets may be read and created (User passwords), never changed or deleted: a
        // generated one goes with its User through its ownerReference.
        assert!(allowed(Method::GET, "/api/v1/namespaces/a/secrets/s"));
        assert!(allowed(Method::POST, "/api/v1/namespaces/a/secrets"));
        assert!(!allowed(Method::DELETE, "/api/v1/namespaces/a/secrets/s"));
        assert!(!allowed(Method::PATCH, "/api/v1/namespaces/a/secrets/s"));
        assert!(!allowed(
            Method::DELETE,
            "/apis/monitoring.coreos.com/v1/namespaces/a/servicemonitors/m"
        ));
        // A subresource not granted (pods/exec, StatefulSet status and scale).
        assert!(!allowed(Method::POST, "/api/v1/namespaces/a/pods/p/exec"));
        assert!(!allowed(
            Method::PATCH,
            "/apis/apps/v1/namespaces/a/statefulsets/x/status"
        ));
        assert!(!allowed(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/statefulsets/x/scale"
        ));
        // The Lease Role holds in the operator's namespace only.
        assert!(allowed(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/runnel-system/leases/l"
        ));
        assert!(!allowed(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kafka/leases/l"
        ));
        assert!(!allowed(
            Method::DELETE,
            "/apis/coordination.k8s.io/v1/namespaces/runnel-system/leases/l"
        ));

        let monitors = Rbac::chart(ChartValues::ServiceMonitor);
        assert!(monitors
            .authorize(
                &Method::DELETE,
                "/apis/monitoring.coreos.com/v1/namespaces/a/servicemonitors/m",
                &none
            )
            .is_ok());
    }

    #[tokio::test]
    async fn the_fake_answers_403_before_looking_the_object_up() {
        let api = FakeApi::new();
        let operator = api.client_as(Rbac::chart(ChartValues::Default));
        let monitors: Api<DynamicObject> =
            Api::namespaced_with(operator.clone(), NS, &service_monitor_resource());
        let err = monitors
            .delete("demo-brokers", &DeleteParams::default())
            .await
            .expect_err("no servicemonitors rule under the chart's defaults");
        let kube::Error::Api(status) = err else {
            panic!("an API error: {err:?}");
        };
        assert_eq!(status.code, StatusCode::FORBIDDEN.as_u16());
        assert_eq!(status.reason, "Forbidden");
        assert_eq!(
            status.message,
            "servicemonitors.monitoring.coreos.com \"demo-brokers\" is forbidden: User \
             \"system:serviceaccount:runnel-system:runnel\" cannot delete resource \
             \"servicemonitors\" in API group \"monitoring.coreos.com\" in the namespace \"kafka\""
        );

        // A verb not granted, even when the object exists (seeded by the admin client).
        let admin = api.client();
        Api::<Secret>::namespaced(admin.clone(), NS)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "s"}}))
                .expect("secret"),
            )
            .await
            .expect("an admin creates anything");
        let err = Api::<Secret>::namespaced(operator.clone(), NS)
            .delete("s", &DeleteParams::default())
            .await
            .expect_err("no delete on secrets");
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 403),
            "{err:?}"
        );

        // A verb not granted: the operator may not create Clusters.
        let clusters: Api<Cluster> = Api::namespaced(operator.clone(), NS);
        let err = clusters
            .create(
                &PostParams::default(),
                &Cluster::new("demo", cluster_spec(1)),
            )
            .await
            .expect_err("no create on clusters");
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 403
                && s.message == "clusters.runnel.dev is forbidden: User \
                \"system:serviceaccount:runnel-system:runnel\" cannot create resource \
                \"clusters\" in API group \"runnel.dev\" in the namespace \"kafka\""),
            "{err:?}"
        );
        assert!(api
            .get("apis/runnel.dev/v1alpha1", "clusters", NS, "demo")
            .is_none());

        // A subresource not granted: StatefulSet status is the StatefulSet controller's.
        let admin_sts: Api<StatefulSet> = Api::namespaced(admin, NS);
        admin_sts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": "x"}, "spec": {"selector": {}, "template": {}}}))
                .expect("sts"),
            )
            .await
            .expect("seeded");
        let sts: Api<StatefulSet> = Api::namespaced(operator.clone(), NS);
        let err = sts
            .patch_status(
                "x",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 1}})),
            )
            .await
            .expect_err("no statefulsets/status rule");
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 403
                && s.message.contains("cannot patch resource \"statefulsets/status\"")),
            "{err:?}"
        );

        // What is granted goes through, to the usual answers.
        assert!(sts.get("x").await.is_ok());
        assert!(sts.list(&ListParams::default()).await.is_ok());
        let missing = sts.get("nope").await.expect_err("not there");
        assert!(
            matches!(missing, kube::Error::Api(ref s) if s.code == 404),
            "{missing:?}"
        );
        let refused = api.forbidden_requests();
        assert_eq!(refused.len(), 4, "{refused:?}");
    }

    fn cluster_role(name: &str, rules: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules})
    }

    fn binding_to(role: &str) -> ClusterRoleBinding {
        serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "runnel-broker-rack.kafka.demo"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "demo-broker", "namespace": NS}],
        }))
        .expect("binding")
    }

    fn code(result: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(kube::Error::Api(s)) => s.code,
            Err(e) => panic!("not an API answer: {e:?}"),
        }
    }

    /// The operator may bind the chart's rack role (it holds `bind` on it) but no other role it
    /// does not itself hold (the escalation check); a ServiceAccount gets exactly what the
    /// stored bindings grant it, at the time of each request; roleRef never changes.
    #[tokio::test]
    async fn bindings_grant_only_what_the_writer_may_bind_and_accounts_get_what_they_are_bound() {
        let api = FakeApi::new();
        let rack = Rbac::chart_rack_role(ChartValues::Default);
        api.seed(
            RBAC_BASE,
            "clusterroles",
            "",
            cluster_role(&rack.name, rack.rules),
        );
        api.seed(
            RBAC_BASE,
            "clusterroles",
            "",
            cluster_role(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            ),
        );
        api.seed(
            "api/v1",
            "nodes",
            "",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        );
        let operator = api.client_as(Rbac::chart(ChartValues::Default));
        let broker = api.client_as_service_account(NS, "demo-broker");
        let nodes_of = |c: &kube::Client| Api::<Node>::all(c.clone());

        // Nobody here may read nodes yet; the operator never may.
        assert_eq!(code(nodes_of(&operator).get("n1").await), 403);
        assert_eq!(code(nodes_of(&broker).get("n1").await), 403);

        // The operator binds the rack role: the brokers may get (not list) nodes, nothing else.
        let bindings: Api<ClusterRoleBinding> = Api::all(operator.clone());
        bindings
            .patch(
                "runnel-broker-rack.kafka.demo",
                &PatchParams::apply("runnel-operator").force(),
                &Patch::Apply(binding_to("runnel-broker-rack")),
            )
            .await
            .expect("the operator may bind the rack role");
        assert_eq!(code(nodes_of(&broker).get("n1").await), 200);
        assert_eq!(
            code(nodes_of(&broker).list(&ListParams::default()).await),
            403
        );
        assert_eq!(
            code(Api::<Secret>::namespaced(broker.clone(), NS).get("s").await),
            403
        );

        // Binding a role it neither holds nor may bind is an escalation: 403, nothing stored.
        let mut admin_binding = binding_to("cluster-admin");
        admin_binding.metadata.name = Some("escalate".into());
        let err = bindings
            .create(&PostParams::default(), &admin_binding)
            .await
            .expect_err("escalation");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 403
                && s.message.contains("is attempting to grant RBAC permissions not currently held")),
            "{err:?}"
        );
        assert!(api
            .get(RBAC_BASE, "clusterrolebindings", "", "escalate")
            .is_none());
        // Through an apply of the existing binding too.
        let err = bindings
            .patch(
                "runnel-broker-rack.kafka.demo",
                &PatchParams::apply("runnel-operator").force(),
                &Patch::Apply(binding_to("cluster-admin")),
            )
            .await
            .expect_err("escalation by apply");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 403),
            "{err:?}"
        );

        // roleRef is immutable even for an admin (422).
        let admin: Api<ClusterRoleBinding> = Api::all(api.client());
        let err = admin
            .patch(
                "runnel-broker-rack.kafka.demo",
                &PatchParams::default(),
                &Patch::Merge(json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                 "kind": "ClusterRole", "name": "cluster-admin"}})),
            )
            .await
            .expect_err("roleRef is immutable");
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 422
                && s.message.contains("cannot change roleRef")),
            "{err:?}"
        );

        // Deleted: the brokers lose the access on their next request.
        bindings
            .delete("runnel-broker-rack.kafka.demo", &DeleteParams::default())
            .await
            .expect("delete binding");
        assert_eq!(code(nodes_of(&broker).get("n1").await), 403);
    }

    /// Without `bind`, a user may grant only rules it holds itself.
    #[test]
    fn holding_every_rule_of_a_role_allows_binding_it_without_bind() {
        let rules: Vec<PolicyRule> = serde_json::from_value(json!([
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        ]))
        .expect("rules");
        let holder = Rbac::new(
            "u".into(),
            vec![Grant {
                namespace: None,
                rules: rules.clone(),
            }],
        );
        let binding = Attributes {
            verb: "create",
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterrolebindings".into(),
            subresource: None,
            namespace: None,
            name: Some("b".into()),
        };
        assert!(holder
            .may_bind(&binding, "ClusterRole", "reader", Some(&rules))
            .is_ok());
        let more: Vec<PolicyRule> = serde_json::from_value(json!([
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
        ]))
        .expect("rules");
        assert!(holder
            .may_bind(&binding, "ClusterRole", "lister", Some(&more))
            .is_err());
        // A role that does not exist is held by nobody.
        assert!(holder
            .may_bind(&binding, "ClusterRole", "gone", None)
            .is_err());
    }
}
