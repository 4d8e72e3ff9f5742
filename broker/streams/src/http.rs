//! The HTTP endpoint of an instance: interactive queries of its stores, which instance holds a
//! key, the running tasks, and `/metrics`.
//!
//! - `GET /stores/{store}/keys/{key}`: the key's value (a window store: its windows); 404 when
//!   the key has none; 421 with `partition` and `owner` when another instance holds it.
//! - `GET /stores/{store}/owner/{key}`: `{"partition", "owner"}` (`owner` is that instance's
//!   `application.server`, from the group's current assignment).
//! - `GET /stores/{store}/all?from=&to=`: the entries held here, in serialized-key order.
//! - `GET /tasks`: the tasks running here. `GET /metrics`: Prometheus text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::RwLock;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::metrics::Metrics;
use crate::query::{Lookup, Registry};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    pub(crate) tasks: Arc<RwLock<Vec<String>>>,
    pub(crate) owners: Arc<Owners>,
}

/// Finds the instance that holds a partition from the group's assignment (DescribeGroups).
pub(crate) struct Owners {
    client: BaseConsumer,
    group: String,
}

impl Owners {
    pub(crate) fn new(config: &StreamsConfig) -> Result<Self> {
        Ok(Owners {
            client: config
                .client_config()
                .create()
                .map_err(|e| StreamsError::kafka("creating the query metadata client", e))?,
            group: config.application_id.clone(),
        })
    }

    /// The `application.server` of the member assigned `topic`/`partition`, if any.
    fn owner(&self, topic: &str, partition: i32) -> Result<Option<String>> {
        let groups = self
            .client
            .fetch_group_list(Some(&self.group), Duration::from_secs(10))
            .map_err(|e| StreamsError::kafka("describing the application's group", e))?;
        for group in groups.groups() {
            for member in group.members() {
                let Some(assignment) = member.assignment() else {
                    continue;
                };
                if assigned(assignment)
                    .iter()
                    .any(|(t, p)| t == topic && *p == partition)
                {
                    return Ok(member
                        .client_id()
                        .split_once('@')
                        .map(|(_, server)| server.to_string()));
                }
            }
        }
        Ok(None)
    }
}

/// The partitions of a consumer-protocol assignment (version, [topic, [partition]], user data).
fn assigned(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    fn i16(b: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(b, 2)?.try_into().ok()?))
    }
    fn i32(b: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(b, 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    let mut b = bytes;
    let parse = |b: &mut &[u8], out: &mut Vec<(String, i32)>| -> Option<()> {
        i16(b)?;
        for _ in 0..i32(b)?.max(0) {
            let len = i16(b)?.max(0) as usize;
            let topic = String::from_utf8_lossy(take(b, len)?).into_owned();
            for _ in 0..i32(b)?.max(0) {
                out.push((topic.clone(), i32(b)?));
            }
        }
        Some(())
    };
    let _ = parse(&mut b, &mut out);
    out
}

/// A running endpoint.
pub(crate) struct HttpServer {
    pub(crate) address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub(crate) fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn serve(listen: SocketAddr, state: HttpState) -> Result<HttpServer> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| StreamsError::Config(format!("binding {listen}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| StreamsError::Config(format!("{listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| StreamsError::Config(format!("{listen}: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new()
        .route("/stores/{store}/keys/{key}", get(key))
        .route("/stores/{store}/owner/{key}", get(owner))
        .route("/stores/{store}/all", get(all))
        .route("/tasks", get(tasks))
        .route("/metrics", get(metrics))
        .with_state(state);
    let thread = std::thread::Builder::new()
        .name("streams-http".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the HTTP endpoint cannot start");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the HTTP endpoint cannot start");
                        return;
                    }
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        })
        .map_err(|e| StreamsError::Config(format!("HTTP thread: {e}")))?;
    tracing::info!(%address, "interactive queries served");
    Ok(HttpServer {
        address,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn key(
    State(state): State<HttpState>,
    Path((store, key)): Path<(String, String)>,
) -> Response {
    match state.registry.lookup(&store, &key) {
        Ok(Lookup::Found(value)) => Json(json!({ "key": key, "value": value })).into_response(),
        Ok(Lookup::Absent) => error(
            StatusCode::NOT_FOUND,
            format!("{store} has no value for {key}"),
        ),
        Ok(Lookup::NotHere { partition }) => {
            let owner = find_owner(&state, &store, &key).await.ok().flatten();
            (
                StatusCode::MISDIRECTED_REQUEST,
                Json(json!({
                    "error": format!("partition {partition} of {store} is held by another instance"),
                    "partition": partition,
                    "owner": owner,
                })),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn find_owner(state: &HttpState, store: &str, key: &str) -> Result<Option<String>> {
    let (topic, partition) = state.registry.partition_of(store, key)?;
    let owners = state.owners.clone();
    tokio::task::spawn_blocking(move || owners.owner(&topic, partition))
        .await
        .map_err(|e| StreamsError::Config(e.to_string()))?
}

async fn owner(
    State(state): State<HttpState>,
    Path((store, key)): Path<(String, String)>,
) -> Response {
    let partition = match state.registry.partition_of(&store, &key) {
        Ok((_, p)) => p,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    match find_owner(&state, &store, &key).await {
        Ok(owner) => Json(json!({ "partition": partition, "owner": owner })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn all(
    State(state): State<HttpState>,
    Path(store): Path<String>,
    Query(range): Query<RangeQuery>,
) -> Response {
    match state
        .registry
        .range(&store, range.from.as_deref(), range.to.as_deref())
    {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn tasks(State(state): State<HttpState>) -> Response {
    Json(state.tasks.read().clone()).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    state.metrics.render().into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn assignment_bytes_decode_to_topic_partitions() {
        // version 0, one topic "ab" with partitions 1 and 3, empty user data.
        let bytes = [
            0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0,
        ];
        assert_eq!(
            assigned(&bytes),
            vec![("ab".to_string(), 1), ("ab".to_string(), 3)]
        );
        assert!(
            assigned(&[0, 0, 0]).is_empty(),
            "truncated bytes give nothing, not a panic"
        );
    }
}
