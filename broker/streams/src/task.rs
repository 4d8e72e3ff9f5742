//! A task: one sub-topology on one partition number, with its own nodes, stores and input
//! positions, and the checkpoint file that says up to where its stores hold the changelog.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::BaseConsumer;

use crate::config::{OnDeserializationError, ProcessingGuarantee, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::metrics::{Metrics, TaskMetrics};
use crate::node::{ProcessorContext, RawNode, TaskBuild};
use crate::record::{Output, RawRecord};
use crate::store::{Pending, RawStore};
use crate::topics::changelog_topic;
use crate::topology::{SubTopology, Topology};

/// A task's id, written `<sub-topology>_<partition>` as Kafka Streams does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TaskId {
    pub(crate) sub: usize,
    pub(crate) partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.sub, self.partition)
    }
}

pub(crate) struct TaskStore {
    pub(crate) store: Arc<RawStore>,
    pub(crate) changelog: String,
}

pub(crate) struct Task {
    pub(crate) id: TaskId,
    sources: HashMap<String, RawNode>,
    pub(crate) stores: Vec<TaskStore>,
    /// Next offset to commit per input topic (the partition is the task's).
    pub(crate) offsets: BTreeMap<String, i64>,
    /// Whether an input was processed since the last commit.
    pub(crate) uncommitted: bool,
    stream_time: i64,
    metrics: TaskMetrics,
    dir: PathBuf,
    span: tracing::Span,
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(".checkpoint")
}

fn read_checkpoint(dir: &Path) -> Option<BTreeMap<String, i64>> {
    let text = std::fs::read_to_string(checkpoint_path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

impl Task {
    /// Opens the task's stores (restoring them from their changelogs) and builds its nodes.
    pub(crate) fn open(
        topology: &Topology,
        sub: &SubTopology,
        partition: i32,
        config: &StreamsConfig,
        metrics: &Metrics,
        restore_consumer: &BaseConsumer<crate::restore::RestoreContext>,
    ) -> Result<Task> {
        let id = TaskId {
            sub: sub.id,
            partition,
        };
        let app = &config.application_id;
        let dir = config.state_dir.join(app).join(id.to_string());
        let checkpoint = read_checkpoint(&dir);
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            // Under exactly-once a checkpoint is only valid once: the stores may run ahead of
            // the committed transactions from now on, so a crash must find none (and restore
            // from the start of the changelog).
            let path = checkpoint_path(&dir);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| StreamsError::io(&path, e))?;
            }
        }
        let mut stores = Vec::new();
        let mut opened = HashMap::new();
        for spec in &sub.stores {
            let store = Arc::new(RawStore::open(
                &spec.name,
                &dir.join(format!("{}.redb", spec.name)),
            )?);
            let changelog = changelog_topic(app, &spec.name);
            let from = match checkpoint.as_ref().and_then(|c| c.get(&spec.name)) {
                Some(offset) => *offset,
                None => {
                    store.wipe()?;
                    0
                }
            };
            crate::restore::restore(
                restore_consumer,
                &store,
                &changelog,
                partition,
                from,
                metrics,
            )?;
            opened.insert(spec.name.clone(), store.clone());
            stores.push(TaskStore { store, changelog });
        }
        let task_metrics = metrics.task(&id.to_string());
        let mut build = TaskBuild {
            app_id: app.clone(),
            partition,
            stores: opened,
            metrics: task_metrics.clone(),
            shared: HashMap::new(),
        };
        let mut sources = HashMap::new();
        for (topic, factory) in &sub.sources {
            sources.insert(topic.full_name(app), factory(&mut build)?);
        }
        let _ = topology;
        Ok(Task {
            id,
            sources,
            stores,
            offsets: BTreeMap::new(),
            uncommitted: false,
            stream_time: i64::MIN,
            metrics: task_metrics,
            dir,
            span: tracing::info_span!("task", id = %id),
        })
    }

    /// Runs one input record through the task; what it writes goes to `outputs`.
    pub(crate) fn process(
        &mut self,
        topic: &str,
        offset: i64,
        record: RawRecord,
        on_error: OnDeserializationError,
        outputs: &mut Vec<Output>,
    ) -> Result<()> {
        let _entered = self.span.enter();
        let started = Instant::now();
        let Some(source) = self.sources.get_mut(topic) else {
            return Err(StreamsError::Topology(format!(
                "task {} does not read {topic}",
                self.id
            )));
        };
        self.stream_time = self.stream_time.max(record.timestamp);
        let mut ctx = ProcessorContext {
            topic,
            partition: self.id.partition,
            offset,
            stream_time: self.stream_time,
            outputs,
        };
        let result = source.process(&mut ctx, record);
        match result {
            Ok(()) => {}
            Err(e @ StreamsError::Deserialize { .. })
                if on_error == OnDeserializationError::LogAndSkip =>
            {
                tracing::warn!(error = %e, "skipping a record that cannot be read");
                self.metrics.skipped.inc();
            }
            Err(e) => return Err(e),
        }
        self.offsets.insert(topic.to_string(), offset + 1);
        self.uncommitted = true;
        self.metrics.processed.inc();
        self.metrics
            .process_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The changelog records of this commit interval, and the batches to persist after them.
    pub(crate) fn changelog(&self, outputs: &mut Vec<Output>) -> Vec<(Arc<RawStore>, Pending)> {
        let mut batches = Vec::new();
        for ts in &self.stores {
            let pending = ts.store.pending();
            if pending.is_empty() {
                continue;
            }
            for (k, v) in &pending {
                outputs.push(Output {
                    topic: ts.changelog.clone(),
                    partition: Some(self.id.partition),
                    key: Some(k.clone()),
                    value: v.clone(),
                    timestamp: self.stream_time.max(0),
                });
            }
            batches.push((ts.store.clone(), pending));
        }
        batches
    }

    /// Records that the stores hold their changelogs up to `ends` (store name → next offset).
    pub(crate) fn write_checkpoint(&self, ends: &BTreeMap<String, i64>) -> Result<()> {
        if self.stores.is_empty() {
            return Ok(());
        }
        let path = checkpoint_path(&self.dir);
        let tmp = self.dir.join(".checkpoint.tmp");
        let text = serde_json::to_string(ends).map_err(|e| StreamsError::Config(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| StreamsError::io(&tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StreamsError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StreamsError::io(&path, e))
    }

    /// Forgets what the stores hold beyond the last commit (an aborted transaction).
    pub(crate) fn discard_pending(&self) {
        for ts in &self.stores {
            ts.store.discard_pending();
        }
    }
}
