//! `KStream`: a stream of records and its stateless operations (filter, map, branch, merge,
//! sinks) and the entry points to grouping and joins.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, StreamsError};
use crate::graph::{Data, Shared, SourceSpec};
use crate::node::{
    instantiate, instantiate_shared, node, BoxNode, Downstream, ProcessorContext, TaskBuild,
};
use crate::record::{Output, RawRecord, Record};
use crate::serdes::SerdeRef;
use crate::topic_ref::TopicRef;

/// A predicate of [`KStream::branch`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream of records with keys `K` and values `V`.
pub struct KStream<K, V> {
    pub(crate) state: Shared,
    pub(crate) error: Arc<Mutex<Option<StreamsError>>>,
    pub(crate) down: Downstream<K, V>,
    pub(crate) group: usize,
    /// Whether an operation may have changed keys since the source (grouping then repartitions).
    pub(crate) key_changed: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            state: self.state.clone(),
            error: self.error.clone(),
            down: self.down.clone(),
            group: self.group,
            key_changed: self.key_changed,
        }
    }
}

pub(crate) fn deserialize_error(
    ctx: &ProcessorContext<'_>,
    part: &str,
    reason: String,
) -> StreamsError {
    StreamsError::Deserialize {
        what: format!(
            "{part} of {}/{}@{}",
            ctx.topic(),
            ctx.partition(),
            ctx.offset()
        ),
        reason,
    }
}

pub(crate) fn serialize_error(part: &str, topic: &str, reason: String) -> StreamsError {
    StreamsError::Serde {
        what: format!("{part} for {topic}"),
        reason,
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn source(
        state: Shared,
        error: Arc<Mutex<Option<StreamsError>>>,
        topic: TopicRef,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        let down: Downstream<K, V> = Default::default();
        let group = state.lock().new_group();
        let d = down.clone();
        let factory = Arc::new(move |b: &mut TaskBuild| {
            let mut next = instantiate(&d, b)?;
            let (ks, vs) = (key_serde.clone(), value_serde.clone());
            Ok(node(move |ctx, r: RawRecord| {
                let key = ks
                    .deserialize(r.key.as_deref().unwrap_or(&[]))
                    .map_err(|e| deserialize_error(ctx, "key", e))?;
                let value = vs
                    .deserialize(r.value.as_deref().unwrap_or(&[]))
                    .map_err(|e| deserialize_error(ctx, "value", e))?;
                next.process(ctx, Record::new(key, value, r.timestamp))
            }))
        });
        state.lock().sources.push(SourceSpec {
            topic,
            group,
            factory,
        });
        KStream {
            state,
            error,
            down,
            group,
            key_changed: false,
        }
    }

    pub(crate) fn record_error(&self, error: StreamsError) {
        let mut first = self.error.lock();
        if first.is_none() {
            *first = Some(error);
        }
    }

    /// A child stream whose task nodes `make` builds around the child's own nodes.
    pub(crate) fn then<K2: Data, V2: Data>(
        &self,
        key_changed: bool,
        make: impl Fn(BoxNode<K2, V2>, &mut TaskBuild) -> Result<BoxNode<K, V>> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let down: Downstream<K2, V2> = Default::default();
        let d = down.clone();
        self.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let next = instantiate(&d, b)?;
            make(next, b)
        }));
        KStream {
            state: self.state.clone(),
            error: self.error.clone(),
            down,
            group: self.group,
            key_changed,
        }
    }

    /// The records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let predicate = Arc::new(predicate);
        self.then(self.key_changed, move |mut next, _| {
            let predicate = predicate.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                if predicate(&r.key, &r.value) {
                    next.process(ctx, r)
                } else {
                    Ok(())
                }
            }))
        })
    }

    /// The records for which `predicate` does not hold.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record turned into a new key and value (grouping afterwards repartitions).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        self.then(true, move |mut next, _| {
            let f = f.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                let (key, value) = f(r.key, r.value);
                next.process(ctx, Record::new(key, value, r.timestamp))
            }))
        })
    }

    /// Each record with a new value and the same key.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        self.then(self.key_changed, move |mut next, _| {
            let f = f.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                next.process(ctx, Record::new(r.key, f(r.value), r.timestamp))
            }))
        })
    }

    /// Each record with a new key computed from it (grouping afterwards repartitions).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.map(move |k, v| (f(&k, &v), v))
    }

    /// Each record turned into zero or more records.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f = Arc::new(f);
        self.then(true, move |mut next, _| {
            let f = f.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                for (key, value) in f(r.key, r.value) {
                    next.process(ctx, Record::new(key, value, r.timestamp))?;
                }
                Ok(())
            }))
        })
    }

    /// Each record turned into zero or more values with its key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let f = Arc::new(f);
        self.then(self.key_changed, move |mut next, _| {
            let f = f.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                for value in f(r.value) {
                    next.process(ctx, Record::new(r.key.clone(), value, r.timestamp))?;
                }
                Ok(())
            }))
        })
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let f = Arc::new(f);
        self.then(self.key_changed, move |mut next, _| {
            let f = f.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                f(&r.key, &r.value);
                next.process(ctx, r)
            }))
        })
    }

    /// One stream per predicate: each record goes to the first stream whose predicate holds, and
    /// is dropped when none does.
    pub fn branch(&self, predicates: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        let predicates = Arc::new(predicates);
        let downs: Vec<Downstream<K, V>> = predicates.iter().map(|_| Default::default()).collect();
        let ds = downs.clone();
        self.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let mut nexts = Vec::with_capacity(ds.len());
            for d in &ds {
                nexts.push(instantiate(d, b)?);
            }
            let predicates = predicates.clone();
            Ok(node(move |ctx, r: Record<K, V>| {
                match predicates.iter().position(|p| p(&r.key, &r.value)) {
                    Some(i) => nexts[i].process(ctx, r),
                    None => Ok(()),
                }
            }))
        }));
        downs
            .into_iter()
            .map(|down| KStream {
                state: self.state.clone(),
                error: self.error.clone(),
                down,
                group: self.group,
                key_changed: self.key_changed,
            })
            .collect()
    }

    /// The records of this stream and of `other`, in one stream.
    pub fn merge(&self, other: &KStream<K, V>) -> Self {
        let down: Downstream<K, V> = Default::default();
        let group = self.state.lock().union(self.group, other.group);
        for parent in [self, other] {
            let d = down.clone();
            parent.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
                let shared = instantiate_shared(&d, b)?;
                Ok(node(move |ctx, r: Record<K, V>| {
                    shared.lock().process(ctx, r)
                }))
            }));
        }
        KStream {
            state: self.state.clone(),
            error: self.error.clone(),
            down,
            group,
            key_changed: self.key_changed || other.key_changed,
        }
    }

    /// Writes every record to `topic` (partitioned by key with murmur2, as the Java client does).
    pub fn to(&self, topic: &str, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) {
        self.sink(TopicRef::User(topic.to_string()), key_serde, value_serde);
    }

    pub(crate) fn sink(&self, topic: TopicRef, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) {
        self.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let name = b.topic_name(&topic);
            let (ks, vs) = (key_serde.clone(), value_serde.clone());
            Ok(node(move |ctx, r: Record<K, V>| {
                let key = ks
                    .serialize(&r.key)
                    .map_err(|e| serialize_error("key", &name, e))?;
                let value = vs
                    .serialize(&r.value)
                    .map_err(|e| serialize_error("value", &name, e))?;
                ctx.send(Output {
                    topic: name.clone(),
                    partition: None,
                    key: Some(key),
                    value: Some(value),
                    timestamp: r.timestamp,
                });
                Ok(())
            }))
        }));
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// Writes every record to `topic`, a `None` value as a tombstone (for compacted topics).
    pub fn to_nullable(&self, topic: &str, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) {
        let topic = topic.to_string();
        self.down.lock().push(Arc::new(move |_: &mut TaskBuild| {
            let (ks, vs, name) = (key_serde.clone(), value_serde.clone(), topic.clone());
            Ok(node(move |ctx, r: Record<K, Option<V>>| {
                let key = ks
                    .serialize(&r.key)
                    .map_err(|e| serialize_error("key", &name, e))?;
                let value = match &r.value {
                    Some(v) => Some(
                        vs.serialize(v)
                            .map_err(|e| serialize_error("value", &name, e))?,
                    ),
                    None => None,
                };
                ctx.send(Output {
                    topic: name.clone(),
                    partition: None,
                    key: Some(key),
                    value,
                    timestamp: r.timestamp,
                });
                Ok(())
            }))
        }));
    }
}
