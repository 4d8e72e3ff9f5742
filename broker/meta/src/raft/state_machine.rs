//! The Raft state machine: the applied [`ClusterState`], the last applied log
//! id and membership, and the snapshot file. Applied state is not written on
//! every entry; the snapshot (the whole state with its log id and membership,
//! replaced atomically) is the durable copy, and openraft re-applies the log
//! after it on start. Every applied batch is published on a watch channel.

// openraft's trait methods return its (large) StorageError; the helpers share it.
#![allow(clippy::result_large_err)]

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::fsutil::{blocking, read_optional, write_atomic};
use super::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::types::{Applied, ClusterState, Rejection};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// The snapshot file: the whole state and where in the log it stands.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    state: ClusterState,
}

/// Where snapshots are written; shared by the state machine and its builders,
/// which openraft runs concurrently.
struct SnapshotStore {
    path: PathBuf,
    /// Last log id of the snapshot on disk; a builder never replaces a newer
    /// snapshot (one installed from the leader meanwhile) with an older one.
    current: Mutex<Option<LogId>>,
}

impl SnapshotStore {
    /// Writes `file` unless a newer snapshot is on disk (`force`: always).
    fn save(&self, file: &SnapshotFile, force: bool) -> Result<bool, StorageError> {
        let mut current = self.current.lock();
        if !force && *current > file.meta.last_log_id {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(file).map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        blocking(|| write_atomic(&self.path, &bytes, true))
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        *current = file.meta.last_log_id;
        Ok(true)
    }

    fn load(&self) -> Result<Option<SnapshotFile>, StorageError> {
        let _guard = self.current.lock();
        match read_optional(&self.path).map_err(|e| sm_err(ErrorVerb::Read, &e))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| sm_err(ErrorVerb::Read, &e)),
            None => Ok(None),
        }
    }
}

fn sm_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(e)),
    }
}

/// The state machine of one node.
pub(crate) struct StateMachine {
    state: ClusterState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<SnapshotStore>,
    /// Publishes the state after every applied batch (the node's readers hold receivers).
    published: watch::Sender<Arc<ClusterState>>,
    /// Distinguishes snapshots built at the same log id.
    snapshot_seq: u64,
}

/// Builds a snapshot from a copy of the state taken when openraft asked for it.
pub(crate) struct SnapshotBuilder {
    state: ClusterState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<SnapshotStore>,
    seq: u64,
}

fn snapshot_id(last: Option<LogId>, seq: u64) -> String {
    match last {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
        None => format!("0-0-{seq}"),
    }
}

fn to_snapshot(file: &SnapshotFile) -> Result<Snapshot<TypeConfig>, StorageError> {
    let data = serde_json::to_vec(&file.state).map_err(|e| sm_err(ErrorVerb::Read, &e))?;
    Ok(Snapshot {
        meta: file.meta.clone(),
        snapshot: Box::new(Cursor::new(data)),
    })
}

impl StateMachine {
    /// Opens the state machine in `dir`: the last snapshot, if any, is the state.
    pub(crate) fn open(
        dir: &Path,
        published: watch::Sender<Arc<ClusterState>>,
    ) -> io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let snapshots = Arc::new(SnapshotStore {
            path: dir.join(SNAPSHOT_FILE),
            current: Mutex::new(None),
        });
        let loaded = snapshots
            .load()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut sm = StateMachine {
            state: ClusterState::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshots,
            published,
            snapshot_seq: 0,
        };
        if let Some(file) = loaded {
            *sm.snapshots.current.lock() = file.meta.last_log_id;
            sm.last_applied = file.meta.last_log_id;
            sm.membership = file.meta.last_membership;
            sm.state = file.state;
        }
        sm.publish();
        Ok(sm)
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.state.clone()));
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let file = SnapshotFile {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id: snapshot_id(self.last_applied, self.seq),
            },
            state: std::mem::take(&mut self.state),
        };
        if !self.snapshots.save(&file, false)? {
            // A newer snapshot was installed meanwhile; offer that one.
            if let Some(newer) = self.snapshots.load()? {
                return to_snapshot(&newer);
            }
        }
        to_snapshot(&file)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Result<Applied, Rejection>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Ok(Applied::Done),
                EntryPayload::Normal(command) => self.state.apply(entry.log_id.index, &command),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(Applied::Done)
                }
            };
            replies.push(reply);
        }
        if !replies.is_empty() {
            self.publish();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            state: self.state.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let state: ClusterState =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| sm_err(ErrorVerb::Read, &e))?;
        let file = SnapshotFile {
            meta: meta.clone(),
            state,
        };
        // openraft installs only snapshots newer than what is applied.
        self.snapshots.save(&file, true)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.state = file.state;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match self.snapshots.load()? {
            Some(file) => Ok(Some(to_snapshot(&file)?)),
            None => Ok(None),
        }
    }
}
