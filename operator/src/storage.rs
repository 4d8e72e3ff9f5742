//! Sans-IO planning of storage changes for the Cluster reconciler. A StatefulSet's
//! `volumeClaimTemplates` are immutable, so a grown `storage.size` is carried out by expanding
//! each broker's existing PersistentVolumeClaim and replacing the StatefulSet object (orphan
//! delete, then re-create: the pods stay and are adopted). This module decides what to do from
//! the observed StatefulSet and claims, and words the `Storage` condition.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{Cluster, StorageSpec};
use crate::resources::headless_service_name;
use crate::status::condition;

/// Type of the condition telling whether the brokers' volumes have the size the spec asks.
pub const STORAGE_CONDITION: &str = "Storage";
/// Name of the broker data volume claim template (claims are `data-<pod>`).
pub const DATA_CLAIM: &str = "data";

/// The value of a Kubernetes quantity (`10Gi`, `500M`, `1.5Ti`, `1e9`), or None when it is not
/// one. Precise enough to order volume sizes.
pub fn quantity_value(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
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
        e if e.starts_with(['e', 'E']) => 10f64.powi(e.get(1..)?.parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

fn requested(spec: Option<&PersistentVolumeClaimSpec>) -> Option<String> {
    spec?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// The storage the StatefulSet's data claim template asks for (what its volumes were created
/// with), or None when there is no such template.
pub fn template_storage(sts: &StatefulSet) -> Option<StorageSpec> {
    let template = sts
        .spec
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(DATA_CLAIM))?;
    let spec = template.spec.as_ref();
    Some(StorageSpec {
        size: requested(spec)?,
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
        delete_claim: false,
    })
}

/// What the reconciler does about storage on this pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoragePlan {
    /// Claims (by name) whose storage request must grow to `size`.
    pub grow: Vec<String>,
    /// The size the spec asks for.
    pub size: String,
    /// The StatefulSet's claim template is smaller than the spec: the object must be replaced
    /// (orphan delete, re-create) once the claims have grown.
    pub replace_stateful_set: bool,
    /// Claims whose capacity has not reached the spec's size yet (expansion under way).
    pub resizing: Vec<String>,
    /// Why the spec's storage cannot be applied (a shrink or a class change the CRD's rules
    /// should have refused); the StatefulSet then keeps its current storage.
    pub refused: Option<String>,
    /// The storage of the existing StatefulSet's claim template, if any: what it is applied
    /// with when the spec's storage is refused or a claim cannot grow.
    pub current: Option<StorageSpec>,
}

/// Plans the storage step of `cluster` given its StatefulSet and the claims of the Cluster's
/// brokers as observed. Without a StatefulSet there is nothing to change: it is created with
/// the spec's storage.
pub fn plan(
    cluster: &Cluster,
    sts: Option<&StatefulSet>,
    claims: &[PersistentVolumeClaim],
) -> StoragePlan {
    let wanted = &cluster.spec.storage;
    let mut plan = StoragePlan {
        size: wanted.size.clone(),
        ..StoragePlan::default()
    };
    let Some(current) = sts.and_then(template_storage) else {
        return plan;
    };
    let current = StorageSpec {
        delete_claim: wanted.delete_claim,
        ..current
    };
    plan.current = Some(current.clone());
    let (Some(want), Some(have)) = (quantity_value(&wanted.size), quantity_value(&current.size))
    else {
        return plan;
    };
    if current.storage_class != wanted.storage_class {
        plan.refused =
            Some(format!(
            "storage.storageClass cannot change from {} to {}: existing volumes keep their class",
            current.storage_class.as_deref().unwrap_or("the default class"),
            wanted.storage_class.as_deref().unwrap_or("the default class"),
        ));
    } else if want < have {
        plan.refused = Some(format!(
            "storage.size cannot shrink from {} to {}: volumes only grow",
            current.size, wanted.size
        ));
    }
    if plan.refused.is_some() {
        return plan;
    }
    let sts_name = headless_service_name(cluster.metadata.name.as_deref().unwrap_or_default());
    let prefix = format!("{DATA_CLAIM}-{sts_name}-");
    for claim in claims {
        let Some(name) = claim.metadata.name.as_deref() else {
            continue;
        };
        let is_broker_claim = name
            .strip_prefix(&prefix)
            .is_some_and(|ordinal| ordinal.parse::<u32>().is_ok());
        if !is_broker_claim {
            continue;
        }
        let request = requested(claim.spec.as_ref()).and_then(|q| quantity_value(&q));
        if request.is_some_and(|r| r < want) {
            plan.grow.push(name.to_string());
        }
        let capacity = claim
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .and_then(|q| quantity_value(&q.0));
        if capacity.is_none_or(|c| c < want) {
            plan.resizing.push(name.to_string());
        }
    }
    plan.replace_stateful_set = have < want;
    plan
}

/// The `Storage` condition after this pass: False/StorageResizeFailed with `failure` (a claim
/// could not grow, or the change is refused), False/StorageResizing while claims or the
/// StatefulSet have not reached the size, True/AsRequested otherwise.
pub fn storage_condition(
    cluster: &Cluster,
    plan: &StoragePlan,
    failure: Option<&str>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let generation = cluster.metadata.generation;
    let (ok, reason, message) = match (failure.or(plan.refused.as_deref()), plan) {
        (Some(why), _) => (false, "StorageResizeFailed", why.to_string()),
        (None, p) if !p.resizing.is_empty() => (
            false,
            "StorageResizing",
            format!(
                "expanding volumes to {}: waiting for {}",
                p.size,
                p.resizing.join(", ")
            ),
        ),
        (None, p) if p.replace_stateful_set => (
            false,
            "StorageResizing",
            format!("replacing the StatefulSet to give new volumes {}", p.size),
        ),
        (None, p) => (
            true,
            "AsRequested",
            format!("every broker volume has {}", p.size),
        ),
    };
    condition(
        previous,
        STORAGE_CONDITION,
        ok,
        reason,
        message,
        generation,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::stateful_set;
    use crate::resources::tests::{cluster, spec};
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimStatus, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn claim(name: &str, request: &str, capacity: &str) -> PersistentVolumeClaim {
        let q = |v: &str| BTreeMap::from([("storage".to_string(), Quantity(v.into()))]);
        PersistentVolumeClaim {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: Some(q(request)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                capacity: Some(q(capacity)),
                ..Default::default()
            }),
        }
    }

    fn sized(size: &str, class: Option<&str>) -> Cluster {
        let mut s = spec();
        s.storage.size = size.into();
        s.storage.storage_class = class.map(str::to_string);
        cluster(s)
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(quantity_value("1Gi"), Some(1073741824.0));
        assert!(quantity_value("1Gi") > quantity_value("1G"));
        assert!(quantity_value("1.5Gi") > quantity_value("1536Mi").map(|v| v - 1.0));
        assert_eq!(quantity_value("1e3"), Some(1000.0));
        assert_eq!(quantity_value("10Gb"), None);
        assert_eq!(quantity_value("Gi"), None);
    }

    #[test]
    fn a_grow_expands_the_claims_of_the_brokers_and_replaces_the_stateful_set() {
        let sts = stateful_set(&sized("10Gi", None)).expect("sts");
        let claims = [
            claim("data-demo-brokers-0", "10Gi", "10Gi"),
            claim("data-demo-brokers-1", "10Gi", "10Gi"),
            claim("data-other-brokers-0", "10Gi", "10Gi"),
        ];
        let p = plan(&sized("20Gi", None), Some(&sts), &claims);
        assert_eq!(p.grow, ["data-demo-brokers-0", "data-demo-brokers-1"]);
        assert_eq!(p.resizing, p.grow);
        assert!(p.replace_stateful_set);
        assert_eq!(p.refused, None);
        assert_eq!(p.current.map(|s| s.size).as_deref(), Some("10Gi"));
    }

    #[test]
    fn an_unchanged_size_plans_nothing() {
        let sts = stateful_set(&sized("10Gi", None)).expect("sts");
        let claims = [claim("data-demo-brokers-0", "10Gi", "10Gi")];
        let p = plan(&sized("10Gi", None), Some(&sts), &claims);
        assert!(p.grow.is_empty() && p.resizing.is_empty() && !p.replace_stateful_set);
        assert!(p.refused.is_none());
        assert!(plan(&sized("10Gi", None), None, &claims).grow.is_empty());
    }

    #[test]
    fn a_shrink_or_class_change_keeps_the_current_storage_and_says_why() {
        let sts = stateful_set(&sized("10Gi", Some("fast"))).expect("sts");
        let p = plan(&sized("5Gi", Some("fast")), Some(&sts), &[]);
        assert!(p
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("cannot shrink")));
        assert_eq!(p.current.as_ref().map(|s| s.size.as_str()), Some("10Gi"));
        let p = plan(&sized("20Gi", Some("slow")), Some(&sts), &[]);
        assert!(p
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("fast to slow")));
        assert!(p.grow.is_empty() && !p.replace_stateful_set);
        assert_eq!(
            p.current.and_then(|s| s.storage_class).as_deref(),
            Some("fast")
        );
    }

    #[test]
    fn the_condition_follows_the_resize() {
        let c = sized("20Gi", None);
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut p = StoragePlan {
            size: "20Gi".into(),
            resizing: vec!["data-demo-brokers-0".into()],
            ..StoragePlan::default()
        };
        let resizing = storage_condition(&c, &p, None, &[], &now);
        assert_eq!(
            (resizing.status.as_str(), resizing.reason.as_str()),
            ("False", "StorageResizing")
        );
        let failed = storage_condition(&c, &p, Some("no expansion"), &[], &now);
        assert_eq!(failed.reason, "StorageResizeFailed");
        assert_eq!(failed.message, "no expansion");
        p.resizing.clear();
        let done = storage_condition(&c, &p, None, &[], &now);
        assert_eq!(
            (done.status.as_str(), done.reason.as_str()),
            ("True", "AsRequested")
        );
    }
}
