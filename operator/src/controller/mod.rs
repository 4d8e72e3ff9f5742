//! The reconcilers, one module per kind, and what they share: the [`Context`] (Kubernetes
//! client, metrics, Event recorder, how to reach brokers), status writes with server-side
//! apply, and the error policy that requeues a failed object with exponential backoff.

pub mod cluster;
pub mod consumer;
pub mod topic;
pub mod user;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use runnel_client::SaslCredentials;
use serde::Serialize;

use crate::apply::FIELD_MANAGER;
use crate::crd::Cluster;
use crate::kafka::{self, BootstrapResolver};
use crate::metrics::Metrics;
use crate::resources;
use crate::Error;

/// First retry delay after a failed reconcile; doubled per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// State shared by every reconcile.
pub struct Context {
    /// Kubernetes API client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Records Events on the reconciled objects.
    pub recorder: Recorder,
    /// Finds a Cluster's brokers.
    pub resolver: Arc<dyn BootstrapResolver>,
    /// Broker image for Clusters without `spec.image` (`--broker-image`).
    pub broker_image: Option<String>,
    /// Whether the operator may manage Prometheus Operator ServiceMonitors
    /// (`--service-monitors`; the chart grants the RBAC for them only then). Without it no
    /// ServiceMonitor request is ever made.
    pub service_monitors: bool,
    /// The ClusterRole (`get nodes`) bound to the brokers' ServiceAccount of each Cluster with
    /// `rackLabel` (`--rack-cluster-role`; the chart grants the operator the right to bind it
    /// only then). None: such Clusters get a warning Event and no binding.
    pub rack_cluster_role: Option<String>,
    /// How often a healthy object is reconciled again (drift detection, lag refresh).
    pub resync: Duration,
    /// Consecutive failures per object (`kind/ns/name`), for the backoff; reset on success.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context reporting Events as `runnel-operator` (instance `instance`, e.g. the pod name).
    pub fn new(
        client: Client,
        metrics: Metrics,
        resolver: Arc<dyn BootstrapResolver>,
        instance: Option<String>,
    ) -> Context {
        let reporter = Reporter {
            controller: "runnel-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            resolver,
            broker_image: None,
            service_monitors: false,
            rack_cluster_role: None,
            resync: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // The map holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the outcome of a reconcile: a success resets the object's backoff.
    pub(crate) fn finished<K: Resource<DynamicType = ()>>(&self, obj: &K, ok: bool) {
        if ok {
            self.failures().remove(&object_key(obj));
        }
    }

    /// Publishes an Event on `obj`; a failure to record is logged, never fatal.
    pub(crate) async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(%err, reason, "cannot record Event");
        }
    }

    /// An admin client to `cluster`'s brokers; on an authenticated Cluster (see
    /// [`crate::resources::authentication_enabled`]) it logs in as the operator's user with the
    /// password of the Secret `<cluster>-operator-credentials`.
    pub async fn kafka(&self, cluster: &Cluster) -> Result<runnel_client::Client, Error> {
        let bootstrap = self.resolver.bootstrap(cluster)?;
        if !resources::authentication_enabled(cluster) {
            return kafka::connect(&bootstrap).await;
        }
        let ns = cluster.namespace().unwrap_or_default();
        let name = resources::operator_credentials_secret_name(&cluster.name_any());
        let secret = Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(|source| Error::Kube {
                what: format!("get Secret {ns}/{name}"),
                source,
            })?;
        let password = secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(resources::OPERATOR_PASSWORD_KEY).cloned())
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .ok_or_else(|| Error::Local {
                what: format!(
                    "read the operator credentials of Cluster {ns}/{}",
                    cluster.name_any()
                ),
                reason: format!(
                    "Secret {name} has no key {}",
                    resources::OPERATOR_PASSWORD_KEY
                ),
            })?;
        let sasl = SaslCredentials {
            mechanism: "SCRAM-SHA-512".into(),
            username: resources::OPERATOR_USER.into(),
            password,
        };
        kafka::connect_as(&bootstrap, Some(sasl)).await
    }

    /// The Cluster `name` in `namespace`, or None when it does not exist.
    pub(crate) async fn cluster(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Cluster>, Error> {
        Api::<Cluster>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|source| Error::Kube {
                what: format!("get Cluster {namespace}/{name}"),
                source,
            })
    }
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The error policy of every controller: counts the failure (per kind and reason) and requeues
/// the object after a delay that doubles with each consecutive failure, up to five minutes.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&());
    ctx.metrics.failure(&kind, err.metric_reason());
    let failures = {
        let mut map = ctx.failures();
        let n = map.entry(object_key(obj.as_ref())).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(failures);
    tracing::warn!(%kind, name = %obj.name_any(), %err, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Delay before retry number `failures` (1-based): 1s, 2s, 4s, ... capped at five minutes.
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Writes `status` whole into the status subresource of `obj` with a forced server-side apply.
pub(crate) async fn write_status<K, S>(client: &Client, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: Serialize,
{
    let name = obj.name_any();
    let ns = obj.namespace().ok_or(Error::MissingMetadata {
        kind: "object",
        field: "namespace",
    })?;
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(|source| Error::Kube {
        what: format!("apply status of {} {ns}/{name}", K::kind(&())),
        source,
    })?;
    Ok(())
}

/// The current time as a Kubernetes timestamp.
pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

/// The condition of `type_` in `conditions`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a condition changed status or reason since `previous` (to record an Event once per
/// change rather than on every pass).
pub(crate) fn condition_changed(previous: &[Condition], new: &Condition) -> bool {
    find_condition(previous, &new.type_)
        .is_none_or(|c| c.status != new.status || c.reason != new.reason)
}

/// Requeue action of a healthy object.
pub(crate) fn resync(ctx: &Context) -> Action {
    Action::requeue(ctx.resync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
