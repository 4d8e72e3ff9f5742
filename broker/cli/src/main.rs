//! `runnel`: the command line for Runnel — a local dev broker, topic and
//! consumer group administration, and console produce/consume against any
//! Kafka-compatible broker. This file only wires parsing, logging and exit codes.

mod cli;
mod client_settings;
mod commands;
mod table;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use runnel_client::{Client, ClientConfig};

use cli::{Cli, Command};

/// `runnel dev` runs brokers in this process: the allocator runnel-broker uses (see its main.rs).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints usage errors and exits with code 2 itself.
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Dev(_)));
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = ClientConfig::new(cli.bootstrap_server.clone());
    client_settings::apply(
        &mut config,
        cli.command_config.as_deref(),
        cli.sasl_mechanism.as_deref(),
        cli.sasl_username.as_deref(),
    )?;
    let connect = || Client::connect(config.clone());
    match cli.command {
        Command::Dev(args) => commands::dev::run(args).await,
        Command::Topic(cmd) => commands::topic::run(&connect().await?, cmd, cli.output).await,
        Command::Produce(args) => commands::produce::run(&connect().await?, args).await,
        Command::Consume(args) => commands::consume::run(connect().await?, args).await,
        Command::Group(cmd) => commands::group::run(&connect().await?, cmd, cli.output).await,
        Command::Cluster(cmd) => commands::cluster::run(&connect().await?, cmd, cli.output).await,
        Command::Broker(cmd) => commands::broker::run(&connect().await?, cmd, cli.output).await,
        Command::Quota(cmd) => commands::quota::run(&connect().await?, cmd, cli.output).await,
        Command::Transactions(cmd) => {
            commands::transactions::run(&connect().await?, cmd, cli.output).await
        }
        Command::ClientMetrics(cmd) => {
            commands::client_metrics::run(&connect().await?, cmd, cli.output).await
        }
        Command::User(cmd) => commands::user::run(&connect().await?, cmd, cli.output).await,
        Command::Acl(cmd) => commands::acl::run(&connect().await?, cmd, cli.output).await,
    }
}

/// Logs go to stderr. The brokers of `runnel dev` log Runnel's own INFO lines
/// (dependencies only warn); client commands only warn, so their stdout/stderr
/// stay clean for scripts. RUST_LOG wins.
fn init_logging(dev: bool) {
    let default = if dev {
        runnel_server::DEFAULT_LOG_FILTER
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already contains (many errors embed their source in their own text).
fn render_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot bind: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("address in use");
        let err = anyhow::Error::new(Outer(io)).context("starting");
        assert_eq!(render_error(&err), "starting: cannot bind: address in use");
    }
}
