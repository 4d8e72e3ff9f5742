//! Unit tests of the [`Group`] state machine: every transition with a fake
//! clock, and random operation sequences that must keep the group consistent.

use super::*;
use crate::group::messages::{JoinReply, SyncOutcome, SyncReply};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn config(delay: i64) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 6000,
        max_session_timeout_ms: 300_000,
        initial_rebalance_delay_ms: delay,
        consumer: Default::default(),
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: n.to_string(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

fn join_req(member_id: &str, new_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: false,
        new_member_id: new_id.into(),
    }
}

fn static_req(instance: &str, member_id: &str, new_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..join_req(member_id, new_id)
    }
}

fn sync_req(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn joined(actions: &[Action]) -> Vec<(String, JoinOutcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::JoinResponse {
                member_id,
                result: Ok(o),
            } => Some((member_id.clone(), o.clone())),
            _ => None,
        })
        .collect()
}

fn join_errors(actions: &[Action]) -> Vec<(String, GroupError)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::JoinResponse {
                member_id,
                result: Err(e),
            } => Some((member_id.clone(), *e)),
            _ => None,
        })
        .collect()
}

fn synced(actions: &[Action]) -> Vec<(String, Result<Bytes, GroupError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SyncResponse { member_id, result } => Some((
                member_id.clone(),
                result
                    .as_ref()
                    .map(|o| o.assignment.clone())
                    .map_err(|e| *e),
            )),
            _ => None,
        })
        .collect()
}

/// A Stable group of `ids` (first is leader) at generation 1, built at time 0.
fn stable(ids: &[&str]) -> Group {
    let mut g = Group::new("g", config(0), 0);
    let mut all = Vec::new();
    for id in ids {
        let (reply, actions) = g.join(join_req("", id), 0);
        assert_eq!(
            reply,
            JoinReply::Parked {
                member_id: id.to_string()
            }
        );
        all.extend(actions);
    }
    // With no initial delay the barrier completed at the first join, so
    // later joiners started a second rebalance; rejoin everyone.
    let mut guard = 0;
    while g.state() == GroupState::PreparingRebalance && guard < 10 {
        for id in ids {
            let m = g.member(id).unwrap();
            if !m.awaiting_join {
                let (_, actions) = g.join(join_req(id, "unused"), 0);
                all.extend(actions);
            }
        }
        guard += 1;
    }
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let generation = g.generation_id();
    let leader = g.leader().unwrap().to_string();
    let assignments: Vec<(&str, String)> =
        ids.iter().map(|id| (*id, format!("assign-{id}"))).collect();
    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (*m, a.as_str())).collect();
    let (reply, _) = g.sync(sync_req(&leader, generation, &pairs), 0);
    assert_eq!(reply, SyncReply::Parked);
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn first_member_joins_empty_group_and_leads_generation_1() {
    let mut g = Group::new("g", config(0), 0);
    let (reply, actions) = g.join(join_req("", "m1"), 100);
    assert_eq!(
        reply,
        JoinReply::Parked {
            member_id: "m1".into()
        }
    );
    let done = joined(&actions);
    assert_eq!(done.len(), 1);
    let (id, o) = &done[0];
    assert_eq!(id, "m1");
    assert_eq!(o.generation_id, 1);
    assert_eq!(o.leader, "m1");
    assert_eq!(o.protocol_name.as_deref(), Some("range"));
    assert_eq!(o.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(o.members.len(), 1, "the leader gets the member list");
    assert_eq!(o.members[0].metadata, Bytes::from("meta-range"));
    assert!(actions.contains(&Action::RebalanceCompleted { generation_id: 1 }));
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn two_members_get_assignments_in_the_same_generation() {
    let mut g = Group::new("g", config(0), 0);
    g.join(join_req("", "m1"), 0);
    // m1 completed generation 1 alone; m2 joining starts a rebalance.
    let (reply, actions) = g.join(join_req("", "m2"), 10);
    assert!(matches!(reply, JoinReply::Parked { .. }));
    assert!(joined(&actions).is_empty(), "m1 has not rejoined yet");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // m1 learns of the rebalance through its heartbeat and rejoins.
    assert_eq!(
        g.heartbeat("m1", None, 1, 20),
        Err(GroupError::RebalanceInProgress)
    );
    let (_, actions) = g.join(join_req("m1", "x"), 30);
    let done = joined(&actions);
    assert_eq!(
        done.len(),
        2,
        "the barrier completes as soon as all rejoined"
    );
    assert!(done.iter().all(|(_, o)| o.generation_id == 2));
    let leader = done.iter().find(|(id, _)| id == "m1").unwrap();
    assert_eq!(leader.1.leader, "m1", "the existing leader stays leader");
    assert_eq!(leader.1.members.len(), 2);
    let follower = done.iter().find(|(id, _)| id == "m2").unwrap();
    assert!(follower.1.members.is_empty());
    // The follower syncs first and waits for the leader.
    let (reply, actions) = g.sync(sync_req("m2", 2, &[]), 40);
    assert_eq!(reply, SyncReply::Parked);
    assert!(actions.is_empty());
    let (reply, actions) = g.sync(sync_req("m1", 2, &[("m1", "a1"), ("m2", "a2")]), 50);
    assert_eq!(reply, SyncReply::Parked);
    assert_eq!(actions[0], Action::PersistGroup, "persist before answering");
    let mut got = synced(&actions);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("m1".to_string(), Ok(Bytes::from("a1"))),
            ("m2".to_string(), Ok(Bytes::from("a2")))
        ]
    );
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.heartbeat("m2", None, 2, 60), Ok(()));
    // SyncGroup in Stable answers at once with the member's assignment.
    let (reply, _) = g.sync(sync_req("m2", 2, &[]), 70);
    assert_eq!(
        reply,
        SyncReply::Now(Ok(SyncOutcome {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::from("a2"),
        }))
    );
}

#[test]
fn leader_missing_from_assignment_map_gives_member_empty_assignment() {
    let mut g = stable(&["m1"]);
    g.join(join_req("", "m2"), 10);
    g.join(join_req("m1", "x"), 10);
    let (_, actions) = g.sync(sync_req("m1", 2, &[("m1", "a1")]), 20);
    assert_eq!(synced(&actions), vec![("m1".into(), Ok(Bytes::from("a1")))]);
    let (reply, _) = g.sync(sync_req("m2", 2, &[]), 30);
    assert!(matches!(reply, SyncReply::Now(Ok(o)) if o.assignment.is_empty()));
}

#[test]
fn initial_rebalance_delay_waits_for_more_members() {
    let mut g = Group::new("g", config(3000), 0);
    let (_, actions) = g.join(join_req("", "m1"), 0);
    assert!(joined(&actions).is_empty(), "delayed");
    let (_, actions) = g.join(join_req("", "m2"), 1000);
    assert!(joined(&actions).is_empty());
    assert_eq!(g.next_deadline(), Some(4000), "extended by one delay");
    assert!(joined(&g.on_timer(3999)).is_empty());
    let done = joined(&g.on_timer(4000));
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|(_, o)| o.generation_id == 1));
}

#[test]
fn member_id_required_for_v4_first_join_then_join_with_it() {
    let mut g = Group::new("g", config(0), 0);
    let mut req = join_req("", "assigned-1");
    req.require_known_member_id = true;
    let (reply, actions) = g.join(req.clone(), 0);
    assert_eq!(
        reply,
        JoinReply::MemberIdRequired {
            member_id: "assigned-1".into()
        }
    );
    assert!(actions.is_empty());
    assert_eq!(g.member_count(), 0);
    assert!(g.has_pending_members());
    req.member_id = "assigned-1".into();
    req.new_member_id = "other".into();
    let (reply, actions) = g.join(req, 10);
    assert_eq!(
        reply,
        JoinReply::Parked {
            member_id: "assigned-1".into()
        }
    );
    assert_eq!(joined(&actions).len(), 1);
    assert!(!g.has_pending_members());
}

#[test]
fn pending_member_blocks_the_barrier_until_it_joins_or_expires() {
    let mut g = stable(&["m1"]);
    let mut req = join_req("", "p1");
    req.require_known_member_id = true;
    g.join(req, 100);
    // m1 changes its protocols: a rebalance that waits for the pending member too.
    let mut rejoin = join_req("m1", "x");
    rejoin.protocols = protocols(&["range", "roundrobin"]);
    let (_, actions) = g.join(rejoin, 200);
    assert!(joined(&actions).is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let done = joined(&g.on_timer(100 + i64::from(SESSION)));
    assert_eq!(done.len(), 1, "pending id expired: barrier completes");
}

#[test]
fn unknown_member_id_on_join() {
    let mut g = stable(&["m1"]);
    let (reply, _) = g.join(join_req("ghost", "x"), 10);
    assert_eq!(reply, JoinReply::Now(Err(GroupError::UnknownMemberId)));
}

#[test]
fn invalid_session_timeout_is_refused() {
    let mut g = Group::new("g", config(0), 0);
    for timeout in [5999, 300_001] {
        let mut req = join_req("", "m1");
        req.session_timeout_ms = timeout;
        let (reply, _) = g.join(req, 0);
        assert_eq!(
            reply,
            JoinReply::Now(Err(GroupError::InvalidSessionTimeout))
        );
    }
    assert_eq!(g.member_count(), 0);
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut g = Group::new("g", config(0), 0);
    let mut empty = join_req("", "m1");
    empty.protocols.clear();
    assert_eq!(
        g.join(empty, 0).0,
        JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut no_type = join_req("", "m1");
    no_type.protocol_type.clear();
    assert_eq!(
        g.join(no_type, 0).0,
        JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut g = stable(&["m1"]);
    let mut other = join_req("", "m2");
    other.protocols = protocols(&["sticky"]);
    assert_eq!(
        g.join(other, 0).0,
        JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
    let mut other_type = join_req("", "m2");
    other_type.protocol_type = "connect".into();
    assert_eq!(
        g.join(other_type, 0).0,
        JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
}

#[test]
fn protocol_selection_takes_the_common_protocol_by_votes_then_leader_preference() {
    let mut g = Group::new("g", config(3000), 0);
    let mut a = join_req("", "m1");
    a.protocols = protocols(&["cooperative-sticky", "range"]);
    let mut b = join_req("", "m2");
    b.protocols = protocols(&["range", "cooperative-sticky"]);
    let mut c = join_req("", "m3");
    c.protocols = protocols(&["roundrobin", "range"]);
    g.join(a, 0);
    g.join(b, 0);
    g.join(c, 0);
    let done = joined(&g.on_timer(10_000));
    // Only "range" is supported by all three.
    assert!(done
        .iter()
        .all(|(_, o)| o.protocol_name.as_deref() == Some("range")));

    let mut g = Group::new("g", config(3000), 0);
    let mut a = join_req("", "m1");
    a.protocols = protocols(&["cooperative-sticky", "range"]);
    let mut b = join_req("", "m2");
    b.protocols = protocols(&["range", "cooperative-sticky"]);
    g.join(a, 0);
    g.join(b, 0);
    let done = joined(&g.on_timer(10_000));
    // One vote each: the leader's preference decides.
    assert!(done
        .iter()
        .all(|(_, o)| o.protocol_name.as_deref() == Some("cooperative-sticky")));
}

#[test]
fn heartbeat_errors() {
    let mut g = stable(&["m1"]);
    let generation = g.generation_id();
    assert_eq!(g.heartbeat("m1", None, generation, 1), Ok(()));
    assert_eq!(
        g.heartbeat("ghost", None, generation, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat("m1", None, generation + 7, 1),
        Err(GroupError::IllegalGeneration)
    );
}

#[test]
fn heartbeat_in_completing_rebalance_is_fine_and_sync_during_prepare_is_rebalance_in_progress() {
    let mut g = stable(&["m1"]);
    g.join(join_req("", "m2"), 10);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let (reply, _) = g.sync(sync_req("m1", 1, &[]), 11);
    assert_eq!(reply, SyncReply::Now(Err(GroupError::RebalanceInProgress)));
    g.join(join_req("m1", "x"), 12);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.heartbeat("m2", None, 2, 13), Ok(()));
}

#[test]
fn sync_errors() {
    let mut g = stable(&["m1"]);
    assert_eq!(
        g.sync(sync_req("ghost", 1, &[]), 1).0,
        SyncReply::Now(Err(GroupError::UnknownMemberId))
    );
    assert_eq!(
        g.sync(sync_req("m1", 5, &[]), 1).0,
        SyncReply::Now(Err(GroupError::IllegalGeneration))
    );
    let mut wrong = sync_req("m1", 1, &[]);
    wrong.protocol_name = Some("roundrobin".into());
    assert_eq!(
        g.sync(wrong, 1).0,
        SyncReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
}

#[test]
fn leave_triggers_rebalance_and_remaining_member_gets_everything() {
    let mut g = stable(&["m1", "m2"]);
    let generation = g.generation_id();
    let (results, actions) = g.leave(
        &[LeavingMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
        100,
    );
    assert_eq!(results, vec![Ok(())]);
    assert!(actions.is_empty());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.leader(), Some("m2"), "leadership moves on");
    let (_, actions) = g.join(join_req("m2", "x"), 110);
    let done = joined(&actions);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.generation_id, generation + 1);
    assert_eq!(done[0].1.leader, "m2");
}

#[test]
fn leave_errors_and_last_member_leaving_empties_the_group() {
    let mut g = stable(&["m1"]);
    let (results, _) = g.leave(
        &[LeavingMember {
            member_id: "ghost".into(),
            group_instance_id: None,
        }],
        1,
    );
    assert_eq!(results, vec![Err(GroupError::UnknownMemberId)]);
    let generation = g.generation_id();
    let (results, actions) = g.leave(
        &[LeavingMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
        2,
    );
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), generation + 1);
    assert!(actions.contains(&Action::PersistGroup));
    assert_eq!(g.state_timestamp_ms(), 2);
    assert_eq!(
        g.heartbeat("m1", None, generation + 1, 3),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leaving_member_with_parked_requests_gets_unknown_member_id() {
    let mut g = stable(&["m1", "m2"]);
    g.join(join_req("", "m3"), 10);
    g.join(join_req("m1", "x"), 10);
    // m1's join is parked; it leaves instead (consumer closing).
    let (_, actions) = g.leave(
        &[LeavingMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
        20,
    );
    assert_eq!(
        join_errors(&actions),
        vec![("m1".to_string(), GroupError::UnknownMemberId)]
    );
}

#[test]
fn session_expiry_evicts_a_silent_member_and_rebalances() {
    let mut g = stable(&["m1", "m2"]);
    assert_eq!(g.next_deadline(), Some(i64::from(SESSION)));
    assert!(g.on_timer(i64::from(SESSION) - 1).is_empty());
    // m2 keeps heartbeating, m1 is silent.
    assert_eq!(g.heartbeat("m2", None, g.generation_id(), 9000), Ok(()));
    g.on_timer(i64::from(SESSION));
    assert!(g.member("m1").is_none(), "m1's session expired");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let (_, actions) = g.join(join_req("m2", "x"), 10_100);
    assert_eq!(joined(&actions).len(), 1);
}

#[test]
fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let mut g = stable(&["m1", "m2"]);
    let generation = g.generation_id();
    g.join(join_req("", "m3"), 1000);
    g.join(join_req("m1", "x"), 1000);
    // m2 keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    for t in (2000..31_000).step_by(3000) {
        assert_eq!(
            g.heartbeat("m2", None, generation, t),
            Err(GroupError::RebalanceInProgress)
        );
        let done = g.on_timer(t);
        assert!(joined(&done).is_empty(), "not before the rebalance timeout");
    }
    let done = joined(&g.on_timer(1000 + i64::from(REBALANCE)));
    assert_eq!(done.len(), 2);
    assert!(g.member("m2").is_none());
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut g = Group::new("g", config(0), 0);
    g.join(join_req("", "m1"), 0);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // The leader keeps heartbeating but never syncs.
    for t in (3000..30_000).step_by(3000) {
        g.heartbeat("m1", None, 1, t).unwrap();
        g.on_timer(t);
    }
    g.on_timer(i64::from(REBALANCE));
    assert_eq!(g.state(), GroupState::Empty);
}

#[test]
fn rejoin_in_completing_rebalance_with_same_protocols_returns_current_generation() {
    let mut g = Group::new("g", config(0), 0);
    g.join(join_req("", "m1"), 0);
    let (reply, actions) = g.join(join_req("m1", "x"), 5);
    assert!(actions.is_empty());
    match reply {
        JoinReply::Now(Ok(o)) => assert_eq!(o.generation_id, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn follower_rejoin_in_stable_with_same_protocols_does_not_rebalance() {
    let mut g = stable(&["m1", "m2"]);
    let generation = g.generation_id();
    let (reply, actions) = g.join(join_req("m2", "x"), 5);
    assert!(actions.is_empty());
    assert!(matches!(reply, JoinReply::Now(Ok(o)) if o.generation_id == generation));
    assert_eq!(g.state(), GroupState::Stable);
    // The leader rejoining does rebalance (it may want a new assignment).
    let (reply, _) = g.join(join_req("m1", "x"), 6);
    assert!(matches!(reply, JoinReply::Parked { .. }));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn sync_parked_when_rebalance_restarts_gets_rebalance_in_progress() {
    let mut g = stable(&["m1"]);
    g.join(join_req("", "m2"), 1);
    g.join(join_req("m1", "x"), 1);
    let (reply, _) = g.sync(sync_req("m2", 2, &[]), 2);
    assert_eq!(reply, SyncReply::Parked);
    // m3 arrives before the leader syncs.
    let (_, actions) = g.join(join_req("", "m3"), 3);
    assert_eq!(
        synced(&actions),
        vec![("m2".into(), Err(GroupError::RebalanceInProgress))]
    );
}

fn static_stable() -> Group {
    let mut g = Group::new("g", config(0), 0);
    g.join(static_req("i1", "", "m1"), 0);
    g.join(static_req("i2", "", "m2"), 0);
    g.join(static_req("i1", "m1", "x"), 0);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let mut sync = sync_req("m1", 2, &[("m1", "a1"), ("m2", "a2")]);
    sync.group_instance_id = Some("i1".into());
    g.sync(sync, 0);
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn static_member_rejoin_gets_its_assignment_back_without_rebalance() {
    let mut g = static_stable();
    let generation = g.generation_id();
    // i2 restarts: new process, no member id.
    let (reply, actions) = g.join(static_req("i2", "", "m2-new"), 5000);
    assert_eq!(
        reply,
        JoinReply::Parked {
            member_id: "m2-new".into()
        }
    );
    assert_eq!(actions[0], Action::PersistGroup);
    let done = joined(&actions);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, "m2-new");
    assert_eq!(done[0].1.generation_id, generation, "no new generation");
    assert!(!done[0].1.skip_assignment);
    assert_eq!(g.state(), GroupState::Stable, "no rebalance");
    assert!(g.member("m2").is_none());
    let mut sync = sync_req("m2-new", generation, &[]);
    sync.group_instance_id = Some("i2".into());
    let (reply, _) = g.sync(sync, 5001);
    assert!(matches!(reply, SyncReply::Now(Ok(o)) if o.assignment == "a2"));
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat("m2", Some("i2"), generation, 5002),
        Err(GroupError::FencedInstanceId)
    );
    // The other member was not disturbed.
    assert_eq!(g.heartbeat("m1", Some("i1"), generation, 5003), Ok(()));
}

#[test]
fn static_leader_rejoin_is_told_to_skip_assignment() {
    let mut g = static_stable();
    let (_, actions) = g.join(static_req("i1", "", "m1-new"), 10);
    let done = joined(&actions);
    assert_eq!(done[0].1.leader, "m1-new");
    assert!(done[0].1.skip_assignment);
    assert_eq!(done[0].1.members.len(), 2);
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn static_rejoin_keeps_generation_when_selected_protocol_is_unchanged() {
    let mut g = static_stable();
    let mut req = static_req("i2", "", "m2-new");
    req.protocols = protocols(&["roundrobin", "range"]);
    // Votes tie (range 1, roundrobin 1) and the leader prefers range: no change.
    let (_, actions) = g.join(req, 10);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(joined(&actions).len(), 1);
    let mut req = static_req("i2", "", "m2-newer");
    req.protocols = protocols(&["cooperative-sticky"]);
    assert_eq!(
        g.join(req, 11).0,
        JoinReply::Now(Err(GroupError::InconsistentGroupProtocol))
    );
}

#[test]
fn fenced_instance_id_errors() {
    let mut g = static_stable();
    assert_eq!(
        g.join(static_req("i2", "wrong", "x"), 1).0,
        JoinReply::Now(Err(GroupError::FencedInstanceId))
    );
    assert_eq!(
        g.join(static_req("i9", "m9", "x"), 1).0,
        JoinReply::Now(Err(GroupError::UnknownMemberId))
    );
    let mut sync = sync_req("wrong", 2, &[]);
    sync.group_instance_id = Some("i2".into());
    assert_eq!(
        g.sync(sync, 1).0,
        SyncReply::Now(Err(GroupError::FencedInstanceId))
    );
    assert_eq!(
        g.validate_commit("wrong", Some("i2"), 2, 1),
        Err(GroupError::FencedInstanceId)
    );
    let (results, _) = g.leave(
        &[LeavingMember {
            member_id: "wrong".into(),
            group_instance_id: Some("i2".into()),
        }],
        1,
    );
    assert_eq!(results, vec![Err(GroupError::FencedInstanceId)]);
}

#[test]
fn static_member_leaves_by_instance_id() {
    let mut g = static_stable();
    let (results, _) = g.leave(
        &[LeavingMember {
            member_id: String::new(),
            group_instance_id: Some("i2".into()),
        }],
        1,
    );
    assert_eq!(results, vec![Ok(())]);
    assert!(g.member("m2").is_none());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn static_member_replaced_while_parked_fences_the_old_request() {
    let mut g = static_stable();
    // A new member forces a rebalance; i2's old incarnation rejoins and parks.
    g.join(join_req("", "m3"), 1);
    g.join(static_req("i2", "m2", "x"), 2);
    let (_, actions) = g.join(static_req("i2", "", "m2-new"), 3);
    assert!(join_errors(&actions).contains(&("m2".to_string(), GroupError::FencedInstanceId)));
}

#[test]
fn commit_validation() {
    let mut g = stable(&["m1"]);
    let generation = g.generation_id();
    assert_eq!(g.validate_commit("m1", None, generation, 1), Ok(()));
    assert_eq!(
        g.validate_commit("ghost", None, generation, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.validate_commit("m1", None, generation + 1, 1),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_commit("", None, -1, 1),
        Err(GroupError::UnknownMemberId),
        "standalone commits are refused while the group has members"
    );
    g.join(join_req("", "m2"), 2);
    assert_eq!(
        g.validate_commit("m1", None, generation, 3),
        Ok(()),
        "commits are allowed while preparing a rebalance"
    );
    g.join(join_req("m1", "x"), 4);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.validate_commit("m1", None, generation + 1, 5),
        Err(GroupError::RebalanceInProgress)
    );
    let mut empty = Group::new("simple", config(0), 0);
    assert_eq!(empty.validate_commit("", None, -1, 1), Ok(()));
}

fn offset(o: i64, at: i64) -> CommittedOffset {
    CommittedOffset {
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: at,
    }
}

#[test]
fn offsets_of_an_empty_consumer_group_expire_after_it_was_empty_for_the_retention() {
    let mut g = stable(&["m1"]);
    g.commit_offset("t", 0, offset(5, 100));
    assert!(
        g.expire_offsets(1_000_000, 1000).is_empty(),
        "active group keeps offsets"
    );
    g.leave(
        &[LeavingMember {
            member_id: "m1".into(),
            group_instance_id: None,
        }],
        2_000_000,
    );
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.expire_offsets(2_000_999, 1000).is_empty());
    assert_eq!(
        g.expire_offsets(2_001_000, 1000),
        vec![("t".to_string(), 0)]
    );
    assert_eq!(g.state(), GroupState::Dead, "nothing left");
}

#[test]
fn standalone_offsets_expire_from_their_commit_time() {
    let mut g = Group::new("simple", config(0), 0);
    g.commit_offset("t", 0, offset(5, 100));
    g.commit_offset("t", 1, offset(7, 5000));
    assert_eq!(g.expire_offsets(1100, 1000), vec![("t".to_string(), 0)]);
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.expire_offsets(6000, 1000), vec![("t".to_string(), 1)]);
    assert_eq!(g.state(), GroupState::Dead);
}

#[test]
fn delete_group_only_when_empty() {
    let mut g = stable(&["m1"]);
    assert_eq!(g.delete(1), Err(GroupError::NonEmptyGroup));
    let mut empty = Group::new("g", config(0), 0);
    empty.commit_offset("t", 0, offset(1, 0));
    assert_eq!(empty.delete(1), Ok(vec![("t".to_string(), 0)]));
    assert_eq!(empty.state(), GroupState::Dead);
    assert_eq!(empty.delete(2), Err(GroupError::GroupIdNotFound));
    assert_eq!(
        empty.join(join_req("", "m1"), 3).0,
        JoinReply::Now(Err(GroupError::CoordinatorNotAvailable))
    );
}

fn subscription(topics: &[&str]) -> Bytes {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let sub = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    sub.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut g = Group::new("g", config(0), 0);
    let mut req = join_req("", "m1");
    req.protocols = vec![Protocol {
        name: "range".into(),
        metadata: subscription(&["orders"]),
    }];
    g.join(req, 0);
    g.commit_offset("orders", 0, offset(1, 0));
    g.commit_offset("old", 0, offset(1, 0));
    let result = g
        .delete_offsets(&[("orders".into(), 0), ("old".into(), 0), ("old".into(), 9)])
        .unwrap();
    assert_eq!(
        result,
        vec![Err(GroupError::GroupSubscribedToTopic), Ok(true), Ok(false)]
    );
    assert!(g.offset("orders", 0).is_some());
    assert!(g.offset("old", 0).is_none());
    // A non-consumer group with members cannot delete offsets at all.
    let mut connect = Group::new("c", config(0), 0);
    let mut req = join_req("", "w1");
    req.protocol_type = "connect".into();
    connect.join(req, 0);
    assert_eq!(
        connect.delete_offsets(&[("t".into(), 0)]),
        Err(GroupError::NonEmptyGroup)
    );
}

#[test]
fn restored_group_keeps_members_and_expects_heartbeats() {
    let g = static_stable();
    let restored = Group::from_metadata("g", config(0), 50_000, g.to_metadata());
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), g.generation_id());
    assert_eq!(restored.leader(), Some("m1"));
    assert_eq!(restored.member("m2").unwrap().assignment, Bytes::from("a2"));
    assert_eq!(restored.next_deadline(), Some(50_000 + i64::from(SESSION)));
    let mut restored = restored;
    assert_eq!(
        restored.heartbeat("m2", Some("i2"), g.generation_id(), 50_001),
        Ok(())
    );
    let empty = Group::from_metadata(
        "e",
        config(0),
        1,
        Group::new("e", config(0), 0).to_metadata(),
    );
    assert_eq!(empty.state(), GroupState::Empty);
}

/// Tiny deterministic generator for the random-operation test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn check_invariants(g: &Group, last_generation: &mut i32, actions: &[Action]) {
    assert!(
        g.generation_id() >= *last_generation,
        "generation went back"
    );
    *last_generation = g.generation_id();
    match g.state() {
        GroupState::CompletingRebalance | GroupState::Stable => {
            assert!(g.member_count() > 0, "{:?} without members", g.state());
            let leader = g.leader().expect("a leader");
            assert!(g.member(leader).is_some(), "leader is not a member");
            assert!(g.protocol_name().is_some());
        }
        GroupState::Empty => assert_eq!(g.member_count(), 0),
        GroupState::PreparingRebalance | GroupState::Dead => {}
    }
    for (instance, id) in &g.static_members {
        let m = g.member(id).expect("static entry points at a member");
        assert_eq!(m.group_instance_id.as_deref(), Some(instance.as_str()));
    }
    for a in actions {
        if let Action::JoinResponse {
            result: Ok(o),
            member_id,
        } = a
        {
            assert_eq!(o.member_id, *member_id);
            if !o.skip_assignment {
                assert!(o.generation_id <= g.generation_id());
            }
        }
    }
}

#[test]
fn random_operation_sequences_keep_the_group_consistent() {
    let mut stable_steps = 0;
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let mut g = Group::new("g", config(if seed % 2 == 0 { 0 } else { 500 }), 0);
        let mut now = 0i64;
        let mut last_generation = 0;
        let mut next_id = 0;
        for _ in 0..300 {
            now += rng.next(2000) as i64;
            let known: Vec<String> = g.members().map(|m| m.member_id.clone()).collect();
            let pick = |rng: &mut Lcg| -> String {
                if known.is_empty() || rng.next(5) == 0 {
                    "stranger".to_string()
                } else {
                    known[rng.next(known.len() as u64) as usize].clone()
                }
            };
            let generation = g.generation_id() - rng.next(2) as i32;
            let actions = match rng.next(8) {
                0 | 1 => {
                    next_id += 1;
                    let mut req = if rng.next(3) == 0 {
                        static_req(&format!("i{}", rng.next(3)), "", &format!("n{next_id}"))
                    } else {
                        join_req("", &format!("n{next_id}"))
                    };
                    req.require_known_member_id = rng.next(2) == 0;
                    if rng.next(4) == 0 {
                        req.protocols = protocols(&["roundrobin", "range"]);
                    }
                    g.join(req, now).1
                }
                2 => {
                    let id = pick(&mut rng);
                    g.join(join_req(&id, "unused"), now).1
                }
                3 => {
                    let id = pick(&mut rng);
                    let assignments: Vec<(String, Bytes)> = known
                        .iter()
                        .map(|m| (m.clone(), Bytes::from(m.clone())))
                        .collect();
                    let mut req = sync_req(&id, generation, &[]);
                    req.assignments = assignments;
                    g.sync(req, now).1
                }
                4 => {
                    let id = pick(&mut rng);
                    let _ = g.heartbeat(&id, None, generation, now);
                    Vec::new()
                }
                5 => {
                    let id = pick(&mut rng);
                    g.leave(
                        &[LeavingMember {
                            member_id: id,
                            group_instance_id: None,
                        }],
                        now,
                    )
                    .1
                }
                _ => g.on_timer(now),
            };
            check_invariants(&g, &mut last_generation, &actions);
            if g.state() == GroupState::Stable {
                stable_steps += 1;
            }
        }
    }
    // The walk must reach the interesting states, not only refusals.
    assert!(stable_steps > 300, "only {stable_steps} steps in Stable");
}
