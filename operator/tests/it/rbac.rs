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
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// A role bound to the operator (the fixture also names it, for readers): its rules, limited to
/// `namespace` (a RoleBinding) or valid everywhere (None: a ClusterRoleBinding).
#[derive(Debug, Deserialize)]
struct Grant {
    namespace: Option<String>,
    rules: Vec<PolicyRule>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    user: String,
    grants: Vec<Grant>,
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
        let text = match values {
            ChartValues::Default => include_str!("../rbac/default.yaml"),
            ChartValues::ServiceMonitor => include_str!("../rbac/service-monitor.yaml"),
        };
        let fixture: Fixture = serde_yaml::from_str(text).expect("RBAC fixture parses");
        Arc::new(Rbac {
            user: fixture.user,
            grants: fixture.grants,
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

    fn allows(&self, a: &Attributes) -> bool {
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
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::core::DynamicObject;
    use runnel_operator::crd::Cluster;
    use runnel_operator::resources::service_monitor_resource;
    use serde_json::json;

    use super::*;
    use crate::fake_api::FakeApi;
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
        assert!(!allowed(Method::GET, "/api/v1/namespaces/a/secrets/s"));
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

        // A resource not granted, even when the object exists (seeded by the admin client).
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
            .get("s")
            .await
            .expect_err("no secrets rule");
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
}
