//! TLS for client connections (SSL and SASL_SSL listeners): which certificate
//! authorities to trust, the certificate to present for mutual TLS, and the
//! stream a [`crate::Connection`] reads and writes, plain or encrypted.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// Where a client's TLS material lives, as librdkafka's `ssl.ca.location`,
/// `ssl.certificate.location` and `ssl.key.location` name it (PEM files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates that sign the brokers' certificates; `None` trusts
    /// the system's certificate store.
    pub ca_location: Option<PathBuf>,
    /// The certificate chain to present when a listener asks for one (mutual TLS).
    pub certificate_location: Option<PathBuf>,
    /// The private key of `certificate_location`.
    pub key_location: Option<PathBuf>,
}

/// A client's TLS configuration, read once and shared by its connections.
/// Brokers are verified by the host name (or IP address) they are dialled by.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Wraps a rustls configuration built elsewhere (the broker builds its
    /// inter-broker one from its own certificate files).
    pub fn new(config: Arc<rustls::ClientConfig>) -> ClientTls {
        ClientTls {
            connector: TlsConnector::from(config),
        }
    }

    /// Reads `files`; each unusable file is an [`Error::InvalidInput`] naming it.
    pub fn from_files(files: &TlsFiles) -> Result<ClientTls> {
        if files.certificate_location.is_some() != files.key_location.is_some() {
            return Err(Error::InvalidInput(
                "a client certificate needs both ssl.certificate.location and ssl.key.location"
                    .into(),
            ));
        }
        let roots = match &files.ca_location {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in read_certificates("ssl.ca.location", path)? {
                    roots
                        .add(certificate)
                        .map_err(|e| file_error("ssl.ca.location", path, e))?;
                }
                roots
            }
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidInput(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&files.certificate_location, &files.key_location) {
            (Some(certificate), Some(key)) => {
                let chain = read_certificates("ssl.certificate.location", certificate)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| file_error("ssl.key.location", key, e))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::InvalidInput(format!(
                        "ssl.certificate.location {} with ssl.key.location: {e}",
                        certificate.display()
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(ClientTls::new(Arc::new(config)))
    }

    /// Runs the TLS handshake on `tcp`, checking the broker's certificate
    /// against the host part of `addr`.
    pub(crate) async fn handshake(&self, addr: &str, tcp: TcpStream) -> Result<Stream> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_string()).map_err(|e| Error::Connect {
            addr: addr.to_string(),
            reason: format!("{host:?} is not a name TLS can verify: {e}"),
        })?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Connect {
                addr: addr.to_string(),
                reason: format!("TLS handshake failed: {e}"),
            })?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// The host of `host:port`, without the brackets of `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn file_error(what: &str, path: &Path, e: impl fmt::Display) -> Error {
    Error::InvalidInput(format!("{what} {}: {e}", path.display()))
}

/// Every certificate of a PEM file; a file without one is an error.
fn read_certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certificates.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in the file"));
    }
    Ok(certificates)
}

/// The operating system's trusted CAs (rustls-native-certs reads the same
/// bundle OpenSSL would).
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(Error::InvalidInput(format!(
            "no system CA certificates to trust ({why}); set ssl.ca.location"
        )));
    }
    Ok(roots)
}

/// A connection's byte stream: TCP, or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_to_verify_is_the_dialled_name_or_address() {
        assert_eq!(host_of("broker-0.runnel:9093"), "broker-0.runnel");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let missing = TlsFiles {
            ca_location: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = ClientTls::from_files(&missing)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("ssl.ca.location /nonexistent/ca.pem"), "{err}");

        let dir = std::env::temp_dir().join(format!("runnel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = ClientTls::from_files(&TlsFiles {
            ca_location: Some(empty.clone()),
            ..TlsFiles::default()
        })
        .expect_err("refused")
        .to_string();
        std::fs::remove_dir_all(&dir).expect("remove");
        assert!(err.contains("no PEM certificate"), "{err}");

        let half = TlsFiles {
            certificate_location: Some("/x.pem".into()),
            ..TlsFiles::default()
        };
        let err = ClientTls::from_files(&half)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("needs both"), "{err}");
    }
}
