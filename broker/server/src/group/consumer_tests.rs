//! The consumer group protocol's state machine with a fake clock: joins,
//! revocation before assignment, epochs, leaving, timeouts, static members,
//! regex subscriptions and the assignors.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;

const SESSION: i64 = 45_000;

fn catalog(topics: &[(&str, i32)]) -> Catalog {
    topics
        .iter()
        .map(|(t, n)| {
            let id = Uuid::from_bytes([t.len() as u8; 16]);
            (t.to_string(), (id, *n))
        })
        .collect()
}

fn parts(list: &[(&str, &[i32])]) -> Partitions {
    list.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (t.to_string(), ps.iter().copied().collect()))
        .collect()
}

fn join(member: &str, topics: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Partitions::new()),
        client_id: format!("client-{member}"),
        client_host: "/127.0.0.1".into(),
        ..Heartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<Partitions>) -> Heartbeat {
    Heartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        ..Heartbeat::default()
    }
}

struct Fixture {
    group: ConsumerGroup,
    catalog: Catalog,
    config: ConsumerConfig,
    now: i64,
}

impl Fixture {
    fn new(topics: &[(&str, i32)]) -> Fixture {
        Fixture {
            group: ConsumerGroup::default(),
            catalog: catalog(topics),
            config: ConsumerConfig::default(),
            now: 1_000,
        }
    }

    fn hb(&mut self, req: Heartbeat) -> Result<HeartbeatReply, GroupError> {
        let r = self
            .group
            .heartbeat(req, &self.catalog, &self.config, self.now)
            .map(|(r, _)| r);
        self.check_no_partition_held_twice();
        r
    }

    /// The protocol's safety property: a partition is never owned (assigned or
    /// being revoked) by two members at once.
    fn check_no_partition_held_twice(&self) {
        let mut seen = BTreeSet::new();
        for m in self.group.members() {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in ps {
                    assert!(
                        seen.insert((t.clone(), *p)),
                        "{t}-{p} held twice: {:?}",
                        self.group
                    );
                }
            }
        }
    }

    fn member(&self, id: &str) -> &ConsumerMember {
        self.group.member(id).expect("member exists")
    }
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

#[test]
fn the_first_member_gets_every_partition_at_epoch_one() {
    let mut f = Fixture::new(&[("t", 4)]);
    let r = f.hb(join("a", &["t"])).unwrap();
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(r.assignment, Some(parts(&[("t", &[0, 1, 2, 3])])));
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
    // A heartbeat that changes nothing carries no assignment.
    let r = f.hb(beat("a", 1, None)).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, None));
}

#[test]
fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
    let mut f = Fixture::new(&[("t", 4)]);
    f.hb(join("a", &["t"])).unwrap();
    let all = parts(&[("t", &[0, 1, 2, 3])]);
    // b joins: the target splits 2/2, but a still owns everything.
    let r = f.hb(join("b", &["t"])).unwrap();
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(Partitions::new()));
    assert_eq!(f.member("b").state, MemberState::UnreleasedPartitions);
    assert_eq!(f.group.state(), ConsumerGroupState::Reconciling);
    // a learns it must give up two partitions and stays at epoch 1.
    let r = f.hb(beat("a", 1, Some(all.clone()))).unwrap();
    assert_eq!(r.member_epoch, 1);
    let kept = r.assignment.clone().unwrap();
    assert_eq!(count(&kept), 2);
    assert_eq!(f.member("a").state, MemberState::UnrevokedPartitions);
    // Still owning them (or not saying), nothing moves.
    assert_eq!(f.hb(beat("a", 1, None)).unwrap().member_epoch, 1);
    assert_eq!(f.hb(beat("b", 2, None)).unwrap().assignment, None);
    // a reports the revocation: it advances; b then gets the released two.
    let r = f.hb(beat("a", 1, Some(kept.clone()))).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (2, Some(kept.clone())));
    let r = f.hb(beat("b", 2, None)).unwrap();
    let got = r.assignment.unwrap();
    assert_eq!(count(&got), 2);
    assert!(got["t"].is_disjoint(&kept["t"]));
    assert_eq!(f.group.state(), ConsumerGroupState::Stable);
}

#[test]
fn epochs_are_checked_and_a_lost_answer_is_forgiven() {
    let mut f = Fixture::new(&[("t", 2)]);
    f.hb(join("a", &["t"])).unwrap();
    assert_eq!(
        f.hb(beat("a", 7, None)).unwrap_err(),
        GroupError::FencedMemberEpoch
    );
    assert_eq!(
        f.hb(beat("zz", 1, None)).unwrap_err(),
        GroupError::UnknownMemberId
    );
    // Epoch 2 after a subscription change; a retry with epoch 1 and a subset
    // of the assignment is accepted (the epoch-2 answer may have been lost).
    let mut change = beat("a", 1, None);
    change.subscribed_topic_names = Some(vec!["t".into()]);
    change.server_assignor = Some("range".into());
    assert_eq!(f.hb(change).unwrap().member_epoch, 2);
    let owned = parts(&[("t", &[0])]);
    assert_eq!(f.hb(beat("a", 1, Some(owned))).unwrap().member_epoch, 2);
    assert_eq!(
        f.hb(beat("a", 1, None)).unwrap_err(),
        GroupError::FencedMemberEpoch
    );
}

#[test]
fn a_leaving_member_hands_its_partitions_over_at_once() {
    let mut f = Fixture::new(&[("t", 4)]);
    f.hb(join("a", &["t"])).unwrap();
    let all = parts(&[("t", &[0, 1, 2, 3])]);
    f.hb(join("b", &["t"])).unwrap();
    let kept = f.hb(beat("a", 1, Some(all))).unwrap().assignment.unwrap();
    f.hb(beat("a", 1, Some(kept.clone()))).unwrap();
    f.hb(beat("b", 2, None)).unwrap();
    let r = f.hb(beat("b", 2, None)).unwrap();
    assert_eq!(r.assignment, None);
    let r = f.hb(beat("a", LEAVE_EPOCH, None)).unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    assert_eq!(f.group.member_count(), 1);
    let r = f.hb(beat("b", 2, None)).unwrap();
    assert_eq!(r.member_epoch, 3);
    assert_eq!(r.assignment, Some(parts(&[("t", &[0, 1, 2, 3])])));
    assert_eq!(
        f.hb(beat("a", LEAVE_EPOCH, None)).unwrap_err(),
        GroupError::UnknownMemberId
    );
}

#[test]
fn sessions_expire_and_a_member_that_does_not_revoke_is_fenced() {
    let mut f = Fixture::new(&[("t", 2)]);
    f.hb(join("a", &["t"])).unwrap();
    f.hb(join("b", &["t"])).unwrap();
    // a must revoke one partition within its rebalance timeout (30 s) and never does.
    f.hb(beat("a", 1, None)).unwrap();
    assert_eq!(f.member("a").state, MemberState::UnrevokedPartitions);
    let deadline = f.group.next_deadline().unwrap();
    assert_eq!(deadline, f.now + 30_000);
    f.now += 10_000;
    f.hb(beat("b", 2, None)).unwrap();
    assert!(f.group.on_timer(f.now).is_empty());
    f.now += 20_000;
    assert_eq!(f.group.on_timer(f.now), vec!["a".to_string()]);
    let r = f.hb(beat("b", 2, None)).unwrap();
    assert_eq!(r.assignment, Some(parts(&[("t", &[0, 1])])));
    // b stops heartbeating: gone one session later.
    let last = f.now;
    f.now = last + SESSION - 1;
    assert!(f.group.on_timer(f.now).is_empty());
    f.now = last + SESSION;
    assert_eq!(f.group.on_timer(f.now), vec!["b".to_string()]);
    assert_eq!(f.group.state(), ConsumerGroupState::Empty);
}

#[test]
fn a_static_member_keeps_its_partitions_across_a_restart() {
    let mut f = Fixture::new(&[("t", 4)]);
    let mut a = join("a1", &["t"]);
    a.instance_id = Some("i-a".into());
    f.hb(a).unwrap();
    let mut b = join("b", &["t"]);
    b.instance_id = Some("i-b".into());
    f.hb(b).unwrap();
    let all = parts(&[("t", &[0, 1, 2, 3])]);
    let mut hb = beat("a1", 1, Some(all));
    hb.instance_id = Some("i-a".into());
    let kept = f.hb(hb).unwrap().assignment.unwrap();
    // Later heartbeats leave the instance id out (unchanged); another one is fenced.
    f.hb(beat("a1", 1, Some(kept.clone()))).unwrap();
    let mut other = beat("a1", 2, None);
    other.instance_id = Some("i-x".into());
    assert_eq!(f.hb(other).unwrap_err(), GroupError::FencedInstanceId);
    let epoch = f.group.group_epoch();
    // Another process with the same instance id while a1 is active: refused.
    let mut dup = join("a2", &["t"]);
    dup.instance_id = Some("i-a".into());
    assert_eq!(
        f.hb(dup.clone()).unwrap_err(),
        GroupError::UnreleasedInstanceId
    );
    // a1 leaves for now (-2): it keeps its partitions, the epoch does not move.
    let mut leave = beat("a1", STATIC_LEAVE_EPOCH, None);
    leave.instance_id = Some("i-a".into());
    assert_eq!(f.hb(leave).unwrap().member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(f.group.group_epoch(), epoch);
    // a2 comes back with the instance id and gets the same partitions at once.
    let r = f.hb(dup).unwrap();
    assert_eq!(r.assignment, Some(kept));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(f.group.group_epoch(), epoch);
    assert!(f.group.member("a1").is_none());
}

#[test]
fn regex_subscriptions_follow_new_topics_and_bad_input_is_refused() {
    let mut f = Fixture::new(&[("orders-eu", 2), ("payments", 2)]);
    let mut req = join("a", &[]);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some("orders-.*".into());
    // Literal topics first: the regex is resolved at the next heartbeat (as
    // Kafka resolves it asynchronously).
    let r = f.hb(req).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, Some(Partitions::new())));
    let r = f.hb(beat("a", 1, None)).unwrap();
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(parts(&[("orders-eu", &[0, 1])])));
    // The whole name must match.
    f.now += REGEX_REFRESH_MIN_INTERVAL_MS;
    f.catalog = catalog(&[("orders-eu", 2), ("payments", 2), ("xorders-us", 1)]);
    assert_eq!(f.hb(beat("a", 2, None)).unwrap().assignment, None);
    // New matching topics join in one epoch, no sooner than the refresh interval
    // after the last resolution.
    f.now += 1_000;
    f.catalog = catalog(&[("orders-eu", 2), ("payments", 2), ("orders-us", 1)]);
    assert_eq!(f.hb(beat("a", 2, None)).unwrap().assignment, None);
    f.catalog = catalog(&[
        ("orders-eu", 2),
        ("payments", 2),
        ("orders-us", 1),
        ("orders-ap", 1),
    ]);
    assert_eq!(f.hb(beat("a", 2, None)).unwrap().assignment, None);
    f.now += REGEX_REFRESH_MIN_INTERVAL_MS;
    let r = f.hb(beat("a", 2, None)).unwrap();
    assert_eq!(r.member_epoch, 3);
    assert_eq!(
        r.assignment,
        Some(parts(&[
            ("orders-ap", &[0]),
            ("orders-eu", &[0, 1]),
            ("orders-us", &[0])
        ]))
    );
    // Added partitions count at once.
    f.catalog = catalog(&[
        ("orders-eu", 3),
        ("payments", 2),
        ("orders-us", 1),
        ("orders-ap", 1),
    ]);
    let r = f.hb(beat("a", 3, None)).unwrap();
    assert_eq!(r.member_epoch, 4);
    assert_eq!(count(&r.assignment.unwrap()), 5);
    let mut bad = join("b", &["payments"]);
    bad.subscribed_topic_regex = Some("orders-(".into());
    assert_eq!(f.hb(bad).unwrap_err(), GroupError::InvalidRegularExpression);
    let mut bad = join("b", &["payments"]);
    bad.server_assignor = Some("sticky".into());
    assert_eq!(f.hb(bad).unwrap_err(), GroupError::UnsupportedAssignor);
    f.config.max_size = 1;
    assert_eq!(
        f.hb(join("b", &["payments"])).unwrap_err(),
        GroupError::GroupMaxSizeReached
    );
    assert_eq!(f.group.member_count(), 1);
}

#[test]
fn commits_and_fetches_must_carry_the_member_epoch() {
    let mut f = Fixture::new(&[("t", 2)]);
    assert_eq!(f.group.validate_commit("", -1), Ok(()));
    f.hb(join("a", &["t"])).unwrap();
    assert_eq!(f.group.validate_commit("a", 1), Ok(()));
    assert_eq!(
        f.group.validate_commit("a", 0),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        f.group.validate_commit("a", 2),
        Err(GroupError::FencedMemberEpoch)
    );
    assert_eq!(
        f.group.validate_commit("", -1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(f.group.validate_fetch(None, -1), Ok(()));
    assert_eq!(f.group.validate_fetch(Some("a"), 1), Ok(()));
    assert_eq!(
        f.group.validate_fetch(Some("a"), 0),
        Err(GroupError::StaleMemberEpoch)
    );
}

#[test]
fn the_group_survives_its_record() {
    let mut f = Fixture::new(&[("t", 4)]);
    f.hb(join("a", &["t"])).unwrap();
    f.hb(join("b", &["t"])).unwrap();
    f.hb(beat("a", 1, None)).unwrap();
    let before = f.group.clone();
    let restored = ConsumerGroup::from_parts(
        before.group_epoch(),
        before.assignment_epoch(),
        before.assignor(),
        before.members().cloned().collect(),
        before.targets().clone(),
        before.subscribed_metadata().clone(),
    )
    .restored(&f.config, 99_000);
    assert_eq!(restored, before);
    assert_eq!(
        restored.member("a").unwrap().session_deadline_ms,
        99_000 + SESSION
    );
    // Revoking when the coordinator moved: one rebalance timeout from the restore.
    assert_eq!(
        restored.member("a").unwrap().revocation_deadline_ms,
        Some(99_000 + 30_000)
    );
    f.group = restored;
    let kept = f.member("a").assigned.clone();
    assert_eq!(f.hb(beat("a", 1, Some(kept))).unwrap().member_epoch, 2);
}

fn subs(list: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    list.iter()
        .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
        .collect()
}

#[test]
fn uniform_is_balanced_and_sticky() {
    let topics: BTreeMap<String, i32> = [("a".to_string(), 4), ("b".to_string(), 3)].into();
    let members = subs(&[
        ("m1", &["a", "b"]),
        ("m2", &["a", "b"]),
        ("m3", &["a", "b"]),
    ]);
    let first = Assignor::Uniform.assign(&members, &topics, &BTreeMap::new());
    let sizes: Vec<usize> = first.values().map(count).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{first:?}"
    );
    // m3 leaves: m1 and m2 keep everything they had.
    let two = subs(&[("m1", &["a", "b"]), ("m2", &["a", "b"])]);
    let second = Assignor::Uniform.assign(&two, &topics, &first);
    for m in ["m1", "m2"] {
        for (t, ps) in &first[m] {
            assert!(
                ps.is_subset(&second[m][t]),
                "{m} lost partitions: {second:?}"
            );
        }
    }
    assert_eq!(count(&second["m1"]) + count(&second["m2"]), 7);
    // Different subscriptions: each gets only its topics, the shared one balances the load.
    let mixed = subs(&[("m1", &["a"]), ("m2", &["a", "b"])]);
    let third = Assignor::Uniform.assign(&mixed, &topics, &BTreeMap::new());
    assert!(!third["m1"].contains_key("b"));
    assert_eq!(third["m2"]["b"].len(), 3);
    assert_eq!(count(&third["m1"]) + count(&third["m2"]), 7);
    assert!(count(&third["m1"]) >= 3, "{third:?}");
}

#[test]
fn range_gives_contiguous_ranges_per_topic() {
    let topics: BTreeMap<String, i32> = [("a".to_string(), 5), ("b".to_string(), 5)].into();
    let members = subs(&[("m2", &["a", "b"]), ("m1", &["a", "b"])]);
    let out = Assignor::Range.assign(&members, &topics, &BTreeMap::new());
    assert_eq!(out["m1"], parts(&[("a", &[0, 1, 2]), ("b", &[0, 1, 2])]));
    assert_eq!(out["m2"], parts(&[("a", &[3, 4]), ("b", &[3, 4])]));
}

#[test]
fn the_members_choose_the_assignor() {
    let mut f = Fixture::new(&[("a", 2), ("b", 2)]);
    let mut j = join("m1", &["a", "b"]);
    j.server_assignor = Some("range".into());
    f.hb(j).unwrap();
    assert_eq!(f.group.assignor(), Some(Assignor::Range));
    let mut j = join("m2", &["a", "b"]);
    j.server_assignor = Some("range".into());
    f.hb(j).unwrap();
    assert_eq!(
        f.group.target("m1"),
        Some(&parts(&[("a", &[0]), ("b", &[0])]))
    );
}

#[test]
fn a_regex_subscribed_again_after_everyone_left_is_resolved_anew() {
    let mut f = Fixture::new(&[("orders-eu", 2), ("lit", 1)]);
    let mut req = join("a", &[]);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some("orders-.*".into());
    f.hb(req).unwrap();
    assert_eq!(
        count(&f.hb(beat("a", 1, None)).unwrap().assignment.unwrap()),
        2
    );
    f.hb(beat("a", LEAVE_EPOCH, None)).unwrap();
    // The same regex with a literal topic: the literal first, the regex a heartbeat later.
    let mut again = join("b", &["lit"]);
    again.subscribed_topic_regex = Some("orders-.*".into());
    let r = f.hb(again).unwrap();
    assert_eq!(r.assignment, Some(parts(&[("lit", &[0])])));
    let r = f.hb(beat("b", r.member_epoch, None)).unwrap();
    assert_eq!(
        r.assignment,
        Some(parts(&[("lit", &[0]), ("orders-eu", &[0, 1])]))
    );
}
