//! SASL authentication of a new connection (SaslHandshake v1, then
//! SaslAuthenticate): PLAIN, or SCRAM-SHA-256/512 whose server signature is
//! checked too, so a broker that does not know the credential is not trusted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::scram::{ScramClient, ScramHash};

/// A SASL user and how it authenticates.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Connection {
    /// Authenticates again when the session the broker granted is near its
    /// end (KIP-368: at 85% of `session_lifetime_ms`), so the broker never
    /// closes the connection for an expired session.
    pub(crate) async fn reauthenticate_if_due(&mut self) -> Result<()> {
        let due = self
            .reauthenticate
            .as_ref()
            .is_some_and(|(_, at)| Instant::now() >= *at);
        if due {
            if let Some((creds, _)) = self.reauthenticate.take() {
                self.authenticate(&creds).await?;
            }
        }
        Ok(())
    }

    /// Authenticates this connection as `creds`; when the broker limits the
    /// session, it is renewed before it ends.
    pub async fn authenticate(&mut self, creds: &SaslCredentials) -> Result<()> {
        self.reauthenticate = None;
        let lifetime_ms = self.authenticate_once(creds).await?;
        if lifetime_ms > 0 {
            let renew = Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0) * 85 / 100);
            self.reauthenticate = Some((creds.clone(), Instant::now() + renew));
        }
        Ok(())
    }

    /// One SASL exchange; the session lifetime the broker answered (0 = unlimited).
    async fn authenticate_once(&mut self, creds: &SaslCredentials) -> Result<i64> {
        let failed = |addr: &str, reason: String| Error::Authentication {
            addr: addr.to_string(),
            reason,
        };
        let version = self.version::<SaslHandshakeRequest>()?.min(1);
        let handshake = self
            .send_unchecked(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(creds.mechanism.clone())),
                version,
                self.request_timeout(),
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(
                self.addr(),
                format!(
                    "mechanism {} is not enabled (the broker offers {})",
                    creds.mechanism,
                    offered.join(", ")
                ),
            ));
        }
        if creds.mechanism == "PLAIN" {
            let token = format!("\0{}\0{}", creds.username, creds.password);
            let (_, lifetime_ms) = self.sasl_step(token.into_bytes()).await?;
            return Ok(lifetime_ms);
        }
        let hash = ScramHash::from_mechanism(&creds.mechanism).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown SASL mechanism '{}' (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
                creds.mechanism
            ))
        })?;
        let mut scram = ScramClient::new(hash, &creds.username, &creds.password)
            .map_err(|reason| Error::Local { reason })?;
        let (server_first, _) = self.sasl_step(scram.first_message()).await?;
        let client_final = scram
            .final_message(&server_first)
            .map_err(|reason| failed(self.addr(), reason))?;
        let (server_final, lifetime_ms) = self.sasl_step(client_final).await?;
        scram
            .verify_server_final(&server_final)
            .map_err(|reason| failed(self.addr(), reason))?;
        Ok(lifetime_ms)
    }

    /// One SaslAuthenticate round trip: the broker's answer bytes and the
    /// session lifetime it gave (v1+; 0 before the exchange ends).
    async fn sasl_step(&mut self, token: Vec<u8>) -> Result<(Bytes, i64)> {
        let version = self.version::<SaslAuthenticateRequest>()?;
        let resp = self
            .send_unchecked(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                version,
                self.request_timeout(),
            )
            .await?;
        if resp.error_code != 0 {
            let reason = resp
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error code {}", resp.error_code));
            return Err(Error::Authentication {
                addr: self.addr().to_string(),
                reason,
            });
        }
        Ok((resp.auth_bytes, resp.session_lifetime_ms))
    }
}
