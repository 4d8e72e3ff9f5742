//! One TCP (or TLS) connection to one broker: size-prefixed framing, correlation ids,
//! request/response header versions and ApiVersions negotiation. Requests go
//! one at a time (`&mut self`), which keeps responses trivially in order.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes, VersionRange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::tls::{ClientTls, Stream};

/// Largest response frame we accept; anything bigger is a corrupt length
/// prefix, and allocating it would only hurt.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// UNSUPPORTED_VERSION, sent in the v0 layout when our ApiVersions version is
/// too new for the broker.
const UNSUPPORTED_VERSION: i16 = 35;

/// A connection to one broker with its negotiated API versions.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: Stream,
    client_id: StrBytes,
    next_correlation_id: i32,
    request_timeout: Duration,
    /// The broker's supported range per API key, from ApiVersions.
    broker_versions: HashMap<i16, VersionRange>,
    /// Set when a request failed half way: the stream position is unknown,
    /// so the owner must drop this connection and open a new one.
    broken: bool,
    /// When the broker limits SASL sessions (KIP-368): the credentials to
    /// authenticate again with, and when to, before the next request.
    pub(crate) reauthenticate: Option<(crate::SaslCredentials, std::time::Instant)>,
}

impl Connection {
    /// Connects to `addr` over plain TCP and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Connection> {
        Connection::connect_with(addr, client_id, connect_timeout, request_timeout, None).await
    }

    /// Connects to `addr`, over TLS when `tls` is given (the handshake counts
    /// against `connect_timeout`), and negotiates API versions.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> Result<Connection> {
        let open = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|err| Error::connect(addr, &err))?;
            // Requests are written whole in one call; Nagle would only add latency.
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(tls) => tls.handshake(addr, tcp).await,
                None => Ok(Stream::Plain(tcp)),
            }
        };
        let stream = match tokio::time::timeout(connect_timeout, open).await {
            Ok(stream) => stream?,
            Err(_) => {
                return Err(Error::Connect {
                    addr: addr.to_string(),
                    reason: format!("no answer within {} ms", connect_timeout.as_millis()),
                })
            }
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 0,
            request_timeout,
            broker_versions: HashMap::new(),
            broken: false,
            reauthenticate: None,
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The round-trip limit of requests without their own.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Whether a failed request left the stream unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The highest version of `R` that both this client and the broker support.
    pub fn version<R: Request>(&self) -> Result<i16> {
        self.api_version(api_key(R::KEY)?)
    }

    /// The highest version of `api` that both this client and the broker support.
    pub fn api_version(&self, api: ApiKey) -> Result<i16> {
        let ours = our_versions(api);
        let theirs = self.broker_versions.get(&(api as i16));
        match theirs.map(|t| t.intersect(&ours)) {
            Some(common) if !common.is_empty() => Ok(common.max),
            _ => Err(Error::UnsupportedApi {
                addr: self.addr.clone(),
                api: format!("{api:?}"),
                ours: ours.to_string(),
            }),
        }
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        self.send_with_timeout(req, version, self.request_timeout)
            .await
    }

    /// Like [`Connection::send`] with its own round-trip limit.
    pub async fn send_with_timeout<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.reauthenticate_if_due().await?;
        self.send_unchecked(req, version, timeout).await
    }

    /// [`Connection::send_with_timeout`] without the re-authentication check
    /// (the SASL exchange itself goes through here).
    pub(crate) async fn send_unchecked<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let api = api_key(R::KEY)?;
        let body = self.exchange(api, version, req, true, timeout).await?;
        let mut body = body.unwrap_or_default();
        self.check_body(api, version, &body)?;
        R::Response::decode(&mut body, version).map_err(|e| self.protocol(api, version, e))
    }

    /// Sends `req` without waiting: for Produce with acks=0, where the broker
    /// never answers.
    pub async fn send_without_response<R: Request>(&mut self, req: &R, version: i16) -> Result<()> {
        self.reauthenticate_if_due().await?;
        let api = api_key(R::KEY)?;
        self.exchange(api, version, req, false, self.request_timeout)
            .await
            .map(|_| ())
    }

    /// Picks the ApiVersions version and records the broker's ranges. A broker
    /// that does not know our version answers in the v0 layout with its own
    /// range, and we retry with the highest version it accepts.
    async fn negotiate(&mut self) -> Result<()> {
        let ours = our_versions(ApiKey::ApiVersions);
        let mut version = ours.max;
        loop {
            let mut req = ApiVersionsRequest::default();
            if version >= 3 {
                req = req
                    .with_client_software_name(StrBytes::from_static_str("runnel-client"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    )));
            }
            let body = self
                .exchange(
                    ApiKey::ApiVersions,
                    version,
                    &req,
                    true,
                    self.request_timeout,
                )
                .await?
                .unwrap_or_default();
            // The error code leads the body in every version, which is what
            // lets a client read the v0-format UNSUPPORTED_VERSION reply.
            let code = body.clone().try_get_i16().unwrap_or(0);
            if code == UNSUPPORTED_VERSION && version > ours.min {
                self.check_body(ApiKey::ApiVersions, 0, &body)?;
                let mut b = body;
                let resp = ApiVersionsResponse::decode(&mut b, 0)
                    .map_err(|e| self.protocol(ApiKey::ApiVersions, 0, e))?;
                let theirs = resp
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                version = if theirs < version {
                    theirs.max(ours.min)
                } else {
                    version - 1
                };
                continue;
            }
            self.check_body(ApiKey::ApiVersions, version, &body)?;
            let mut b = body;
            let resp = ApiVersionsResponse::decode(&mut b, version)
                .map_err(|e| self.protocol(ApiKey::ApiVersions, version, e))?;
            crate::error::check(resp.error_code, || "ApiVersions".to_string(), None)?;
            self.broker_versions = resp
                .api_keys
                .iter()
                .map(|k| {
                    (
                        k.api_key,
                        VersionRange {
                            min: k.min_version,
                            max: k.max_version,
                        },
                    )
                })
                .collect();
            return Ok(());
        }
    }

    /// Writes one request frame and, when `expect_response`, reads the
    /// matching response frame, returning the body after the header.
    async fn exchange<R: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &R,
        expect_response: bool,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        if self.broken {
            return Err(Error::Io {
                addr: self.addr.clone(),
                reason: "connection was closed after an earlier failure".into(),
            });
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = self.encode_frame(api, version, correlation_id, req)?;

        // Any failure from here on leaves the stream mid-frame.
        self.broken = true;
        let result = tokio::time::timeout(timeout, async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|e| Error::io(&self.addr, &e))?;
            if !expect_response {
                return Ok(None);
            }
            self.read_response(api, version, correlation_id)
                .await
                .map(Some)
        })
        .await;
        match result {
            Ok(Ok(body)) => {
                self.broken = false;
                Ok(body)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(Error::Timeout {
                addr: self.addr.clone(),
                api: format!("{api:?}"),
                timeout_ms: timeout.as_millis(),
            }),
        }
    }

    fn encode_frame<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        req: &R,
    ) -> Result<BytesMut> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // size, filled in below
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| self.protocol(api, version, e))?;
        req.encode(&mut buf, version)
            .map_err(|e| self.protocol(api, version, e))?;
        let size = i32::try_from(buf.len() - 4).map_err(|_| {
            Error::InvalidInput(format!(
                "{api:?} request of {} bytes is too large",
                buf.len()
            ))
        })?;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        Ok(buf)
    }

    async fn read_response(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|e| Error::io(&self.addr, &e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| self.protocol(api, version, format!("invalid frame size {size}")))?;
        let body = read_body(&mut self.stream, size)
            .await
            .map_err(|e| Error::io(&self.addr, &e))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| self.protocol(api, version, e))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol(
                api,
                version,
                format!(
                    "response correlation id {} does not match request {correlation_id}",
                    header.correlation_id
                ),
            ));
        }
        Ok(body)
    }

    /// Checks a response body against Kafka's schema before it is decoded: the
    /// decoder trusts every count it reads, so a broken or hostile broker could
    /// otherwise make it allocate far more than the frame holds (and abort).
    fn check_body(&self, api: ApiKey, version: i16, body: &[u8]) -> Result<()> {
        runnel_wire::check_response_body(api as i16, version, body)
            .map(|_| ())
            .map_err(|e| self.protocol(api, version, e))
    }

    fn protocol(&self, api: ApiKey, version: i16, err: impl std::fmt::Display) -> Error {
        Error::Protocol {
            addr: self.addr.clone(),
            api: format!("{api:?}"),
            version,
            message: err.to_string(),
        }
    }
}

/// The versions of `api` this client can encode, decode and check: the codec's,
/// bounded by what Kafka's schemas in runnel-wire describe for request and response.
fn our_versions(api: ApiKey) -> VersionRange {
    let mut ours = api.valid_versions();
    for schema in [
        runnel_wire::request_versions(api as i16),
        runnel_wire::response_versions(api as i16),
    ] {
        let (min, max) = schema.unwrap_or((1, 0));
        ours = ours.intersect(&VersionRange { min, max });
    }
    ours
}

/// A response body is read into a buffer that starts this large and doubles
/// as bytes arrive, so a corrupt size prefix alone allocates nothing big.
const READ_CHUNK: usize = 64 * 1024;

/// Reads exactly `size` bytes, growing the buffer only as they arrive.
async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, size: usize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < size {
        if body.len() == body.capacity() {
            body.reserve_exact(body.len().max(READ_CHUNK).min(size - body.len()));
        }
        let missing = size - body.len();
        if reader.read_buf(&mut (&mut body).limit(missing)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(body)
}

fn api_key(key: i16) -> Result<ApiKey> {
    ApiKey::try_from(key).map_err(|()| Error::InvalidInput(format!("unknown API key {key}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Serves `data` then EOF; records the most buffer space a reader offered.
    struct Recorder {
        data: Vec<u8>,
        offered: usize,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.offered = self.offered.max(buf.remaining());
            let n = buf.remaining().min(self.data.len());
            buf.put_slice(&self.data[..n]);
            self.data.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_huge_size_prefix_allocates_only_what_arrives() {
        let mut stream = Recorder {
            data: vec![1; 100],
            offered: 0,
        };
        let err = read_body(&mut stream, MAX_RESPONSE_BYTES)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(stream.offered <= READ_CHUNK, "offered {}", stream.offered);
        let body: Vec<u8> = (0..3 * READ_CHUNK + 5).map(|i| i as u8).collect();
        let read = read_body(&mut &body[..], body.len()).await.unwrap();
        assert_eq!(read, body);
    }
}
