//! `runnel cluster describe`: brokers, the controller, the metadata quorum and
//! partition health (under-replicated and offline counts) in one view.

use anyhow::Result;
use runnel_client::{Client, QuorumInfo, TopicMetadata};
use serde::Serialize;

use crate::cli::{ClusterCommand, OutputFormat};
use crate::table::Table;

/// One broker as `cluster describe` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct BrokerRow {
    pub(crate) id: i32,
    pub(crate) address: String,
    pub(crate) rack: Option<String>,
    pub(crate) controller: bool,
    pub(crate) leaders: usize,
    pub(crate) replicas: usize,
}

/// The metadata quorum as `cluster describe` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct QuorumRow {
    pub(crate) leader: i32,
    pub(crate) term: i32,
    pub(crate) committed_offset: i64,
    pub(crate) voters: Vec<i32>,
    pub(crate) observers: Vec<i32>,
}

/// Everything `cluster describe` prints.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ClusterDescription {
    pub(crate) cluster_id: Option<String>,
    pub(crate) controller: i32,
    pub(crate) brokers: Vec<BrokerRow>,
    /// `None` when the broker does not implement DescribeQuorum.
    pub(crate) quorum: Option<QuorumRow>,
    pub(crate) topics: usize,
    pub(crate) partitions: usize,
    pub(crate) under_replicated_partitions: usize,
    pub(crate) offline_partitions: usize,
}

pub(crate) async fn run(client: &Client, cmd: ClusterCommand, output: OutputFormat) -> Result<()> {
    match cmd {
        ClusterCommand::Describe => {
            let desc = describe(client).await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&desc)?),
                OutputFormat::Table => print!("{}", render(&desc)),
            }
        }
    }
    Ok(())
}

async fn describe(client: &Client) -> Result<ClusterDescription> {
    let meta = client.metadata(None, false).await?;
    let quorum = match client.describe_quorum().await {
        Ok(q) => Some(quorum_row(q)),
        Err(runnel_client::Error::UnsupportedApi { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(summarize(
        meta.cluster_id,
        meta.controller_id,
        meta.brokers
            .iter()
            .map(|b| (b.node_id, b.address(), b.rack.clone()))
            .collect(),
        &meta.topics,
        quorum,
    ))
}

fn quorum_row(q: QuorumInfo) -> QuorumRow {
    QuorumRow {
        leader: q.leader_id,
        term: q.leader_epoch,
        committed_offset: q.high_watermark,
        voters: q.voters.iter().map(|m| m.node_id).collect(),
        observers: q.observers.iter().map(|m| m.node_id).collect(),
    }
}

/// Pure summary of the metadata (tested without a broker).
pub(crate) fn summarize(
    cluster_id: Option<String>,
    controller: i32,
    brokers: Vec<(i32, String, Option<String>)>,
    topics: &[TopicMetadata],
    quorum: Option<QuorumRow>,
) -> ClusterDescription {
    let parts: Vec<_> = topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| &t.partitions)
        .collect();
    let mut rows: Vec<BrokerRow> = brokers
        .into_iter()
        .map(|(id, address, rack)| BrokerRow {
            id,
            address,
            rack,
            controller: id == controller,
            leaders: parts.iter().filter(|p| p.leader == id).count(),
            replicas: parts.iter().filter(|p| p.replicas.contains(&id)).count(),
        })
        .collect();
    rows.sort_by_key(|r| r.id);
    ClusterDescription {
        cluster_id,
        controller,
        brokers: rows,
        quorum,
        topics: topics.iter().filter(|t| t.error_code == 0).count(),
        partitions: parts.len(),
        under_replicated_partitions: parts
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count(),
        offline_partitions: parts.iter().filter(|p| p.leader < 0).count(),
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn render(d: &ClusterDescription) -> String {
    let mut out = format!(
        "ClusterId: {}\tController: {}\tTopics: {}\tPartitions: {}\tUnderReplicated: {}\tOffline: {}\n",
        d.cluster_id.as_deref().unwrap_or("-"),
        d.controller,
        d.topics,
        d.partitions,
        d.under_replicated_partitions,
        d.offline_partitions
    );
    if let Some(q) = &d.quorum {
        out.push_str(&format!(
            "Quorum: leader {}\tterm {}\tcommitted {}\tvoters [{}]\tobservers [{}]\n",
            q.leader,
            q.term,
            q.committed_offset,
            join(&q.voters),
            join(&q.observers)
        ));
    }
    let mut table = Table::new(&[
        "BROKER",
        "ADDRESS",
        "RACK",
        "CONTROLLER",
        "LEADERS",
        "REPLICAS",
    ]);
    for b in &d.brokers {
        table.row(vec![
            b.id.to_string(),
            b.address.clone(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
            if b.controller { "yes" } else { "" }.into(),
            b.leaders.to_string(),
            b.replicas.to_string(),
        ]);
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_client::PartitionMetadata;

    fn partition(p: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionMetadata {
        PartitionMetadata {
            partition: p,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline_replicas: Vec::new(),
            error_code: 0,
        }
    }

    #[test]
    fn counts_leaders_replicas_under_replicated_and_offline_partitions() {
        let topics = vec![TopicMetadata {
            name: "t".into(),
            topic_id: Default::default(),
            is_internal: false,
            partitions: vec![
                partition(0, 0, &[0, 1, 2], &[0, 1, 2]),
                partition(1, 1, &[1, 2, 0], &[1, 2]),
                partition(2, -1, &[2, 0, 1], &[2]),
            ],
            error_code: 0,
        }];
        let brokers = vec![
            (1, "h:2".to_string(), Some("r1".to_string())),
            (0, "h:1".to_string(), None),
        ];
        let d = summarize(Some("c".into()), 1, brokers, &topics, None);
        assert_eq!(d.partitions, 3);
        assert_eq!(d.under_replicated_partitions, 2);
        assert_eq!(d.offline_partitions, 1);
        assert_eq!(d.brokers[0].id, 0, "sorted by id");
        assert_eq!((d.brokers[0].leaders, d.brokers[0].replicas), (1, 3));
        assert!(d.brokers[1].controller && !d.brokers[0].controller);
        let text = render(&d);
        assert!(text.contains("UnderReplicated: 2\tOffline: 1"), "{text}");
    }
}
