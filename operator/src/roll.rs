//! Sans-IO core of the rolling restart: from the broker pods as they are now, which one (if
//! any) the operator should restart next, or why it must wait.
//!
//! The StatefulSet uses `updateStrategy: OnDelete`, so Kubernetes never restarts a broker on
//! its own: a template change only raises `status.updateRevision`, and the operator deletes
//! one out-of-date pod at a time. This module picks that pod; the reconciler then asks the
//! broker's agent (`CanRestart`) and checks replication before deleting it.

/// Pod annotation that asks for one manual restart of that broker (Strimzi's
/// `strimzi.io/manual-rolling-update`); the re-created pod no longer carries it.
pub const MANUAL_RESTART_ANNOTATION: &str = "runnel.dev/restart";

/// One broker pod as the roll sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerPod {
    /// StatefulSet ordinal = broker node id.
    pub ordinal: i32,
    /// Pod name.
    pub name: String,
    /// Pod uid (the delete is conditioned on it, so a re-created pod is never deleted by a
    /// decision made about its predecessor).
    pub uid: Option<String>,
    /// Whether the pod's `Ready` condition is True.
    pub ready: bool,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Whether [`MANUAL_RESTART_ANNOTATION`] is set to `"true"`.
    pub manual_restart: bool,
    /// Whether the pod is being deleted.
    pub terminating: bool,
}

/// Why a broker is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartReason {
    /// Its pod runs an older template revision (image, static config, pod spec).
    OutdatedTemplate,
    /// Its pod carries [`MANUAL_RESTART_ANNOTATION`].
    Requested,
}

impl RestartReason {
    /// A phrase for conditions and Events.
    pub fn describe(self) -> &'static str {
        match self {
            RestartReason::OutdatedTemplate => "its pod template is out of date",
            RestartReason::Requested => {
                "a restart was requested with the runnel.dev/restart annotation"
            }
        }
    }
}

/// The next step of the roll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs the current template and no restart is requested.
    UpToDate,
    /// A restart is pending but a broker is down or starting: restart nothing now.
    Wait {
        /// Brokers still to restart.
        pending: Vec<i32>,
        /// Why, for the condition.
        reason: String,
    },
    /// Restart this broker next (once its agent says it is safe).
    Restart {
        /// The pod to delete.
        pod: BrokerPod,
        /// Why it is restarted.
        reason: RestartReason,
        /// Brokers still to restart, this one included.
        pending: Vec<i32>,
        /// The broker is already not ready (e.g. crash-looping on the old template): it
        /// serves nothing, so restarting it makes nothing less available and needs no check.
        already_down: bool,
    },
}

/// Picks the next broker to restart: one needing it (outdated template or requested), only
/// while all `replicas` pods exist, none is terminating and all are Ready (so never two brokers
/// down at once), except a broker needing a restart that is down already, which goes first; ordinals in ascending order, except that the metadata quorum leader goes
/// last (restarting it forces an election, which should happen once, not once per broker).
/// `update_revision` is the StatefulSet's `status.updateRevision`; without one (the
/// StatefulSet controller has not seen the template yet) only requested restarts count.
pub fn next_restart(
    pods: &[BrokerPod],
    replicas: i32,
    update_revision: Option<&str>,
    quorum_leader: Option<i32>,
) -> RollStep {
    let reason_of = |pod: &BrokerPod| {
        if pod.manual_restart {
            Some(RestartReason::Requested)
        } else if update_revision.is_some_and(|r| pod.revision.as_deref() != Some(r)) {
            Some(RestartReason::OutdatedTemplate)
        } else {
            None
        }
    };
    let mut candidates: Vec<(&BrokerPod, RestartReason)> = pods
        .iter()
        .filter(|p| p.ordinal < replicas)
        .filter_map(|p| reason_of(p).map(|r| (p, r)))
        .collect();
    if candidates.is_empty() {
        return RollStep::UpToDate;
    }
    candidates.sort_by_key(|(p, _)| (Some(p.ordinal) == quorum_leader, p.ordinal));
    let pending: Vec<i32> = candidates.iter().map(|(p, _)| p.ordinal).collect();
    let missing: Vec<i32> = (0..replicas)
        .filter(|o| !pods.iter().any(|p| p.ordinal == *o))
        .collect();
    // An outdated broker that is down anyway (crash-looping on a bad template the spec has
    // since fixed) is replaced first; waiting for it to become ready would wait forever.
    if let Some((pod, reason)) = candidates
        .iter()
        .find(|(p, _)| !p.ready && !p.terminating)
        .copied()
    {
        return RollStep::Restart {
            pod: pod.clone(),
            reason,
            pending,
            already_down: true,
        };
    }
    if let Some(o) = missing.first() {
        return RollStep::Wait {
            pending,
            reason: format!("broker {o} has no pod yet"),
        };
    }
    if let Some(p) = pods.iter().find(|p| p.ordinal < replicas && p.terminating) {
        return RollStep::Wait {
            pending,
            reason: format!("broker {} is stopping", p.ordinal),
        };
    }
    if let Some(p) = pods.iter().find(|p| p.ordinal < replicas && !p.ready) {
        return RollStep::Wait {
            pending,
            reason: format!("broker {} is not ready", p.ordinal),
        };
    }
    let (pod, reason) = candidates[0];
    RollStep::Restart {
        pod: pod.clone(),
        reason,
        pending,
        already_down: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: i32, revision: &str) -> BrokerPod {
        BrokerPod {
            ordinal,
            name: format!("demo-brokers-{ordinal}"),
            uid: Some(format!("uid-{ordinal}")),
            ready: true,
            revision: Some(revision.into()),
            manual_restart: false,
            terminating: false,
        }
    }

    fn restarted(step: &RollStep) -> Option<i32> {
        match step {
            RollStep::Restart { pod, .. } => Some(pod.ordinal),
            _ => None,
        }
    }

    #[test]
    fn pods_at_the_update_revision_need_nothing() {
        let pods = [pod(0, "r2"), pod(1, "r2"), pod(2, "r2")];
        assert_eq!(
            next_restart(&pods, 3, Some("r2"), Some(0)),
            RollStep::UpToDate
        );
    }

    #[test]
    fn outdated_pods_go_in_ordinal_order_with_the_quorum_leader_last() {
        let mut pods = vec![pod(0, "r1"), pod(1, "r1"), pod(2, "r1")];
        let step = next_restart(&pods, 3, Some("r2"), Some(1));
        assert_eq!(restarted(&step), Some(0));
        match &step {
            RollStep::Restart {
                pending, reason, ..
            } => {
                assert_eq!(pending, &vec![0, 2, 1]);
                assert_eq!(*reason, RestartReason::OutdatedTemplate);
            }
            other => panic!("expected a restart, got {other:?}"),
        }
        pods[0].revision = Some("r2".into());
        assert_eq!(
            restarted(&next_restart(&pods, 3, Some("r2"), Some(1))),
            Some(2)
        );
        pods[2].revision = Some("r2".into());
        assert_eq!(
            restarted(&next_restart(&pods, 3, Some("r2"), Some(1))),
            Some(1)
        );
    }

    #[test]
    fn an_outdated_broker_that_is_down_is_replaced_first_without_waiting() {
        let mut pods = vec![pod(0, "r1"), pod(1, "r1"), pod(2, "r1")];
        pods[1].ready = false;
        match next_restart(&pods, 3, Some("r2"), None) {
            RollStep::Restart {
                pod, already_down, ..
            } => {
                assert_eq!(pod.ordinal, 1);
                assert!(already_down);
            }
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn nothing_restarts_while_any_broker_is_down_starting_or_missing() {
        let mut pods = vec![pod(0, "r2"), pod(1, "r1"), pod(2, "r1")];
        pods[0].ready = false;
        let step = next_restart(&pods, 3, Some("r2"), None);
        assert!(
            matches!(&step, RollStep::Wait { reason, pending } if reason == "broker 0 is not ready" && pending == &vec![1, 2]),
            "{step:?}"
        );
        pods[0].ready = true;
        pods[0].terminating = true;
        assert!(matches!(
            next_restart(&pods, 3, Some("r2"), None),
            RollStep::Wait { .. }
        ));
        let step = next_restart(&pods[1..], 3, Some("r2"), None);
        assert!(
            matches!(&step, RollStep::Wait { reason, .. } if reason == "broker 0 has no pod yet"),
            "{step:?}"
        );
    }

    #[test]
    fn a_requested_restart_rolls_one_broker_without_a_template_change() {
        let mut pods = vec![pod(0, "r1"), pod(1, "r1"), pod(2, "r1")];
        pods[2].manual_restart = true;
        let step = next_restart(&pods, 3, Some("r1"), Some(2));
        match step {
            RollStep::Restart {
                pod,
                reason,
                pending,
                already_down,
            } => {
                assert!(!already_down);
                assert_eq!(pod.ordinal, 2);
                assert_eq!(pod.uid.as_deref(), Some("uid-2"));
                assert_eq!(reason, RestartReason::Requested);
                assert_eq!(pending, vec![2]);
            }
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn pods_beyond_the_replica_count_are_not_rolled() {
        // Brokers being drained for a scale-down go away; restarting them is wasted work.
        let pods = [pod(0, "r2"), pod(1, "r2"), pod(2, "r1")];
        assert_eq!(next_restart(&pods, 2, Some("r2"), None), RollStep::UpToDate);
    }

    #[test]
    fn without_an_update_revision_only_requested_restarts_count() {
        let pods = [pod(0, "r1"), pod(1, "r0")];
        assert_eq!(next_restart(&pods, 2, None, None), RollStep::UpToDate);
    }
}
