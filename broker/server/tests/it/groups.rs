//! Consumer groups over the raw protocol: membership, rebalances, static
//! members, committed offsets and their persistence, group administration,
//! and the error code of every illegal request.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::harness::*;

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn st(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Consumer-protocol subscription metadata for `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| st(t)).collect());
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

/// A broker for group tests (no initial rebalance delay, short sessions
/// allowed), returned once `__consumer_offsets` is loaded.
async fn start_broker() -> TestBroker {
    let broker = TestBroker::start_with(|c| {
        c.group_initial_rebalance_delay_ms = 0;
        c.offsets_topic_num_partitions = 3;
        c.group_min_session_timeout_ms = 100;
    })
    .await;
    wait_loaded(&broker).await;
    broker
}

async fn wait_loaded(broker: &TestBroker) {
    let started = Instant::now();
    while !broker.broker.groups_loaded() {
        assert!(started.elapsed() < DEADLINE, "coordinator never loaded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn join_request(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    session_ms: i32,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(st(member_id))
        .with_group_instance_id(instance.map(st))
        .with_protocol_type(st("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(st("range"))
            .with_metadata(subscription(&["orders"]))])
}

/// JoinGroup v9, following MEMBER_ID_REQUIRED like a real client.
async fn join(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    session_ms: i32,
) -> JoinGroupResponse {
    let response = conn
        .send(&join_request(group, member_id, instance, session_ms), 9)
        .await;
    if response.error_code == 79 {
        assert!(member_id.is_empty());
        assert!(
            !response.member_id.is_empty(),
            "MEMBER_ID_REQUIRED carries the id"
        );
        return conn
            .send(
                &join_request(group, response.member_id.as_str(), instance, session_ms),
                9,
            )
            .await;
    }
    response
}

async fn sync(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    generation: i32,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(st(member_id))
        .with_group_instance_id(instance.map(st))
        .with_protocol_type(Some(st("consumer")))
        .with_protocol_name(Some(st("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(st(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    conn.send(&request, 5).await
}

async fn heartbeat(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    generation: i32,
) -> i16 {
    conn.send(
        &HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(st(member_id))
            .with_group_instance_id(instance.map(st)),
        4,
    )
    .await
    .error_code
}

/// Heartbeats until the answer is `code` (e.g. 27 when a rebalance starts).
async fn heartbeat_until(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    generation: i32,
    code: i16,
) {
    let started = Instant::now();
    loop {
        let got = heartbeat(conn, group, member_id, None, generation).await;
        if got == code {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "heartbeat never answered {code}, last {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn commit_request(
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64, &str)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(st(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o, m)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(st(m)))
                    })
                    .collect(),
            )])
}

/// Commits and returns the per-partition error codes.
async fn commit(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64, &str)],
) -> Vec<i16> {
    let response = conn
        .send(
            &commit_request(group, member_id, generation, topic, offsets),
            9,
        )
        .await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch v8 for one group and topic: (partition, offset, metadata) or the group error.
async fn fetch_offsets(
    conn: &mut Conn,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64, String)>, i16> {
    let response = conn
        .send(
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(gid(group))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name(topic))
                    .with_partition_indexes(partitions.to_vec())]))]),
            8,
        )
        .await;
    let g = &response.groups[0];
    if g.error_code != 0 {
        return Err(g.error_code);
    }
    Ok(g.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect())
}

/// Fetches offsets, retrying while the coordinator is loading.
async fn fetch_offsets_loaded(
    conn: &mut Conn,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<(i32, i64, String)> {
    let started = Instant::now();
    loop {
        match fetch_offsets(conn, group, topic, partitions).await {
            Ok(v) => return v,
            Err(14) if started.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(code) => panic!("OffsetFetch failed with {code}"),
        }
    }
}

async fn leave(
    conn: &mut Conn,
    group: &str,
    member_id: &str,
    instance: Option<&str>,
) -> LeaveGroupResponse {
    conn.send(
        &LeaveGroupRequest::default()
            .with_group_id(gid(group))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(st(member_id))
                .with_group_instance_id(instance.map(st))]),
        5,
    )
    .await
}

async fn describe(
    conn: &mut Conn,
    group: &str,
    version: i16,
) -> describe_groups_response::DescribedGroup {
    conn.send(
        &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
        version,
    )
    .await
    .groups
    .remove(0)
}

/// A stable group of two members; returns (conn, member id) of each and the generation.
async fn two_member_group(
    broker: &TestBroker,
    group: &str,
    session_ms: i32,
) -> ((Conn, String), (Conn, String), i32) {
    let mut c1 = broker.connect().await;
    let first = join(&mut c1, group, "", None, session_ms).await;
    assert_eq!(first.error_code, 0);
    let m1 = first.member_id.to_string();
    assert_eq!(first.leader.as_str(), m1, "the first member leads");
    assert_eq!(first.generation_id, 1);
    let s = sync(&mut c1, group, &m1, None, 1, &[(&m1, "all")]).await;
    assert_eq!(s.error_code, 0);
    assert_eq!(s.assignment, Bytes::from("all"));

    // The second member's JoinGroup is parked until m1 rejoins.
    let mut c2 = broker.connect().await;
    let group2 = group.to_string();
    let second = tokio::spawn(async move {
        let r = join(&mut c2, &group2, "", None, session_ms).await;
        (c2, r)
    });
    heartbeat_until(&mut c1, group, &m1, 1, 27).await;
    let rejoin = join(&mut c1, group, &m1, None, session_ms).await;
    let (mut c2, second) = second.await.unwrap();
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(second.error_code, 0);
    assert_eq!(rejoin.generation_id, 2);
    assert_eq!(
        second.generation_id, 2,
        "both members are in the same generation"
    );
    assert_eq!(rejoin.leader.as_str(), m1);
    assert_eq!(rejoin.members.len(), 2, "the leader sees both members");
    assert!(second.members.is_empty());
    assert_eq!(rejoin.protocol_name.as_ref().unwrap().as_str(), "range");
    let m2 = second.member_id.to_string();

    // The follower's SyncGroup waits for the leader's assignment.
    let group2 = group.to_string();
    let m2c = m2.clone();
    let follower = tokio::spawn(async move {
        let r = sync(&mut c2, &group2, &m2c, None, 2, &[]).await;
        (c2, r)
    });
    let m2c = m2.clone();
    let leader = sync(&mut c1, group, &m1, None, 2, &[(&m1, "p0"), (&m2c, "p1")]).await;
    let (c2, follower) = follower.await.unwrap();
    assert_eq!(leader.assignment, Bytes::from("p0"));
    assert_eq!(follower.error_code, 0);
    assert_eq!(follower.assignment, Bytes::from("p1"));
    ((c1, m1), (c2, m2), 2)
}

#[tokio::test]
async fn two_members_join_and_get_assignments_in_the_same_generation() {
    let broker = start_broker().await;
    let ((mut c1, m1), (mut c2, m2), generation) = two_member_group(&broker, "g2", 10_000).await;
    assert_eq!(heartbeat(&mut c1, "g2", &m1, None, generation).await, 0);
    assert_eq!(heartbeat(&mut c2, "g2", &m2, None, generation).await, 0);
    let d = describe(&mut c1, "g2", 5).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 2);
    let member = d
        .members
        .iter()
        .find(|m| m.member_id.as_str() == m2)
        .unwrap();
    assert_eq!(member.client_id.as_str(), "it");
    assert_eq!(member.client_host.as_str(), "/127.0.0.1");
    assert_eq!(member.member_assignment, Bytes::from("p1"));
    assert_eq!(member.member_metadata, subscription(&["orders"]));
}

#[tokio::test]
async fn leave_triggers_a_rebalance_of_the_remaining_member() {
    let broker = start_broker().await;
    let ((mut c1, m1), (mut c2, m2), generation) = two_member_group(&broker, "gl", 10_000).await;
    let r = leave(&mut c2, "gl", &m2, None).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(heartbeat(&mut c1, "gl", &m1, None, generation).await, 27);
    let rejoin = join(&mut c1, "gl", &m1, None, 10_000).await;
    assert_eq!(rejoin.generation_id, generation + 1);
    assert_eq!(rejoin.members.len(), 1);
    // Leaving twice: the member is gone.
    let again = leave(&mut c2, "gl", &m2, None).await;
    assert_eq!(again.members[0].error_code, 25);
    // LeaveGroup v0 reports the member error at the top level.
    let v0 = c2
        .send(
            &LeaveGroupRequest::default()
                .with_group_id(gid("gl"))
                .with_member_id(st(&m2)),
            0,
        )
        .await;
    assert_eq!(v0.error_code, 25);
}

#[tokio::test]
async fn session_expiry_evicts_a_silent_member() {
    let broker = start_broker().await;
    let ((mut c1, m1), (_c2, m2), generation) = two_member_group(&broker, "gs", 500).await;
    // m2 stops heartbeating; m1 keeps going until it is told to rejoin.
    heartbeat_until(&mut c1, "gs", &m1, generation, 27).await;
    let rejoin = join(&mut c1, "gs", &m1, None, 500).await;
    assert_eq!(rejoin.error_code, 0);
    assert_eq!(rejoin.generation_id, generation + 1);
    let ids: Vec<&str> = rejoin
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, vec![m1.as_str()], "{m2} was evicted");
}

#[tokio::test]
async fn static_member_restart_gets_its_assignment_back_without_rebalance() {
    let broker = start_broker().await;
    let mut c1 = broker.connect().await;
    let mut c2 = broker.connect().await;
    let a = join(&mut c1, "gstatic", "", Some("inst-a"), 10_000).await;
    assert_eq!(a.error_code, 0, "static members skip MEMBER_ID_REQUIRED");
    let ma = a.member_id.to_string();
    sync(&mut c1, "gstatic", &ma, Some("inst-a"), 1, &[(&ma, "x")]).await;
    let pending = tokio::spawn(async move {
        let r = join(&mut c2, "gstatic", "", Some("inst-b"), 10_000).await;
        (c2, r)
    });
    heartbeat_until(&mut c1, "gstatic", &ma, 1, 27).await;
    let a2 = join(&mut c1, "gstatic", &ma, Some("inst-a"), 10_000).await;
    let (mut c2, b) = pending.await.unwrap();
    let mb = b.member_id.to_string();
    assert_eq!(a2.generation_id, 2);
    let follower = tokio::spawn(async move {
        let r = sync(&mut c2, "gstatic", &mb, Some("inst-b"), 2, &[]).await;
        (c2, mb, r)
    });
    let mbc = b.member_id.to_string();
    sync(
        &mut c1,
        "gstatic",
        &ma,
        Some("inst-a"),
        2,
        &[(&ma, "pa"), (&mbc, "pb")],
    )
    .await;
    let (c2, mb, got) = follower.await.unwrap();
    assert_eq!(got.assignment, Bytes::from("pb"));
    drop(c2); // inst-b "crashes" without LeaveGroup, like a static consumer

    // The restarted process joins with its instance id and no member id.
    let mut c3 = broker.connect().await;
    let restarted = join(&mut c3, "gstatic", "", Some("inst-b"), 10_000).await;
    assert_eq!(restarted.error_code, 0);
    assert_eq!(restarted.generation_id, 2, "no new generation");
    assert_ne!(restarted.member_id.as_str(), mb);
    let mb_new = restarted.member_id.to_string();
    let s = sync(&mut c3, "gstatic", &mb_new, Some("inst-b"), 2, &[]).await;
    assert_eq!(s.error_code, 0);
    assert_eq!(s.assignment, Bytes::from("pb"), "previous assignment back");
    assert_eq!(
        heartbeat(&mut c1, "gstatic", &ma, Some("inst-a"), 2).await,
        0,
        "the other member sees no rebalance"
    );
    assert_eq!(
        heartbeat(&mut c3, "gstatic", &mb, Some("inst-b"), 2).await,
        82,
        "the old incarnation is fenced"
    );
    let d = describe(&mut c1, "gstatic", 5).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    let instances: Vec<String> = d
        .members
        .iter()
        .filter_map(|m| m.group_instance_id.as_ref().map(|i| i.to_string()))
        .collect();
    assert_eq!(instances.len(), 2);
}

#[tokio::test]
async fn offsets_commit_and_fetch_round_trip_with_metadata() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 3, &[]).await;
    assert_eq!(
        commit(
            &mut conn,
            "standalone",
            "",
            -1,
            "orders",
            &[(0, 42, "meta-0"), (2, 7, "")]
        )
        .await,
        vec![0, 0]
    );
    let got = fetch_offsets(&mut conn, "standalone", "orders", &[0, 1, 2])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            (0, 42, "meta-0".to_string()),
            (1, -1, String::new()),
            (2, 7, String::new())
        ]
    );
    // v8: several groups, a null topic list means all committed offsets.
    let response = conn
        .send(
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid("standalone"))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid("nobody"))
                    .with_topics(None),
            ]),
            8,
        )
        .await;
    assert_eq!(response.groups.len(), 2);
    let all: Vec<(i32, i64)> = response.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(all, vec![(0, 42), (2, 7)]);
    assert_eq!(response.groups[1].error_code, 0);
    assert!(response.groups[1].topics.is_empty());
    // v1 (one group, listed partitions).
    let v1 = conn
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(gid("standalone"))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(name("orders"))
                    .with_partition_indexes(vec![0])])),
            1,
        )
        .await;
    assert_eq!(v1.topics[0].partitions[0].committed_offset, 42);
    assert_eq!(
        v1.topics[0].partitions[0]
            .metadata
            .as_ref()
            .unwrap()
            .as_str(),
        "meta-0"
    );
    // A later commit wins.
    commit(&mut conn, "standalone", "", -1, "orders", &[(0, 50, "m")]).await;
    assert_eq!(
        fetch_offsets(&mut conn, "standalone", "orders", &[0])
            .await
            .unwrap(),
        vec![(0, 50, "m".to_string())]
    );
    // Committed by a group member of the current generation.
    let mut c1 = broker.connect().await;
    let j = join(&mut c1, "members", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut c1, "members", &m, None, 1, &[(&m, "a")]).await;
    assert_eq!(
        commit(&mut c1, "members", &m, 1, "orders", &[(1, 9, "x")]).await,
        vec![0]
    );
    assert_eq!(
        fetch_offsets(&mut c1, "members", "orders", &[1])
            .await
            .unwrap(),
        vec![(1, 9, "x".to_string())]
    );
}

#[tokio::test]
async fn committed_offsets_and_groups_survive_a_restart() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 2, &[]).await;
    for i in 0..50 {
        assert_eq!(
            commit(
                &mut conn,
                &format!("g{i}"),
                "",
                -1,
                "orders",
                &[(0, i, "before")]
            )
            .await,
            vec![0]
        );
    }
    commit(
        &mut conn,
        "g7",
        "",
        -1,
        "orders",
        &[(0, 700, "latest"), (1, 1, "p1")],
    )
    .await;
    let mut c1 = broker.connect().await;
    let j = join(&mut c1, "stable-group", "", None, 30_000).await;
    let m = j.member_id.to_string();
    sync(&mut c1, "stable-group", &m, None, 1, &[(&m, "assigned")]).await;
    drop(conn);
    drop(c1);
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(
        fetch_offsets_loaded(&mut conn, "g7", "orders", &[0, 1]).await,
        vec![(0, 700, "latest".to_string()), (1, 1, "p1".to_string())]
    );
    for i in [0, 13, 49] {
        assert_eq!(
            fetch_offsets_loaded(&mut conn, &format!("g{i}"), "orders", &[0]).await,
            vec![(0, i, "before".to_string())]
        );
    }
    // The member survives too: it can heartbeat and sync in its generation.
    assert_eq!(heartbeat(&mut conn, "stable-group", &m, None, 1).await, 0);
    let s = sync(&mut conn, "stable-group", &m, None, 1, &[]).await;
    assert_eq!(s.assignment, Bytes::from("assigned"));
    let d = describe(&mut conn, "stable-group", 5).await;
    assert_eq!(d.group_state.as_str(), "Stable");
}

#[tokio::test]
async fn delete_group_refused_while_members_then_deletes_offsets_for_good() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    let j = join(&mut conn, "doomed", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut conn, "doomed", &m, None, 1, &[(&m, "a")]).await;
    commit(&mut conn, "doomed", &m, 1, "orders", &[(0, 5, "")]).await;
    let delete =
        DeleteGroupsRequest::default().with_groups_names(vec![gid("doomed"), gid("never")]);
    let r = conn.send(&delete, 2).await;
    assert_eq!(r.results[0].error_code, 68, "NON_EMPTY_GROUP");
    assert_eq!(r.results[1].error_code, 69, "GROUP_ID_NOT_FOUND");
    assert_eq!(
        leave(&mut conn, "doomed", &m, None).await.members[0].error_code,
        0
    );
    assert_eq!(
        describe(&mut conn, "doomed", 5).await.group_state.as_str(),
        "Empty"
    );
    let r = conn.send(&delete, 2).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(
        fetch_offsets(&mut conn, "doomed", "orders", &[0])
            .await
            .unwrap(),
        vec![(0, -1, String::new())]
    );
    let d = describe(&mut conn, "doomed", 5).await;
    assert_eq!((d.error_code, d.group_state.as_str()), (0, "Dead"));
    // (v6, which answers GROUP_ID_NOT_FOUND here, is not advertised while the
    // schema table of runnel-wire stops at v5.)
    drop(conn);
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(
        fetch_offsets_loaded(&mut conn, "doomed", "orders", &[0]).await,
        vec![(0, -1, String::new())],
        "tombstones keep the group deleted after a restart"
    );
}

#[tokio::test]
async fn offset_delete_refuses_subscribed_topics() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    create_topic(&mut conn, "old", 1, &[]).await;
    let j = join(&mut conn, "od", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut conn, "od", &m, None, 1, &[(&m, "a")]).await;
    commit(&mut conn, "od", &m, 1, "orders", &[(0, 5, "")]).await;
    commit(&mut conn, "od", &m, 1, "old", &[(0, 3, "")]).await;
    let request = OffsetDeleteRequest::default()
        .with_group_id(gid("od"))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(name("orders"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(name("old"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
            OffsetDeleteRequestTopic::default()
                .with_name(name("missing"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ]),
        ]);
    let r = conn.send(&request, 0).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 86,
        "GROUP_SUBSCRIBED_TO_TOPIC"
    );
    assert_eq!(r.topics[1].partitions[0].error_code, 0);
    assert_eq!(r.topics[2].partitions[0].error_code, 3);
    assert_eq!(
        fetch_offsets(&mut conn, "od", "old", &[0]).await.unwrap()[0].1,
        -1
    );
    assert_eq!(
        fetch_offsets(&mut conn, "od", "orders", &[0])
            .await
            .unwrap()[0]
            .1,
        5
    );
    let unknown = conn
        .send(
            &OffsetDeleteRequest::default().with_group_id(gid("nope")),
            0,
        )
        .await;
    assert_eq!(unknown.error_code, 69);
}

#[tokio::test]
async fn list_groups_filters_by_state_and_type() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    commit(&mut conn, "simple", "", -1, "orders", &[(0, 1, "")]).await;
    let j = join(&mut conn, "active", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut conn, "active", &m, None, 1, &[(&m, "a")]).await;
    let all = conn.send(&ListGroupsRequest::default(), 5).await;
    let mut listed: Vec<(String, String, String, String)> = all
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (
                "active".into(),
                "consumer".into(),
                "Stable".into(),
                "classic".into()
            ),
            ("simple".into(), "".into(), "Empty".into(), "classic".into()),
        ]
    );
    let stable = conn
        .send(
            &ListGroupsRequest::default().with_states_filter(vec![st("stable")]),
            4,
        )
        .await;
    assert_eq!(stable.groups.len(), 1);
    assert_eq!(stable.groups[0].group_id.0.as_str(), "active");
    let consumer_type = conn
        .send(
            &ListGroupsRequest::default().with_types_filter(vec![st("consumer")]),
            5,
        )
        .await;
    assert!(consumer_type.groups.is_empty(), "no KIP-848 groups here");
    let v0 = conn.send(&ListGroupsRequest::default(), 0).await;
    assert_eq!(v0.groups.len(), 2);
}

#[tokio::test]
async fn illegal_requests_get_their_kafka_error_codes() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    // INVALID_SESSION_TIMEOUT (26).
    let bad_timeout = conn.send(&join_request("e", "", None, 50), 5).await;
    assert_eq!(bad_timeout.error_code, 26);
    // INVALID_GROUP_ID (24).
    assert_eq!(
        conn.send(&join_request("", "", None, 10_000), 5)
            .await
            .error_code,
        24
    );
    // MEMBER_ID_REQUIRED (79) on a v4+ first join, none before v4.
    let first = conn.send(&join_request("e", "", None, 10_000), 4).await;
    assert_eq!(first.error_code, 79);
    // UNKNOWN_MEMBER_ID (25) for a made-up member id.
    assert_eq!(
        conn.send(&join_request("e", "made-up", None, 10_000), 5)
            .await
            .error_code,
        25
    );
    let j = join(&mut conn, "e", "", None, 10_000).await;
    assert_eq!(j.error_code, 0);
    let m = j.member_id.to_string();
    // INCONSISTENT_GROUP_PROTOCOL (23): another protocol type.
    let mut other = join_request("e", "", None, 10_000);
    other.protocol_type = st("connect");
    assert_eq!(conn.send(&other, 5).await.error_code, 23);
    // ILLEGAL_GENERATION (22) on sync and heartbeat.
    assert_eq!(sync(&mut conn, "e", &m, None, 9, &[]).await.error_code, 22);
    assert_eq!(heartbeat(&mut conn, "e", &m, None, 9).await, 22);
    let s = sync(&mut conn, "e", &m, None, 1, &[(&m, "a")]).await;
    assert_eq!(s.error_code, 0);
    // UNKNOWN_MEMBER_ID for heartbeats of unknown members and groups.
    assert_eq!(heartbeat(&mut conn, "e", "ghost", None, 1).await, 25);
    assert_eq!(heartbeat(&mut conn, "no-group", "ghost", None, 1).await, 25);
    // OffsetCommit: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, unknown topic (3),
    // generation >= 0 for an unknown group (22), metadata too large (12).
    assert_eq!(
        commit(&mut conn, "e", &m, 7, "orders", &[(0, 1, "")]).await,
        vec![22]
    );
    assert_eq!(
        commit(&mut conn, "e", "ghost", 1, "orders", &[(0, 1, "")]).await,
        vec![25]
    );
    assert_eq!(
        commit(&mut conn, "e", "", -1, "orders", &[(0, 1, "")]).await,
        vec![25]
    );
    assert_eq!(
        commit(&mut conn, "e", &m, 1, "nope", &[(0, 1, "")]).await,
        vec![3]
    );
    assert_eq!(
        commit(&mut conn, "e", &m, 1, "orders", &[(5, 1, "")]).await,
        vec![3]
    );
    assert_eq!(
        commit(&mut conn, "unknown", "x", 3, "orders", &[(0, 1, "")]).await,
        vec![22]
    );
    let big = "x".repeat(5000);
    assert_eq!(
        commit(&mut conn, "e", &m, 1, "orders", &[(0, 1, &big)]).await,
        vec![12]
    );
    assert_eq!(
        commit(&mut conn, "", "", -1, "orders", &[(0, 1, "")]).await,
        vec![24]
    );
    // FindCoordinator: groups and transactional ids here; bad key type.
    let fc = conn
        .send(&FindCoordinatorRequest::default().with_key(st("e")), 3)
        .await;
    assert_eq!(fc.error_code, 0);
    assert_eq!(fc.port, broker.addr.port() as i32);
    let batched = conn
        .send(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![st("txn")]),
            4,
        )
        .await;
    assert_eq!(batched.coordinators[0].error_code, 0);
    assert_eq!(batched.coordinators[0].port, broker.addr.port() as i32);
    let groups = conn
        .send(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![st("a"), st("b")]),
            6,
        )
        .await;
    assert_eq!(groups.coordinators.len(), 2);
    assert!(groups
        .coordinators
        .iter()
        .all(|c| c.error_code == 0 && c.node_id.0 == 0));
    let v0 = conn
        .send(&FindCoordinatorRequest::default().with_key(st("e")), 0)
        .await;
    assert_eq!((v0.error_code, v0.node_id.0), (0, 0));
}

#[tokio::test]
async fn consumer_offsets_is_internal_compacted_and_protected() {
    let broker = TestBroker::start_with(|c| c.offsets_topic_num_partitions = 4).await;
    let mut conn = broker.connect().await;
    let find = conn
        .send(&FindCoordinatorRequest::default().with_key(st("first")), 1)
        .await;
    assert_eq!(find.error_code, 0);
    let meta = conn
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let internal = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "__consumer_offsets")
        .expect("__consumer_offsets exists after the first FindCoordinator");
    assert!(internal.is_internal);
    assert_eq!(internal.partitions.len(), 4);
    let configs = conn
        .send(
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(st("__consumer_offsets"))
                    .with_configuration_keys(Some(vec![st("cleanup.policy")])),
            ]),
            4,
        )
        .await;
    assert_eq!(
        configs.results[0].configs[0]
            .value
            .as_ref()
            .unwrap()
            .as_str(),
        "compact"
    );
    let delete = conn
        .send(
            &DeleteTopicsRequest::default().with_topic_names(vec![name("__consumer_offsets")]),
            4,
        )
        .await;
    assert_ne!(
        delete.responses[0].error_code, 0,
        "internal topic must not be deleted"
    );
    let (code, _) = produce(&mut conn, "__consumer_offsets", 0, batch(&["x"], 1)).await;
    assert_eq!(code, 17, "clients may not write the internal topic");
    let create = conn
        .send(&create_topic_request("__consumer_offsets", 1, &[]), 7)
        .await;
    assert_eq!(create.topics[0].error_code, 36);
}

#[tokio::test]
async fn group_metrics_report_committed_offset_lag_members_and_rebalances() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    produce(&mut conn, "orders", 0, batch(&["a", "b", "c", "d"], 1)).await;
    let j = join(&mut conn, "mg", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut conn, "mg", &m, None, 1, &[(&m, "a")]).await;
    commit(&mut conn, "mg", &m, 1, "orders", &[(0, 1, "")]).await;
    let (status, body) = http_get(broker.admin, "/metrics").await;
    assert_eq!(status, 200);
    let labels = r#"group="mg",partition="0",topic="orders""#;
    assert!(
        body.contains(&format!("runnel_group_committed_offset{{{labels}}} 1")),
        "{body}"
    );
    assert!(
        body.contains(&format!("runnel_group_lag{{{labels}}} 3")),
        "{body}"
    );
    assert!(
        body.contains(r#"runnel_group_members{group="mg"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"runnel_group_rebalances_total{group="mg"} 1"#),
        "{body}"
    );
    leave(&mut conn, "mg", &m, None).await;
    let r = conn
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("mg")]),
            2,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    let (_, body) = http_get(broker.admin, "/metrics").await;
    assert!(
        !body.contains(r#"group="mg""#),
        "deleted group's series remain: {body}"
    );
}

#[tokio::test]
async fn requests_pipelined_behind_a_parked_sync_wait_for_it() {
    let broker = start_broker().await;
    let mut c1 = broker.connect().await;
    let first = join(&mut c1, "gp", "", None, 10_000).await;
    let m1 = first.member_id.to_string();
    sync(&mut c1, "gp", &m1, None, 1, &[(&m1, "all")]).await;
    let mut c2 = broker.connect().await;
    let pending = tokio::spawn(async move {
        let r = join(&mut c2, "gp", "", None, 10_000).await;
        (c2, r)
    });
    heartbeat_until(&mut c1, "gp", &m1, 1, 27).await;
    join(&mut c1, "gp", &m1, None, 10_000).await;
    let (mut c2, second) = pending.await.unwrap();
    let m2 = second.member_id.to_string();
    let sync_request = |m: &str| {
        SyncGroupRequest::default()
            .with_group_id(gid("gp"))
            .with_generation_id(2)
            .with_member_id(st(m))
    };
    // A client that gives up waiting pipelines a rejoin and a new sync
    // behind its parked SyncGroup (kafka-python does this).
    let first_sync = c2.write(&sync_request(&m2), 5).await;
    let rejoin = c2.write(&join_request("gp", &m2, None, 10_000), 9).await;
    let second_sync = c2.write(&sync_request(&m2), 5).await;
    sync(&mut c1, "gp", &m1, None, 2, &[(&m1, "a"), (&m2, "b")]).await;
    let (id, r) = c2.read::<SyncGroupResponse>(5).await;
    assert_eq!(id, first_sync);
    assert_eq!(
        (r.error_code, r.assignment.clone()),
        (0, Bytes::from("b")),
        "the parked sync is answered with the assignment, not superseded"
    );
    let (id, j) = c2.read::<JoinGroupResponse>(9).await;
    assert_eq!(id, rejoin);
    assert_eq!((j.error_code, j.generation_id), (0, 2), "no new rebalance");
    let (id, r) = c2.read::<SyncGroupResponse>(5).await;
    assert_eq!(id, second_sync);
    assert_eq!(r.assignment, Bytes::from("b"));
}

#[tokio::test]
async fn graceful_shutdown_answers_a_parked_join_promptly() {
    let broker = start_broker().await;
    let mut c1 = broker.connect().await;
    let first = join(&mut c1, "gsd", "", None, 10_000).await;
    let m1 = first.member_id.to_string();
    sync(&mut c1, "gsd", &m1, None, 1, &[(&m1, "all")]).await;
    let mut c2 = broker.connect().await;
    // Parked until m1 rejoins, which never happens (rebalance timeout 10 s).
    // v3: no MEMBER_ID_REQUIRED round trip, the first join parks at once.
    let correlation = c2.write(&join_request("gsd", "", None, 10_000), 3).await;
    heartbeat_until(&mut c1, "gsd", &m1, 1, 27).await;
    let started = Instant::now();
    let _dir = broker.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited for the barrier"
    );
    if let Some(mut frame) = c2.read_frame().await {
        let header = ResponseHeader::decode(&mut frame, 0).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let r = JoinGroupResponse::decode(&mut frame, 3).unwrap();
        assert_eq!(
            r.error_code, 15,
            "COORDINATOR_NOT_AVAILABLE makes the client look again"
        );
    }
}

/// A `runnel-broker` process; killed with SIGKILL when dropped.
struct BrokerProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl BrokerProcess {
    fn start(dir: &std::path::Path) -> BrokerProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--controller-listen",
                "127.0.0.1:0",
                "--offsets-topic-num-partitions",
                "3",
                "--group-initial-rebalance-delay-ms",
                "0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .nth(2)
            .and_then(|kv| kv.strip_prefix("kafka="))
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .parse()
            .unwrap();
        BrokerProcess { child, addr }
    }

    async fn connect(&self) -> Conn {
        Conn::from_stream(tokio::net::TcpStream::connect(self.addr).await.unwrap())
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn committed_offsets_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 2, &[]).await;
    let started = Instant::now();
    for i in 0..20 {
        loop {
            let codes = commit(
                &mut conn,
                "crash",
                "",
                -1,
                "orders",
                &[(0, i, "m"), (1, 100 + i, "")],
            )
            .await;
            if codes == vec![14, 14] && started.elapsed() < DEADLINE {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            assert_eq!(codes, vec![0, 0]);
            break;
        }
    }
    broker.kill_9();
    let broker = BrokerProcess::start(dir.path());
    let mut conn = broker.connect().await;
    assert_eq!(
        fetch_offsets_loaded(&mut conn, "crash", "orders", &[0, 1]).await,
        vec![(0, 19, "m".to_string()), (1, 119, String::new())],
        "every acknowledged commit survives SIGKILL"
    );
}

#[tokio::test]
async fn static_leader_rejoin_is_answered_in_every_joingroup_version() {
    let broker = start_broker().await;
    for version in [5i16, 7, 9] {
        let group = format!("sl{version}");
        let mut c1 = broker.connect().await;
        let first = c1
            .send(&join_request(&group, "", Some("leader"), 10_000), version)
            .await;
        assert_eq!(first.error_code, 0);
        let m1 = first.member_id.to_string();
        sync(&mut c1, &group, &m1, Some("leader"), 1, &[(&m1, "mine")]).await;
        drop(c1);
        // The leader restarts: same instance id, no member id.
        let mut c2 = broker.connect().await;
        let again = c2
            .send(&join_request(&group, "", Some("leader"), 10_000), version)
            .await;
        assert_eq!(again.error_code, 0, "v{version}");
        assert_eq!(again.generation_id, 1, "v{version}: no rebalance");
        assert_eq!(again.leader, again.member_id);
        assert_eq!(again.skip_assignment, version >= 9, "v{version}");
        let m2 = again.member_id.to_string();
        // An older leader computes an assignment anyway; Stable keeps the stored one.
        let s = sync(&mut c2, &group, &m2, Some("leader"), 1, &[(&m2, "other")]).await;
        assert_eq!(s.assignment, Bytes::from("mine"), "v{version}");
    }
}

#[tokio::test]
async fn deleting_a_topic_deletes_its_committed_offsets() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "gone", 1, &[]).await;
    create_topic(&mut conn, "kept", 1, &[]).await;
    commit(&mut conn, "g", "", -1, "gone", &[(0, 5, "")]).await;
    commit(&mut conn, "g", "", -1, "kept", &[(0, 6, "")]).await;
    let r = conn
        .send(
            &DeleteTopicsRequest::default().with_topic_names(vec![name("gone")]),
            4,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    create_topic(&mut conn, "gone", 1, &[]).await;
    assert_eq!(
        fetch_offsets(&mut conn, "g", "gone", &[0]).await.unwrap()[0].1,
        -1
    );
    assert_eq!(
        fetch_offsets(&mut conn, "g", "kept", &[0]).await.unwrap()[0].1,
        6
    );
    let grow = conn
        .send(
            &CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("__consumer_offsets"))
                    .with_count(10),
            ]),
            1,
        )
        .await;
    assert_eq!(grow.results[0].error_code, 42, "INVALID_REQUEST");
}

#[tokio::test]
async fn offsets_of_an_empty_group_expire_after_the_retention_and_stay_expired() {
    let broker = start_broker().await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "orders", 1, &[]).await;
    let j = join(&mut conn, "ex", "", None, 10_000).await;
    let m = j.member_id.to_string();
    sync(&mut conn, "ex", &m, None, 1, &[(&m, "a")]).await;
    commit(&mut conn, "ex", &m, 1, "orders", &[(0, 9, "")]).await;
    let retention = broker.config.offsets_retention_minutes * 60_000;
    let now = runnel_server::now_ms();
    let groups = &broker.broker;
    assert_eq!(
        groups.expire_offsets(now + 2 * retention).await,
        0,
        "a group with members keeps its offsets"
    );
    leave(&mut conn, "ex", &m, None).await;
    assert_eq!(groups.expire_offsets(now + retention - 60_000).await, 0);
    assert_eq!(groups.expire_offsets(now + retention + 60_000).await, 1);
    assert_eq!(
        fetch_offsets(&mut conn, "ex", "orders", &[0])
            .await
            .unwrap()[0]
            .1,
        -1
    );
    let listed = conn.send(&ListGroupsRequest::default(), 4).await;
    assert!(
        listed.groups.is_empty(),
        "the empty group without offsets is gone"
    );
    drop(conn);
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    assert_eq!(
        fetch_offsets_loaded(&mut conn, "ex", "orders", &[0]).await[0].1,
        -1
    );
}

fn offsets_partition_dirs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("__consumer_offsets-")
        })
        .count()
}

#[tokio::test]
async fn consumer_offsets_is_created_on_the_first_find_coordinator_not_at_start() {
    let broker = TestBroker::start_with(|c| {
        c.offsets_topic_num_partitions = 5;
        c.group_initial_rebalance_delay_ms = 0;
    })
    .await;
    let mut conn = broker.connect().await;
    create_topic(&mut conn, "plain", 1, &[]).await;
    assert_eq!(
        offsets_partition_dirs(broker.dir.path()),
        0,
        "a broker whose clients use no groups has no offsets partitions"
    );
    // Reads need no offsets topic: an empty answer, nothing created.
    let listed = conn.send(&ListGroupsRequest::default(), 4).await;
    assert_eq!((listed.error_code, listed.groups.len()), (0, 0));
    let fetched = conn
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(st("nobody")))
                .with_topics(None),
            7,
        )
        .await;
    assert_eq!(fetched.error_code, 0);
    assert_eq!(offsets_partition_dirs(broker.dir.path()), 0);
    // Nobody else may create it with their own settings.
    let refused = conn
        .send(&create_topic_request("__consumer_offsets", 1, &[]), 7)
        .await;
    assert_eq!(refused.topics[0].error_code, 42, "INVALID_REQUEST");
    assert_eq!(offsets_partition_dirs(broker.dir.path()), 0);

    let find = conn
        .send(&FindCoordinatorRequest::default().with_key(st("lazy")), 1)
        .await;
    assert_eq!((find.error_code, find.node_id.0), (0, 0));
    assert_eq!(offsets_partition_dirs(broker.dir.path()), 5);
    // Commits work at once and survive a restart (replayed before answering).
    let commit = conn
        .send(
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(st("lazy")))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(st(""))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(name("plain"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(7),
                        ]),
                ]),
            8,
        )
        .await;
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    drop(conn);
    let broker = broker.restart().await;
    let mut conn = broker.connect().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let offset = loop {
        let r = conn
            .send(
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(st("lazy")))
                    .with_topics(None),
                7,
            )
            .await;
        if r.error_code == 0 {
            break r.topics[0].partitions[0].committed_offset;
        }
        assert_eq!(
            r.error_code, 14,
            "only COORDINATOR_LOAD_IN_PROGRESS while loading"
        );
        assert!(tokio::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    };
    assert_eq!(offset, 7);
}
