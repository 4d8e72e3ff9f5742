//! The authorizer (Kafka's StandardAuthorizer rules): super users may do
//! everything; otherwise the ACLs that apply to the resource decide — a DENY
//! for the operation (or ALL) wins over any ALLOW; an ALLOW of the operation,
//! of ALL, or of an operation that implies it (READ, WRITE, DELETE and ALTER
//! imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows; nothing
//! else does. A resource with no ACL at all is allowed only with
//! `allow_everyone_if_no_acl_found`. Also Kafka's numeric codes of the ACL
//! enums. Pure: the ACLs and the connection's identity come in as arguments,
//! and a decision allocates nothing.

use std::net::IpAddr;

use runnel_meta::{AclOperation, AclPatternType, AclPermission, AclResourceType, AclStore};

use crate::session::Principal;

/// The name of the one cluster resource.
pub(crate) const CLUSTER_NAME: &str = "kafka-cluster";

/// The authorizer's settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Authorizer {
    /// Off: everything is allowed (Kafka without `authorizer.class.name`).
    pub enabled: bool,
    /// Principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// Allow a resource that has no ACL at all.
    pub allow_if_no_acl: bool,
}

/// Whether `entry` names this principal (`User:*` names every one).
fn principal_matches(entry: &str, p: &Principal) -> bool {
    if entry == "User:*" {
        return true;
    }
    entry
        .split_once(':')
        .is_some_and(|(kind, name)| kind == p.kind && name == p.name)
}

fn host_matches(entry: &str, host: Option<IpAddr>) -> bool {
    entry == "*" || host.is_some_and(|h| entry.parse::<IpAddr>().ok() == Some(h))
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

impl Authorizer {
    /// The authorizer of the broker config: `authorizer_enabled`, `super_users` (with the
    /// SASL bootstrap user, the first administrator) and `allow_everyone_if_no_acl_found`.
    pub(crate) fn from_config(config: &crate::config::BrokerConfig) -> Authorizer {
        let mut super_users = config.super_users.clone();
        if let Some(user) = &config.sasl_bootstrap_user {
            super_users.push(format!("User:{user}"));
        }
        Authorizer {
            enabled: config.authorizer_enabled,
            super_users,
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
        }
    }

    /// Whether `principal` connecting from `host` may do `op` on the resource.
    pub(crate) fn authorize(
        &self,
        acls: &AclStore,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource: AclResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        if self
            .super_users
            .iter()
            .any(|s| principal_matches(s, principal))
        {
            return true;
        }
        let mut allowed = false;
        for entry in acls.matching(resource, name, principal.as_str()) {
            if !host_matches(&entry.host, host) {
                continue;
            }
            match entry.permission {
                AclPermission::Deny
                    if entry.operation == op || entry.operation == AclOperation::All =>
                {
                    return false;
                }
                AclPermission::Allow if implies(entry.operation, op) => allowed = true,
                _ => {}
            }
        }
        allowed || (self.allow_if_no_acl && !acls.has_acls(resource, name))
    }
}

impl Authorizer {
    /// Whether some ACL allows `principal` `op` on some resource of type `resource`
    /// (and no DENY of it applies to every such resource): Kafka's
    /// `authorizeByResourceType`, for InitProducerId's "WRITE on any topic".
    pub(crate) fn allows_some(
        &self,
        acls: &AclStore,
        principal: &Principal,
        host: Option<IpAddr>,
        op: AclOperation,
        resource: AclResourceType,
    ) -> bool {
        if !self.enabled {
            return true;
        }
        let applies = |b: &runnel_meta::AclBinding| {
            b.resource_type == resource
                && principal_matches(&b.principal, principal)
                && host_matches(&b.host, host)
        };
        let denied_everywhere = acls.bindings().any(|b| {
            applies(&b)
                && b.permission == AclPermission::Deny
                && (b.operation == op || b.operation == AclOperation::All)
                && b.pattern_type == AclPatternType::Literal
                && b.resource_name == "*"
        });
        !denied_everywhere
            && acls.bindings().any(|b| {
                applies(&b) && b.permission == AclPermission::Allow && implies(b.operation, op)
            })
    }
}

/// For `cargo bench --bench authorizer`: `rounds` decisions of `User:<user>`
/// from 127.0.0.1 doing each `(op, resource, name)` against `acls` with the
/// authorizer on; the number allowed and the time they took.
#[doc(hidden)]
pub fn bench_decisions(
    acls: &AclStore,
    user: &str,
    checks: &[(AclOperation, AclResourceType, String)],
    rounds: usize,
) -> (usize, std::time::Duration) {
    let authorizer = Authorizer {
        enabled: true,
        super_users: vec!["User:admin".into()],
        allow_if_no_acl: false,
    };
    let principal = Principal::user(user);
    let host = Some(IpAddr::from([127, 0, 0, 1]));
    let mut allowed = 0;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for (op, resource, name) in checks {
            allowed += usize::from(std::hint::black_box(
                authorizer.authorize(acls, &principal, host, *op, *resource, name),
            ));
        }
    }
    (allowed, start.elapsed())
}

/// Kafka's resource type code.
pub(crate) fn resource_type_code(t: AclResourceType) -> i8 {
    match t {
        AclResourceType::Topic => 2,
        AclResourceType::Group => 3,
        AclResourceType::Cluster => 4,
        AclResourceType::TransactionalId => 5,
    }
}

/// The resource type of a code: `Ok(None)` for ANY (1), `Err` for unknown or unsupported.
pub(crate) fn resource_type_of(code: i8) -> Result<Option<AclResourceType>, String> {
    match code {
        1 => Ok(None),
        2 => Ok(Some(AclResourceType::Topic)),
        3 => Ok(Some(AclResourceType::Group)),
        4 => Ok(Some(AclResourceType::Cluster)),
        5 => Ok(Some(AclResourceType::TransactionalId)),
        6 | 7 => Err(format!(
            "resource type {code} (DELEGATION_TOKEN or USER) is not supported"
        )),
        other => Err(format!("unknown resource type {other}")),
    }
}

/// A pattern type filter: ANY (1), MATCH (2) or one pattern type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternFilter {
    /// Every pattern type, the name compared as it is.
    Any,
    /// The ACLs that would apply to the named resource.
    Match,
    /// This pattern type only.
    Exact(AclPatternType),
}

/// Kafka's pattern type code.
pub(crate) fn pattern_type_code(t: AclPatternType) -> i8 {
    match t {
        AclPatternType::Literal => 3,
        AclPatternType::Prefixed => 4,
    }
}

/// The pattern filter of a code.
pub(crate) fn pattern_filter_of(code: i8) -> Result<PatternFilter, String> {
    match code {
        1 => Ok(PatternFilter::Any),
        2 => Ok(PatternFilter::Match),
        3 => Ok(PatternFilter::Exact(AclPatternType::Literal)),
        4 => Ok(PatternFilter::Exact(AclPatternType::Prefixed)),
        other => Err(format!("unknown pattern type {other}")),
    }
}

const OPERATIONS: [(i8, AclOperation); 11] = [
    (2, AclOperation::All),
    (3, AclOperation::Read),
    (4, AclOperation::Write),
    (5, AclOperation::Create),
    (6, AclOperation::Delete),
    (7, AclOperation::Alter),
    (8, AclOperation::Describe),
    (9, AclOperation::ClusterAction),
    (10, AclOperation::DescribeConfigs),
    (11, AclOperation::AlterConfigs),
    (12, AclOperation::IdempotentWrite),
];

/// Kafka's operation code.
pub(crate) fn operation_code(op: AclOperation) -> i8 {
    OPERATIONS
        .iter()
        .find(|(_, o)| *o == op)
        .map_or(0, |(c, _)| *c)
}

/// The operation of a code: `Ok(None)` for ANY (1).
pub(crate) fn operation_of(code: i8) -> Result<Option<AclOperation>, String> {
    if code == 1 {
        return Ok(None);
    }
    OPERATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, o)| Some(*o))
        .ok_or_else(|| format!("unknown or unsupported operation {code}"))
}

/// Kafka's permission code.
pub(crate) fn permission_code(p: AclPermission) -> i8 {
    match p {
        AclPermission::Deny => 2,
        AclPermission::Allow => 3,
    }
}

/// The permission of a code: `Ok(None)` for ANY (1).
pub(crate) fn permission_of(code: i8) -> Result<Option<AclPermission>, String> {
    match code {
        1 => Ok(None),
        2 => Ok(Some(AclPermission::Deny)),
        3 => Ok(Some(AclPermission::Allow)),
        other => Err(format!("unknown permission type {other}")),
    }
}

/// The operations an ACL on a resource type may name (Kafka's lists), besides ALL.
pub(crate) fn supported_operations(t: AclResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match t {
        AclResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        AclResourceType::Group => &[Read, Describe, Delete],
        AclResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        AclResourceType::TransactionalId => &[Describe, Write],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_meta::AclBinding;
    use AclOperation::*;
    use AclPatternType::*;
    use AclPermission::*;
    use AclResourceType::*;

    fn acl(
        name: &str,
        pattern: AclPatternType,
        principal: &str,
        host: &str,
        op: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission,
        }
    }

    fn on() -> Authorizer {
        Authorizer {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        }
    }

    #[test]
    fn deny_wins_implied_operations_allow_and_unlisted_resources_are_denied() {
        let mut acls = AclStore::default();
        for b in [
            acl("orders-", Prefixed, "User:alice", "*", All, Allow),
            acl("orders-secret", Literal, "User:alice", "*", Read, Deny),
            acl("payments", Literal, "User:alice", "*", Write, Allow),
            acl("public", Literal, "User:*", "*", Read, Allow),
            acl("lab", Literal, "User:alice", "10.0.0.1", Read, Allow),
        ] {
            acls.insert(b);
        }
        let alice = Principal::user("alice");
        let bob = Principal::user("bob");
        let local: Option<IpAddr> = "127.0.0.1".parse().ok();
        let a = on();
        let can = |p: &Principal, op, name: &str| a.authorize(&acls, p, local, op, Topic, name);
        assert!(can(&alice, Read, "orders-eu"));
        assert!(can(&alice, Write, "orders-eu"));
        // A literal DENY beats the prefixed ALLOW ALL, for that operation only.
        assert!(!can(&alice, Read, "orders-secret"));
        assert!(can(&alice, Write, "orders-secret"));
        // WRITE implies DESCRIBE, not READ.
        assert!(can(&alice, Describe, "payments"));
        assert!(!can(&alice, Read, "payments"));
        // User:* applies to everyone; other principals get nothing else.
        assert!(can(&bob, Read, "public") && !can(&bob, Write, "public"));
        assert!(!can(&bob, Describe, "orders-eu"));
        // Host-bound ACLs need that host.
        assert!(!can(&alice, Read, "lab"));
        assert!(a.authorize(&acls, &alice, "10.0.0.1".parse().ok(), Read, Topic, "lab"));
        // No ACL for the resource: denied unless allow_if_no_acl.
        assert!(!can(&alice, Read, "unlisted"));
        let lenient = Authorizer {
            allow_if_no_acl: true,
            ..on()
        };
        assert!(lenient.authorize(&acls, &bob, local, Read, Topic, "unlisted"));
        assert!(!lenient.authorize(&acls, &bob, local, Read, Topic, "payments"));
        // Super users and a disabled authorizer allow everything.
        assert!(a.authorize(
            &acls,
            &Principal::user("admin"),
            local,
            Delete,
            Topic,
            "orders-secret"
        ));
        assert!(Authorizer::default().authorize(&acls, &bob, local, Delete, Topic, "x"));
        // Other resource types are separate.
        assert!(!a.authorize(&acls, &alice, local, Read, Group, "orders-eu"));
    }

    #[test]
    fn codes_round_trip_and_unknown_ones_are_refused() {
        for (code, op) in OPERATIONS {
            assert_eq!(operation_of(code), Ok(Some(op)));
            assert_eq!(operation_code(op), code);
        }
        assert_eq!(operation_of(1), Ok(None));
        assert!(operation_of(0).is_err() && operation_of(13).is_err());
        for t in [Topic, Group, Cluster, TransactionalId] {
            assert_eq!(resource_type_of(resource_type_code(t)), Ok(Some(t)));
        }
        assert!(resource_type_of(7).is_err() && resource_type_of(0).is_err());
        for p in [Literal, Prefixed] {
            assert_eq!(
                pattern_filter_of(pattern_type_code(p)),
                Ok(PatternFilter::Exact(p))
            );
        }
        for p in [Allow, Deny] {
            assert_eq!(permission_of(permission_code(p)), Ok(Some(p)));
        }
    }
}
