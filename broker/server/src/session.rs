//! One client connection's state, shared by the requests it sends: where it
//! came in (the listener and its security protocol), who it is (the principal
//! authentication established), and what quotas and telemetry track about it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::auth::SaslState;

use crate::quota::Mute;

/// Kafka's security protocols (`listener.security.protocol.map` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum SecurityProtocol {
    /// No encryption, no authentication.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol of a Kafka name (case-insensitive).
    pub(crate) fn parse(name: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether a connection must authenticate with SASL before anything else.
    pub(crate) fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A named listener (Kafka's `listeners` entry) as a connection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
}

impl Default for Listener {
    fn default() -> Listener {
        Listener {
            name: "PLAINTEXT".to_string(),
            protocol: SecurityProtocol::Plaintext,
        }
    }
}

/// Who a connection is, as Kafka's `KafkaPrincipal` (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Principal {
    /// The principal type (always `User` for SASL and TLS).
    pub kind: String,
    /// The user name (`ANONYMOUS` before or without authentication).
    pub name: String,
    /// `kind:name`, as ACLs name principals (kept so a decision builds no string).
    full: String,
}

impl Principal {
    /// Kafka's principal of unauthenticated connections.
    pub(crate) fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// `User:<name>`.
    pub(crate) fn user(name: &str) -> Principal {
        Principal {
            kind: "User".to_string(),
            name: name.to_string(),
            full: format!("User:{name}"),
        }
    }

    /// `User:alice`.
    pub(crate) fn as_str(&self) -> &str {
        &self.full
    }
}

impl Default for Principal {
    fn default() -> Principal {
        Principal::anonymous()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// What a connection's client said it is (ApiVersions v3+: software name and version).
pub(crate) type ClientSoftware = Mutex<Option<(String, String)>>;

/// The state of one client connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The peer's address (`None` in unit tests that need no connection).
    pub peer: Option<SocketAddr>,
    /// The listener the connection came in on.
    pub listener: Arc<Listener>,
    /// Set when a quota throttles this client.
    pub mute: Mute,
    /// The client software name and version the connection gave in ApiVersions v3+.
    pub software: ClientSoftware,
    /// Who the connection is; `User:ANONYMOUS` until it authenticates.
    pub principal: RwLock<Principal>,
    /// The SASL exchange, on a SASL listener.
    pub sasl: Mutex<SaslState>,
    /// When the authenticated session ends (`connections_max_reauth_ms`, KIP-368).
    pub sasl_expires: Mutex<Option<std::time::Instant>>,
    /// Set when the connection is to be closed once the response being queued
    /// is written (a failed authentication, an unsupported SASL mechanism).
    pub close_after_reply: AtomicBool,
}

impl Session {
    /// A session for a connection from `peer` on `listener`.
    pub(crate) fn new(peer: SocketAddr, listener: Arc<Listener>) -> Session {
        Session {
            peer: Some(peer),
            listener,
            ..Session::default()
        }
    }

    /// Whether requests other than ApiVersions, SaslHandshake and SaslAuthenticate
    /// must wait: a SASL listener's connection that has not authenticated yet,
    /// or whose session expired without re-authentication.
    pub(crate) fn needs_authentication(&self) -> bool {
        self.listener.protocol.is_sasl()
            && (!self.sasl.lock().is_done()
                || self
                    .sasl_expires
                    .lock()
                    .is_some_and(|at| std::time::Instant::now() >= at))
    }

    /// Whether the next frame is a raw SASL token (after a v0 SaslHandshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        self.listener.protocol.is_sasl() && self.sasl.lock().expects_raw_token()
    }

    /// Asks the connection to close once the response being queued is written.
    pub(crate) fn close_after_reply(&self) {
        self.close_after_reply.store(true, Ordering::Relaxed);
    }

    /// Whether [`Session::close_after_reply`] was asked for.
    pub(crate) fn closing(&self) -> bool {
        self.close_after_reply.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_protocols_parse_from_their_kafka_names() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(SecurityProtocol::parse(p.name()), Some(p));
            assert_eq!(SecurityProtocol::parse(&p.name().to_lowercase()), Some(p));
        }
        assert_eq!(SecurityProtocol::parse("TLS"), None);
        assert!(SecurityProtocol::SaslSsl.is_sasl() && !SecurityProtocol::Ssl.is_sasl());
        assert_eq!(Principal::default().to_string(), "User:ANONYMOUS");
    }
}
