//! `runnel quota describe|alter`: client quotas of users, client ids or both (by name or the
//! default), like `kafka-configs --entity-type clients|users --describe|--alter`.

use anyhow::{bail, Context, Result};
use runnel_client::{Client, QuotaEntity, QuotaOp};
use serde::Serialize;

use crate::cli::{OutputFormat, QuotaCommand, QuotaEntityArgs};
use crate::table::Table;

/// One quota as `quota describe` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct QuotaRow {
    pub(crate) entity: String,
    pub(crate) key: String,
    pub(crate) value: f64,
}

/// The filter (or entity) the flags name: `None` per type when not given.
fn entity(args: &QuotaEntityArgs) -> QuotaEntity {
    let pick = |name: &Option<String>, default: bool| match (name, default) {
        (Some(n), _) => Some(Some(n.clone())),
        (None, true) => Some(None),
        (None, false) => None,
    };
    QuotaEntity {
        user: pick(&args.user, args.user_default),
        client_id: pick(&args.client_id, args.client_default),
    }
}

pub(crate) async fn run(client: &Client, cmd: QuotaCommand, output: OutputFormat) -> Result<()> {
    match cmd {
        QuotaCommand::Describe(args) => {
            let filter = entity(&args);
            let found = client
                .describe_client_quotas(filter.user, filter.client_id)
                .await?;
            let rows: Vec<QuotaRow> = found
                .into_iter()
                .flat_map(|e| {
                    let name = e.entity.to_string();
                    e.values.into_iter().map(move |(key, value)| QuotaRow {
                        entity: name.clone(),
                        key,
                        value,
                    })
                })
                .collect();
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                OutputFormat::Table => {
                    let mut t = Table::new(&["ENTITY", "QUOTA", "VALUE"]);
                    for r in &rows {
                        t.row(vec![r.entity.clone(), r.key.clone(), r.value.to_string()]);
                    }
                    print!("{}", t.render());
                }
            }
        }
        QuotaCommand::Alter(args) => {
            let target = entity(&args.entity);
            if target.user.is_none() && target.client_id.is_none() {
                bail!("name a user (--user/--user-default), a client id (--client-id/--client-default) or both");
            }
            let mut ops = Vec::new();
            for (key, value) in args.add {
                let value: f64 = value
                    .parse()
                    .with_context(|| format!("quota {key}: '{value}' is not a number"))?;
                ops.push(QuotaOp {
                    key,
                    value: Some(value),
                });
            }
            ops.extend(
                args.delete
                    .into_iter()
                    .map(|key| QuotaOp { key, value: None }),
            );
            client.alter_client_quotas(&target, &ops, false).await?;
            eprintln!("updated quotas of {target}");
        }
    }
    Ok(())
}
