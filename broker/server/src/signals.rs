//! Process signals that stop the broker.
//!
//! The handlers are installed when [`shutdown_signal`] is called, not when its
//! future is first polled: the ready line is printed before `run` polls the
//! shutdown future, and a SIGTERM arriving in between must still mean a
//! graceful stop rather than the default action (death by signal).

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

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
