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
    runnel_server::run(config, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
