//! `runnel transactions list|describe`: the transactional ids the brokers
//! coordinate, and one id's state, like `kafka-transactions list|describe`.

use anyhow::Result;
use runnel_client::Client;
use serde::Serialize;

use crate::cli::{OutputFormat, TransactionsCommand};
use crate::table::Table;

/// One id in `list`.
#[derive(Debug, Serialize)]
struct Listed {
    transactional_id: String,
    producer_id: i64,
    state: String,
    coordinator: i32,
}

/// `describe`'s answer.
#[derive(Debug, Serialize)]
struct Described {
    transactional_id: String,
    coordinator: i32,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    start_time_ms: i64,
    partitions: Vec<String>,
}

pub(crate) async fn run(
    client: &Client,
    cmd: TransactionsCommand,
    output: OutputFormat,
) -> Result<()> {
    match cmd {
        TransactionsCommand::List => {
            let rows: Vec<Listed> = client
                .list_transactions()
                .await?
                .into_iter()
                .map(|t| Listed {
                    transactional_id: t.transactional_id,
                    producer_id: t.producer_id,
                    state: t.state,
                    coordinator: t.coordinator,
                })
                .collect();
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                OutputFormat::Table => {
                    let mut t =
                        Table::new(&["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"]);
                    for r in &rows {
                        t.row(vec![
                            r.transactional_id.clone(),
                            r.producer_id.to_string(),
                            r.state.clone(),
                            r.coordinator.to_string(),
                        ]);
                    }
                    print!("{}", t.render());
                }
            }
        }
        TransactionsCommand::Describe { transactional_id } => {
            let d = client.describe_transaction(&transactional_id).await?;
            let d = Described {
                transactional_id: d.transactional_id,
                coordinator: d.coordinator,
                state: d.state,
                producer_id: d.producer_id,
                producer_epoch: d.producer_epoch,
                timeout_ms: d.timeout_ms,
                start_time_ms: d.start_time_ms,
                partitions: d.partitions,
            };
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&d)?),
                OutputFormat::Table => {
                    let mut t = Table::new(&["FIELD", "VALUE"]);
                    let fields = [
                        ("TransactionalId", d.transactional_id.clone()),
                        ("Coordinator", d.coordinator.to_string()),
                        ("State", d.state.clone()),
                        ("ProducerId", d.producer_id.to_string()),
                        ("ProducerEpoch", d.producer_epoch.to_string()),
                        ("TimeoutMs", d.timeout_ms.to_string()),
                        ("StartTimeMs", d.start_time_ms.to_string()),
                        ("Partitions", d.partitions.join(",")),
                    ];
                    for (k, v) in fields {
                        t.row(vec![k.to_string(), v]);
                    }
                    print!("{}", t.render());
                }
            }
        }
    }
    Ok(())
}
