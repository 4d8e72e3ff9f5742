//! The optional Prometheus Operator ServiceMonitor, built as a DynamicObject so the operator
//! does not depend on the Prometheus Operator's CRD types.

use kube::core::{ApiResource, DynamicObject};
use serde_json::json;

use super::{headless_service_name, owned_meta, owner, selector_labels};
use crate::crd::Cluster;
use crate::Error;

/// The `monitoring.coreos.com/v1` ServiceMonitor resource.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "ServiceMonitor".into(),
        plural: "servicemonitors".into(),
    }
}

/// The ServiceMonitor `<cluster>-brokers` scraping every broker's admin port `/metrics`, or
/// `None` unless `spec.metrics.serviceMonitor` is true.
pub fn service_monitor(cluster: &Cluster) -> Result<Option<DynamicObject>, Error> {
    let enabled = cluster
        .spec
        .metrics
        .as_ref()
        .is_some_and(|m| m.service_monitor);
    if !enabled {
        return Ok(None);
    }
    let owner = owner(cluster)?;
    let mut obj = DynamicObject::new(
        &headless_service_name(owner.name),
        &service_monitor_resource(),
    );
    obj.metadata = owned_meta(&owner, headless_service_name(owner.name));
    obj.data = json!({
        "spec": {
            "selector": { "matchLabels": selector_labels(owner.name) },
            "endpoints": [{ "port": "admin", "path": "/metrics" }],
        }
    });
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MetricsSpec;
    use crate::resources::tests::{cluster, labels_json, owner_ref_json, spec};

    #[test]
    fn service_monitor_only_when_enabled() {
        assert!(service_monitor(&cluster(spec())).expect("valid").is_none());
        let mut s = spec();
        s.metrics = Some(MetricsSpec {
            service_monitor: false,
        });
        assert!(service_monitor(&cluster(s)).expect("valid").is_none());
    }

    #[test]
    fn service_monitor_scrapes_admin_metrics() {
        let mut s = spec();
        s.metrics = Some(MetricsSpec {
            service_monitor: true,
        });
        let sm = service_monitor(&cluster(s))
            .expect("valid")
            .expect("enabled");
        assert_eq!(
            serde_json::to_value(&sm).expect("serializes"),
            json!({
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {
                    "name": "demo-brokers",
                    "namespace": "kafka",
                    "labels": labels_json(),
                    "ownerReferences": owner_ref_json(),
                },
                "spec": {
                    "selector": { "matchLabels": {
                        "app.kubernetes.io/name": "runnel",
                        "app.kubernetes.io/instance": "demo",
                        "app.kubernetes.io/component": "broker",
                    } },
                    "endpoints": [{ "port": "admin", "path": "/metrics" }],
                }
            })
        );
    }
}
