//! SaslHandshake (v0-1): the client names a SASL mechanism; the answer lists the
//! enabled ones. After v0 the exchange continues in raw frames (Kafka's
//! pre-KIP-152 framing), after v1 in SaslAuthenticate requests. An unsupported
//! mechanism, or a handshake on a listener without SASL or a second time, gets
//! its error and the connection is closed, as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use crate::auth::SaslError;
use crate::broker::Broker;
use crate::session::Session;

/// Handles SaslHandshake.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let enabled = &broker.config.sasl_enabled_mechanisms;
    let response = SaslHandshakeResponse::default().with_mechanisms(
        enabled
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect(),
    );
    let result = if session.listener.protocol.is_sasl() {
        session
            .sasl
            .lock()
            .handshake(request.mechanism.as_str(), enabled, version == 0)
    } else {
        Err(SaslError::IllegalState(format!(
            "listener {} does not use SASL",
            session.listener.name
        )))
    };
    match result {
        Ok(()) => response,
        Err(err) => {
            tracing::info!(peer = ?session.peer, listener = %session.listener.name,
                mechanism = %request.mechanism.as_str(), "SASL handshake refused: {err}");
            session.close_after_reply();
            let code = match err {
                SaslError::Unsupported(_) => ResponseError::UnsupportedSaslMechanism,
                _ => ResponseError::IllegalSaslState,
            };
            response.with_error_code(code.code())
        }
    }
}
