//! The `User` kind: a principal of a `Cluster` (a SCRAM user or a TLS client certificate's
//! subject) and the ACLs it holds, managed through the Kafka admin API.

// KubeSchema's derive re-declares each struct (with its `pub` fields) inside a function to build
// the schema; unreachable_pub fires on that private copy, so it is allowed for this module.
#![allow(unreachable_pub)]
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a user.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    shortname = "ruser",
    category = "runnel",
    derive = "PartialEq",
    doc = "A principal of a Runnel Cluster (SCRAM credentials or a TLS certificate subject) and its ACLs; the manifest is the source of truth.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(
        name = "Authentication",
        type_ = "string",
        json_path = ".spec.authentication.type"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// Name of the Cluster (same namespace) the user belongs to; immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: String,

    /// How the user proves who it is.
    pub authentication: UserAuthentication,

    /// The user's ACLs: the brokers hold exactly these for its principal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub acls: Vec<AclRule>,
}

/// How a user authenticates.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'tls' || !has(self.password)").message("a tls user has no password"))]
pub struct UserAuthentication {
    /// `scram-sha-256` or `scram-sha-512` (SASL SCRAM credentials stored by the brokers), or
    /// `tls` (a client certificate whose subject is exactly `CN=<metadata.name>`; the brokers
    /// name it `User:CN=<metadata.name>`).
    #[serde(rename = "type")]
    pub type_: AuthenticationType,

    /// Where a SCRAM user's password is; unset: the operator generates one into the Secret
    /// named like the User (keys `username` and `password`), owned by the User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// A user's authentication mechanism.
#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthenticationType {
    /// SCRAM-SHA-256.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// Mutual TLS: the client certificate's subject is the principal.
    #[serde(rename = "tls")]
    Tls,
}

/// Where a password is read from.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    /// A key of a Secret in the User's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the same namespace.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// One ACL of a user (Kafka's ACL binding with the user's principal).
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.resourceType == 'cluster' ? (!has(self.name) || self.name == 'kafka-cluster') : has(self.name)").message("name is required, except for the cluster resource (whose name is kafka-cluster)"),
    validation = Rule::new("self.resourceType != 'cluster' || !has(self.patternType) || self.patternType == 'literal'").message("the cluster resource takes patternType literal")
)]
pub struct AclRule {
    /// The kind of resource.
    pub resource_type: AclResourceType,
    /// The resource name (or prefix, with `patternType: prefixed`); `*` is every resource of
    /// the type. Not needed for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// Whether `name` is the resource's name or a prefix of it.
    #[serde(default)]
    pub pattern_type: AclPatternType,
    /// The operation allowed or denied.
    pub operation: AclOperation,
    /// The client host the ACL applies to; `*` is any.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1, max = 255))]
    pub host: String,
    /// Allow or deny (a deny wins over any allow).
    #[serde(default)]
    pub permission_type: AclPermission,
}

fn any_host() -> String {
    "*".to_string()
}

/// Kafka's ACL resource types.
#[derive(
    JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (`kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
}

impl AclResourceType {
    /// Kafka's name (`TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclResourceType::Topic => "TOPIC",
            AclResourceType::Group => "GROUP",
            AclResourceType::Cluster => "CLUSTER",
            AclResourceType::TransactionalId => "TRANSACTIONAL_ID",
        }
    }
}

/// How an ACL's name matches resources.
#[derive(
    JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum AclPatternType {
    /// The exact name (or `*`).
    #[default]
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

impl AclPatternType {
    /// Kafka's name (`LITERAL`, `PREFIXED`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPatternType::Literal => "LITERAL",
            AclPatternType::Prefixed => "PREFIXED",
        }
    }
}

/// Kafka's ACL operations.
#[derive(
    JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum AclOperation {
    /// Every operation.
    All,
    /// Read (fetch, group membership, offset commits).
    Read,
    /// Write (produce).
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records, groups.
    Delete,
    /// Alter (partitions, ACLs, reassignments).
    Alter,
    /// Describe.
    Describe,
    /// Inter-broker actions (replication).
    ClusterAction,
    /// Describe configs.
    DescribeConfigs,
    /// Alter configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
}

impl AclOperation {
    /// Kafka's name (`READ`, `DESCRIBE_CONFIGS`, ...).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
        }
    }
}

/// Allow or deny.
#[derive(
    JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum AclPermission {
    /// Allow.
    #[default]
    Allow,
    /// Deny.
    Deny,
}

impl AclPermission {
    /// Kafka's name (`ALLOW`, `DENY`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPermission::Allow => "ALLOW",
            AclPermission::Deny => "DENY",
        }
    }
}

/// The SCRAM credential the operator last set on the brokers, so a changed Secret (or
/// mechanism) is applied again; it names the Secret's version, never the password.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedCredential {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// The Secret the password was read from.
    pub secret: String,
    /// Its key.
    pub key: String,
    /// The Secret's resourceVersion when the password was read.
    pub resource_version: String,
}

/// Observed state of a user.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// Ready and other standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The principal the brokers know the user as (`User:<name>`, or `User:CN=<name>` for tls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,

    /// The Secret holding the user's password (SCRAM users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,

    /// The SCRAM credential last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<AppliedCredential>,

    /// Number of ACLs the brokers hold for the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<i32>,
}
