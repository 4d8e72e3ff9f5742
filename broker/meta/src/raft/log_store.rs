//! The Raft log and vote on disk. Entries live in one append-only file
//! (`raft.log`) of CRC-framed JSON records, fsynced before openraft is told
//! they are persisted; a torn or corrupt tail found at open is cut off. The
//! vote and the last purged log id are small files replaced atomically and
//! durably; the committed log id is a hint written without fsync (a stale one
//! only means more entries are re-applied after a restart). All entries are
//! also kept in memory: the metadata log stays short because it is purged
//! after every snapshot.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader, StorageIOError, Vote,
};
use parking_lot::RwLock;

use super::fsutil::{
    blocking, decode_record, encode_record, read_optional, sync_dir, write_atomic,
};
use super::{Entry, LogId, NodeId, StorageError, TypeConfig};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
const COMMITTED_FILE: &str = "committed.json";

/// In-memory copy of the log entries, shared with the readers openraft's
/// replication tasks use. Written only by the [`LogStore`] (openraft
/// serializes all log writes).
type Entries = Arc<RwLock<BTreeMap<u64, Entry>>>;

/// The Raft log storage of one node.
pub(crate) struct LogStore {
    dir: PathBuf,
    /// Append handle of `raft.log`.
    file: File,
    /// Byte offset of each entry's record in `raft.log` (for truncation).
    offsets: BTreeMap<u64, u64>,
    /// Current length of `raft.log`.
    len: u64,
    entries: Entries,
    vote: Option<Vote<NodeId>>,
    purged: Option<LogId>,
    committed: Option<LogId>,
    /// Last committed index, published for [`crate::QuorumStatus`].
    committed_index: Arc<AtomicU64>,
}

/// Reads log entries for replication.
#[derive(Clone)]
pub(crate) struct LogReader {
    entries: Entries,
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: &io::Error) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::new(e)),
    }
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_optional(path)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(json_err),
        None => Ok(None),
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let vote: Option<Vote<NodeId>> = read_json(&dir.join(VOTE_FILE))?;
        let purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        // The committed hint may be torn (it is not fsynced): ignore it then.
        let committed: Option<LogId> = read_json(&dir.join(COMMITTED_FILE)).unwrap_or(None);

        let path = dir.join(LOG_FILE);
        let bytes = read_optional(&path)?.unwrap_or_default();
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut pos = 0usize;
        let mut last: Option<u64> = None;
        let mut skipped = false;
        while pos < bytes.len() {
            let Some((payload, size)) = decode_record(&bytes[pos..]) else {
                break;
            };
            let Ok(entry) = serde_json::from_slice::<Entry>(payload) else {
                break;
            };
            let index = entry.log_id.index;
            // Entries are consecutive by construction; anything else is damage.
            if last.is_some_and(|l| index != l + 1) {
                break;
            }
            last = Some(index);
            if purged.is_none_or(|p| index > p.index) {
                offsets.insert(index, pos as u64);
                entries.insert(index, entry);
            } else {
                skipped = true;
            }
            pos += size;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        if pos < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                valid = pos,
                len = bytes.len(),
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        sync_dir(&path)?;
        let committed_index = Arc::new(AtomicU64::new(committed.map_or(0, |c| c.index)));
        let mut store = LogStore {
            dir: dir.to_path_buf(),
            file,
            offsets,
            len: pos as u64,
            entries: Arc::new(RwLock::new(entries)),
            vote,
            purged,
            committed,
            committed_index,
        };
        // A crash between writing the purge mark and rewriting the log leaves
        // purged entries in the file; drop them now so new appends stay
        // consecutive with what precedes them.
        if skipped {
            store.rewrite()?;
        }
        Ok(store)
    }

    /// The shared last-committed index (updated on every commit).
    pub(crate) fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed_index.clone()
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .read()
            .last_key_value()
            .map(|(_, e)| *e.get_log_id())
            .or(self.purged)
    }

    /// Rewrites `raft.log` with only the entries in memory (after a purge).
    fn rewrite(&mut self) -> io::Result<()> {
        let entries = self.entries.read();
        let mut buf = Vec::new();
        let mut offsets = BTreeMap::new();
        for (index, entry) in entries.iter() {
            offsets.insert(*index, buf.len() as u64);
            encode_record(&serde_json::to_vec(entry).map_err(json_err)?, &mut buf)?;
        }
        drop(entries);
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &buf, true)?;
        self.file = OpenOptions::new().append(true).read(true).open(&path)?;
        self.offsets = offsets;
        self.len = buf.len() as u64;
        Ok(())
    }

    fn append_sync(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            offsets.push((entry.log_id.index, self.len + buf.len() as u64));
            encode_record(&serde_json::to_vec(entry).map_err(json_err)?, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.len += buf.len() as u64;
        self.offsets.extend(offsets);
        let mut map = self.entries.write();
        for entry in entries {
            map.insert(entry.log_id.index, entry);
        }
        Ok(())
    }
}

fn read_range<RB: RangeBounds<u64>>(entries: &Entries, range: RB) -> Vec<Entry> {
    entries
        .read()
        .range(range)
        .map(|(_, e)| e.clone())
        .collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.entries, range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.purged,
            last_log_id: self.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(vote)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, &json_err(e)))?;
        blocking(|| write_atomic(&self.dir.join(VOTE_FILE), &bytes, true))
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, &e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed = committed;
        self.committed_index
            .store(committed.map_or(0, |c| c.index), Ordering::Release);
        let bytes = serde_json::to_vec(&committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &json_err(e)))?;
        // Not fsynced: a stale hint is harmless (see the module doc).
        write_atomic(&self.dir.join(COMMITTED_FILE), &bytes, false)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let Some(committed) = self.committed else {
            return Ok(None);
        };
        // Only trust the hint when the entry it names is present (or purged
        // into the snapshot): openraft re-applies the log up to it at start.
        let present = self
            .entries
            .read()
            .get(&committed.index)
            .is_some_and(|e| e.log_id == committed);
        if present || self.purged == Some(committed) {
            Ok(Some(committed))
        } else {
            Ok(self.purged.filter(|p| p.index <= committed.index))
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        match blocking(|| self.append_sync(entries)) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = io_err(ErrorSubject::Logs, ErrorVerb::Write, &e);
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let Some(&offset) = self.offsets.get(&log_id.index) else {
            return Ok(());
        };
        let result = blocking(|| {
            self.file
                .set_len(offset)
                .and_then(|()| self.file.sync_data())
        });
        result.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.len = offset;
        self.offsets.split_off(&log_id.index);
        self.entries.write().split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge mark goes first: a crash before the rewrite leaves old
        // entries that recovery skips, never a hole.
        let bytes = serde_json::to_vec(&log_id)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &json_err(e)))?;
        blocking(|| write_atomic(&self.dir.join(PURGED_FILE), &bytes, true))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.purged = Some(log_id);
        {
            let mut entries = self.entries.write();
            let kept = entries.split_off(&(log_id.index + 1));
            *entries = kept;
        }
        blocking(|| self.rewrite()).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};
    use tokio::sync::watch;

    use super::*;
    use crate::raft::state_machine::StateMachine;
    use crate::ClusterState;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = LogStore::open(dir.path()).expect("open log");
            let (tx, _rx) = watch::channel(Arc::new(ClusterState::default()));
            let sm = StateMachine::open(dir.path(), tx).expect("open state machine");
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn log_store_and_state_machine_pass_openraft_suite() {
        Suite::test_all(Builder).unwrap();
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        // The flush callback is internal to openraft; write through the same path.
        store.append_sync(entries).unwrap();
    }

    #[tokio::test]
    async fn torn_tail_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            append(&mut store, (1..=3).map(|i| blank(1, i)).collect()).await;
        }
        let path = dir.path().join(LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        // Cut the last record in half, as a crash mid-write would.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
        // Appending after recovery continues cleanly.
        append(&mut store, vec![blank(1, 3), blank(2, 4)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        let entries = store.try_get_log_entries(0..).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(entries[3].log_id.leader_id.term, 2);
    }

    #[tokio::test]
    async fn a_record_claiming_more_than_the_file_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            append(&mut store, (1..=2).map(|i| blank(1, i)).collect()).await;
        }
        let path = dir.path().join(LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        // A length of 4 GiB in front of a few bytes: the length is checked
        // against the bytes read, never used to allocate.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'{'])
            .unwrap();
        drop(file);
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            append(&mut store, (1..=6).map(|i| blank(1, i)).collect()).await;
            store.truncate(blank(1, 5).log_id).await.unwrap();
            store.purge(blank(1, 2).log_id).await.unwrap();
            append(&mut store, vec![blank(3, 5)]).await;
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(blank(1, 2).log_id));
        assert_eq!(state.last_log_id, Some(blank(3, 5).log_id));
        let entries = store.try_get_log_entries(0..).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [3, 4, 5]
        );
    }
}
