//! The local replica store: every topic of the cluster metadata, and the
//! partition logs this broker holds (each an `Arc<Log>`). The metadata quorum
//! is the source of truth; [`TopicRegistry::sync`] makes the local logs match
//! an applied [`ClusterState`]: it opens the partitions whose replicas include
//! this broker, closes and deletes those of deleted topics or no longer
//! assigned here, and applies config changes to open logs. Each partition
//! directory holds `partition.metadata` with its topic id, so the directory of
//! a deleted topic is never reused by a new topic of the same name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use runnel_log::{FileCache, Log};
use runnel_meta::{BrokerId, ClusterState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

pub(crate) use crate::config::MAX_PARTITIONS;

use crate::config::BrokerConfig;
use crate::names::{unify_collision_chars, validate_topic_name};
use crate::parallel::{self, IO_THREADS};
use crate::persist::{self, PersistError};
use crate::topic_config::{self, TopicOverrides};

/// Errors of topic administration; mapped to Kafka codes in `errors.rs`.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// Illegal topic name.
    #[error("{0}")]
    InvalidName(String),
    /// CreateTopics for a name that exists.
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    /// No topic of that name.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// No topic with that id.
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    /// Bad partition count.
    #[error("{0}")]
    InvalidPartitions(String),
    /// Bad replication factor.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// Bad manual replica assignment.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// Unknown config key or bad value.
    #[error("{0}")]
    InvalidConfig(String),
    /// A partition log failed to open or close.
    #[error("partition {partition}: {source}")]
    Log {
        partition: String,
        source: runnel_log::Error,
    },
    /// A metadata file or directory operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One partition of a topic.
pub struct Partition {
    /// Partition index.
    pub index: i32,
    /// The partition's log (shared by every connection).
    pub log: Arc<Log>,
}

/// A topic: its identity, partition count, local partitions and config overrides.
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (stable for the topic's lifetime; a recreated topic gets a new one).
    pub id: Uuid,
    // Written only by `TopicRegistry::sync` (under its admin lock); read by every request.
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    partition_count: AtomicI32,
    configs: RwLock<Configs>,
}

/// A topic's explicit config overrides and the typed values hot paths read,
/// parsed from them once, whenever they change.
struct Configs {
    overrides: TopicOverrides,
    // Read on every acks=all produce.
    min_insync_replicas: Option<i32>,
}

impl Configs {
    fn new(overrides: TopicOverrides) -> Configs {
        Configs {
            min_insync_replicas: topic_config::min_insync_replicas(&overrides),
            overrides,
        }
    }
}

impl Topic {
    /// The local replica of the partition with this index, if this broker holds one.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(&index).cloned()
    }

    /// The partitions this broker holds, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Number of partitions of the topic in the cluster (held here or not).
    pub fn partition_count(&self) -> i32 {
        self.partition_count.load(Ordering::Acquire)
    }

    /// The explicit config overrides.
    pub fn overrides(&self) -> TopicOverrides {
        self.configs.read().overrides.clone()
    }

    /// The topic's `min.insync.replicas` override, parsed when the overrides
    /// last changed; `None` = the broker default applies.
    pub fn min_insync_replicas(&self) -> Option<i32> {
        self.configs.read().min_insync_replicas
    }
}

/// The layout of the pre-quorum `topics.json` (imported once into the metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LegacyTopic {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
    /// Config overrides.
    #[serde(default)]
    pub configs: TopicOverrides,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<LegacyTopic>,
}

/// Reads a pre-quorum `data_dir/topics.json`, if there is one.
pub(crate) fn read_legacy_topics(
    data_dir: &Path,
) -> Result<Option<Vec<LegacyTopic>>, PersistError> {
    let file: Option<TopicsFile> = persist::read_json(&data_dir.join(LEGACY_TOPICS_FILE))?;
    Ok(file.map(|f| f.topics))
}

/// Name of the pre-quorum topic list.
pub(crate) const LEGACY_TOPICS_FILE: &str = "topics.json";

#[derive(Default)]
struct State {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// What one [`TopicRegistry::sync`] changed.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Topics that disappeared (deleted, or replaced by a new topic of the same name).
    pub removed_topics: Vec<(String, Uuid)>,
    /// Partitions opened here.
    pub opened: Vec<(String, i32)>,
    /// Partitions closed and deleted here.
    pub closed: Vec<(String, i32)>,
    /// Partitions that could not be opened (retried on the next sync).
    pub failed: Vec<(String, i32, String)>,
}

/// All topics of the cluster and the partition logs of this broker.
pub struct TopicRegistry {
    data_dir: PathBuf,
    broker: BrokerConfig,
    /// Bounds the open segment files of every partition (`log_max_open_files`).
    files: Arc<FileCache>,
    state: RwLock<State>,
    // Serializes syncs (each opens and deletes files).
    admin: Mutex<()>,
    // Metadata log index up to which the local logs (and the broker's reactions) match the state.
    synced: watch::Sender<u64>,
}

/// File in each partition directory naming the topic id it belongs to.
const PARTITION_METADATA: &str = "partition.metadata";

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TopicError + '_ {
    move |source| TopicError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The topic id recorded in a partition directory, if any.
fn recorded_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

/// Renames a partition directory out of the way, then removes it, so a crash
/// never leaves a half-deleted directory under a live partition's name.
fn delete_partition_dir(data_dir: &Path, topic: &str, index: i32, id: Uuid) {
    let dir = partition_dir(data_dir, topic, index);
    if !dir.exists() {
        return;
    }
    let doomed = data_dir.join(format!("{topic}-{index}.{}-delete", id.simple()));
    match std::fs::rename(&dir, &doomed) {
        Ok(()) => {
            if let Err(err) = std::fs::remove_dir_all(&doomed) {
                tracing::warn!(dir = %doomed.display(), error = %err,
                    "removing deleted partition failed; retried at start-up");
            }
        }
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "renaming deleted partition failed")
        }
    }
}

impl TopicRegistry {
    /// An empty registry for `data_dir`; [`TopicRegistry::sync`] fills it from the metadata.
    pub fn open(data_dir: &Path, broker: &BrokerConfig) -> Result<TopicRegistry, TopicError> {
        Ok(TopicRegistry {
            data_dir: data_dir.to_path_buf(),
            broker: broker.clone(),
            files: FileCache::new(max_open_files(broker.log_max_open_files)),
            state: RwLock::new(State::default()),
            admin: Mutex::new(()),
            synced: watch::channel(0).0,
        })
    }

    /// Removes partition directories the metadata does not give this broker:
    /// leftovers of deletes while it was down or of interrupted deletes, and
    /// stray replicas (the partition was moved to other brokers while this one
    /// was down; those brokers hold its data). Call only with a state that has
    /// caught up with the quorum. Stray replicas are kept while the metadata
    /// has no broker `node_id` registered (a data directory started under
    /// another node id must not lose its partitions to that mistake).
    pub fn remove_unowned_dirs(
        &self,
        state: &ClusterState,
        node_id: BrokerId,
    ) -> Result<(), TopicError> {
        let known = state.brokers.contains_key(&node_id);
        let entries = std::fs::read_dir(&self.data_dir).map_err(io_err(&self.data_dir))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with("-delete") {
                tracing::info!(dir = %path.display(), "removing directory of a deleted partition");
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
                continue;
            }
            let Some((topic, index)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(index) = index.parse::<i32>() else {
                continue;
            };
            if validate_topic_name(topic).is_err() {
                continue;
            }
            match state.partition(topic, index) {
                Some(p) if !known || p.replicas.contains(&node_id) => continue,
                Some(p) => tracing::warn!(dir = %path.display(), replicas = ?p.replicas,
                    "removing stray replica: the partition was moved to other brokers"),
                None => tracing::warn!(dir = %path.display(),
                    "removing partition directory of a partition that is not in the cluster metadata"),
            }
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn open_partition(
        &self,
        topic: &str,
        id: Uuid,
        index: i32,
        lc: runnel_log::LogConfig,
    ) -> Result<Partition, TopicError> {
        let dir = partition_dir(&self.data_dir, topic, index);
        let partition = format!("{topic}-{index}");
        let fresh = !dir.exists();
        match recorded_topic_id(&dir) {
            Some(recorded) if recorded != id => {
                // An older topic of the same name, deleted while this broker was away.
                tracing::warn!(partition = %partition, old_id = %recorded, new_id = %id,
                    "partition directory belongs to an older topic of the same name; deleting it");
                delete_partition_dir(&self.data_dir, topic, index, recorded);
            }
            _ => {}
        }
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if recorded_topic_id(&dir) != Some(id) {
            let path = dir.join(PARTITION_METADATA);
            let body = format!("version: 0\ntopic_id: {id}\n");
            if fresh {
                // A new log fsyncs its directory as it creates its first
                // segment (below), which makes this rename durable too; the
                // new directory's own entry is made durable when `sync`
                // fsyncs the data directory once for all partitions.
                persist::write_atomic_no_dir_sync(&path, body.as_bytes())
            } else {
                persist::write_atomic(&path, body.as_bytes())
            }
            .map_err(io_err(&path))?;
        }
        let (log, report) =
            Log::open_with(&dir, lc, &self.files).map_err(|source| TopicError::Log {
                partition: partition.clone(),
                source,
            })?;
        if report.truncated_bytes > 0 || report.truncation.is_some() {
            let (file, reason) = report
                .truncation
                .as_ref()
                .map(|(f, r)| (f.display().to_string(), r.clone()))
                .unwrap_or_default();
            tracing::warn!(
                partition = %partition,
                file = %file,
                truncated_bytes = report.truncated_bytes,
                reason = %reason,
                "recovery truncated {} bytes of partition {partition} in {file}: {reason}",
                report.truncated_bytes
            );
        }
        if report.indexes_rebuilt > 0 {
            tracing::warn!(partition = %partition, indexes_rebuilt = report.indexes_rebuilt, "rebuilt index files");
        }
        Ok(Partition {
            index,
            log: Arc::new(log),
        })
    }

    fn close_partition(&self, topic: &Topic, partition: &Partition) {
        if let Err(err) = partition.log.close() {
            tracing::warn!(topic = %topic.name, partition = partition.index, error = %err,
                "closing partition failed");
        }
        delete_partition_dir(&self.data_dir, &topic.name, partition.index, topic.id);
    }

    /// Makes the local logs match `state` (see the module doc). Blocking: opens,
    /// closes and deletes files. Partitions are opened (recovered) in
    /// parallel, and the data directory is fsynced once for all of them. A
    /// partition that fails to open is reported and retried on the next call.
    pub fn sync(&self, state: &ClusterState, node_id: BrokerId) -> SyncReport {
        let _admin = self.admin.lock();
        let mut report = SyncReport::default();
        let mut to_open: Vec<(Arc<Topic>, i32, runnel_log::LogConfig)> = Vec::new();
        let mut next = State::default();
        let current: Vec<Arc<Topic>> = self.list();
        let mut current_by_name: HashMap<String, Arc<Topic>> =
            current.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (name, meta) in &state.topics {
            let existing = match current_by_name.remove(name) {
                Some(topic) if topic.id == meta.id => Some(topic),
                Some(old) => {
                    self.remove_topic(&old, &mut report);
                    None
                }
                None => None,
            };
            let topic = existing.unwrap_or_else(|| {
                Arc::new(Topic {
                    name: name.clone(),
                    id: meta.id,
                    partitions: RwLock::new(BTreeMap::new()),
                    partition_count: AtomicI32::new(0),
                    configs: RwLock::new(Configs::new(meta.configs.clone())),
                })
            });
            let lc = topic_config::log_config(&meta.configs, &self.broker);
            if topic.configs.read().overrides != meta.configs {
                *topic.configs.write() = Configs::new(meta.configs.clone());
                for partition in topic.partitions() {
                    partition.log.set_config(lc.clone());
                }
            }
            topic
                .partition_count
                .store(meta.partitions.len() as i32, Ordering::Release);
            for (index, pm) in meta.partitions.iter().enumerate() {
                let index = index as i32;
                let hosted = pm.replicas.contains(&node_id);
                let open = topic.partition(index);
                match (hosted, open) {
                    (true, None) => to_open.push((topic.clone(), index, lc.clone())),
                    (false, Some(partition)) => {
                        topic.partitions.write().remove(&index);
                        tracing::info!(topic = %name, partition = index,
                            "partition no longer assigned to this broker; deleting its local replica");
                        self.close_partition(&topic, &partition);
                        report.closed.push((name.clone(), index));
                    }
                    _ => {}
                }
            }
            let count = meta.partitions.len() as i32;
            let beyond: Vec<Arc<Partition>> = {
                let mut partitions = topic.partitions.write();
                let keys: Vec<i32> = partitions.range(count..).map(|(k, _)| *k).collect();
                keys.iter().filter_map(|k| partitions.remove(k)).collect()
            };
            for partition in beyond {
                self.close_partition(&topic, &partition);
                report.closed.push((name.clone(), partition.index));
            }
            next.by_id.insert(topic.id, topic.clone());
            next.by_name.insert(name.clone(), topic);
        }
        for (_, old) in current_by_name {
            self.remove_topic(&old, &mut report);
        }
        let opened = parallel::map(&to_open, IO_THREADS, |(topic, index, lc)| {
            self.open_partition(&topic.name, topic.id, *index, lc.clone())
        });
        for ((topic, index, _), result) in to_open.into_iter().zip(opened) {
            let name = topic.name.clone();
            match result {
                Ok(partition) => {
                    topic.partitions.write().insert(index, Arc::new(partition));
                    report.opened.push((name, index));
                }
                Err(err) => {
                    tracing::error!(topic = %name, partition = index, error = %err,
                        "cannot open partition");
                    report.failed.push((name, index, err.to_string()));
                }
            }
        }
        let _ = persist::sync_dir(&self.data_dir);
        *self.state.write() = next;
        report
    }

    fn remove_topic(&self, topic: &Arc<Topic>, report: &mut SyncReport) {
        // Unlisted first, so no new request finds it while its files go.
        {
            let mut state = self.state.write();
            if state
                .by_id
                .get(&topic.id)
                .is_some_and(|t| Arc::ptr_eq(t, topic))
            {
                state.by_id.remove(&topic.id);
                state.by_name.remove(&topic.name);
            }
        }
        let partitions: Vec<Arc<Partition>> = std::mem::take(&mut *topic.partitions.write())
            .into_values()
            .collect();
        for partition in partitions {
            self.close_partition(topic, &partition);
            report.closed.push((topic.name.clone(), partition.index));
        }
        tracing::info!(topic = %topic.name, id = %topic.id, "deleted topic");
        report.removed_topics.push((topic.name.clone(), topic.id));
    }

    /// Records that the local logs and the broker's reactions match the
    /// metadata up to log index `index`.
    pub fn mark_synced(&self, index: u64) {
        self.synced.send_if_modified(|v| {
            if index > *v {
                *v = index;
                true
            } else {
                false
            }
        });
    }

    /// The metadata log index the local logs match.
    pub fn synced_index(&self) -> u64 {
        *self.synced.borrow()
    }

    /// A receiver of the synced metadata index (the replica manager waits on it
    /// before using the logs of a newly assigned partition).
    pub fn subscribe_synced(&self) -> watch::Receiver<u64> {
        self.synced.subscribe()
    }

    /// Waits until the local logs match the metadata up to `index`.
    pub async fn wait_synced(&self, index: u64) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|v| *v >= index).await;
    }

    /// The broker config the registry derives topic defaults from.
    pub fn broker_config(&self) -> &BrokerConfig {
        &self.broker
    }

    /// Looks a topic up by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.state.read().by_name.get(name).cloned()
    }

    /// Looks a topic up by id.
    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.state.read().by_id.get(id).cloned()
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.state.read().by_name.values().cloned().collect()
    }

    /// Checks a set of config overrides.
    pub fn validate_overrides(configs: &TopicOverrides) -> Result<(), TopicError> {
        for (k, v) in configs {
            topic_config::validate_entry(k, v).map_err(TopicError::InvalidConfig)?;
        }
        Ok(())
    }

    /// Checks what a broker can check of a new topic before proposing it: the
    /// name, the partition count and the configs. Placement (replication
    /// factor, assignments) is checked by the metadata state machine.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &TopicOverrides,
    ) -> Result<(), TopicError> {
        validate_topic_name(name).map_err(|e| TopicError::InvalidName(e.to_string()))?;
        validate_partition_count(partitions)?;
        Self::validate_overrides(configs)?;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let unified = unify_collision_chars(name);
        if let Some(other) = self
            .list()
            .iter()
            .find(|t| unify_collision_chars(&t.name) == unified)
        {
            tracing::warn!(topic = name, existing = %other.name,
                "topic names differ only in '.' vs '_' and collide in metric names");
        }
        Ok(())
    }

    /// Fsyncs and closes every log (clean shutdown), many at a time: each
    /// close waits on its own fsyncs, so they run in parallel.
    pub fn close_all(&self) {
        let all: Vec<(Arc<Topic>, Arc<Partition>)> = self
            .list()
            .into_iter()
            .flat_map(|t| t.partitions().into_iter().map(move |p| (t.clone(), p)))
            .collect();
        parallel::map(&all, IO_THREADS, |(topic, partition)| {
            if let Err(err) = partition.log.close() {
                tracing::error!(topic = %topic.name, partition = partition.index, error = %err, "closing log failed");
            }
        });
    }

    /// The cache bounding this broker's open segment files.
    pub fn open_files(&self) -> &Arc<FileCache> {
        &self.files
    }
}

/// The open segment file limit: `configured`, but at most half the
/// process's soft open-file limit (the rest is for connections and other
/// files), when that can be read.
fn max_open_files(configured: usize) -> usize {
    let Some(nofile) = soft_nofile_limit() else {
        return configured;
    };
    let cap = (nofile / 2).max(1);
    if configured > cap {
        tracing::warn!(
            configured,
            open_file_limit = nofile,
            using = cap,
            "log_max_open_files is above half the process's open-file limit; using half of it"
        );
        return cap;
    }
    configured
}

/// The soft `RLIMIT_NOFILE` from `/proc/self/limits` (`None` when unknown or unlimited).
fn soft_nofile_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A partition count must be 1..=[`MAX_PARTITIONS`].
pub(crate) fn validate_partition_count(partitions: i32) -> Result<(), TopicError> {
    if partitions <= 0 {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions must be larger than 0, got {partitions}"
        )));
    }
    if partitions > MAX_PARTITIONS {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions {partitions} exceeds the limit of {MAX_PARTITIONS}"
        )));
    }
    Ok(())
}

/// Test support: a cluster state holding `topics` (name, partitions, configs),
/// every partition on `node` alone, led by it.
#[cfg(test)]
pub(crate) fn single_node_state(node: BrokerId, topics: &[(&str, i32)]) -> ClusterState {
    use runnel_meta::{PartitionMeta, TopicMeta};
    let mut state = ClusterState {
        applied_index: 1,
        ..Default::default()
    };
    for (name, count) in topics {
        let partitions = (0..*count)
            .map(|_| PartitionMeta {
                replicas: vec![node],
                isr: vec![node],
                leader: node,
                leader_epoch: 0,
                partition_epoch: 0,
                adding: Vec::new(),
                removing: Vec::new(),
            })
            .collect();
        let configs = if *name == crate::group::OFFSETS_TOPIC {
            crate::group::coordinator::offsets_topic_configs()
        } else {
            TopicOverrides::new()
        };
        state.topics.insert(
            name.to_string(),
            Arc::new(TopicMeta {
                name: name.to_string(),
                id: Uuid::from_u128(
                    name.bytes()
                        .fold(7u128, |h, b| h.wrapping_mul(31).wrapping_add(u128::from(b))),
                ),
                partitions,
                configs,
            }),
        );
    }
    state
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
