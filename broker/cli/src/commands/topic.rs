//! `runnel topic create|list|describe|alter|delete`.

use std::collections::BTreeMap;

use anyhow::Result;
use runnel_client::{
    topic_id_string, AlterConfigOp, Client, ConfigEntry, NewTopic, OffsetSpec, TopicMetadata,
};
use serde::Serialize;

use crate::cli::{OutputFormat, TopicAlterArgs, TopicCommand, TopicCreateArgs};
use crate::table::Table;

/// One row of `topic list --output json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct TopicSummary {
    pub(crate) name: String,
    pub(crate) partitions: usize,
    pub(crate) replication_factor: usize,
    pub(crate) topic_id: String,
}

/// `topic describe --output json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct TopicDescription {
    pub(crate) name: String,
    pub(crate) topic_id: String,
    pub(crate) partitions: Vec<PartitionDescription>,
    pub(crate) configs: BTreeMap<String, String>,
}

/// One partition in [`TopicDescription`].
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct PartitionDescription {
    pub(crate) partition: i32,
    pub(crate) leader: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    /// Where read_committed consumers stop: the log end, or the first offset
    /// of an undecided transaction.
    pub(crate) last_stable_offset: i64,
}

/// Runs a topic subcommand, printing its result to stdout.
pub(crate) async fn run(
    client: &Client,
    command: TopicCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        TopicCommand::Create(args) => create(client, args, output).await,
        TopicCommand::List(args) => list(client, args.include_internal, output).await,
        TopicCommand::Describe(args) => describe(client, &args.name, output).await,
        TopicCommand::Alter(args) => alter(client, args).await,
        TopicCommand::Reassign(args) => super::reassign::run(client, args, output).await,
        TopicCommand::Delete(args) => {
            client
                .delete_topics(std::slice::from_ref(&args.name))
                .await?;
            println!("Deleted topic {}.", args.name);
            Ok(())
        }
    }
}

async fn create(client: &Client, args: TopicCreateArgs, output: OutputFormat) -> Result<()> {
    let created = client
        .create_topics(
            &[NewTopic {
                name: args.name.clone(),
                partitions: args.partitions,
                replication_factor: args.replication_factor,
                configs: args.configs,
            }],
            false,
        )
        .await?;
    match output {
        OutputFormat::Table => println!("Created topic {}.", args.name),
        OutputFormat::Json => {
            // CreateTopics reports counts only from v5; metadata always has them.
            let meta = client.describe_topic(&args.name).await?;
            let topic_id = created
                .first()
                .map(|c| c.topic_id)
                .filter(|id| !id.is_nil())
                .unwrap_or(meta.topic_id);
            let mut summary = summarize(&meta);
            summary.topic_id = topic_id_string(&topic_id);
            println!("{}", serde_json::to_string(&summary)?);
        }
    }
    Ok(())
}

async fn list(client: &Client, include_internal: bool, output: OutputFormat) -> Result<()> {
    let topics = client.list_topics().await?;
    // Internal topics are hidden by default, as kafka-topics --exclude-internal.
    let summaries: Vec<TopicSummary> = topics
        .iter()
        .filter(|t| include_internal || !t.is_internal)
        .map(summarize)
        .collect();
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&summaries)?),
        OutputFormat::Table => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICATION-FACTOR", "TOPIC-ID"]);
            for s in summaries {
                table.row(vec![
                    s.name,
                    s.partitions.to_string(),
                    s.replication_factor.to_string(),
                    s.topic_id,
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

fn summarize(t: &TopicMetadata) -> TopicSummary {
    TopicSummary {
        name: t.name.clone(),
        partitions: t.partitions.len(),
        replication_factor: t.replication_factor(),
        topic_id: topic_id_string(&t.topic_id),
    }
}

async fn describe(client: &Client, name: &str, output: OutputFormat) -> Result<()> {
    let desc = describe_topic(client, name).await?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&desc)?),
        OutputFormat::Table => print!("{}", render_description(&desc)),
    }
    Ok(())
}

/// Gathers metadata, log offsets and config overrides of one topic.
pub(crate) async fn describe_topic(client: &Client, name: &str) -> Result<TopicDescription> {
    let meta = client.describe_topic(name).await?;
    let ids: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
    let (starts, ends, stable) = if ids.is_empty() {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        (
            client
                .list_offsets(name, &ids, OffsetSpec::Earliest)
                .await?,
            client.list_offsets(name, &ids, OffsetSpec::Latest).await?,
            client
                .list_offsets(name, &ids, OffsetSpec::LatestStable)
                .await?,
        )
    };
    let offset_of = |list: &[runnel_client::PartitionOffset], p: i32| {
        list.iter()
            .find(|o| o.partition == p)
            .map_or(-1, |o| o.offset)
    };
    let configs = overrides(&client.describe_topic_configs(name).await?);
    Ok(TopicDescription {
        name: meta.name.clone(),
        topic_id: topic_id_string(&meta.topic_id),
        partitions: meta
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition,
                leader: p.leader,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                log_start_offset: offset_of(&starts, p.partition),
                log_end_offset: offset_of(&ends, p.partition),
                last_stable_offset: offset_of(&stable, p.partition),
            })
            .collect(),
        configs,
    })
}

/// The configs set on the topic itself, as `kafka-topics --describe` shows
/// them. A broker that reports no config sources (all "unknown") gets every
/// entry shown, rather than none.
fn overrides(entries: &[ConfigEntry]) -> BTreeMap<String, String> {
    let any_source_known = entries.iter().any(|e| e.source != 0);
    entries
        .iter()
        .filter(|e| !any_source_known || e.is_topic_override())
        .filter_map(|e| {
            let value = if e.is_sensitive {
                Some("<sensitive>".to_string())
            } else {
                e.value.clone()
            };
            value.map(|v| (e.name.clone(), v))
        })
        .collect()
}

fn render_description(d: &TopicDescription) -> String {
    let configs: Vec<String> = d.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let replication = d.partitions.first().map_or(0, |p| p.replicas.len());
    let mut out = format!(
        "Topic: {}\tTopicId: {}\tPartitions: {}\tReplicationFactor: {}\tConfigs: {}\n",
        d.name,
        d.topic_id,
        d.partitions.len(),
        replication,
        configs.join(",")
    );
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START",
        "LOG-END",
        "LAST-STABLE",
    ]);
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &d.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            join(&p.replicas),
            join(&p.isr),
            p.log_start_offset.to_string(),
            p.log_end_offset.to_string(),
            p.last_stable_offset.to_string(),
        ]);
    }
    out.push_str(&table.render());
    out
}

async fn alter(client: &Client, args: TopicAlterArgs) -> Result<()> {
    if let Some(total) = args.partitions {
        let current = client.describe_topic(&args.name).await?.partition_count();
        if total < current {
            anyhow::bail!(
                "topic '{}' has {current} partitions; the count can only grow",
                args.name
            );
        }
        if total > current {
            client.create_partitions(&args.name, total, false).await?;
        }
    }
    let ops: Vec<AlterConfigOp> = args
        .configs
        .into_iter()
        .map(|(k, v)| AlterConfigOp::Set(k, v))
        .chain(args.delete_configs.into_iter().map(AlterConfigOp::Delete))
        .collect();
    if !ops.is_empty() {
        client.alter_topic_configs(&args.name, &ops, false).await?;
    }
    println!("Altered topic {}.", args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: i8) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            read_only: false,
            source,
            is_sensitive: false,
        }
    }

    #[test]
    fn describe_shows_only_topic_overrides() {
        let entries = [
            entry("retention.ms", "1000", 1),
            entry("segment.bytes", "1073741824", 5),
        ];
        let shown = overrides(&entries);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown.get("retention.ms").map(String::as_str), Some("1000"));
    }

    #[test]
    fn describe_shows_everything_when_sources_are_unknown() {
        let entries = [
            entry("retention.ms", "1000", 0),
            entry("segment.bytes", "1", 0),
        ];
        assert_eq!(overrides(&entries).len(), 2);
    }

    #[test]
    fn describe_json_has_the_documented_shape() {
        let desc = TopicDescription {
            name: "t".into(),
            topic_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            partitions: vec![PartitionDescription {
                partition: 0,
                leader: 0,
                replicas: vec![0],
                isr: vec![0],
                log_start_offset: 0,
                log_end_offset: 5,
                last_stable_offset: 3,
            }],
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        };
        let json = serde_json::to_value(&desc).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "name": "t",
                "topic_id": "AAAAAAAAAAAAAAAAAAAAAA",
                "partitions": [{"partition": 0, "leader": 0, "replicas": [0], "isr": [0],
                                "log_start_offset": 0, "log_end_offset": 5,
                                "last_stable_offset": 3}],
                "configs": {"retention.ms": "1000"}
            })
        );
    }
}
