//! Runtime helpers every part of the broker shares: the clock, the shutdown
//! flag and the process signals that raise it, and the default leader epoch.
//! Nothing here imports another module of this crate, so anything may import it.
//!
//! The signal handlers are installed when [`shutdown_signal`] is called, not
//! when its future is first polled: the ready line is printed before `run`
//! polls the shutdown future, and a SIGTERM arriving in between must still mean
//! a graceful stop rather than the default action (death by signal).

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub use runnel_log::clock::now_ms;

/// Leader epoch written into batches appended without a known epoch (the
/// replication layer passes the partition's real epoch).
pub(crate) const LEADER_EPOCH: i32 = 0;

/// The log filter when `RUST_LOG` is unset: Runnel's own crates at INFO,
/// dependencies (openraft dumps whole Raft states at INFO, hyper, tonic...)
/// only at WARN. `RUST_LOG=info` or `RUST_LOG=openraft=debug` turns them on.
pub const DEFAULT_LOG_FILTER: &str =
    "warn,runnel_server=info,runnel_broker=info,runnel_meta=info,runnel_log=info,runnel_client=info,runnel=info";

/// Waits until the shutdown flag is set (or its sender is gone).
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Installs SIGTERM and SIGINT handlers now and returns a future that resolves
/// on the first of them. Must be called inside a tokio runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    })
}
