//! The runtime: `KafkaStreams` runs a topology as one member of the application's consumer
//! group, with one task per sub-topology and partition, committing at the commit interval with
//! the configured guarantee.
//!
//! One thread polls, processes and commits; rebalance callbacks (which librdkafka runs inside
//! `poll` on that same thread) commit and close the revoked tasks and open the assigned ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::metrics::Metrics;
use crate::query::{QueryableStore, Registry};
use crate::record::{Output, RawRecord};
use crate::task::{Task, TaskId};
use crate::topics::PartitionCounts;
use crate::topology::Topology;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Delivery outcomes of the producer: the last offset per partition, and the first failure.
#[derive(Default)]
struct Deliveries {
    last: Mutex<HashMap<(String, i32), i64>>,
    failed: Mutex<Option<String>>,
}

struct ProducerCtx(Arc<Deliveries>);

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(msg) => {
                self.0
                    .last
                    .lock()
                    .insert((msg.topic().to_string(), msg.partition()), msg.offset());
            }
            Err((e, msg)) => {
                let mut failed = self.0.failed.lock();
                if failed.is_none() {
                    *failed = Some(format!("{}/{}: {e}", msg.topic(), msg.partition()));
                }
            }
        }
    }
}

/// The consumer's context: rebalances go to the engine, statistics to the lag metric.
struct Rebalancer {
    engine: Arc<Mutex<Engine>>,
    metrics: Metrics,
}

impl ClientContext for Rebalancer {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Rebalancer {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            let mut engine = self.engine.lock();
            if let Err(e) = engine.close_all(consumer) {
                engine.fail(e);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            let mut engine = self.engine.lock();
            if let Err(e) = engine.open(&assigned) {
                engine.fail(e);
            }
        }
    }
}

/// Everything the processing thread owns.
pub(crate) struct Engine {
    topology: Arc<Topology>,
    config: StreamsConfig,
    metrics: Metrics,
    registry: Registry,
    counts: PartitionCounts,
    producer: BaseProducer<ProducerCtx>,
    deliveries: Arc<Deliveries>,
    restore_consumer: BaseConsumer<crate::restore::RestoreContext>,
    tasks: BTreeMap<TaskId, Task>,
    /// Next changelog offset each store holds, per task (for checkpoints).
    changelog_next: BTreeMap<TaskId, BTreeMap<String, i64>>,
    txn_open: bool,
    outputs: Vec<Output>,
    failure: Option<StreamsError>,
    running_tasks: Arc<RwLock<Vec<String>>>,
}

impl Engine {
    fn fail(&mut self, e: StreamsError) {
        tracing::error!(error = %e, "streams thread failed");
        if self.failure.is_none() {
            self.failure = Some(e);
        }
    }

    fn eos(&self) -> bool {
        self.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    /// Opens the tasks of newly assigned partitions.
    fn open(&mut self, assigned: &[(String, i32)]) -> Result<()> {
        let app = self.config.application_id.clone();
        let mut ids = BTreeSet::new();
        for (topic, partition) in assigned {
            let sub = self.topology.subtopology_of(&app, topic).ok_or_else(|| {
                StreamsError::Topology(format!(
                    "assigned {topic}, which the topology does not read"
                ))
            })?;
            ids.insert(TaskId {
                sub,
                partition: *partition,
            });
        }
        for id in ids {
            if self.tasks.contains_key(&id) {
                continue;
            }
            let sub = &self.topology.subtopologies[id.sub];
            let task = Task::open(
                &self.topology,
                sub,
                id.partition,
                &self.config,
                &self.metrics,
                &self.restore_consumer,
            )?;
            let mut next = BTreeMap::new();
            {
                let mut registry = self.registry.stores.write();
                for (spec, ts) in sub.stores.iter().zip(&task.stores) {
                    let source_topic = sub
                        .sources
                        .first()
                        .map(|(t, _)| t.full_name(&app))
                        .unwrap_or_default();
                    let entry =
                        registry
                            .entry(spec.name.clone())
                            .or_insert_with(|| QueryableStore {
                                kind: spec.kind,
                                codec: spec.query.clone(),
                                source_topic,
                                partitions: self.counts.get(&id.sub).copied().unwrap_or(1),
                                instances: BTreeMap::new(),
                            });
                    entry.instances.insert(id.partition, ts.store.clone());
                }
            }
            for ts in &task.stores {
                let end = self
                    .restore_consumer
                    .fetch_watermarks(&ts.changelog, id.partition, TIMEOUT)
                    .map(|(_, high)| high)
                    .unwrap_or(0);
                next.insert(ts.store.name().to_string(), end);
            }
            self.changelog_next.insert(id, next);
            tracing::info!(task = %id, "task opened");
            self.tasks.insert(id, task);
        }
        self.publish_tasks();
        Ok(())
    }

    fn publish_tasks(&self) {
        *self.running_tasks.write() = self.tasks.keys().map(|id| id.to_string()).collect();
    }

    fn begin_if_needed(&mut self) -> Result<()> {
        if self.eos() && !self.txn_open {
            self.producer
                .begin_transaction()
                .map_err(|e| StreamsError::kafka("beginning a transaction", e))?;
            self.txn_open = true;
        }
        Ok(())
    }

    fn send(&mut self, out: &Output) -> Result<()> {
        self.begin_if_needed()?;
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&out.topic).timestamp(out.timestamp);
            if let Some(k) = &out.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &out.value {
                record = record.payload(v.as_slice());
            }
            if let Some(p) = out.partition {
                record = record.partition(p);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    return Err(StreamsError::kafka(
                        format!("producing to {}", out.topic),
                        e,
                    ))
                }
            }
        }
    }

    fn process(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        record: RawRecord,
    ) -> Result<()> {
        let Some(sub) = self
            .topology
            .subtopology_of(&self.config.application_id, topic)
        else {
            return Ok(());
        };
        let id = TaskId { sub, partition };
        let Some(task) = self.tasks.get_mut(&id) else {
            tracing::warn!(topic, partition, "record of a partition with no task");
            return Ok(());
        };
        let mut outputs = std::mem::take(&mut self.outputs);
        let on_error = self.config.on_deserialization_error;
        let result = task.process(topic, offset, record, on_error, &mut outputs);
        let sent = outputs.iter().try_for_each(|o| self.send(o));
        outputs.clear();
        self.outputs = outputs;
        self.producer.poll(Duration::ZERO);
        result.and(sent)
    }

    /// Commits every task: changelogs and outputs flushed (or in the transaction), then the
    /// input offsets, then the stores' files and checkpoints.
    fn commit(&mut self, consumer: &BaseConsumer<Rebalancer>) -> Result<()> {
        if !self.txn_open && !self.tasks.values().any(|t| t.uncommitted) {
            return Ok(());
        }
        let started = Instant::now();
        let mut changelog = Vec::new();
        let mut batches = Vec::new();
        for task in self.tasks.values() {
            batches.extend(task.changelog(&mut changelog));
        }
        for out in &changelog {
            self.send(out)?;
        }
        let mut offsets = TopicPartitionList::new();
        for task in self.tasks.values().filter(|t| t.uncommitted) {
            for (topic, next) in &task.offsets {
                offsets
                    .add_partition_offset(topic, task.id.partition, Offset::Offset(*next))
                    .map_err(|e| StreamsError::kafka("offsets to commit", e))?;
            }
        }
        if self.eos() {
            self.begin_if_needed()?;
            if offsets.count() > 0 {
                let group = consumer.group_metadata().ok_or_else(|| {
                    StreamsError::Config("the consumer has no group metadata".into())
                })?;
                self.producer
                    .send_offsets_to_transaction(&offsets, &group, TIMEOUT)
                    .map_err(|e| StreamsError::kafka("adding offsets to the transaction", e))?;
            }
            self.producer
                .commit_transaction(TIMEOUT)
                .map_err(|e| StreamsError::kafka("committing the transaction", e))?;
            self.txn_open = false;
            // Serve the delivery reports (the changelog offsets for checkpoints).
            self.producer.poll(Duration::ZERO);
        } else {
            self.producer
                .flush(TIMEOUT)
                .map_err(|e| StreamsError::kafka("flushing outputs and changelogs", e))?;
            if let Some(failed) = self.deliveries.failed.lock().take() {
                return Err(StreamsError::Config(format!(
                    "a record was not delivered: {failed}"
                )));
            }
            if offsets.count() > 0 {
                consumer
                    .commit(&offsets, CommitMode::Sync)
                    .map_err(|e| StreamsError::kafka("committing offsets", e))?;
            }
        }
        for (store, batch) in &batches {
            store.persist(batch)?;
        }
        self.note_changelog_ends();
        for task in self.tasks.values_mut() {
            task.uncommitted = false;
        }
        if !self.eos() {
            for task in self.tasks.values() {
                if let Some(ends) = self.changelog_next.get(&task.id) {
                    task.write_checkpoint(ends)?;
                }
            }
        }
        self.metrics
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.commits.inc();
        Ok(())
    }

    fn note_changelog_ends(&mut self) {
        let last = self.deliveries.last.lock();
        for task in self.tasks.values() {
            let Some(ends) = self.changelog_next.get_mut(&task.id) else {
                continue;
            };
            for ts in &task.stores {
                if let Some(offset) = last.get(&(ts.changelog.clone(), task.id.partition)) {
                    let end = ends.entry(ts.store.name().to_string()).or_insert(0);
                    *end = (*end).max(offset + 1);
                }
            }
        }
    }

    /// Commits, then closes every task cleanly (with a checkpoint, under both guarantees).
    fn close_all(&mut self, consumer: &BaseConsumer<Rebalancer>) -> Result<()> {
        if self.failure.is_some() {
            return Ok(());
        }
        self.commit(consumer)?;
        for (id, task) in std::mem::take(&mut self.tasks) {
            if let Some(ends) = self.changelog_next.remove(&id) {
                task.write_checkpoint(&ends)?;
            }
            let mut registry = self.registry.stores.write();
            for ts in &task.stores {
                if let Some(entry) = registry.get_mut(ts.store.name()) {
                    entry.instances.remove(&id.partition);
                }
            }
            tracing::info!(task = %id, "task closed");
        }
        self.publish_tasks();
        Ok(())
    }

    /// After a failure under exactly-once: abort the open transaction and forget the stores'
    /// uncommitted writes, so nothing of it is kept.
    fn abort(&mut self) {
        if self.eos() && self.txn_open {
            if let Err(e) = self.producer.abort_transaction(TIMEOUT) {
                tracing::warn!(error = %e, "aborting the transaction failed");
            }
            self.txn_open = false;
        }
        for task in self.tasks.values() {
            task.discard_pending();
        }
    }
}

/// Stops a running application from another thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<AtomicBool>);

impl ShutdownHandle {
    /// Asks the application to commit, close its tasks and return from `run`.
    pub fn shutdown(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A streams application instance.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    metrics: Metrics,
    registry: Registry,
    stop: Arc<AtomicBool>,
    running_tasks: Arc<RwLock<Vec<String>>>,
}

impl KafkaStreams {
    /// An application instance that runs `topology` with `config` (nothing starts until `run`).
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        if config.application_id.is_empty()
            || !config
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(StreamsError::Config(format!(
                "application id {:?} must be letters, digits, '.', '_' or '-'",
                config.application_id
            )));
        }
        Ok(KafkaStreams {
            metrics: Metrics::new(&config.application_id)?,
            topology: Arc::new(topology),
            config,
            registry: Registry::default(),
            stop: Arc::new(AtomicBool::new(false)),
            running_tasks: Arc::default(),
        })
    }

    /// A handle that stops `run`.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// The tasks running on this instance (`<sub-topology>_<partition>`).
    pub fn running_tasks(&self) -> Vec<String> {
        self.running_tasks.read().clone()
    }

    /// The value of `key` (given as its JSON, or as plain text for a string key) in the local
    /// instance of `store`, as JSON; `Ok(None)` when this instance holds the key's partition and
    /// the key has no value. A window store answers with every window of the key.
    pub fn query_key(&self, store: &str, key: &str) -> Result<Option<serde_json::Value>> {
        match self.registry.lookup(store, key)? {
            crate::query::Lookup::Found(value) => Ok(Some(value)),
            crate::query::Lookup::Absent => Ok(None),
            crate::query::Lookup::NotHere { partition } => Err(StreamsError::Config(format!(
                "partition {partition} of {store} is not held by this instance"
            ))),
        }
    }

    /// Every entry of the local instances of `store`, as `{"key", "value"}` JSON objects (window
    /// stores add `start` and `end`).
    pub fn query_all(&self, store: &str) -> Result<Vec<serde_json::Value>> {
        self.registry.range(store, None, None)
    }

    /// The metrics in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Runs until SIGTERM or SIGINT (then shuts down cleanly) or a fatal error.
    pub fn run_until_signal(&self) -> Result<()> {
        let handle = self.shutdown_handle();
        std::thread::Builder::new()
            .name("streams-signals".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                });
                tracing::info!("signal received: shutting down");
                handle.shutdown();
            })
            .map_err(|e| StreamsError::Config(format!("signal thread: {e}")))?;
        self.run()
    }

    /// Runs until `shutdown` is called (then commits and closes every task) or a fatal error.
    pub fn run(&self) -> Result<()> {
        let config = &self.config;
        let app = &config.application_id;
        let counts = crate::topics::prepare(&self.topology, config)?;
        let http = match config.http_listen {
            Some(listen) => Some(crate::http::serve(
                listen,
                crate::http::HttpState {
                    registry: self.registry.clone(),
                    metrics: self.metrics.clone(),
                    tasks: self.running_tasks.clone(),
                    owners: Arc::new(crate::http::Owners::new(config)?),
                },
            )?),
            None => None,
        };
        let server = config
            .application_server
            .clone()
            .or_else(|| http.as_ref().map(|h| h.address.to_string()));

        let deliveries = Arc::new(Deliveries::default());
        let mut producer_config = config.client_config();
        producer_config
            .set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true");
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            producer_config
                .set("transactional.id", format!("{app}-{}", config.instance_id))
                .set("transaction.timeout.ms", "10000");
        }
        let producer: BaseProducer<ProducerCtx> = producer_config
            .create_with_context(ProducerCtx(deliveries.clone()))
            .map_err(|e| StreamsError::kafka("creating the producer", e))?;
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            producer
                .init_transactions(TIMEOUT)
                .map_err(|e| StreamsError::kafka("initializing transactions", e))?;
        }
        let isolation = match config.processing_guarantee {
            ProcessingGuarantee::ExactlyOnce => "read_committed",
            ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
        };
        let restore_consumer: BaseConsumer<crate::restore::RestoreContext> = config
            .client_config()
            .set("group.id", format!("{app}-restore"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // The end of a read_committed changelog is only seen from an empty fetch answer:
            // do not let the broker hold it.
            .set("fetch.wait.max.ms", "10")
            .set("isolation.level", isolation)
            .create_with_context(crate::restore::RestoreContext)
            .map_err(|e| StreamsError::kafka("creating the restore consumer", e))?;

        let engine = Arc::new(Mutex::new(Engine {
            topology: self.topology.clone(),
            config: config.clone(),
            metrics: self.metrics.clone(),
            registry: self.registry.clone(),
            counts,
            producer,
            deliveries,
            restore_consumer,
            tasks: BTreeMap::new(),
            changelog_next: BTreeMap::new(),
            txn_open: false,
            outputs: Vec::new(),
            failure: None,
            running_tasks: self.running_tasks.clone(),
        }));
        let client_id = match &server {
            Some(server) => format!("{app}@{server}"),
            None => format!("{app}-{}", config.instance_id),
        };
        let mut consumer_config = config.client_config();
        for (k, v) in &config.consumer_properties {
            consumer_config.set(k, v);
        }
        let consumer: BaseConsumer<Rebalancer> = consumer_config
            .set("group.id", app)
            // Static membership (KIP-345): a restarted instance takes its partitions back at
            // once instead of waiting for its previous incarnation's session to time out.
            .set("group.instance.id", format!("{app}-{}", config.instance_id))
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", isolation)
            .set("partition.assignment.strategy", "range")
            .set("statistics.interval.ms", "5000")
            .create_with_context(Rebalancer {
                engine: engine.clone(),
                metrics: self.metrics.clone(),
            })
            .map_err(|e| StreamsError::kafka("creating the consumer", e))?;
        let topics = self.topology.source_topics(app);
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| StreamsError::kafka("subscribing", e))?;
        tracing::info!(application = %app, topics = ?topics, "running");

        let outcome = self.poll_loop(&consumer, &engine);
        let outcome = match outcome {
            Ok(()) => engine.lock().close_all(&consumer),
            Err(e) => {
                engine.lock().abort();
                Err(e)
            }
        };
        consumer.unsubscribe();
        drop(consumer);
        if let Some(http) = http {
            http.stop();
        }
        outcome
    }

    fn poll_loop(
        &self,
        consumer: &BaseConsumer<Rebalancer>,
        engine: &Arc<Mutex<Engine>>,
    ) -> Result<()> {
        let mut last_commit = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let polled = consumer.poll(Duration::from_millis(100));
            let mut engine = engine.lock();
            if let Some(e) = engine.failure.take() {
                return Err(e);
            }
            match polled {
                Some(Ok(msg)) => {
                    let record = RawRecord {
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        timestamp: msg.timestamp().to_millis().unwrap_or(0),
                    };
                    let (topic, partition, offset) =
                        (msg.topic().to_string(), msg.partition(), msg.offset());
                    drop(msg);
                    engine.process(&topic, partition, offset, record)?;
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            if last_commit.elapsed() >= self.config.commit_interval {
                engine.commit(consumer)?;
                last_commit = Instant::now();
            }
        }
        Ok(())
    }
}
