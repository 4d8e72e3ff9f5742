//! The admin HTTP port: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! What a client can make it hold is bounded: hyper keeps at most ~400 KiB
//! of request head per connection (larger heads get 431), no handler reads a
//! request body (and [`MAX_BODY_BYTES`] caps any that would), at most
//! [`MAX_CONNECTIONS`] connections are served at once (more wait in the
//! kernel's backlog), and a connection that sends nothing for
//! [`READ_IDLE_TIMEOUT`] is closed so stalled clients give their place back.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::broker::Broker;
use crate::runtime::wait_shutdown;

/// Builds the admin router.
pub(crate) fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(broker)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    broker.groups.refresh_metrics(&broker.metrics);
    broker.metrics.txn_open.set(
        broker
            .txns
            .snapshot()
            .iter()
            .filter(|t| {
                t.status == crate::txn::state::TxnStatus::Ongoing || t.status.is_preparing()
            })
            .count() as i64,
    );
    broker
        .metrics
        .cluster
        .refresh(&broker.cluster(), &broker.meta.quorum(), broker.node_id());
    let text = broker.metrics.render(
        &broker.topics,
        broker.telemetry.family(crate::runtime::now_ms()),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn readyz(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    if broker.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Largest request body a handler may read (none does today).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Admin connections served at once (Prometheus, kubelet probes and a human
/// or two need a handful).
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// A connection that sends nothing for this long while the server waits for
/// its next bytes is closed.
pub(crate) const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin listener: accepts only while fewer than [`MAX_CONNECTIONS`] are
/// open, and wraps each connection in a read idle timeout.
struct Limited {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl axum::serve::Listener for Limited {
    type Io = IdleTimeout;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleTimeout, SocketAddr) {
        loop {
            // The semaphore is never closed.
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    return (IdleTimeout::new(stream, slot, READ_IDLE_TIMEOUT), peer)
                }
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection whose reads fail once no byte arrived for [`READ_IDLE_TIMEOUT`];
/// it holds its listener slot until dropped.
struct IdleTimeout {
    stream: TcpStream,
    timeout: Duration,
    idle: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl IdleTimeout {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, timeout: Duration) -> IdleTimeout {
        IdleTimeout {
            stream,
            timeout,
            idle: Box::pin(tokio::time::sleep(timeout)),
            _slot: slot,
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let deadline = Instant::now() + self.timeout;
                    self.idle.as_mut().reset(deadline);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves the admin port until shutdown.
pub(crate) async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let app = router(broker);
    let listener = Limited {
        listener,
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { wait_shutdown(&mut shutdown).await })
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "admin http server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_frees_its_slot() {
        let timeout = Duration::from_millis(200);
        let (mut client, server) = pair().await;
        let slots = Arc::new(Semaphore::new(1));
        let slot = slots.clone().acquire_owned().await.unwrap();
        let mut conn = IdleTimeout::new(server, slot, timeout);
        client.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 3);
        let started = Instant::now();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout);
        assert_eq!(slots.available_permits(), 0);
        drop(conn);
        assert_eq!(slots.available_permits(), 1);
    }
}
