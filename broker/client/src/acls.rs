//! ACLs: CreateAcls, DescribeAcls and DeleteAcls, with Kafka's numeric codes
//! turned into names (`TOPIC`, `PREFIXED`, `READ`, `ALLOW`).

use kafka_protocol::messages::{
    create_acls_request, delete_acls_request, CreateAclsRequest, DeleteAclsRequest,
    DescribeAclsRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{check, Error, Result};

/// Kafka's resource types, operations, pattern types and permissions by name.
const RESOURCE_TYPES: [(&str, i8); 5] = [
    ("ANY", 1),
    ("TOPIC", 2),
    ("GROUP", 3),
    ("CLUSTER", 4),
    ("TRANSACTIONAL_ID", 5),
];
const PATTERN_TYPES: [(&str, i8); 4] = [("ANY", 1), ("MATCH", 2), ("LITERAL", 3), ("PREFIXED", 4)];
const OPERATIONS: [(&str, i8); 12] = [
    ("ANY", 1),
    ("ALL", 2),
    ("READ", 3),
    ("WRITE", 4),
    ("CREATE", 5),
    ("DELETE", 6),
    ("ALTER", 7),
    ("DESCRIBE", 8),
    ("CLUSTER_ACTION", 9),
    ("DESCRIBE_CONFIGS", 10),
    ("ALTER_CONFIGS", 11),
    ("IDEMPOTENT_WRITE", 12),
];
const PERMISSIONS: [(&str, i8); 3] = [("ANY", 1), ("DENY", 2), ("ALLOW", 3)];

fn code(table: &[(&str, i8)], what: &str, name: &str) -> Result<i8> {
    let wanted = name.to_ascii_uppercase().replace('-', "_");
    table
        .iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            Error::InvalidInput(format!(
                "unknown {what} '{name}' (one of {})",
                known.join(", ")
            ))
        })
}

fn name(table: &[(&str, i8)], code: i8) -> String {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| format!("UNKNOWN({code})"), |(n, _)| n.to_string())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One ACL, or (with `ANY`/`MATCH` and `None` fields) a filter of ACLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// `TOPIC`, `GROUP`, `CLUSTER` or `TRANSACTIONAL_ID` (`ANY` in a filter).
    pub resource_type: String,
    /// Resource name (`kafka-cluster` for the cluster; `None` in a filter: any).
    pub resource_name: Option<String>,
    /// `LITERAL` or `PREFIXED` (`ANY` or `MATCH` in a filter).
    pub pattern_type: String,
    /// `User:<name>` (`None` in a filter: any).
    pub principal: Option<String>,
    /// A host or `*` (`None` in a filter: any).
    pub host: Option<String>,
    /// `READ`, `WRITE`, ... (`ANY` in a filter).
    pub operation: String,
    /// `ALLOW` or `DENY` (`ANY` in a filter).
    pub permission: String,
}

impl Acl {
    /// An ACL from Kafka's codes.
    #[allow(clippy::too_many_arguments)]
    fn from_codes(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Acl {
        Acl {
            resource_type: name(&RESOURCE_TYPES, resource_type),
            resource_name: Some(resource_name.to_string()),
            pattern_type: name(&PATTERN_TYPES, pattern_type),
            principal: Some(principal.to_string()),
            host: Some(host.to_string()),
            operation: name(&OPERATIONS, operation),
            permission: name(&PERMISSIONS, permission),
        }
    }

    fn codes(&self) -> Result<(i8, i8, i8, i8)> {
        Ok((
            code(&RESOURCE_TYPES, "resource type", &self.resource_type)?,
            code(&PATTERN_TYPES, "pattern type", &self.pattern_type)?,
            code(&OPERATIONS, "operation", &self.operation)?,
            code(&PERMISSIONS, "permission", &self.permission)?,
        ))
    }
}

impl Client {
    /// Creates `acls`; the first one refused is the error.
    pub async fn create_acls(&self, acls: &[Acl]) -> Result<()> {
        let mut creations = Vec::with_capacity(acls.len());
        for acl in acls {
            let (rt, pt, op, perm) = acl.codes()?;
            creations.push(
                create_acls_request::AclCreation::default()
                    .with_resource_type(rt)
                    .with_resource_name(s(acl.resource_name.as_deref().unwrap_or_default()))
                    .with_resource_pattern_type(pt)
                    .with_principal(s(acl.principal.as_deref().unwrap_or_default()))
                    .with_host(s(acl.host.as_deref().unwrap_or("*")))
                    .with_operation(op)
                    .with_permission_type(perm),
            );
        }
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(CreateAclsRequest::default().with_creations(creations.clone()))
            })
            .await?;
        for (r, acl) in resp.results.iter().zip(acls) {
            check(
                r.error_code,
                || format!("ACL {acl:?}"),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// The ACLs matching `filter`.
    pub async fn describe_acls(&self, filter: &Acl) -> Result<Vec<Acl>> {
        let (rt, pt, op, perm) = filter.codes()?;
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(DescribeAclsRequest::default()
                    .with_resource_type_filter(rt)
                    .with_resource_name_filter(filter.resource_name.as_deref().map(s))
                    .with_pattern_type_filter(pt)
                    .with_principal_filter(filter.principal.as_deref().map(s))
                    .with_host_filter(filter.host.as_deref().map(s))
                    .with_operation(op)
                    .with_permission_type(perm))
            })
            .await?;
        check(
            resp.error_code,
            || "ACLs".to_string(),
            resp.error_message.as_deref(),
        )?;
        Ok(resp
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    Acl::from_codes(
                        r.resource_type,
                        &r.resource_name,
                        r.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect())
    }

    /// Deletes the ACLs matching `filter`; returns them.
    pub async fn delete_acls(&self, filter: &Acl) -> Result<Vec<Acl>> {
        let (rt, pt, op, perm) = filter.codes()?;
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(DeleteAclsRequest::default().with_filters(vec![
                    delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(rt)
                        .with_resource_name_filter(filter.resource_name.as_deref().map(s))
                        .with_pattern_type_filter(pt)
                        .with_principal_filter(filter.principal.as_deref().map(s))
                        .with_host_filter(filter.host.as_deref().map(s))
                        .with_operation(op)
                        .with_permission_type(perm),
                ]))
            })
            .await?;
        let mut deleted = Vec::new();
        for r in resp.filter_results {
            check(
                r.error_code,
                || "ACLs".to_string(),
                r.error_message.as_deref(),
            )?;
            deleted.extend(r.matching_acls.iter().map(|a| {
                Acl::from_codes(
                    a.resource_type,
                    &a.resource_name,
                    a.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )
            }));
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kafka_codes_and_back() {
        assert_eq!(
            code(&OPERATIONS, "operation", "describe-configs").ok(),
            Some(10)
        );
        assert_eq!(
            code(&RESOURCE_TYPES, "resource type", "topic").ok(),
            Some(2)
        );
        assert_eq!(name(&PATTERN_TYPES, 4), "PREFIXED");
        assert_eq!(name(&PERMISSIONS, 9), "UNKNOWN(9)");
        let err = code(&OPERATIONS, "operation", "fly").expect_err("unknown");
        assert!(err.to_string().contains("unknown operation 'fly'"), "{err}");
    }
}
