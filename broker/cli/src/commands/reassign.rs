//! `runnel topic reassign`: change a topic's replication factor, move every
//! replica off a broker, or apply a JSON plan (Kafka's
//! `kafka-reassign-partitions` format), then follow the reassignment until the
//! new replicas have caught up and the old ones are gone.
//!
//! Plans are computed here from the current metadata by pure functions, so the
//! broker only ever sees explicit target replica lists.
//!
//! `--throttle` bounds the copying like `kafka-reassign-partitions`: the rate
//! configs on every broker involved and the topics' throttled-replica lists
//! are set before the move and removed once it has completed;
//! `--remove-throttle` removes them after `--no-wait`, a timeout or a cancel.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runnel_client::balance;
use runnel_client::reassign::{PartitionMove, ReassignmentThrottle};
use runnel_client::{Client, TopicMetadata};
use serde::{Deserialize, Serialize};

use crate::cli::{OutputFormat, TopicReassignArgs};

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Move {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) replicas: Vec<i32>,
}

/// Kafka's reassignment JSON: `{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    #[serde(default = "plan_version")]
    pub(crate) version: i32,
    pub(crate) partitions: Vec<Move>,
}

fn plan_version() -> i32 {
    1
}

/// How many replicas each broker holds in `topic` (for least-loaded picks).
fn load(topic: &TopicMetadata, brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for p in &topic.partitions {
        for r in &p.replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    load
}

/// The least-loaded broker of `brokers` not in `exclude`, counted as one more
/// replica. Ties go to the broker that follows `anchor` (the partition's first
/// replica) most closely in id order, so followers spread round the ring.
fn pick(load: &mut BTreeMap<i32, usize>, exclude: &[i32], anchor: i32) -> Option<i32> {
    let ids: Vec<i32> = load.keys().copied().collect();
    let anchor_pos = ids.partition_point(|&b| b <= anchor);
    let distance = |b: i32| {
        let pos = ids.partition_point(|&x| x < b);
        (pos + ids.len() - anchor_pos % ids.len().max(1)) % ids.len().max(1)
    };
    let best = load
        .iter()
        .filter(|(b, _)| !exclude.contains(b))
        .min_by_key(|(b, n)| (**n, distance(**b)))
        .map(|(b, _)| *b)?;
    if let Some(n) = load.get_mut(&best) {
        *n += 1;
    }
    Some(best)
}

/// Targets giving every partition `rf` replicas: new replicas go to the
/// least-loaded live brokers; removed ones are taken from the end of the
/// list, never the leader. Partitions already at `rf` are left out.
pub(crate) fn plan_replication_factor(
    topic: &TopicMetadata,
    brokers: &[i32],
    rf: usize,
) -> Result<Vec<Move>> {
    if rf == 0 {
        bail!("the replication factor must be at least 1");
    }
    if rf > brokers.len() {
        bail!(
            "replication factor {rf} is larger than the {} available brokers",
            brokers.len()
        );
    }
    let mut load = load(topic, brokers);
    let mut moves = Vec::new();
    for p in &topic.partitions {
        let mut replicas = p.replicas.clone();
        if replicas.len() == rf {
            continue;
        }
        while replicas.len() < rf {
            let anchor = replicas.first().copied().unwrap_or(p.leader);
            let Some(b) = pick(&mut load, &replicas, anchor) else {
                bail!("no broker left to add to partition {}", p.partition);
            };
            replicas.push(b);
        }
        while replicas.len() > rf {
            let victim = replicas
                .iter()
                .rposition(|&r| r != p.leader)
                .unwrap_or(replicas.len() - 1);
            let removed = replicas.remove(victim);
            if let Some(n) = load.get_mut(&removed) {
                *n = n.saturating_sub(1);
            }
        }
        moves.push(Move {
            topic: topic.name.clone(),
            partition: p.partition,
            replicas,
        });
    }
    Ok(moves)
}

/// Targets with `broker` replaced (in place, so preference order is kept) by
/// the least-loaded other live broker in every partition that has it
/// (`runnel_client::balance::move_off`, the planner the agent's drain uses).
pub(crate) fn plan_move_off(
    topic: &TopicMetadata,
    brokers: &[i32],
    broker: i32,
) -> Result<Vec<Move>> {
    let topics = std::slice::from_ref(topic);
    let others: Vec<i32> = brokers.iter().copied().filter(|&b| b != broker).collect();
    let planned = balance::move_off(topics, broker, &others, &BTreeMap::new());
    if let Some((_, partition)) = balance::unmovable(topics, broker, &planned).first() {
        bail!(
            "cannot move partition {partition} off broker {broker}: every other broker already holds it \
             (lower the replication factor first)"
        );
    }
    Ok(planned
        .into_iter()
        .map(|m| Move {
            topic: m.topic,
            partition: m.partition,
            replicas: m.target,
        })
        .collect())
}

/// Reads and checks a JSON plan file.
pub(crate) fn read_plan(path: &Path) -> Result<Vec<Move>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read plan {}", path.display()))?;
    parse_plan(&text).with_context(|| format!("invalid plan {}", path.display()))
}

fn parse_plan(text: &str) -> Result<Vec<Move>> {
    let plan: Plan = serde_json::from_str(text)?;
    if plan.version != 1 {
        bail!("unsupported plan version {} (expected 1)", plan.version);
    }
    for m in &plan.partitions {
        if m.replicas.is_empty() {
            bail!("{}/{}: the replica list is empty", m.topic, m.partition);
        }
        let mut sorted = m.replicas.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != m.replicas.len() {
            bail!("{}/{}: a broker is listed twice", m.topic, m.partition);
        }
    }
    Ok(plan.partitions)
}

pub(crate) async fn run(
    client: &Client,
    args: TopicReassignArgs,
    output: OutputFormat,
) -> Result<()> {
    let meta = client.metadata(None, false).await?;
    let brokers: Vec<i32> = meta.brokers.iter().map(|b| b.node_id).collect();
    let topic_meta = |name: &str| -> Result<TopicMetadata> {
        meta.topics
            .iter()
            .find(|t| t.name == name && t.error_code == 0)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown topic '{name}'"))
    };
    if args.remove_throttle {
        let name = args.name.as_deref().context("a topic name is required")?;
        topic_meta(name)?;
        client
            .remove_reassignment_throttle(&[name.to_string()], &brokers)
            .await?;
        eprintln!("throttle removed from topic '{name}' and brokers {brokers:?}");
        return Ok(());
    }
    let moves = if let Some(path) = &args.plan {
        read_plan(path)?
    } else {
        let name = args.name.as_deref().context("a topic name is required")?;
        let topic = topic_meta(name)?;
        match (args.replication_factor, args.move_off) {
            (Some(rf), None) => plan_replication_factor(&topic, &brokers, usize::from(rf))?,
            (None, Some(b)) => {
                if !brokers.contains(&b)
                    && !topic.partitions.iter().any(|p| p.replicas.contains(&b))
                {
                    bail!("broker {b} holds no replica of '{name}'");
                }
                plan_move_off(&topic, &brokers, b)?
            }
            _ => bail!("give one of --replication-factor, --move-off or --plan"),
        }
    };
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string(&Plan {
                version: 1,
                partitions: moves.clone()
            })?
        ),
        OutputFormat::Table => {
            for m in &moves {
                println!("{}/{} -> replicas {:?}", m.topic, m.partition, m.replicas);
            }
            if moves.is_empty() {
                println!("nothing to move");
            }
        }
    }
    if args.dry_run || moves.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, Vec<i32>)>> = BTreeMap::new();
    for m in &moves {
        by_topic
            .entry(&m.topic)
            .or_default()
            .push((m.partition, m.replicas.clone()));
    }
    let throttle = match args.throttle {
        Some(rate) => {
            let mut planned = Vec::new();
            for m in &moves {
                let current = topic_meta(&m.topic)?
                    .partitions
                    .iter()
                    .find(|p| p.partition == m.partition)
                    .map(|p| p.replicas.clone())
                    .with_context(|| format!("unknown partition {}/{}", m.topic, m.partition))?;
                planned.push(PartitionMove {
                    topic: m.topic.clone(),
                    partition: m.partition,
                    current,
                    target: m.replicas.clone(),
                });
            }
            let throttle = ReassignmentThrottle::plan(&planned);
            if !throttle.is_empty() {
                client.set_reassignment_throttle(&throttle, rate).await?;
                eprintln!(
                    "throttle: {rate} bytes/s on brokers {:?}",
                    throttle.brokers.iter().collect::<Vec<_>>()
                );
            }
            Some(throttle).filter(|t| !t.is_empty())
        }
        None => None,
    };
    let remove_hint = |topics: &BTreeMap<&str, Vec<(i32, Vec<i32>)>>| {
        let names: Vec<&str> = topics.keys().copied().collect();
        format!(
            "the throttle stays in place until removed: runnel topic reassign <TOPIC>              --remove-throttle (topics: {})",
            names.join(", ")
        )
    };
    for (topic, assignments) in &by_topic {
        if let Err(err) = client.reassign_partitions(topic, assignments).await {
            if let Some(t) = &throttle {
                remove_throttle(client, t).await;
            }
            return Err(err.into());
        }
    }
    if args.no_wait {
        eprintln!("reassignment of {} partitions started", moves.len());
        if throttle.is_some() {
            eprintln!("{}", remove_hint(&by_topic));
        }
        return Ok(());
    }
    let followed = follow(client, &moves, Duration::from_secs(args.timeout_secs)).await;
    if let Some(t) = &throttle {
        match &followed {
            Ok(()) => remove_throttle(client, t).await,
            Err(_) => eprintln!("{}", remove_hint(&by_topic)),
        }
    }
    followed
}

/// Removes a completed reassignment's throttle (reported, not fatal: the move is done).
async fn remove_throttle(client: &Client, throttle: &ReassignmentThrottle) {
    let topics: Vec<String> = throttle
        .leader_replicas
        .keys()
        .chain(throttle.follower_replicas.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let brokers: Vec<i32> = throttle.brokers.iter().copied().collect();
    match client.remove_reassignment_throttle(&topics, &brokers).await {
        Ok(()) => eprintln!("throttle removed"),
        Err(err) => eprintln!(
            "cannot remove the throttle ({err}); retry with runnel topic reassign <TOPIC> --remove-throttle"
        ),
    }
}

/// Polls until no listed partition has a reassignment in progress and each
/// has exactly its target replicas, printing progress to stderr.
async fn follow(client: &Client, moves: &[Move], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let total = moves.len();
    let mut last_done = usize::MAX;
    loop {
        let mut done = 0;
        let mut by_topic: BTreeMap<&str, TopicMetadata> = BTreeMap::new();
        for m in moves {
            if !by_topic.contains_key(m.topic.as_str()) {
                by_topic.insert(&m.topic, client.describe_topic(&m.topic).await?);
            }
        }
        let ongoing = client.list_reassignments(None).await?;
        for m in moves {
            let busy = ongoing
                .iter()
                .any(|o| o.topic == m.topic && o.partition == m.partition);
            let current = by_topic
                .get(m.topic.as_str())
                .and_then(|t| t.partitions.iter().find(|p| p.partition == m.partition));
            let settled = current.is_some_and(|p| {
                let mut have = p.replicas.clone();
                let mut want = m.replicas.clone();
                have.sort_unstable();
                want.sort_unstable();
                have == want && p.isr.len() == p.replicas.len()
            });
            if !busy && settled {
                done += 1;
            }
        }
        if done != last_done {
            eprintln!("reassignment: {done}/{total} partitions done");
            last_done = done;
        }
        if done == total {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "reassignment not finished after {}s ({done}/{total} partitions done); \
                 it continues in the cluster — check with `runnel topic describe`",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_client::PartitionMetadata;

    fn topic(parts: &[(i32, &[i32])]) -> TopicMetadata {
        TopicMetadata {
            name: "t".into(),
            topic_id: Default::default(),
            is_internal: false,
            partitions: parts
                .iter()
                .enumerate()
                .map(|(i, (leader, replicas))| PartitionMetadata {
                    partition: i as i32,
                    leader: *leader,
                    leader_epoch: 0,
                    replicas: replicas.to_vec(),
                    isr: replicas.to_vec(),
                    offline_replicas: Vec::new(),
                    error_code: 0,
                })
                .collect(),
            error_code: 0,
        }
    }

    #[test]
    fn raising_the_replication_factor_adds_the_least_loaded_brokers() {
        let t = topic(&[(0, &[0]), (1, &[1]), (2, &[2])]);
        let moves = plan_replication_factor(&t, &[0, 1, 2], 3).expect("accepted");
        assert_eq!(moves.len(), 3);
        for m in &moves {
            let mut r = m.replicas.clone();
            r.sort_unstable();
            assert_eq!(r, vec![0, 1, 2]);
            assert_eq!(
                m.replicas[0], t.partitions[m.partition as usize].replicas[0],
                "leader kept first"
            );
        }
        let moves = plan_replication_factor(&t, &[0, 1, 2], 2).expect("accepted");
        let mut per_broker = BTreeMap::new();
        for m in &moves {
            for r in &m.replicas {
                *per_broker.entry(*r).or_insert(0) += 1;
            }
        }
        assert_eq!(
            per_broker.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
    }

    #[test]
    fn lowering_the_replication_factor_never_drops_the_leader() {
        let t = topic(&[(2, &[0, 1, 2]), (0, &[1, 2, 0])]);
        let moves = plan_replication_factor(&t, &[0, 1, 2], 1).expect("accepted");
        assert_eq!(moves[0].replicas, vec![2]);
        assert_eq!(moves[1].replicas, vec![0]);
    }

    #[test]
    fn a_replication_factor_above_the_broker_count_is_refused() {
        let t = topic(&[(0, &[0])]);
        let err = plan_replication_factor(&t, &[0, 1], 3)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("replication factor 3 is larger than the 2 available brokers"),
            "{err}"
        );
    }

    #[test]
    fn moving_off_a_broker_replaces_it_in_place() {
        let t = topic(&[(0, &[0, 1]), (1, &[1, 2]), (2, &[2, 0])]);
        let moves = plan_move_off(&t, &[0, 1, 2, 3], 0).expect("accepted");
        assert_eq!(moves.len(), 2);
        assert!(moves.iter().all(|m| !m.replicas.contains(&0)));
        assert_eq!(moves[0].replicas, vec![3, 1]);
        let err = plan_move_off(&topic(&[(0, &[0, 1])]), &[0, 1], 0).expect_err("refused");
        assert!(err
            .to_string()
            .contains("every other broker already holds it"));
    }

    #[test]
    fn plans_use_kafkas_json_format_and_reject_bad_lists() {
        let moves = parse_plan(
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,2]}]}"#,
        )
        .expect("accepted");
        assert_eq!(moves[0].replicas, vec![1, 2]);
        let err = parse_plan(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#)
            .expect_err("refused");
        assert!(err.to_string().contains("listed twice"));
        assert!(parse_plan(r#"{"version":2,"partitions":[]}"#).is_err());
    }
}
