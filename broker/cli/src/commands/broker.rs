//! `runnel broker describe|alter`: a broker's configs with their sources, and
//! changes to the dynamic ones (the replication throttle rates), per broker id
//! or cluster-wide default, like `kafka-configs --entity-type brokers`.

use anyhow::Result;
use runnel_client::{AlterConfigOp, Client, ConfigEntry};
use serde::Serialize;

use crate::cli::{BrokerCommand, OutputFormat};
use crate::table::Table;

/// One config as `broker describe` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ConfigRow {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) source: &'static str,
    pub(crate) read_only: bool,
}

/// Kafka's name for a config source code.
fn source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

fn rows(entries: Vec<ConfigEntry>) -> Vec<ConfigRow> {
    entries
        .into_iter()
        .map(|e| ConfigRow {
            value: if e.is_sensitive { None } else { e.value },
            source: source_name(e.source),
            read_only: e.read_only,
            name: e.name,
        })
        .collect()
}

fn render(rows: &[ConfigRow]) -> String {
    let mut t = Table::new(&["NAME", "VALUE", "SOURCE", "DYNAMIC"]);
    for r in rows {
        t.row(vec![
            r.name.clone(),
            r.value.clone().unwrap_or_default(),
            r.source.to_string(),
            if r.read_only { "no" } else { "yes" }.to_string(),
        ]);
    }
    t.render()
}

pub(crate) async fn run(client: &Client, cmd: BrokerCommand, output: OutputFormat) -> Result<()> {
    match cmd {
        BrokerCommand::Describe(target) => {
            let id = target.broker;
            let rows = rows(client.describe_broker_configs(id).await?);
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                OutputFormat::Table => print!("{}", render(&rows)),
            }
        }
        BrokerCommand::Alter(args) => {
            let mut ops: Vec<AlterConfigOp> = args
                .configs
                .into_iter()
                .map(|(k, v)| AlterConfigOp::Set(k, v))
                .collect();
            ops.extend(args.delete_configs.into_iter().map(AlterConfigOp::Delete));
            client
                .alter_broker_configs(args.target.broker, &ops, false)
                .await?;
            match args.target.broker {
                Some(id) => eprintln!("updated configs of broker {id}"),
                None => eprintln!("updated the cluster-wide broker defaults"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_kafkas_sources_and_hide_sensitive_values() {
        let entry = |name: &str, source: i8, read_only: bool, sensitive: bool| ConfigEntry {
            name: name.into(),
            value: Some("1".into()),
            read_only,
            source,
            is_sensitive: sensitive,
        };
        let r = rows(vec![
            entry("leader.replication.throttled.rate", 2, false, false),
            entry("secret", 4, true, true),
        ]);
        assert_eq!(r[0].source, "DYNAMIC_BROKER_CONFIG");
        assert_eq!(r[1].value, None);
        let text = render(&r);
        assert!(
            text.contains("leader.replication.throttled.rate  1      DYNAMIC_BROKER_CONFIG  yes"),
            "{text}"
        );
    }
}
