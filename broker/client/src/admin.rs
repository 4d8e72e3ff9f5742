//! Admin operations: topics, partitions, configs and offsets.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::client::{Client, Route, TopicMetadata, UNKNOWN_TOPIC_OR_PARTITION};
use crate::error::{check, Error, Result};

/// Kafka's resource type code for topics in config requests.
const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type code for brokers in config requests.
const RESOURCE_BROKER: i8 = 4;
/// Kafka's resource type code for client metrics subscriptions (KIP-714).
const RESOURCE_CLIENT_METRICS: i8 = 16;
/// Config source code for a per-topic override.
const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Partition count, or `None` for the broker's default.
    pub partitions: Option<i32>,
    /// Replication factor, or `None` for the broker's default.
    pub replication_factor: Option<i16>,
    /// Per-topic config overrides.
    pub configs: Vec<(String, String)>,
}

/// What CreateTopics reported for a created (or validated) topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id (nil before CreateTopics v7).
    pub topic_id: Uuid,
    /// Partition count (-1 before CreateTopics v5).
    pub partitions: i32,
    /// Replication factor (-1 before CreateTopics v5).
    pub replication_factor: i16,
}

/// One config entry from DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config key, e.g. `retention.ms`.
    pub name: String,
    /// Value; `None` for sensitive or unset entries.
    pub value: Option<String>,
    /// Whether the value cannot be changed.
    pub read_only: bool,
    /// Kafka's config source code (1 = topic override, 5 = default, 0 = unknown).
    pub source: i8,
    /// Whether the value is hidden because it is sensitive.
    pub is_sensitive: bool,
}

impl From<DescribeConfigsResourceResult> for ConfigEntry {
    fn from(c: DescribeConfigsResourceResult) -> Self {
        ConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            read_only: c.read_only,
            source: c.config_source,
            is_sensitive: c.is_sensitive,
        }
    }
}

impl ConfigEntry {
    /// Whether this entry is an override set on the topic itself.
    pub fn is_topic_override(&self) -> bool {
        self.source == SOURCE_DYNAMIC_TOPIC_CONFIG
    }
}

/// One change for IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set `key` to `value`.
    Set(String, String),
    /// Remove the override for `key`, reverting to the default.
    Delete(String),
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the next offset to be written).
    Latest,
    /// The last stable offset: where read_committed consumers stop (the log
    /// end, or the first offset of an undecided transaction).
    LatestStable,
    /// The first offset whose timestamp is at least this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest | OffsetSpec::LatestStable => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// One partition's answer to ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    /// Partition index.
    pub partition: i32,
    /// The offset found; -1 when no record has the asked timestamp.
    pub offset: i64,
    /// The timestamp of that record, -1 for earliest/latest.
    pub timestamp: i64,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    /// Creates topics; fails on the first topic the broker refused.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<CreatedTopic>> {
        let timeout_ms = self.timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |version| {
                let mut creatable = Vec::with_capacity(topics.len());
                for t in topics {
                    // Broker defaults (-1) exist only from CreateTopics v4 (KIP-464).
                    if version < 4 && (t.partitions.is_none() || t.replication_factor.is_none()) {
                        return Err(Error::InvalidInput(format!(
                            "this broker needs an explicit partition count and replication factor for topic '{}'",
                            t.name
                        )));
                    }
                    creatable.push(
                        CreatableTopic::default()
                            .with_name(name(&t.name))
                            .with_num_partitions(t.partitions.unwrap_or(-1))
                            .with_replication_factor(t.replication_factor.unwrap_or(-1))
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(k))
                                            .with_value(Some(str_bytes(v)))
                                    })
                                    .collect(),
                            ),
                    );
                }
                Ok(CreateTopicsRequest::default()
                    .with_topics(creatable)
                    .with_timeout_ms(timeout_ms)
                    .with_validate_only(validate_only))
            })
            .await?;
        let mut created = Vec::with_capacity(resp.topics.len());
        for t in resp.topics {
            let topic = t.name.0.to_string();
            check(
                t.error_code,
                || format!("topic '{topic}'"),
                t.error_message.as_deref(),
            )?;
            created.push(CreatedTopic {
                name: topic,
                topic_id: t.topic_id,
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
            });
        }
        Ok(created)
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, topics: &[String]) -> Result<()> {
        let timeout_ms = self.timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |version| {
                let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                // v6 names topics in a struct (name or id); older versions by name only.
                if version >= 6 {
                    req = req.with_topics(
                        topics
                            .iter()
                            .map(|t| DeleteTopicState::default().with_name(Some(name(t))))
                            .collect(),
                    );
                } else {
                    req = req.with_topic_names(topics.iter().map(|t| name(t)).collect());
                }
                Ok(req)
            })
            .await?;
        for r in resp.responses {
            let topic = r.name.map(|n| n.0.to_string()).unwrap_or_default();
            check_topic(&topic, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// All topics, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>> {
        let meta = self.metadata(None, false).await?;
        let mut topics: Vec<TopicMetadata> = meta
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Partitions, leaders, replicas and ISR of one topic.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicMetadata> {
        self.topic_metadata(topic, false).await
    }

    /// All config entries of a topic, sorted by name.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let resp = self
            .request(Route::Any, i16::MAX, |_| {
                Ok(DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(str_bytes(topic))
                        .with_configuration_keys(None),
                ]))
            })
            .await?;
        let mut entries = Vec::new();
        for r in resp.results {
            check_topic(topic, r.error_code, r.error_message.as_deref())?;
            entries.extend(r.configs.into_iter().map(ConfigEntry::from));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Applies config changes to a topic with IncrementalAlterConfigs.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let resp = self
            .incremental_alter(RESOURCE_TOPIC, topic, ops, validate_only)
            .await?;
        for r in resp.responses {
            check_topic(topic, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// The config entries of a broker (`Some(id)`; asked of that broker) or
    /// the cluster-wide dynamic defaults (`None`), sorted by name.
    pub async fn describe_broker_configs(&self, broker: Option<i32>) -> Result<Vec<ConfigEntry>> {
        let resource = broker.map(|b| b.to_string()).unwrap_or_default();
        let route = broker.map_or(Route::Any, Route::Node);
        let resp = self
            .request(route, i16::MAX, |_| {
                Ok(DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_BROKER)
                        .with_resource_name(str_bytes(&resource))
                        .with_configuration_keys(None),
                ]))
            })
            .await?;
        let mut entries = Vec::new();
        for r in resp.results {
            check(
                r.error_code,
                || broker_target(broker),
                r.error_message.as_deref(),
            )?;
            entries.extend(r.configs.into_iter().map(ConfigEntry::from));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Changes dynamic broker configs (e.g. the replication throttle rates) of
    /// one broker (`Some(id)`) or the cluster-wide default (`None`).
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let resource = broker.map(|b| b.to_string()).unwrap_or_default();
        let resp = self
            .incremental_alter(RESOURCE_BROKER, &resource, ops, validate_only)
            .await?;
        for r in resp.responses {
            check(
                r.error_code,
                || broker_target(broker),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// The names of the client metrics subscriptions (KIP-714), sorted.
    pub async fn list_client_metrics(&self) -> Result<Vec<String>> {
        let resp = self
            .request(Route::Any, 0, |_| {
                Ok(kafka_protocol::messages::ListConfigResourcesRequest::default())
            })
            .await?;
        check(resp.error_code, || "client metrics".to_string(), None)?;
        let mut names: Vec<String> = resp
            .config_resources
            .into_iter()
            .map(|r| r.resource_name.to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The configs of one client metrics subscription (`metrics`, `interval.ms`, `match`);
    /// empty when it does not exist.
    pub async fn describe_client_metrics(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let resp = self
            .request(Route::Any, i16::MAX, |_| {
                Ok(DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_CLIENT_METRICS)
                        .with_resource_name(str_bytes(name))
                        .with_configuration_keys(None),
                ]))
            })
            .await?;
        let mut entries = Vec::new();
        for r in resp.results {
            check(
                r.error_code,
                || format!("client metrics '{name}'"),
                r.error_message.as_deref(),
            )?;
            entries.extend(r.configs.into_iter().map(ConfigEntry::from));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Changes a client metrics subscription; deleting every config removes it.
    pub async fn alter_client_metrics(&self, name: &str, ops: &[AlterConfigOp]) -> Result<()> {
        let resp = self
            .incremental_alter(RESOURCE_CLIENT_METRICS, name, ops, false)
            .await?;
        for r in resp.responses {
            check(
                r.error_code,
                || format!("client metrics '{name}'"),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    async fn incremental_alter(
        &self,
        resource_type: i8,
        resource: &str,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<kafka_protocol::messages::IncrementalAlterConfigsResponse> {
        self.request(self.controller_route(), i16::MAX, |_| {
            let configs = ops
                .iter()
                .map(|op| match op {
                    AlterConfigOp::Set(k, v) => AlterableConfig::default()
                        .with_name(str_bytes(k))
                        .with_config_operation(0)
                        .with_value(Some(str_bytes(v))),
                    AlterConfigOp::Delete(k) => AlterableConfig::default()
                        .with_name(str_bytes(k))
                        .with_config_operation(1)
                        .with_value(None),
                })
                .collect();
            Ok(IncrementalAlterConfigsRequest::default()
                .with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(resource))
                    .with_configs(configs)])
                .with_validate_only(validate_only))
        })
        .await
    }

    /// Raises a topic's partition count to `total`.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<()> {
        let timeout_ms = self.timeout_ms();
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(CreatePartitionsRequest::default()
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(name(topic))
                        .with_count(total)
                        .with_assignments(None)])
                    .with_timeout_ms(timeout_ms)
                    .with_validate_only(validate_only))
            })
            .await?;
        for r in resp.results {
            check_topic(topic, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Looks up offsets of `partitions` of `topic`, asking each partition's
    /// leader. Results are sorted by partition.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<PartitionOffset>> {
        let meta = self.topic_with_leaders(topic, false).await?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            by_leader
                .entry(meta.partition(p)?.leader)
                .or_default()
                .push(p);
        }
        let timeout_ms = self.timeout_ms();
        let mut out = Vec::with_capacity(partitions.len());
        for (leader, parts) in by_leader {
            let resp = self
                .request(Route::Node(leader), i16::MAX, |version| {
                    let mut req = ListOffsetsRequest::default()
                        .with_replica_id((-1).into())
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(name(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_timestamp(spec.timestamp())
                                    })
                                    .collect(),
                            )]);
                    if version >= 10 {
                        req = req.with_timeout_ms(timeout_ms);
                    }
                    if spec == OffsetSpec::LatestStable && version >= 2 {
                        req = req.with_isolation_level(1);
                    }
                    Ok(req)
                })
                .await?;
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code == UNKNOWN_TOPIC_OR_PARTITION {
                        return Err(Error::UnknownTopic(topic.to_string()));
                    }
                    let partition = p.partition_index;
                    check(
                        p.error_code,
                        || format!("topic '{topic}' partition {partition}"),
                        None,
                    )?;
                    out.push(PartitionOffset {
                        partition,
                        offset: p.offset,
                        timestamp: p.timestamp,
                    });
                }
            }
        }
        out.sort_by_key(|o| o.partition);
        Ok(out)
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

/// Checks a per-topic admin result: UNKNOWN_TOPIC_OR_PARTITION becomes
/// [`Error::UnknownTopic`], any other error names the topic.
fn broker_target(broker: Option<i32>) -> String {
    match broker {
        Some(id) => format!("broker {id}"),
        None => "the cluster-wide broker defaults".to_string(),
    }
}

fn check_topic(topic: &str, code: i16, message: Option<&str>) -> Result<()> {
    if code == UNKNOWN_TOPIC_OR_PARTITION {
        return Err(Error::UnknownTopic(topic.to_string()));
    }
    check(code, || format!("topic '{topic}'"), message)
}
