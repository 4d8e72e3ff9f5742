//! Interactive queries: reading the stores of the running tasks (point lookups, ranges) and
//! finding which instance holds a key.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, StreamsError};
use crate::serdes::SerdeRef;
use crate::store::RawStore;
use crate::store::StoreKind;

/// Turns a store's bytes into JSON and a key given as text into bytes.
pub(crate) trait QueryCodec: Send + Sync {
    /// The serialized key of `text`: JSON (`42`, `"a b"`), or else the text as a string.
    fn key_bytes(&self, text: &str) -> Result<Vec<u8>, String>;
    fn key_json(&self, bytes: &[u8]) -> Result<Value, String>;
    fn value_json(&self, bytes: &[u8]) -> Result<Value, String>;
}

pub(crate) struct TypedCodec<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: Serialize + DeserializeOwned + 'static, V: Serialize + 'static> QueryCodec
    for TypedCodec<K, V>
{
    fn key_bytes(&self, text: &str) -> Result<Vec<u8>, String> {
        let key: K = serde_json::from_str(text)
            .or_else(|_| serde_json::from_value(Value::String(text.to_string())))
            .map_err(|e| format!("{text:?} is not a key of this store: {e}"))?;
        self.key_serde.serialize(&key)
    }
    fn key_json(&self, bytes: &[u8]) -> Result<Value, String> {
        let key = self.key_serde.deserialize(bytes)?;
        serde_json::to_value(key).map_err(|e| e.to_string())
    }
    fn value_json(&self, bytes: &[u8]) -> Result<Value, String> {
        let value = self.value_serde.deserialize(bytes)?;
        serde_json::to_value(value).map_err(|e| e.to_string())
    }
}

/// A store as interactive queries see it: its instances on this application instance.
pub(crate) struct QueryableStore {
    pub(crate) kind: StoreKind,
    pub(crate) codec: Arc<dyn QueryCodec>,
    /// A source topic of the store's sub-topology (full name): its partition's owner holds
    /// the key.
    pub(crate) source_topic: String,
    /// The sub-topology's partition count.
    pub(crate) partitions: i32,
    /// Open instances by partition.
    pub(crate) instances: BTreeMap<i32, Arc<RawStore>>,
}

/// The stores of the tasks running here, shared by the runtime and the HTTP endpoint.
#[derive(Default, Clone)]
pub(crate) struct Registry {
    pub(crate) stores: Arc<RwLock<BTreeMap<String, QueryableStore>>>,
}

/// What a point lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    /// The key's value (for a window store: every window of the key).
    Found(Value),
    /// This instance holds the key's partition and the key has no value.
    Absent,
    /// Another instance (or none) holds the key's partition.
    NotHere { partition: i32 },
}

impl Registry {
    /// The partition of the key `key_text` of `store`, and a topic of that partition.
    pub(crate) fn partition_of(&self, store: &str, key_text: &str) -> Result<(String, i32)> {
        let stores = self.stores.read();
        let s = stores
            .get(store)
            .ok_or_else(|| StreamsError::Config(format!("no store named {store} runs here")))?;
        let key = s.codec.key_bytes(key_text).map_err(StreamsError::Config)?;
        Ok((
            s.source_topic.clone(),
            runnel_client::partitioner::partition_for_key(&key, s.partitions),
        ))
    }

    pub(crate) fn lookup(&self, store: &str, key_text: &str) -> Result<Lookup> {
        let stores = self.stores.read();
        let s = stores
            .get(store)
            .ok_or_else(|| StreamsError::Config(format!("no store named {store} runs here")))?;
        let key = s.codec.key_bytes(key_text).map_err(StreamsError::Config)?;
        let partition = runnel_client::partitioner::partition_for_key(&key, s.partitions);
        let Some(instance) = s.instances.get(&partition) else {
            return Ok(Lookup::NotHere { partition });
        };
        match s.kind {
            StoreKind::KeyValue => match instance.get(&key)? {
                Some(bytes) => Ok(Lookup::Found(
                    s.codec
                        .value_json(&bytes)
                        .map_err(|e| StreamsError::store(store, e))?,
                )),
                None => Ok(Lookup::Absent),
            },
            StoreKind::Window { size_ms } => {
                let mut from = key.clone();
                from.extend_from_slice(&[0; 8]);
                let mut to = key.clone();
                to.extend_from_slice(&[0xff; 8]);
                let mut windows = Vec::new();
                for (k, v) in instance.range(Bound::Included(&from), Bound::Included(&to))? {
                    if k.len() != key.len() + 8 {
                        continue;
                    }
                    let start = i64::from_be_bytes(k[key.len()..].try_into().unwrap_or([0; 8]));
                    windows.push(serde_json::json!({
                        "start": start,
                        "end": start + size_ms,
                        "value": s.codec.value_json(&v).map_err(|e| StreamsError::store(store, e))?,
                    }));
                }
                if windows.is_empty() {
                    Ok(Lookup::Absent)
                } else {
                    Ok(Lookup::Found(Value::Array(windows)))
                }
            }
        }
    }

    /// Every entry with a key in `[from, to]` of the instances here, in serialized-key order.
    pub(crate) fn range(
        &self,
        store: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<Value>> {
        let stores = self.stores.read();
        let s = stores
            .get(store)
            .ok_or_else(|| StreamsError::Config(format!("no store named {store} runs here")))?;
        let from = from
            .map(|t| s.codec.key_bytes(t))
            .transpose()
            .map_err(StreamsError::Config)?;
        let to = to
            .map(|t| s.codec.key_bytes(t))
            .transpose()
            .map_err(StreamsError::Config)?;
        // (serialized key, window start) orders the entries of every partition as one store.
        let mut out: Vec<((Vec<u8>, i64), Value)> = Vec::new();
        for instance in s.instances.values() {
            let lower = from.as_deref().map_or(Bound::Unbounded, Bound::Included);
            let upper = match (&to, s.kind) {
                (Some(t), StoreKind::KeyValue) => Bound::Included(t.as_slice()),
                _ => Bound::Unbounded,
            };
            for (k, v) in instance.range(lower, upper)? {
                let (key_bytes, window) = match s.kind {
                    StoreKind::KeyValue => (&k[..], None),
                    StoreKind::Window { size_ms } => {
                        let split = k.len().saturating_sub(8);
                        let start = i64::from_be_bytes(k[split..].try_into().unwrap_or([0; 8]));
                        if to.as_deref().is_some_and(|t| &k[..split] > t) {
                            continue;
                        }
                        (&k[..split], Some((start, start + size_ms)))
                    }
                };
                let mut entry = serde_json::json!({
                    "key": s.codec.key_json(key_bytes).map_err(|e| StreamsError::store(store, e))?,
                    "value": s.codec.value_json(&v).map_err(|e| StreamsError::store(store, e))?,
                });
                if let Some((start, end)) = window {
                    entry["start"] = start.into();
                    entry["end"] = end.into();
                }
                out.push(((key_bytes.to_vec(), window.map_or(0, |w| w.0)), entry));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, entry)| entry).collect())
    }
}
