//! DescribeAcls, CreateAcls and DeleteAcls (v0 has literal patterns only):
//! ACLs kept in the metadata quorum, with Kafka's filters (ANY, MATCH) and
//! checks (an operation the resource type has, the cluster resource named
//! `kafka-cluster`, a principal `Type:name`). Describing needs DESCRIBE on the
//! cluster, creating and deleting ALTER, as in Kafka.

use std::net::IpAddr;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    create_acls_response, delete_acls_response, describe_acls_response, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_meta::{
    AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType, AclStore, Command,
};

use crate::api::RequestContext;
use crate::auth::authorizer::{
    operation_code, operation_of, pattern_filter_of, pattern_type_code, permission_code,
    permission_of, resource_type_code, resource_type_of, supported_operations, PatternFilter,
    CLUSTER_NAME,
};
use crate::broker::Broker;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An ACL filter (DescribeAcls, DeleteAcls): `None` fields match anything.
#[derive(Debug)]
struct Filter {
    resource_type: Option<AclResourceType>,
    name: Option<String>,
    pattern: PatternFilter,
    principal: Option<String>,
    host: Option<String>,
    operation: Option<AclOperation>,
    permission: Option<AclPermission>,
}

impl Filter {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        resource_type: i8,
        name: Option<&StrBytes>,
        pattern: i8,
        principal: Option<&StrBytes>,
        host: Option<&StrBytes>,
        operation: i8,
        permission: i8,
        version: i16,
    ) -> Result<Filter, String> {
        Ok(Filter {
            resource_type: resource_type_of(resource_type)?,
            name: name.map(|n| n.to_string()),
            // v0 knows literal patterns only.
            pattern: if version == 0 {
                PatternFilter::Exact(AclPatternType::Literal)
            } else {
                pattern_filter_of(pattern)?
            },
            principal: principal.map(|p| p.to_string()),
            host: host.map(|h| h.to_string()),
            operation: operation_of(operation)?,
            permission: permission_of(permission)?,
        })
    }

    fn matches(&self, b: &AclBinding) -> bool {
        let name_matches = match (&self.name, self.pattern) {
            (None, _) => true,
            (Some(name), PatternFilter::Match) => match b.pattern_type {
                AclPatternType::Literal => b.resource_name == *name || b.resource_name == "*",
                AclPatternType::Prefixed => name.starts_with(&b.resource_name),
            },
            (Some(name), _) => b.resource_name == *name,
        };
        let pattern_matches = match self.pattern {
            PatternFilter::Exact(p) => b.pattern_type == p,
            PatternFilter::Any | PatternFilter::Match => true,
        };
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && name_matches
            && pattern_matches
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }

    fn select(&self, acls: &AclStore) -> Vec<AclBinding> {
        acls.bindings().filter(|b| self.matches(b)).collect()
    }
}

/// Kafka's answer when no authorizer is configured.
fn security_disabled() -> (ResponseError, Option<StrBytes>) {
    (
        ResponseError::SecurityDisabled,
        Some(s(
            "the authorizer is off: ACLs need authorizer_enabled = true on the brokers",
        )),
    )
}

fn cluster_allowed(broker: &Broker, ctx: &RequestContext, op: AclOperation) -> bool {
    broker.authorize(
        &broker.cluster(),
        &ctx.session,
        op,
        AclResourceType::Cluster,
        CLUSTER_NAME,
    )
}

fn denied_message(op: &str) -> Option<StrBytes> {
    Some(s(&format!(
        "{op} ACLs needs the cluster permission this principal does not have"
    )))
}

/// Handles DescribeAcls.
pub(crate) async fn describe(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeAclsRequest,
    version: i16,
) -> DescribeAclsResponse {
    if !broker.authorizer.enabled {
        let (code, message) = security_disabled();
        return DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(message);
    }
    if !cluster_allowed(broker, ctx, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(denied_message("Describing"));
    }
    let filter = Filter::parse(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
        version,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(s(&e)))
        }
    };
    let state = broker.cluster();
    let mut resources: Vec<describe_acls_response::DescribeAclsResource> = Vec::new();
    for b in filter.select(&state.acls) {
        let description = describe_acls_response::AclDescription::default()
            .with_principal(s(&b.principal))
            .with_host(s(&b.host))
            .with_operation(operation_code(b.operation))
            .with_permission_type(permission_code(b.permission));
        let (t, p) = (
            resource_type_code(b.resource_type),
            pattern_type_code(b.pattern_type),
        );
        // Bindings come grouped by resource pattern.
        match resources.last_mut() {
            Some(r)
                if r.resource_type == t
                    && r.pattern_type == p
                    && r.resource_name.as_str() == b.resource_name =>
            {
                r.acls.push(description)
            }
            _ => resources.push(
                describe_acls_response::DescribeAclsResource::default()
                    .with_resource_type(t)
                    .with_resource_name(s(&b.resource_name))
                    .with_pattern_type(p)
                    .with_acls(vec![description]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// One ACL to create, checked.
fn check_creation(
    c: &kafka_protocol::messages::create_acls_request::AclCreation,
    version: i16,
) -> Result<AclBinding, String> {
    let resource_type =
        resource_type_of(c.resource_type)?.ok_or("the resource type of an ACL cannot be ANY")?;
    let pattern_type = if version == 0 {
        AclPatternType::Literal
    } else {
        match pattern_filter_of(c.resource_pattern_type)? {
            PatternFilter::Exact(p) => p,
            _ => return Err("the pattern type of an ACL must be LITERAL or PREFIXED".into()),
        }
    };
    let operation = operation_of(c.operation)?.ok_or("the operation of an ACL cannot be ANY")?;
    let permission =
        permission_of(c.permission_type)?.ok_or("the permission of an ACL cannot be ANY")?;
    let name = c.resource_name.to_string();
    if name.is_empty() {
        return Err("the resource name is empty".into());
    }
    if resource_type == AclResourceType::Cluster && name != CLUSTER_NAME {
        return Err(format!(
            "the cluster resource is named {CLUSTER_NAME}, not '{name}'"
        ));
    }
    if operation != AclOperation::All && !supported_operations(resource_type).contains(&operation) {
        return Err(format!(
            "operation {operation:?} does not apply to resource type {resource_type:?}"
        ));
    }
    let principal = c.principal.to_string();
    if !principal
        .split_once(':')
        .is_some_and(|(kind, user)| kind == "User" && !user.is_empty())
    {
        return Err(format!(
            "principal '{principal}' is not User:<name> (or User:*)"
        ));
    }
    let host = c.host.to_string();
    if host != "*" && host.parse::<IpAddr>().is_err() {
        return Err(format!("host '{host}' is neither * nor an IP address"));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: name,
        pattern_type,
        principal,
        host,
        operation,
        permission,
    })
}

/// Handles CreateAcls: every valid ACL is created; each invalid one gets INVALID_REQUEST.
pub(crate) async fn create(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreateAclsRequest,
    version: i16,
) -> CreateAclsResponse {
    let allowed = cluster_allowed(broker, ctx, AclOperation::Alter);
    let checked: Vec<Result<AclBinding, (ResponseError, String)>> = request
        .creations
        .iter()
        .map(|c| {
            if !broker.authorizer.enabled {
                let (code, message) = security_disabled();
                return Err((code, message.map(|m| m.to_string()).unwrap_or_default()));
            }
            if !allowed {
                return Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "creating ACLs needs ALTER on the cluster".to_string(),
                ));
            }
            check_creation(c, version).map_err(|e| (ResponseError::InvalidRequest, e))
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|r| r.clone().ok()).collect();
    let applied = if valid.is_empty() {
        Ok(())
    } else {
        broker.propose(Command::CreateAcls(valid)).await.map(|_| ())
    };
    let results = checked
        .into_iter()
        .map(|r| {
            let (code, message) = match (r, &applied) {
                (Ok(_), Ok(())) => (0, None),
                (Ok(_), Err(e)) => (e.code(), e.message.clone()),
                (Err((code, message)), _) => (code.code(), Some(message)),
            };
            create_acls_response::AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// Handles DeleteAcls: each filter's matching ACLs are deleted and listed.
pub(crate) async fn delete(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteAclsRequest,
    version: i16,
) -> DeleteAclsResponse {
    let allowed = cluster_allowed(broker, ctx, AclOperation::Alter);
    let state = broker.cluster();
    let mut results = Vec::with_capacity(request.filters.len());
    for f in &request.filters {
        let result = delete_acls_response::DeleteAclsFilterResult::default();
        if !broker.authorizer.enabled {
            let (code, message) = security_disabled();
            results.push(
                result
                    .with_error_code(code.code())
                    .with_error_message(message),
            );
            continue;
        }
        if !allowed {
            results.push(
                result
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(denied_message("Deleting")),
            );
            continue;
        }
        let filter = Filter::parse(
            f.resource_type_filter,
            f.resource_name_filter.as_ref(),
            f.pattern_type_filter,
            f.principal_filter.as_ref(),
            f.host_filter.as_ref(),
            f.operation,
            f.permission_type,
            version,
        );
        let filter = match filter {
            Ok(filter) => filter,
            Err(e) => {
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(s(&e))),
                );
                continue;
            }
        };
        let matching = filter.select(&state.acls);
        if !matching.is_empty() {
            if let Err(e) = broker.propose(Command::DeleteAcls(matching.clone())).await {
                results.push(
                    result
                        .with_error_code(e.code())
                        .with_error_message(e.message.map(StrBytes::from_string)),
                );
                continue;
            }
        }
        results.push(
            result.with_matching_acls(
                matching
                    .iter()
                    .map(|b| {
                        delete_acls_response::DeleteAclsMatchingAcl::default()
                            .with_resource_type(resource_type_code(b.resource_type))
                            .with_resource_name(s(&b.resource_name))
                            .with_pattern_type(pattern_type_code(b.pattern_type))
                            .with_principal(s(&b.principal))
                            .with_host(s(&b.host))
                            .with_operation(operation_code(b.operation))
                            .with_permission_type(permission_code(b.permission))
                    })
                    .collect(),
            ),
        );
    }
    DeleteAclsResponse::default().with_filter_results(results)
}
