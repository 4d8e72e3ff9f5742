//! Applying a Cluster's objects and status to the Kubernetes API with server-side apply (the
//! write half of the Cluster reconciler; the objects come from the pure builders in
//! `resources` and the status from `status`).

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::{Cluster, ClusterStatus};
use crate::resources::{self, service_monitor_resource};
use crate::Error;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "runnel-operator";

fn kube_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

/// Server-side applies `obj` as the operator (forced: the operator owns what it applies).
pub(crate) async fn apply_object<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    // force: the operator owns these fields; a conflicting manager is overridden, as the spec
    // is the source of truth.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(obj))
        .await
        .map_err(kube_err(format!("apply {name}")))
}

/// Deletes this Cluster's listener Services (labelled [`resources::LISTENER_LABEL`]) that
/// `desired` no longer holds: a listener removed or made `internal`, a broker scaled away.
async fn remove_stale_listener_services(
    client: &Client,
    cluster: &Cluster,
    ns: &str,
    desired: &[Service],
) -> Result<(), Error> {
    let cluster_name = cluster.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let selector = format!(
        "{},{}",
        resources::label_selector(cluster_name),
        resources::LISTENER_LABEL
    );
    let listed = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!(
            "list listener Services of {cluster_name}"
        )))?;
    let selector_labels = resources::selector_labels(cluster_name);
    for service in listed.items {
        let labels = service.metadata.labels.clone().unwrap_or_default();
        // The selector again, for API servers (or fakes) that ignore it.
        let ours = selector_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && labels.contains_key(resources::LISTENER_LABEL);
        let name = service.metadata.name.clone().unwrap_or_default();
        let wanted = desired
            .iter()
            .any(|d| d.metadata.name.as_deref() == Some(name.as_str()));
        if ours && !wanted {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(kube_err(format!("delete Service {name}"))(e)),
            }
        }
    }
    Ok(())
}

/// Creates the Secret `<cluster>-operator-credentials` (a generated password, owned by the
/// Cluster) unless it exists. It is never rewritten: the brokers created the operator's user
/// with the password it held at their first start.
async fn ensure_operator_credentials(
    client: &Client,
    cluster: &Cluster,
    ns: &str,
) -> Result<(), Error> {
    let cluster_name = cluster.metadata.name.as_deref().unwrap_or_default();
    let name = resources::operator_credentials_secret_name(cluster_name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    if secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("get Secret {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata {
            kind: "Cluster",
            field: "uid",
        })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(resources::common_labels(cluster_name)),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(resources::OPERATOR_USER.as_bytes().to_vec()),
            ),
            (
                resources::OPERATOR_PASSWORD_KEY.to_string(),
                ByteString(crate::controller::user::generate_password()?.into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        // Created meanwhile (another pass): keep that one.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(kube_err(format!("create Secret {name}"))(e)),
    }
}

/// Applies every object the Cluster owns (ServiceAccount, Services, ConfigMap, PDB,
/// StatefulSet; the StatefulSet only with `stateful_set`, which is false while an old one is
/// still being deleted to be replaced). With `service_monitors` (the operator may manage them) the ServiceMonitor is
/// applied when the Cluster asks for one and deleted when not; without it no ServiceMonitor
/// request is made at all, since the operator's role then has no rule for them and a real
/// apiserver answers 403 even for a delete of nothing. Returns the node ports of the nodeport
/// listeners' Services, as the API server holds them.
pub async fn apply_cluster_objects(
    client: &Client,
    cluster: &Cluster,
    service_monitors: bool,
    stateful_set: bool,
) -> Result<resources::NodePorts, Error> {
    let ns = cluster
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingMetadata {
            kind: "Cluster",
            field: "namespace",
        })?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &resources::service_account(cluster)?,
    )
    .await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &resources::headless_service(cluster)?,
    )
    .await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &resources::bootstrap_service(cluster)?,
    )
    .await?;
    let listener_services = resources::listener_services(cluster)?;
    let mut applied = Vec::with_capacity(listener_services.len());
    for service in &listener_services {
        applied.push(apply_object(&Api::namespaced(client.clone(), ns), service).await?);
    }
    remove_stale_listener_services(client, cluster, ns, &listener_services).await?;
    // After the listener Services: a nodeport listener's brokers are advertised with the node
    // ports the API server holds for their Services (given or allocated).
    let node_ports = resources::node_ports_of(&applied);
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &resources::config_map(cluster, &node_ports)?,
    )
    .await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &resources::pod_disruption_budget(cluster)?,
    )
    .await?;
    if resources::authentication_enabled(cluster) {
        ensure_operator_credentials(client, cluster, ns).await?;
    }
    if stateful_set {
        let mut sts = resources::stateful_set(cluster)?;
        if !node_ports.is_empty() {
            // Each broker reads its node ports at start: a changed one (a Service deleted and
            // allocated anew) changes the pod template, so the brokers restart with it.
            let ports: Vec<String> = node_ports
                .iter()
                .map(|(service, port)| format!("{service}={port}"))
                .collect();
            sts.spec
                .template
                .metadata
                .get_or_insert_with(Default::default)
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(resources::NODE_PORTS_ANNOTATION.into(), ports.join(","));
        }
        apply_object(&Api::namespaced(client.clone(), ns), &sts).await?;
    }
    if !service_monitors {
        return Ok(node_ports);
    }
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &service_monitor_resource());
    match resources::service_monitor(cluster)? {
        Some(monitor) => {
            apply_object(&monitors, &monitor).await?;
        }
        None => {
            let name = resources::headless_service_name(
                cluster.metadata.name.as_deref().unwrap_or_default(),
            );
            match monitors.delete(&name, &DeleteParams::default()).await {
                // 404: no ServiceMonitor, or no Prometheus Operator CRD at all; both are fine.
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(kube_err(format!("delete ServiceMonitor {name}"))(e)),
            }
        }
    }
    Ok(node_ports)
}

/// Writes the Cluster's status whole with server-side apply.
pub async fn write_cluster_status(
    client: &Client,
    cluster: &Cluster,
    status: &ClusterStatus,
) -> Result<(), Error> {
    let (name, ns) = resources::name_and_namespace(cluster)?;
    let api: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(kube_err(format!("apply status of Cluster {name}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MetricsSpec;
    use crate::resources::tests::{cluster, spec};
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    /// Answers the next request, checks it is a forced server-side apply of `expected` at
    /// `path`, and echoes the body back like the apiserver does.
    async fn expect_apply(handle: &mut Handle, path: &str, expected: Value) {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), Method::PATCH, "{path}");
        assert_eq!(request.uri().path(), path);
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("fieldManager=runnel-operator"), "{query}");
        assert!(query.contains("force=true"), "{query}");
        assert_eq!(
            request.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        let body = request.into_body().collect_bytes().await.expect("body");
        let got: Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(got, expected, "{path}");
        send.send_response(Response::new(Body::from(body.to_vec())));
    }

    /// The answer to the listener Services' list: none.
    const NO_SERVICES: &str =
        r#"{"apiVersion":"v1","kind":"ServiceList","metadata":{},"items":[]}"#;

    /// Answers the next request, checks it lists the namespace's Services, with none.
    async fn expect_service_list(handle: &mut Handle) {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/api/v1/namespaces/kafka/services");
        send.send_response(Response::new(Body::from(NO_SERVICES.as_bytes().to_vec())));
    }

    /// Answers a request like the apiserver: a list of no Services for a GET, else its body.
    async fn echo(request: Request<Body>) -> Response<Body> {
        if request.method() == Method::GET {
            return Response::new(Body::from(NO_SERVICES.as_bytes().to_vec()));
        }
        let body = request.into_body().collect_bytes().await.expect("body");
        Response::new(Body::from(body.to_vec()))
    }

    fn json_of<T: Serialize>(obj: T) -> Value {
        serde_json::to_value(obj).expect("serializes")
    }

    #[tokio::test]
    async fn applies_every_owned_object_then_removes_a_disabled_service_monitor() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let c = cluster(spec());
        let expected = c.clone();
        let server = tokio::spawn(async move {
            let ns = "/api/v1/namespaces/kafka";
            let c = &expected;
            expect_apply(
                &mut handle,
                &format!("{ns}/serviceaccounts/demo-broker"),
                json_of(resources::service_account(c).expect("sa")),
            )
            .await;
            expect_apply(
                &mut handle,
                &format!("{ns}/services/demo-brokers"),
                json_of(resources::headless_service(c).expect("svc")),
            )
            .await;
            expect_apply(
                &mut handle,
                &format!("{ns}/services/demo-bootstrap"),
                json_of(resources::bootstrap_service(c).expect("svc")),
            )
            .await;
            expect_service_list(&mut handle).await;
            expect_apply(
                &mut handle,
                &format!("{ns}/configmaps/demo-config"),
                json_of(resources::config_map(c, &Default::default()).expect("cm")),
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/policy/v1/namespaces/kafka/poddisruptionbudgets/demo-brokers",
                json_of(resources::pod_disruption_budget(c).expect("pdb")),
            )
            .await;
            expect_apply(
                &mut handle,
                "/apis/apps/v1/namespaces/kafka/statefulsets/demo-brokers",
                json_of(resources::stateful_set(c).expect("sts")),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("delete request");
            assert_eq!(request.method(), Method::DELETE);
            assert_eq!(
                request.uri().path(),
                "/apis/monitoring.coreos.com/v1/namespaces/kafka/servicemonitors/demo-brokers"
            );
            let not_found = json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound", "code": 404,
            });
            send.send_response(
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from(serde_json::to_vec(&not_found).expect("json")))
                    .expect("response"),
            );
        });
        apply_cluster_objects(&client, &c, true, true)
            .await
            .expect("applied");
        server.await.expect("mock apiserver saw every request");
    }

    #[tokio::test]
    async fn enabled_service_monitor_is_applied() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let mut s = spec();
        s.metrics = Some(MetricsSpec {
            service_monitor: true,
        });
        let c = cluster(s);
        let monitor = json_of(
            resources::service_monitor(&c)
                .expect("valid")
                .expect("enabled"),
        );
        let server = tokio::spawn(async move {
            for _ in 0..7 {
                let (request, send) = handle.next_request().await.expect("a request");
                send.send_response(echo(request).await);
            }
            expect_apply(
                &mut handle,
                "/apis/monitoring.coreos.com/v1/namespaces/kafka/servicemonitors/demo-brokers",
                monitor,
            )
            .await;
        });
        apply_cluster_objects(&client, &c, true, true)
            .await
            .expect("applied");
        server.await.expect("mock apiserver saw the ServiceMonitor");
    }

    #[tokio::test]
    async fn without_service_monitor_support_no_service_monitor_request_is_made() {
        for asked in [false, true] {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let client = Client::new(service, "default");
            let mut s = spec();
            s.metrics = Some(MetricsSpec {
                service_monitor: asked,
            });
            let c = cluster(s);
            let server = tokio::spawn(async move {
                let mut paths = Vec::new();
                while let Some((request, send)) = handle.next_request().await {
                    paths.push(request.uri().path().to_string());
                    send.send_response(echo(request).await);
                }
                paths
            });
            apply_cluster_objects(&client, &c, false, true)
                .await
                .expect("applied");
            drop(client);
            let paths = server.await.expect("mock apiserver");
            assert_eq!(paths.len(), 7, "{paths:?}");
            assert!(
                !paths.iter().any(|p| p.contains("servicemonitors")),
                "{paths:?}"
            );
        }
    }

    #[tokio::test]
    async fn status_is_applied_whole_to_the_status_subresource() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let c = cluster(spec());
        let status = ClusterStatus {
            ready_brokers: 2,
            bootstrap: Some("demo-bootstrap.kafka.svc:9092".into()),
            ..ClusterStatus::default()
        };
        let mut echoed = json_of(&c);
        echoed["status"] = json_of(&status);
        let expected = json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "Cluster",
            "status": { "readyBrokers": 2, "bootstrap": "demo-bootstrap.kafka.svc:9092" },
        });
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(
                request.uri().path(),
                "/apis/runnel.dev/v1alpha1/namespaces/kafka/clusters/demo/status"
            );
            let query = request.uri().query().unwrap_or_default().to_string();
            assert!(query.contains("fieldManager=runnel-operator") && query.contains("force=true"));
            let body = request.into_body().collect_bytes().await.expect("body");
            let got: Value = serde_json::from_slice(&body).expect("JSON body");
            assert_eq!(got, expected);
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&echoed).expect("json"),
            )));
        });
        write_cluster_status(&client, &c, &status)
            .await
            .expect("written");
        server.await.expect("mock apiserver saw the status patch");
    }
}
