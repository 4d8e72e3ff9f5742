//! Group administration over the coordinator APIs: FindCoordinator,
//! ListGroups, DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups and
//! OffsetDelete. Every group request goes to the group's coordinator; when
//! the broker says the coordinator moved or is still loading, the
//! coordinator is looked up again and the request retried.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::{Client, Route};
use crate::error::{check, Error, Result};
use crate::group::protocol::{decode_assignment, decode_subscription, TopicPartitions};

/// Protocol type of consumer groups, whose member data we can decode.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// FindCoordinator key type for groups.
const KEY_TYPE_GROUP: i8 = 0;
/// Pause before asking again for a coordinator that is moving or loading.
const COORDINATOR_BACKOFF: Duration = Duration::from_millis(100);

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type, "consumer" for consumer groups ("" for offsets-only groups).
    pub protocol_type: String,
    /// State (Stable, Empty, ...); `None` from brokers before ListGroups v4.
    pub state: Option<String>,
}

/// One member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id assigned by the coordinator.
    pub member_id: String,
    /// Static membership id, if any.
    pub group_instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host as the broker saw it (e.g. "/127.0.0.1").
    pub client_host: String,
    /// Subscribed topics (consumer groups only; empty if undecodable).
    pub subscribed_topics: Vec<String>,
    /// Assigned partitions (consumer groups only; empty during a rebalance).
    pub assignment: Vec<TopicPartitions>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: Empty, PreparingRebalance, CompletingRebalance, Stable or Dead
    /// (Dead also for a group that does not exist).
    pub state: String,
    /// Protocol type, "consumer" for consumer groups.
    pub protocol_type: String,
    /// Chosen protocol, i.e. the assignor ("range"); empty unless Stable.
    pub protocol: String,
    /// Members, sorted by member id.
    pub members: Vec<MemberDescription>,
}

/// A committed offset from OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset; -1 when nothing is committed.
    pub offset: i64,
    /// Leader epoch stored with the commit, -1 if none.
    pub leader_epoch: i32,
    /// Metadata string stored with the commit.
    pub metadata: Option<String>,
}

/// An offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The offset of the next record to consume.
    pub offset: i64,
    /// Optional metadata stored with the offset.
    pub metadata: Option<String>,
}

/// Who commits: a member of the current generation, or nobody (an admin
/// commit, which the coordinator accepts only while the group is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committer {
    /// Generation id, -1 for an admin commit.
    pub generation_id: i32,
    /// Member id, "" for an admin commit.
    pub member_id: String,
    /// Static instance id, if any.
    pub group_instance_id: Option<String>,
}

impl Committer {
    /// An admin commit outside any generation.
    pub fn admin() -> Committer {
        Committer {
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Where a group's coordinator is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// Node id.
    pub node_id: i32,
    /// `host:port`.
    pub address: String,
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) fn group_id(s: &str) -> GroupId {
    GroupId(str_bytes(s))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// Whether `err` says the group's coordinator should be looked up again.
pub(crate) fn is_coordinator_error(err: &Error) -> bool {
    matches!(
        err.kafka_error(),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
        )
    ) || matches!(err, Error::Io { .. } | Error::Connect { .. })
}

fn group_target(group: &str) -> String {
    format!("group '{group}'")
}

impl Client {
    /// Asks any broker which node coordinates `group`.
    pub async fn find_coordinator(&self, group: &str) -> Result<Coordinator> {
        let resp = self
            .request(Route::Any, i16::MAX, |version| {
                let mut req = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_GROUP);
                req = if version >= 4 {
                    req.with_coordinator_keys(vec![str_bytes(group)])
                } else {
                    req.with_key(str_bytes(group))
                };
                Ok(req)
            })
            .await?;
        let (code, message, node, host, port) = match resp.coordinators.into_iter().next() {
            Some(c) => (c.error_code, c.error_message, c.node_id.0, c.host, c.port),
            None => (
                resp.error_code,
                resp.error_message,
                resp.node_id.0,
                resp.host,
                resp.port,
            ),
        };
        check(code, || group_target(group), message.as_deref())?;
        let host = host.to_string();
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.set_coordinator(group, node, address.clone());
        Ok(Coordinator {
            node_id: node,
            address,
        })
    }

    /// Runs `call` against `group`'s coordinator, finding it first and again
    /// whenever the answer says it moved or is loading, until the request
    /// timeout has passed.
    pub(crate) async fn coordinator_call<T, F, Fut>(&self, group: &str, call: F) -> Result<T>
    where
        F: Fn(Route) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.config().request_timeout;
        loop {
            let node = match self.cached_coordinator(group) {
                Some(node) => Ok(node),
                None => self.find_coordinator(group).await.map(|c| c.node_id),
            };
            let result = match node {
                Ok(node) => call(Route::Coordinator(node)).await,
                Err(err) => Err(err),
            };
            match result {
                Err(err) if is_coordinator_error(&err) && Instant::now() < deadline => {
                    tracing::debug!(%group, %err, "looking up the group coordinator again");
                    self.forget_coordinator(group).await;
                    tokio::time::sleep(COORDINATOR_BACKOFF).await;
                }
                other => return other,
            }
        }
    }

    /// All groups on every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let meta = self.metadata(Some(&[]), false).await?;
        let mut nodes: Vec<Route> = meta
            .brokers
            .iter()
            .map(|b| Route::Node(b.node_id))
            .collect();
        if nodes.is_empty() {
            nodes.push(Route::Any);
        }
        let mut out = Vec::new();
        for route in nodes {
            let resp = self
                .request(route, i16::MAX, |_| Ok(ListGroupsRequest::default()))
                .await?;
            check(resp.error_code, || "ListGroups".to_string(), None)?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: Some(g.group_state.to_string()).filter(|s| !s.is_empty()),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes several groups (each asked of its own coordinator), in order.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            out.push(self.describe_group(g).await?);
        }
        Ok(out)
    }

    /// Describes one group, decoding consumer members' subscriptions and
    /// assignments. A group that does not exist is reported in state "Dead"
    /// (as Kafka does) or as GROUP_ID_NOT_FOUND by newer brokers.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let resp = self
            .coordinator_call(group, |route| async move {
                let resp = self
                    .request(route, i16::MAX, |_| {
                        Ok(DescribeGroupsRequest::default().with_groups(vec![group_id(group)]))
                    })
                    .await?;
                if let Some(g) = resp.groups.first() {
                    check(
                        g.error_code,
                        || group_target(group),
                        g.error_message.as_deref(),
                    )?;
                }
                Ok(resp)
            })
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol {
                addr: String::new(),
                api: "DescribeGroups".into(),
                version: -1,
                message: format!("the answer names no group, asked for '{group}'"),
            })?;
        let consumer = g.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
        let mut members: Vec<MemberDescription> = g
            .members
            .into_iter()
            .map(|m| {
                let (subscribed_topics, assignment) = if consumer {
                    (
                        decode_subscription(&m.member_metadata)
                            .map(|s| s.topics)
                            .unwrap_or_default(),
                        decode_assignment(&m.member_assignment).unwrap_or_default(),
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    subscribed_topics,
                    assignment,
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Committed offsets of `group`: for the given partitions, or for every
    /// partition the group has committed when `partitions` is `None`.
    /// Partitions without a commit come back with offset -1. Sorted by topic
    /// and partition.
    pub async fn offset_fetch(
        &self,
        group: &str,
        partitions: Option<&[TopicPartitions]>,
    ) -> Result<Vec<CommittedOffset>> {
        let mut out = self
            .coordinator_call(group, |route| async move {
                self.offset_fetch_at(route, group, partitions).await
            })
            .await?;
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    async fn offset_fetch_at(
        &self,
        route: Route,
        group: &str,
        partitions: Option<&[TopicPartitions]>,
    ) -> Result<Vec<CommittedOffset>> {
        let resp = self
            .request(route, i16::MAX, |version| {
                let mut req = OffsetFetchRequest::default();
                if version >= 8 {
                    let topics = partitions.map(|ps| {
                        ps.iter()
                            .map(|tp| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic_name(&tp.topic))
                                    .with_partition_indexes(tp.partitions.clone())
                            })
                            .collect()
                    });
                    req = req.with_groups(vec![OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(group))
                        .with_topics(topics)]);
                } else {
                    if version < 2 && partitions.is_none() {
                        return Err(Error::InvalidInput(
                            "this broker cannot list all committed offsets of a group".into(),
                        ));
                    }
                    let topics = partitions.map(|ps| {
                        ps.iter()
                            .map(|tp| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(topic_name(&tp.topic))
                                    .with_partition_indexes(tp.partitions.clone())
                            })
                            .collect()
                    });
                    req = req.with_group_id(group_id(group)).with_topics(topics);
                }
                if version >= 7 {
                    // Wait out pending transactional commits instead of reading past them.
                    req = req.with_require_stable(true);
                }
                Ok(req)
            })
            .await?;
        // v8+ answers per group, older versions at the top level: flatten both
        // layouts to (topic, partition, error, offset, epoch, metadata) rows.
        let (error_code, rows): (i16, Vec<_>) = match resp.groups.into_iter().next() {
            Some(g) => (
                g.error_code,
                g.topics
                    .into_iter()
                    .flat_map(|t| {
                        t.partitions.into_iter().map(move |p| {
                            let m = p.metadata.map(|m| m.to_string());
                            let (o, e) = (p.committed_offset, p.committed_leader_epoch);
                            (
                                t.name.0.to_string(),
                                p.partition_index,
                                p.error_code,
                                o,
                                e,
                                m,
                            )
                        })
                    })
                    .collect(),
            ),
            None => (
                resp.error_code,
                resp.topics
                    .into_iter()
                    .flat_map(|t| {
                        t.partitions.into_iter().map(move |p| {
                            let m = p.metadata.map(|m| m.to_string());
                            let (o, e) = (p.committed_offset, p.committed_leader_epoch);
                            (
                                t.name.0.to_string(),
                                p.partition_index,
                                p.error_code,
                                o,
                                e,
                                m,
                            )
                        })
                    })
                    .collect(),
            ),
        };
        check(error_code, || group_target(group), None)?;
        let mut out = Vec::with_capacity(rows.len());
        for (topic, partition, code, offset, leader_epoch, metadata) in rows {
            check(
                code,
                || format!("group '{group}' topic '{topic}' partition {partition}"),
                None,
            )?;
            out.push(CommittedOffset {
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
            });
        }
        Ok(out)
    }

    /// Commits offsets for `group` as `committer`; fails with the first
    /// partition error (e.g. ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    /// REBALANCE_IN_PROGRESS for a stale member).
    pub async fn offset_commit(
        &self,
        group: &str,
        committer: &Committer,
        offsets: &[OffsetCommit],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut by_topic: BTreeMap<&str, Vec<&OffsetCommit>> = BTreeMap::new();
        for o in offsets {
            by_topic.entry(o.topic.as_str()).or_default().push(o);
        }
        let by_topic = &by_topic;
        self.coordinator_call(group, |route| async move {
            let resp = self
                .request(route, i16::MAX, |version| {
                    let topics = by_topic
                        .iter()
                        .map(|(topic, parts)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(topic_name(topic))
                                .with_partitions(
                                    parts
                                        .iter()
                                        .map(|o| {
                                            OffsetCommitRequestPartition::default()
                                                .with_partition_index(o.partition)
                                                .with_committed_offset(o.offset)
                                                .with_committed_leader_epoch(-1)
                                                .with_committed_metadata(
                                                    o.metadata.as_deref().map(str_bytes),
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    let mut req = OffsetCommitRequest::default()
                        .with_group_id(group_id(group))
                        .with_generation_id_or_member_epoch(committer.generation_id)
                        .with_member_id(str_bytes(&committer.member_id))
                        .with_topics(topics);
                    if version <= 4 {
                        // -1: the broker's offsets.retention.minutes applies.
                        req = req.with_retention_time_ms(-1);
                    }
                    if version >= 7 {
                        req = req.with_group_instance_id(
                            committer.group_instance_id.as_deref().map(str_bytes),
                        );
                    }
                    Ok(req)
                })
                .await?;
            for t in resp.topics {
                let topic = t.name.0.to_string();
                for p in t.partitions {
                    check(
                        p.error_code,
                        || {
                            format!(
                                "group '{group}' topic '{topic}' partition {}",
                                p.partition_index
                            )
                        },
                        None,
                    )?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Deletes groups with their committed offsets. Fails on the first group
    /// the broker refused: NON_EMPTY_GROUP while it has members,
    /// GROUP_ID_NOT_FOUND if there is no such group.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<()> {
        for group in groups {
            let group = group.as_str();
            self.coordinator_call(group, |route| async move {
                let resp = self
                    .request(route, i16::MAX, |_| {
                        Ok(DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]))
                    })
                    .await?;
                for r in resp.results {
                    check(r.error_code, || group_target(group), None)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes the committed offsets of `partitions` of `topic` in `group`.
    /// Refused with GROUP_SUBSCRIBED_TO_TOPIC while a member consumes the topic.
    pub async fn offset_delete(&self, group: &str, topic: &str, partitions: &[i32]) -> Result<()> {
        self.coordinator_call(group, |route| async move {
            let resp = self
                .request(route, i16::MAX, |_| {
                    Ok(OffsetDeleteRequest::default()
                        .with_group_id(group_id(group))
                        .with_topics(vec![OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )]))
                })
                .await?;
            check(resp.error_code, || group_target(group), None)?;
            for t in resp.topics {
                for p in t.partitions {
                    check(
                        p.error_code,
                        || {
                            format!(
                                "group '{group}' topic '{topic}' partition {}",
                                p.partition_index
                            )
                        },
                        None,
                    )?;
                }
            }
            Ok(())
        })
        .await
    }
}
