//! The admin HTTP port: `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::broker::{wait_shutdown, Broker};

/// Builds the admin router.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(broker)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    broker.groups.refresh_metrics(&broker.metrics);
    broker
        .metrics
        .cluster
        .refresh(&broker.cluster(), &broker.meta.quorum(), broker.node_id());
    let text = broker.metrics.render(&broker.topics);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn readyz(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    if broker.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves the admin port until shutdown.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let app = router(broker);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { wait_shutdown(&mut shutdown).await })
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "admin http server failed");
    }
}
