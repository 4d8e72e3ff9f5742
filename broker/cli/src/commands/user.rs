//! `runnel user create|delete|list`: SASL/SCRAM users, like `kafka-configs
//! --entity-type users` with SCRAM-SHA-256/512 credentials.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use runnel_client::scram::ScramHash;
use runnel_client::{Client, ScramChange};
use serde::Serialize;

use crate::cli::{OutputFormat, ScramMechanismArg, UserCommand, UserCreateArgs};
use crate::table::Table;

fn hashes(args: &[ScramMechanismArg]) -> Vec<ScramHash> {
    let all = [ScramMechanismArg::Sha256, ScramMechanismArg::Sha512];
    let chosen = if args.is_empty() { &all[..] } else { args };
    let mut out: Vec<ScramHash> = chosen
        .iter()
        .map(|m| match m {
            ScramMechanismArg::Sha256 => ScramHash::Sha256,
            ScramMechanismArg::Sha512 => ScramHash::Sha512,
        })
        .collect();
    out.dedup();
    out
}

fn read_password(args: &UserCreateArgs) -> Result<String> {
    let line = match &args.password_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line
        }
    };
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// One user in `list`.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    mechanisms: Vec<Mechanism>,
}

#[derive(Debug, Serialize)]
struct Mechanism {
    mechanism: String,
    iterations: i32,
}

pub(crate) async fn run(client: &Client, cmd: UserCommand, output: OutputFormat) -> Result<()> {
    match cmd {
        UserCommand::Create(args) => {
            let password = read_password(&args)?;
            let changes: Vec<ScramChange> = hashes(&args.mechanism)
                .into_iter()
                .map(|hash| ScramChange::Upsert {
                    user: args.name.clone(),
                    hash,
                    password: password.clone(),
                    iterations: args.iterations,
                })
                .collect();
            client.alter_scram_users(&changes).await?;
            println!("user '{}' has its password set", args.name);
        }
        UserCommand::Delete { name, mechanism } => {
            let chosen = if mechanism.is_empty() {
                // Every mechanism the user has.
                let users = client
                    .describe_scram_users(std::slice::from_ref(&name))
                    .await?;
                users
                    .into_iter()
                    .flat_map(|u| u.credentials)
                    .filter_map(|(m, _)| ScramHash::from_mechanism(&m))
                    .collect()
            } else {
                hashes(&mechanism)
            };
            let changes: Vec<ScramChange> = chosen
                .into_iter()
                .map(|hash| ScramChange::Delete {
                    user: name.clone(),
                    hash,
                })
                .collect();
            client.alter_scram_users(&changes).await?;
            println!("user '{name}' deleted");
        }
        UserCommand::List { names } => {
            let rows: Vec<Listed> = client
                .describe_scram_users(&names)
                .await?
                .into_iter()
                .map(|u| Listed {
                    name: u.name,
                    mechanisms: u
                        .credentials
                        .into_iter()
                        .map(|(mechanism, iterations)| Mechanism {
                            mechanism,
                            iterations,
                        })
                        .collect(),
                })
                .collect();
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                OutputFormat::Table => {
                    let mut t = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
                    for r in &rows {
                        for m in &r.mechanisms {
                            t.row(vec![
                                r.name.clone(),
                                m.mechanism.clone(),
                                m.iterations.to_string(),
                            ]);
                        }
                    }
                    print!("{}", t.render());
                }
            }
        }
    }
    Ok(())
}
