//! `KTable`: a table kept in a state store (a projection of a topic, or an aggregation's
//! result) and the stream of its changes.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamsError};
use crate::graph::{Data, Shared, SourceSpec, StoreSpec};
use crate::node::{instantiate, node, Downstream, TaskBuild};
use crate::query::TypedCodec;
use crate::record::{Change, RawRecord, Record};
use crate::serdes::SerdeRef;
use crate::store::StoreKind;
use crate::stream::{deserialize_error, serialize_error, KStream};
use crate::topic_ref::TopicRef;

/// A table with keys `K` and values `V`, materialized in the state store `store`.
pub struct KTable<K, V> {
    pub(crate) state: Shared,
    pub(crate) error: Arc<Mutex<Option<StreamsError>>>,
    pub(crate) down: Downstream<K, Change<V>>,
    pub(crate) group: usize,
    pub(crate) store: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            state: self.state.clone(),
            error: self.error.clone(),
            down: self.down.clone(),
            group: self.group,
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

/// Declares a key-value store of group `group`; the first mistake is kept for `build`.
pub(crate) fn declare_store<K, V>(
    state: &Shared,
    error: &Arc<Mutex<Option<StreamsError>>>,
    name: &str,
    group: usize,
    kind: StoreKind,
    key_serde: &SerdeRef<K>,
    value_serde: &SerdeRef<V>,
) where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + 'static,
{
    let mut st = state.lock();
    if let Err(e) = st.claim(name) {
        let mut first = error.lock();
        if first.is_none() {
            *first = Some(e);
        }
        return;
    }
    st.stores.push(StoreSpec {
        name: name.to_string(),
        group,
        kind,
        query: Arc::new(TypedCodec {
            key_serde: key_serde.clone(),
            value_serde: value_serde.clone(),
        }),
    });
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn source(
        state: Shared,
        error: Arc<Mutex<Option<StreamsError>>>,
        topic: TopicRef,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        store: &str,
    ) -> Self
    where
        K: Serialize + DeserializeOwned,
        V: Serialize,
    {
        let group = state.lock().new_group();
        declare_store(
            &state,
            &error,
            store,
            group,
            StoreKind::KeyValue,
            &key_serde,
            &value_serde,
        );
        let down: Downstream<K, Change<V>> = Default::default();
        let (d, name, ks, vs) = (
            down.clone(),
            store.to_string(),
            key_serde.clone(),
            value_serde.clone(),
        );
        let factory = Arc::new(move |b: &mut TaskBuild| {
            let mut next = instantiate(&d, b)?;
            let store = b.store(&name)?;
            let (ks, vs) = (ks.clone(), vs.clone());
            Ok(node(move |ctx, r: RawRecord| {
                // A record without a key cannot address a row (Kafka Streams drops it too).
                let Some(key_bytes) = r.key else {
                    return Ok(());
                };
                let key = ks
                    .deserialize(&key_bytes)
                    .map_err(|e| deserialize_error(ctx, "key", e))?;
                let old = match store.get(&key_bytes)? {
                    Some(bytes) => Some(
                        vs.deserialize(&bytes)
                            .map_err(|e| StreamsError::store(store.name(), e))?,
                    ),
                    None => None,
                };
                let new = match &r.value {
                    Some(bytes) => Some(
                        vs.deserialize(bytes)
                            .map_err(|e| deserialize_error(ctx, "value", e))?,
                    ),
                    None => None,
                };
                if old.is_none() && new.is_none() {
                    return Ok(());
                }
                store.put(key_bytes, r.value);
                next.process(ctx, Record::new(key, Change { old, new }, r.timestamp))
            }))
        });
        state.lock().sources.push(SourceSpec {
            topic,
            group,
            factory,
        });
        KTable {
            state,
            error,
            down,
            group,
            store: store.to_string(),
            key_serde,
            value_serde,
        }
    }

    /// The name of the store that holds the table.
    pub fn store_name(&self) -> &str {
        &self.store
    }

    /// The table's changes as a stream: each update's key and new value, `None` for a delete.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let down: Downstream<K, Option<V>> = Default::default();
        let d = down.clone();
        self.down.lock().push(Arc::new(move |b: &mut TaskBuild| {
            let mut next = instantiate(&d, b)?;
            Ok(node(move |ctx, r: Record<K, Change<V>>| {
                next.process(ctx, Record::new(r.key, r.value.new, r.timestamp))
            }))
        }));
        KStream {
            state: self.state.clone(),
            error: self.error.clone(),
            down,
            group: self.group,
            key_changed: false,
        }
    }
}

/// Reads the current value of `key` from a task's store.
pub(crate) fn read_value<V: 'static>(
    store: &crate::store::RawStore,
    key: &[u8],
    value_serde: &SerdeRef<V>,
) -> Result<Option<V>> {
    match store.get(key)? {
        Some(bytes) => Ok(Some(
            value_serde
                .deserialize(&bytes)
                .map_err(|e| StreamsError::store(store.name(), e))?,
        )),
        None => Ok(None),
    }
}

/// Serializes `value` for store `store`.
pub(crate) fn write_value<V: 'static>(
    store: &str,
    value: &V,
    value_serde: &SerdeRef<V>,
) -> Result<Vec<u8>> {
    value_serde
        .serialize(value)
        .map_err(|e| serialize_error("value", store, e))
}
