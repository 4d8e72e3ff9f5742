//! Kafka connections: one accept loop per listener, the TLS handshake of SSL
//! and SASL_SSL listeners, request framing and dispatch.
//!
//! Each connection has a reader task and a writer task. The reader decodes
//! frames and runs each request's in-order part (for Produce: the appends);
//! the remainder (fsync wait, fetch long poll) is queued as a future that the
//! writer awaits in request order, so pipelined requests are answered in order
//! while a waiting acks=all produce does not stall the next request's append.
//! Memory driven by the wire is bounded: a request body's buffer grows only as
//! its bytes arrive, every request holds its bytes in a pool shared by all
//! connections (`queued_max_request_bytes`) until answered, and connections
//! are limited per client address and in total.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::response_writer::{write_frame, ResponseWriter};
use crate::api::{self, Outcome, Pending};
use crate::broker::Broker;
use crate::runtime::wait_shutdown;
use crate::session::{Listener, Principal, Session};
use crate::tls::ReloadingTls;

/// Smallest legal request: api key, version, correlation id, client id length.
pub(crate) const MIN_REQUEST_BYTES: usize = 10;

/// How many answered-later requests one connection may have queued.
const MAX_IN_FLIGHT: usize = 64;

/// Request bodies are read into a buffer that starts at this size and grows
/// (doubling) only as bytes arrive, so memory follows what a client sent, not
/// the size its frame header claims. Small, so that connections which send a
/// header and stall cannot use up the request pool by their number alone
/// (10,000 of them, the default `max_connections`, hold 40 MiB).
const FIRST_CHUNK: usize = 4096;

/// A half-read request that gets no more bytes, or no more pool memory, for
/// this long has its connection closed. Kafka clients write a request whole
/// and give up on it after 30 s (`request.timeout.ms`), so a longer stall
/// serves nobody, while it would keep pool memory from everyone else (or,
/// for several large half-read requests, keep each waiting for memory the
/// others hold).
const MID_FRAME_STALL: Duration = Duration::from_secs(30);

/// A TLS client that has not completed its handshake this long after
/// connecting is dropped, so that idle sockets cannot hold connection slots.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A refused connection is logged at most this often (with a count of the rest).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The Kafka listener's request memory pool (`queued_max_request_bytes`),
/// shared by all connections. A request takes bytes from it just before its
/// buffer grows and gives them back when its response has been written (or
/// the request is dropped). When the pool is used up, readers wait instead of
/// reading their sockets. The semaphore is fair, so a waiting large request
/// is not starved by small ones.
#[derive(Clone)]
struct RequestPool {
    bytes: Arc<Semaphore>,
    in_use: IntGauge,
}

impl RequestPool {
    fn new(capacity: u64, in_use: IntGauge) -> RequestPool {
        let capacity = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        RequestPool {
            bytes: Arc::new(Semaphore::new(capacity)),
            in_use,
        }
    }

    /// Takes `n` more bytes for `held`, waiting at most `wait` when the pool
    /// is used up (`None`: until memory is released).
    async fn take(
        &self,
        held: &mut Option<PoolBytes>,
        n: usize,
        wait: Option<Duration>,
    ) -> Result<(), FrameError> {
        // Frame sizes are checked against max_request_bytes (< 2^31) first.
        let count = u32::try_from(n)
            .map_err(|_| FrameError::Refused(format!("frame part of {n} bytes")))?;
        let acquire = self.bytes.clone().acquire_many_owned(count);
        let permit = match wait {
            None => acquire.await,
            Some(limit) => tokio::time::timeout(limit, acquire).await.map_err(|_| {
                FrameError::Refused(format!(
                    "no request memory for {}s (queued_max_request_bytes is in use)",
                    limit.as_secs_f32()
                ))
            })?,
        }
        .map_err(|_| FrameError::Closed)?; // the pool is never closed
        self.in_use.add(n as i64);
        match held {
            Some(held) => held.permit.merge(permit),
            None => {
                *held = Some(PoolBytes {
                    permit,
                    in_use: self.in_use.clone(),
                })
            }
        }
        Ok(())
    }
}

/// Bytes taken from the [`RequestPool`] for one request; given back on drop.
struct PoolBytes {
    permit: OwnedSemaphorePermit,
    in_use: IntGauge,
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        self.in_use.sub(self.permit.num_permits() as i64);
    }
}

/// A request's response-to-be and the pool memory it holds until written.
struct Queued {
    pending: Pending,
    _memory: Option<PoolBytes>,
}

/// Why reading a frame stopped.
#[derive(Debug)]
enum FrameError {
    Closed,
    Io(std::io::Error),
    Refused(String),
}

/// Reads one size-prefixed frame. The size is checked before anything else
/// happens; the body buffer then grows only as bytes arrive, each growth first
/// taken from `pool` (waiting, without reading, while the pool is used up).
///
/// Once the body has begun, every read and every wait for memory must end
/// within `stall` (see [`MID_FRAME_STALL`]).
/// The smallest frame the connection may send next: a request, or a raw SASL
/// token (after a v0 SaslHandshake), which may be shorter than any request.
fn min_frame(session: &Session) -> usize {
    if session.expects_raw_token() {
        1
    } else {
        MIN_REQUEST_BYTES
    }
}

async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    min: usize,
    max: usize,
    pool: &RequestPool,
    stall: Duration,
) -> Result<(Bytes, Option<PoolBytes>), FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let size = i32::from_be_bytes(size);
    if size < min as i32 {
        return Err(FrameError::Refused(format!(
            "frame size {size} is below the minimum of {min}"
        )));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::Refused(format!(
            "frame size {size} exceeds max_request_bytes {max}"
        )));
    }
    let mut held = None;
    let mut body: Vec<u8> = Vec::new();
    while body.len() < size {
        if body.len() == body.capacity() {
            // Doubling keeps copies linear; capped at what the frame still needs.
            let grow = body.len().max(FIRST_CHUNK).min(size - body.len());
            // Waiting holds nothing only before the first byte of the body.
            let wait = held.is_some().then_some(stall);
            pool.take(&mut held, grow, wait).await?;
            body.reserve_exact(grow);
        }
        let missing = size - body.len();
        let mut space = (&mut body).limit(missing);
        match tokio::time::timeout(stall, reader.read_buf(&mut space)).await {
            Err(_) => {
                return Err(FrameError::Refused(format!(
                    "no bytes for {}s in the middle of a {size}-byte request",
                    stall.as_secs_f32()
                )))
            }
            Ok(Ok(0)) => return Err(FrameError::Closed),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(FrameError::Io(e)),
        }
    }
    Ok((Bytes::from(body), held))
}

/// Kafka connections open per client address and in total
/// (`max_connections_per_ip`, `max_connections`).
struct ConnectionLimits {
    max_per_ip: u32,
    max_total: u32,
    // Owned by the accept loop and the slots' drops: open connections per address.
    open: Mutex<HashMap<IpAddr, u32>>,
    // Rate limit of refusal logs: when one was last written, refusals since.
    last_log: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

/// Why a connection was refused (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerIp,
    Total,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Total => "total",
        }
    }
}

/// One admitted connection; frees its place on drop.
struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    fn new(max_per_ip: u32, max_total: u32) -> ConnectionLimits {
        ConnectionLimits {
            max_per_ip,
            max_total,
            open: Mutex::new(HashMap::new()),
            last_log: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Admits a connection from `ip`, or says which limit it is over.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut open = self.open.lock();
        let total: u64 = open.values().map(|n| u64::from(*n)).sum();
        if total >= u64::from(self.max_total) {
            return Err(Refusal::Total);
        }
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Logs a refusal unless one was logged within [`REFUSAL_LOG_INTERVAL`].
    fn log_refusal(&self, peer: SocketAddr, refusal: Refusal) {
        let now = Instant::now();
        let mut last = self.last_log.lock();
        if last.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let others = self.unlogged.swap(0, Ordering::Relaxed);
        let limit = match refusal {
            Refusal::PerIp => format!("max_connections_per_ip ({})", self.max_per_ip),
            Refusal::Total => format!("max_connections ({})", self.max_total),
        };
        tracing::warn!(%peer, refused_since_last_log = others,
            "connection refused: {limit} reached");
    }
}

/// A bound Kafka listener: its socket, its name and protocol, and for SSL and
/// SASL_SSL the TLS configuration its connections are wrapped in.
pub(super) struct KafkaListener {
    /// The listener its connections' sessions name.
    pub listener: Arc<Listener>,
    /// The bound socket.
    pub socket: TcpListener,
    /// Set for listeners whose protocol uses TLS.
    pub tls: Option<Arc<ReloadingTls>>,
}

/// What every listener's connections share: one request memory pool and one
/// set of connection limits, whichever listener a client came in on.
#[derive(Clone)]
struct Shared {
    pool: RequestPool,
    limits: Arc<ConnectionLimits>,
}

/// Accepts Kafka connections on every listener until `shutdown` resolves,
/// within the connection limits; each connection is served on its own task,
/// which holds a clone of `done` until the connection has closed. Returns
/// once every listener has stopped accepting (their sockets are closed).
pub(super) async fn accept_until(
    listeners: Vec<KafkaListener>,
    broker: &Arc<Broker>,
    done_tx: &mpsc::Sender<()>,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Shared {
        pool: RequestPool::new(
            broker.config.queued_max_request_bytes,
            broker.metrics.queued_request_bytes.clone(),
        ),
        limits: Arc::new(ConnectionLimits::new(
            broker.config.max_connections_per_ip,
            broker.config.max_connections,
        )),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|kafka| {
            tokio::spawn(accept_loop(
                kafka,
                broker.clone(),
                shared.clone(),
                done_tx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    shutdown.await;
    let _ = stop_tx.send(true);
    for accept in loops {
        let _ = accept.await;
    }
}

/// One listener's accept loop, until `stop` is set.
async fn accept_loop(
    kafka: KafkaListener,
    broker: Arc<Broker>,
    shared: Shared,
    done_tx: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = wait_shutdown(&mut stop) => break,
            accepted = kafka.socket.accept() => match accepted {
                Ok((socket, peer)) => {
                    let slot = match shared.limits.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(refusal) => {
                            broker.metrics.connections_refused
                                .with_label_values(&[refusal.label()]).inc();
                            shared.limits.log_refusal(peer, refusal);
                            drop(socket);
                            continue;
                        }
                    };
                    let broker = broker.clone();
                    let done = done_tx.clone();
                    let pool = shared.pool.clone();
                    let listener = kafka.listener.clone();
                    let tls = kafka.tls.clone();
                    tokio::spawn(async move {
                        broker.metrics.open_connections.inc();
                        let _ = socket.set_nodelay(true);
                        match tls {
                            None => {
                                let session = Arc::new(Session::new(peer, listener));
                                let (reader, writer) = socket.into_split();
                                serve_connection(broker.clone(), reader, writer, session, pool)
                                    .await;
                            }
                            Some(tls) => {
                                serve_tls(broker.clone(), socket, peer, listener, pool, &tls).await
                            }
                        }
                        drop(slot);
                        broker.metrics.open_connections.dec();
                        drop(done);
                    });
                }
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, listener = %kafka.listener.name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Completes the TLS handshake of a connection to an SSL or SASL_SSL listener
/// (with the certificate its files hold now), then serves it. On an SSL
/// listener a verified client certificate makes the session's principal
/// `User:<subject>`; on SASL_SSL the principal is left to SASL.
async fn serve_tls(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    pool: RequestPool,
    tls: &ReloadingTls,
) {
    let acceptor = tls.acceptor();
    let mut shutdown = broker.shutdown_signal();
    let handshake = tokio::select! {
        _ = wait_shutdown(&mut shutdown) => return,
        handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => handshake,
    };
    let failed = |reason: &dyn std::fmt::Display, untrusted: bool| {
        broker
            .metrics
            .tls_handshake_failures
            .with_label_values(&[listener.name.as_str()])
            .inc();
        if untrusted {
            tracing::warn!(%peer, listener = %listener.name, "TLS handshake failed: {reason}");
        } else {
            tracing::debug!(%peer, listener = %listener.name, "TLS handshake failed: {reason}");
        }
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            // Certificate problems are worth an operator's attention; a port
            // scan or a plaintext client is not.
            let untrusted = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                });
            failed(&err, untrusted);
            return;
        }
        Err(_) => {
            failed(&"no handshake within the timeout", false);
            return;
        }
    };
    let session = Session::new(peer, listener.clone());
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    if let Some(certificate) = certificate.filter(|_| !listener.protocol.is_sasl()) {
        // rustls verified the chain; a subject it cannot name is refused
        // rather than let in as another principal.
        let Some(subject) = crate::tls::subject_name(certificate) else {
            failed(&"the client certificate's subject cannot be read", true);
            return;
        };
        let Some(name) = tls.principal(&subject) else {
            failed(
                &format!("no ssl_principal_mapping_rules rule applies to the subject {subject}"),
                true,
            );
            return;
        };
        tracing::debug!(%peer, listener = %listener.name, principal = %name, %subject,
            "TLS client authenticated");
        *session.principal.write() = Principal::user(&name);
    }
    let (reader, writer) = tokio::io::split(stream);
    serve_connection(broker, reader, writer, Arc::new(session), pool).await;
}

/// Reads, dispatches and answers the requests of one connection until it
/// closes, fails or the broker shuts down.
async fn serve_connection<R, W>(
    broker: Arc<Broker>,
    mut reader: R,
    writer: W,
    session: Arc<Session>,
    pool: RequestPool,
) where
    R: AsyncRead + Unpin,
    W: ResponseWriter,
{
    let peer = session
        .peer
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (tx, rx) = mpsc::channel::<Queued>(MAX_IN_FLIGHT);
    let file_bytes = broker.metrics.fetch_file_bytes.clone();
    let writer_task = tokio::spawn(write_responses(writer, rx, peer, file_bytes));
    let mut shutdown = broker.shutdown_signal();
    let max = broker.config.max_request_bytes as usize;
    tracing::debug!(%peer, listener = %session.listener.name, "connection opened");
    loop {
        // A throttled client's next request is read only after its throttle time (KIP-219).
        if let Some(until) = session.mute.take() {
            tokio::select! {
                _ = wait_shutdown(&mut shutdown) => break,
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
        let frame = tokio::select! {
            _ = wait_shutdown(&mut shutdown) => break,
            frame = read_frame(&mut reader, min_frame(&session), max, &pool, MID_FRAME_STALL) => frame,
        };
        let (frame, memory) = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed) => break,
            Err(FrameError::Io(err)) => {
                tracing::debug!(%peer, error = %err, "connection read failed");
                break;
            }
            Err(FrameError::Refused(reason)) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                break;
            }
        };
        match api::dispatch(&broker, frame, &session).await {
            Outcome::Reply(pending) => {
                let queued = Queued {
                    pending,
                    _memory: memory,
                };
                if tx.send(queued).await.is_err() {
                    break; // the writer failed; the socket is gone
                }
                if session.closing() {
                    tracing::debug!(%peer, "closing connection after its answer");
                    break;
                }
            }
            Outcome::Close(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
    tracing::debug!(%peer, "connection closed");
}

async fn write_responses<W: ResponseWriter>(
    writer: W,
    mut rx: mpsc::Receiver<Queued>,
    peer: SocketAddr,
    file_bytes: IntCounterVec,
) {
    let mut writer = BufWriter::new(writer);
    while let Some(queued) = rx.recv().await {
        // The request's pool memory goes back once its response is written.
        match queued.pending.await {
            Ok(Some(frame)) => {
                if let Err(err) = write_frame(&mut writer, &frame, &file_bytes).await {
                    tracing::debug!(%peer, error = %err, "write failed");
                    return;
                }
            }
            Ok(None) => continue, // acks=0 produce: no response
            Err(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                let _ = writer.flush().await;
                return;
            }
        }
        // Flush when nothing else is ready so pipelined responses share a syscall.
        if rx.is_empty() {
            if let Err(err) = writer.flush().await {
                tracing::debug!(%peer, error = %err, "flush failed");
                return;
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(capacity: u64) -> RequestPool {
        RequestPool::new(
            capacity,
            IntGauge::new("test_pool_bytes", "pool bytes in use").unwrap(),
        )
    }

    fn frame(size: usize) -> Vec<u8> {
        let mut out = (size as i32).to_be_bytes().to_vec();
        out.extend(std::iter::repeat_n(7u8, size));
        out
    }

    /// Waits (with a generous deadline) until `cond` holds.
    async fn until(mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "condition not met");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_claimed_size_takes_memory_only_as_bytes_arrive() {
        let max = 100 << 20;
        let pool = pool(256 << 20);
        let (mut client, mut server) = tokio::io::duplex(4096);
        let reader = {
            let pool = pool.clone();
            tokio::spawn(async move {
                read_frame(&mut server, MIN_REQUEST_BYTES, max, &pool, MID_FRAME_STALL)
                    .await
                    .map(|_| ())
            })
        };
        // A header claiming the largest size, then a few bytes and silence.
        client.write_all(&(max as i32).to_be_bytes()).await.unwrap();
        client.write_all(&[1u8; 100]).await.unwrap();
        until(|| pool.in_use.get() > 0).await;
        assert_eq!(pool.in_use.get(), FIRST_CHUNK as i64);
        // More bytes grow it by doubling only once what is held has arrived.
        client.write_all(&vec![2u8; FIRST_CHUNK]).await.unwrap();
        until(|| pool.in_use.get() > FIRST_CHUNK as i64).await;
        assert_eq!(pool.in_use.get(), 2 * FIRST_CHUNK as i64);
        // The client leaves mid-frame: everything goes back to the pool.
        drop(client);
        assert!(matches!(reader.await.unwrap(), Err(FrameError::Closed)));
        assert_eq!(pool.in_use.get(), 0);
        assert_eq!(pool.bytes.available_permits(), 256 << 20);
    }

    #[tokio::test]
    async fn a_frame_is_read_whole_and_holds_its_size_until_dropped() {
        let pool = pool(1 << 20);
        let size = 3 * FIRST_CHUNK + 17;
        let bytes = frame(size);
        let (frame, held) = read_frame(
            &mut &bytes[..],
            MIN_REQUEST_BYTES,
            1 << 20,
            &pool,
            MID_FRAME_STALL,
        )
        .await
        .unwrap();
        assert_eq!(frame.len(), size);
        assert!(frame.iter().all(|b| *b == 7));
        assert_eq!(pool.in_use.get(), size as i64);
        drop(held);
        assert_eq!(pool.in_use.get(), 0);
    }

    #[tokio::test]
    async fn oversized_and_undersized_frames_are_refused_before_taking_memory() {
        let pool = pool(1 << 20);
        for size in [i32::MAX, 1 << 20 | 1, 3, -1] {
            let mut bytes = &size.to_be_bytes()[..];
            let result = read_frame(
                &mut bytes,
                MIN_REQUEST_BYTES,
                1 << 20,
                &pool,
                MID_FRAME_STALL,
            )
            .await;
            assert!(matches!(result, Err(FrameError::Refused(_))), "{size}");
        }
        assert_eq!(pool.in_use.get(), 0);
    }

    #[tokio::test]
    async fn a_used_up_pool_makes_readers_wait_until_memory_is_released() {
        let pool = pool(100);
        let bytes = [frame(60), frame(60)].concat();
        let mut input = &bytes[..];
        let (_, first) = read_frame(&mut input, MIN_REQUEST_BYTES, 100, &pool, MID_FRAME_STALL)
            .await
            .unwrap();
        let mut second = Box::pin(read_frame(
            &mut input,
            MIN_REQUEST_BYTES,
            100,
            &pool,
            MID_FRAME_STALL,
        ));
        // Polled once: it has its header but no memory for the body.
        tokio::select! {
            biased;
            _ = second.as_mut() => panic!("the second frame must wait for memory"),
            _ = std::future::ready(()) => {}
        }
        drop(first);
        let (frame, _held) = second.await.unwrap();
        assert_eq!(frame.len(), 60);
        assert_eq!(pool.in_use.get(), 60);
    }

    #[tokio::test]
    async fn a_request_stalled_mid_frame_is_dropped_and_its_memory_returned() {
        let stall = Duration::from_millis(200);
        let pool = pool(1 << 20);
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&1000i32.to_be_bytes()).await.unwrap();
        client.write_all(&[1u8; 10]).await.unwrap();
        let started = tokio::time::Instant::now();
        let result = read_frame(&mut server, MIN_REQUEST_BYTES, 1 << 20, &pool, stall).await;
        assert!(matches!(result, Err(FrameError::Refused(_))));
        assert!(started.elapsed() >= stall);
        assert_eq!(pool.in_use.get(), 0);
        // A connection idle between requests is not affected.
        let idle = tokio::time::timeout(
            3 * stall,
            read_frame(&mut server, MIN_REQUEST_BYTES, 1 << 20, &pool, stall),
        )
        .await;
        assert!(idle.is_err(), "waiting for a header has no deadline");
    }

    #[test]
    fn connection_limits_refuse_per_address_and_in_total_and_free_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(2, 3));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerIp));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = limits.admit(a).unwrap();
        assert_eq!(limits.open.lock().values().sum::<u32>(), 3);
    }
}
