//! [`MetaError`]: the errors of the metadata quorum as the broker sees them
//! (a refused command carries the state machine's [`Rejection`]).

use crate::types::Rejection;

/// Errors of the metadata quorum, as seen by the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetaError {
    /// The command was applied and refused by the state machine (maps to a Kafka error code).
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// No controller is known right now (election in progress, no quorum); retriable.
    #[error("no metadata controller available: {0}")]
    NoController(String),
    /// The command may or may not have been applied (timeout, leader change); retriable by the client.
    #[error("metadata request timed out: {0}")]
    Timeout(String),
    /// Storage or network failure of this node.
    #[error("metadata quorum error: {0}")]
    Internal(String),
    /// The node is shutting down.
    #[error("metadata node is shutting down")]
    ShuttingDown,
}
