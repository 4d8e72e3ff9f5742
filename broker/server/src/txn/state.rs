//! One transactional id's state, free of I/O: Kafka's `TransactionMetadata`
//! and its transitions. Every method takes the time (`now`, ms) and either
//! refuses with the Kafka error the client must see, changing nothing, or
//! returns the new state, which the coordinator persists to
//! `__transaction_state` before it answers.
//!
//! Empty → Ongoing (AddPartitionsToTxn/AddOffsetsToTxn) → PrepareCommit or
//! PrepareAbort (EndTxn, a timeout, or InitProducerId fencing an open
//! transaction) → markers written to every partition → CompleteCommit or
//! CompleteAbort → Ongoing again with the next transaction.

use std::collections::BTreeSet;

/// Where a transaction stands (Kafka's `TransactionState`, with its codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnStatus {
    /// No transaction open.
    Empty,
    /// Partitions added; records may be written.
    Ongoing,
    /// Committing: markers being written.
    PrepareCommit,
    /// Aborting: markers being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnStatus {
    /// The persisted code (Kafka's).
    pub(crate) fn code(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
        }
    }

    /// The status of a persisted code.
    pub(crate) fn from_code(code: i8) -> Option<TxnStatus> {
        Some(match code {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            _ => return None,
        })
    }

    /// Kafka's name (DescribeTransactions, ListTransactions).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written.
    pub(crate) fn is_preparing(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// Why a request is refused, each a Kafka error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TxnError {
    /// The producer id is not this transactional id's.
    #[error("the producer id does not belong to the transactional id")]
    InvalidProducerIdMapping,
    /// A newer producer with this transactional id has started.
    #[error("the producer has been fenced by a newer producer with the same transactional id")]
    ProducerFenced,
    /// Markers of the previous transaction are still being written: retry.
    #[error("the previous transaction is still completing")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state.
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    /// The timeout is above `transaction_max_timeout_ms` or not positive.
    #[error("the transaction timeout is above transaction_max_timeout_ms or not positive")]
    InvalidTransactionTimeout,
}

/// What EndTxn or a timeout decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Commit.
    Commit,
    /// Abort.
    Abort,
}

/// A topic partition.
pub(crate) type TopicPartition = (String, i32);

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    /// The transactional id.
    pub txn_id: String,
    /// Its current producer id.
    pub producer_id: i64,
    /// The producer id before the last one (KIP-360), -1 if none.
    pub prev_producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// The transaction timeout.
    pub timeout_ms: i32,
    /// Where it stands.
    pub status: TxnStatus,
    /// Partitions in the current (or completing) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the current transaction started (-1: none).
    pub start_ms: i64,
    /// When the state last changed.
    pub update_ms: i64,
}

/// What InitProducerId does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Init {
    /// Answer with this id and epoch.
    Ready(TxnMetadata),
    /// An open transaction was fenced: its abort must finish first
    /// (the client gets CONCURRENT_TRANSACTIONS and retries).
    Aborting(TxnMetadata),
}

/// The epoch after `epoch`, or `None` when it is exhausted and the producer
/// needs a new id (Kafka keeps `i16::MAX` unused).
fn next_epoch(epoch: i16) -> Option<i16> {
    (epoch < i16::MAX - 1).then_some(epoch + 1)
}

impl TxnMetadata {
    /// A new transactional id with a new producer id, epoch 0.
    pub(crate) fn new(txn_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            txn_id: txn_id.to_string(),
            producer_id,
            prev_producer_id: -1,
            epoch: 0,
            timeout_ms,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now,
        }
    }

    /// Checks a request's producer id and epoch.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != self.epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// InitProducerId for an existing id: a new epoch (a new producer id when
    /// the epoch is exhausted; `fresh_id` is one allocated for that case).
    /// An open transaction is aborted first under the new epoch, fencing its
    /// producer. `expected` (v3+, KIP-360) is the id and epoch the client had.
    pub(crate) fn init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_id: impl FnOnce() -> i64,
        now: i64,
    ) -> Result<Init, TxnError> {
        if self.status.is_preparing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            // The client's own id: its current epoch, or the one before when the
            // answer to a bump was lost (or a fence bumped it); anything else is
            // an older producer.
            let known = (pid == self.producer_id
                && (epoch == self.epoch || epoch.checked_add(1) == Some(self.epoch)))
                || pid == self.prev_producer_id;
            if !known {
                return Err(TxnError::ProducerFenced);
            }
        }
        let mut next = self.clone();
        next.timeout_ms = timeout_ms;
        next.update_ms = now;
        match next_epoch(self.epoch) {
            Some(e) => next.epoch = e,
            None => {
                next.prev_producer_id = self.producer_id;
                next.producer_id = fresh_id();
                next.epoch = 0;
            }
        }
        if self.status == TxnStatus::Ongoing {
            next.status = TxnStatus::PrepareAbort;
            return Ok(Init::Aborting(next));
        }
        next.status = TxnStatus::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        Ok(Init::Ready(next))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when every partition is
    /// already in the open transaction (nothing to persist).
    pub(crate) fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        now: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        if self.status.is_preparing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if self.status == TxnStatus::Ongoing
            && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(None);
        }
        let mut next = self.clone();
        if self.status != TxnStatus::Ongoing {
            next.partitions.clear();
            next.start_ms = now;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.update_ms = now;
        Ok(Some(next))
    }

    /// EndTxn: `Ok(None)` for a retry of an EndTxn that already completed.
    pub(crate) fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        outcome: Outcome,
        now: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match (self.status, outcome) {
            (TxnStatus::Ongoing, _) => {
                let mut next = self.clone();
                next.status = match outcome {
                    Outcome::Commit => TxnStatus::PrepareCommit,
                    Outcome::Abort => TxnStatus::PrepareAbort,
                };
                next.update_ms = now;
                Ok(Some(next))
            }
            (TxnStatus::CompleteCommit, Outcome::Commit)
            | (TxnStatus::CompleteAbort, Outcome::Abort) => Ok(None),
            (TxnStatus::PrepareCommit, Outcome::Commit)
            | (TxnStatus::PrepareAbort, Outcome::Abort) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// After every marker is written: the transaction is complete.
    pub(crate) fn complete(&self, now: i64) -> Option<TxnMetadata> {
        let status = match self.status {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
            _ => return None,
        };
        let mut next = self.clone();
        next.status = status;
        next.partitions.clear();
        next.start_ms = -1;
        next.update_ms = now;
        Some(next)
    }

    /// The coordinator's abort of a transaction open longer than its timeout:
    /// a new epoch fences the producer that went quiet.
    pub(crate) fn expire(&self, fresh_id: impl FnOnce() -> i64, now: i64) -> Option<TxnMetadata> {
        if self.status != TxnStatus::Ongoing || now < self.start_ms + i64::from(self.timeout_ms) {
            return None;
        }
        let mut next = self.clone();
        match next_epoch(self.epoch) {
            Some(e) => next.epoch = e,
            None => {
                next.prev_producer_id = self.producer_id;
                next.producer_id = fresh_id();
                next.epoch = 0;
            }
        }
        next.status = TxnStatus::PrepareAbort;
        next.update_ms = now;
        Some(next)
    }

    /// When an open transaction times out.
    pub(crate) fn deadline(&self) -> Option<i64> {
        (self.status == TxnStatus::Ongoing).then(|| self.start_ms + i64::from(self.timeout_ms))
    }

    /// The decision the markers carry, while preparing.
    pub(crate) fn marker_outcome(&self) -> Option<Outcome> {
        match self.status {
            TxnStatus::PrepareCommit => Some(Outcome::Commit),
            TxnStatus::PrepareAbort => Some(Outcome::Abort),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
