//! The pieces a topology is made of once it runs in a task: nodes that take typed records and
//! pass them on, and the context they see.
//!
//! A topology is built once (by the DSL) as a graph of node *factories*; every task
//! instantiates its own nodes from them, with its own state stores.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::metrics::TaskMetrics;
use crate::record::{Output, Record};
use crate::store::RawStore;

/// What a node sees of the record being processed and of its task.
pub struct ProcessorContext<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The largest timestamp the task has seen (Kafka Streams' "stream time").
    pub(crate) stream_time: i64,
    pub(crate) outputs: &'a mut Vec<Output>,
}

impl ProcessorContext<'_> {
    /// The input topic of the record being processed.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// The input partition (also the task's partition).
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The input record's offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The largest record timestamp this task has seen.
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    pub(crate) fn send(&mut self, output: Output) {
        self.outputs.push(output);
    }
}

/// A typed step of a running topology.
pub(crate) trait Node<K, V>: Send {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<()>;
}

pub(crate) type BoxNode<K, V> = Box<dyn Node<K, V>>;

/// A source node: raw keys and values, `None` when absent.
pub(crate) type RawNode = BoxNode<Option<Vec<u8>>, Option<Vec<u8>>>;

/// Makes a task's source node.
pub(crate) type RawFactory = Factory<Option<Vec<u8>>, Option<Vec<u8>>>;

/// Makes a task's instance of a node.
pub(crate) type Factory<K, V> = Arc<dyn Fn(&mut TaskBuild) -> Result<BoxNode<K, V>> + Send + Sync>;

/// The nodes a stream or table passes its records to, filled in while the DSL builds.
pub(crate) type Downstream<K, V> = Arc<Mutex<Vec<Factory<K, V>>>>;

/// What a factory can use while a task is set up.
pub struct TaskBuild {
    pub(crate) app_id: String,
    pub(crate) partition: i32,
    pub(crate) stores: HashMap<String, Arc<RawStore>>,
    pub(crate) metrics: TaskMetrics,
    /// Nodes with several parents (after `merge`), instantiated once per task.
    pub(crate) shared: HashMap<usize, Box<dyn std::any::Any + Send>>,
}

impl TaskBuild {
    /// The partition of the task being set up.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.app_id
    }

    /// The task's instance of a store declared in the topology.
    pub(crate) fn store(&self, name: &str) -> Result<Arc<RawStore>> {
        self.stores.get(name).cloned().ok_or_else(|| {
            crate::StreamsError::Topology(format!(
                "store {name} is not connected to the sub-topology that uses it"
            ))
        })
    }

    /// The full name of a topic of the topology (internal topics get the application id).
    pub(crate) fn topic_name(&self, topic: &crate::topic_ref::TopicRef) -> String {
        topic.full_name(&self.app_id)
    }
}

/// The task's one instance of `down`, shared by all its parents.
pub(crate) fn instantiate_shared<K, V>(
    down: &Downstream<K, V>,
    build: &mut TaskBuild,
) -> Result<Arc<Mutex<BoxNode<K, V>>>>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    // The downstream list's address identifies it for the life of the topology.
    let id = Arc::as_ptr(down) as *const () as usize;
    if let Some(existing) = build.shared.get(&id) {
        return existing
            .downcast_ref::<Arc<Mutex<BoxNode<K, V>>>>()
            .cloned()
            .ok_or_else(|| crate::StreamsError::Topology("a shared node changed type".into()));
    }
    let node = Arc::new(Mutex::new(instantiate(down, build)?));
    build.shared.insert(id, Box::new(node.clone()));
    Ok(node)
}

/// Instantiates every node of `down` as one node that passes each record to all of them.
pub(crate) fn instantiate<K, V>(
    down: &Downstream<K, V>,
    build: &mut TaskBuild,
) -> Result<BoxNode<K, V>>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let factories = down.lock().clone();
    let mut nodes = Vec::with_capacity(factories.len());
    for factory in &factories {
        nodes.push(factory(build)?);
    }
    Ok(Box::new(Fanout(nodes)))
}

struct Fanout<K, V>(Vec<BoxNode<K, V>>);

impl<K: Clone + Send, V: Clone + Send> Node<K, V> for Fanout<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<()> {
        if let Some((last, rest)) = self.0.split_last_mut() {
            for node in rest {
                node.process(ctx, record.clone())?;
            }
            last.process(ctx, record)?;
        }
        Ok(())
    }
}

/// A node made of a closure over the record and the next node.
struct FnNode<K, V, F> {
    f: F,
    _types: std::marker::PhantomData<fn(K, V)>,
}

/// A node that runs `f` on each record (`f` passes records on to the nodes it captured).
pub(crate) fn node<K: 'static, V: 'static>(
    f: impl FnMut(&mut ProcessorContext<'_>, Record<K, V>) -> Result<()> + Send + 'static,
) -> BoxNode<K, V> {
    Box::new(FnNode {
        f,
        _types: std::marker::PhantomData,
    })
}

impl<K, V, F> Node<K, V> for FnNode<K, V, F>
where
    F: FnMut(&mut ProcessorContext<'_>, Record<K, V>) -> Result<()> + Send,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<()> {
        (self.f)(ctx, record)
    }
}
