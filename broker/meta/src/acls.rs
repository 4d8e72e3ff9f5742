//! The ACL store of the cluster state: every ACL, indexed by resource type,
//! pattern type and resource name, so that finding the ACLs that apply to one
//! resource borrows the name and allocates nothing. It is stored (and sent in
//! snapshots) as the plain list of bindings.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kafka resource type that ACLs protect (Kafka's codes in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclResourceType {
    /// TOPIC (2).
    Topic,
    /// GROUP (3).
    Group,
    /// CLUSTER (4): the one resource named `kafka-cluster`.
    Cluster,
    /// TRANSACTIONAL_ID (5).
    TransactionalId,
}

/// How an ACL's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclPatternType {
    /// LITERAL (3): the name itself, or every resource when the name is `*`.
    Literal,
    /// PREFIXED (4): every resource whose name starts with the name.
    Prefixed,
}

/// An operation on a resource (Kafka's `AclOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclOperation {
    /// ALL (2): every operation.
    All,
    /// READ (3).
    Read,
    /// WRITE (4).
    Write,
    /// CREATE (5).
    Create,
    /// DELETE (6).
    Delete,
    /// ALTER (7).
    Alter,
    /// DESCRIBE (8).
    Describe,
    /// CLUSTER_ACTION (9).
    ClusterAction,
    /// DESCRIBE_CONFIGS (10).
    DescribeConfigs,
    /// ALTER_CONFIGS (11).
    AlterConfigs,
    /// IDEMPOTENT_WRITE (12).
    IdempotentWrite,
}

/// Whether an ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclPermission {
    /// DENY (2): wins over any ALLOW.
    Deny,
    /// ALLOW (3).
    Allow,
}

/// One ACL: `principal` from `host` is allowed or denied `operation` on the
/// resources matched by `resource_type`, `pattern_type` and `resource_name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// Resource type.
    pub resource_type: AclResourceType,
    /// Resource name (`*` with [`AclPatternType::Literal`] matches every name).
    pub resource_name: String,
    /// Pattern type.
    pub pattern_type: AclPatternType,
    /// `User:<name>`, or `User:*` for every principal.
    pub principal: String,
    /// The client's IP address, or `*` for every host.
    pub host: String,
    /// Operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

/// What an ACL says to one principal about one resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclRule {
    /// An IP address or `*`.
    pub host: String,
    /// Operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

/// The rules of one resource pattern by principal (`User:*` among them): a
/// decision reads the rules of the principal asking and of `User:*` only, so
/// its cost does not grow with the number of other principals' ACLs.
type ByPrincipal = BTreeMap<String, BTreeSet<AclRule>>;
type ByName = BTreeMap<String, ByPrincipal>;

/// The principal every principal matches.
const EVERYONE: &str = "User:*";

/// Every ACL of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclStore {
    patterns: BTreeMap<(AclResourceType, AclPatternType), ByName>,
    len: usize,
}

impl AclStore {
    /// Adds an ACL; false if it was there already.
    pub fn insert(&mut self, b: AclBinding) -> bool {
        let added = self
            .patterns
            .entry((b.resource_type, b.pattern_type))
            .or_default()
            .entry(b.resource_name)
            .or_default()
            .entry(b.principal)
            .or_default()
            .insert(AclRule {
                host: b.host,
                operation: b.operation,
                permission: b.permission,
            });
        self.len += usize::from(added);
        added
    }

    /// Removes an ACL; false if it was not there.
    pub fn remove(&mut self, b: &AclBinding) -> bool {
        let key = (b.resource_type, b.pattern_type);
        let Some(names) = self.patterns.get_mut(&key) else {
            return false;
        };
        let Some(principals) = names.get_mut(&b.resource_name) else {
            return false;
        };
        let Some(rules) = principals.get_mut(&b.principal) else {
            return false;
        };
        let removed = rules.remove(&AclRule {
            host: b.host.clone(),
            operation: b.operation,
            permission: b.permission,
        });
        // Empty levels go, so that a pattern present means an ACL present.
        if rules.is_empty() {
            principals.remove(&b.principal);
        }
        if principals.is_empty() {
            names.remove(&b.resource_name);
        }
        if names.is_empty() {
            self.patterns.remove(&key);
        }
        self.len -= usize::from(removed);
        removed
    }

    /// How many ACLs there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every ACL, as bindings.
    pub fn bindings(&self) -> impl Iterator<Item = AclBinding> + '_ {
        self.patterns.iter().flat_map(|((rt, pt), names)| {
            names.iter().flat_map(move |(name, principals)| {
                principals.iter().flat_map(move |(principal, rules)| {
                    rules.iter().map(move |r| AclBinding {
                        resource_type: *rt,
                        resource_name: name.clone(),
                        pattern_type: *pt,
                        principal: principal.clone(),
                        host: r.host.clone(),
                        operation: r.operation,
                        permission: r.permission,
                    })
                })
            })
        })
    }

    /// The patterns that apply to the resource `name` of type `rt`: the literal
    /// ones for that name or for `*`, and the prefixed ones whose prefix starts `name`.
    fn patterns_for<'a>(
        &'a self,
        rt: AclResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a ByPrincipal> + 'a {
        let literal = self.patterns.get(&(rt, AclPatternType::Literal));
        let exact = literal.and_then(|n| n.get(name));
        let wildcard = literal.filter(|_| name != "*").and_then(|n| n.get("*"));
        let prefixed = self
            .patterns
            .get(&(rt, AclPatternType::Prefixed))
            .into_iter()
            .flat_map(move |names| {
                name.char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .filter_map(move |prefix| names.get(prefix))
            });
        exact.into_iter().chain(wildcard).chain(prefixed)
    }

    /// Whether any ACL applies to the resource `name` of type `rt`.
    pub fn has_acls(&self, rt: AclResourceType, name: &str) -> bool {
        self.patterns_for(rt, name).next().is_some()
    }

    /// The rules for `principal` (`User:alice`) on the resource `name` of type
    /// `rt`: those naming it and those for `User:*`, of every applying pattern.
    pub fn matching<'a>(
        &'a self,
        rt: AclResourceType,
        name: &'a str,
        principal: &'a str,
    ) -> impl Iterator<Item = &'a AclRule> + 'a {
        self.patterns_for(rt, name).flat_map(move |principals| {
            let everyone = principals.get(EVERYONE).filter(|_| principal != EVERYONE);
            principals
                .get(principal)
                .into_iter()
                .chain(everyone)
                .flatten()
        })
    }
}

impl Serialize for AclStore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.bindings())
    }
}

impl<'de> Deserialize<'de> for AclStore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AclStore, D::Error> {
        let mut store = AclStore::default();
        for b in Vec::<AclBinding>::deserialize(d)? {
            store.insert(b);
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: AclResourceType, name: &str, pt: AclPatternType, op: AclOperation) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn matching_finds_literal_wildcard_and_prefix_acls_of_the_resource_only() {
        use AclOperation::*;
        use AclPatternType::*;
        use AclResourceType::*;
        let mut store = AclStore::default();
        for b in [
            acl(Topic, "orders", Literal, Read),
            acl(Topic, "*", Literal, Describe),
            acl(Topic, "ord", Prefixed, Write),
            acl(Topic, "orders-eu", Prefixed, Delete),
            acl(Topic, "x", Prefixed, Alter),
            acl(Group, "orders", Literal, Read),
        ] {
            assert!(store.insert(b));
        }
        assert!(!store.insert(acl(Topic, "orders", Literal, Read)));
        assert_eq!(store.len(), 6);
        let ops = |store: &AclStore, name: &str| {
            let mut ops: Vec<AclOperation> = store
                .matching(Topic, name, "User:alice")
                .map(|e| e.operation)
                .collect();
            ops.sort();
            ops
        };
        assert_eq!(ops(&store, "orders"), vec![Read, Write, Describe]);
        assert_eq!(ops(&store, "orders-eu-1"), vec![Write, Delete, Describe]);
        assert_eq!(ops(&store, "payments"), vec![Describe]);
        assert_eq!(ops(&store, "xylophone"), vec![Alter, Describe]);
        assert_eq!(ops(&store, "é-orders"), vec![Describe]);
        assert!(store.remove(&acl(Topic, "*", Literal, Describe)));
        assert!(!store.remove(&acl(Topic, "*", Literal, Describe)));
        assert_eq!(ops(&store, "payments"), Vec::<AclOperation>::new());
        assert!(!store.has_acls(Topic, "payments") && store.has_acls(Topic, "orders"));
        // Another principal's rules are not read; `User:*`'s are.
        let mut bob = acl(Topic, "orders", Literal, Write);
        bob.principal = "User:bob".into();
        let mut everyone = acl(Topic, "orders", Literal, Alter);
        everyone.principal = "User:*".into();
        assert!(store.insert(bob.clone()) && store.insert(everyone.clone()));
        assert_eq!(ops(&store, "orders"), vec![Read, Write, Alter]);
        assert!(store.remove(&bob) && store.remove(&everyone));
        let json = serde_json::to_string(&store).expect("serializes");
        let back: AclStore = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, store);
        assert_eq!(back.bindings().count(), 5);
    }
}
