//! The metadata RPC transport: one TCP listener per node carrying openraft's
//! RPCs (append entries, vote, install snapshot) and this crate's own requests
//! (forward a command to the controller, join the quorum, broker heartbeat).
//!
//! It is hand-written on purpose: openraft needs only serde-serializable
//! request and response types, so a length-prefixed JSON frame
//! (`u32` big-endian length, then `{"id", "body"}`) over a pooled TCP
//! connection is all it takes, whereas tonic would add protobuf definitions,
//! code generation and a mapping layer for every openraft type. Each call
//! borrows an idle connection to the peer (or dials one), sends one request,
//! reads the one response carrying the same id, and returns the connection to
//! the pool; a connection that failed or timed out is dropped, so the next call
//! reconnects. The server answers requests on one connection in order; a
//! malformed or oversized frame closes that connection only. With
//! [`QuorumTls`] every connection is mutual TLS: a peer without a certificate
//! the cluster's truststore accepts never gets a frame read.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

use super::{NodeId, TypeConfig};
use crate::config::QuorumTls;
use crate::error::MetaError;
use crate::types::{Applied, BrokerId, Command, Rejection};

/// Largest frame accepted (snapshot chunks and entry batches stay far below).
const MAX_FRAME: usize = 64 << 20;
/// Idle connections kept per peer.
const MAX_IDLE: usize = 8;
/// Longest a TLS handshake on the metadata listener may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to or from a peer: plain TCP or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type Conn = Box<dyn Stream>;

/// A request from one metadata node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a Raft InstallSnapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Propose a command at the receiver, which must be the leader.
    Forward(Command),
    /// Add a node to the quorum (forwarded to the leader by a follower).
    Join {
        /// The new node's id.
        node_id: NodeId,
        /// Its metadata listener address.
        addr: String,
        /// How many more times the request may be passed on towards the leader.
        hops: u8,
    },
    /// A broker's session heartbeat, for the controller.
    Heartbeat {
        /// The broker.
        broker_id: BrokerId,
        /// The registration it heartbeats for.
        incarnation: Uuid,
    },
    /// The index a linearizable read must see (Raft's ReadIndex): asked of the leader, which
    /// confirms its leadership with a quorum first.
    ReadIndex,
}

/// Where a forwarded command landed and what applying it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Forwarded {
    /// Log index of the committed entry.
    pub(crate) index: u64,
    /// The state machine's verdict.
    pub(crate) result: Result<Applied, Rejection>,
}

/// The answer to a [`Request`] of the same variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    /// Raft AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Raft RequestVote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Raft InstallSnapshot.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Forwarded proposal.
    Forward(Result<Forwarded, MetaError>),
    /// Join.
    Join(Result<(), MetaError>),
    /// Heartbeat.
    Heartbeat(Result<(), MetaError>),
    /// ReadIndex: the log index.
    ReadIndex(Result<u64, MetaError>),
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    id: u64,
    body: T,
}

/// Why an RPC failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// The connection failed after the request may have been sent.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// Peer address.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// No answer within the deadline.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer answered something that is not a valid response.
    #[error("bad response from {addr}: {reason}")]
    Protocol {
        /// Peer address.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// A frame body is read into a buffer that starts this large and doubles as
/// bytes arrive, so a length prefix alone never allocates what it claims.
const READ_CHUNK: usize = 64 * 1024;

async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME} byte limit"),
        ));
    }
    let mut buf = Vec::new();
    while buf.len() < len {
        if buf.len() == buf.capacity() {
            buf.reserve_exact(buf.len().max(READ_CHUNK).min(len - buf.len()));
        }
        let missing = (len - buf.len()) as u64;
        if (&mut *stream).take(missing).read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(buf))
}

/// Decodes one request frame body exactly as the metadata listener does
/// (JSON into the request envelope). The listener is reachable before any
/// authentication, so this is what hostile bytes meet first.
pub(crate) fn decode_request(body: &[u8]) -> Result<(u64, Request), serde_json::Error> {
    let envelope: Envelope<Request> = serde_json::from_slice(body)?;
    Ok((envelope.id, envelope.body))
}

/// For fuzzing: decodes one metadata RPC request frame body (the bytes after
/// the 4-byte length) exactly as the metadata listener does; `Err` is what
/// makes the listener close the connection.
pub fn decode_rpc_request(body: &[u8]) -> Result<(), String> {
    decode_request(body).map(|_| ()).map_err(|e| e.to_string())
}

async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    stream: &mut W,
    id: u64,
    body: T,
) -> io::Result<()> {
    let json = serde_json::to_vec(&Envelope { id, body })
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut buf = Vec::with_capacity(4 + json.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&json);
    stream.write_all(&buf).await
}

/// Client side: pooled connections to peers, keyed by address.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    next_id: AtomicU64,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Pool {
    /// A pool dialing peers with TLS (when `tls` is given).
    pub(crate) fn new(tls: Option<&QuorumTls>) -> Pool {
        Pool {
            tls: tls.map(|t| t.client.clone()),
            ..Pool::default()
        }
    }

    /// Sends `request` to `addr` and waits at most `timeout` for its response.
    pub(crate) async fn call(
        &self,
        addr: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // A forwarded proposal is never re-sent: it may have been applied.
        let resendable = !matches!(request, Request::Forward(_));
        let attempt = async {
            let pooled = self.idle.lock().get_mut(addr).and_then(Vec::pop);
            let reused = pooled.is_some();
            let stream = match pooled {
                Some(stream) => stream,
                None => self.connect(addr).await?,
            };
            match self.exchange(stream, addr, id, &request).await {
                Err(CallError::Io { .. }) if reused && resendable => {
                    // The pooled connection had gone stale (peer restarted).
                    let stream = self.connect(addr).await?;
                    self.exchange(stream, addr, id, &request).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                addr: addr.to_string(),
                timeout,
            }),
        }
    }

    async fn connect(&self, addr: &str) -> Result<Conn, CallError> {
        let unreachable = |source| CallError::Unreachable {
            addr: addr.to_string(),
            source,
        };
        let stream = TcpStream::connect(addr).await.map_err(unreachable)?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(stream));
        };
        // The peer's certificate must name the host of its advertised address.
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| unreachable(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(unreachable)?;
        Ok(Box::new(stream))
    }

    async fn exchange(
        &self,
        mut stream: Conn,
        addr: &str,
        id: u64,
        request: &Request,
    ) -> Result<Response, CallError> {
        let io_err = |source| CallError::Io {
            addr: addr.to_string(),
            source,
        };
        write_frame(&mut stream, id, request)
            .await
            .map_err(io_err)?;
        let frame = read_frame(&mut stream)
            .await
            .map_err(io_err)?
            .ok_or_else(|| io_err(io::ErrorKind::UnexpectedEof.into()))?;
        let envelope: Envelope<Response> =
            serde_json::from_slice(&frame).map_err(|e| CallError::Protocol {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        if envelope.id != id {
            return Err(CallError::Protocol {
                addr: addr.to_string(),
                reason: format!("response id {} for request {id}", envelope.id),
            });
        }
        let mut idle = self.idle.lock();
        let conns = idle.entry(addr.to_string()).or_default();
        if conns.len() < MAX_IDLE {
            conns.push(stream);
        }
        Ok(envelope.body)
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Server side: answers requests.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Accepts connections on `listener` and answers their requests with
/// `handler` until `shutdown` turns true.
pub(crate) async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: watch::Receiver<bool>,
    tls: Option<QuorumTls>,
) {
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server));
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    let shutdown = shutdown.clone();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let stream: Conn = match acceptor {
                            None => Box::new(stream),
                            Some(acceptor) => {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => Box::new(tls),
                                    Ok(Err(e)) => {
                                        tracing::warn!(%peer, error = %e, "metadata peer refused: TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::warn!(%peer, "metadata peer refused: no TLS handshake in time");
                                        return;
                                    }
                                }
                            }
                        };
                        if let Err(e) = serve_connection(stream, handler, shutdown).await {
                            tracing::debug!(%peer, error = %e, "metadata connection closed");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "metadata listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn serve_connection<H: Handler>(
    mut stream: Conn,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        let frame = tokio::select! {
            _ = stopped(&mut shutdown) => return Ok(()),
            frame = read_frame(&mut stream) => frame?,
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        let (id, request) =
            decode_request(&frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let response = tokio::select! {
            _ = stopped(&mut shutdown) => return Ok(()),
            response = handler.handle(request) => response,
        };
        write_frame(&mut stream, id, response).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Response {
            match request {
                Request::Heartbeat { broker_id, .. } if broker_id >= 0 => {
                    Response::Heartbeat(Ok(()))
                }
                _ => Response::Heartbeat(Err(MetaError::Internal("unexpected".into()))),
            }
        }
    }

    #[tokio::test]
    async fn malformed_frame_closes_only_that_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::new(Echo), stop_rx, None));

        // Garbage, then an oversized length: each closes its connection.
        for bad in [&b"\x00\x00\x00\x03abc"[..], &[0xff, 0xff, 0xff, 0xff][..]] {
            let mut raw = TcpStream::connect(&addr).await.unwrap();
            raw.write_all(bad).await.unwrap();
            let mut buf = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
                .await
                .unwrap()
                .unwrap_or(0);
            assert_eq!(n, 0, "server must close a connection sending a bad frame");
        }

        // The server still answers well-formed requests, on a reused connection too.
        let pool = Pool::default();
        for _ in 0..3 {
            let request = Request::Heartbeat {
                broker_id: 1,
                incarnation: Uuid::new_v4(),
            };
            let response = pool
                .call(&addr, request, Duration::from_secs(10))
                .await
                .unwrap();
            assert!(matches!(response, Response::Heartbeat(Ok(()))));
        }
        assert_eq!(pool.idle.lock().get(&addr).map(Vec::len), Some(1));

        stop_tx.send_replace(true);
        server.await.unwrap();
    }

    /// Serves `data`, then blocks forever; records the most buffer space a
    /// reader offered it (what the reader had allocated but not yet filled).
    struct Trickle {
        data: Vec<u8>,
        offered: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.offered = self.offered.max(buf.remaining());
            if self.data.is_empty() {
                return std::task::Poll::Pending;
            }
            let n = buf.remaining().min(self.data.len());
            buf.put_slice(&self.data[..n]);
            self.data.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_length_prefix_claiming_64_mib_allocates_only_what_arrives() {
        let mut data = (MAX_FRAME as u32).to_be_bytes().to_vec();
        data.extend_from_slice(b"{\"id\":1,");
        let mut stream = Trickle { data, offered: 0 };
        // One poll reads all that was sent; the frame is incomplete, so it waits.
        tokio::select! {
            biased;
            _ = read_frame(&mut stream) => panic!("the frame is incomplete: the read must wait"),
            _ = std::future::ready(()) => {}
        }
        assert!(stream.data.is_empty(), "everything sent was read");
        assert!(
            stream.offered <= READ_CHUNK,
            "the reader allocated {} bytes for a 64 MiB claim",
            stream.offered
        );
    }

    #[tokio::test]
    async fn a_frame_larger_than_one_chunk_is_read_whole() {
        let body: Vec<u8> = (0..5 * READ_CHUNK + 3).map(|i| i as u8).collect();
        let mut data = (body.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(&body);
        let read = read_frame(&mut &data[..]).await.unwrap();
        assert_eq!(read, Some(body));
        let truncated = &data[..1000];
        let err = read_frame(&mut &truncated[..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn request_decoding_refuses_garbage_and_accepts_a_heartbeat() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,2]",
            b"{\"id\":-1,\"body\":null}",
            &[0xff; 16],
        ] {
            assert!(decode_request(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_vec(&Envelope {
            id: 7,
            body: Request::Heartbeat {
                broker_id: 2,
                incarnation: Uuid::nil(),
            },
        })
        .unwrap();
        let (id, request) = decode_request(&json).unwrap();
        assert_eq!(id, 7);
        assert!(matches!(request, Request::Heartbeat { broker_id: 2, .. }));
    }

    #[tokio::test]
    async fn unreachable_peer_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Pool::default();
        let request = Request::Heartbeat {
            broker_id: 1,
            incarnation: Uuid::new_v4(),
        };
        let err = pool
            .call(&addr, request, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Unreachable { .. }), "{err}");
    }
}
