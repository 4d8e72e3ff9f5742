//! `runnel acl create|list|delete`: ACLs, like `kafka-acls --add|--list|--remove`.

use anyhow::{bail, Result};
use runnel_client::{Acl, Client};
use serde::Serialize;

use crate::cli::{AclCommand, AclFilterArgs, AclResourceArgs, OutputFormat};
use crate::table::Table;

/// The resource type and name the flags give (`None`: no resource named).
fn resource(args: &AclResourceArgs) -> Option<(&'static str, String)> {
    if let Some(t) = &args.topic {
        Some(("TOPIC", t.clone()))
    } else if let Some(g) = &args.group {
        Some(("GROUP", g.clone()))
    } else if args.cluster {
        Some(("CLUSTER", "kafka-cluster".to_string()))
    } else {
        args.transactional_id
            .as_ref()
            .map(|t| ("TRANSACTIONAL_ID", t.clone()))
    }
}

fn filter(args: &AclFilterArgs) -> Acl {
    let named = resource(&args.resource);
    Acl {
        resource_type: named.as_ref().map_or("ANY", |(t, _)| t).to_string(),
        resource_name: named.map(|(_, n)| n),
        pattern_type: args
            .resource
            .resource_pattern_type
            .clone()
            .unwrap_or_else(|| "ANY".into()),
        principal: args.principal.clone(),
        host: None,
        operation: args.operation.clone().unwrap_or_else(|| "ANY".into()),
        permission: args.permission.clone().unwrap_or_else(|| "ANY".into()),
    }
}

/// One ACL as printed.
#[derive(Debug, Serialize)]
struct Row {
    resource_type: String,
    resource_name: String,
    pattern_type: String,
    principal: String,
    host: String,
    operation: String,
    permission: String,
}

fn print(acls: Vec<Acl>, output: OutputFormat) -> Result<()> {
    let rows: Vec<Row> = acls
        .into_iter()
        .map(|a| Row {
            resource_type: a.resource_type,
            resource_name: a.resource_name.unwrap_or_default(),
            pattern_type: a.pattern_type,
            principal: a.principal.unwrap_or_default(),
            host: a.host.unwrap_or_default(),
            operation: a.operation,
            permission: a.permission,
        })
        .collect();
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
        OutputFormat::Table => {
            let mut t = Table::new(&[
                "RESOURCE-TYPE",
                "NAME",
                "PATTERN",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
            ]);
            for r in rows {
                t.row(vec![
                    r.resource_type,
                    r.resource_name,
                    r.pattern_type,
                    r.principal,
                    r.host,
                    r.operation,
                    r.permission,
                ]);
            }
            print!("{}", t.render());
        }
    }
    Ok(())
}

pub(crate) async fn run(client: &Client, cmd: AclCommand, output: OutputFormat) -> Result<()> {
    match cmd {
        AclCommand::Create(args) => {
            let Some((resource_type, resource_name)) = resource(&args.resource) else {
                bail!("name a resource: --topic, --group, --cluster or --transactional-id");
            };
            let pattern_type = args
                .resource
                .resource_pattern_type
                .clone()
                .unwrap_or_else(|| "LITERAL".into());
            let principals = args
                .allow_principal
                .iter()
                .map(|p| (p, "ALLOW"))
                .chain(args.deny_principal.iter().map(|p| (p, "DENY")));
            let mut acls = Vec::new();
            for (principal, permission) in principals {
                for operation in &args.operation {
                    acls.push(Acl {
                        resource_type: resource_type.to_string(),
                        resource_name: Some(resource_name.clone()),
                        pattern_type: pattern_type.clone(),
                        principal: Some(principal.clone()),
                        host: Some(args.host.clone()),
                        operation: operation.clone(),
                        permission: permission.to_string(),
                    });
                }
            }
            client.create_acls(&acls).await?;
            println!("created {} ACL(s)", acls.len());
        }
        AclCommand::List(args) => print(client.describe_acls(&filter(&args)).await?, output)?,
        AclCommand::Delete(args) => {
            if resource(&args.resource).is_none() && args.principal.is_none() {
                bail!("name a resource (--topic, --group, --cluster, --transactional-id) or a --principal: deleting every ACL at once is not offered");
            }
            let deleted = client.delete_acls(&filter(&args)).await?;
            if output == OutputFormat::Table {
                println!("deleted {} ACL(s)", deleted.len());
            }
            print(deleted, output)?;
        }
    }
    Ok(())
}
