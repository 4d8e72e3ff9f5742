//! The rolling-restart step of a Cluster reconcile. The StatefulSet is `OnDelete`, so each
//! pass restarts at most one broker: the one [`crate::roll::next_restart`] picks, only when
//! every partition is fully replicated and that broker's agent answers `CanRestart` safe.
//! The pod is deleted (conditioned on its uid); the StatefulSet controller re-creates it from
//! the current template and the next passes wait until it is Ready and caught up.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::brokers::BrokerView;
use crate::agent::Agent;
use crate::controller::{condition_changed, Context};
use crate::crd::Cluster;
use crate::resources::label_selector;
use crate::roll::{next_restart, BrokerPod, RollStep, MANUAL_RESTART_ANNOTATION};
use crate::status::condition;
use crate::Error;

/// Condition type telling whether brokers are being restarted one by one.
pub const ROLLING_CONDITION: &str = "Rolling";

/// The pods of the Cluster's brokers.
pub(super) async fn list_pods(ctx: &Context, cluster: &Cluster) -> Result<Vec<Pod>, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&label_selector(&cluster.name_any())))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Kube {
            what: format!("list broker pods of Cluster {ns}/{}", cluster.name_any()),
            source,
        })
}

/// A pod as the roll sees it; None for a pod without an ordinal.
pub(super) fn broker_pod(pod: &Pod) -> Option<BrokerPod> {
    let name = pod.name_any();
    let ordinal = pod
        .labels()
        .get("apps.kubernetes.io/pod-index")
        .cloned()
        .or_else(|| name.rsplit_once('-').map(|(_, o)| o.to_string()))?
        .parse()
        .ok()?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(BrokerPod {
        ordinal,
        uid: pod.uid(),
        ready,
        revision: pod.labels().get("controller-revision-hash").cloned(),
        manual_restart: pod
            .annotations()
            .get(MANUAL_RESTART_ANNOTATION)
            .is_some_and(|v| v == "true"),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        name,
    })
}

/// What the rolling step did.
pub(super) struct RollOutcome {
    /// The `Rolling` condition.
    pub(super) condition: Condition,
    /// Whether every broker runs the current template (nothing to restart).
    pub(super) up_to_date: bool,
}

/// Runs one rolling-restart step.
pub(super) async fn roll(
    ctx: &Context,
    cluster: &Cluster,
    sts: &StatefulSet,
    pods: &[Pod],
    view: Option<&BrokerView>,
    previous: &[Condition],
    now: &Time,
) -> Result<RollOutcome, Error> {
    let generation = cluster.metadata.generation;
    let replicas = sts.spec.replicas.unwrap_or(0);
    let update_revision = sts
        .status
        .as_ref()
        .and_then(|s| s.update_revision.as_deref());
    let brokers: Vec<BrokerPod> = pods.iter().filter_map(broker_pod).collect();
    let leader = view.and_then(BrokerView::quorum_leader);
    let rolling = |reason: &str, message: String| {
        condition(
            previous,
            ROLLING_CONDITION,
            true,
            reason,
            message,
            generation,
            now,
        )
    };
    let (pod, reason, pending, already_down) =
        match next_restart(&brokers, replicas, update_revision, leader) {
            RollStep::UpToDate => {
                return Ok(RollOutcome {
                    condition: condition(
                        previous,
                        ROLLING_CONDITION,
                        false,
                        "UpToDate",
                        "every broker runs the current pod template".into(),
                        generation,
                        now,
                    ),
                    up_to_date: true,
                })
            }
            RollStep::Wait { pending, reason } => {
                return Ok(RollOutcome {
                    condition: rolling(
                        "Rolling",
                        format!("brokers {pending:?} to restart; waiting: {reason}"),
                    ),
                    up_to_date: false,
                })
            }
            RollStep::Restart {
                pod,
                reason,
                pending,
                already_down,
            } => (pod, reason, pending, already_down),
        };
    if !already_down {
        let blocked = match view {
            None => Some("the brokers cannot be reached to check replication".to_string()),
            Some(view) => match view.under_replicated() {
                0 => None,
                n => Some(format!(
                    "{n} partitions are under-replicated; waiting for them to catch up"
                )),
            },
        };
        if let Some(why) = blocked {
            return Ok(RollOutcome {
                condition: rolling(
                    "Rolling",
                    format!("brokers {pending:?} to restart; waiting: {why}"),
                ),
                up_to_date: false,
            });
        }
        let verdict = async {
            let mut agent = Agent::connect(&ctx.resolver.agent(cluster, pod.ordinal)?).await?;
            agent.can_restart().await
        }
        .await;
        let refusal = match verdict {
            Ok(v) if v.safe => None,
            Ok(v) => Some(v.reasons.join("; ")),
            Err(e) => Some(format!("its agent cannot be asked: {e}")),
        };
        if let Some(why) = refusal {
            let cond = rolling(
                "RollBlocked",
                format!("broker {} may not restart now: {why}", pod.ordinal),
            );
            if condition_changed(previous, &cond) {
                ctx.event(
                    cluster,
                    EventType::Warning,
                    "RollBlocked",
                    "RestartBroker",
                    cond.message.clone(),
                )
                .await;
            }
            return Ok(RollOutcome {
                condition: cond,
                up_to_date: false,
            });
        }
    }
    let ns = cluster.namespace().unwrap_or_default();
    let delete = DeleteParams {
        // Only the pod this pass looked at: a re-created one is already restarted.
        preconditions: Some(Preconditions {
            uid: pod.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .delete(&pod.name, &delete)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(source) => {
            return Err(Error::Kube {
                what: format!("delete broker pod {ns}/{}", pod.name),
                source,
            })
        }
    }
    let message = format!(
        "restarting broker {} because {}; brokers {pending:?} to restart",
        pod.ordinal,
        reason.describe()
    );
    tracing::info!(broker = pod.ordinal, %message, "rolling restart");
    ctx.event(
        cluster,
        EventType::Normal,
        "RestartingBroker",
        "RestartBroker",
        message.clone(),
    )
    .await;
    Ok(RollOutcome {
        condition: rolling("Rolling", message),
        up_to_date: false,
    })
}
