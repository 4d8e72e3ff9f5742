//! TLS for SSL and SASL_SSL listeners: the rustls server configuration built
//! from the PEM files the config names, rebuilt when one of them changes on
//! disk (so a renewed certificate is served to new connections without a
//! restart), and the principal a verified client certificate stands for.
//!
//! The files are checked when a connection is accepted, before its handshake:
//! a few `stat`s per connection, against a full handshake. A rebuild that
//! fails (a file replaced halfway, a key that does not match) keeps the
//! previous configuration serving and is logged; the next change is tried
//! again.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::BrokerConfig;
use crate::principal_rules::PrincipalRules;

/// Whether TLS clients present a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for; verified when given, a client without one is let in.
    Requested,
    /// A certificate signed by the truststore's CAs is required.
    Required,
}

impl ClientAuth {
    fn parse(value: &str) -> Result<ClientAuth, TlsError> {
        match value {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(TlsError::Settings(format!(
                "ssl_client_auth {other:?} is not none, requested or required"
            ))),
        }
    }
}

/// Why a TLS configuration could not be built. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {message}")]
    File {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The files are readable but do not make a configuration (e.g. the key
    /// does not match the certificate).
    #[error("invalid TLS settings: {0}")]
    Settings(String),
}

/// The files a TLS configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// PEM CA certificates that client certificates are verified against.
    pub truststore: Option<PathBuf>,
    /// Whether clients present certificates.
    pub client_auth: ClientAuth,
    /// How a client certificate's subject becomes a principal name.
    pub principal_rules: PrincipalRules,
}

impl TlsFiles {
    /// The TLS files of `config`; `None` when no certificate is configured.
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<Option<TlsFiles>, TlsError> {
        let (Some(certificate), Some(key)) =
            (&config.ssl_certificate_location, &config.ssl_key_location)
        else {
            return Ok(None);
        };
        Ok(Some(TlsFiles {
            certificate: certificate.into(),
            key: key.into(),
            truststore: config.ssl_truststore_location.as_ref().map(PathBuf::from),
            client_auth: ClientAuth::parse(&config.ssl_client_auth)?,
            principal_rules: PrincipalRules::parse(&config.ssl_principal_mapping_rules)
                .map_err(|e| TlsError::Settings(format!("ssl_principal_mapping_rules: {e}")))?,
        }))
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [
            Some(&self.certificate),
            Some(&self.key),
            self.truststore.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
    }

    /// Reads the files into a rustls server configuration.
    fn build(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certificates("ssl_certificate_location", &self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::File {
            what: "ssl_key_location",
            path: self.key.clone(),
            message: e.to_string(),
        })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Settings(e.to_string()))?;
        let builder = match (&self.truststore, self.client_auth) {
            (_, ClientAuth::None) => builder.with_no_client_auth(),
            (None, _) => {
                return Err(TlsError::Settings(
                    "verifying client certificates needs ssl_truststore_location".into(),
                ))
            }
            (Some(path), auth) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(path)?),
                    provider,
                );
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Settings(format!("{}: {e}", path.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        builder.with_single_cert(chain, key).map_err(|e| {
            TlsError::Settings(format!(
                "{} with key {}: {e}",
                self.certificate.display(),
                self.key.display()
            ))
        })
    }
}

/// Every certificate of a PEM file; an empty file is an error.
fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

/// The CA certificates of the truststore.
fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    read_roots_of("ssl_truststore_location", path)
}

/// The CA certificates of the file that key `what` names.
fn read_roots_of(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(what, path)? {
        roots.add(certificate).map_err(|e| TlsError::File {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Mutual TLS for the metadata quorum's port (`controller_ssl_*`): the listener
/// requires a client certificate chaining to the truststore, and this broker
/// presents its own certificate to the peers it dials and checks theirs
/// against the same truststore. `None` when the keys are unset.
pub(crate) fn quorum_tls(
    config: &BrokerConfig,
) -> Result<Option<runnel_meta::QuorumTls>, TlsError> {
    let (Some(certificate), Some(key), Some(truststore)) = (
        &config.controller_ssl_certificate_location,
        &config.controller_ssl_key_location,
        &config.controller_ssl_truststore_location,
    ) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(
        "controller_ssl_certificate_location",
        Path::new(certificate),
    )?;
    let key_file = Path::new(key);
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
        what: "controller_ssl_key_location",
        path: key_file.to_path_buf(),
        message: e.to_string(),
    })?;
    let roots = Arc::new(read_roots_of(
        "controller_ssl_truststore_location",
        Path::new(truststore),
    )?);
    let settings = |e: rustls::Error| TlsError::Settings(format!("metadata quorum TLS: {e}"));
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Settings(format!("{truststore}: {e}")))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(settings)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(settings)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(settings)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(settings)?;
    Ok(Some(runnel_meta::QuorumTls {
        server: Arc::new(server),
        client: Arc::new(client),
    }))
}

/// What identifies one version of a file: modification time, size and inode
/// (a file replaced by a rename has a new inode even within one mtime tick).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// A TLS acceptor whose configuration follows its files.
pub(crate) struct ReloadingTls {
    files: TlsFiles,
    // Owned by `acceptor`: the stamps of the files last read, and the
    // configuration new connections get.
    current: Mutex<(Vec<Stamp>, TlsAcceptor)>,
}

impl ReloadingTls {
    /// Reads the files; a broker does not start with a TLS listener it cannot serve.
    pub(crate) fn load(files: TlsFiles) -> Result<ReloadingTls, TlsError> {
        let stamps: Vec<Stamp> = files.paths().map(stamp).collect();
        let config = files.build()?;
        Ok(ReloadingTls {
            files,
            current: Mutex::new((stamps, TlsAcceptor::from(Arc::new(config)))),
        })
    }

    /// The principal name of a verified client certificate's subject; `None`
    /// when no `ssl_principal_mapping_rules` rule applies to it.
    pub(crate) fn principal(&self, subject: &str) -> Option<String> {
        self.files.principal_rules.apply(subject)
    }

    /// The acceptor for a new connection, rebuilt first when a file changed.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock();
        let stamps: Vec<Stamp> = self.files.paths().map(stamp).collect();
        if stamps != current.0 {
            // Recorded even when the rebuild fails: the file that is still
            // being written changes again, and that change is tried then.
            current.0 = stamps;
            match self.files.build() {
                Ok(config) => {
                    current.1 = TlsAcceptor::from(Arc::new(config));
                    tracing::info!(certificate = %self.files.certificate.display(),
                        "TLS files changed: new connections get the new certificate");
                }
                Err(err) => tracing::warn!(error = %err,
                    "TLS files changed but cannot be loaded; still serving the previous certificate"),
            }
        }
        current.1.clone()
    }
}

/// Names of the attribute types Kafka (Java's RFC 2253 form) writes by keyword.
const KEYWORDS: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The subject of a DER certificate as Kafka's default principal builder
/// names it: the distinguished name in RFC 2253 form, most specific part
/// first (`CN=alice,OU=eng,O=Example`). `None` when the certificate does not parse.
pub(crate) fn subject_name(certificate: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let mut out = String::new();
    for (i, rdn) in certificate
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attribute.attr_type().to_id_string();
            let keyword = KEYWORDS.iter().find(|(id, _)| *id == oid).map(|(_, k)| *k);
            match (keyword, attribute.as_str()) {
                (Some(keyword), Ok(value)) => {
                    out.push_str(keyword);
                    out.push('=');
                    escape_value(&mut out, value);
                }
                // Other types, and values that are no plain string, are
                // written as the OID and the value's DER encoding in hex.
                _ => {
                    out.push_str(&oid);
                    out.push_str("=#");
                    let value = attribute.attr_value();
                    for byte in der_header(value.tag().0, value.data.len())
                        .iter()
                        .chain(value.data)
                    {
                        let _ = write!(out, "{byte:02x}");
                    }
                }
            }
        }
    }
    Some(out)
}

/// RFC 2253 escaping of an attribute value, as Java writes it.
fn escape_value(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i == last);
        if ",=+<>#;\"\\".contains(c) || edge_space {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The DER tag and length octets of a universal primitive value.
fn der_header(tag: u32, len: usize) -> Vec<u8> {
    let mut header = vec![u8::try_from(tag).unwrap_or(0x1f)];
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => header.push(short),
        _ => {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            header.push(0x80 | bytes.len() as u8);
            header.extend(bytes);
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA that signs certificates for the tests.
    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let key = KeyPair::generate().expect("CA key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let pem = params.self_signed(&key).expect("self-signed CA").pem();
            Ca {
                issuer: Issuer::new(params, key),
                pem,
            }
        }

        /// A certificate with `subject` (in the order it is encoded) and its key, as PEM.
        fn sign(&self, subject: &[(DnType, &str)], names: &[&str]) -> (String, String, Vec<u8>) {
            let key = KeyPair::generate().expect("leaf key");
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            for (ty, value) in subject {
                params.distinguished_name.push(ty.clone(), *value);
            }
            let certificate = params.signed_by(&key, &self.issuer).expect("signed leaf");
            (
                certificate.pem(),
                key.serialize_pem(),
                certificate.der().to_vec(),
            )
        }
    }

    #[test]
    fn a_certificate_subject_is_named_as_kafka_names_it() {
        let ca = Ca::new("Test CA");
        let (_, _, der) = ca.sign(
            &[
                (DnType::CountryName, "NL"),
                (DnType::OrganizationName, "Example, Inc."),
                (DnType::OrganizationalUnitName, "eng"),
                (DnType::CommonName, "alice"),
            ],
            &[],
        );
        assert_eq!(
            subject_name(&der).as_deref(),
            Some("CN=alice,OU=eng,O=Example\\, Inc.,C=NL")
        );
        // A type without a keyword is its OID with the DER value in hex.
        let (_, _, der) = ca.sign(
            &[
                (
                    DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                    "a@x",
                ),
                (DnType::CommonName, "bob"),
            ],
            &[],
        );
        assert_eq!(
            subject_name(&der).as_deref(),
            Some("CN=bob,1.2.840.113549.1.9.1=#0c03614078")
        );
        assert_eq!(subject_name(b"not a certificate"), None);
    }

    fn files(dir: &Path, auth: ClientAuth) -> TlsFiles {
        TlsFiles {
            certificate: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            truststore: Some(dir.join("ca.pem")),
            client_auth: auth,
            principal_rules: PrincipalRules::default(),
        }
    }

    #[test]
    fn changed_files_are_served_and_broken_ones_keep_the_previous_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("Test CA");
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).expect("write CA");
        let (cert, key, _) = ca.sign(&[(DnType::CommonName, "broker")], &["localhost"]);
        std::fs::write(dir.path().join("cert.pem"), cert).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), key).expect("write key");
        let tls = ReloadingTls::load(files(dir.path(), ClientAuth::Required)).expect("load");
        let first = tls.acceptor();
        assert!(
            Arc::ptr_eq(first.config(), tls.acceptor().config()),
            "unchanged files are not read again"
        );
        // A new certificate and key, written the way tools replace files.
        let (cert, key, _) = ca.sign(&[(DnType::CommonName, "broker-2")], &["localhost"]);
        std::fs::write(dir.path().join("cert.new"), cert).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), key).expect("write key");
        // Only the key changed so far: it does not match, the old config stays.
        let halfway = tls.acceptor();
        assert!(Arc::ptr_eq(first.config(), halfway.config()));
        std::fs::rename(dir.path().join("cert.new"), dir.path().join("cert.pem")).expect("rename");
        let second = tls.acceptor();
        assert!(
            !Arc::ptr_eq(first.config(), second.config()),
            "the new files are served"
        );
    }

    #[test]
    fn unusable_files_are_refused_at_load_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ReloadingTls::load(files(dir.path(), ClientAuth::None))
            .err()
            .expect("missing files are refused");
        assert!(err.to_string().contains("cert.pem"), "{err}");
        std::fs::write(dir.path().join("cert.pem"), "not PEM").expect("write");
        let err = ReloadingTls::load(files(dir.path(), ClientAuth::None))
            .err()
            .expect("a file without certificates is refused");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
