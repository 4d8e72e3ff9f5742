//! `runnel dev`: one broker in this process, for local development.

use anyhow::{Context, Result};
use runnel_server::BrokerConfig;

use crate::cli::DevArgs;

/// The broker configuration for `runnel dev`: the usual `RUNNEL_*`
/// environment overrides, then the dev flags (whose defaults differ from the
/// broker's: data in `./runnel-data`).
pub(crate) fn config(args: DevArgs) -> Result<BrokerConfig> {
    let mut config = BrokerConfig::load(None).context("invalid broker configuration")?;
    config.data_dir = args.data_dir;
    config.listen = args.listen;
    config.admin_listen = args.admin_listen;
    Ok(config)
}

/// Runs the broker until Ctrl-C or SIGTERM; it prints its ready line itself.
pub(crate) async fn run(args: DevArgs) -> Result<()> {
    let config = config(args)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let shutdown =
        runnel_server::signals::shutdown_signal().context("cannot install signal handlers")?;
    runnel_server::run(config, shutdown).await?;
    Ok(())
}
