//! Transactions as an administrator sees them: every transactional id the
//! brokers coordinate (ListTransactions to each broker) and one id's state
//! (DescribeTransactions to its coordinator).

use kafka_protocol::messages::{
    DescribeTransactionsRequest, FindCoordinatorRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, Route};
use crate::error::{check, Result};

/// FindCoordinator's key type for transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// One transactional id in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state (Empty, Ongoing, PrepareCommit, ...).
    pub state: String,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The broker coordinating it.
    pub coordinator: i32,
    /// Its state.
    pub state: String,
    /// Producer id and epoch.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), -1 if none.
    pub start_time_ms: i64,
    /// Partitions in the transaction, as `topic-partition`.
    pub partitions: Vec<String>,
}

impl Client {
    /// Every transactional id the cluster's brokers coordinate, sorted.
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let brokers = self.metadata(Some(&[]), false).await?.brokers;
        let mut out = Vec::new();
        for b in brokers {
            let resp = self
                .request(Route::Node(b.node_id), i16::MAX, |_| {
                    Ok(ListTransactionsRequest::default())
                })
                .await?;
            check(resp.error_code, || format!("broker {}", b.node_id), None)?;
            out.extend(
                resp.transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator: b.node_id,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// One transactional id's state, from its coordinator.
    pub async fn describe_transaction(&self, txn_id: &str) -> Result<TransactionDescription> {
        let target = || format!("transactional id '{txn_id}'");
        let found = self
            .request(Route::Any, 3, |_| {
                Ok(FindCoordinatorRequest::default()
                    .with_key_type(KEY_TYPE_TRANSACTION)
                    .with_key(StrBytes::from_string(txn_id.to_string())))
            })
            .await?;
        check(found.error_code, target, found.error_message.as_deref())?;
        let coordinator = found.node_id.0;
        // The coordinator must be a known node before it can be routed to.
        self.metadata(Some(&[]), false).await?;
        let resp = self
            .request(Route::Node(coordinator), 0, |_| {
                Ok(
                    DescribeTransactionsRequest::default().with_transactional_ids(vec![
                        TransactionalId(StrBytes::from_string(txn_id.to_string())),
                    ]),
                )
            })
            .await?;
        let Some(t) = resp.transaction_states.into_iter().next() else {
            return Err(crate::error::Error::Protocol {
                addr: format!("node {coordinator}"),
                api: "DescribeTransactions".into(),
                version: 0,
                message: "the answer names no transactional id".into(),
            });
        };
        check(t.error_code, target, None)?;
        Ok(TransactionDescription {
            transactional_id: txn_id.to_string(),
            coordinator,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .iter()
                .flat_map(|tp| {
                    tp.partitions
                        .iter()
                        .map(move |p| format!("{}-{p}", tp.topic.0))
                })
                .collect(),
        })
    }
}
