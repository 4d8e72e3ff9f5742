//! The drain job: moves every replica off this agent's broker in the
//! background, independent of the gRPC stream that started it, so a client
//! that disconnects (or an operator that restarts) does not stop it and a later
//! `Drain` joins the running job instead of planning a second one.
//!
//! The job plans with [`runnel_client::balance::move_off`] against live
//! brokers, sets the replication throttle when asked, submits one
//! AlterPartitionReassignments per topic, then polls Metadata and
//! ListPartitionReassignments every second until no partition lists the
//! broker, removes the throttle and reports done. `CancelDrain` stops it,
//! cancels the reassignments it submitted that are still in flight and removes
//! the throttle.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use runnel_client::balance::{move_off, unmovable};
use runnel_client::reassign::ReassignmentThrottle;
use runnel_client::{Client, ClientConfig, ClusterMetadata, OngoingReassignment, TopicMetadata};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::proto::DrainProgress;

/// Time between two progress polls of a running drain.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Consecutive failed polls after which a drain gives up (about a minute).
const MAX_POLL_FAILURES: u32 = 60;

/// What a drain stream sees: the latest progress, and whether the job has ended.
#[derive(Debug, Clone, Default)]
struct Report {
    progress: DrainProgress,
    /// Set once, by the job's end (done, failed or cancelled); the stream closes after it.
    finished: bool,
    /// Reports published so far; 0 is the placeholder before the job has
    /// anything to say, which streams skip (so an idle drain answers `done` first).
    seq: u64,
}

/// The parameters of one drain.
#[derive(Debug, Clone)]
pub(crate) struct DrainSpec {
    /// Client settings for the broker's Kafka listener.
    pub(crate) client: ClientConfig,
    /// The broker being drained.
    pub(crate) node: i32,
    /// Throttle rate in bytes/s, 0 = none.
    pub(crate) throttle: u64,
    /// Brokers that must not receive replicas.
    pub(crate) avoid: Vec<i32>,
}

/// A throttle the job set and must remove: topics and brokers configured.
#[derive(Debug, Clone, Default)]
struct ThrottleSet {
    topics: Vec<String>,
    brokers: Vec<i32>,
}

/// One drain job. The task owns the work; the rest is shared with `CancelDrain`.
#[derive(Debug)]
struct Job {
    /// Written by the task (and by `CancelDrain` once the task is stopped).
    report: watch::Sender<Report>,
    /// Partitions the job asked to move: topic -> partitions. Recorded before
    /// the request goes out, so a cancel never misses one.
    submitted: Mutex<BTreeMap<String, BTreeSet<i32>>>,
    /// The throttle in force, recorded before it is set.
    throttle: Mutex<Option<ThrottleSet>>,
    /// The running task; taken by `CancelDrain`.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Job {
    fn finished(&self) -> bool {
        self.report.borrow().finished
    }

    /// The latest progress (the watch lock is released before this returns,
    /// so the result may feed [`Job::publish`]).
    fn last(&self) -> DrainProgress {
        self.report.borrow().progress.clone()
    }

    fn publish(&self, progress: DrainProgress, finished: bool) {
        self.report.send_modify(|r| {
            *r = Report {
                progress,
                finished,
                seq: r.seq + 1,
            }
        });
    }
}

/// The agent's drain: at most one job at a time.
#[derive(Debug, Default)]
pub(crate) struct Drains {
    current: Mutex<Option<Arc<Job>>>,
}

/// The server-streamed progress of one `Drain` call.
#[derive(Debug)]
pub struct ProgressStream(mpsc::Receiver<Result<DrainProgress, Status>>);

impl tonic::codegen::tokio_stream::Stream for ProgressStream {
    type Item = Result<DrainProgress, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section replaces whole values, so a poisoned lock holds nothing torn.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drains {
    /// Starts a drain with `spec`, or joins the one running (whose parameters then stand),
    /// and streams its progress until it ends.
    pub(crate) fn start_or_join(&self, spec: DrainSpec) -> ProgressStream {
        let job = {
            let mut current = lock(&self.current);
            match current.as_ref() {
                Some(job) if !job.finished() => job.clone(),
                _ => {
                    let (report, _) = watch::channel(Report::default());
                    let job = Arc::new(Job {
                        report,
                        submitted: Mutex::new(BTreeMap::new()),
                        throttle: Mutex::new(None),
                        task: Mutex::new(None),
                    });
                    let task = tokio::spawn(run(job.clone(), spec));
                    *lock(&job.task) = Some(task);
                    *current = Some(job.clone());
                    job
                }
            }
        };
        let mut rx = job.report.subscribe();
        let (tx, out) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let report = rx.borrow_and_update().clone();
                // A client that went away ends only this forwarder, never the job.
                if report.seq > 0 && tx.send(Ok(report.progress)).await.is_err() {
                    return;
                }
                if report.finished {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        ProgressStream(out)
    }

    /// Stops the running drain, cancels its reassignments still in flight and
    /// removes its throttle; returns how many reassignments were cancelled
    /// (0 when no drain runs).
    pub(crate) async fn cancel(&self, client: &ClientConfig) -> Result<u32, runnel_client::Error> {
        let job = lock(&self.current).clone();
        let Some(job) = job.filter(|j| !j.finished()) else {
            return Ok(0);
        };
        // Whoever takes the task cancels; a concurrent CancelDrain finds none and answers 0.
        let Some(task) = lock(&job.task).take() else {
            return Ok(0);
        };
        task.abort();
        // Wait until it has stopped, so it submits and sets nothing after this point.
        let _ = task.await;
        if job.finished() {
            // It ended on its own just before: nothing is in flight to cancel.
            return Ok(0);
        }
        let result = cancel_submitted(&job, client).await;
        let detail = match &result {
            Ok(n) => format!("cancelled: {n} reassignments stopped, throttle removed"),
            Err(e) => format!("cancelled, but cleaning up failed: {e}"),
        };
        job.publish(
            DrainProgress {
                detail,
                ..job.last()
            },
            true,
        );
        result
    }
}

async fn cancel_submitted(job: &Job, config: &ClientConfig) -> Result<u32, runnel_client::Error> {
    let client = Client::connect(config.clone()).await?;
    let submitted = lock(&job.submitted).clone();
    let in_flight: BTreeSet<(String, i32)> = client
        .list_reassignments(None)
        .await?
        .into_iter()
        .map(|r| (r.topic, r.partition))
        .collect();
    let mut cancelled = 0u32;
    for (topic, partitions) in &submitted {
        let still: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|&p| in_flight.contains(&(topic.clone(), p)))
            .collect();
        if still.is_empty() {
            continue;
        }
        client.cancel_reassignments(topic, &still).await?;
        cancelled += u32::try_from(still.len()).unwrap_or(u32::MAX);
    }
    remove_throttle(job, &client).await?;
    Ok(cancelled)
}

async fn remove_throttle(job: &Job, client: &Client) -> Result<(), runnel_client::Error> {
    let set = lock(&job.throttle).clone();
    if let Some(set) = set {
        client
            .remove_reassignment_throttle(&set.topics, &set.brokers)
            .await?;
        *lock(&job.throttle) = None;
    }
    Ok(())
}

/// The job's task: drains, then publishes the end (done or the error).
async fn run(job: Arc<Job>, spec: DrainSpec) {
    match drain(&job, &spec).await {
        Ok(progress) => job.publish(progress, true),
        Err(detail) => {
            tracing::warn!(broker = spec.node, %detail, "drain failed");
            job.publish(
                DrainProgress {
                    detail,
                    done: false,
                    ..job.last()
                },
                true,
            );
        }
    }
}

/// Partitions whose replica set includes `node`.
fn remaining(metadata: &ClusterMetadata, node: i32) -> u32 {
    let n = metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.replicas.contains(&node))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reassignments in flight that remove `node`.
fn moving(ongoing: &[OngoingReassignment], node: i32) -> u32 {
    let n = ongoing
        .iter()
        .filter(|r| r.removing.contains(&node))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The replica sets to plan from: each partition's target where a
/// reassignment is in flight (its replicas minus those being removed), its
/// replicas otherwise; so a partition already moving off `node` is not planned again.
pub(crate) fn planning_view(
    metadata: &ClusterMetadata,
    ongoing: &[OngoingReassignment],
) -> Vec<TopicMetadata> {
    let targets: BTreeMap<(&str, i32), Vec<i32>> = ongoing
        .iter()
        .map(|r| {
            let target = r
                .replicas
                .iter()
                .copied()
                .filter(|b| !r.removing.contains(b))
                .collect();
            ((r.topic.as_str(), r.partition), target)
        })
        .collect();
    metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(|t| {
            let mut t = t.clone();
            for p in &mut t.partitions {
                if let Some(target) = targets.get(&(t.name.as_str(), p.partition)) {
                    p.replicas = target.clone();
                }
            }
            t
        })
        .collect()
}

/// The drain itself; `Err` carries the sentence for `detail`.
async fn drain(job: &Job, spec: &DrainSpec) -> Result<DrainProgress, String> {
    let node = spec.node;
    let client = Client::connect(spec.client.clone())
        .await
        .map_err(|e| format!("cannot reach broker {node}: {e}"))?;
    let result = plan_and_submit(job, spec, &client).await;
    if let Err(detail) = result {
        // Nothing moves after a failed plan or submission, so no throttle may stay behind.
        if let Err(e) = remove_throttle(job, &client).await {
            return Err(format!("{detail}; removing the throttle failed too: {e}"));
        }
        return Err(detail);
    }
    let mut failures = 0u32;
    loop {
        let polled = async {
            let metadata = client.metadata(None, false).await?;
            let ongoing = client.list_reassignments(None).await?;
            Ok::<_, runnel_client::Error>((remaining(&metadata, node), moving(&ongoing, node)))
        }
        .await;
        match polled {
            Ok((0, _)) => break,
            Ok((remaining_replicas, moving_partitions)) => {
                failures = 0;
                job.publish(
                    DrainProgress {
                        remaining_replicas,
                        moving_partitions,
                        done: false,
                        detail: format!(
                            "broker {node}: {remaining_replicas} partitions still hold a replica here, \
                             {moving_partitions} moving off"
                        ),
                    },
                    false,
                );
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    let detail = format!("drain of broker {node}: giving up polling: {e}");
                    // Best effort: the broker may be as unreachable for this as for polling.
                    if let Err(e) = remove_throttle(job, &client).await {
                        return Err(format!("{detail}; removing the throttle failed too: {e}"));
                    }
                    return Err(detail);
                }
                job.publish(
                    DrainProgress {
                        detail: format!("drain of broker {node}: poll failed, retrying: {e}"),
                        ..job.last()
                    },
                    false,
                );
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    remove_throttle(job, &client).await.map_err(|e| {
        format!("broker {node} holds nothing, but removing the throttle failed: {e}")
    })?;
    Ok(DrainProgress {
        remaining_replicas: 0,
        moving_partitions: 0,
        done: true,
        detail: format!("broker {node} holds no replica"),
    })
}

/// Plans the moves off the broker, sets the throttle and submits the reassignments.
async fn plan_and_submit(job: &Job, spec: &DrainSpec, client: &Client) -> Result<(), String> {
    let node = spec.node;
    let metadata = client
        .metadata(None, false)
        .await
        .map_err(|e| format!("metadata: {e}"))?;
    let ongoing = client
        .list_reassignments(None)
        .await
        .map_err(|e| format!("listing reassignments: {e}"))?;
    let view = planning_view(&metadata, &ongoing);
    let candidates: Vec<i32> = metadata
        .brokers
        .iter()
        .map(|b| b.node_id)
        .filter(|b| *b != node && !spec.avoid.contains(b))
        .collect();
    let racks: BTreeMap<i32, String> = metadata
        .brokers
        .iter()
        .filter_map(|b| b.rack.clone().map(|r| (b.node_id, r)))
        .collect();
    let moves = move_off(&view, node, &candidates, &racks);
    let stuck = unmovable(&view, node, &moves);
    if !stuck.is_empty() {
        let names: Vec<String> = stuck.iter().map(|(t, p)| format!("{t}-{p}")).collect();
        return Err(format!(
            "cannot drain broker {node}: no broker left to take {} (candidates {candidates:?}); \
             nothing was moved",
            names.join(", ")
        ));
    }
    if moves.is_empty() {
        return Ok(());
    }
    if spec.throttle > 0 {
        let throttle = ReassignmentThrottle::plan(&moves);
        if !throttle.is_empty() {
            let topics: BTreeSet<String> = throttle
                .leader_replicas
                .keys()
                .chain(throttle.follower_replicas.keys())
                .cloned()
                .collect();
            *lock(&job.throttle) = Some(ThrottleSet {
                topics: topics.into_iter().collect(),
                brokers: throttle.brokers.iter().copied().collect(),
            });
            client
                .set_reassignment_throttle(&throttle, spec.throttle)
                .await
                .map_err(|e| format!("setting the throttle: {e}"))?;
        }
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, Vec<i32>)>> = BTreeMap::new();
    for m in &moves {
        by_topic
            .entry(&m.topic)
            .or_default()
            .push((m.partition, m.target.clone()));
    }
    for (topic, assignments) in by_topic {
        lock(&job.submitted)
            .entry(topic.to_string())
            .or_default()
            .extend(assignments.iter().map(|(p, _)| *p));
        client
            .reassign_partitions(topic, &assignments)
            .await
            .map_err(|e| format!("reassigning topic '{topic}': {e}"))?;
    }
    job.publish(
        DrainProgress {
            remaining_replicas: remaining(&metadata, node),
            moving_partitions: u32::try_from(moves.len()).unwrap_or(u32::MAX),
            done: false,
            detail: format!(
                "broker {node}: {} reassignments submitted{}",
                moves.len(),
                if spec.throttle > 0 {
                    format!(", throttled to {} bytes/s", spec.throttle)
                } else {
                    String::new()
                }
            ),
        },
        false,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_client::PartitionMetadata;

    #[test]
    fn partitions_already_moving_off_are_planned_from_their_target() {
        let metadata = ClusterMetadata {
            cluster_id: None,
            controller_id: 0,
            brokers: Vec::new(),
            topics: vec![TopicMetadata {
                name: "t".into(),
                topic_id: Default::default(),
                is_internal: false,
                partitions: vec![
                    PartitionMetadata {
                        partition: 0,
                        leader: 1,
                        leader_epoch: 0,
                        replicas: vec![1, 2, 3],
                        isr: vec![1, 2],
                        offline_replicas: Vec::new(),
                        error_code: 0,
                    },
                    PartitionMetadata {
                        partition: 1,
                        leader: 1,
                        leader_epoch: 0,
                        replicas: vec![1, 2],
                        isr: vec![1, 2],
                        offline_replicas: Vec::new(),
                        error_code: 0,
                    },
                ],
                error_code: 0,
            }],
        };
        // Partition 0 is moving from [1, 2] to [3, 2].
        let ongoing = vec![OngoingReassignment {
            topic: "t".into(),
            partition: 0,
            replicas: vec![1, 2, 3],
            adding: vec![3],
            removing: vec![1],
        }];
        let view = planning_view(&metadata, &ongoing);
        assert_eq!(view[0].partitions[0].replicas, vec![2, 3]);
        let moves = move_off(&view, 1, &[2, 3], &BTreeMap::new());
        assert_eq!(moves.len(), 1, "only partition 1 is planned: {moves:?}");
        assert_eq!(moves[0].partition, 1);
        assert_eq!(remaining(&metadata, 1), 2);
        assert_eq!(moving(&ongoing, 1), 1);
    }
}
