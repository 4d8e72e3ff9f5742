//! Grouped streams and their aggregations (`count`, `reduce`, `aggregate`), plain or windowed,
//! each into a table kept in a named state store.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::graph::Data;
use crate::node::{instantiate, node, Downstream, TaskBuild};
use crate::record::{Change, Record};
use crate::serdes::{self, SerdeRef};
use crate::store::StoreKind;
use crate::stream::{serialize_error, KStream};
use crate::table::{declare_store, read_value, write_value, KTable};
use crate::topic_ref::TopicRef;
use crate::window::{TimeWindows, Windowed};

impl<K: Data, V: Data> KStream<K, V> {
    /// Groups the records by their key, for an aggregation. When an earlier operation may have
    /// changed keys, the aggregation first writes the records to a repartition topic
    /// (`<application.id>-<store>-repartition`) so each key's records meet in one task.
    pub fn group_by_key(
        &self,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            key_serde,
            value_serde,
        }
    }

    /// Groups the records by a new key (always through a repartition topic).
    pub fn group_by<K2: Data>(
        &self,
        key: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        key_serde: SerdeRef<K2>,
        value_serde: SerdeRef<V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(key).group_by_key(key_serde, value_serde)
    }
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K, V> KGroupedStream<K, V>
where
    K: Data + Serialize + DeserializeOwned,
    V: Data,
{
    /// The stream the aggregation reads: this one, or its copy through a repartition topic
    /// when keys may have changed since the source.
    fn input(&self, store: &str) -> KStream<K, V> {
        if !self.stream.key_changed {
            return self.stream.clone();
        }
        let suffix = format!("{store}-repartition");
        let topic = TopicRef::Internal(suffix.clone());
        {
            let mut st = self.stream.state.lock();
            if let Err(e) = st.claim(&suffix) {
                drop(st);
                self.stream.record_error(e);
            } else {
                st.repartitions.push((topic.clone(), self.stream.group));
            }
        }
        self.stream.sink(
            topic.clone(),
            self.key_serde.clone(),
            self.value_serde.clone(),
        );
        KStream::source(
            self.stream.state.clone(),
            self.stream.error.clone(),
            topic,
            self.key_serde.clone(),
            self.value_serde.clone(),
        )
    }

    /// The number of records per key, in the store `store`.
    pub fn count(&self, store: &str) -> KTable<K, i64> {
        self.aggregate_with(store, serdes::i64(), |_, _, old: Option<i64>| {
            old.unwrap_or(0) + 1
        })
    }

    /// Each key's values combined with `reducer` (the first value as it is).
    pub fn reduce(
        &self,
        store: &str,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V>
    where
        V: Serialize,
    {
        self.aggregate_with(
            store,
            self.value_serde.clone(),
            move |_, v, old| match old {
                Some(acc) => reducer(acc, v),
                None => v,
            },
        )
    }

    /// Each key's values folded into an aggregate that starts as `initializer()`.
    pub fn aggregate<A: Data + Serialize>(
        &self,
        store: &str,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: SerdeRef<A>,
    ) -> KTable<K, A> {
        self.aggregate_with(store, aggregate_serde, move |k, v, old| {
            aggregator(k, v, old.unwrap_or_else(&initializer))
        })
    }

    fn aggregate_with<A: Data + Serialize>(
        &self,
        store: &str,
        aggregate_serde: SerdeRef<A>,
        f: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
    ) -> KTable<K, A> {
        let input = self.input(store);
        declare_store(
            &input.state,
            &input.error,
            store,
            input.group,
            StoreKind::KeyValue,
            &self.key_serde,
            &aggregate_serde,
        );
        let down: Downstream<K, Change<A>> = Default::default();
        let f = Arc::new(f);
        let (d, name, ks, aser) = (
            down.clone(),
            store.to_string(),
            self.key_serde.clone(),
            aggregate_serde.clone(),
        );
        input.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let store = b.store(&name)?;
            let mut next = instantiate(&d, b)?;
            let (f, ks, aser) = (f.clone(), ks.clone(), aser.clone());
            Ok(node(move |ctx, r: Record<K, V>| {
                let key = ks
                    .serialize(&r.key)
                    .map_err(|e| serialize_error("key", store.name(), e))?;
                let old = read_value(&store, &key, &aser)?;
                let new = f(&r.key, r.value, old.clone());
                store.put(key, Some(write_value(store.name(), &new, &aser)?));
                next.process(
                    ctx,
                    Record::new(
                        r.key,
                        Change {
                            old,
                            new: Some(new),
                        },
                        r.timestamp,
                    ),
                )
            }))
        }));
        KTable {
            state: input.state.clone(),
            error: input.error.clone(),
            down,
            group: input.group,
            store: store.to_string(),
            key_serde: self.key_serde.clone(),
            value_serde: aggregate_serde,
        }
    }

    /// The grouped stream cut into time windows, for windowed aggregations.
    pub fn windowed_by(&self, windows: TimeWindows) -> WindowedKStream<K, V> {
        WindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.clone(),
                key_serde: self.key_serde.clone(),
                value_serde: self.value_serde.clone(),
            },
            windows,
        }
    }
}

/// A grouped stream cut into time windows.
pub struct WindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K, V> WindowedKStream<K, V>
where
    K: Data + Serialize + DeserializeOwned,
    V: Data,
{
    /// The number of records per key and window. Records that arrive after their window closed
    /// (window end + grace ≤ stream time) are dropped and counted in
    /// `runnel_streams_dropped_late_records_total`.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(store, serdes::i64(), |_, _, old: Option<i64>| {
            old.unwrap_or(0) + 1
        })
    }

    /// Each key's values per window folded into an aggregate that starts as `initializer()`.
    pub fn aggregate<A: Data + Serialize>(
        &self,
        store: &str,
        initializer: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: SerdeRef<A>,
    ) -> KTable<Windowed<K>, A> {
        self.aggregate_with(store, aggregate_serde, move |k, v, old| {
            aggregator(k, v, old.unwrap_or_else(&initializer))
        })
    }

    fn aggregate_with<A: Data + Serialize>(
        &self,
        store: &str,
        aggregate_serde: SerdeRef<A>,
        f: impl Fn(&K, V, Option<A>) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A> {
        let input = self.grouped.input(store);
        let windows = self.windows;
        declare_store(
            &input.state,
            &input.error,
            store,
            input.group,
            StoreKind::Window {
                size_ms: windows.size_ms(),
            },
            &self.grouped.key_serde,
            &aggregate_serde,
        );
        let down: Downstream<Windowed<K>, Change<A>> = Default::default();
        let f = Arc::new(f);
        let ks = self.grouped.key_serde.clone();
        let (d, name, aser) = (down.clone(), store.to_string(), aggregate_serde.clone());
        input.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let store = b.store(&name)?;
            let dropped = b.metrics.dropped_late.clone();
            let mut next = instantiate(&d, b)?;
            let (f, ks, aser) = (f.clone(), ks.clone(), aser.clone());
            Ok(node(move |ctx, r: Record<K, V>| {
                let key = ks
                    .serialize(&r.key)
                    .map_err(|e| serialize_error("key", store.name(), e))?;
                let close = ctx.stream_time().saturating_sub(windows.grace_ms());
                for start in windows.starts_for(r.timestamp) {
                    let end = start + windows.size_ms();
                    if end <= close {
                        dropped.inc();
                        tracing::debug!(
                            store = store.name(),
                            start,
                            end,
                            timestamp = r.timestamp,
                            "late record dropped"
                        );
                        continue;
                    }
                    let mut window_key = key.clone();
                    window_key.extend_from_slice(&start.to_be_bytes());
                    let old = read_value(&store, &window_key, &aser)?;
                    let new = f(&r.key, r.value.clone(), old.clone());
                    store.put(window_key, Some(write_value(store.name(), &new, &aser)?));
                    next.process(
                        ctx,
                        Record::new(
                            Windowed {
                                key: r.key.clone(),
                                start,
                                end,
                            },
                            Change {
                                old,
                                new: Some(new),
                            },
                            r.timestamp,
                        ),
                    )?;
                }
                Ok(())
            }))
        }));
        KTable {
            state: input.state.clone(),
            error: input.error.clone(),
            down,
            group: input.group,
            store: store.to_string(),
            key_serde: serdes::windowed(self.grouped.key_serde.clone(), windows.size_ms()),
            value_serde: aggregate_serde,
        }
    }
}
