//! Sans-IO status computation for the Cluster reconciler: standard conditions (Ready,
//! Reconciling, Degraded) from the observed StatefulSet, and the ServiceMonitor condition, with
//! lastTransitionTime kept while a condition's status does not change (so writing the status
//! whole each pass is stable).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{Cluster, ClusterStatus};
use crate::resources::{bootstrap_address, headless_service_name};

/// Type of the condition telling whether the ServiceMonitor a Cluster asks for exists.
pub const SERVICE_MONITOR_CONDITION: &str = "ServiceMonitor";

/// Builds a condition, keeping the previous lastTransitionTime when its status is unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The whole status of `cluster` given its StatefulSet as observed (None: not created yet).
pub fn cluster_status(
    cluster: &Cluster,
    sts: Option<&StatefulSet>,
    previous: &[Condition],
    now: &Time,
) -> ClusterStatus {
    let generation = cluster.metadata.generation;
    let desired = cluster.spec.replicas;
    let observed = sts.and_then(|s| s.status.as_ref());
    let ready = observed.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = observed.and_then(|s| s.updated_replicas).unwrap_or(0);
    let sts_current = sts.is_some_and(|s| {
        s.status.as_ref().and_then(|st| st.observed_generation) >= s.metadata.generation
    });
    let revisions_equal = observed.is_some_and(|s| s.current_revision == s.update_revision);
    let rolling = sts.is_none() || !sts_current || updated < desired || !revisions_equal;
    let all_ready = !rolling && ready >= desired;
    let degraded = !rolling && ready < desired;
    let progress = format!("{ready} of {desired} brokers ready");
    let conditions = vec![
        condition(
            previous,
            "Ready",
            all_ready,
            if all_ready {
                "BrokersReady"
            } else {
                "BrokersNotReady"
            },
            progress.clone(),
            generation,
            now,
        ),
        condition(
            previous,
            "Reconciling",
            rolling,
            if rolling { "RollingOut" } else { "UpToDate" },
            if rolling {
                format!("{updated} of {desired} brokers updated")
            } else {
                "every broker runs the current spec".into()
            },
            generation,
            now,
        ),
        condition(
            previous,
            "Degraded",
            degraded,
            if degraded {
                "BrokersUnavailable"
            } else {
                "AsExpected"
            },
            progress,
            generation,
            now,
        ),
    ];
    ClusterStatus {
        conditions,
        observed_generation: generation,
        ready_brokers: ready,
        bootstrap: bootstrap_address(cluster).ok(),
        // Filled by the reconciler, which knows the listeners' node ports.
        listeners: Vec::new(),
        cluster_id: cluster.spec.config.get("cluster_id").cloned().or_else(|| {
            cluster
                .metadata
                .uid
                .as_deref()
                .and_then(crate::resources::cluster_id_from_uid)
        }),
    }
}

/// The ServiceMonitor condition of `cluster`, or None when it asks for no ServiceMonitor.
/// `supported` says whether the operator may manage ServiceMonitors (`--service-monitors`);
/// without it the Cluster's request cannot be honoured, which the condition says (the rest of
/// the Cluster is reconciled as usual and Ready does not depend on it).
pub fn service_monitor_condition(
    cluster: &Cluster,
    supported: bool,
    previous: &[Condition],
    now: &Time,
) -> Option<Condition> {
    let asked = cluster
        .spec
        .metrics
        .as_ref()
        .is_some_and(|m| m.service_monitor);
    if !asked {
        return None;
    }
    let name = headless_service_name(cluster.metadata.name.as_deref().unwrap_or_default());
    let (reason, message) = if supported {
        (
            "Applied",
            format!("ServiceMonitor {name} scrapes every broker's /metrics"),
        )
    } else {
        (
            "NotSupported",
            "the operator was installed without ServiceMonitor support (Helm value \
             serviceMonitor.enabled=false, no --service-monitors flag): no ServiceMonitor is \
             created for this Cluster"
                .to_string(),
        )
    };
    Some(condition(
        previous,
        SERVICE_MONITOR_CONDITION,
        supported,
        reason,
        message,
        cluster.metadata.generation,
        now,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{cluster, spec};
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn sts(generation: i64, observed: i64, ready: i32, updated: i32, rolled: bool) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                current_revision: Some("r1".into()),
                update_revision: Some(if rolled { "r1" } else { "r2" }.into()),
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn statuses(s: &ClusterStatus) -> Vec<(&str, &str, &str)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn all_brokers_ready_and_rolled_out_is_ready() {
        let mut c = cluster(spec());
        c.metadata.generation = Some(4);
        let s = cluster_status(&c, Some(&sts(2, 2, 3, 3, true)), &[], &at(100));
        assert_eq!(
            statuses(&s),
            [
                ("Ready", "True", "BrokersReady"),
                ("Reconciling", "False", "UpToDate"),
                ("Degraded", "False", "AsExpected")
            ]
        );
        assert_eq!(s.ready_brokers, 3);
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(
            s.bootstrap.as_deref(),
            Some("demo-bootstrap.kafka.svc:9092")
        );
        assert_eq!(s.cluster_id.as_deref(), Some("D45aTDsqTB2ej3prXE0-Lw"));
    }

    #[test]
    fn rolling_update_is_reconciling_not_degraded() {
        let c = cluster(spec());
        let s = cluster_status(&c, Some(&sts(3, 3, 2, 1, false)), &[], &at(100));
        assert_eq!(
            statuses(&s),
            [
                ("Ready", "False", "BrokersNotReady"),
                ("Reconciling", "True", "RollingOut"),
                ("Degraded", "False", "AsExpected")
            ]
        );
        let not_created = cluster_status(&c, None, &[], &at(100));
        assert_eq!(not_created.conditions[1].status, "True");
    }

    #[test]
    fn missing_broker_after_rollout_is_degraded() {
        let s = cluster_status(
            &cluster(spec()),
            Some(&sts(1, 1, 2, 3, true)),
            &[],
            &at(100),
        );
        assert_eq!(
            statuses(&s),
            [
                ("Ready", "False", "BrokersNotReady"),
                ("Reconciling", "False", "UpToDate"),
                ("Degraded", "True", "BrokersUnavailable")
            ]
        );
        assert_eq!(s.conditions[2].message, "2 of 3 brokers ready");
    }

    #[test]
    fn service_monitor_condition_only_when_asked_and_false_when_unsupported() {
        use crate::crd::MetricsSpec;
        assert_eq!(
            service_monitor_condition(&cluster(spec()), false, &[], &at(1)),
            None
        );
        let mut s = spec();
        s.metrics = Some(MetricsSpec {
            service_monitor: true,
        });
        let c = cluster(s);
        let off = service_monitor_condition(&c, false, &[], &at(1)).expect("asked");
        assert_eq!(
            (off.type_.as_str(), off.status.as_str(), off.reason.as_str()),
            ("ServiceMonitor", "False", "NotSupported")
        );
        assert!(off.message.contains("serviceMonitor.enabled"), "{off:?}");
        let on = service_monitor_condition(&c, true, &[off], &at(2)).expect("asked");
        assert_eq!(
            (
                on.status.as_str(),
                on.reason.as_str(),
                on.last_transition_time.clone()
            ),
            ("True", "Applied", at(2))
        );
    }

    #[test]
    fn transition_time_changes_only_when_status_changes() {
        let c = cluster(spec());
        let first = cluster_status(&c, Some(&sts(1, 1, 3, 3, true)), &[], &at(100));
        let again = cluster_status(
            &c,
            Some(&sts(1, 1, 3, 3, true)),
            &first.conditions,
            &at(200),
        );
        assert_eq!(
            again, first,
            "an unchanged cluster gives an identical status"
        );
        let degraded = cluster_status(
            &c,
            Some(&sts(1, 1, 2, 3, true)),
            &again.conditions,
            &at(300),
        );
        assert_eq!(degraded.conditions[0].last_transition_time, at(300));
        assert_eq!(degraded.conditions[1].last_transition_time, at(100));
    }
}
