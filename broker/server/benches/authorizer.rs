//! The cost of one authorizer decision with 10,000 ACLs (issue 14's bench), in
//! three layouts: ACLs spread over 10,000 topics (half literal, half prefixed),
//! 10,000 principals' ACLs on one topic, and no ACL for the resource at all.
//! Plain timing loops (`harness = false`): each layout runs `ROUNDS` rounds of
//! its checks after a warm-up and prints nanoseconds per decision.
//!
//! `cargo bench -p runnel-server --bench authorizer`

use runnel_meta::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, AclStore,
};
use runnel_server::bench_authorizer_decisions;

const ACLS: usize = 10_000;
const ROUNDS: usize = 20_000;

fn binding(
    name: String,
    pattern: AclPatternType,
    principal: String,
    op: AclOperation,
) -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: name,
        pattern_type: pattern,
        principal,
        host: "*".into(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

fn report(
    layout: &str,
    acls: &AclStore,
    user: &str,
    checks: &[(AclOperation, AclResourceType, String)],
    expect_allowed: bool,
) {
    bench_authorizer_decisions(acls, user, checks, ROUNDS / 10); // warm-up
    let (allowed, took) = bench_authorizer_decisions(acls, user, checks, ROUNDS);
    let decisions = ROUNDS * checks.len();
    assert_eq!(
        allowed == decisions,
        expect_allowed,
        "{layout}: {allowed} of {decisions} allowed"
    );
    println!(
        "{layout:<58} {:>8.0} ns/decision  ({} ACLs, {decisions} decisions)",
        took.as_nanos() as f64 / decisions as f64,
        acls.len()
    );
}

fn main() {
    // 10,000 topics, one ACL each: even ones literal, odd ones prefixed ("t-00001" covers
    // "t-00001-eu"); alice is the principal of every tenth.
    let mut spread = AclStore::default();
    for i in 0..ACLS {
        let user = if i % 10 == 0 {
            "alice".to_string()
        } else {
            format!("user-{i}")
        };
        let pattern = if i % 2 == 0 {
            AclPatternType::Literal
        } else {
            AclPatternType::Prefixed
        };
        spread.insert(binding(
            format!("t-{i:05}"),
            pattern,
            format!("User:{user}"),
            AclOperation::Write,
        ));
    }
    let literal: Vec<_> = (0..10)
        .map(|k| {
            (
                AclOperation::Write,
                AclResourceType::Topic,
                format!("t-{:05}", k * 1000),
            )
        })
        .collect();
    report(
        "10,000 topics: WRITE on a literal ACL's topic",
        &spread,
        "alice",
        &literal,
        true,
    );
    let prefixed: Vec<_> = (0..10)
        .map(|k| {
            (
                AclOperation::Describe,
                AclResourceType::Topic,
                format!("t-{:05}-orders-eu", k * 1000 + 10 + 1),
            )
        })
        .collect();
    report(
        "10,000 topics: DESCRIBE via a prefixed WRITE (implied)",
        &spread,
        "user-11",
        &prefixed[..1],
        true,
    );
    report(
        "10,000 topics: refused (another principal's ACL)",
        &spread,
        "mallory",
        &literal,
        false,
    );

    // 10,000 principals with READ on one topic.
    let mut crowded = AclStore::default();
    for i in 0..ACLS {
        crowded.insert(binding(
            "orders".into(),
            AclPatternType::Literal,
            format!("User:user-{i:05}"),
            AclOperation::Read,
        ));
    }
    let orders = vec![(
        AclOperation::Read,
        AclResourceType::Topic,
        "orders".to_string(),
    )];
    report(
        "10,000 principals on one topic: READ (last principal)",
        &crowded,
        "user-09999",
        &orders,
        true,
    );
    report(
        "10,000 principals on one topic: refused",
        &crowded,
        "mallory",
        &orders,
        false,
    );

    // A topic no ACL names.
    let none = vec![(
        AclOperation::Read,
        AclResourceType::Topic,
        "unnamed".to_string(),
    )];
    report(
        "10,000 topics: a topic without ACLs (refused)",
        &spread,
        "alice",
        &none,
        false,
    );
}
