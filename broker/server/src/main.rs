//! `runnel-broker`: parses flags, loads the config, starts tracing and runs the
//! broker until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches, Parser};
use runnel_config::KEYS;
use runnel_server::BrokerConfig;

/// jemalloc keeps the resident set near the live heap: glibc malloc's per-thread arenas held
/// about twice the live heap with 100,000 partitions, opened and closed by parallel threads
/// (issue 16's RSS row; `bench/compare.py --scale-big`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runnel broker: a Kafka-compatible event streaming server.
#[derive(Debug, Parser)]
#[command(name = "runnel-broker", version)]
struct Args {
    /// TOML config file (see runnel.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// [`Args`] plus one `--<key>` flag per config key, in [`KEYS`] order, each
/// taking the same text as the key's `RUNNEL_<KEY>` variable.
fn command() -> clap::Command {
    KEYS.iter().fold(Args::command(), |command, key| {
        command.arg(
            Arg::new(key.name)
                .long(key.flag())
                .value_name(key.name.to_ascii_uppercase())
                .help(key.help),
        )
    })
}

/// Loads the file and the environment, then applies the flags given.
fn load_config(args: &Args, matches: &ArgMatches) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::load(args.config.as_deref())?;
    for key in KEYS {
        if let Some(value) = matches.get_one::<String>(key.name) {
            config
                .set(key.name, value)
                .map_err(|e| anyhow::anyhow!("invalid value for --{}: {e}", key.flag()))?;
        }
    }
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(runnel_server::DEFAULT_LOG_FILTER)
            }),
        )
        .init();
    let config = load_config(&args, &matches).context("configuration error")?;
    runnel_server::run(config, runnel_server::shutdown_signal()?)
        .await
        .context("broker failed")?;
    Ok(())
}
