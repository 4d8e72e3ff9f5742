//! The open-file cache: bounds how many segment files a broker keeps open,
//! whatever its partition count. Each segment's `.log` file sits in a
//! [`SegmentFile`] that opens it on first use and registers it with the
//! broker's one [`FileCache`]; when more files are open than the limit, the
//! least recently used ones are closed (active segments included) and
//! reopened by path on their next use.
//!
//! Invariants:
//! - A file with bytes written since its last fdatasync is fdatasynced before
//!   its descriptor is closed; if that fdatasync fails the file stays open and
//!   every later [`SegmentFile::sync_data`] fails, so the log poisons itself
//!   exactly as when its own fsync fails (an fsync error is never lost to a
//!   closed descriptor).
//! - Writes hold the slot's read lock and closing holds its write lock, so no
//!   write is in flight while a file is synced and closed.
//! - A reader holding an `Arc<File>` keeps reading after the file is evicted
//!   (the descriptor closes when the last holder drops it).
//! - A segment about to be deleted or replaced by a rename is detached
//!   ([`SegmentFile::detach`]): its descriptor stays open outside the cache
//!   until the segment is dropped, so in-flight reads keep seeing the old
//!   file, never another file at the same path.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, RwLock};

use crate::error::{io_err, Error};

/// Default open-file limit of the cache shared by logs opened with [`crate::Log::open`].
pub const DEFAULT_MAX_OPEN_FILES: usize = 10_000;

/// Bounds the number of open segment files of every log that shares it
/// (one per broker). See the module documentation.
pub struct FileCache {
    limit: usize,
    next_id: AtomicU64,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    tick: u64,
    /// Registered slot id → its last-use tick.
    ticks: HashMap<u64, u64>,
    /// Last-use tick → slot, oldest first.
    order: BTreeMap<u64, Weak<SegmentFile>>,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("limit", &self.limit)
            .field("registered", &self.registered())
            .finish()
    }
}

impl FileCache {
    /// A cache keeping at most `limit` segment files open (at least 1).
    pub fn new(limit: usize) -> Arc<FileCache> {
        Arc::new(FileCache {
            limit: limit.max(1),
            next_id: AtomicU64::new(0),
            lru: Mutex::new(Lru::default()),
        })
    }

    /// The cache shared by every log opened without one of its own.
    pub fn shared_default() -> Arc<FileCache> {
        static DEFAULT: OnceLock<Arc<FileCache>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| FileCache::new(DEFAULT_MAX_OPEN_FILES))
            .clone()
    }

    /// The most files kept open.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Files registered as open now (never more than the limit once the
    /// evictions of the last open have run).
    pub fn registered(&self) -> usize {
        self.lru.lock().ticks.len()
    }

    /// Marks `slot` as just used (registering it); returns the slots to
    /// close, least recently used first, to stay within the limit.
    fn touch(&self, slot: &Arc<SegmentFile>) -> Vec<Arc<SegmentFile>> {
        let mut lru = self.lru.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(old) = lru.ticks.insert(slot.id, tick) {
            lru.order.remove(&old);
        }
        lru.order.insert(tick, Arc::downgrade(slot));
        let mut victims = Vec::new();
        while lru.ticks.len() > self.limit {
            let Some((_, weak)) = lru.order.pop_first() else {
                break;
            };
            if let Some(victim) = weak.upgrade() {
                lru.ticks.remove(&victim.id);
                victims.push(victim);
            }
        }
        victims
    }

    /// Unregisters a slot (dropped or detached).
    fn forget(&self, id: u64) {
        let mut lru = self.lru.lock();
        if let Some(tick) = lru.ticks.remove(&id) {
            lru.order.remove(&tick);
        }
    }
}

/// One segment's `.log` file, opened on demand through the [`FileCache`].
pub(crate) struct SegmentFile {
    id: u64,
    path: PathBuf,
    cache: Arc<FileCache>,
    /// The open descriptor, if any. Writers hold the read lock for the whole
    /// write; closing takes the write lock.
    handle: RwLock<Option<Arc<File>>>,
    /// Writes completed (bumped by each writer before it releases the read lock).
    written: AtomicU64,
    /// The value of `written` covered by the last successful fdatasync.
    synced: AtomicU64,
    /// A fdatasync made while closing the file failed.
    sync_failed: AtomicBool,
    /// Detached: kept open outside the cache until dropped.
    detached: AtomicBool,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFile")
            .field("path", &self.path)
            .field("open", &self.handle.read().is_some())
            .finish()
    }
}

impl SegmentFile {
    /// A slot for the file at `path`, with `file` already open (registered at once).
    pub(crate) fn new(cache: &Arc<FileCache>, path: &Path, file: File) -> Arc<SegmentFile> {
        let slot = Arc::new(SegmentFile {
            id: cache.next_id.fetch_add(1, Ordering::Relaxed),
            path: path.to_path_buf(),
            cache: cache.clone(),
            handle: RwLock::new(Some(Arc::new(file))),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_failed: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        });
        slot.touch();
        slot
    }

    /// The open file (reopening it if it was evicted). The descriptor stays
    /// valid for as long as the caller holds the `Arc`.
    pub(crate) fn file(self: &Arc<Self>) -> Result<Arc<File>, Error> {
        let cached = self.handle.read().clone();
        let file = match cached {
            Some(f) => f,
            None => self.reopen()?,
        };
        self.touch();
        Ok(file)
    }

    fn reopen(&self) -> Result<Arc<File>, Error> {
        let mut handle = self.handle.write();
        if let Some(f) = handle.as_ref() {
            return Ok(f.clone());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, e))?;
        let file = Arc::new(file);
        *handle = Some(file.clone());
        Ok(file)
    }

    /// Runs a write on the open file; no close can sync and drop the
    /// descriptor while it runs.
    pub(crate) fn write<T>(
        self: &Arc<Self>,
        op: impl FnOnce(&File) -> io::Result<T>,
    ) -> Result<io::Result<T>, Error> {
        let result = loop {
            let handle = self.handle.read();
            if let Some(f) = handle.as_ref() {
                let r = op(f);
                self.written.fetch_add(1, Ordering::AcqRel);
                break r;
            }
            drop(handle);
            self.reopen()?;
        };
        // Evictions take other slots' write locks: never while holding ours.
        self.touch();
        Ok(result)
    }

    /// fdatasyncs the writes made so far. An evicted file was synced when it
    /// was closed, so it is not reopened. Fails for good once a fdatasync
    /// made on closing the file has failed.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.check_sync_failed()?;
        let handle = self.handle.read();
        let Some(f) = handle.as_ref() else {
            // Closed only after a successful fdatasync of every write; a
            // write needs the file open again.
            return Ok(());
        };
        let upto = self.written.load(Ordering::Acquire);
        f.sync_data()?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    fn check_sync_failed(&self) -> io::Result<()> {
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an earlier fdatasync of this file (when its descriptor was being closed) failed",
            ));
        }
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cache this file goes through.
    pub(crate) fn cache(&self) -> &Arc<FileCache> {
        &self.cache
    }

    /// Keeps the file open outside the cache until the segment is dropped
    /// (before its path is deleted or renamed over).
    pub(crate) fn detach(self: &Arc<Self>) -> Result<(), Error> {
        self.reopen()?;
        self.detached.store(true, Ordering::Release);
        self.cache.forget(self.id);
        Ok(())
    }

    fn touch(self: &Arc<Self>) {
        if self.detached.load(Ordering::Acquire) {
            return;
        }
        for victim in self.cache.touch(self) {
            victim.close();
        }
    }

    /// Closes the descriptor after a fdatasync of unsynced writes.
    fn close(&self) {
        if self.detached.load(Ordering::Acquire) {
            return;
        }
        let mut handle = self.handle.write();
        let Some(f) = handle.as_ref() else {
            return;
        };
        let written = self.written.load(Ordering::Acquire);
        if written > self.synced.load(Ordering::Acquire) {
            if let Err(e) = f.sync_data() {
                // Kept open (outside the cache until its next use); the log
                // learns of the failure at its next fsync and poisons itself.
                self.sync_failed.store(true, Ordering::Release);
                tracing::error!(file = %self.path.display(), error = %e,
                    "fdatasync before closing an evicted segment file failed");
                return;
            }
            self.synced.fetch_max(written, Ordering::AcqRel);
        }
        *handle = None;
    }

    /// Whether the descriptor is open now.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.handle.read().is_some()
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn slot(cache: &Arc<FileCache>, dir: &Path, name: &str) -> Arc<SegmentFile> {
        let path = dir.join(name);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        SegmentFile::new(cache, &path, f)
    }

    #[test]
    fn the_least_recently_used_files_are_closed_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2);
        let a = slot(&cache, dir.path(), "a");
        let b = slot(&cache, dir.path(), "b");
        a.file().unwrap();
        let c = slot(&cache, dir.path(), "c");
        assert!(a.is_open() && c.is_open());
        assert!(!b.is_open(), "b was the least recently used");
        assert_eq!(cache.registered(), 2);
        // b reopens on use; a is now the oldest.
        b.write(|f| f.write_all_at(b"xy", 0)).unwrap().unwrap();
        assert!(!a.is_open() && b.is_open() && c.is_open());
        let mut buf = [0u8; 2];
        b.file().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"xy");
    }

    #[test]
    fn a_reader_keeps_its_file_after_eviction_and_a_detached_file_survives_renames() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(1);
        let a = slot(&cache, dir.path(), "a");
        a.write(|f| f.write_all_at(b"old", 0)).unwrap().unwrap();
        let held = a.file().unwrap();
        let _b = slot(&cache, dir.path(), "b");
        assert!(!a.is_open());
        let mut buf = [0u8; 3];
        held.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
        // Detached, the old file stays readable after another is renamed over its path.
        a.detach().unwrap();
        std::fs::write(dir.path().join("new"), b"new").unwrap();
        std::fs::rename(dir.path().join("new"), dir.path().join("a")).unwrap();
        let _c = slot(&cache, dir.path(), "c");
        a.file().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
        assert_eq!(
            cache.registered(),
            1,
            "detached files are outside the cache"
        );
    }

    #[test]
    fn an_evicted_file_was_synced_and_needs_no_reopen_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(1);
        let a = slot(&cache, dir.path(), "a");
        a.write(|f| f.write_all_at(b"data", 0)).unwrap().unwrap();
        assert!(a.written.load(Ordering::Acquire) > a.synced.load(Ordering::Acquire));
        let _b = slot(&cache, dir.path(), "b");
        assert!(!a.is_open());
        assert_eq!(
            a.written.load(Ordering::Acquire),
            a.synced.load(Ordering::Acquire),
            "closing synced the write"
        );
        a.sync_data().unwrap();
        assert!(
            !a.is_open(),
            "syncing a closed, synced file does not reopen it"
        );
    }
}
