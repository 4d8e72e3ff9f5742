//! SASL authentication of a connection (Kafka's SaslServerAuthenticator):
//! SaslHandshake picks a mechanism, then SaslAuthenticate requests (or, after a
//! v0 handshake, raw SASL tokens in plain size-prefixed frames) carry the
//! exchange. PLAIN checks the password against the user's SCRAM credential;
//! SCRAM-SHA-256/512 run RFC 5802. A connection on a SASL listener may send
//! nothing but ApiVersions and these two before it has authenticated. An
//! authenticated connection may authenticate again (KIP-368 re-authentication,
//! SaslHandshake v1 and SaslAuthenticate), as the same user with the same
//! mechanism. The state machine is pure; the handlers in `api/` feed it.

pub(crate) mod authorizer;
pub(crate) mod scram;

use std::collections::BTreeMap;

use runnel_meta::{ScramCredential, ScramMechanism};

use self::scram::{ScramError, ScramExchange};

/// The key that makes the salt this broker shows for an unknown SCRAM user:
/// random per process, stable while it runs, so that asking twice does not
/// tell an unknown user from a known one.
pub(crate) fn fake_salt_key() -> &'static [u8] {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    // Without randomness the key is zero: unknown users' salts become
    // predictable, which reveals only whether a user exists.
    KEY.get_or_init(|| runnel_client::scram::random_bytes(32).unwrap_or_else(|_| vec![0; 32]))
}

/// How this broker reaches the others on the inter-broker listener: TLS when
/// that listener is SSL or SASL_SSL, SASL when it is SASL_PLAINTEXT or SASL_SSL.
/// Read once, at start-up.
#[derive(Clone, Debug, Default)]
pub(crate) struct InterBroker {
    /// `inter_broker_sasl_*`, or the bootstrap user.
    sasl: Option<runnel_client::SaslCredentials>,
    /// Peers are checked against `ssl_truststore_location` (the system's CAs
    /// when unset); this broker presents its own `ssl_certificate_location`,
    /// so a listener requiring client certificates accepts it. The files are
    /// read at start-up: unlike the listener's, they are not reloaded.
    tls: Option<runnel_client::ClientTls>,
}

impl InterBroker {
    pub(crate) fn from_config(config: &crate::config::BrokerConfig) -> Result<InterBroker, String> {
        let listener = config.inter_broker_listener().map_err(|e| e.to_string())?;
        let sasl = if matches!(listener.protocol, "SASL_PLAINTEXT" | "SASL_SSL") {
            let (user, file) = config.inter_broker_sasl_user().ok_or(
                "the inter-broker listener uses SASL but no inter-broker user is configured",
            )?;
            let password = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the inter-broker password file {file}: {e}"))?;
            Some(runnel_client::SaslCredentials {
                mechanism: config.inter_broker_sasl_mechanism.clone(),
                username: user.to_string(),
                password: password.trim().to_string(),
            })
        } else {
            None
        };
        let tls = if listener.uses_tls() {
            let files = runnel_client::TlsFiles {
                ca_location: config.ssl_truststore_location.as_ref().map(Into::into),
                certificate_location: config.ssl_certificate_location.as_ref().map(Into::into),
                key_location: config.ssl_key_location.as_ref().map(Into::into),
            };
            let tls = runnel_client::ClientTls::from_files(&files)
                .map_err(|e| format!("inter-broker TLS: {e}"))?;
            Some(tls)
        } else {
            None
        };
        Ok(InterBroker { sasl, tls })
    }

    /// A connection to broker `addr`, over TLS and authenticated as configured.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        client_id: &str,
        connect_timeout: std::time::Duration,
        request_timeout: std::time::Duration,
    ) -> runnel_client::Result<runnel_client::Connection> {
        let mut conn = runnel_client::Connection::connect_with(
            addr,
            client_id,
            connect_timeout,
            request_timeout,
            self.tls.as_ref(),
        )
        .await?;
        if let Some(creds) = &self.sasl {
            conn.authenticate(creds).await?;
        }
        Ok(conn)
    }
}

/// A SASL mechanism this broker implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// RFC 4616, the password checked against a SCRAM credential.
    Plain,
    /// RFC 5802 / 7677.
    Scram(ScramMechanism),
}

impl Mechanism {
    /// The mechanism of a SASL name.
    pub(crate) fn parse(name: &str) -> Option<Mechanism> {
        if name == "PLAIN" {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::from_sasl_name(name).map(Mechanism::Scram)
    }
}

/// Where a connection is in its SASL exchange.
#[derive(Debug, Default)]
pub(crate) enum SaslState {
    /// Waiting for SaslHandshake.
    #[default]
    Start,
    /// A mechanism is chosen; waiting for its first message. `raw`: the
    /// handshake was v0, so the tokens come as raw frames, not SaslAuthenticate.
    /// `previous`: the identity a re-authentication must repeat.
    Chosen {
        mechanism: Mechanism,
        raw: bool,
        previous: Option<String>,
    },
    /// A SCRAM exchange waits for the client's final message.
    ScramFinal {
        exchange: Box<ScramExchange>,
        raw: bool,
        previous: Option<String>,
    },
    /// Authenticated as `user` with `mechanism`.
    Done { user: String, mechanism: Mechanism },
    /// Failed: the connection is closed after the answer.
    Failed,
}

impl SaslState {
    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(
            self,
            SaslState::Chosen { raw: true, .. } | SaslState::ScramFinal { raw: true, .. }
        )
    }

    /// Whether the connection has authenticated.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, SaslState::Done { .. })
    }
}

/// Why SASL refused a request or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SaslError {
    /// UNSUPPORTED_SASL_MECHANISM (33).
    #[error("SASL mechanism '{0}' is not enabled")]
    Unsupported(String),
    /// ILLEGAL_SASL_STATE (34).
    #[error("{0}")]
    IllegalState(String),
    /// SASL_AUTHENTICATION_FAILED (58); the detail goes to the broker's log only.
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")]
    Failed {
        /// The mechanism.
        mechanism: &'static str,
        /// Why, for the log.
        detail: String,
    },
}

/// For fuzzing: runs `tokens` through one SASL exchange of `mechanism` (`PLAIN`,
/// `SCRAM-SHA-256`, `SCRAM-SHA-512`), as a SASL listener does with the bytes of
/// clients that have not authenticated yet, against a store with one user.
/// Stops at the first refused token.
pub fn fuzz_sasl_exchange(mechanism: &str, tokens: &[&[u8]]) {
    type Store = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    let store = STORE.get_or_init(|| {
        let by_mechanism = ScramMechanism::ALL
            .into_iter()
            .filter_map(|m| Some((m, scram::new_credential(m, b"fuzz-password", 4096).ok()?)))
            .collect();
        BTreeMap::from([("fuzz-known-user".to_string(), by_mechanism)])
    });
    let mut state = SaslState::default();
    let enabled = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].map(String::from);
    if state.handshake(mechanism, &enabled, false).is_err() {
        return;
    }
    for token in tokens {
        if state.authenticate(token, store, b"fuzz-key").is_err() {
            return;
        }
    }
}

/// The credentials a token is checked against: the cluster's SCRAM store.
pub(crate) trait Credentials {
    /// `user`'s credential for `mechanism`.
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl Credentials for BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.get(user).and_then(|m| m.get(&mechanism)).cloned()
    }
}

impl SaslState {
    /// SaslHandshake: choose `name` if it is one of `enabled`. `raw` for a v0 handshake.
    pub(crate) fn handshake(
        &mut self,
        name: &str,
        enabled: &[String],
        raw: bool,
    ) -> Result<(), SaslError> {
        let previous =
            match self {
                SaslState::Start => None,
                // KIP-368: the same mechanism again, in SaslAuthenticate requests.
                SaslState::Done { user, mechanism } if !raw => {
                    if Mechanism::parse(name) != Some(*mechanism) {
                        return Err(SaslError::IllegalState(format!(
                            "re-authentication must use the connection's mechanism, not {name}"
                        )));
                    }
                    Some(user.clone())
                }
                _ => return Err(SaslError::IllegalState(
                    "SaslHandshake is only valid before authentication or to re-authenticate (v1)"
                        .into(),
                )),
            };
        let mechanism = Mechanism::parse(name)
            .filter(|_| enabled.iter().any(|e| e == name))
            .ok_or_else(|| SaslError::Unsupported(name.to_string()))?;
        *self = SaslState::Chosen {
            mechanism,
            raw,
            previous,
        };
        Ok(())
    }

    /// One token of the exchange (SaslAuthenticate's bytes, or a raw frame):
    /// the answer to send back. On failure the state becomes [`SaslState::Failed`].
    pub(crate) fn authenticate(
        &mut self,
        token: &[u8],
        credentials: &impl Credentials,
        fake_salt_key: &[u8],
    ) -> Result<Vec<u8>, SaslError> {
        let state = std::mem::replace(self, SaslState::Failed);
        let (answer, next) = match state {
            SaslState::Chosen {
                mechanism: Mechanism::Plain,
                previous,
                ..
            } => {
                let user = same_user(check_plain(token, credentials)?, previous, "PLAIN")?;
                let mechanism = Mechanism::Plain;
                (Vec::new(), SaslState::Done { user, mechanism })
            }
            SaslState::Chosen {
                mechanism: Mechanism::Scram(m),
                raw,
                previous,
            } => {
                let (exchange, server_first) = ScramExchange::start(
                    m,
                    token,
                    |user| credentials.scram(user, m),
                    fake_salt_key,
                )
                .map_err(|e| scram_failure(m, e))?;
                let exchange = Box::new(exchange);
                let next = SaslState::ScramFinal {
                    exchange,
                    raw,
                    previous,
                };
                (server_first, next)
            }
            SaslState::ScramFinal {
                exchange, previous, ..
            } => {
                let m = exchange.mechanism();
                let user = exchange.user().to_string();
                let server_final = exchange.finish(token).map_err(|e| scram_failure(m, e))?;
                let user = same_user(user, previous, m.sasl_name())?;
                let mechanism = Mechanism::Scram(m);
                (server_final, SaslState::Done { user, mechanism })
            }
            SaslState::Start => {
                return Err(SaslError::IllegalState(
                    "SaslAuthenticate before SaslHandshake".into(),
                ))
            }
            SaslState::Done { user, mechanism } => {
                *self = SaslState::Done { user, mechanism };
                return Err(SaslError::IllegalState(
                    "the connection is already authenticated (re-authentication starts with SaslHandshake)"
                        .into(),
                ));
            }
            SaslState::Failed => {
                return Err(SaslError::IllegalState(
                    "authentication already failed".into(),
                ))
            }
        };
        *self = next;
        Ok(answer)
    }
}

/// A re-authentication must prove the identity the connection already has.
fn same_user(
    user: String,
    previous: Option<String>,
    mechanism: &'static str,
) -> Result<String, SaslError> {
    match previous {
        Some(previous) if previous != user => Err(SaslError::Failed {
            mechanism,
            detail: format!("re-authentication as {user} on a connection of {previous}"),
        }),
        _ => Ok(user),
    }
}

fn scram_failure(m: ScramMechanism, e: ScramError) -> SaslError {
    SaslError::Failed {
        mechanism: m.sasl_name(),
        detail: e.to_string(),
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; the authorization id
/// must be empty or the user itself. The password must match one of the
/// user's SCRAM credentials.
fn check_plain(token: &[u8], credentials: &impl Credentials) -> Result<String, SaslError> {
    let failed = |detail: &str| SaslError::Failed {
        mechanism: "PLAIN",
        detail: detail.to_string(),
    };
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(failed("malformed PLAIN message"));
    };
    let user = std::str::from_utf8(user).map_err(|_| failed("user name is not UTF-8"))?;
    if user.is_empty() || (!authzid.is_empty() && authzid != user.as_bytes()) {
        return Err(failed(
            "empty user name or an authorization id of another user",
        ));
    }
    let matched = ScramMechanism::ALL.into_iter().any(|m| {
        credentials
            .scram(user, m)
            .is_some_and(|c| scram::password_matches(m, &c, password))
    });
    if !matched {
        return Err(failed(&format!("wrong password or unknown user '{user}'")));
    }
    Ok(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(
        user: &str,
        password: &str,
    ) -> BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
        let by_mechanism = ScramMechanism::ALL
            .into_iter()
            .map(|m| {
                let c = scram::new_credential(m, password.as_bytes(), 4096).expect("random");
                (m, c)
            })
            .collect();
        BTreeMap::from([(user.to_string(), by_mechanism)])
    }

    fn enabled(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn reauthentication_repeats_the_user_and_the_mechanism() {
        let mut creds = store("alice", "pw");
        creds.extend(store("bob", "pw"));
        let plain = enabled(&["PLAIN", "SCRAM-SHA-256"]);
        let authenticated = || {
            let mut s = SaslState::default();
            s.handshake("PLAIN", &plain, false).expect("enabled");
            s.authenticate(b"\0alice\0pw", &creds, b"k").expect("alice");
            s
        };
        // The same user with the same mechanism: authenticated again.
        let mut s = authenticated();
        s.handshake("PLAIN", &plain, false)
            .expect("re-authentication");
        assert!(!s.is_done());
        s.authenticate(b"\0alice\0pw", &creds, b"k")
            .expect("alice again");
        assert!(matches!(&s, SaslState::Done { user, .. } if user == "alice"));
        // Another user fails the connection.
        let mut s = authenticated();
        s.handshake("PLAIN", &plain, false)
            .expect("re-authentication");
        let err = s.authenticate(b"\0bob\0pw", &creds, b"k").expect_err("bob");
        assert!(
            matches!(&err, SaslError::Failed { detail, .. } if detail.contains("bob")),
            "{err:?}"
        );
        assert!(matches!(s, SaslState::Failed));
        // Another mechanism, or the v0 framing, is refused.
        let mut s = authenticated();
        assert!(matches!(
            s.handshake("SCRAM-SHA-256", &plain, false),
            Err(SaslError::IllegalState(_))
        ));
        assert!(matches!(
            s.handshake("PLAIN", &plain, true),
            Err(SaslError::IllegalState(_))
        ));
        assert!(s.is_done());
    }

    #[test]
    fn plain_authenticates_with_the_scram_password_and_nothing_else() {
        let creds = store("alice", "pw");
        let mut s = SaslState::default();
        s.handshake("PLAIN", &enabled(&["PLAIN"]), false)
            .expect("enabled");
        assert_eq!(s.authenticate(b"\0alice\0pw", &creds, b"k"), Ok(Vec::new()));
        assert!(matches!(&s, SaslState::Done { user, .. } if user == "alice"));
        // Authenticating again is refused, and the connection stays authenticated.
        assert!(matches!(
            s.authenticate(b"\0alice\0pw", &creds, b"k"),
            Err(SaslError::IllegalState(_))
        ));
        assert!(s.is_done());

        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0bob\0pw",
            b"mallory\0alice\0pw",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0pw\0extra",
        ] {
            let mut s = SaslState::default();
            s.handshake("PLAIN", &enabled(&["PLAIN"]), false)
                .expect("enabled");
            let err = s.authenticate(bad, &creds, b"k").expect_err("refused");
            assert!(
                matches!(
                    err,
                    SaslError::Failed {
                        mechanism: "PLAIN",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(matches!(s, SaslState::Failed));
        }
    }

    #[test]
    fn a_mechanism_must_be_enabled_and_chosen_once_before_any_token() {
        let mut s = SaslState::default();
        assert_eq!(
            s.handshake("PLAIN", &enabled(&["SCRAM-SHA-256"]), false),
            Err(SaslError::Unsupported("PLAIN".into()))
        );
        assert_eq!(
            s.handshake("GSSAPI", &enabled(&["GSSAPI"]), false),
            Err(SaslError::Unsupported("GSSAPI".into()))
        );
        assert!(matches!(
            s.authenticate(b"x", &store("a", "b"), b"k"),
            Err(SaslError::IllegalState(_))
        ));
        let mut s = SaslState::default();
        s.handshake("SCRAM-SHA-512", &enabled(&["SCRAM-SHA-512"]), true)
            .expect("enabled");
        assert!(s.expects_raw_token());
        assert!(matches!(
            s.handshake("SCRAM-SHA-512", &enabled(&["SCRAM-SHA-512"]), true),
            Err(SaslError::IllegalState(_))
        ));
    }

    #[test]
    fn scram_goes_through_first_and_final_messages() {
        let creds = store("alice", "pw");
        let mut s = SaslState::default();
        s.handshake("SCRAM-SHA-256", &enabled(&["SCRAM-SHA-256"]), false)
            .expect("enabled");
        let server_first = s
            .authenticate(b"n,,n=alice,r=nonce", &creds, b"k")
            .expect("first");
        assert!(server_first.starts_with(b"r=nonce"));
        assert!(matches!(s, SaslState::ScramFinal { .. }));
        // A final message with a wrong proof fails the exchange.
        let nonce = String::from_utf8(server_first).expect("utf-8");
        let nonce = nonce.split(',').next().expect("r=").to_string();
        let final_msg = format!("c=biws,{nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert!(matches!(
            s.authenticate(final_msg.as_bytes(), &creds, b"k"),
            Err(SaslError::Failed {
                mechanism: "SCRAM-SHA-256",
                ..
            })
        ));
        assert!(matches!(s, SaslState::Failed));
    }
}
