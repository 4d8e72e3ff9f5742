//! State stores: a task's local key-value data, kept in a redb file and backed up to a
//! compacted changelog topic.
//!
//! redb is the engine: a pure-Rust, crash-safe (copy-on-write B-tree, checksummed commits),
//! well-kept embedded database with ordered range scans, and no C build. Writes of a commit
//! interval collect in memory (`dirty`, which also deduplicates the changelog: one record per
//! key per commit, as Kafka Streams' record cache does); a commit sends them to the changelog
//! and then writes them to redb in one transaction.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::error::{Result, StreamsError};
use crate::serdes::SerdeRef;

const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("kv");

/// What kind of data a store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// One value per key.
    KeyValue,
    /// One value per key and window (the key is followed by the window start).
    Window {
        /// Window size, milliseconds.
        size_ms: i64,
    },
}

/// Pending writes of a commit interval: `None` deletes the key.
pub(crate) type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One task's instance of a store.
pub(crate) struct RawStore {
    name: String,
    db: Database,
    /// Written by the task's thread, read by interactive queries.
    dirty: Mutex<Pending>,
}

impl RawStore {
    /// Opens (creating) the store file at `path`.
    pub(crate) fn open(name: &str, path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StreamsError::io(dir, e))?;
        }
        let db = Database::create(path).map_err(|e| StreamsError::store(name, e))?;
        let txn = db.begin_write().map_err(|e| StreamsError::store(name, e))?;
        txn.open_table(TABLE)
            .map_err(|e| StreamsError::store(name, e))?;
        txn.commit().map_err(|e| StreamsError::store(name, e))?;
        Ok(RawStore {
            name: name.to_string(),
            db,
            dirty: Mutex::new(BTreeMap::new()),
        })
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, with this commit interval's writes.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(pending) = self.dirty.lock().get(key) {
            return Ok(pending.clone());
        }
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        let value = table.get(key).map_err(|e| self.error(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Sets (`Some`) or deletes (`None`) `key`.
    pub(crate) fn put(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.dirty.lock().insert(key, value);
    }

    /// Entries with keys in the range, in key (byte) order, with this commit interval's writes.
    pub(crate) fn range(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        {
            let txn = self.db.begin_read().map_err(|e| self.error(e))?;
            let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            for entry in table
                .range::<&[u8]>((from, to))
                .map_err(|e| self.error(e))?
            {
                let (k, v) = entry.map_err(|e| self.error(e))?;
                merged.insert(k.value().to_vec(), Some(v.value().to_vec()));
            }
        }
        let owned = (from.map(|b| b.to_vec()), to.map(|b| b.to_vec()));
        for (k, v) in self.dirty.lock().range(owned) {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// This commit interval's writes (for the changelog).
    pub(crate) fn pending(&self) -> Pending {
        self.dirty.lock().clone()
    }

    /// Writes `batch` (what `pending` returned, now in the changelog) to the file durably and
    /// forgets it from memory.
    pub(crate) fn persist(&self, batch: &Pending) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.write(
            batch.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            Durability::Immediate,
        )?;
        let mut dirty = self.dirty.lock();
        for (k, v) in batch {
            if dirty.get(k) == Some(v) {
                dirty.remove(k);
            }
        }
        Ok(())
    }

    /// Forgets this commit interval's writes (an aborted transaction).
    pub(crate) fn discard_pending(&self) {
        self.dirty.lock().clear();
    }

    /// Applies restored changelog records (in one transaction, durable at the next commit).
    pub(crate) fn restore_batch(&self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.write(
            batch.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            Durability::None,
        )
    }

    /// Makes everything restored so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))
    }

    /// Deletes every entry (state that cannot be trusted is restored from scratch).
    pub(crate) fn wipe(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.delete_table(TABLE).map_err(|e| self.error(e))?;
        txn.open_table(TABLE).map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))?;
        self.dirty.lock().clear();
        Ok(())
    }

    fn write<'a>(
        &self,
        entries: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        durability: Durability,
    ) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.set_durability(durability).map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            for (k, v) in entries {
                match v {
                    Some(v) => {
                        table.insert(k, v).map_err(|e| self.error(e))?;
                    }
                    None => {
                        table.remove(k).map_err(|e| self.error(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.error(e))
    }

    fn error(&self, e: impl std::fmt::Display) -> StreamsError {
        StreamsError::store(&self.name, e)
    }
}

/// A typed view of a key-value store, for processors of the processor API.
pub struct KeyValueStore<K, V> {
    pub(crate) raw: Arc<RawStore>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let k = self.key(key)?;
        match self.raw.get(&k)? {
            Some(bytes) => Ok(Some(
                self.value_serde
                    .deserialize(&bytes)
                    .map_err(|e| StreamsError::store(self.raw.name(), e))?,
            )),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let k = self.key(key)?;
        let v = self
            .value_serde
            .serialize(value)
            .map_err(|e| StreamsError::store(self.raw.name(), e))?;
        self.raw.put(k, Some(v));
        Ok(())
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &K) -> Result<()> {
        let k = self.key(key)?;
        self.raw.put(k, None);
        Ok(())
    }

    /// Every entry, in the order of the serialized keys.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for (k, v) in self.raw.range(Bound::Unbounded, Bound::Unbounded)? {
            let key = self
                .key_serde
                .deserialize(&k)
                .map_err(|e| StreamsError::store(self.raw.name(), e))?;
            let value = self
                .value_serde
                .deserialize(&v)
                .map_err(|e| StreamsError::store(self.raw.name(), e))?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn key(&self, key: &K) -> Result<Vec<u8>> {
        self.key_serde
            .serialize(key)
            .map_err(|e| StreamsError::store(self.raw.name(), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pending_writes_are_read_back_and_persist_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = RawStore::open("s", &path).unwrap();
        store.put(b"a".to_vec(), Some(b"1".to_vec()));
        store.put(b"b".to_vec(), Some(b"2".to_vec()));
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        let batch = store.pending();
        store.persist(&batch).unwrap();
        store.put(b"a".to_vec(), None);
        assert_eq!(store.get(b"a").unwrap(), None);
        let all = store.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        assert_eq!(all, vec![(b"b".to_vec(), b"2".to_vec())]);
        drop(store);
        let reopened = RawStore::open("s", &path).unwrap();
        assert_eq!(
            reopened.get(b"a").unwrap(),
            Some(b"1".to_vec()),
            "the unpersisted delete is gone"
        );
        reopened.wipe().unwrap();
        assert_eq!(reopened.get(b"b").unwrap(), None);
    }
}
