//! The topology: what a `StreamsBuilder` collects (sources, stores, internal topics) and the
//! sub-topologies the runtime turns into tasks.
//!
//! Streams joined by `merge`, a join or a shared store run in one *sub-topology*; a repartition
//! topic starts a new one. A task is one sub-topology on one partition number, so every source
//! topic of a sub-topology must have the same partition count (co-partitioning).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, StreamsError};
use crate::graph::{Data, Shared, StoreSpec};
use crate::node::RawFactory;
use crate::serdes::SerdeRef;
use crate::stream::KStream;
use crate::table::KTable;
use crate::topic_ref::TopicRef;

/// Builds a topology with the DSL (`stream`, `table`, then the operations of [`KStream`] and
/// [`KTable`]).
#[derive(Default)]
pub struct StreamsBuilder {
    state: Shared,
    /// The first error of the DSL; `build` reports it (DSL methods return streams, not results).
    pub(crate) error: Arc<Mutex<Option<StreamsError>>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> KStream<K, V> {
        KStream::source(
            self.state.clone(),
            self.error.clone(),
            TopicRef::User(topic.to_string()),
            key_serde,
            value_serde,
        )
    }

    /// A projection table of `topic`: the latest value of each key, kept in the store `store`;
    /// a record with no value (a tombstone) deletes its key.
    pub fn table<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        store: &str,
    ) -> KTable<K, V>
    where
        K: Data + serde::Serialize + serde::de::DeserializeOwned,
        V: Data + serde::Serialize,
    {
        KTable::source(
            self.state.clone(),
            self.error.clone(),
            TopicRef::User(topic.to_string()),
            key_serde,
            value_serde,
            store,
        )
    }

    /// The topology, or the first mistake made while building it.
    pub fn build(self) -> Result<Topology> {
        if let Some(error) = self.error.lock().take() {
            return Err(error);
        }
        let state = self.state.lock();
        if state.sources.is_empty() {
            return Err(StreamsError::Topology("the topology reads no topic".into()));
        }
        // Number the groups (sub-topologies) in the order of their first source.
        let mut numbers: BTreeMap<usize, usize> = BTreeMap::new();
        let mut subtopologies: Vec<SubTopology> = Vec::new();
        for source in &state.sources {
            let root = state.root(source.group);
            let id = *numbers.entry(root).or_insert_with(|| {
                subtopologies.push(SubTopology {
                    id: subtopologies.len(),
                    sources: Vec::new(),
                    stores: Vec::new(),
                });
                subtopologies.len() - 1
            });
            if subtopologies[id]
                .sources
                .iter()
                .any(|(t, _)| *t == source.topic)
            {
                return Err(StreamsError::Topology(format!(
                    "topic {:?} is read twice in one sub-topology; read it once and use the stream twice",
                    source.topic
                )));
            }
            subtopologies[id]
                .sources
                .push((source.topic.clone(), source.factory.clone()));
        }
        for store in &state.stores {
            let root = state.root(store.group);
            let id = *numbers.get(&root).ok_or_else(|| {
                StreamsError::Topology(format!("store {} is fed by no source", store.name))
            })?;
            subtopologies[id].stores.push(store.clone());
        }
        let mut repartitions = Vec::new();
        for (topic, group) in &state.repartitions {
            let writer = numbers.get(&state.root(*group)).copied().ok_or_else(|| {
                StreamsError::Topology(format!("repartition topic {topic:?} has no writer"))
            })?;
            repartitions.push((topic.clone(), writer));
        }
        Ok(Topology {
            subtopologies,
            repartitions,
        })
    }
}

/// One connected part of a topology: its source topics and stores.
pub(crate) struct SubTopology {
    pub(crate) id: usize,
    pub(crate) sources: Vec<(TopicRef, RawFactory)>,
    pub(crate) stores: Vec<StoreSpec>,
}

/// A built topology, ready to run with [`crate::KafkaStreams`].
pub struct Topology {
    pub(crate) subtopologies: Vec<SubTopology>,
    /// Repartition topics and the sub-topology that writes each.
    pub(crate) repartitions: Vec<(TopicRef, usize)>,
}

impl Topology {
    /// A readable description: each sub-topology with its source topics and stores.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for sub in &self.subtopologies {
            let topics: Vec<String> = sub.sources.iter().map(|(t, _)| format!("{t:?}")).collect();
            let stores: Vec<&str> = sub.stores.iter().map(|s| s.name.as_str()).collect();
            out.push_str(&format!(
                "sub-topology {}: sources {} stores [{}]\n",
                sub.id,
                topics.join(", "),
                stores.join(", ")
            ));
        }
        out
    }

    /// The sub-topology that reads `topic` (a full name).
    pub(crate) fn subtopology_of(&self, app_id: &str, topic: &str) -> Option<usize> {
        self.subtopologies.iter().position(|sub| {
            sub.sources
                .iter()
                .any(|(t, _)| t.full_name(app_id) == topic)
        })
    }

    /// Every topic the application reads, by full name.
    pub(crate) fn source_topics(&self, app_id: &str) -> Vec<String> {
        self.subtopologies
            .iter()
            .flat_map(|sub| sub.sources.iter().map(|(t, _)| t.full_name(app_id)))
            .collect()
    }

    /// The store specs, with their sub-topology.
    pub(crate) fn stores(&self) -> impl Iterator<Item = (usize, &StoreSpec)> {
        self.subtopologies
            .iter()
            .flat_map(|sub| sub.stores.iter().map(move |s| (sub.id, s)))
    }
}
