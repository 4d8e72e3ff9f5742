//! `runnel group list|describe|reset-offsets|delete`, like
//! `kafka-consumer-groups`.
//!
//! `--output json` shapes (stable; new fields may be added):
//! - `group list`: `[{"group": str, "state": str, "protocol_type": str}]`
//! - `group describe`: `{"group": str, "state": str, "protocol_type": str,
//!   "protocol": str, "members": [{"member_id": str, "group_instance_id":
//!   str|null, "client_id": str, "host": str, "assignment": [{"topic": str,
//!   "partitions": [int]}]}], "offsets": [{"topic": str, "partition": int,
//!   "committed_offset": int|null, "log_end_offset": int|null, "lag":
//!   int|null, "member_id": str|null}], "total_lag": int}`
//! - `group reset-offsets`: `{"group": str, "executed": bool, "plan":
//!   [{"topic": str, "partition": int, "current_offset": int|null,
//!   "new_offset": int}]}`

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use runnel_client::{
    Client, Committer, Error as ClientError, GroupDescription, OffsetCommit, OffsetSpec,
    ResponseError,
};
use serde::Serialize;

use crate::cli::{GroupCommand, OutputFormat, ResetOffsetsArgs};
use crate::commands::offset_reset::{plan, PartitionState, PlanRow, ResetMode};
use crate::table::Table;

/// One row of `group list --output json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    pub(crate) group: String,
    pub(crate) state: String,
    pub(crate) protocol_type: String,
}

/// `group describe --output json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct GroupReport {
    pub(crate) group: String,
    pub(crate) state: String,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<MemberReport>,
    pub(crate) offsets: Vec<OffsetReport>,
    pub(crate) total_lag: i64,
}

/// One member in [`GroupReport`].
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct MemberReport {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) assignment: Vec<AssignedTopic>,
}

/// Assigned partitions of one topic in [`MemberReport`].
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct AssignedTopic {
    pub(crate) topic: String,
    pub(crate) partitions: Vec<i32>,
}

/// One partition in [`GroupReport`].
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct OffsetReport {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) committed_offset: Option<i64>,
    pub(crate) log_end_offset: Option<i64>,
    pub(crate) lag: Option<i64>,
    pub(crate) member_id: Option<String>,
}

/// `group reset-offsets --output json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ResetReport {
    pub(crate) group: String,
    pub(crate) executed: bool,
    pub(crate) plan: Vec<PlanRow>,
}

/// Runs a group subcommand, printing its result to stdout.
pub(crate) async fn run(
    client: &Client,
    command: GroupCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        GroupCommand::List => list(client, output).await,
        GroupCommand::Describe(args) => describe(client, &args.group, output).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(client, args, output).await,
        GroupCommand::Delete(args) => delete(client, &args.group).await,
    }
}

async fn list(client: &Client, output: OutputFormat) -> Result<()> {
    let mut rows = Vec::new();
    for g in client.list_groups().await? {
        let state = match g.state {
            Some(s) => s,
            // Brokers before ListGroups v4 do not say; ask the group.
            None => client.describe_group(&g.group_id).await?.state,
        };
        rows.push(GroupSummary {
            group: g.group_id,
            state,
            protocol_type: g.protocol_type,
        });
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
        OutputFormat::Table => {
            let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for r in rows {
                table.row(vec![r.group, r.state, r.protocol_type]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

/// Describes the group, turning "no such group" into a plain message.
async fn describe_existing(client: &Client, group: &str) -> Result<GroupDescription> {
    match client.describe_group(group).await {
        Err(err) if err.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
            bail!("group '{group}' does not exist")
        }
        other => Ok(other?),
    }
}

async fn describe(client: &Client, group: &str, output: OutputFormat) -> Result<()> {
    let desc = describe_existing(client, group).await?;
    let committed = client.offset_fetch(group, None).await?;
    if desc.state == "Dead" && committed.iter().all(|c| c.offset < 0) {
        bail!("group '{group}' does not exist");
    }
    // Every partition that is assigned or has a commit.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &desc.members {
        for tp in &m.assignment {
            for &p in &tp.partitions {
                owner.insert((tp.topic.clone(), p), m.member_id.clone());
            }
        }
    }
    let commits: BTreeMap<(String, i32), i64> = committed
        .iter()
        .filter(|c| c.offset >= 0)
        .map(|c| ((c.topic.clone(), c.partition), c.offset))
        .collect();
    let keys: BTreeSet<(String, i32)> = owner.keys().chain(commits.keys()).cloned().collect();
    let ends = log_end_offsets(client, &keys).await?;
    let offsets: Vec<OffsetReport> = keys
        .into_iter()
        .map(|key| {
            let committed_offset = commits.get(&key).copied();
            let log_end_offset = ends.get(&key).copied();
            let lag = committed_offset
                .zip(log_end_offset)
                .map(|(c, e)| (e - c).max(0));
            OffsetReport {
                member_id: owner.get(&key).cloned(),
                topic: key.0,
                partition: key.1,
                committed_offset,
                log_end_offset,
                lag,
            }
        })
        .collect();
    let report = GroupReport {
        group: desc.group_id.clone(),
        state: desc.state.clone(),
        protocol_type: desc.protocol_type.clone(),
        protocol: desc.protocol.clone(),
        total_lag: offsets.iter().filter_map(|o| o.lag).sum(),
        members: desc
            .members
            .iter()
            .map(|m| MemberReport {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                host: m.client_host.clone(),
                assignment: m
                    .assignment
                    .iter()
                    .map(|tp| AssignedTopic {
                        topic: tp.topic.clone(),
                        partitions: tp.partitions.clone(),
                    })
                    .collect(),
            })
            .collect(),
        offsets,
    };
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => print!("{}", render_report(&report)),
    }
    Ok(())
}

/// Log end offsets per partition; partitions of topics that no longer
/// exist are left out (their lag is unknown).
async fn log_end_offsets(
    client: &Client,
    keys: &BTreeSet<(String, i32)>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in keys {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (topic, parts) in by_topic {
        match client.list_offsets(topic, &parts, OffsetSpec::Latest).await {
            Ok(list) => out.extend(
                list.into_iter()
                    .map(|o| ((topic.to_string(), o.partition), o.offset)),
            ),
            Err(ClientError::UnknownTopic(_) | ClientError::UnknownPartition { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(out)
}

fn dash(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn render_assignment(a: &[AssignedTopic]) -> String {
    if a.is_empty() {
        return "-".to_string();
    }
    a.iter()
        .map(|tp| {
            let parts: Vec<String> = tp.partitions.iter().map(i32::to_string).collect();
            format!("{}:{}", tp.topic, parts.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_report(r: &GroupReport) -> String {
    let protocol = if r.protocol.is_empty() {
        "-"
    } else {
        &r.protocol
    };
    let mut out = format!(
        "Group: {}\tState: {}\tProtocol: {}\tMembers: {}\n\n",
        r.group,
        r.state,
        protocol,
        r.members.len()
    );
    if !r.members.is_empty() {
        let mut members = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for m in &r.members {
            members.row(vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.host.clone(),
                render_assignment(&m.assignment),
            ]);
        }
        out.push_str(&members.render());
        out.push('\n');
    }
    let mut offsets = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ]);
    for o in &r.offsets {
        offsets.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            dash(o.committed_offset),
            dash(o.log_end_offset),
            dash(o.lag),
            o.member_id.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&offsets.render());
    out.push_str(&format!("\nTotal lag: {}\n", r.total_lag));
    out
}

async fn reset_offsets(
    client: &Client,
    args: ResetOffsetsArgs,
    output: OutputFormat,
) -> Result<()> {
    let group = args.group.as_str();
    let desc = match client.describe_group(group).await {
        // Resetting a group that does not exist yet creates its offsets.
        Err(err) if err.kafka_error() == Some(ResponseError::GroupIdNotFound) => None,
        other => Some(other?),
    };
    if let Some(desc) = desc.as_ref().filter(|d| !d.members.is_empty()) {
        let n = desc.members.len();
        bail!(
            "group '{group}' has {n} active member{} (state {}); offsets can only be reset \
             while the group is empty, so stop its consumers first",
            if n == 1 { "" } else { "s" },
            desc.state
        );
    }
    let committed = client.offset_fetch(group, None).await?;
    let commits: BTreeMap<(String, i32), i64> = committed
        .iter()
        .filter(|c| c.offset >= 0)
        .map(|c| ((c.topic.clone(), c.partition), c.offset))
        .collect();
    // Which partitions: as kafka-consumer-groups, --all-topics means those
    // with a committed offset.
    let mut targets: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if args.all_topics {
        for (t, p) in commits.keys() {
            targets.entry(t.clone()).or_default().push(*p);
        }
    } else {
        for spec in &args.topics {
            let meta = client.describe_topic(&spec.topic).await?;
            let parts = match &spec.partitions {
                Some(ps) => {
                    for &p in ps {
                        meta.partition(p)?;
                    }
                    ps.clone()
                }
                None => meta.partitions.iter().map(|p| p.partition).collect(),
            };
            let entry = targets.entry(spec.topic.clone()).or_default();
            entry.extend(parts);
            entry.sort_unstable();
            entry.dedup();
        }
    }
    let mode = args.mode();
    let mut states = Vec::new();
    for (topic, parts) in &targets {
        let earliest = offsets_of(client, topic, parts, OffsetSpec::Earliest).await?;
        let latest = offsets_of(client, topic, parts, OffsetSpec::Latest).await?;
        let at_time = match mode {
            ResetMode::Datetime(ts) => {
                offsets_of(client, topic, parts, OffsetSpec::Timestamp(ts)).await?
            }
            _ => BTreeMap::new(),
        };
        for &p in parts {
            states.push(PartitionState {
                topic: topic.clone(),
                partition: p,
                committed: commits.get(&(topic.clone(), p)).copied(),
                earliest: earliest.get(&p).copied().unwrap_or(0),
                latest: latest.get(&p).copied().unwrap_or(0),
                at_time: at_time.get(&p).copied().filter(|o| *o >= 0),
            });
        }
    }
    let rows = plan(mode, &states).map_err(anyhow::Error::msg)?;
    if rows.is_empty() {
        bail!("group '{group}' has no committed offsets to reset; name topics with --topic");
    }
    if args.execute {
        let offsets: Vec<OffsetCommit> = rows
            .iter()
            .map(|r| OffsetCommit {
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.new_offset,
                metadata: None,
            })
            .collect();
        match client
            .offset_commit(group, &Committer::admin(), &offsets)
            .await
        {
            Err(err) if err.kafka_error().is_some_and(member_error) => bail!(
                "group '{group}' gained members while resetting; offsets can only be reset \
                 while the group is empty ({err})"
            ),
            other => other?,
        }
    }
    let report = ResetReport {
        group: group.to_string(),
        executed: args.execute,
        plan: rows,
    };
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        OutputFormat::Table => print!("{}", render_plan(&report)),
    }
    Ok(())
}

/// Errors an admin commit gets when the group is not empty.
fn member_error(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::UnknownMemberId
            | ResponseError::IllegalGeneration
            | ResponseError::RebalanceInProgress
    )
}

async fn offsets_of(
    client: &Client,
    topic: &str,
    parts: &[i32],
    spec: OffsetSpec,
) -> Result<BTreeMap<i32, i64>> {
    Ok(client
        .list_offsets(topic, parts, spec)
        .await?
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect())
}

fn render_plan(r: &ResetReport) -> String {
    let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    for row in &r.plan {
        table.row(vec![
            row.topic.clone(),
            row.partition.to_string(),
            dash(row.current_offset),
            row.new_offset.to_string(),
        ]);
    }
    let mut out = table.render();
    if r.executed {
        out.push_str(&format!("\nReset offsets of group '{}'.\n", r.group));
    } else {
        out.push_str(
            "\nDry run: nothing was changed. Run again with --execute to apply this plan.\n",
        );
    }
    out
}

async fn delete(client: &Client, group: &str) -> Result<()> {
    match client.delete_groups(&[group.to_string()]).await {
        Ok(()) => {
            println!("Deleted group '{group}'.");
            Ok(())
        }
        Err(err) => match err.kafka_error() {
            Some(ResponseError::NonEmptyGroup) => bail!(
                "group '{group}' still has active members; stop its consumers before deleting it"
            ),
            Some(ResponseError::GroupIdNotFound) => bail!("group '{group}' does not exist"),
            _ => Err(err.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> GroupReport {
        GroupReport {
            group: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberReport {
                member_id: "m-1".into(),
                group_instance_id: None,
                client_id: "runnel".into(),
                host: "/127.0.0.1".into(),
                assignment: vec![AssignedTopic {
                    topic: "t".into(),
                    partitions: vec![0, 1],
                }],
            }],
            offsets: vec![
                OffsetReport {
                    topic: "t".into(),
                    partition: 0,
                    committed_offset: Some(3),
                    log_end_offset: Some(10),
                    lag: Some(7),
                    member_id: Some("m-1".into()),
                },
                OffsetReport {
                    topic: "t".into(),
                    partition: 1,
                    committed_offset: None,
                    log_end_offset: Some(4),
                    lag: None,
                    member_id: Some("m-1".into()),
                },
            ],
            total_lag: 7,
        }
    }

    #[test]
    fn describe_json_has_the_documented_shape() {
        let json = serde_json::to_value(report()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "group": "g", "state": "Stable", "protocol_type": "consumer", "protocol": "range",
                "members": [{"member_id": "m-1", "group_instance_id": null, "client_id": "runnel",
                             "host": "/127.0.0.1",
                             "assignment": [{"topic": "t", "partitions": [0, 1]}]}],
                "offsets": [
                    {"topic": "t", "partition": 0, "committed_offset": 3, "log_end_offset": 10,
                     "lag": 7, "member_id": "m-1"},
                    {"topic": "t", "partition": 1, "committed_offset": null, "log_end_offset": 4,
                     "lag": null, "member_id": "m-1"}
                ],
                "total_lag": 7
            })
        );
    }

    #[test]
    fn describe_table_shows_members_offsets_and_total_lag() {
        let text = render_report(&report());
        assert!(text.starts_with("Group: g\tState: Stable\tProtocol: range\tMembers: 1\n"));
        assert!(
            text.contains("m-1        runnel     /127.0.0.1  t:0,1"),
            "{text}"
        );
        assert!(
            text.contains("t      0          3               10              7    m-1"),
            "{text}"
        );
        assert!(
            text.contains("t      1          -               4               -    m-1"),
            "{text}"
        );
        assert!(text.ends_with("Total lag: 7\n"), "{text}");
    }

    #[test]
    fn dry_run_plan_says_nothing_changed() {
        let r = ResetReport {
            group: "g".into(),
            executed: false,
            plan: vec![PlanRow {
                topic: "t".into(),
                partition: 0,
                current_offset: Some(5),
                new_offset: 0,
            }],
        };
        let text = render_plan(&r);
        assert!(text.starts_with("TOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\nt      0          5               0\n"), "{text}");
        assert!(text.contains("Dry run: nothing was changed"), "{text}");
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"group": "g", "executed": false,
                "plan": [{"topic": "t", "partition": 0, "current_offset": 5, "new_offset": 0}]})
        );
    }
}
