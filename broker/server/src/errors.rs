//! Error types of the broker, and the one place where internal errors become
//! Kafka error codes.

use std::path::PathBuf;

use kafka_protocol::ResponseError;
use runnel_meta::{MetaError, Rejection};

use crate::config::ConfigError;
use crate::group::GroupError;
use crate::persist::PersistError;
use crate::topics::TopicError;

/// Errors that stop the broker from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// The TLS files of SSL listeners cannot be used (the message names the file).
    #[error("TLS: {0}")]
    Tls(String),
    /// A file of broker metadata could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A metadata file is damaged or disagrees with the configuration.
    #[error("{0}")]
    Metadata(String),
    /// A partition log could not be opened.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {} is in use by another broker{} (lock file {}/.lock); two brokers must not share a data_dir",
        dir.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        dir.display()
    )]
    DataDirLocked { dir: PathBuf, holder: Option<u32> },
    /// The metadata quorum could not start or refused this broker.
    #[error("metadata quorum: {0}")]
    Meta(#[from] MetaError),
}

impl From<PersistError> for Error {
    fn from(err: PersistError) -> Self {
        match err {
            PersistError::Io { path, source } => Error::Io { path, source },
            PersistError::Metadata(message) => Error::Metadata(message),
        }
    }
}

/// A Kafka error code with an optional message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The Kafka error.
    pub code: ResponseError,
    /// Human-readable detail, sent where the response has an error message field.
    pub message: Option<String>,
    /// Produce only (KIP-467): the records of the batch that caused the refusal, by index,
    /// each with why, so the client fails those records and retries or fails the others.
    pub record_errors: Vec<(i32, String)>,
}

impl ApiError {
    /// An error without a message.
    pub(crate) fn new(code: ResponseError) -> Self {
        ApiError {
            code,
            message: None,
            record_errors: Vec::new(),
        }
    }

    /// An error with a message.
    pub(crate) fn with_message(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }

    /// The wire code.
    pub(crate) fn code(&self) -> i16 {
        self.code.code()
    }
}

/// Maps a log engine error to its Kafka error code.
pub(crate) fn log_error_code(err: &runnel_log::Error) -> ResponseError {
    use runnel_log::Error as E;
    match err {
        // Disk errors (ENOSPC included) and poisoned logs are storage errors;
        // the client retries and the broker keeps serving other partitions.
        E::Io { .. } | E::Poisoned { .. } => ResponseError::KafkaStorageError,
        E::InvalidBatch(_) | E::CorruptBatch { .. } => ResponseError::CorruptMessage,
        E::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        E::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        // Kafka: "Compacted topic cannot accept message without key".
        E::KeylessRecordOnCompactedTopic { .. } => ResponseError::InvalidRecord,
        // Replication (runnel-log follower appends and epoch checks).
        E::StaleLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        // The client's retry goes to the new leader, which dedups it.
        E::LeadershipEnded { .. } => ResponseError::NotLeaderOrFollower,
        // Retriable: the client resends the missing batch first (see the variant).
        E::SequenceGapAtNewLeader { .. } => ResponseError::NotLeaderOrFollower,
        E::OffsetMismatch { .. } => ResponseError::UnknownServerError,
    }
}

impl From<&runnel_log::Error> for ApiError {
    fn from(err: &runnel_log::Error) -> Self {
        if let runnel_log::Error::KeylessRecordOnCompactedTopic { records } = err {
            // Kafka's LogValidator words, so clients and people see what they know.
            let record_errors: Vec<(i32, String)> = records
                .iter()
                .map(|i| {
                    (
                        i32::try_from(*i).unwrap_or(i32::MAX),
                        "Compacted topic cannot accept message without key".to_string(),
                    )
                })
                .collect();
            let shown: Vec<String> = record_errors
                .iter()
                .take(3)
                .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
                .collect();
            return ApiError {
                code: ResponseError::InvalidRecord,
                message: Some(format!(
                    "One or more records have been rejected due to {} record errors in total, \
                     and only showing the first three errors at most: [{}]",
                    record_errors.len(),
                    shown.join(", ")
                )),
                record_errors,
            };
        }
        ApiError::with_message(log_error_code(err), err.to_string())
    }
}

impl From<runnel_log::Error> for ApiError {
    fn from(err: runnel_log::Error) -> Self {
        ApiError::from(&err)
    }
}

impl From<TopicError> for ApiError {
    fn from(err: TopicError) -> Self {
        let code = match &err {
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            TopicError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicError::Log { source, .. } => log_error_code(source),
            TopicError::Io { .. } => ResponseError::KafkaStorageError,
        };
        ApiError::with_message(code, err.to_string())
    }
}

/// Maps a refusal of the metadata state machine to its Kafka error code.
pub(crate) fn rejection_code(rejection: &Rejection) -> ResponseError {
    match rejection {
        Rejection::TopicExists(_) => ResponseError::TopicAlreadyExists,
        Rejection::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        Rejection::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        Rejection::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        Rejection::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        Rejection::StaleEpoch(_) => ResponseError::FencedLeaderEpoch,
        Rejection::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        Rejection::NoEligibleLeader(_) => ResponseError::EligibleLeadersNotAvailable,
        Rejection::NoReassignment(_) => ResponseError::NoReassignmentInProgress,
        Rejection::NotFound(_) => ResponseError::ResourceNotFound,
        Rejection::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        Rejection::Invalid(_) => ResponseError::InvalidRequest,
    }
}

impl From<MetaError> for ApiError {
    fn from(err: MetaError) -> Self {
        let code = match &err {
            MetaError::Rejected(rejection) => rejection_code(rejection),
            // Retriable, as Kafka answers admin requests while the controller moves.
            MetaError::NoController(_) => ResponseError::NotController,
            MetaError::Timeout(_) => ResponseError::RequestTimedOut,
            MetaError::Internal(_) => ResponseError::UnknownServerError,
            MetaError::ShuttingDown => ResponseError::NotController,
        };
        let message = match err {
            MetaError::Rejected(rejection) => rejection.to_string(),
            other => other.to_string(),
        };
        ApiError::with_message(code, message)
    }
}

/// Maps a group-protocol error to its Kafka error code.
pub(crate) fn group_error_code(err: GroupError) -> ResponseError {
    match err {
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::NotAConsumerGroup => ResponseError::GroupIdNotFound,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression,
    }
}

/// The error a client gets for a transaction coordinator's refusal.
pub(crate) fn txn_error(err: crate::txn::state::TxnError) -> ApiError {
    use crate::txn::state::TxnError;
    let code = match err {
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::ProducerFenced => ResponseError::ProducerFenced,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
    };
    ApiError::with_message(code, err.to_string())
}

impl From<GroupError> for ApiError {
    fn from(err: GroupError) -> Self {
        ApiError::with_message(group_error_code(err), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_map_to_kafka_codes() {
        use runnel_log::Error as E;
        let io = E::Io {
            path: "x".into(),
            source: std::io::Error::from_raw_os_error(28), // ENOSPC
        };
        assert_eq!(log_error_code(&io).code(), 56);
        assert_eq!(log_error_code(&E::Poisoned { dir: "d".into() }).code(), 56);
        assert_eq!(
            log_error_code(&E::CorruptBatch {
                stored: 1,
                computed: 2
            })
            .code(),
            2
        );
        assert_eq!(log_error_code(&E::InvalidBatch("x".into())).code(), 2);
        assert_eq!(
            log_error_code(&E::BatchTooLarge { size: 2, max: 1 }).code(),
            10
        );
        assert_eq!(
            log_error_code(&E::OffsetOutOfRange {
                offset: 9,
                start: 0,
                end: 1
            })
            .code(),
            1
        );
        let seq = E::OutOfOrderSequence {
            producer_id: 1,
            expected: 1,
            got: 3,
        };
        assert_eq!(log_error_code(&seq).code(), 45);
        let epoch = E::InvalidProducerEpoch {
            producer_id: 1,
            current: 2,
            got: 1,
        };
        assert_eq!(log_error_code(&epoch).code(), 47);
        let keyless = E::KeylessRecordOnCompactedTopic {
            records: vec![0, 3],
        };
        assert_eq!(log_error_code(&keyless).code(), 87);
        let api = ApiError::from(&keyless);
        let indexes: Vec<i32> = api.record_errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [0, 3]);
        assert!(api.record_errors[0]
            .1
            .contains("Compacted topic cannot accept message without key"));
        assert!(api.message.as_deref().is_some_and(
            |m| m.starts_with("One or more records have been rejected due to 2 record errors")
        ));
    }

    #[test]
    fn metadata_refusals_map_to_kafka_codes() {
        let cases = [
            (MetaError::Rejected(Rejection::TopicExists("t".into())), 36),
            (MetaError::Rejected(Rejection::UnknownTopic("t".into())), 3),
            (
                MetaError::Rejected(Rejection::InvalidPartitions("x".into())),
                37,
            ),
            (
                MetaError::Rejected(Rejection::InvalidReplicationFactor("x".into())),
                38,
            ),
            (
                MetaError::Rejected(Rejection::InvalidReplicaAssignment("x".into())),
                39,
            ),
            (MetaError::Rejected(Rejection::StaleEpoch("x".into())), 74),
            (MetaError::Rejected(Rejection::NotLeader("x".into())), 6),
            (
                MetaError::Rejected(Rejection::NoEligibleLeader("x".into())),
                83,
            ),
            (
                MetaError::Rejected(Rejection::NoReassignment("x".into())),
                85,
            ),
            (MetaError::Rejected(Rejection::NotFound("x".into())), 91),
            (
                MetaError::Rejected(Rejection::UnacceptableCredential("x".into())),
                93,
            ),
            (MetaError::Rejected(Rejection::Invalid("x".into())), 42),
            (MetaError::NoController("x".into()), 41),
            (MetaError::Timeout("x".into()), 7),
        ];
        for (err, code) in cases {
            let text = format!("{err:?}");
            assert_eq!(ApiError::from(err).code(), code, "{text}");
        }
    }

    #[test]
    fn group_errors_map_to_kafka_codes() {
        let cases = [
            (GroupError::IllegalGeneration, 22),
            (GroupError::UnknownMemberId, 25),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::FencedInstanceId, 82),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::InvalidSessionTimeout, 26),
            (GroupError::InvalidGroupId, 24),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::CoordinatorLoadInProgress, 14),
            (GroupError::NotCoordinator, 16),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::UnknownTopicOrPartition, 3),
            (GroupError::OffsetMetadataTooLarge, 12),
            (GroupError::NotAConsumerGroup, 69),
            (GroupError::FencedMemberEpoch, 110),
            (GroupError::StaleMemberEpoch, 113),
            (GroupError::UnreleasedInstanceId, 111),
            (GroupError::UnsupportedAssignor, 112),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::InvalidRegularExpression, 128),
        ];
        for (err, code) in cases {
            assert_eq!(ApiError::from(err).code(), code, "{err:?}");
        }
    }

    #[test]
    fn topic_errors_map_to_kafka_codes() {
        let cases = [
            (TopicError::InvalidName("x".into()), 17),
            (TopicError::AlreadyExists("t".into()), 36),
            (TopicError::UnknownTopic("t".into()), 3),
            (TopicError::UnknownTopicId(uuid::Uuid::nil()), 100),
            (TopicError::InvalidPartitions("x".into()), 37),
            (TopicError::InvalidReplicationFactor("x".into()), 38),
            (TopicError::InvalidReplicaAssignment("x".into()), 39),
            (TopicError::InvalidConfig("x".into()), 40),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            let api = ApiError::from(err);
            assert_eq!(api.code(), code, "{text}");
            assert_eq!(api.message.as_deref(), Some(text.as_str()));
        }
    }
}
