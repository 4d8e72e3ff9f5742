//! The load generator's errors.

use rdkafka::error::KafkaError;

/// What can stop a workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// librdkafka refused or failed an operation; `what` says which.
    #[error("{what}: {source}")]
    Kafka {
        /// The operation, with the topic or client it concerns.
        what: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The workload's options do not make sense together.
    #[error("invalid workload: {0}")]
    Invalid(String),
    /// Something did not happen before its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A thread of the generator failed.
    #[error("{0}")]
    Thread(String),
    /// The admin runtime could not start.
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a librdkafka error with what was being done.
pub(crate) fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let what = what.into();
    move |source| Error::Kafka { what, source }
}
