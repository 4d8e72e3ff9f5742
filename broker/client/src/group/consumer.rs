//! A consumer group member: joins with the range assignor (leading the
//! assignment when chosen), heartbeats from a background task, rejoins when
//! the coordinator starts a rebalance or no longer knows it, fetches its
//! assigned partitions from their committed offsets (or per
//! `auto.offset.reset`), commits periodically and on close, and leaves the
//! group on close. Rebalances are eager: positions are committed before
//! rejoining and re-read from the committed offsets afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::OffsetSpec;
use crate::client::{Client, TopicMetadata, UNKNOWN_TOPIC_OR_PARTITION};
use crate::error::{Error, KafkaErrorName, Result};
use crate::fetch::{ConsumerRecord, FetchOptions};
use crate::group::admin::{Committer, OffsetCommit};
use crate::group::assignor::{range_assign, AssignorMember, RANGE};
use crate::group::membership::{JoinRequest, JoinResponse};
use crate::group::protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Subscription,
    TopicPartitions,
};

/// OFFSET_OUT_OF_RANGE: the position fell off the log (retention) or past its end.
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Pause before retrying a join that the coordinator turned away.
const REJOIN_BACKOFF: Duration = Duration::from_millis(100);

/// Where to start in a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset (`auto.offset.reset=earliest`).
    Earliest,
    /// The log end offset (`auto.offset.reset=latest`).
    Latest,
}

/// Settings of a group member, named after the Java client's keys.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// `group.id`.
    pub group_id: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// `group.instance.id` for static membership.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms`: the coordinator drops a member silent this long.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `auto.commit.interval.ms`; `None` disables auto commit and the commit on close.
    pub auto_commit_interval: Option<Duration>,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// Fetch limits.
    pub fetch: FetchOptions,
}

impl GroupConsumerConfig {
    /// Defaults for `group` subscribing to `topics` (kafka-python's timings:
    /// 10 s session, 3 s heartbeat; 5 s auto commit; latest).
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> GroupConsumerConfig {
        GroupConsumerConfig {
            group_id: group.into(),
            topics,
            group_instance_id: None,
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            auto_commit_interval: Some(Duration::from_secs(5)),
            auto_offset_reset: OffsetReset::Latest,
            fetch: FetchOptions::default(),
        }
    }
}

/// A record with the topic it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Topic name.
    pub topic: Arc<str>,
    /// The record.
    pub record: ConsumerRecord,
}

/// The generation the heartbeat task keeps alive. Written by the consumer
/// (after each join), read by the heartbeat task.
#[derive(Debug, Default)]
struct Generation {
    generation_id: i32,
    member_id: String,
    /// Heartbeats are sent only between a completed SyncGroup and the next
    /// rejoin, as the Java client does.
    active: bool,
}

/// State shared between the consumer and its heartbeat task.
#[derive(Debug, Default)]
struct Shared {
    generation: Mutex<Generation>,
    /// Set by the heartbeat task when the coordinator wants a rejoin; taken
    /// by the next `poll`.
    rejoin: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        // Every write replaces whole fields, so a poisoned lock is still consistent.
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn activate(&self, generation_id: i32, member_id: &str) {
        let mut g = self.lock();
        g.generation_id = generation_id;
        g.member_id = member_id.to_string();
        g.active = true;
    }

    fn deactivate(&self) {
        self.lock().active = false;
    }

    fn active(&self) -> Option<(i32, String)> {
        let g = self.lock();
        g.active.then(|| (g.generation_id, g.member_id.clone()))
    }

    /// Asks for a rejoin unless the answer is about an older generation.
    fn request_rejoin(&self, generation_id: i32) {
        let mut g = self.lock();
        if g.active && g.generation_id == generation_id {
            g.active = false;
            self.rejoin.store(true, Ordering::SeqCst);
        }
    }
}

/// What a member does after JoinGroup or SyncGroup refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Join again at once with the member id the coordinator just handed
    /// out (KIP-394's MEMBER_ID_REQUIRED).
    WithAssignedId,
    /// Join again with the same member id: a new generation is forming.
    KeepId,
    /// Join again as a new member: the coordinator no longer knows this id.
    NewId,
    /// Give up with the error.
    Fail,
}

/// The member's reaction to a JoinGroup or SyncGroup error code.
fn retry_after(err: ResponseError) -> Retry {
    match err {
        ResponseError::MemberIdRequired => Retry::WithAssignedId,
        ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration => Retry::KeepId,
        ResponseError::UnknownMemberId => Retry::NewId,
        _ => Retry::Fail,
    }
}

/// Whether a group error means "join again".
fn needs_rejoin(err: ResponseError) -> bool {
    matches!(
        err,
        ResponseError::RebalanceInProgress
            | ResponseError::IllegalGeneration
            | ResponseError::UnknownMemberId
            | ResponseError::FencedInstanceId
    )
}

/// A member of a consumer group. Call [`GroupConsumer::poll`] in a loop and
/// [`GroupConsumer::close`] at the end.
#[derive(Debug)]
pub struct GroupConsumer {
    client: Arc<Client>,
    config: GroupConsumerConfig,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    heartbeat: Option<JoinHandle<()>>,
    member_id: String,
    generation_id: i32,
    joined: bool,
    assignment: Vec<TopicPartitions>,
    topics: BTreeMap<String, (Arc<str>, TopicMetadata)>,
    /// Next offset to fetch (and to commit) per topic and partition.
    positions: BTreeMap<String, BTreeMap<i32, i64>>,
    /// What the coordinator last accepted, to skip commits that change nothing.
    committed: BTreeMap<String, BTreeMap<i32, i64>>,
    last_commit: Instant,
    stale_metadata: bool,
    rotation: usize,
}

impl GroupConsumer {
    /// A member of `config.group_id`; it joins on the first `poll`.
    pub fn new(client: Arc<Client>, config: GroupConsumerConfig) -> Result<GroupConsumer> {
        if config.group_id.is_empty() {
            return Err(Error::InvalidInput("the group id must not be empty".into()));
        }
        if config.topics.is_empty() {
            return Err(Error::InvalidInput(
                "subscribe to at least one topic".into(),
            ));
        }
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat_loop(
            client.clone(),
            config.group_id.clone(),
            config.group_instance_id.clone(),
            config.heartbeat_interval,
            shared.clone(),
            stopped,
        ));
        Ok(GroupConsumer {
            client,
            config,
            shared,
            stop,
            heartbeat: Some(heartbeat),
            member_id: String::new(),
            generation_id: -1,
            joined: false,
            assignment: Vec::new(),
            topics: BTreeMap::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_commit: Instant::now(),
            stale_metadata: false,
            rotation: 0,
        })
    }

    /// The member id the coordinator gave us ("" before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The current generation (-1 before the first join).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Partitions assigned in the current generation.
    pub fn assignment(&self) -> &[TopicPartitions] {
        &self.assignment
    }

    /// The next offset to be read from a partition, if assigned.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(topic)?.get(&partition).copied()
    }

    /// Moves the position of an assigned partition; the next fetch and
    /// commit use it. Used to hand back records that were polled but not
    /// processed.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        match self
            .positions
            .get_mut(topic)
            .and_then(|ps| ps.get_mut(&partition))
        {
            Some(pos) => {
                *pos = offset;
                Ok(())
            }
            None => Err(Error::InvalidInput(format!(
                "topic '{topic}' partition {partition} is not assigned to this member"
            ))),
        }
    }

    /// Joins (or rejoins) the group if needed, so that the assignment and
    /// positions are current.
    pub async fn ensure_joined(&mut self) -> Result<()> {
        if !self.joined || self.shared.rejoin.swap(false, Ordering::SeqCst) {
            self.rejoin().await?;
        }
        Ok(())
    }

    /// Fetches once from the assigned partitions, joining or rejoining first
    /// when needed and auto-committing when the interval has passed. Waits
    /// up to the fetch `max_wait` when nothing is available.
    pub async fn poll(&mut self) -> Result<Vec<GroupRecord>> {
        self.ensure_joined().await?;
        if let Some(interval) = self.config.auto_commit_interval {
            if self.last_commit.elapsed() >= interval {
                // A failed auto commit is retried at the next interval; a
                // rebalance it reveals is handled by the next poll.
                match self.commit().await {
                    Ok(()) => {}
                    Err(err) if err.is_transient() => {
                        tracing::debug!(group = %self.config.group_id, %err, "auto commit failed");
                    }
                    Err(err) => {
                        tracing::warn!(group = %self.config.group_id, %err, "auto commit failed");
                    }
                }
            }
        }
        if self.stale_metadata {
            self.refresh_metadata().await?;
        }
        let mut out = Vec::new();
        let mut fetched_any = false;
        let topics: Vec<String> = self.positions.keys().cloned().collect();
        for topic in topics {
            let Some(parts) = self.positions.get(&topic) else {
                continue;
            };
            let mut order: Vec<(i32, i64)> = parts.iter().map(|(&p, &o)| (p, o)).collect();
            if order.is_empty() {
                continue;
            }
            let r = self.rotation % order.len();
            order.rotate_left(r);
            let Some((name, meta)) = self.topics.get(&topic) else {
                continue;
            };
            let name = name.clone();
            fetched_any = true;
            let fetched = self.client.fetch(meta, &order, &self.config.fetch).await?;
            for f in fetched {
                match f.error_code {
                    0 => {
                        self.set_position(&topic, f.partition, f.next_offset);
                        out.extend(f.records.into_iter().map(|record| GroupRecord {
                            topic: name.clone(),
                            record,
                        }));
                    }
                    OFFSET_OUT_OF_RANGE => {
                        let reset = self.reset_offsets(&topic, &[f.partition]).await?;
                        for (p, o) in reset {
                            tracing::warn!(%topic, partition = p, offset = o,
                                "position out of range; reset per auto.offset.reset");
                            self.set_position(&topic, p, o);
                        }
                    }
                    UNKNOWN_TOPIC_OR_PARTITION => self.stale_metadata = true,
                    code => {
                        let err = Error::broker(
                            code,
                            format!("topic '{topic}' partition {}", f.partition),
                            None,
                        );
                        if err.is_retriable() {
                            self.stale_metadata = true;
                        } else {
                            return Err(err);
                        }
                    }
                }
            }
        }
        self.rotation = self.rotation.wrapping_add(1);
        if !fetched_any || self.stale_metadata {
            // Nothing assigned (more members than partitions) or a partition
            // that keeps failing: do not spin.
            tokio::time::sleep(self.config.fetch.max_wait).await;
        }
        Ok(out)
    }

    /// Commits the current positions of partitions whose position changed
    /// since the last commit. A rebalance error also schedules a rejoin.
    pub async fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        if !self.joined {
            return Ok(());
        }
        let mut offsets = Vec::new();
        for (topic, parts) in &self.positions {
            for (&partition, &offset) in parts {
                let done = self.committed.get(topic).and_then(|c| c.get(&partition));
                if done != Some(&offset) {
                    offsets.push(OffsetCommit {
                        topic: topic.clone(),
                        partition,
                        offset,
                        metadata: None,
                    });
                }
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let committer = Committer {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
        };
        match self
            .client
            .offset_commit(&self.config.group_id, &committer, &offsets)
            .await
        {
            Ok(()) => {
                for o in offsets {
                    self.committed
                        .entry(o.topic)
                        .or_default()
                        .insert(o.partition, o.offset);
                }
                Ok(())
            }
            Err(err) => {
                if err.kafka_error().is_some_and(needs_rejoin) {
                    self.shared.request_rejoin(self.generation_id);
                }
                Err(err)
            }
        }
    }

    /// Stops heartbeating, commits (unless auto commit is off) and leaves
    /// the group. A static member does not leave, so that its restart
    /// within the session timeout gets its partitions back without a
    /// rebalance. Returns the first error after trying every step.
    pub async fn close(mut self) -> Result<()> {
        self.stop_heartbeat().await;
        let mut first_err = None;
        if self.config.auto_commit_interval.is_some() {
            if let Err(err) = self.commit().await {
                first_err = Some(err);
            }
        }
        if !self.member_id.is_empty() && self.config.group_instance_id.is_none() {
            if let Err(err) = self
                .client
                .leave_group(&self.config.group_id, &self.member_id)
                .await
            {
                // Already gone (session expired) is what leaving wants anyway.
                if err.kafka_error() != Some(ResponseError::UnknownMemberId) {
                    first_err.get_or_insert(err);
                }
            }
        }
        self.joined = false;
        first_err.map_or(Ok(()), Err)
    }

    async fn stop_heartbeat(&mut self) {
        self.shared.deactivate();
        let _ = self.stop.send(true);
        if let Some(handle) = self.heartbeat.take() {
            let _ = handle.await;
        }
    }

    fn set_position(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(parts) = self.positions.get_mut(topic) {
            parts.insert(partition, offset);
        }
    }

    /// Joins the group and takes up the new assignment.
    async fn rejoin(&mut self) -> Result<()> {
        if self.joined && self.config.auto_commit_interval.is_some() {
            // Eager rebalance: hand over what we consumed before giving up
            // our partitions.
            if let Err(err) = self.commit().await {
                tracing::warn!(group = %self.config.group_id, %err,
                    "commit before rebalance failed");
            }
        }
        self.joined = false;
        self.shared.deactivate();
        self.shared.rejoin.store(false, Ordering::SeqCst);
        let metadata = encode_subscription(&Subscription {
            topics: self.config.topics.clone(),
            ..Subscription::default()
        })
        .map_err(Error::InvalidInput)?;
        let group = self.config.group_id.clone();
        let assignment = loop {
            let join = self
                .client
                .join_group(&JoinRequest {
                    group: &group,
                    member_id: &self.member_id,
                    group_instance_id: self.config.group_instance_id.as_deref(),
                    session_timeout: self.config.session_timeout,
                    rebalance_timeout: self.config.rebalance_timeout,
                    protocols: vec![(RANGE.to_string(), metadata.clone())],
                })
                .await?;
            if let Some(err) = join.error {
                match retry_after(err) {
                    Retry::WithAssignedId => self.member_id = join.member_id,
                    Retry::KeepId => tokio::time::sleep(REJOIN_BACKOFF).await,
                    Retry::NewId => {
                        self.member_id.clear();
                        tokio::time::sleep(REJOIN_BACKOFF).await;
                    }
                    Retry::Fail => return Err(group_error(err, &group)),
                }
                continue;
            }
            self.member_id = join.member_id.clone();
            self.generation_id = join.generation_id;
            let protocol = join.protocol_name.clone().unwrap_or_else(|| RANGE.into());
            let assignments = if join.leader == self.member_id {
                self.lead(&join).await?
            } else {
                Vec::new()
            };
            let synced = self
                .client
                .sync_group(
                    &group,
                    self.generation_id,
                    &self.member_id,
                    self.config.group_instance_id.as_deref(),
                    &protocol,
                    &assignments,
                )
                .await?;
            match synced {
                Ok(data) => {
                    break decode_assignment(&data).map_err(|m| Error::Protocol {
                        addr: String::new(),
                        api: "SyncGroup".into(),
                        version: -1,
                        message: m,
                    })?
                }
                Err(err) => match retry_after(err) {
                    // A new generation is forming: join it right away.
                    Retry::KeepId | Retry::WithAssignedId => {}
                    Retry::NewId => self.member_id.clear(),
                    Retry::Fail => return Err(group_error(err, &group)),
                },
            }
        };
        tracing::info!(%group, member = %self.member_id, generation = self.generation_id,
            ?assignment, "joined group");
        self.assignment = assignment;
        self.shared.activate(self.generation_id, &self.member_id);
        self.joined = true;
        self.last_commit = Instant::now();
        self.refresh_metadata().await?;
        self.load_positions().await
    }

    /// As the leader: reads the members' subscriptions, assigns with the
    /// range assignor and returns every member's encoded assignment.
    async fn lead(&self, join: &JoinResponse) -> Result<Vec<(String, Bytes)>> {
        let mut members = Vec::with_capacity(join.members.len());
        for m in &join.members {
            let sub = decode_subscription(&m.metadata).map_err(|message| Error::Protocol {
                addr: String::new(),
                api: "JoinGroup".into(),
                version: -1,
                message: format!("member '{}': {message}", m.member_id),
            })?;
            members.push(AssignorMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                topics: sub.topics,
            });
        }
        let topics: BTreeSet<String> = members.iter().flat_map(|m| m.topics.clone()).collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let meta = self.client.metadata(Some(&topics), false).await?;
        let counts: BTreeMap<String, i32> = meta
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| (t.name.clone(), t.partition_count()))
            .collect();
        let plan = range_assign(&members, &counts);
        plan.into_iter()
            .map(|(member, assigned)| {
                encode_assignment(&assigned)
                    .map(|data| (member, data))
                    .map_err(Error::InvalidInput)
            })
            .collect()
    }

    async fn refresh_metadata(&mut self) -> Result<()> {
        let mut topics = BTreeMap::new();
        for tp in &self.assignment {
            let meta = self.client.topic_with_leaders(&tp.topic, false).await?;
            topics.insert(tp.topic.clone(), (Arc::from(tp.topic.as_str()), meta));
        }
        self.topics = topics;
        self.stale_metadata = false;
        Ok(())
    }

    /// Positions for the new assignment: committed offsets, else per
    /// `auto.offset.reset`.
    async fn load_positions(&mut self) -> Result<()> {
        let group = self.config.group_id.clone();
        let deadline = Instant::now() + self.client.config().request_timeout;
        let committed = loop {
            match self
                .client
                .offset_fetch(&group, Some(&self.assignment))
                .await
            {
                // UNSTABLE_OFFSET_COMMIT and the like clear up shortly.
                Err(err) if err.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(REJOIN_BACKOFF).await;
                }
                other => break other?,
            }
        };
        self.positions.clear();
        self.committed.clear();
        for c in committed.into_iter().filter(|c| c.offset >= 0) {
            self.committed
                .entry(c.topic.clone())
                .or_default()
                .insert(c.partition, c.offset);
        }
        let assignment = self.assignment.clone();
        for tp in &assignment {
            let mut parts = BTreeMap::new();
            let mut missing = Vec::new();
            for &p in &tp.partitions {
                match self.committed.get(&tp.topic).and_then(|c| c.get(&p)) {
                    Some(&o) => {
                        parts.insert(p, o);
                    }
                    None => missing.push(p),
                }
            }
            if !missing.is_empty() {
                parts.extend(self.reset_offsets(&tp.topic, &missing).await?);
            }
            self.positions.insert(tp.topic.clone(), parts);
        }
        Ok(())
    }

    async fn reset_offsets(&self, topic: &str, partitions: &[i32]) -> Result<Vec<(i32, i64)>> {
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
        };
        Ok(self
            .client
            .list_offsets(topic, partitions, spec)
            .await?
            .into_iter()
            .map(|o| (o.partition, o.offset))
            .collect())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // Without close(): stop heartbeating so the coordinator expires us.
        if let Some(handle) = self.heartbeat.take() {
            handle.abort();
        }
    }
}

fn group_error(e: ResponseError, group: &str) -> Error {
    Error::Broker {
        error: KafkaErrorName(e),
        target: format!("group '{group}'"),
        message: None,
    }
}

/// Sends a heartbeat every `interval` while a generation is active, and
/// flags a rejoin when the coordinator answers with a rebalance error.
async fn heartbeat_loop(
    client: Arc<Client>,
    group: String,
    instance: Option<String>,
    interval: Duration,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let Some((generation, member)) = shared.active() else {
            continue;
        };
        match client
            .heartbeat(&group, generation, &member, instance.as_deref())
            .await
        {
            Ok(None) => {}
            Ok(Some(err)) if needs_rejoin(err) => {
                tracing::debug!(%group, error = %KafkaErrorName(err), "heartbeat asks for a rejoin");
                shared.request_rejoin(generation);
            }
            Ok(Some(err)) => {
                tracing::warn!(%group, error = %KafkaErrorName(err), "heartbeat refused");
            }
            // An outage is reported once by the caller of poll(), not every interval here.
            Err(err) if err.is_transient() => tracing::debug!(%group, %err, "heartbeat failed"),
            Err(err) => tracing::warn!(%group, %err, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_heartbeat_answers_do_not_trigger_a_rejoin() {
        let shared = Shared::default();
        shared.activate(5, "m");
        shared.request_rejoin(4);
        assert!(
            !shared.rejoin.load(Ordering::SeqCst),
            "older generation ignored"
        );
        assert!(shared.active().is_some());
        shared.request_rejoin(5);
        assert!(shared.rejoin.load(Ordering::SeqCst));
        assert!(
            shared.active().is_none(),
            "heartbeats pause until the rejoin"
        );
    }

    #[test]
    fn join_and_sync_errors_map_to_the_kafka_client_reactions() {
        assert_eq!(
            retry_after(ResponseError::MemberIdRequired),
            Retry::WithAssignedId
        );
        assert_eq!(
            retry_after(ResponseError::RebalanceInProgress),
            Retry::KeepId
        );
        assert_eq!(retry_after(ResponseError::IllegalGeneration), Retry::KeepId);
        assert_eq!(retry_after(ResponseError::UnknownMemberId), Retry::NewId);
        for fatal in [
            ResponseError::InconsistentGroupProtocol,
            ResponseError::FencedInstanceId,
            ResponseError::GroupAuthorizationFailed,
            ResponseError::InvalidSessionTimeout,
        ] {
            assert_eq!(retry_after(fatal), Retry::Fail, "{fatal:?}");
        }
    }

    #[test]
    fn rebalance_errors_mean_rejoin() {
        for e in [
            ResponseError::RebalanceInProgress,
            ResponseError::IllegalGeneration,
            ResponseError::UnknownMemberId,
        ] {
            assert!(needs_rejoin(e), "{e:?}");
        }
        assert!(!needs_rejoin(ResponseError::GroupAuthorizationFailed));
    }
}
