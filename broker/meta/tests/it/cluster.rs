//! Multi-node clusters in one process: joining, replication from any node,
//! leader failover, full restarts, learners, snapshots, session expiry and
//! the automatic preferred-leader rebalance.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use runnel_meta::{
    Applied, BrokerInfo, Command, MetaConfig, MetaNode, NewTopic, Placement, Rejection,
};
use tempfile::TempDir;

use crate::{broker, config, eventually, ready};

/// Nodes `0..n` in `dirs`, node 0 founding the cluster and the others joining
/// through it one by one (so the first `voters` to join are the voters).
async fn start_cluster(dirs: &[TempDir], tweak: impl Fn(&mut MetaConfig)) -> Vec<MetaNode> {
    let mut cfg = config(0, dirs[0].path(), Vec::new());
    tweak(&mut cfg);
    let first = MetaNode::start(cfg).await.unwrap();
    ready(&first).await;
    let seed = first.listen_addr().to_string();
    let mut nodes = vec![first];
    for (i, dir) in dirs.iter().enumerate().skip(1) {
        let id = i32::try_from(i).unwrap();
        let mut cfg = config(id, dir.path(), vec![seed.clone()]);
        tweak(&mut cfg);
        let node = MetaNode::start(cfg).await.unwrap();
        ready(&node).await;
        let probe = nodes[0].clone();
        eventually("the new node is a member", || {
            let q = probe.quorum();
            async move { q.voters.contains(&id) || q.learners.contains(&id) }
        })
        .await;
        nodes.push(node);
    }
    nodes
}

/// Restarts node `id` from `dir` on the address it had before; nodes other
/// than 0 keep node 0 as their seed, as a restarted broker keeps its config.
async fn restart(
    id: i32,
    dir: &Path,
    addrs: &[String],
    tweak: impl Fn(&mut MetaConfig),
) -> MetaNode {
    let seeds = if id == 0 {
        Vec::new()
    } else {
        vec![addrs[0].clone()]
    };
    let addr = &addrs[usize::try_from(id).unwrap()];
    let mut cfg = config(id, dir, seeds);
    cfg.listen = addr.to_string();
    tweak(&mut cfg);
    MetaNode::start(cfg).await.unwrap()
}

fn dirs(n: usize) -> Vec<TempDir> {
    (0..n).map(|_| tempfile::tempdir().unwrap()).collect()
}

async fn all_see(
    nodes: &[MetaNode],
    what: &str,
    check: impl Fn(&runnel_meta::ClusterState) -> bool,
) {
    for node in nodes {
        let state = node.state();
        eventually(what, || {
            let holds = check(&state.borrow());
            async move { holds }
        })
        .await;
    }
}

fn registration(id: i32, node: &MetaNode) -> Command {
    Command::RegisterBroker(broker(id, node))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_from_any_node_survive_leader_loss_and_a_full_restart() {
    let dirs = dirs(3);
    let nodes = start_cluster(&dirs, |_| {}).await;
    for node in &nodes {
        let node = node.clone();
        eventually("all three are voters on every node", || {
            let q = node.quorum();
            async move { q.voters == [0, 1, 2] && q.learners.is_empty() }
        })
        .await;
    }
    let cluster_id = nodes[0].state().borrow().cluster_id.clone().unwrap();

    // A command proposed on any node is applied everywhere.
    for (i, node) in nodes.iter().enumerate() {
        let id = i32::try_from(i).unwrap();
        node.propose(registration(id, node)).await.unwrap();
        assert!(
            node.state().borrow().brokers.contains_key(&id),
            "visible on the proposer at once"
        );
    }
    all_see(&nodes, "three brokers everywhere", |s| s.brokers.len() == 3).await;

    // Metrics: every proposer timed its proposal, the controller timed the
    // commits (forwarded ones included) and counted becoming controller.
    for node in &nodes {
        assert!(node.metrics().propose_latency.get_sample_count() >= 1);
    }
    let commits: u64 = nodes
        .iter()
        .map(|n| n.metrics().commit_latency.get_sample_count())
        .sum();
    assert!(commits >= 3, "{commits} commits timed");
    let leader = nodes[0].quorum().leader.unwrap() as usize;
    let controller = nodes[leader].clone();
    eventually("the controller counted its election", || {
        let n = controller.metrics().controller_elections.get();
        async move { n >= 1 }
    })
    .await;

    // Stop the leader: the survivors elect a new one and take proposals again.
    let addrs: Vec<String> = nodes.iter().map(|n| n.listen_addr().to_string()).collect();
    let old_leader = nodes[0].quorum().leader.unwrap();
    let old_term = nodes[0].quorum().term;
    nodes[old_leader as usize].shutdown().await.unwrap();
    let survivors: Vec<MetaNode> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != old_leader as usize)
        .map(|(_, n)| n.clone())
        .collect();
    for node in &survivors {
        let node = node.clone();
        eventually("a new leader among the survivors", || {
            let q = node.quorum();
            async move { q.leader.is_some_and(|l| l != old_leader) && q.term > old_term }
        })
        .await;
    }
    let new_leader = survivors[0].quorum().leader.unwrap() as usize;
    let controller = nodes[new_leader].clone();
    eventually("the new controller counted its election", || {
        let n = controller.metrics().controller_elections.get();
        async move { n >= 1 }
    })
    .await;
    let reply = survivors[1]
        .propose(Command::AllocateProducerIds { count: 100 })
        .await
        .unwrap();
    let Applied::ProducerIds(first_id) = reply else {
        panic!("unexpected reply {reply:?}");
    };
    all_see(&survivors, "the producer id block everywhere", |s| {
        s.next_producer_id == first_id + 100
    })
    .await;
    for node in &survivors {
        node.shutdown().await.unwrap();
    }

    // Restart all three on their old addresses: state and id intact, and
    // the cluster takes proposals again.
    let mut restarted = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        restarted.push(restart(i32::try_from(i).unwrap(), dir.path(), &addrs, |_| {}).await);
    }
    for node in &restarted {
        ready(node).await;
    }
    all_see(&restarted, "state intact after a full restart", |s| {
        s.cluster_id.as_deref() == Some(cluster_id.as_str())
            && s.brokers.len() == 3
            && s.next_producer_id == first_id + 100
    })
    .await;
    for node in &restarted {
        assert_eq!(node.quorum().voters, [0, 1, 2]);
    }
    let reply = restarted[2]
        .propose(Command::AllocateProducerIds { count: 1 })
        .await
        .unwrap();
    assert_eq!(reply, Applied::ProducerIds(first_id + 100));
    all_see(&restarted, "a proposal after the restart", |s| {
        s.next_producer_id == first_id + 101
    })
    .await;
    for node in &restarted {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_stays_a_learner_and_receives_the_state() {
    let dirs = dirs(4);
    let nodes = start_cluster(&dirs, |_| {}).await;
    for node in &nodes {
        let node = node.clone();
        eventually("three voters and one learner", || {
            let q = node.quorum();
            async move { q.voters == [0, 1, 2] && q.learners == [3] }
        })
        .await;
    }
    // The learner proposes through the controller and sees the result locally.
    nodes[3].propose(registration(3, &nodes[3])).await.unwrap();
    assert!(nodes[3].state().borrow().brokers.contains_key(&3));
    nodes[0].propose(registration(0, &nodes[0])).await.unwrap();
    all_see(&nodes, "both registrations everywhere", |s| {
        s.brokers.len() == 2
    })
    .await;
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

fn purged_index(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("purged.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("index")?.as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_a_node_restarted_after_the_purge_catches_up() {
    let small_snapshots = |c: &mut MetaConfig| c.snapshot_every = 5;
    let dirs = dirs(3);
    let nodes = start_cluster(&dirs, small_snapshots).await;
    for node in &nodes {
        let node = node.clone();
        eventually("three voters", || {
            let q = node.quorum();
            async move { q.voters == [0, 1, 2] }
        })
        .await;
    }
    // Take node 2 down (not the leader, so the others keep a quorum).
    let leader = nodes[0].quorum().leader.unwrap();
    let down = if leader == 2 { 1 } else { 2 };
    let addrs: Vec<String> = nodes.iter().map(|n| n.listen_addr().to_string()).collect();
    let down_applied = nodes[down as usize].quorum().applied;
    nodes[down as usize].shutdown().await.unwrap();
    let up: Vec<MetaNode> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != down as usize)
        .map(|(_, n)| n.clone())
        .collect();

    let mut last = 0;
    for _ in 0..30 {
        let Applied::ProducerIds(id) = up[0]
            .propose(Command::AllocateProducerIds { count: 1 })
            .await
            .unwrap()
        else {
            panic!("producer ids expected");
        };
        last = id;
    }
    let leader_dir = dirs[leader as usize].path();
    eventually(
        "the leader snapshotted and purged past the stopped node",
        || {
            let purged = purged_index(leader_dir);
            let snapshot = leader_dir.join("snapshot.json").exists();
            async move { snapshot && purged.is_some_and(|p| p > down_applied + 20) }
        },
    )
    .await;

    let rejoined = restart(down, dirs[down as usize].path(), &addrs, small_snapshots).await;
    ready(&rejoined).await;
    let state = rejoined.state();
    eventually("the restarted node caught up from the snapshot", || {
        let caught_up = state.borrow().next_producer_id == last + 1;
        async move { caught_up }
    })
    .await;
    assert!(dirs[down as usize].path().join("snapshot.json").exists());
    rejoined.shutdown().await.unwrap();
    for node in &up {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_fences_a_silent_broker_and_a_heartbeating_one_re_registers_after_a_fence() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(0, dir.path(), Vec::new());
    cfg.session_timeout = Duration::from_millis(1000);
    let node = MetaNode::start(cfg).await.unwrap();
    ready(&node).await;

    // Broker 0 registers and heartbeats; broker 7 registers and goes silent.
    let live = broker(0, &node);
    node.register(live.clone()).await.unwrap();
    let silent: BrokerInfo = broker(7, &node);
    node.propose(Command::RegisterBroker(silent.clone()))
        .await
        .unwrap();
    let state = node.state();
    eventually("the silent broker is fenced", || {
        let fenced = state.borrow().brokers[&7].fenced;
        async move { fenced }
    })
    .await;
    // Well past its session, the heartbeating broker is not.
    assert!(!node.state().borrow().brokers[&0].fenced);

    // Fence the live broker by hand (as after a partition): it registers again.
    node.propose(Command::FenceBroker {
        id: 0,
        incarnation: live.incarnation,
    })
    .await
    .unwrap();
    eventually("the fenced live broker registers again", || {
        let back = state.borrow().brokers.get(&0).is_some_and(|b| !b.fenced);
        async move { back }
    })
    .await;
    assert!(
        node.state().borrow().brokers[&7].fenced,
        "the silent one stays fenced"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_moves_leadership_back_to_a_preferred_replica_that_is_in_sync_again() {
    let dirs = dirs(3);
    let nodes = start_cluster(&dirs, |cfg| {
        cfg.leader_imbalance_check_interval = Duration::from_millis(200);
    })
    .await;
    let mut brokers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let info = broker(i32::try_from(i).unwrap(), node);
        node.register(info.clone()).await.unwrap();
        brokers.push(info);
    }
    nodes[0]
        .propose(Command::CreateTopic {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            placement: Placement::Manual(vec![vec![1, 0, 2]]),
            configs: BTreeMap::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        nodes[0].state().borrow().partition("t", 0).unwrap().leader,
        1
    );

    // The preferred leader loses leadership (as after a missed session) and
    // its heartbeat loop registers it again; it is out of the ISR until the
    // new leader (broker 0) expands the ISR, as a caught-up follower would be.
    nodes[0]
        .propose(Command::FenceBroker {
            id: 1,
            incarnation: brokers[1].incarnation,
        })
        .await
        .unwrap();
    let p = nodes[0].state().borrow().partition("t", 0).unwrap().clone();
    assert_eq!((p.leader, p.isr.clone()), (0, vec![0, 2]));
    all_see(&nodes, "broker 1 registered again", |s| {
        s.brokers.get(&1).is_some_and(|b| !b.fenced)
    })
    .await;
    nodes[0]
        .propose(Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![0, 2, 1],
        })
        .await
        .unwrap();

    // No ElectLeaders from anyone: the controller's rebalance does it.
    let epoch = p.leader_epoch;
    all_see(&nodes, "leadership back on preferred replica 1", |s| {
        s.partition("t", 0)
            .is_some_and(|p| p.leader == 1 && p.leader_epoch == epoch + 1)
    })
    .await;
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_barrier_returns_only_once_a_node_has_applied_what_the_quorum_committed() {
    let dirs = dirs(3);
    let nodes = start_cluster(&dirs, |_| {}).await;
    for node in &nodes {
        let node = node.clone();
        eventually("all three are voters on every node", || {
            let q = node.quorum();
            async move { q.voters == [0, 1, 2] && q.learners.is_empty() && q.leader.is_some() }
        })
        .await;
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.listen_addr().to_string()).collect();
    let leader = usize::try_from(nodes[0].quorum().leader.unwrap()).unwrap();
    // On the leader and on an up-to-date follower the barrier is a round trip.
    for node in &nodes {
        node.read_barrier().await.unwrap();
    }

    // The leader knows what each follower holds (DescribeQuorum's log end offsets); the
    // followers know only themselves.
    let leader_node = nodes[leader].clone();
    eventually("the leader knows each follower's position", || {
        let q = leader_node.quorum();
        async move {
            let ids: Vec<i32> = q.matched.keys().copied().collect();
            ids.len() == 2
                && !ids.contains(&q.node_id)
                && q.matched.values().all(|i| *i >= q.committed)
        }
    })
    .await;
    for (i, n) in nodes.iter().enumerate() {
        if i != leader {
            assert!(n.quorum().matched.is_empty());
        }
    }

    // A follower misses commands the other two commit.
    let lagging = (leader + 1) % 3;
    nodes[lagging].shutdown().await.unwrap();
    let reply = nodes[leader]
        .propose(Command::AllocateProducerIds { count: 7 })
        .await
        .unwrap();
    let Applied::ProducerIds(first) = reply else {
        panic!("unexpected reply {reply:?}");
    };
    let node = restart(
        i32::try_from(lagging).unwrap(),
        dirs[lagging].path(),
        &addrs,
        |_| {},
    )
    .await;
    // Right after the restart its state is the old one; past the barrier it has the block.
    node.read_barrier().await.unwrap();
    assert_eq!(node.state().borrow().next_producer_id, first + 7);
    node.shutdown().await.unwrap();
    for (i, n) in nodes.iter().enumerate() {
        if i != lagging {
            n.shutdown().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_batch_proposed_on_a_follower_is_one_entry_with_an_outcome_per_topic() {
    let dirs = dirs(2);
    let nodes = start_cluster(&dirs, |_| {}).await;
    for (i, node) in nodes.iter().enumerate() {
        node.register(broker(i32::try_from(i).unwrap(), node))
            .await
            .unwrap();
    }
    all_see(&nodes, "both brokers registered", |s| s.brokers.len() == 2).await;
    nodes[0]
        .propose(Command::CreateTopic {
            name: "taken".into(),
            id: uuid::Uuid::new_v4(),
            placement: Placement::Manual(vec![vec![0]]),
            configs: BTreeMap::new(),
        })
        .await
        .unwrap();
    let leader = nodes[0].quorum().leader.unwrap();
    let follower = &nodes[usize::from(leader == 0)];
    assert_ne!(follower.quorum().node_id, leader);
    let topic = |name: &str, replicas: Vec<i32>| NewTopic {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        placement: Placement::Manual(vec![replicas]),
        configs: BTreeMap::new(),
    };
    let controller = nodes[usize::try_from(leader).unwrap()].clone();
    let probe = follower.clone();
    eventually("the follower applied everything the controller did", || {
        let (mine, theirs) = (probe.quorum().applied, controller.quorum().applied);
        async move { mine == theirs }
    })
    .await;
    let before = follower.quorum().applied;
    let reply = follower
        .propose(Command::CreateTopics {
            topics: vec![
                topic("x", vec![1, 0]),
                topic("taken", vec![1]),
                topic("y", vec![0]),
            ],
        })
        .await
        .unwrap();
    assert_eq!(
        reply,
        Applied::Topics(vec![
            Ok(()),
            Err(Rejection::TopicExists("taken".into())),
            Ok(())
        ])
    );
    assert_eq!(
        follower.quorum().applied,
        before + 1,
        "three topics, one log entry"
    );
    all_see(&nodes, "the batch everywhere", |s| {
        s.topics.contains_key("x")
            && s.topics.contains_key("y")
            && s.topics["taken"].partitions[0].replicas == [0]
    })
    .await;
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}
