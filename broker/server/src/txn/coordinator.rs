//! The transaction coordinator runtime: every transactional id whose
//! `__transaction_state` partition this broker leads, their transitions
//! (`state.rs`) persisted before they take effect, markers written to the
//! transactions' partitions once a decision is durable, timed-out
//! transactions aborted, and the partitions' state loaded when this broker
//! becomes their leader (and dropped when it stops).
//!
//! One transition per transactional id at a time: while one is being
//! persisted the id is `pending` and other requests for it get
//! CONCURRENT_TRANSACTIONS, as in Kafka, so the record order is the state order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use runnel_meta::ClusterState;

use super::append::{append_replicated, batch};
use super::markers;
use super::records;
use super::state::{Init, Outcome, TopicPartition, TxnError, TxnMetadata, TxnStatus};
use super::{partition_for, TXN_TOPIC};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::runtime::{now_ms, wait_shutdown};

/// One transactional id and whether a transition of it is being persisted.
struct Entry {
    meta: TxnMetadata,
    pending: bool,
}

/// The broker's transaction coordinator.
#[derive(Default)]
pub(crate) struct TxnCoordinator {
    /// Transactional ids of the partitions served; the lock is never held across an await.
    txns: Mutex<HashMap<String, Entry>>,
    /// Partitions of `__transaction_state` led here and loaded → their leader
    /// epoch (the coordinator epoch the markers carry).
    served: RwLock<BTreeMap<i32, i32>>,
    /// Partitions led here whose state is being loaded.
    loading: RwLock<BTreeSet<i32>>,
    /// Transactional produces this broker (as a partition leader) has verified.
    pub(crate) verified: super::verify::Verified,
}

pub(crate) use crate::errors::txn_error;

impl TxnCoordinator {
    /// The partition of `txn_id`, if this broker coordinates it; else
    /// NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while loading).
    fn check(&self, broker: &Broker, txn_id: &str) -> Result<i32, ApiError> {
        if txn_id.is_empty() {
            return Err(ApiError::with_message(
                ResponseError::InvalidRequest,
                "the transactional id is empty",
            ));
        }
        let count = broker
            .cluster()
            .topics
            .get(TXN_TOPIC)
            .map_or(0, |t| t.partitions.len() as i32);
        if count == 0 {
            return Err(ApiError::with_message(
                ResponseError::CoordinatorNotAvailable,
                format!("{TXN_TOPIC} does not exist yet"),
            ));
        }
        let partition = partition_for(txn_id, count);
        if self.served.read().contains_key(&partition) {
            Ok(partition)
        } else if self.loading.read().contains(&partition) {
            Err(ApiError::with_message(
                ResponseError::CoordinatorLoadInProgress,
                "the transaction coordinator is loading its state",
            ))
        } else {
            Err(ApiError::with_message(
                ResponseError::NotCoordinator,
                "this broker is not the transaction coordinator of that id",
            ))
        }
    }

    /// Persists `next` for `txn_id` (its id must be marked pending by the caller),
    /// then installs it; on failure the old state stays.
    async fn persist(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        partition: i32,
        next: TxnMetadata,
    ) -> Result<TxnMetadata, ApiError> {
        let record = batch(
            &[(
                records::encode_key(&next.txn_id),
                Some(records::encode_value(&next)),
            )],
            None,
            false,
        );
        let written = append_replicated(broker, TXN_TOPIC, partition, record).await;
        let mut txns = self.txns.lock();
        match written {
            Ok(_) => {
                txns.insert(
                    next.txn_id.clone(),
                    Entry {
                        meta: next.clone(),
                        pending: false,
                    },
                );
                Ok(next)
            }
            Err(err) => {
                if let Some(e) = txns.get_mut(&next.txn_id) {
                    e.pending = false;
                }
                tracing::warn!(txn = %next.txn_id, error = ?err.message, "writing transaction state failed");
                Err(match err.code {
                    ResponseError::NotLeaderOrFollower => ApiError::with_message(
                        ResponseError::NotCoordinator,
                        "the transaction coordinator moved",
                    ),
                    _ => ApiError::with_message(
                        ResponseError::CoordinatorNotAvailable,
                        "the transaction state could not be written",
                    ),
                })
            }
        }
    }

    /// Runs `f` on the id's current state (or `None` for an unknown id) and
    /// persists what it returns; CONCURRENT_TRANSACTIONS while another
    /// transition of the id is in flight.
    async fn transition(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        txn_id: &str,
        f: impl FnOnce(Option<&TxnMetadata>) -> Result<Option<TxnMetadata>, ApiError>,
    ) -> Result<Option<TxnMetadata>, ApiError> {
        let partition = self.check(broker, txn_id)?;
        let next = {
            let mut txns = self.txns.lock();
            let current = txns.get(txn_id);
            if current.is_some_and(|e| e.pending) {
                return Err(txn_error(TxnError::ConcurrentTransactions));
            }
            let Some(next) = f(current.map(|e| &e.meta))? else {
                return Ok(None);
            };
            match txns.get_mut(txn_id) {
                Some(e) => e.pending = true,
                None => {
                    // A new id is pending under its future state; a failed write removes it.
                    txns.insert(
                        txn_id.to_string(),
                        Entry {
                            meta: next.clone(),
                            pending: true,
                        },
                    );
                }
            }
            next
        };
        let created = next.status == TxnStatus::Empty && next.epoch == 0;
        let result = self.persist(broker, partition, next).await;
        if result.is_err() && created {
            let mut txns = self.txns.lock();
            if txns.get(txn_id).is_some_and(|e| e.pending) {
                txns.remove(txn_id);
            }
        }
        let next = result?;
        if next.status.is_preparing() {
            self.spawn_markers(broker, partition, next.clone());
        }
        Ok(Some(next))
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub(crate) async fn init_producer_id(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        txn_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ApiError> {
        if timeout_ms <= 0 || timeout_ms > broker.config.transaction_max_timeout_ms {
            return Err(txn_error(TxnError::InvalidTransactionTimeout));
        }
        self.check(broker, txn_id)?;
        // An id may be needed (a new transactional id, or an exhausted epoch):
        // allocate one first, outside the lock.
        let fresh = broker
            .producer_ids
            .allocate()
            .await
            .map_err(ApiError::from)?;
        let now = now_ms();
        let mut aborting = false;
        let next = self
            .transition(broker, txn_id, |current| match current {
                None => Ok(Some(TxnMetadata::new(txn_id, fresh, timeout_ms, now))),
                Some(m) => match m
                    .init(timeout_ms, expected, || fresh, now)
                    .map_err(txn_error)?
                {
                    Init::Ready(next) => Ok(Some(next)),
                    Init::Aborting(next) => {
                        aborting = true;
                        Ok(Some(next))
                    }
                },
            })
            .await?;
        if aborting {
            // The fenced transaction's abort runs on; the client retries.
            return Err(txn_error(TxnError::ConcurrentTransactions));
        }
        let next = next.ok_or_else(|| txn_error(TxnError::ConcurrentTransactions))?;
        Ok((next.producer_id, next.epoch))
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), ApiError> {
        let now = now_ms();
        self.transition(broker, txn_id, |current| {
            let m = current.ok_or_else(|| txn_error(TxnError::InvalidProducerIdMapping))?;
            m.add_partitions(producer_id, epoch, partitions, now)
                .map_err(txn_error)
        })
        .await
        .map(|_| ())
    }

    /// EndTxn: answered once the decision is durable; markers follow.
    pub(crate) async fn end_txn(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        outcome: Outcome,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        self.transition(broker, txn_id, |current| {
            let m = current.ok_or_else(|| txn_error(TxnError::InvalidProducerIdMapping))?;
            m.end(producer_id, epoch, outcome, now).map_err(txn_error)
        })
        .await
        .map(|_| ())
    }

    /// Whether `producer_id`/`epoch` of `txn_id` has `partition` in its open
    /// transaction here (the check of a transactional produce, KIP-890);
    /// `None` when this broker does not coordinate the id.
    pub(crate) fn verify(
        &self,
        broker: &Broker,
        txn_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TopicPartition,
    ) -> Option<Result<(), TxnError>> {
        self.check(broker, txn_id).ok()?;
        let txns = self.txns.lock();
        let Some(e) = txns.get(txn_id) else {
            return Some(Err(TxnError::InvalidProducerIdMapping));
        };
        let m = &e.meta;
        Some(if m.producer_id != producer_id {
            Err(TxnError::InvalidProducerIdMapping)
        } else if m.epoch != epoch {
            Err(TxnError::ProducerFenced)
        } else if m.status != TxnStatus::Ongoing || !m.partitions.contains(partition) {
            Err(TxnError::InvalidTxnState)
        } else {
            Ok(())
        })
    }

    /// One transactional id's state (DescribeTransactions): NOT_COORDINATOR
    /// when this broker does not coordinate it, `None` when it is unknown.
    pub(crate) fn describe(
        &self,
        broker: &Broker,
        txn_id: &str,
    ) -> Result<Option<TxnMetadata>, ApiError> {
        self.check(broker, txn_id)?;
        Ok(self.txns.lock().get(txn_id).map(|e| e.meta.clone()))
    }

    /// A copy of every transaction coordinated here (DescribeTransactions, ListTransactions).
    pub(crate) fn snapshot(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self.txns.lock().values().map(|e| e.meta.clone()).collect();
        all.sort_by(|a, b| a.txn_id.cmp(&b.txn_id));
        all
    }

    /// Writes the markers of a decided transaction, then completes it.
    fn spawn_markers(self: &Arc<Self>, broker: &Arc<Broker>, partition: i32, meta: TxnMetadata) {
        let (me, broker) = (self.clone(), broker.clone());
        tokio::spawn(async move {
            let Some(outcome) = meta.marker_outcome() else {
                return;
            };
            let Some(coordinator_epoch) = me.served.read().get(&partition).copied() else {
                return;
            };
            let still_mine = {
                let me = me.clone();
                move || me.served.read().get(&partition) == Some(&coordinator_epoch)
            };
            let started = std::time::Instant::now();
            let written = markers::write(
                &broker,
                meta.producer_id,
                meta.epoch,
                outcome == Outcome::Commit,
                coordinator_epoch,
                &meta.partitions,
                still_mine,
            )
            .await;
            if !written {
                return; // Shutdown or a new coordinator: it resumes from the log.
            }
            tracing::debug!(txn = %meta.txn_id, ?outcome, partitions = meta.partitions.len(),
                ms = started.elapsed().as_millis() as u64, "transaction markers written");
            broker
                .metrics
                .txn_marker_seconds
                .observe(started.elapsed().as_secs_f64());
            // Complete; retried while the coordinator keeps the partition.
            loop {
                let done = me
                    .transition(&broker, &meta.txn_id, |current| match current {
                        Some(m) if m.status == meta.status && m.epoch == meta.epoch => {
                            Ok(m.complete(now_ms()))
                        }
                        _ => Ok(None),
                    })
                    .await;
                match done {
                    Ok(Some(_)) => {
                        let label = match outcome {
                            Outcome::Commit => "commit",
                            Outcome::Abort => "abort",
                        };
                        broker
                            .metrics
                            .txn_completed
                            .with_label_values(&[label])
                            .inc();
                        return;
                    }
                    Ok(None) => return,
                    Err(err) if err.code == ResponseError::ConcurrentTransactions => {}
                    Err(err) => {
                        tracing::warn!(txn = %meta.txn_id, error = ?err.message, "cannot complete the transaction");
                        if !me.served.read().contains_key(&partition) {
                            return;
                        }
                    }
                }
                let mut shutdown = broker.shutdown_signal();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = wait_shutdown(&mut shutdown) => return,
                }
            }
        });
    }

    /// Aborts transactions open past their timeout.
    async fn abort_timed_out(self: &Arc<Self>, broker: &Arc<Broker>) {
        let now = now_ms();
        let due: Vec<String> = self
            .txns
            .lock()
            .values()
            .filter(|e| !e.pending && e.meta.deadline().is_some_and(|d| d <= now))
            .map(|e| e.meta.txn_id.clone())
            .collect();
        for txn_id in due {
            let fresh = match broker.producer_ids.allocate().await {
                Ok(id) => id,
                Err(_) => continue,
            };
            let result = self
                .transition(broker, &txn_id, |current| {
                    Ok(current.and_then(|m| m.expire(|| fresh, now_ms())))
                })
                .await;
            match result {
                Ok(Some(m)) => {
                    broker.metrics.txn_timed_out.inc();
                    tracing::info!(txn = %txn_id, producer_id = m.producer_id, epoch = m.epoch,
                        "aborting a transaction open longer than its timeout")
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(txn = %txn_id, error = ?err.message, "timeout abort deferred")
                }
            }
        }
    }

    /// Loads the state of newly led partitions of `__transaction_state`,
    /// drops that of partitions no longer led, and resumes the markers of
    /// transactions a previous coordinator left preparing.
    async fn follow(self: &Arc<Self>, broker: &Arc<Broker>, state: &ClusterState) {
        let node = broker.node_id();
        let led: BTreeMap<i32, i32> = state
            .topics
            .get(TXN_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.leader == node)
                    .map(|(i, p)| (i as i32, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default();
        let count = state
            .topics
            .get(TXN_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        let served = self.served.read().clone();
        let gone: Vec<i32> = served
            .iter()
            .filter(|(p, e)| led.get(p) != Some(e))
            .map(|(p, _)| *p)
            .collect();
        if !gone.is_empty() {
            self.served.write().retain(|p, _| !gone.contains(p));
            self.txns
                .lock()
                .retain(|id, _| !gone.contains(&partition_for(id, count)));
        }
        let new: Vec<(i32, i32)> = led
            .iter()
            .filter(|(p, e)| served.get(p) != Some(e))
            .map(|(p, e)| (*p, *e))
            .collect();
        if new.is_empty() {
            return;
        }
        self.loading.write().extend(new.iter().map(|(p, _)| *p));
        if broker.wait_synced(state.applied_index).await.is_err() {
            return;
        }
        for (partition, epoch) in new {
            let loaded = self.load(broker, partition);
            let preparing: Vec<TxnMetadata> = {
                let mut txns = self.txns.lock();
                let mut preparing = Vec::new();
                for m in loaded.into_values() {
                    if m.status.is_preparing() {
                        preparing.push(m.clone());
                    }
                    txns.insert(
                        m.txn_id.clone(),
                        Entry {
                            meta: m,
                            pending: false,
                        },
                    );
                }
                preparing
            };
            self.served.write().insert(partition, epoch);
            self.loading.write().remove(&partition);
            tracing::info!(
                partition,
                coordinator_epoch = epoch,
                resumed = preparing.len(),
                "loaded transactions from {TXN_TOPIC}"
            );
            for m in preparing {
                self.spawn_markers(broker, partition, m);
            }
        }
    }

    /// Replays one partition of `__transaction_state` (the latest record per id wins).
    fn load(&self, broker: &Broker, partition: i32) -> HashMap<String, TxnMetadata> {
        let mut out: HashMap<String, TxnMetadata> = HashMap::new();
        let Some(log) = broker
            .topics
            .get(TXN_TOPIC)
            .and_then(|t| t.partition(partition))
            .map(|p| p.log.clone())
        else {
            return out;
        };
        let limit = log.uncompressed_limit();
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        while next < end {
            let Ok(read) = log.read(next, 4 * 1024 * 1024, true, end) else {
                break;
            };
            if read.records.is_empty() {
                break;
            }
            let mut pos = 0usize;
            let bytes: Bytes = read.records;
            let before = next;
            while bytes.len() >= pos + 61 {
                let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap_or([0; 8]));
                let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap_or([0; 4]));
                let delta =
                    i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap_or([0; 4]));
                let total = 12 + len.max(0) as usize;
                if len < 49 || bytes.len() < pos + total {
                    break;
                }
                match runnel_log::records::decode_batch(bytes.slice(pos..pos + total), limit) {
                    Ok(records) => {
                        for r in records.into_iter().filter(|r| !r.control) {
                            let Some(key) = r.key else { continue };
                            let Ok(id) = records::decode_key(key) else {
                                continue;
                            };
                            match r.value.map(|v| records::decode_value(&id, v)) {
                                None => {
                                    out.remove(&id);
                                }
                                Some(Ok(m)) => {
                                    out.insert(id, m);
                                }
                                Some(Err(err)) => {
                                    tracing::warn!(partition, offset = r.offset, error = %err,
                                        "skipping undecodable transaction state")
                                }
                            }
                        }
                    }
                    Err(err) => tracing::warn!(partition, offset = base, error = %err,
                        "skipping undecodable batch in {TXN_TOPIC}"),
                }
                next = base.saturating_add(i64::from(delta)).saturating_add(1);
                pos += total;
            }
            if next == before {
                break;
            }
        }
        out
    }

    /// Follows `__transaction_state` leadership and aborts timed-out
    /// transactions until shutdown.
    pub(crate) async fn run(self: Arc<Self>, broker: Arc<Broker>) {
        let mut state = broker.meta.state();
        let mut shutdown = broker.shutdown_signal();
        let interval = Duration::from_millis(
            broker
                .config
                .transaction_abort_timed_out_transaction_cleanup_interval_ms
                .max(1),
        );
        let current = state.borrow_and_update().clone();
        self.follow(&broker, &current).await;
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = wait_shutdown(&mut shutdown) => return,
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let current = state.borrow_and_update().clone();
                    self.follow(&broker, &current).await;
                }
                _ = tick.tick() => self.abort_timed_out(&broker).await,
            }
        }
    }
}
