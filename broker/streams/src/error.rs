//! The library's error type.

use thiserror::Error;

/// What went wrong while building or running a topology.
#[derive(Debug, Error)]
pub enum StreamsError {
    /// The topology is not valid (a name used twice, sources that cannot be co-partitioned, ...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// An input record's key or value could not be read by its serde.
    #[error("cannot deserialize the {what}: {reason}")]
    Deserialize {
        /// Which part of which record (e.g. `value of raw-weather/2@17`).
        what: String,
        /// Why.
        reason: String,
    },
    /// A key or value could not be written by its serde.
    #[error("cannot serialize the {what}: {reason}")]
    Serde {
        /// Which part of which record (e.g. `value of raw-weather/2@17`).
        what: String,
        /// Why.
        reason: String,
    },
    /// The Kafka client failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What the library was doing.
        context: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A state store failed.
    #[error("state store {store}: {reason}")]
    Store {
        /// The store's name.
        store: String,
        /// Why.
        reason: String,
    },
    /// The configuration is not usable.
    #[error("config: {0}")]
    Config(String),
    /// A file of the state directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl StreamsError {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        StreamsError::Kafka {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn store(store: &str, reason: impl std::fmt::Display) -> Self {
        StreamsError::Store {
            store: store.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StreamsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
