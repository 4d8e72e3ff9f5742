//! Unit and property tests of [`ClusterState::apply`].

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::UNCLEAN_LEADER_ELECTION;
use crate::types::{
    Applied, BrokerId, BrokerInfo, ClusterState, Command, Election, Endpoint, NewTopic,
    PartitionMeta, Placement, Rejection, NO_LEADER,
};

fn info(id: BrokerId, incarnation: u128, rack: Option<&str>) -> BrokerInfo {
    BrokerInfo {
        id,
        host: format!("broker-{id}"),
        port: 9092,
        endpoints: Vec::new(),
        rack: rack.map(str::to_owned),
        controller_addr: format!("broker-{id}:9093"),
        incarnation: Uuid::from_u128(incarnation),
        fenced: false,
    }
}

/// Applies `command` at the next index, as a Raft node would.
fn run(state: &mut ClusterState, command: Command) -> Result<Applied, Rejection> {
    let index = state.applied_index + 1;
    state.apply(index, &command)
}

fn ok(state: &mut ClusterState, command: Command) -> Applied {
    let debug = format!("{command:?}");
    run(state, command).unwrap_or_else(|e| panic!("{debug} refused: {e}"))
}

fn with_brokers(ids: &[BrokerId]) -> ClusterState {
    let mut state = ClusterState::default();
    for &id in ids {
        ok(&mut state, Command::RegisterBroker(info(id, 1, None)));
    }
    state
}

fn create_auto(name: &str, partitions: i32, replication_factor: i16) -> Command {
    Command::CreateTopic {
        name: name.to_owned(),
        id: Uuid::from_u128(u128::from(fnv(name))),
        placement: Placement::Auto {
            partitions,
            replication_factor,
        },
        configs: BTreeMap::new(),
    }
}

fn create_manual(name: &str, lists: &[&[BrokerId]]) -> Command {
    Command::CreateTopic {
        name: name.to_owned(),
        id: Uuid::from_u128(u128::from(fnv(name))),
        placement: Placement::Manual(lists.iter().map(|l| l.to_vec()).collect()),
        configs: BTreeMap::new(),
    }
}

fn fnv(name: &str) -> u64 {
    crate::placement::fnv1a(name.as_bytes())
}

fn fence(id: BrokerId) -> Command {
    Command::FenceBroker {
        id,
        incarnation: Uuid::from_u128(1),
    }
}

fn part(state: &ClusterState, topic: &str, partition: i32) -> PartitionMeta {
    state
        .partition(topic, partition)
        .cloned()
        .unwrap_or_else(|| panic!("no {topic}-{partition}"))
}

fn alter_isr(state: &ClusterState, topic: &str, partition: i32, isr: &[BrokerId]) -> Command {
    let p = part(state, topic, partition);
    Command::AlterIsr {
        topic: topic.to_owned(),
        partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr: isr.to_vec(),
    }
}

/// AlterIsr by the current leader with the current epochs.
fn alter(state: &mut ClusterState, topic: &str, partition: i32, isr: &[BrokerId]) -> Applied {
    let command = alter_isr(state, topic, partition, isr);
    ok(state, command)
}

fn elect(topic: &str, partition: i32, election: Election) -> Command {
    Command::ElectLeader {
        topic: topic.to_owned(),
        partition,
        election,
    }
}

fn reassign(topic: &str, partition: i32, target: Option<&[BrokerId]>) -> Command {
    Command::Reassign {
        topic: topic.to_owned(),
        partition,
        target: target.map(<[BrokerId]>::to_vec),
    }
}

fn set_topic_configs(name: &str, pairs: &[(&str, &str)]) -> Command {
    Command::SetTopicConfigs {
        name: name.to_owned(),
        configs: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Runs `command`, expects `expected`, and checks that nothing but the
/// applied index changed.
fn refused(state: &mut ClusterState, command: Command, expected: Rejection) {
    let before = state.clone();
    let result = run(state, command);
    assert_eq!(result, Err(expected));
    assert_eq!(state.applied_index, before.applied_index + 1);
    let mut unchanged = state.clone();
    unchanged.applied_index = before.applied_index;
    assert_eq!(unchanged, before, "a refused command changed the state");
}

fn leader_counts(state: &ClusterState, topic: &str) -> BTreeMap<BrokerId, usize> {
    let mut counts = BTreeMap::new();
    for p in &state.topics[topic].partitions {
        *counts.entry(p.leader).or_default() += 1;
    }
    counts
}

fn replica_counts(state: &ClusterState, topic: &str) -> BTreeMap<BrokerId, usize> {
    let mut counts = BTreeMap::new();
    for p in &state.topics[topic].partitions {
        for &r in &p.replicas {
            *counts.entry(r).or_default() += 1;
        }
    }
    counts
}

// ---- InitCluster, RegisterBroker, FenceBroker ----

#[test]
fn init_cluster_sets_the_id_once() {
    let mut state = ClusterState::default();
    let init = |id: &str| Command::InitCluster {
        cluster_id: id.to_owned(),
    };
    assert_eq!(ok(&mut state, init("first")), Applied::Done);
    assert_eq!(ok(&mut state, init("second")), Applied::NoChange);
    assert_eq!(state.cluster_id.as_deref(), Some("first"));
    assert_eq!(state.applied_index, 2);
}

#[test]
fn register_broker_upserts_and_unfences() {
    let mut state = with_brokers(&[1]);
    let mut claimed_fenced = info(2, 1, Some("r1"));
    claimed_fenced.fenced = true;
    assert_eq!(
        ok(&mut state, Command::RegisterBroker(claimed_fenced)),
        Applied::Done
    );
    assert!(!state.brokers[&2].fenced);
    assert_eq!(state.brokers[&2].rack.as_deref(), Some("r1"));
    assert_eq!(
        ok(&mut state, Command::RegisterBroker(info(2, 1, Some("r1")))),
        Applied::NoChange
    );

    let mut moved = info(2, 1, Some("r1"));
    moved.host = "elsewhere".to_owned();
    assert_eq!(
        ok(&mut state, Command::RegisterBroker(moved)),
        Applied::Done
    );
    assert_eq!(state.brokers[&2].host, "elsewhere");

    ok(&mut state, fence(2));
    assert!(state.brokers[&2].fenced);
    ok(&mut state, Command::RegisterBroker(info(2, 1, Some("r1"))));
    assert!(!state.brokers[&2].fenced);
}

#[test]
fn register_broker_refuses_a_negative_id() {
    let mut state = ClusterState::default();
    refused(
        &mut state,
        Command::RegisterBroker(info(NO_LEADER, 1, None)),
        Rejection::Invalid("broker id must not be negative, got -1".into()),
    );
}

#[test]
fn register_elects_a_returning_last_isr_member() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    ok(&mut state, fence(2));
    ok(&mut state, fence(1));
    let offline = part(&state, "t", 0);
    assert_eq!((offline.leader, offline.isr.clone()), (NO_LEADER, vec![1]));
    assert_eq!((offline.leader_epoch, offline.partition_epoch), (1, 2));

    // Broker 2 is not in the ISR: it may hold less than was acknowledged.
    ok(&mut state, Command::RegisterBroker(info(2, 2, None)));
    assert_eq!(part(&state, "t", 0).leader, NO_LEADER);

    ok(&mut state, Command::RegisterBroker(info(1, 2, None)));
    let back = part(&state, "t", 0);
    assert_eq!((back.leader, back.isr.clone()), (1, vec![1]));
    assert_eq!((back.leader_epoch, back.partition_epoch), (2, 3));
}

#[test]
fn register_with_a_new_incarnation_while_live_moves_leadership_first() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2], &[2, 1]]));
    ok(&mut state, Command::RegisterBroker(info(1, 7, None)));
    assert_eq!(state.brokers[&1].incarnation, Uuid::from_u128(7));
    assert!(!state.brokers[&1].fenced);
    let p0 = part(&state, "t", 0);
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.leader_epoch),
        (2, vec![2], 1)
    );
    let p1 = part(&state, "t", 1);
    assert_eq!(
        (p1.leader, p1.isr.clone(), p1.leader_epoch),
        (2, vec![2], 0)
    );
}

#[test]
fn fence_ignores_another_incarnation_and_unknown_brokers() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    let before = part(&state, "t", 0);
    let stale = Command::FenceBroker {
        id: 1,
        incarnation: Uuid::from_u128(99),
    };
    assert_eq!(ok(&mut state, stale), Applied::NoChange);
    assert_eq!(ok(&mut state, fence(42)), Applied::NoChange);
    assert!(!state.brokers[&1].fenced);
    assert_eq!(part(&state, "t", 0), before);
    assert_eq!(ok(&mut state, fence(1)), Applied::Done);
    assert_eq!(ok(&mut state, fence(1)), Applied::NoChange);
}

#[test]
fn fencing_a_leader_elects_the_next_live_isr_replica_in_replica_order() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    alter(&mut state, "t", 0, &[1, 3, 2]);
    ok(&mut state, fence(1));
    let p = part(&state, "t", 0);
    assert!(state.brokers[&1].fenced);
    assert_eq!(p.leader, 2, "replica order, not ISR order");
    assert_eq!(p.isr, vec![3, 2]);
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
}

fn controlled_shutdown(id: BrokerId) -> Command {
    Command::ControlledShutdown {
        id,
        incarnation: Uuid::from_u128(1),
    }
}

#[test]
fn controlled_shutdown_moves_leadership_and_isr_membership_off_the_broker_but_keeps_it_live() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(
        &mut state,
        create_manual("t", &[&[1, 2, 3], &[2, 1, 3], &[3, 2, 1]]),
    );
    assert_eq!(ok(&mut state, controlled_shutdown(1)), Applied::Done);
    assert!(state.in_controlled_shutdown(1));
    assert!(
        state.is_live(1) && !state.is_eligible(1),
        "still registered, not eligible"
    );
    let led = part(&state, "t", 0);
    assert_eq!((led.leader, led.isr.clone()), (2, vec![2, 3]));
    assert_eq!((led.leader_epoch, led.partition_epoch), (1, 1));
    for p in [1, 2] {
        let followed = part(&state, "t", p);
        assert!(!followed.isr.contains(&1), "partition {p}: {followed:?}");
        assert_eq!(followed.leader_epoch, 0, "its leader stays");
    }
    assert!(state.partitions_led_by(1).is_empty());
    // A retried request changes nothing more.
    assert_eq!(ok(&mut state, controlled_shutdown(1)), Applied::NoChange);
}

#[test]
fn controlled_shutdown_keeps_a_sole_isr_leader_until_a_follower_catches_up() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    alter(&mut state, "t", 0, &[1]);
    ok(&mut state, controlled_shutdown(1));
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.leader, p.isr.clone()),
        (1, vec![1]),
        "no other in-sync replica to move to"
    );
    // The leader's ISR expansion, once broker 3 has caught up, hands the partition over.
    alter(&mut state, "t", 0, &[1, 3]);
    let p = part(&state, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
    assert_eq!(p.leader_epoch, 1);
}

#[test]
fn a_broker_in_controlled_shutdown_is_never_elected_nor_added_to_an_isr() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    ok(&mut state, controlled_shutdown(1));
    // The leader (2) may not add it back.
    let command = alter_isr(&state, "t", 0, &[1, 2, 3]);
    assert!(matches!(
        run(&mut state, command),
        Err(Rejection::Invalid(_))
    ));
    // Nor does a preferred-leader election or the rebalance pick it.
    assert!(matches!(
        run(&mut state, elect("t", 0, Election::Preferred)),
        Err(Rejection::NoEligibleLeader(_))
    ));
    assert!(state.preferred_imbalance().is_empty());
    // When the other ISR members go, the partition goes offline rather than to broker 1.
    ok(&mut state, fence(2));
    ok(&mut state, fence(3));
    assert_eq!(part(&state, "t", 0).leader, NO_LEADER);
}

#[test]
fn registering_again_or_being_fenced_ends_a_controlled_shutdown() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    ok(&mut state, controlled_shutdown(1));
    ok(&mut state, fence(1));
    assert!(!state.in_controlled_shutdown(1));
    ok(&mut state, Command::RegisterBroker(info(1, 2, None)));
    assert!(state.is_eligible(1));
    // A stale incarnation's request is ignored.
    assert_eq!(ok(&mut state, controlled_shutdown(1)), Applied::NoChange);
    assert!(state.is_eligible(1));
    // The restarted broker rejoins the ISR and the preferred-leader election gives it back its partition.
    alter(&mut state, "t", 0, &[1, 2, 3]);
    ok(&mut state, elect("t", 0, Election::Preferred));
    assert_eq!(part(&state, "t", 0).leader, 1);
}

#[test]
fn fencing_a_follower_only_shrinks_the_isr() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    ok(&mut state, fence(3));
    let p = part(&state, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
}

#[test]
fn fencing_the_last_isr_member_leaves_the_partition_offline() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    alter(&mut state, "t", 0, &[1]);
    ok(&mut state, fence(1));
    let p = part(&state, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
    assert_eq!(state.offline_count(), 1);
}

#[test]
fn fencing_the_last_isr_member_elects_uncleanly_when_the_topic_allows() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    ok(
        &mut state,
        set_topic_configs("t", &[(UNCLEAN_LEADER_ELECTION, "true")]),
    );
    alter(&mut state, "t", 0, &[1]);
    ok(&mut state, fence(2));
    ok(&mut state, fence(1));
    let p = part(&state, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
    assert_eq!(p.leader_epoch, 1);
}

#[test]
fn the_cluster_default_enables_unclean_election_unless_the_topic_overrides() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    ok(&mut state, create_manual("u", &[&[1, 2]]));
    ok(
        &mut state,
        set_topic_configs("u", &[(UNCLEAN_LEADER_ELECTION, "false")]),
    );
    ok(
        &mut state,
        Command::SetBrokerConfigs {
            resource: String::new(),
            configs: BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_owned(), "true".to_owned())]),
        },
    );
    assert!(state.unclean_election_enabled("t"));
    assert!(!state.unclean_election_enabled("u"));
    alter(&mut state, "t", 0, &[1]);
    alter(&mut state, "u", 0, &[1]);
    ok(&mut state, fence(1));
    assert_eq!(part(&state, "t", 0).leader, 2);
    assert_eq!(part(&state, "u", 0).leader, NO_LEADER);
}

// ---- Shared topics ----

/// Every applied command publishes a copy of the state; the copy must share the
/// topics the command left alone (with 100,000 partitions a deep copy per
/// command cost both memory and time), and a change must not reach the copy.
#[test]
fn a_copy_of_the_state_shares_the_topics_a_command_did_not_change() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_auto("a", 4, 2));
    ok(&mut state, create_auto("b", 4, 2));
    let before = state.clone();
    ok(
        &mut state,
        set_topic_configs("a", &[("retention.ms", "1000")]),
    );
    assert!(std::sync::Arc::ptr_eq(
        &before.topics["b"],
        &state.topics["b"]
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &before.topics["a"],
        &state.topics["a"]
    ));
    assert!(
        before.topics["a"].configs.is_empty(),
        "the copy saw the change"
    );
    assert_eq!(state.topics["a"].configs["retention.ms"], "1000");

    // A partition change (broker 2 fenced: dropped from every ISR) copies the
    // topics it touches only.
    ok(&mut state, create_manual("c", &[&[1], &[1]]));
    let before = state.clone();
    ok(
        &mut state,
        Command::FenceBroker {
            id: 2,
            incarnation: Uuid::from_u128(1),
        },
    );
    for name in ["a", "b"] {
        assert!(!std::sync::Arc::ptr_eq(
            &before.topics[name],
            &state.topics[name]
        ));
        assert!(before.topics[name]
            .partitions
            .iter()
            .all(|p| p.isr.len() == 2));
        assert!(state.topics[name].partitions.iter().all(|p| p.isr == [1]));
    }
    assert!(std::sync::Arc::ptr_eq(
        &before.topics["c"],
        &state.topics["c"]
    ));
}

// ---- CreateTopic ----

#[test]
fn create_topic_auto_leads_on_the_first_replica_with_all_in_sync() {
    let mut state = with_brokers(&[1, 2, 3]);
    assert_eq!(ok(&mut state, create_auto("t", 4, 2)), Applied::Done);
    let topic = &state.topics["t"];
    assert_eq!(topic.id, Uuid::from_u128(u128::from(fnv("t"))));
    assert_eq!(topic.partitions.len(), 4);
    for p in &topic.partitions {
        assert_eq!(p.replicas.len(), 2);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        assert!(p.adding.is_empty() && p.removing.is_empty());
    }
}

#[test]
fn create_topic_keeps_its_configs() {
    let mut state = with_brokers(&[1]);
    let configs = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
    ok(
        &mut state,
        Command::CreateTopic {
            name: "t".to_owned(),
            id: Uuid::from_u128(5),
            placement: Placement::Auto {
                partitions: 1,
                replication_factor: 1,
            },
            configs: configs.clone(),
        },
    );
    assert_eq!(state.topics["t"].configs, configs);
}

#[test]
fn create_topic_refusals() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, fence(3));
    ok(&mut state, create_auto("t", 1, 1));
    refused(
        &mut state,
        create_auto("t", 1, 1),
        Rejection::TopicExists("t".into()),
    );
    refused(
        &mut state,
        create_auto("u", 0, 1),
        Rejection::InvalidPartitions("number of partitions must be at least 1, got 0".into()),
    );
    refused(
        &mut state,
        create_auto("u", 1, 0),
        Rejection::InvalidReplicationFactor("replication factor must be at least 1, got 0".into()),
    );
    refused(
        &mut state,
        create_auto("u", 1, 3),
        Rejection::InvalidReplicationFactor(
            "replication factor 3 is larger than the number of available brokers (2)".into(),
        ),
    );
    assert_eq!(
        Rejection::TopicExists("t".into()).to_string(),
        "topic 't' already exists"
    );
}

/// The batch form of a [`Command::CreateTopic`].
fn new_topic(single: Command) -> NewTopic {
    match single {
        Command::CreateTopic {
            name,
            id,
            placement,
            configs,
        } => NewTopic {
            name,
            id,
            placement,
            configs,
        },
        other => panic!("not a CreateTopic: {other:?}"),
    }
}

fn create_batch(singles: Vec<Command>) -> Command {
    Command::CreateTopics {
        topics: singles.into_iter().map(new_topic).collect(),
    }
}

#[test]
fn create_topics_refuses_each_bad_topic_alone_and_creates_the_others() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, fence(3));
    ok(&mut state, create_auto("exists", 1, 1));
    let old_id = state.topics["exists"].id;
    let mut again = create_auto("exists", 2, 1);
    if let Command::CreateTopic { id, .. } = &mut again {
        *id = Uuid::from_u128(99);
    }
    let batch = create_batch(vec![
        create_auto("a", 4, 2),
        again,
        create_auto("rf_too_large", 1, 3),
        create_manual("unknown_broker", &[&[1, 9]]),
        create_manual("b", &[&[2, 1], &[1, 2]]),
    ]);
    let Applied::Topics(outcomes) = ok(&mut state, batch) else {
        panic!("CreateTopics must report one outcome per topic");
    };
    assert_eq!(outcomes.len(), 5);
    assert_eq!(outcomes[0], Ok(()));
    assert_eq!(outcomes[1], Err(Rejection::TopicExists("exists".into())));
    assert_eq!(
        outcomes[2],
        Err(Rejection::InvalidReplicationFactor(
            "replication factor 3 is larger than the number of available brokers (2)".into()
        ))
    );
    assert!(
        matches!(&outcomes[3], Err(Rejection::InvalidReplicaAssignment(m)) if m.contains('9')),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4], Ok(()));
    // The refused ones left no trace; the existing topic is untouched.
    let names: Vec<&str> = state.topics.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "exists"]);
    assert_eq!(state.topics["exists"].id, old_id);
    assert_eq!(state.topics["exists"].partitions.len(), 1);
    assert_eq!(state.topics["a"].partitions.len(), 4);
    assert_eq!(state.topics["b"].partitions[0].replicas, [2, 1]);
    assert_eq!(state.topics["b"].partitions[0].leader, 2);
}

#[test]
fn create_topics_ends_in_the_state_of_the_same_creations_one_by_one() {
    let singles = || {
        vec![
            create_auto("x", 3, 2),
            create_auto("y", 5, 3),
            create_manual("z", &[&[3, 1]]),
            create_auto("x", 1, 1),
        ]
    };
    let mut batched = with_brokers(&[1, 2, 3]);
    let mut one_by_one = batched.clone();
    let Applied::Topics(outcomes) = ok(&mut batched, create_batch(singles())) else {
        panic!("CreateTopics must report one outcome per topic");
    };
    let expected: Vec<Result<(), Rejection>> = singles()
        .into_iter()
        .map(|c| run(&mut one_by_one, c).map(|_| ()))
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(outcomes[3], Err(Rejection::TopicExists("x".into())));
    // Only the log position differs: one entry instead of four.
    one_by_one.applied_index = batched.applied_index;
    assert_eq!(batched, one_by_one);
}

#[test]
fn an_empty_create_topics_changes_nothing() {
    let mut state = with_brokers(&[1]);
    ok(&mut state, create_auto("t", 1, 1));
    let before = state.clone();
    assert_eq!(
        ok(&mut state, Command::CreateTopics { topics: Vec::new() }),
        Applied::Topics(Vec::new())
    );
    assert_eq!(state.applied_index, before.applied_index + 1);
    state.applied_index = before.applied_index;
    assert_eq!(state, before);
}

#[test]
fn create_topic_entries_written_before_the_batch_command_still_decode() {
    // A log entry and a forwarded command as older brokers wrote them.
    let old = r#"{"CreateTopic":{"name":"t","id":"00000000-0000-0000-0000-000000000005","placement":{"Auto":{"partitions":2,"replication_factor":1}},"configs":{"retention.ms":"1000"}}}"#;
    let command: Command = serde_json::from_str(old).unwrap();
    let mut state = with_brokers(&[1]);
    assert_eq!(ok(&mut state, command), Applied::Done);
    assert_eq!(state.topics["t"].partitions.len(), 2);
    // The batch and its outcomes survive the JSON of the log and of forwarding.
    let batch = create_batch(vec![create_auto("u", 1, 1), create_manual("v", &[&[1]])]);
    let json = serde_json::to_string(&batch).unwrap();
    assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), batch);
    let applied = Applied::Topics(vec![Ok(()), Err(Rejection::TopicExists("v".into()))]);
    let json = serde_json::to_string(&applied).unwrap();
    assert_eq!(serde_json::from_str::<Applied>(&json).unwrap(), applied);
}

#[test]
fn three_brokers_six_partitions_rf3_each_broker_leads_two_and_holds_six() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_auto("t", 6, 3));
    assert_eq!(
        leader_counts(&state, "t"),
        BTreeMap::from([(1, 2), (2, 2), (3, 2)])
    );
    assert_eq!(
        replica_counts(&state, "t"),
        BTreeMap::from([(1, 6), (2, 6), (3, 6)])
    );
}

#[test]
fn five_brokers_ten_partitions_rf2_each_broker_leads_two_and_holds_four() {
    let mut state = with_brokers(&[1, 2, 3, 4, 5]);
    ok(&mut state, create_auto("t", 10, 2));
    assert!(
        leader_counts(&state, "t").values().all(|&c| c == 2),
        "{:?}",
        leader_counts(&state, "t")
    );
    assert_eq!(leader_counts(&state, "t").len(), 5);
    assert!(replica_counts(&state, "t").values().all(|&c| c == 4));
}

#[test]
fn placement_skips_fenced_brokers() {
    let mut state = with_brokers(&[1, 2, 3, 4]);
    ok(&mut state, fence(2));
    ok(&mut state, create_auto("t", 6, 3));
    assert!(!replica_counts(&state, "t").contains_key(&2));
    assert_eq!(
        leader_counts(&state, "t"),
        BTreeMap::from([(1, 2), (3, 2), (4, 2)])
    );
}

#[test]
fn three_racks_of_two_brokers_rf3_puts_every_partition_on_three_racks() {
    let mut state = ClusterState::default();
    let racks = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")];
    for (id, rack) in racks {
        ok(&mut state, Command::RegisterBroker(info(id, 1, Some(rack))));
    }
    let rack_of: BTreeMap<BrokerId, &str> = racks.into_iter().collect();
    ok(&mut state, create_auto("t", 6, 3));
    for p in &state.topics["t"].partitions {
        let distinct: BTreeSet<&str> = p.replicas.iter().map(|r| rack_of[r]).collect();
        assert_eq!(distinct.len(), 3, "{:?}", p.replicas);
    }
    assert!(leader_counts(&state, "t").values().all(|&c| c == 1));
}

#[test]
fn manual_placement_leads_on_the_first_live_replica() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, fence(1));
    ok(&mut state, create_manual("t", &[&[1, 2], &[3, 1]]));
    let p0 = part(&state, "t", 0);
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.replicas.clone()),
        (2, vec![2], vec![1, 2])
    );
    let p1 = part(&state, "t", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (3, vec![3]));
}

#[test]
fn manual_placement_refusals() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, fence(3));
    let bad = |msg: &str| Rejection::InvalidReplicaAssignment(msg.to_owned());
    refused(
        &mut state,
        create_manual("t", &[&[1], &[]]),
        bad("partition 1 has an empty replica list"),
    );
    refused(
        &mut state,
        create_manual("t", &[&[1, 2], &[2]]),
        bad("partition 1 has 1 replicas but the replication factor is 2"),
    );
    refused(
        &mut state,
        create_manual("t", &[&[1, 2, 1]]),
        bad("partition 0 lists broker 1 more than once"),
    );
    refused(
        &mut state,
        create_manual("t", &[&[1, 9]]),
        bad("partition 0 names broker 9, which is not registered"),
    );
    refused(
        &mut state,
        create_manual("t", &[&[1], &[3]]),
        bad("every replica of partition 1 (3) is fenced"),
    );
    refused(
        &mut state,
        create_manual("t", &[]),
        Rejection::InvalidPartitions("number of partitions must be at least 1, got 0".into()),
    );
}

// ---- DeleteTopic, CreatePartitions, configs ----

#[test]
fn delete_topic_removes_it_and_refuses_unknown() {
    let mut state = with_brokers(&[1]);
    ok(&mut state, create_auto("t", 1, 1));
    let delete = || Command::DeleteTopic { name: "t".into() };
    assert_eq!(ok(&mut state, delete()), Applied::Done);
    assert!(state.topics.is_empty());
    refused(&mut state, delete(), Rejection::UnknownTopic("t".into()));
    assert_eq!(
        Rejection::UnknownTopic("t".into()).to_string(),
        "unknown topic or partition: t"
    );
}

#[test]
fn create_partitions_adds_partitions_with_the_topic_replication_factor() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_auto("t", 3, 2));
    let before: Vec<PartitionMeta> = state.topics["t"].partitions.clone();
    let add = Command::CreatePartitions {
        name: "t".into(),
        total: 6,
        assignment: None,
    };
    assert_eq!(ok(&mut state, add), Applied::Done);
    let topic = &state.topics["t"];
    assert_eq!(topic.partitions.len(), 6);
    assert_eq!(topic.partitions[..3], before[..]);
    for p in &topic.partitions[3..] {
        assert_eq!(p.replicas.len(), 2);
        assert_eq!(
            (p.leader, p.isr.clone()),
            (p.replicas[0], p.replicas.clone())
        );
    }
    assert_eq!(
        leader_counts(&state, "t")
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
}

#[test]
fn create_partitions_with_explicit_assignment() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    let add = |lists: Vec<Vec<BrokerId>>| Command::CreatePartitions {
        name: "t".into(),
        total: 3,
        assignment: Some(lists),
    };
    let bad = |msg: &str| Rejection::InvalidReplicaAssignment(msg.to_owned());
    refused(
        &mut state,
        add(vec![vec![3, 1]]),
        bad("2 new partitions need 2 replica assignments, got 1"),
    );
    refused(
        &mut state,
        add(vec![vec![3, 1], vec![3]]),
        bad("partition 2 has 1 replicas but the replication factor is 2"),
    );
    refused(
        &mut state,
        add(vec![vec![3, 1], vec![3, 3]]),
        bad("partition 2 lists broker 3 more than once"),
    );
    ok(&mut state, add(vec![vec![3, 1], vec![2, 3]]));
    assert_eq!(part(&state, "t", 1).replicas, vec![3, 1]);
    assert_eq!(part(&state, "t", 2).leader, 2);
}

#[test]
fn create_partitions_refusals() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_auto("t", 3, 2));
    let add = |name: &str, total| Command::CreatePartitions {
        name: name.into(),
        total,
        assignment: None,
    };
    refused(&mut state, add("u", 4), Rejection::UnknownTopic("u".into()));
    refused(
        &mut state,
        add("t", 2),
        Rejection::InvalidPartitions("topic 't' has 3 partitions; cannot shrink to 2".into()),
    );
    refused(
        &mut state,
        add("t", 3),
        Rejection::InvalidPartitions(
            "topic 't' has 3 partitions; cannot keep 3, the count must increase".into(),
        ),
    );
    ok(&mut state, fence(2));
    refused(
        &mut state,
        add("t", 4),
        Rejection::InvalidReplicationFactor(
            "replication factor 2 is larger than the number of available brokers (1)".into(),
        ),
    );
}

#[test]
fn set_topic_configs_replaces_the_map() {
    let mut state = with_brokers(&[1]);
    ok(&mut state, create_auto("t", 1, 1));
    ok(
        &mut state,
        set_topic_configs("t", &[("a", "1"), ("b", "2")]),
    );
    assert_eq!(
        ok(&mut state, set_topic_configs("t", &[("b", "3")])),
        Applied::Done
    );
    assert_eq!(
        state.topics["t"].configs,
        BTreeMap::from([("b".to_owned(), "3".to_owned())])
    );
    assert_eq!(
        ok(&mut state, set_topic_configs("t", &[("b", "3")])),
        Applied::NoChange
    );
    refused(
        &mut state,
        set_topic_configs("u", &[]),
        Rejection::UnknownTopic("u".into()),
    );
}

#[test]
fn set_broker_configs_replaces_the_map_and_refuses_odd_resources() {
    let mut state = ClusterState::default();
    let set = |resource: &str, pairs: &[(&str, &str)]| Command::SetBrokerConfigs {
        resource: resource.into(),
        configs: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    ok(&mut state, set("1", &[("a", "1"), ("b", "2")]));
    ok(&mut state, set("1", &[("c", "3")]));
    ok(&mut state, set("", &[("d", "4")]));
    assert_eq!(
        state.broker_configs["1"],
        BTreeMap::from([("c".to_owned(), "3".to_owned())])
    );
    assert_eq!(
        state.broker_configs[""],
        BTreeMap::from([("d".to_owned(), "4".to_owned())])
    );
    assert_eq!(ok(&mut state, set("1", &[])), Applied::Done);
    assert!(!state.broker_configs.contains_key("1"));
    assert_eq!(ok(&mut state, set("1", &[])), Applied::NoChange);
    refused(
        &mut state,
        set("broker-1", &[("a", "1")]),
        Rejection::Invalid(
            "broker config resource must be a broker id or empty, got 'broker-1'".into(),
        ),
    );
}

// ---- AlterIsr ----

#[test]
fn alter_isr_shrinks_and_expands_bumping_the_partition_epoch_only() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    assert_eq!(alter(&mut state, "t", 0, &[1, 2]), Applied::Done);
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.isr.clone(), p.leader, p.leader_epoch, p.partition_epoch),
        (vec![1, 2], 1, 0, 1)
    );
    assert!(p.is_under_replicated());
    assert_eq!(state.under_replicated_count(), 1);
    alter(&mut state, "t", 0, &[1, 2, 3]);
    let p = part(&state, "t", 0);
    assert_eq!((p.isr.clone(), p.partition_epoch), (vec![1, 2, 3], 2));
    assert!(!p.is_under_replicated());
    assert_eq!(alter(&mut state, "t", 0, &[1, 2, 3]), Applied::NoChange);
    assert_eq!(part(&state, "t", 0).partition_epoch, 2);
}

#[test]
fn alter_isr_refusals() {
    let mut state = with_brokers(&[1, 2, 3, 4]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    alter(&mut state, "t", 0, &[1, 2]);
    ok(&mut state, fence(3));
    let good = alter_isr(&state, "t", 0, &[1, 2]);
    let with = |f: &dyn Fn(&mut Command)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    refused(
        &mut state,
        with(&|c| {
            if let Command::AlterIsr { leader, .. } = c {
                *leader = 2;
            }
        }),
        Rejection::NotLeader("broker 2 is not the leader of t-0 (the leader is 1)".into()),
    );
    refused(
        &mut state,
        with(&|c| {
            if let Command::AlterIsr { leader_epoch, .. } = c {
                *leader_epoch = -1;
            }
        }),
        Rejection::StaleEpoch("t-0 leader epoch -1 is not the current 0".into()),
    );
    refused(
        &mut state,
        with(&|c| {
            if let Command::AlterIsr {
                partition_epoch, ..
            } = c
            {
                *partition_epoch = 0;
            }
        }),
        Rejection::StaleEpoch("t-0 partition epoch 0 is not the current 1".into()),
    );
    let isr = |members: Vec<BrokerId>| {
        with(&|c| {
            if let Command::AlterIsr { isr, .. } = c {
                isr.clone_from(&members);
            }
        })
    };
    refused(
        &mut state,
        isr(vec![2]),
        Rejection::Invalid("new ISR [2] of t-0 does not contain its leader 1".into()),
    );
    refused(
        &mut state,
        isr(vec![1, 4]),
        Rejection::Invalid("new ISR of t-0 names broker 4, which is not a replica".into()),
    );
    refused(
        &mut state,
        isr(vec![1, 3]),
        Rejection::Invalid("new ISR of t-0 names broker 3, which is fenced".into()),
    );
    refused(
        &mut state,
        isr(vec![1, 2, 1]),
        Rejection::Invalid("new ISR of t-0 lists broker 1 more than once".into()),
    );
    let mut unknown = good.clone();
    if let Command::AlterIsr { partition, .. } = &mut unknown {
        *partition = 5;
    }
    refused(&mut state, unknown, Rejection::UnknownTopic("t-5".into()));
    assert_eq!(
        Rejection::StaleEpoch("x".into()).to_string(),
        "stale partition state: x"
    );
}

#[test]
fn alter_isr_refuses_an_offline_partition() {
    let mut state = with_brokers(&[1]);
    ok(&mut state, create_manual("t", &[&[1]]));
    ok(&mut state, fence(1));
    let command = alter_isr(&state, "t", 0, &[1]);
    refused(
        &mut state,
        command,
        Rejection::NotLeader("broker -1 is not the leader of t-0 (the leader is -1)".into()),
    );
}

// ---- ElectLeader ----

#[test]
fn preferred_election() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    assert_eq!(
        ok(&mut state, elect("t", 0, Election::Preferred)),
        Applied::NoChange
    );

    ok(&mut state, fence(1));
    assert_eq!(part(&state, "t", 0).leader, 2);
    refused(
        &mut state,
        elect("t", 0, Election::Preferred),
        Rejection::NoEligibleLeader("preferred replica 1 of t-0 is not in the ISR [2, 3]".into()),
    );
    ok(&mut state, Command::RegisterBroker(info(1, 2, None)));
    assert_eq!(state.preferred_imbalance(), Vec::<(String, i32)>::new());
    alter(&mut state, "t", 0, &[2, 3, 1]);
    assert_eq!(state.preferred_imbalance(), vec![("t".to_owned(), 0)]);
    assert_eq!(
        state.preferred_leader_imbalance_by_broker(),
        BTreeMap::from([(1, (1, 1))])
    );
    assert_eq!(
        ok(&mut state, elect("t", 0, Election::Preferred)),
        Applied::Done
    );
    let p = part(&state, "t", 0);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 2, 3));
    assert!(state.preferred_imbalance().is_empty());
    assert_eq!(
        state.preferred_leader_imbalance_by_broker(),
        BTreeMap::from([(1, (0, 1))])
    );
    refused(
        &mut state,
        elect("t", 1, Election::Preferred),
        Rejection::UnknownTopic("t-1".into()),
    );
}

#[test]
fn preferred_election_refuses_a_fenced_preferred_replica_in_the_isr() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    alter(&mut state, "t", 0, &[1]);
    ok(&mut state, fence(1));
    // Broker 1 stays in the ISR as its last member but cannot lead while fenced.
    refused(
        &mut state,
        elect("t", 0, Election::Preferred),
        Rejection::NoEligibleLeader("preferred replica 1 of t-0 is fenced".into()),
    );
}

#[test]
fn unclean_election() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    assert_eq!(
        ok(&mut state, elect("t", 0, Election::Unclean)),
        Applied::NoChange
    );
    alter(&mut state, "t", 0, &[1]);
    ok(&mut state, fence(1));
    assert_eq!(part(&state, "t", 0).leader, NO_LEADER);
    assert_eq!(
        ok(&mut state, elect("t", 0, Election::Unclean)),
        Applied::Done
    );
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch),
        (2, vec![2], 2, 3)
    );

    ok(&mut state, fence(2));
    ok(&mut state, fence(3));
    refused(
        &mut state,
        elect("t", 0, Election::Unclean),
        Rejection::NoEligibleLeader("no live replica of t-0 among [1, 2, 3]".into()),
    );
}

// ---- Reassign ----

#[test]
fn reassignment_adds_then_completes_when_the_new_replicas_are_in_sync() {
    let mut state = with_brokers(&[1, 2, 3, 4]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    assert_eq!(
        ok(&mut state, reassign("t", 0, Some(&[4, 2, 3]))),
        Applied::Done
    );
    let p = part(&state, "t", 0);
    assert_eq!(p.replicas, vec![4, 2, 3, 1]);
    assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![1]));
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
    assert!(p.is_reassigning());
    assert_eq!(p.target_replicas(), vec![4, 2, 3]);
    assert_eq!(p.original_replicas(), vec![2, 3, 1]);
    assert!(
        !p.is_under_replicated(),
        "a replica still being added is not missing"
    );
    assert_eq!(state.replication_factor("t"), Some(3));

    alter(&mut state, "t", 0, &[1, 2, 3, 4]);
    let p = part(&state, "t", 0);
    assert_eq!(p.replicas, vec![4, 2, 3]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert!(!p.is_reassigning());
    assert_eq!(p.leader, 4);
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
}

#[test]
fn reassignment_keeping_the_leader_completes_without_a_leader_change() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1]]));
    ok(&mut state, reassign("t", 0, Some(&[1, 2, 3])));
    assert_eq!(state.replication_factor("t"), Some(3));
    alter(&mut state, "t", 0, &[1, 2]);
    assert!(part(&state, "t", 0).is_reassigning());
    alter(&mut state, "t", 0, &[1, 2, 3]);
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![1, 2, 3], vec![1, 2, 3], 1)
    );
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 3));
    assert!(!p.is_reassigning());
}

#[test]
fn reassignment_shrinking_in_sync_replicas_completes_at_once() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1, 2, 3]]));
    ok(&mut state, reassign("t", 0, Some(&[2, 3])));
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3], vec![2, 3], 2)
    );
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    assert!(!p.is_reassigning());
    assert_eq!(
        ok(&mut state, reassign("t", 0, Some(&[2, 3]))),
        Applied::NoChange
    );
}

#[test]
fn reassignment_refusals() {
    let mut state = with_brokers(&[1, 2]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    let bad = |msg: &str| Rejection::InvalidReplicaAssignment(msg.to_owned());
    refused(
        &mut state,
        reassign("t", 0, Some(&[])),
        bad("t-0 has an empty replica list"),
    );
    refused(
        &mut state,
        reassign("t", 0, Some(&[1, 1])),
        bad("t-0 lists broker 1 more than once"),
    );
    refused(
        &mut state,
        reassign("t", 0, Some(&[1, 7])),
        bad("t-0 names broker 7, which is not registered"),
    );
    refused(
        &mut state,
        reassign("t", 3, Some(&[1])),
        Rejection::UnknownTopic("t-3".into()),
    );
    refused(
        &mut state,
        reassign("u", 0, Some(&[1])),
        Rejection::UnknownTopic("u-0".into()),
    );
    refused(
        &mut state,
        reassign("t", 0, None),
        Rejection::NoReassignment("t-0".into()),
    );
    assert_eq!(
        Rejection::NoReassignment("t-0".into()).to_string(),
        "no reassignment in progress for t-0"
    );
}

#[test]
fn cancelling_a_reassignment_reverts_to_the_original_replicas() {
    let mut state = with_brokers(&[1, 2, 3, 4]);
    ok(&mut state, create_manual("t", &[&[1, 2]]));
    ok(&mut state, reassign("t", 0, Some(&[3, 4])));
    alter(&mut state, "t", 0, &[1, 2, 3]);
    assert_eq!(ok(&mut state, reassign("t", 0, None)), Applied::Done);
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![1, 2], vec![1, 2], 1)
    );
    assert!(!p.is_reassigning());
    assert_eq!((p.leader_epoch, p.partition_epoch), (0, 3));
}

#[test]
fn cancelling_when_only_added_replicas_are_in_sync_needs_unclean_election() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("t", &[&[1]]));
    ok(&mut state, reassign("t", 0, Some(&[2, 3])));
    alter(&mut state, "t", 0, &[1, 2]);
    ok(&mut state, fence(1));
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3, 1], vec![2], 2)
    );
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (vec![2, 3], vec![1])
    );
    refused(
        &mut state,
        reassign("t", 0, None),
        Rejection::InvalidReplicaAssignment(
            "cancelling the reassignment of t-0 needs an unclean leader election: \
             no original replica is in the ISR"
                .into(),
        ),
    );
    ok(
        &mut state,
        set_topic_configs("t", &[(UNCLEAN_LEADER_ELECTION, "true")]),
    );
    assert_eq!(ok(&mut state, reassign("t", 0, None)), Applied::Done);
    let p = part(&state, "t", 0);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![1], vec![1], NO_LEADER)
    );
    assert!(!p.is_reassigning());
    ok(&mut state, Command::RegisterBroker(info(1, 2, None)));
    assert_eq!(part(&state, "t", 0).leader, 1);
}

// ---- producer ids, queries, determinism ----

#[test]
fn producer_id_blocks_are_consecutive() {
    let mut state = ClusterState::default();
    assert_eq!(
        ok(&mut state, Command::AllocateProducerIds { count: 1000 }),
        Applied::ProducerIds(0)
    );
    assert_eq!(
        ok(&mut state, Command::AllocateProducerIds { count: 10 }),
        Applied::ProducerIds(1000)
    );
    assert_eq!(state.next_producer_id, 1010);
    refused(
        &mut state,
        Command::AllocateProducerIds { count: 0 },
        Rejection::Invalid("producer id block size must be positive, got 0".into()),
    );
    state.next_producer_id = i64::MAX - 1;
    refused(
        &mut state,
        Command::AllocateProducerIds { count: 2 },
        Rejection::Invalid(format!(
            "producer ids exhausted: {} + 2 overflows",
            i64::MAX - 1
        )),
    );
}

#[test]
fn queries_for_brokers() {
    let mut state = with_brokers(&[1, 2, 3]);
    ok(&mut state, create_manual("a", &[&[1, 2], &[2, 3]]));
    ok(&mut state, create_manual("b", &[&[1, 3]]));
    assert_eq!(
        state.partitions_led_by(1),
        vec![("a".to_owned(), 0), ("b".to_owned(), 0)]
    );
    assert_eq!(state.partitions_led_by(3), vec![]);
    assert_eq!(
        state.partitions_replicated_by(3),
        vec![("a".to_owned(), 1), ("b".to_owned(), 0)]
    );
    assert_eq!(state.replication_factor("a"), Some(2));
    assert_eq!(state.replication_factor("zz"), None);
    assert!(state.is_live(1));
    assert!(!state.is_live(9));
    assert!(!part(&state, "a", 0).is_offline());
    assert!(state.offline_partitions().is_empty());
    assert!(state.under_replicated_partitions().is_empty());

    alter(&mut state, "a", 1, &[2]);
    ok(&mut state, fence(1));
    ok(&mut state, reassign("b", 0, Some(&[2, 3])));
    assert_eq!(state.offline_partitions(), vec![]);
    assert_eq!(
        state.under_replicated_partitions(),
        vec![
            ("a".to_owned(), 0),
            ("a".to_owned(), 1),
            ("b".to_owned(), 0)
        ]
    );
    assert_eq!(state.reassigning_partitions(), vec![("b".to_owned(), 0)]);
    assert_eq!(state.partitions_led_by(3), vec![("b".to_owned(), 0)]);
    ok(&mut state, fence(2));
    assert_eq!(
        state.offline_partitions(),
        vec![("a".to_owned(), 0), ("a".to_owned(), 1)]
    );
}

/// A command sequence touching every kind of transition.
fn scenario() -> Vec<Command> {
    let mut cmds = vec![Command::InitCluster {
        cluster_id: "c".into(),
    }];
    for id in 1..=4 {
        cmds.push(Command::RegisterBroker(info(
            id,
            1,
            Some(if id % 2 == 0 { "x" } else { "y" }),
        )));
    }
    cmds.push(create_auto("orders", 8, 3));
    cmds.push(create_auto("events", 5, 2));
    cmds.push(fence(2));
    cmds.push(Command::CreatePartitions {
        name: "events".into(),
        total: 7,
        assignment: None,
    });
    cmds.push(Command::RegisterBroker(info(2, 2, Some("x"))));
    cmds.push(reassign("orders", 0, Some(&[4, 3, 2])));
    cmds.push(elect("orders", 1, Election::Preferred));
    cmds.push(Command::AllocateProducerIds { count: 5 });
    cmds.push(fence(1));
    cmds
}

#[test]
fn the_same_commands_give_the_same_state_on_every_node() {
    let mut a = ClusterState::default();
    let mut b = ClusterState::default();
    let mut results_a = Vec::new();
    let mut results_b = Vec::new();
    for (i, cmd) in scenario().iter().enumerate() {
        results_a.push(a.apply(i as u64 + 1, cmd));
        results_b.push(b.apply(i as u64 + 1, cmd));
    }
    assert_eq!(results_a, results_b);
    assert_eq!(a, b);
    assert_eq!(a.applied_index, scenario().len() as u64);
    // A snapshot restored on a third node continues identically.
    let json = serde_json::to_string(&a).expect("serialize");
    let mut c: ClusterState = serde_json::from_str(&json).expect("deserialize");
    let next = create_auto("late", 3, 2);
    a.apply(100, &next).expect("create");
    c.apply(100, &next).expect("create");
    assert_eq!(a, c);
}

// ---- property test ----

#[derive(Debug, Clone)]
enum Op {
    Register {
        id: BrokerId,
        incarnation: u128,
    },
    Fence {
        id: BrokerId,
        current: bool,
    },
    Create {
        topic: usize,
        partitions: i32,
        rf: i16,
    },
    Delete {
        topic: usize,
    },
    AlterIsr {
        topic: usize,
        partition: i32,
        keep: u8,
        correct: bool,
    },
    Reassign {
        topic: usize,
        partition: i32,
        target: Vec<BrokerId>,
    },
    Cancel {
        topic: usize,
        partition: i32,
    },
    Elect {
        topic: usize,
        partition: i32,
        preferred: bool,
    },
    Unclean {
        topic: usize,
        on: bool,
    },
    AddPartitions {
        topic: usize,
        more: i32,
    },
    CreateBatch {
        topics: Vec<(usize, i32, i16)>,
    },
}

const TOPICS: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    let broker = 0..5i32;
    let topic = 0..TOPICS.len();
    let partition = 0..8i32;
    prop_oneof![
        3 => (broker.clone(), 0..3u128).prop_map(|(id, incarnation)| Op::Register { id, incarnation }),
        3 => (broker.clone(), any::<bool>()).prop_map(|(id, current)| Op::Fence { id, current }),
        2 => (topic.clone(), 1..5i32, 1..4i16)
            .prop_map(|(topic, partitions, rf)| Op::Create { topic, partitions, rf }),
        1 => topic.clone().prop_map(|topic| Op::Delete { topic }),
        6 => (topic.clone(), partition.clone(), any::<u8>(), any::<bool>())
            .prop_map(|(topic, partition, keep, correct)| Op::AlterIsr { topic, partition, keep, correct }),
        2 => (topic.clone(), partition.clone(), proptest::sample::subsequence((0..5).collect::<Vec<_>>(), 0..4).prop_shuffle())
            .prop_map(|(topic, partition, target)| Op::Reassign { topic, partition, target }),
        1 => (topic.clone(), partition.clone()).prop_map(|(topic, partition)| Op::Cancel { topic, partition }),
        2 => (topic.clone(), partition.clone(), any::<bool>())
            .prop_map(|(topic, partition, preferred)| Op::Elect { topic, partition, preferred }),
        1 => (topic.clone(), any::<bool>()).prop_map(|(topic, on)| Op::Unclean { topic, on }),
        1 => (topic.clone(), 1..3i32).prop_map(|(topic, more)| Op::AddPartitions { topic, more }),
        1 => proptest::collection::vec((topic, 1..5i32, 1..4i16), 0..4)
            .prop_map(|topics| Op::CreateBatch { topics }),
    ]
}

/// Turns a generated op into a command against the current state, so that
/// most commands are plausible (correct epochs, current incarnations).
fn command_for(state: &ClusterState, op: &Op, step: usize) -> Command {
    // Partition picks wrap around the topic's partition count, so most name one that exists.
    let pick = |topic: usize, partition: i32| match state.topics.get(TOPICS[topic]) {
        Some(t) if !t.partitions.is_empty() => partition % t.partitions.len() as i32,
        _ => partition,
    };
    match op {
        Op::Register { id, incarnation } => Command::RegisterBroker(info(*id, *incarnation, None)),
        Op::Fence { id, current } => Command::FenceBroker {
            id: *id,
            incarnation: match state.brokers.get(id) {
                Some(b) if *current => b.incarnation,
                _ => Uuid::from_u128(77),
            },
        },
        Op::Create {
            topic,
            partitions,
            rf,
        } => Command::CreateTopic {
            name: TOPICS[*topic].into(),
            id: Uuid::from_u128(step as u128 + 1),
            placement: Placement::Auto {
                partitions: *partitions,
                replication_factor: *rf,
            },
            configs: BTreeMap::new(),
        },
        Op::Delete { topic } => Command::DeleteTopic {
            name: TOPICS[*topic].into(),
        },
        Op::AlterIsr {
            topic,
            partition,
            keep,
            correct,
        } => {
            let name = TOPICS[*topic];
            let partition = &pick(*topic, *partition);
            match state.partition(name, *partition) {
                Some(p) => {
                    let mut isr: Vec<BrokerId> = p
                        .replicas
                        .iter()
                        .enumerate()
                        .filter(|(i, &r)| r == p.leader || keep & (1 << i) != 0)
                        .map(|(_, &r)| r)
                        .collect();
                    if *correct {
                        isr.retain(|&r| state.is_live(r));
                    }
                    Command::AlterIsr {
                        topic: name.into(),
                        partition: *partition,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch - i32::from(!*correct && keep % 2 == 0),
                        isr,
                    }
                }
                None => Command::AlterIsr {
                    topic: name.into(),
                    partition: *partition,
                    leader: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    isr: vec![0],
                },
            }
        }
        Op::Reassign {
            topic,
            partition,
            target,
        } => reassign(TOPICS[*topic], pick(*topic, *partition), Some(target)),
        Op::Cancel { topic, partition } => reassign(TOPICS[*topic], pick(*topic, *partition), None),
        Op::Elect {
            topic,
            partition,
            preferred,
        } => elect(
            TOPICS[*topic],
            pick(*topic, *partition),
            if *preferred {
                Election::Preferred
            } else {
                Election::Unclean
            },
        ),
        Op::Unclean { topic, on } => set_topic_configs(
            TOPICS[*topic],
            &[(UNCLEAN_LEADER_ELECTION, if *on { "true" } else { "false" })],
        ),
        Op::AddPartitions { topic, more } => {
            let name = TOPICS[*topic];
            let current = state
                .topics
                .get(name)
                .map_or(0, |t| t.partitions.len() as i32);
            Command::CreatePartitions {
                name: name.into(),
                total: current + more,
                assignment: None,
            }
        }
        Op::CreateBatch { topics } => Command::CreateTopics {
            topics: topics
                .iter()
                .enumerate()
                .map(|(i, &(topic, partitions, rf))| NewTopic {
                    name: TOPICS[topic].into(),
                    id: Uuid::from_u128(((step as u128 + 1) << 8) + i as u128),
                    placement: Placement::Auto {
                        partitions,
                        replication_factor: rf,
                    },
                    configs: BTreeMap::new(),
                })
                .collect(),
        },
    }
}

fn check_invariants(before: &ClusterState, after: &ClusterState) -> Result<(), TestCaseError> {
    for (name, topic) in &after.topics {
        for (index, p) in topic.partitions.iter().enumerate() {
            let tp = format!("{name}-{index}: {p:?}");
            let distinct = |v: &[BrokerId]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
            prop_assert!(!p.replicas.is_empty(), "{}", tp);
            prop_assert!(distinct(&p.replicas) && distinct(&p.isr), "{}", tp);
            prop_assert!(!p.isr.is_empty(), "isr empty {}", tp);
            prop_assert!(
                p.isr.iter().all(|r| p.replicas.contains(r)),
                "isr ⊄ replicas {}",
                tp
            );
            prop_assert!(p.adding.iter().all(|r| p.replicas.contains(r)), "{}", tp);
            prop_assert!(p.removing.iter().all(|r| p.replicas.contains(r)), "{}", tp);
            prop_assert!(p.adding.iter().all(|r| !p.removing.contains(r)), "{}", tp);
            prop_assert!(p.removing.len() < p.replicas.len(), "{}", tp);
            if p.leader == NO_LEADER {
                prop_assert!(
                    p.isr.iter().all(|&r| !after.is_live(r)),
                    "offline although an ISR member is live {}",
                    tp
                );
            } else {
                prop_assert!(p.isr.contains(&p.leader), "leader ∉ isr {}", tp);
                prop_assert!(after.is_live(p.leader), "fenced leader {}", tp);
            }
            if let Some(old) = before
                .topics
                .get(name)
                .filter(|t| t.id == topic.id)
                .and_then(|t| t.partitions.get(index))
            {
                prop_assert!(
                    old.leader_epoch <= p.leader_epoch,
                    "leader epoch went back {}",
                    tp
                );
                prop_assert!(
                    old.partition_epoch <= p.partition_epoch,
                    "partition epoch went back {}",
                    tp
                );
                if old.leader != p.leader {
                    prop_assert!(
                        old.leader_epoch < p.leader_epoch,
                        "new leader, same epoch {}",
                        tp
                    );
                }
                if old != p {
                    prop_assert!(
                        old.partition_epoch < p.partition_epoch,
                        "changed, same epoch {}",
                        tp
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_command_sequences_keep_the_partition_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        // Start from a populated cluster so that most commands hit something.
        let mut state = with_brokers(&[0, 1, 2, 3, 4]);
        ok(&mut state, create_auto("a", 4, 3));
        ok(&mut state, create_auto("b", 3, 2));
        let mut twin = state.clone();
        let base = state.applied_index;
        for (step, op) in ops.iter().enumerate() {
            let step = step + base as usize;
            let command = command_for(&state, op, step);
            let before = state.clone();
            let result = state.apply(step as u64 + 1, &command);
            prop_assert_eq!(&twin.apply(step as u64 + 1, &command), &result);
            prop_assert_eq!(&twin, &state);
            let all_refused = match &result {
                Ok(Applied::Topics(outcomes)) => outcomes.iter().all(Result::is_err),
                other => other.is_err(),
            };
            if all_refused {
                let mut unchanged = state.clone();
                unchanged.applied_index = before.applied_index;
                prop_assert_eq!(&unchanged, &before, "refused {:?} changed the state", command);
            }
            if result == Ok(Applied::NoChange) {
                let mut unchanged = state.clone();
                unchanged.applied_index = before.applied_index;
                prop_assert_eq!(&unchanged, &before, "NoChange {:?} changed the state", command);
            }
            check_invariants(&before, &state)?;
        }
        let json = serde_json::to_string(&state).expect("serialize");
        let back: ClusterState = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(back, state);
    }
}

fn quotas(entity: &crate::types::QuotaEntity, set: &[(&str, f64)], remove: &[&str]) -> Command {
    Command::AlterClientQuotas {
        entity: entity.clone(),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), crate::types::QuotaValue(*v)))
            .collect(),
        remove: remove.iter().map(|k| k.to_string()).collect(),
    }
}

#[test]
fn client_quotas_are_set_replaced_removed_and_validated() {
    use crate::types::{QuotaEntity, QuotaValue};
    let mut state = ClusterState::default();
    let client = QuotaEntity {
        user: None,
        client_id: Some(Some("app".into())),
    };
    let default_user = QuotaEntity {
        user: Some(None),
        client_id: None,
    };
    assert_eq!(
        ok(
            &mut state,
            quotas(&client, &[("producer_byte_rate", 1024.0)], &[])
        ),
        Applied::Done
    );
    ok(
        &mut state,
        quotas(&default_user, &[("consumer_byte_rate", 2048.5)], &[]),
    );
    assert_eq!(
        state.client_quotas[&client]["producer_byte_rate"],
        QuotaValue(1024.0)
    );
    // The same again changes nothing.
    assert_eq!(
        ok(
            &mut state,
            quotas(&client, &[("producer_byte_rate", 1024.0)], &[])
        ),
        Applied::NoChange
    );
    // Set one key and remove another in one command.
    ok(
        &mut state,
        quotas(
            &client,
            &[("consumer_byte_rate", 10.0)],
            &["producer_byte_rate"],
        ),
    );
    assert_eq!(
        state.client_quotas[&client].keys().collect::<Vec<_>>(),
        ["consumer_byte_rate"]
    );
    // Removing the last key forgets the entity.
    ok(&mut state, quotas(&client, &[], &["consumer_byte_rate"]));
    assert!(!state.client_quotas.contains_key(&client));
    assert_eq!(state.client_quotas.len(), 1);

    // Refused, nothing changed.
    let before = state.client_quotas.clone();
    for (command, message) in [
        (
            quotas(&client, &[("bytes_per_fortnight", 1.0)], &[]),
            "unknown quota key 'bytes_per_fortnight'",
        ),
        (
            quotas(&client, &[("producer_byte_rate", 0.0)], &[]),
            "quota producer_byte_rate must be a positive number, got 0",
        ),
        (
            quotas(&client, &[("producer_byte_rate", f64::NAN)], &[]),
            "must be a positive number",
        ),
        (
            quotas(
                &QuotaEntity {
                    user: None,
                    client_id: None,
                },
                &[("producer_byte_rate", 1.0)],
                &[],
            ),
            "needs a user, a client id or both",
        ),
    ] {
        match run(&mut state, command) {
            Err(Rejection::Invalid(m)) => assert!(m.contains(message), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(state.client_quotas, before);
    }
}

#[test]
fn client_metrics_subscriptions_are_replaced_and_removed() {
    let mut state = ClusterState::default();
    let set = |configs: &[(&str, &str)]| Command::SetClientMetrics {
        name: "producers".into(),
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert_eq!(
        ok(
            &mut state,
            set(&[("metrics", "org.apache.kafka.producer.")])
        ),
        Applied::Done
    );
    assert_eq!(
        ok(
            &mut state,
            set(&[("metrics", "org.apache.kafka.producer.")])
        ),
        Applied::NoChange
    );
    assert_eq!(
        ok(&mut state, set(&[("interval.ms", "1000")])),
        Applied::Done
    );
    assert_eq!(
        state.client_metrics["producers"].len(),
        1,
        "replaced, not merged"
    );
    assert_eq!(ok(&mut state, set(&[])), Applied::Done);
    assert!(state.client_metrics.is_empty());
    assert_eq!(ok(&mut state, set(&[])), Applied::NoChange);
    let unnamed = Command::SetClientMetrics {
        name: String::new(),
        configs: [("metrics".to_string(), "*".to_string())].into(),
    };
    refused(
        &mut state,
        unnamed,
        Rejection::Invalid("a client metrics subscription needs a name".into()),
    );
}

#[test]
fn scram_credentials_are_set_replaced_deleted_and_validated() {
    use crate::types::{ScramCredential, ScramMechanism};
    let credential = |iterations: u32, key: u8| ScramCredential {
        salt: vec![1, 2, 3],
        iterations,
        stored_key: vec![key; 32],
        server_key: vec![key + 1; 32],
    };
    let set =
        |user: &str, m: ScramMechanism, c: Option<ScramCredential>| Command::AlterScramCredential {
            user: user.into(),
            mechanism: m,
            credential: c,
        };
    let mut state = ClusterState::default();
    let first = credential(4096, 7);
    assert_eq!(
        ok(
            &mut state,
            set("alice", ScramMechanism::Sha256, Some(first.clone()))
        ),
        Applied::Done
    );
    assert_eq!(
        ok(
            &mut state,
            set("alice", ScramMechanism::Sha256, Some(first))
        ),
        Applied::NoChange
    );
    ok(
        &mut state,
        set("alice", ScramMechanism::Sha512, Some(credential(8192, 9))),
    );
    // A new password replaces the old credential of that mechanism only.
    ok(
        &mut state,
        set("alice", ScramMechanism::Sha256, Some(credential(4096, 11))),
    );
    assert_eq!(state.scram_credentials["alice"].len(), 2);
    assert_eq!(
        state.scram_credentials["alice"][&ScramMechanism::Sha256].stored_key,
        vec![11; 32]
    );

    // Refused, nothing changed.
    let before = state.scram_credentials.clone();
    for (command, expected) in [
        (
            set("alice", ScramMechanism::Sha256, Some(credential(4095, 1))),
            Rejection::UnacceptableCredential("4095 iterations is outside 4096..=16384".into()),
        ),
        (
            set("alice", ScramMechanism::Sha256, Some(credential(16385, 1))),
            Rejection::UnacceptableCredential("16385 iterations is outside 4096..=16384".into()),
        ),
        (
            set("", ScramMechanism::Sha256, Some(credential(4096, 1))),
            Rejection::UnacceptableCredential("the user name is empty".into()),
        ),
        (
            set("bob", ScramMechanism::Sha512, None),
            Rejection::NotFound("user 'bob' has no SCRAM-SHA-512 credential".into()),
        ),
    ] {
        assert_eq!(run(&mut state, command), Err(expected));
    }
    assert_eq!(state.scram_credentials, before);

    // Deleting the last credential forgets the user.
    ok(&mut state, set("alice", ScramMechanism::Sha256, None));
    ok(&mut state, set("alice", ScramMechanism::Sha512, None));
    assert!(state.scram_credentials.is_empty());
}

#[test]
fn acls_are_added_once_removed_and_survive_a_snapshot_with_scram_users() {
    use crate::acls::{AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType};
    use crate::types::{ScramCredential, ScramMechanism};
    let acl = |name: &str, op: AclOperation| AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: name.into(),
        pattern_type: AclPatternType::Prefixed,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    };
    let mut state = ClusterState::default();
    let both = vec![
        acl("orders-", AclOperation::Read),
        acl("orders-", AclOperation::Write),
    ];
    assert_eq!(
        ok(&mut state, Command::CreateAcls(both.clone())),
        Applied::Done
    );
    assert_eq!(ok(&mut state, Command::CreateAcls(both)), Applied::NoChange);
    assert_eq!(state.acls.len(), 2);
    ok(
        &mut state,
        Command::AlterScramCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: Some(ScramCredential {
                salt: vec![1],
                iterations: 4096,
                stored_key: vec![2; 64],
                server_key: vec![3; 64],
            }),
        },
    );
    // The snapshot (JSON) keeps both.
    let json = serde_json::to_vec(&state).expect("serializes");
    let back: ClusterState = serde_json::from_slice(&json).expect("deserializes");
    assert_eq!(back, state);
    // An older snapshot without them still loads.
    let mut old = serde_json::to_value(ClusterState::default()).expect("value");
    let obj = old.as_object_mut().expect("object");
    obj.remove("acls");
    obj.remove("scram_credentials");
    let loaded: ClusterState = serde_json::from_value(old).expect("old snapshot loads");
    assert!(loaded.acls.is_empty() && loaded.scram_credentials.is_empty());

    assert_eq!(
        ok(
            &mut state,
            Command::DeleteAcls(vec![acl("orders-", AclOperation::Read)])
        ),
        Applied::Done
    );
    assert_eq!(
        ok(
            &mut state,
            Command::DeleteAcls(vec![acl("orders-", AclOperation::Read)])
        ),
        Applied::NoChange
    );
    assert_eq!(state.acls.len(), 1);
}

#[test]
fn a_broker_is_reached_on_the_endpoint_of_the_listener_asked_for() {
    let endpoint = |listener: &str, host: &str, port, protocol: &str| Endpoint {
        listener: listener.into(),
        host: host.into(),
        port,
        security_protocol: protocol.into(),
    };
    let mut broker = info(1, 1, None);
    broker.endpoints = vec![
        endpoint("INTERNAL", "10.0.0.1", 9092, "PLAINTEXT"),
        endpoint("SECURE", "kafka.example", 9094, "SSL"),
    ];
    assert_eq!(broker.endpoint("SECURE"), Some(("kafka.example", 9094)));
    assert_eq!(broker.endpoint("INTERNAL"), Some(("10.0.0.1", 9092)));
    // A broker without the listener is not reachable through it.
    assert_eq!(broker.endpoint("PLAINTEXT"), None);
    // A registration from before named listeners has one PLAINTEXT listener.
    let legacy = info(2, 1, None);
    assert_eq!(legacy.endpoint("PLAINTEXT"), Some(("broker-2", 9092)));
    assert_eq!(legacy.endpoint("SECURE"), None);
}

#[test]
fn registrations_and_snapshots_without_endpoints_still_load() {
    let mut state = with_brokers(&[1]);
    let mut json: serde_json::Value = serde_json::to_value(&state).expect("serialize");
    let broker = json["brokers"]["1"]
        .as_object_mut()
        .expect("broker 1 in the snapshot");
    assert!(broker.remove("endpoints").is_some());
    let old: ClusterState = serde_json::from_value(json).expect("an old snapshot loads");
    assert!(old.brokers[&1].endpoints.is_empty());
    let mut command =
        serde_json::to_value(Command::RegisterBroker(info(2, 1, None))).expect("serialize");
    let registration = command["RegisterBroker"]
        .as_object_mut()
        .expect("a RegisterBroker command");
    assert!(registration.remove("endpoints").is_some());
    let old: Command = serde_json::from_value(command).expect("an old log entry loads");
    ok(&mut state, old);
    assert_eq!(
        state.brokers[&2].endpoint("PLAINTEXT"),
        Some(("broker-2", 9092))
    );
}
