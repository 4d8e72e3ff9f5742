//! The topic registry: topics by name and id, their partitions (each an
//! `Arc<Log>`), per-topic config overrides, and their persistence in
//! `data_dir/topics.json`. The file is the source of truth: a partition
//! directory that it does not name is a leftover of an interrupted create or
//! delete and is removed at start-up.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use runnel_log::Log;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::names::{unify_collision_chars, validate_topic_name};
use crate::persist;
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

/// A topic: its identity, partitions and config overrides.
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (stable for the topic's lifetime; a recreated topic gets a new one).
    pub id: Uuid,
    // Written only under the registry's admin lock; read by every request.
    partitions: RwLock<Vec<Arc<Partition>>>,
    overrides: RwLock<TopicOverrides>,
}

impl Topic {
    /// The partition with this index, if any.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    /// All partitions in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }

    /// The explicit config overrides.
    pub fn overrides(&self) -> TopicOverrides {
        self.overrides.read().clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: TopicOverrides,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicRecord>,
}

#[derive(Default)]
struct State {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

/// What a successful (or validated) creation produced.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new topic id (nil for validate-only).
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
    /// The overrides stored.
    pub configs: TopicOverrides,
}

/// All topics of this broker.
pub struct TopicRegistry {
    data_dir: PathBuf,
    broker: BrokerConfig,
    state: RwLock<State>,
    // Serializes every mutation together with the write of topics.json.
    admin: Mutex<()>,
}

/// Upper bound on a topic's partition count: each partition is a directory
/// with open files, so an absurd request must not exhaust the machine.
pub const MAX_PARTITIONS: i32 = 10_000;

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TopicError + '_ {
    move |source| TopicError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl TopicRegistry {
    /// Loads topics.json, removes leftovers of interrupted deletes and creates,
    /// and opens (recovers) every partition log.
    pub fn open(data_dir: &Path, broker: &BrokerConfig) -> Result<TopicRegistry, crate::Error> {
        let path = data_dir.join("topics.json");
        let file_exists = path.exists();
        let file: TopicsFile = persist::read_json(&path)?.unwrap_or_default();
        let registry = TopicRegistry {
            data_dir: data_dir.to_path_buf(),
            broker: broker.clone(),
            state: RwLock::new(State::default()),
            admin: Mutex::new(()),
        };
        let known: HashMap<&str, i32> = file
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.partitions))
            .collect();
        registry.remove_leftovers(&known, file_exists)?;
        let mut state = State::default();
        for record in file.topics {
            let lc = topic_config::log_config(&record.configs, broker);
            let mut partitions = Vec::with_capacity(record.partitions.max(0) as usize);
            for index in 0..record.partitions {
                partitions.push(Arc::new(registry.open_partition(
                    &record.name,
                    index,
                    lc.clone(),
                )?));
            }
            let topic = Arc::new(Topic {
                name: record.name.clone(),
                id: record.id,
                partitions: RwLock::new(partitions),
                overrides: RwLock::new(record.configs),
            });
            state.by_id.insert(topic.id, topic.clone());
            state.by_name.insert(record.name, topic);
        }
        *registry.state.write() = state;
        Ok(registry)
    }

    fn remove_leftovers(
        &self,
        known: &HashMap<&str, i32>,
        file_exists: bool,
    ) -> Result<(), crate::Error> {
        let entries = match std::fs::read_dir(&self.data_dir) {
            Ok(entries) => entries,
            Err(source) => {
                return Err(crate::Error::Io {
                    path: self.data_dir.clone(),
                    source,
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with("-delete") {
                tracing::info!(dir = %path.display(), "removing directory of a deleted partition");
                std::fs::remove_dir_all(&path).map_err(|source| crate::Error::Io {
                    path: path.clone(),
                    source,
                })?;
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
            let owned = known.get(topic).is_some_and(|&count| index < count);
            if !owned {
                if file_exists {
                    tracing::warn!(dir = %path.display(),
                        "removing partition directory not listed in topics.json (interrupted create or delete)");
                    std::fs::remove_dir_all(&path).map_err(|source| crate::Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                } else {
                    tracing::warn!(dir = %path.display(),
                        "partition directory found but topics.json is missing; leaving it untouched");
                }
            }
        }
        Ok(())
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        lc: runnel_log::LogConfig,
    ) -> Result<Partition, TopicError> {
        let dir = partition_dir(&self.data_dir, topic, index);
        let partition = format!("{topic}-{index}");
        let (log, report) = Log::open(&dir, lc).map_err(|source| TopicError::Log {
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

    fn persist(&self, state: &State) -> Result<(), TopicError> {
        let file = TopicsFile {
            topics: state
                .by_name
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partition_count(),
                    configs: t.overrides(),
                })
                .collect(),
        };
        let path = self.data_dir.join("topics.json");
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| TopicError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        persist::write_atomic(&path, &bytes).map_err(io_err(&path))
    }

    /// Checks a set of config overrides.
    pub fn validate_overrides(configs: &TopicOverrides) -> Result<(), TopicError> {
        for (k, v) in configs {
            topic_config::validate_entry(k, v).map_err(TopicError::InvalidConfig)?;
        }
        Ok(())
    }

    /// Creates a topic (or only validates the request). Blocking: opens files.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: TopicOverrides,
        validate_only: bool,
    ) -> Result<Created, TopicError> {
        validate_topic_name(name).map_err(|e| TopicError::InvalidName(e.to_string()))?;
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
        Self::validate_overrides(&configs)?;
        let _admin = self.admin.lock();
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
        if validate_only {
            return Ok(Created {
                id: Uuid::nil(),
                partitions,
                configs,
            });
        }
        let lc = topic_config::log_config(&configs, &self.broker);
        let mut logs = Vec::with_capacity(partitions as usize);
        for index in 0..partitions {
            let dir = partition_dir(&self.data_dir, name, index);
            if dir.exists() {
                // Not owned by any topic (checked above under the admin lock).
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            logs.push(Arc::new(self.open_partition(name, index, lc.clone())?));
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions: RwLock::new(logs),
            overrides: RwLock::new(configs.clone()),
        });
        let mut next = State {
            by_name: self.state.read().by_name.clone(),
            by_id: self.state.read().by_id.clone(),
        };
        next.by_name.insert(name.to_string(), topic.clone());
        next.by_id.insert(topic.id, topic.clone());
        self.persist(&next)?;
        *self.state.write() = next;
        tracing::info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(Created {
            id: topic.id,
            partitions,
            configs,
        })
    }

    /// Deletes a topic: it disappears from topics.json first, then its
    /// directories are renamed to `*-delete` and removed, so a crash at any
    /// point never brings back a half-deleted topic. Blocking.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let mut next = State {
            by_name: self.state.read().by_name.clone(),
            by_id: self.state.read().by_id.clone(),
        };
        next.by_name.remove(name);
        next.by_id.remove(&topic.id);
        self.persist(&next)?;
        *self.state.write() = next;
        for partition in topic.partitions() {
            if let Err(err) = partition.log.close() {
                tracing::warn!(topic = name, partition = partition.index, error = %err, "closing deleted partition failed");
            }
            let dir = partition_dir(&self.data_dir, name, partition.index);
            let doomed = self.data_dir.join(format!(
                "{name}-{}.{}-delete",
                partition.index,
                topic.id.simple()
            ));
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => {
                    if let Err(err) = std::fs::remove_dir_all(&doomed) {
                        tracing::warn!(dir = %doomed.display(), error = %err, "removing deleted partition failed; retried at start-up");
                    }
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "renaming deleted partition failed")
                }
            }
        }
        let _ = persist::sync_dir(&self.data_dir);
        tracing::info!(topic = name, id = %topic.id, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions (never shrinks). Blocking.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic '{name}' has {current} partitions; the count can only be increased (requested {count})"
            )));
        }
        if count > MAX_PARTITIONS {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions {count} exceeds the limit of {MAX_PARTITIONS}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let lc = topic_config::log_config(&topic.overrides(), &self.broker);
        let mut added = Vec::new();
        for index in current..count {
            let dir = partition_dir(&self.data_dir, name, index);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
            added.push(Arc::new(self.open_partition(name, index, lc.clone())?));
        }
        topic.partitions.write().extend(added);
        let state = self.state.read();
        self.persist(&state)
    }

    /// Replaces a topic's overrides and applies them to every partition. Blocking.
    pub fn set_overrides(
        &self,
        name: &str,
        configs: TopicOverrides,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        Self::validate_overrides(&configs)?;
        let _admin = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let previous = std::mem::replace(&mut *topic.overrides.write(), configs.clone());
        let state = self.state.read();
        if let Err(err) = self.persist(&state) {
            *topic.overrides.write() = previous;
            return Err(err);
        }
        let lc = topic_config::log_config(&configs, &self.broker);
        for partition in topic.partitions() {
            partition.log.set_config(lc.clone());
        }
        Ok(())
    }

    /// Fsyncs and closes every log (clean shutdown).
    pub fn close_all(&self) {
        for topic in self.list() {
            for partition in topic.partitions() {
                if let Err(err) = partition.log.close() {
                    tracing::error!(topic = %topic.name, partition = partition.index, error = %err, "closing log failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dirs_follow_kafka_layout() {
        assert_eq!(
            partition_dir(Path::new("/d"), "a-1", 0),
            PathBuf::from("/d/a-1-0")
        );
    }
}
