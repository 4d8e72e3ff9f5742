//! The client's error type: every failure names the broker, topic or
//! partition it concerns, so a command line can print it as is.

use std::fmt;
use std::io;

use kafka_protocol::ResponseError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a Kafka broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be established.
    #[error("cannot reach broker at {addr}: {reason}")]
    Connect {
        /// Address we tried.
        addr: String,
        /// Why, in lower case ("connection refused").
        reason: String,
    },
    /// The connection broke while a request was in flight.
    #[error("connection to broker at {addr} failed: {reason}")]
    Io {
        /// Broker address.
        addr: String,
        /// Why, in lower case.
        reason: String,
    },
    /// No response arrived in time.
    #[error("timed out after {timeout_ms} ms waiting for {api} from broker at {addr}")]
    Timeout {
        /// Broker address.
        addr: String,
        /// The request kind.
        api: String,
        /// How long we waited.
        timeout_ms: u128,
    },
    /// SASL authentication with the broker failed (wrong password, mechanism not enabled).
    #[error("SASL authentication with broker at {addr} failed: {reason}")]
    Authentication {
        /// Broker address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Something on this machine failed (the system random generator).
    #[error("{reason}")]
    Local {
        /// What failed.
        reason: String,
    },
    /// A message could not be encoded or decoded.
    #[error("{api} v{version} with broker at {addr}: {message}")]
    Protocol {
        /// Broker address.
        addr: String,
        /// The request kind.
        api: String,
        /// The negotiated version.
        version: i16,
        /// What went wrong.
        message: String,
    },
    /// The broker does not implement a version of an API that we can speak.
    #[error("broker at {addr} does not support {api} in any version this client speaks ({ours})")]
    UnsupportedApi {
        /// Broker address.
        addr: String,
        /// The request kind.
        api: String,
        /// The versions this client could have used.
        ours: String,
    },
    /// The topic is not known to the broker.
    #[error("unknown topic '{0}': topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The topic exists but has no such partition.
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        count: usize,
    },
    /// The broker answered with a Kafka error code for a topic or partition.
    #[error("broker returned {error} for {target}{}", detail(.message))]
    Broker {
        /// The Kafka error.
        error: KafkaErrorName,
        /// What it concerns: `topic 'x'`, `topic 'x' partition 3`, `the request`.
        target: String,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// Fetched record data could not be decoded.
    #[error("cannot decode records of topic '{topic}' partition {partition}: {message}")]
    CorruptRecords {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// What was wrong with the data.
        message: String,
    },
    /// No broker currently leads the partition.
    #[error("no leader for topic '{topic}' partition {partition}")]
    NoLeader {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The broker listed no address for a node id it referred to.
    #[error("broker metadata names node {0} but lists no address for it")]
    UnknownNode(i32),
    /// The caller passed something the client cannot send.
    #[error("invalid request: {0}")]
    InvalidInput(String),
}

fn detail(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl Error {
    /// The Kafka error code this error carries, if it came from the broker.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            Error::Broker { error, .. } => Some(error.0),
            _ => None,
        }
    }

    /// Whether the broker or coordinator may come back: an unreachable or
    /// dropped connection, a timeout, or a retriable Kafka error (coordinator
    /// moved or loading, no leader). Long-running consumers retry these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Io { .. } | Error::Timeout { .. }
        ) || self.is_retriable()
    }

    /// Whether retrying after a metadata refresh may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { error, .. } => error.0.is_retriable(),
            Error::NoLeader { .. } => true,
            _ => false,
        }
    }

    /// Builds a [`Error::Broker`] from a non-zero Kafka error code.
    pub(crate) fn broker(code: i16, target: String, message: Option<String>) -> Error {
        Error::Broker {
            error: KafkaErrorName(
                ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            ),
            target,
            message,
        }
    }

    pub(crate) fn connect(addr: &str, err: &io::Error) -> Error {
        Error::Connect {
            addr: addr.to_string(),
            reason: io_reason(err),
        }
    }

    pub(crate) fn io(addr: &str, err: &io::Error) -> Error {
        Error::Io {
            addr: addr.to_string(),
            reason: io_reason(err),
        }
    }
}

/// Describes an I/O error by its kind when that is meaningful ("connection
/// refused"), because the OS text carries noise like "(os error 111)".
fn io_reason(err: &io::Error) -> String {
    let kind = err.kind().to_string();
    if kind == "other error" || kind == "uncategorized error" {
        err.to_string()
    } else {
        kind
    }
}

/// Checks a Kafka error code, turning a non-zero one into [`Error::Broker`].
pub(crate) fn check(
    code: i16,
    target: impl FnOnce() -> String,
    message: Option<&str>,
) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::broker(code, target(), message.map(str::to_string)))
    }
}

/// A Kafka error displayed by its protocol name, e.g. `TOPIC_ALREADY_EXISTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaErrorName(pub ResponseError);

impl fmt::Display for KafkaErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ResponseError::Unknown(code) => write!(f, "unknown error code {code}"),
            other => f.write_str(&screaming_snake(&other.to_string())),
        }
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`, the spelling Kafka's docs use.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_display_with_protocol_names() {
        let err = Error::broker(36, "topic 'orders'".into(), Some("Topic exists.".into()));
        assert_eq!(
            err.to_string(),
            "broker returned TOPIC_ALREADY_EXISTS for topic 'orders': Topic exists."
        );
        let err = Error::broker(3, "topic 'a' partition 2".into(), None);
        assert_eq!(
            err.to_string(),
            "broker returned UNKNOWN_TOPIC_OR_PARTITION for topic 'a' partition 2"
        );
    }

    #[test]
    fn connection_refused_reads_plainly() {
        let io = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Error::connect("localhost:9092", &io).to_string(),
            "cannot reach broker at localhost:9092: connection refused"
        );
    }

    #[test]
    fn unknown_topic_message_names_the_topic() {
        let msg = Error::UnknownTopic("x".into()).to_string();
        assert!(msg.contains("unknown topic 'x'"), "{msg}");
        assert!(msg.contains("topic 'x' does not exist"), "{msg}");
    }
}
