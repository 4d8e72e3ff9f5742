//! `runnel client-metrics list|describe|alter|delete`: client metrics subscriptions
//! (KIP-714), like `kafka-client-metrics --list|--describe|--alter|--delete`.

use anyhow::Result;
use runnel_client::{AlterConfigOp, Client};
use serde::Serialize;

use crate::cli::{ClientMetricsCommand, OutputFormat};
use crate::table::Table;

/// One config of a subscription as `describe` shows it.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    value: String,
}

pub(crate) async fn run(
    client: &Client,
    cmd: ClientMetricsCommand,
    output: OutputFormat,
) -> Result<()> {
    match cmd {
        ClientMetricsCommand::List => {
            let names = client.list_client_metrics().await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&names)?),
                OutputFormat::Table => {
                    for n in names {
                        println!("{n}");
                    }
                }
            }
        }
        ClientMetricsCommand::Describe { name } => {
            let rows: Vec<Row> = client
                .describe_client_metrics(&name)
                .await?
                .into_iter()
                .map(|e| Row {
                    name: e.name,
                    value: e.value.unwrap_or_default(),
                })
                .collect();
            if rows.is_empty() {
                anyhow::bail!("no client metrics subscription named '{name}'");
            }
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                OutputFormat::Table => {
                    let mut t = Table::new(&["CONFIG", "VALUE"]);
                    for r in &rows {
                        t.row(vec![r.name.clone(), r.value.clone()]);
                    }
                    print!("{}", t.render());
                }
            }
        }
        ClientMetricsCommand::Alter(args) => {
            let mut ops = Vec::new();
            if let Some(m) = args.metrics {
                ops.push(AlterConfigOp::Set("metrics".into(), m));
            }
            if let Some(ms) = args.interval_ms {
                ops.push(AlterConfigOp::Set("interval.ms".into(), ms.to_string()));
            }
            if let Some(m) = args.r#match {
                ops.push(AlterConfigOp::Set("match".into(), m));
            }
            client.alter_client_metrics(&args.name, &ops).await?;
            eprintln!("updated client metrics subscription {}", args.name);
        }
        ClientMetricsCommand::Delete { name } => {
            let ops = ["metrics", "interval.ms", "match"]
                .map(|k| AlterConfigOp::Delete(k.to_string()))
                .to_vec();
            client.alter_client_metrics(&name, &ops).await?;
            eprintln!("deleted client metrics subscription {name}");
        }
    }
    Ok(())
}
