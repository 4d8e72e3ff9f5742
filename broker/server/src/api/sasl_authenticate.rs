//! SaslAuthenticate (v0-2), and the raw tokens that replace it after a v0
//! SaslHandshake: one step of the connection's SASL exchange. Success makes
//! the connection's principal `User:<name>`; a failure answers
//! SASL_AUTHENTICATION_FAILED (or ILLEGAL_SASL_STATE out of turn) and closes
//! the connection. Checking a password costs a PBKDF2 run, so it runs on the
//! blocking pool. With `connections_max_reauth_ms` (KIP-368) a session lasts
//! that long: SaslAuthenticate v1+ tells the client, which re-authenticates on
//! the same connection before then; after it, any other request closes the
//! connection.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use crate::api::blocking;
use crate::auth::{fake_salt_key, SaslError, SaslState};
use crate::broker::Broker;
use crate::session::{Principal, Session};

/// Runs one token through the session's exchange: the answer, or the error
/// (the connection is then closed after the answer).
async fn step(broker: &Arc<Broker>, session: &Session, token: Bytes) -> Result<Vec<u8>, SaslError> {
    let state = std::mem::take(&mut *session.sasl.lock());
    let reauthenticating = matches!(
        &state,
        SaslState::Chosen {
            previous: Some(_),
            ..
        } | SaslState::ScramFinal {
            previous: Some(_),
            ..
        }
    );
    let cluster = broker.cluster();
    let (state, result) = blocking(move || {
        let mut state = state;
        let result = state.authenticate(&token, &cluster.scram_credentials, fake_salt_key());
        (state, result)
    })
    .await
    .unwrap_or_else(|e| {
        (
            SaslState::Failed,
            Err(SaslError::IllegalState(format!(
                "authentication did not finish: {e}"
            ))),
        )
    });
    let outcome = match (&state, &result) {
        (SaslState::Done { user, .. }, Ok(_)) => {
            *session.principal.write() = Principal::user(user);
            let lifetime = broker.config.connections_max_reauth_ms;
            *session.sasl_expires.lock() = (lifetime > 0)
                .then(|| std::time::Instant::now() + std::time::Duration::from_millis(lifetime));
            tracing::debug!(peer = ?session.peer, %user, reauthenticating,
                "SASL authentication succeeded");
            Some(if reauthenticating {
                "reauthentication"
            } else {
                "success"
            })
        }
        (_, Ok(_)) => None,
        (_, Err(err)) => {
            let detail = match err {
                SaslError::Failed { detail, .. } => detail.clone(),
                other => other.to_string(),
            };
            tracing::info!(peer = ?session.peer, listener = %session.listener.name,
                "SASL authentication failed: {detail}");
            session.close_after_reply();
            Some("failure")
        }
    };
    if let Some(outcome) = outcome {
        broker
            .metrics
            .sasl_authentications
            .with_label_values(&[outcome])
            .inc();
    }
    *session.sasl.lock() = state;
    result
}

/// Handles SaslAuthenticate.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: SaslAuthenticateRequest,
    _version: i16,
) -> SaslAuthenticateResponse {
    if !session.listener.protocol.is_sasl() {
        session.close_after_reply();
        return SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "listener {} does not use SASL",
                session.listener.name
            ))));
    }
    match step(broker, session, request.auth_bytes).await {
        Ok(answer) => {
            let done = session.sasl.lock().is_done();
            let lifetime =
                i64::try_from(broker.config.connections_max_reauth_ms).unwrap_or(i64::MAX);
            SaslAuthenticateResponse::default()
                .with_error_message(None)
                .with_auth_bytes(Bytes::from(answer))
                .with_session_lifetime_ms(if done { lifetime } else { 0 })
        }
        Err(err) => {
            let code = match err {
                SaslError::Failed { .. } => ResponseError::SaslAuthenticationFailed,
                SaslError::Unsupported(_) => ResponseError::UnsupportedSaslMechanism,
                SaslError::IllegalState(_) => ResponseError::IllegalSaslState,
            };
            SaslAuthenticateResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(err.to_string())))
        }
    }
}

/// A raw token after a v0 SaslHandshake: the answer frame (size-prefixed
/// token), or `Err` to close the connection without one (a failed exchange
/// has no error frame in this framing: the client sees the connection close).
pub(crate) async fn raw_token(
    broker: &Arc<Broker>,
    session: &Session,
    token: Bytes,
) -> Result<Bytes, String> {
    let answer = step(broker, session, token)
        .await
        .map_err(|e| format!("SASL authentication failed: {e}"))?;
    let mut frame = BytesMut::with_capacity(4 + answer.len());
    frame.put_u32(u32::try_from(answer.len()).unwrap_or(u32::MAX));
    frame.put_slice(&answer);
    Ok(frame.freeze())
}
