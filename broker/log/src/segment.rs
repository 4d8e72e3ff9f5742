//! One segment: a `.log` file of whole batches plus its in-memory sparse
//! indexes. Readers use positional reads bounded by the committed size, so
//! they never see a partially written batch and never block the appender.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::checkpoint::{self, TMP_SUFFIX};
use crate::error::{io_err, Error};
use crate::files::{FileCache, SegmentFile};
use crate::index::{OffsetIndex, TimeIndex};
use crate::records;

/// `.log` file name of the segment starting at `base`.
pub(crate) fn log_file_name(base: i64) -> String {
    format!("{base:020}.log")
}

/// `.index` file name of the segment starting at `base`.
pub(crate) fn index_file_name(base: i64) -> String {
    format!("{base:020}.index")
}

/// `.timeindex` file name of the segment starting at `base`.
pub(crate) fn time_index_file_name(base: i64) -> String {
    format!("{base:020}.timeindex")
}

/// One batch found by a scan of a segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMeta {
    pub(crate) pos: u64,
    pub(crate) header: BatchHeader,
    /// For a control batch, the marker it holds.
    pub(crate) control: Option<crate::txn_state::ControlType>,
}

/// Index and timestamp bookkeeping of a segment, updated batch by batch.
#[derive(Debug, Clone)]
pub(crate) struct SegmentState {
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Largest batch max timestamp in the segment (-1 when none).
    pub(crate) max_timestamp: i64,
    /// Base offset and position of the first batch holding `max_timestamp`.
    pub(crate) max_timestamp_batch: Option<(i64, u64)>,
    /// Broker clock (or first batch timestamp after reopen) of the first append, for `segment.ms`.
    pub(crate) first_append_ms: Option<i64>,
    bytes_since_index: u64,
}

impl SegmentState {
    fn new() -> SegmentState {
        SegmentState {
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: -1,
            max_timestamp_batch: None,
            first_append_ms: None,
            bytes_since_index: 0,
        }
    }

    /// Accounts for one batch written at `pos` of a segment starting at `base`.
    pub(crate) fn on_batch(&mut self, base: i64, pos: u64, h: &BatchHeader, interval: u32) {
        let rel = rel_offset(base, h.base_offset);
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.max_timestamp_batch = Some((h.base_offset, pos));
        }
        if self.bytes_since_index >= u64::from(interval) {
            if let Ok(p) = u32::try_from(pos) {
                self.index.push(rel, p);
            }
            self.push_time_entry(base);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_size() as u64;
    }

    /// Adds a time index entry for the max timestamp so far (also done on roll/close).
    pub(crate) fn push_time_entry(&mut self, base: i64) {
        if let Some((off, _)) = self.max_timestamp_batch {
            if self.max_timestamp >= 0 {
                self.time_index
                    .push(self.max_timestamp, rel_offset(base, off));
            }
        }
    }
}

/// Offset relative to a segment base, clamped into u32 (roll keeps it in range).
pub(crate) fn rel_offset(base: i64, offset: i64) -> u32 {
    u32::try_from((offset - base).max(0)).unwrap_or(u32::MAX)
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// The `.log` file, opened on demand through the broker's [`FileCache`].
    file: Arc<SegmentFile>,
    /// Bytes of whole batches readers may see; written only by the appender (append lock).
    committed: AtomicU64,
    /// Bytes known to be fdatasynced; written under the sync mutex or append lock.
    synced: AtomicU64,
    /// Offset after the last batch; written only by the appender.
    next_offset: AtomicI64,
    /// Indexes and timestamps; locked briefly by readers and the appender.
    pub(crate) state: Mutex<SegmentState>,
}

/// Where the batches of a read lie in a segment file ([`Segment::extent`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extent {
    /// File position of the first batch.
    pub(crate) pos: u64,
    /// Bytes of whole batches (0 when the first one is over a limit).
    pub(crate) len: usize,
    /// Offset after the last batch (the requested offset when none).
    pub(crate) next_offset: i64,
    /// Whether the batches run up to the segment's committed end.
    pub(crate) at_end: bool,
}

/// How a walk over batch headers ended: (end position, offset after the last batch).
enum Walk {
    /// At the limit.
    Clean(u64, i64),
    /// Before an unreadable header (a damaged index entry pointed into a batch, or a
    /// damaged batch).
    Stopped(u64, i64),
}

enum Scan {
    Found(u64, BatchHeader),
    NotFound,
    Bogus,
}

impl Segment {
    /// Creates a new empty segment file (removing stale index files of the same base).
    pub(crate) fn create(files: &Arc<FileCache>, dir: &Path, base: i64) -> Result<Segment, Error> {
        let log_path = dir.join(log_file_name(base));
        for stale in [index_file_name(base), time_index_file_name(base)] {
            let _ = fs::remove_file(dir.join(stale));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| io_err(&log_path, e))?;
        if let Err(e) = checkpoint::sync_dir(dir) {
            // Leave no half-created segment behind: the next open would take it as the active one.
            let _ = fs::remove_file(&log_path);
            return Err(e);
        }
        Ok(Segment::from_parts(
            base,
            SegmentFile::new(files, &log_path, file),
            0,
            base,
            SegmentState::new(),
        ))
    }

    /// Wraps an opened, recovered segment file.
    pub(crate) fn from_parts(
        base: i64,
        file: Arc<SegmentFile>,
        size: u64,
        next_offset: i64,
        state: SegmentState,
    ) -> Segment {
        Segment {
            base_offset: base,
            file,
            committed: AtomicU64::new(size),
            synced: AtomicU64::new(0),
            next_offset: AtomicI64::new(next_offset),
            state: Mutex::new(state),
        }
    }

    /// Fresh bookkeeping for a rebuilt segment.
    pub(crate) fn new_state() -> SegmentState {
        SegmentState::new()
    }

    pub(crate) fn size(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.state.lock().max_timestamp
    }

    /// Publishes appended bytes to readers (after the write and index updates).
    pub(crate) fn publish(&self, size: u64, next_offset: i64) {
        self.committed.store(size, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
    }

    /// The open `.log` file (reopened through the file cache if it was
    /// evicted). Holding the `Arc` keeps the descriptor open, so a reader
    /// may send from it after the cache has moved on.
    pub(crate) fn file(&self) -> Result<Arc<File>, Error> {
        self.file.file()
    }

    /// The file cache this segment's file goes through.
    /// The `.log` file's path (its final name, also for a cleaned segment
    /// registered before the swap renames it there).
    pub(crate) fn log_path(&self) -> &Path {
        self.file.path()
    }

    /// The partition directory holding the segment's files.
    pub(crate) fn dir(&self) -> &Path {
        self.file.path().parent().unwrap_or(Path::new(""))
    }

    pub(crate) fn files(&self) -> &Arc<FileCache> {
        self.file.cache()
    }

    /// Keeps the file open outside the file cache until this segment is
    /// dropped; called before its path is deleted or renamed over, so
    /// in-flight reads keep reading this file.
    pub(crate) fn detach(&self) -> Result<(), Error> {
        self.file.detach()
    }

    /// Writes bytes at the end; on failure the file is cut back so no partial batch remains.
    pub(crate) fn write_batches(&self, buf: &[u8]) -> Result<(), Error> {
        let pos = self.size();
        let written = self.file.write(|f| {
            f.write_all_at(buf, pos).inspect_err(|_| {
                // Roll back a partial write (e.g. ENOSPC) so the file ends at the last whole batch.
                if let Err(t) = f.set_len(pos) {
                    tracing::warn!(file = %self.log_path().display(), error = %t, "could not cut back a failed write");
                }
            })
        })?;
        written.map_err(|e| io_err(self.log_path(), e))
    }

    /// fdatasyncs the file if there are unsynced bytes.
    pub(crate) fn sync_data(&self) -> Result<(), Error> {
        let size = self.size();
        if self.synced.load(Ordering::Acquire) >= size {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| io_err(self.log_path(), e))?;
        self.synced.fetch_max(size, Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn mark_synced(&self) {
        self.synced.store(self.size(), Ordering::Release);
    }

    /// Reads up to `len` bytes at `pos`; shorter only at end of file.
    pub(crate) fn read_bytes(&self, pos: u64, len: usize) -> Result<BytesMut, Error> {
        let file = self.file()?;
        let mut buf = BytesMut::zeroed(len);
        let mut filled = 0usize;
        while filled < len {
            match file.read_at(&mut buf[filled..], pos + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(self.log_path(), e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn header_at(&self, pos: u64) -> Result<Option<BatchHeader>, Error> {
        let b = self.read_bytes(pos, HEADER_LEN)?;
        Ok(BatchHeader::parse(&b))
    }

    fn scan_from(&self, mut pos: u64, target: i64, committed: u64) -> Result<Scan, Error> {
        let mut first = true;
        while pos + HEADER_LEN as u64 <= committed {
            let Some(h) = self.header_at(pos)? else {
                return Ok(Scan::Bogus);
            };
            if h.check_fields().is_err()
                || pos + h.total_size() as u64 > committed
                || (first && h.base_offset > target && pos != 0)
            {
                return Ok(Scan::Bogus);
            }
            first = false;
            if h.last_offset() >= target {
                return Ok(Scan::Found(pos, h));
            }
            pos += h.total_size() as u64;
        }
        Ok(Scan::NotFound)
    }

    /// Position and header of the first batch whose last offset is >= `target`.
    pub(crate) fn find_batch(&self, target: i64) -> Result<Option<(u64, BatchHeader)>, Error> {
        let committed = self.size();
        let start = u64::from(
            self.state
                .lock()
                .index
                .lookup(rel_offset(self.base_offset, target)),
        );
        let mut res = self.scan_from(start, target, committed)?;
        if matches!(res, Scan::Bogus) && start != 0 {
            // A damaged index entry must not break reads: scan from the segment start.
            res = self.scan_from(0, target, committed)?;
        }
        match res {
            Scan::Found(p, h) => Ok(Some((p, h))),
            Scan::NotFound => Ok(None),
            Scan::Bogus => Err(io_err(
                self.log_path(),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unreadable batch header in segment",
                ),
            )),
        }
    }

    /// Where the whole batches a read from `offset` returns lie in the file, found from
    /// batch headers and the sparse index without reading the batches themselves (a
    /// zero-copy send needs only this). `None` when this segment holds nothing at or
    /// after `offset`; an empty extent when the first batch is over a limit.
    pub(crate) fn extent(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        max_offset: i64,
    ) -> Result<Option<Extent>, Error> {
        let Some((pos, first)) = self.find_batch(offset)? else {
            return Ok(None);
        };
        let empty = Extent {
            pos,
            len: 0,
            next_offset: offset,
            at_end: false,
        };
        if first.last_offset() >= max_offset {
            return Ok(Some(empty));
        }
        let first_size = first.total_size();
        if first_size > max_bytes && !min_one {
            return Ok(Some(empty));
        }
        let committed = self.size();
        let first_end = pos + first_size as u64;
        if first_end > committed {
            return Ok(Some(empty));
        }
        // The byte limit (at least the first batch), then the offset limit: the first
        // batch holding `max_offset` or later is left out, and batches start there.
        let budget_end = pos
            .saturating_add(max_bytes.max(first_size) as u64)
            .min(committed);
        // A header the offset search cannot read leaves only the walk below, which
        // stops before it as a copy of the bytes would.
        let offset_end = match self.find_batch(max_offset) {
            Ok(Some((p, _))) => p.max(first_end),
            Ok(None) => committed,
            Err(_) => u64::MAX,
        };
        let end = budget_end.min(offset_end);
        if end == offset_end {
            // Both ends are batch boundaries; when the offset limit cuts, the next read
            // starts at the batch holding it.
            let next_offset = if end == committed {
                self.next_offset()
            } else {
                self.header_at(end)?
                    .map_or(first.last_offset() + 1, |h| h.base_offset)
            };
            return Ok(Some(Extent {
                pos,
                len: (end - pos) as usize,
                next_offset: next_offset.max(first.last_offset() + 1),
                at_end: end == committed,
            }));
        }
        // The byte limit cuts inside a batch: walk the headers up to it, from the last
        // index entry before it (a few KiB of headers) or, if that entry is damaged,
        // from the first batch.
        let indexed = {
            let state = self.state.lock();
            let entries = &state.index.entries;
            let i = entries.partition_point(|&(_, p)| u64::from(p) <= end);
            i.checked_sub(1).map(|i| entries[i])
        };
        let after_first = (first_end, first.last_offset() + 1);
        let from = match indexed {
            Some((rel, p)) if u64::from(p) > first_end => {
                (u64::from(p), self.base_offset + i64::from(rel))
            }
            _ => after_first,
        };
        let walked = match self.walk_to(from, end, max_offset)? {
            Walk::Clean(at, next) => (at, next),
            Walk::Stopped(..) if from != after_first => {
                match self.walk_to(after_first, end, max_offset)? {
                    Walk::Clean(at, next) | Walk::Stopped(at, next) => (at, next),
                }
            }
            Walk::Stopped(at, next) => (at, next),
        };
        Ok(Some(Extent {
            pos,
            len: (walked.0 - pos) as usize,
            next_offset: walked.1,
            at_end: walked.0 == committed,
        }))
    }

    /// Walks whole batches from `from` (a batch boundary and the offset its batch starts
    /// at) while they end at or before `end` and hold no offset from `max_offset` on.
    fn walk_to(&self, from: (u64, i64), end: u64, max_offset: i64) -> Result<Walk, Error> {
        let (mut at, mut next) = from;
        while at + HEADER_LEN as u64 <= end {
            let Some(h) = self.header_at(at)? else {
                return Ok(Walk::Stopped(at, next));
            };
            if h.check_fields().is_err() || h.last_offset() < next {
                return Ok(Walk::Stopped(at, next));
            }
            let size = h.total_size() as u64;
            if at + size > end || h.last_offset() >= max_offset {
                break;
            }
            at += size;
            next = h.last_offset() + 1;
        }
        Ok(Walk::Clean(at, next))
    }

    /// The first record at or after `min_offset` with timestamp >= `ts`, as
    /// (offset, timestamp). Batches decompress to at most `max_uncompressed` bytes.
    pub(crate) fn find_timestamp(
        &self,
        ts: i64,
        min_offset: i64,
        max_uncompressed: usize,
    ) -> Result<Option<(i64, i64)>, Error> {
        let start_rel = self.state.lock().time_index.lookup(ts);
        let start = start_rel
            .map_or(self.base_offset, |r| self.base_offset + i64::from(r))
            .max(min_offset);
        let Some((mut pos, _)) = self.find_batch(start)? else {
            return Ok(None);
        };
        let committed = self.size();
        while pos + HEADER_LEN as u64 <= committed {
            let Some(h) = self.header_at(pos)? else { break };
            if h.check_fields().is_err() {
                break;
            }
            let size = h.total_size();
            if pos + size as u64 > committed {
                // A damaged length: never read (or allocate) past the segment.
                return Err(self.damaged_header(pos));
            }
            if h.max_timestamp >= ts && h.last_offset() >= min_offset {
                if h.is_log_append_time() {
                    return Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)));
                }
                let bytes = self.read_bytes(pos, size)?.freeze();
                if let Some(found) =
                    self.first_record_at_or_after(pos, bytes, ts, min_offset, max_uncompressed)?
                {
                    return Ok(Some(found));
                }
            }
            pos += size as u64;
        }
        Ok(None)
    }

    /// The offset of the first record holding the segment's max timestamp.
    /// Batches decompress to at most `max_uncompressed` bytes.
    pub(crate) fn max_timestamp_record(
        &self,
        max_uncompressed: usize,
    ) -> Result<Option<(i64, i64)>, Error> {
        let (max_ts, batch) = {
            let st = self.state.lock();
            (st.max_timestamp, st.max_timestamp_batch)
        };
        let Some((base, pos)) = batch else {
            return Ok(None);
        };
        if max_ts < 0 {
            return Ok(None);
        }
        let Some(h) = self.header_at(pos)? else {
            return Ok(Some((max_ts, base)));
        };
        let size = h.total_size();
        if h.is_log_append_time() || h.check_fields().is_err() || pos + size as u64 > self.size() {
            return Ok(Some((max_ts, base)));
        }
        let bytes = self.read_bytes(pos, size)?.freeze();
        let found = self.first_record_at_or_after(pos, bytes, max_ts, base, max_uncompressed)?;
        Ok(Some(match found {
            Some((off, ts)) if ts == max_ts => (max_ts, off),
            _ => (max_ts, base),
        }))
    }

    /// Decodes the batch at `pos` and returns the first record with offset >=
    /// `min_offset` and timestamp >= `ts`, as (offset, timestamp).
    fn first_record_at_or_after(
        &self,
        pos: u64,
        bytes: Bytes,
        ts: i64,
        min_offset: i64,
        max_uncompressed: usize,
    ) -> Result<Option<(i64, i64)>, Error> {
        let undecodable = |e: records::RecordsError| {
            Error::InvalidBatch(format!(
                "cannot decode the batch at position {pos} of {}: {e}",
                self.log_path().display()
            ))
        };
        for record in records::decode_iter(bytes, max_uncompressed).map_err(undecodable)? {
            let r = record.map_err(undecodable)?;
            if r.offset >= min_offset && r.timestamp >= ts {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    fn damaged_header(&self, pos: u64) -> Error {
        io_err(
            self.log_path(),
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("batch header at position {pos} claims bytes past the end of the segment"),
            ),
        )
    }

    /// Writes both index files (temp file + rename) and fsyncs them.
    pub(crate) fn write_indexes(&self) -> Result<(), Error> {
        let (idx, tidx) = {
            let mut st = self.state.lock();
            st.push_time_entry(self.base_offset);
            (st.index.encode(), st.time_index.encode())
        };
        write_file_replace(self.dir(), &index_file_name(self.base_offset), &idx)?;
        write_file_replace(self.dir(), &time_index_file_name(self.base_offset), &tidx)
    }

    /// Cuts the segment at `pos` (a batch boundary) with `next_offset` as its new end.
    pub(crate) fn truncate(&self, pos: u64, next_offset: i64, interval: u32) -> Result<(), Error> {
        self.file
            .write(|f| f.set_len(pos))?
            .map_err(|e| io_err(self.log_path(), e))?;
        self.file
            .sync_data()
            .map_err(|e| io_err(self.log_path(), e))?;
        // Rebuild the bookkeeping from the remaining headers (rare operation).
        let mut st = SegmentState::new();
        let mut p = 0u64;
        while p + HEADER_LEN as u64 <= pos {
            let Some(h) = self.header_at(p)? else { break };
            if h.check_fields().is_err() {
                break;
            }
            st.on_batch(self.base_offset, p, &h, interval);
            p += h.total_size() as u64;
        }
        st.first_append_ms = self.state.lock().first_append_ms.filter(|_| pos > 0);
        *self.state.lock() = st;
        self.committed.store(pos, Ordering::Release);
        self.synced.store(pos, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        Ok(())
    }

    /// Removes the segment's files (the handle, detached from the file cache,
    /// keeps in-flight reads working).
    pub(crate) fn delete_files(&self) -> Result<(), Error> {
        if let Err(e) = self.detach() {
            // Deleting goes on: only a read still in flight could miss the file.
            tracing::debug!(file = %self.log_path().display(), error = %e, "cannot hold a deleted segment open");
        }
        remove_if_exists(self.log_path())?;
        remove_if_exists(&self.dir().join(index_file_name(self.base_offset)))?;
        remove_if_exists(&self.dir().join(time_index_file_name(self.base_offset)))
    }
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Replaces `dir/name` with `contents` via a temp file and rename, fsynced.
pub(crate) fn write_file_replace(dir: &Path, name: &str, contents: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    let res = (|| {
        let f = File::create(&tmp)?;
        f.write_all_at(contents, 0)?;
        f.sync_data()?;
        fs::rename(&tmp, &dst)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&dst, e));
    }
    Ok(())
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone)]
pub(crate) struct ScanStop {
    pub(crate) pos: u64,
    pub(crate) reason: String,
}

/// Result of scanning a segment file from the start.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// Bytes of valid whole batches.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch (the base when there is none).
    pub(crate) next_offset: i64,
    pub(crate) stop: Option<ScanStop>,
}

/// Positional reads through a small cache: one `read_at` serves every
/// header (and, when verifying, every batch) that lies within the chunk.
struct ChunkReader<'a> {
    file: &'a File,
    chunk: usize,
    start: u64,
    buf: Vec<u8>,
}

impl ChunkReader<'_> {
    /// `len` bytes at `pos`, or fewer at end of file.
    fn read(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let cached = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !cached {
            self.buf.resize(self.chunk.max(len), 0);
            let mut filled = 0;
            while filled < self.buf.len() {
                match self
                    .file
                    .read_at(&mut self.buf[filled..], pos + filled as u64)
                {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            self.buf.truncate(filled);
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        let to = (from + len).min(self.buf.len());
        Ok(&self.buf[from..to])
    }
}

/// Scans the batches of a segment file in order. With `verify_crc` every
/// batch is read fully and CRC-checked; otherwise only headers are read
/// (small positional reads, so large batches are skipped without reading them).
/// Stops at the first torn, malformed, corrupt or out-of-order batch.
pub(crate) fn scan_file(
    file: &File,
    base: i64,
    file_len: u64,
    verify_crc: bool,
    mut on_batch: impl FnMut(&BatchMeta),
) -> io::Result<ScanOutcome> {
    let chunk = if verify_crc { 1 << 20 } else { 4096 };
    let mut reader = ChunkReader {
        file,
        chunk,
        start: 0,
        buf: Vec::new(),
    };
    let mut pos = 0u64;
    let mut next = base;
    let stop = |pos: u64, reason: String| Some(ScanStop { pos, reason });
    let outcome_stop = loop {
        if pos >= file_len {
            break None;
        }
        if file_len - pos < HEADER_LEN as u64 {
            break stop(
                pos,
                format!(
                    "torn batch: {} bytes at the end are shorter than a header",
                    file_len - pos
                ),
            );
        }
        let Some(h) = BatchHeader::parse(reader.read(pos, HEADER_LEN)?) else {
            break stop(pos, "file ended inside a batch header".into());
        };
        if let Err(r) = h.check_fields() {
            break stop(pos, format!("bad header: {r}"));
        }
        let size = h.total_size() as u64;
        if pos + size > file_len {
            break stop(
                pos,
                format!(
                    "torn batch: header claims {size} bytes, only {} remain",
                    file_len - pos
                ),
            );
        }
        if h.base_offset < next {
            break stop(
                pos,
                format!(
                    "non-monotonic offsets: batch base {} after offset {}",
                    h.base_offset,
                    next - 1
                ),
            );
        }
        if h.last_offset() - base > i64::from(u32::MAX) {
            break stop(
                pos,
                format!(
                    "batch offset {} too far from segment base {base}",
                    h.last_offset()
                ),
            );
        }
        if verify_crc {
            let bytes = reader.read(pos, size as usize)?;
            if bytes.len() as u64 != size {
                break stop(pos, "file ended inside a batch".into());
            }
            if let Err(e) = batch::check_crc(bytes, &h) {
                break stop(pos, e.to_string());
            }
        }
        let control = if h.is_control() {
            // The first record's key follows the header within a few bytes.
            let body = (size as usize - HEADER_LEN).min(48);
            crate::txn_state::ControlType::of_batch(reader.read(pos + HEADER_LEN as u64, body)?)
        } else {
            None
        };
        on_batch(&BatchMeta {
            pos,
            header: h,
            control,
        });
        pos += size;
        next = h.last_offset() + 1;
    };
    Ok(ScanOutcome {
        valid_len: pos,
        next_offset: next,
        stop: outcome_stop,
    })
}
