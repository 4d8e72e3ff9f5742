//! The DSL's shared state while a topology is built: which streams meet (a union-find over
//! groups that become sub-topologies), the sources, stores and repartition topics declared.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, StreamsError};
use crate::node::RawFactory;
use crate::query::QueryCodec;
use crate::store::StoreKind;
use crate::topic_ref::TopicRef;

/// Values that can flow through a topology.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

pub(crate) struct SourceSpec {
    pub(crate) topic: TopicRef,
    pub(crate) group: usize,
    pub(crate) factory: RawFactory,
}

#[derive(Clone)]
pub(crate) struct StoreSpec {
    pub(crate) name: String,
    pub(crate) group: usize,
    pub(crate) kind: StoreKind,
    pub(crate) query: Arc<dyn QueryCodec>,
}

/// The builder's state, shared by every stream and table it hands out.
#[derive(Default)]
pub(crate) struct BuilderState {
    /// Union-find parents: streams whose records meet share a root.
    parents: Vec<usize>,
    pub(crate) sources: Vec<SourceSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    /// Internal repartition topics with the group that writes them.
    pub(crate) repartitions: Vec<(TopicRef, usize)>,
    names: HashSet<String>,
}

impl BuilderState {
    pub(crate) fn new_group(&mut self) -> usize {
        self.parents.push(self.parents.len());
        self.parents.len() - 1
    }

    pub(crate) fn root(&self, mut group: usize) -> usize {
        while self.parents[group] != group {
            group = self.parents[group];
        }
        group
    }

    pub(crate) fn union(&mut self, a: usize, b: usize) -> usize {
        let (ra, rb) = (self.root(a), self.root(b));
        self.parents[rb] = ra;
        ra
    }

    /// Claims a store or internal topic name; each may be used once.
    pub(crate) fn claim(&mut self, name: &str) -> Result<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(StreamsError::Topology(format!(
                "{name:?} is not a valid store name (letters, digits, '.', '_' and '-')"
            )));
        }
        if !self.names.insert(name.to_string()) {
            return Err(StreamsError::Topology(format!(
                "the name {name} is used twice in the topology"
            )));
        }
        Ok(())
    }
}

pub(crate) type Shared = Arc<Mutex<BuilderState>>;
