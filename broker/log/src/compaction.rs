//! Log compaction (`cleanup.policy=compact`): rewrites the closed segments so
//! that only the latest record per key remains, with offsets unchanged, and
//! drops tombstones once `delete.retention.ms` has passed. Kafka's cleaner is
//! the model; the differences are documented on [`Log::compact`].
//!
//! Crash safety: cleaned segments replace the old ones through `swap.rs`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use crate::batch::{self, BatchHeader, IncomingBatch, HEADER_LEN};
use crate::checkpoint;
use crate::error::{io_err, Error, Result};
use crate::files::SegmentFile;
use crate::log::Log;
use crate::records::{self, RecordsError};
use crate::segment::{self, Segment};
use crate::swap::{CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::truncation::retention_timestamp;
use crate::txn_state::TRANSACTIONAL_BIT;

/// Rough memory budget of one pass's key → offset map; a pass that reaches
/// it stops adding dirty segments (the rest is cleaned by the next pass).
const MAX_MAP_BYTES: usize = 256 << 20;
/// Estimated bytes per map entry besides the key itself.
const MAP_ENTRY_OVERHEAD: usize = 64;

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactionReport {
    /// True when a pass ran (false: not a compacted log, or nothing dirty
    /// enough — ratio below `min.cleanable.dirty.ratio` — and no kept tombstone due).
    pub cleaned: bool,
    /// Uncompacted bytes / cleanable bytes when the pass started.
    pub dirty_ratio: f64,
    /// Segments replaced by a compacted copy.
    pub segments_rewritten: usize,
    /// Segments deleted because compaction left nothing in them.
    pub segments_removed: usize,
    /// Records removed (superseded values, expired tombstones, keyless records).
    pub records_removed: u64,
    /// Of those, tombstones removed after `delete.retention.ms`.
    pub tombstones_removed: u64,
    /// Transaction markers removed (no record of their transaction left, and
    /// older than `delete.retention.ms`).
    pub markers_removed: u64,
    /// Bytes of the replaced segments before and after.
    pub bytes_before: u64,
    /// Bytes of the replaced segments after compaction.
    pub bytes_after: u64,
    /// The cleaner checkpoint after the pass: offsets below it are compacted.
    pub cleaner_offset: i64,
}

/// Refuses an append to a compacted log that holds records without a key
/// (Kafka answers INVALID_RECORD naming every one, KIP-467), or a batch that
/// does not decode within `max_uncompressed` bytes. Control batches carry no
/// user records.
pub(crate) fn check_keys(
    batches_bytes: &Bytes,
    batches: &[IncomingBatch],
    max_uncompressed: usize,
) -> Result<()> {
    let mut keyless = Vec::new();
    let mut index = 0usize;
    for (i, b) in batches.iter().enumerate() {
        if b.header.is_control() {
            continue;
        }
        let bytes = batches_bytes.slice(b.pos..b.pos + b.header.total_size());
        let undecodable =
            |e: RecordsError| Error::InvalidBatch(format!("cannot decode batch {i}: {e}"));
        for record in records::decode_iter(bytes, max_uncompressed).map_err(undecodable)? {
            if record.map_err(undecodable)?.key.is_none() {
                keyless.push(index);
            }
            index += 1;
        }
    }
    if keyless.is_empty() {
        Ok(())
    } else {
        Err(Error::KeylessRecordOnCompactedTopic { records: keyless })
    }
}

/// Calls `f` with the header and bytes of every batch of a segment, in order.
fn for_each_batch(
    seg: &Segment,
    mut f: impl FnMut(BatchHeader, Bytes) -> Result<()>,
) -> Result<()> {
    let size = seg.size();
    let mut pos = 0u64;
    while pos < size {
        let head = seg.read_bytes(pos, HEADER_LEN)?;
        let bad = |why: String| {
            io_err(
                seg.log_path(),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("at position {pos}: {why}"),
                ),
            )
        };
        let h = BatchHeader::parse(&head).ok_or_else(|| bad("short batch header".into()))?;
        h.check_fields().map_err(bad)?;
        let total = h.total_size() as u64;
        if pos + total > size {
            return Err(bad("batch runs past the end of the segment".into()));
        }
        let bytes = seg.read_bytes(pos, total as usize)?.freeze();
        f(h, bytes)?;
        pos += total;
    }
    Ok(())
}

/// Decodes a stored batch (at most `max_uncompressed` bytes of records) and
/// its compression. A batch that does not decode stops the pass: skipping it
/// could let a tombstone be removed while an older value of its key survives
/// in that batch.
fn decode(
    seg: &Segment,
    h: &BatchHeader,
    bytes: Bytes,
    max_uncompressed: usize,
) -> Result<(Compression, Vec<Record>)> {
    let undecodable = |e: RecordsError| {
        tracing::error!(file = %seg.log_path().display(), base_offset = h.base_offset, error = %e,
            "undecodable batch: the log cannot be compacted");
        Error::InvalidBatch(format!(
            "cannot decode the batch at offset {} in {}: {e}",
            h.base_offset,
            seg.log_path().display()
        ))
    };
    let iter = records::decode_iter(bytes, max_uncompressed).map_err(undecodable)?;
    let compression = iter.compression();
    let records = iter.into_vec().map_err(undecodable)?;
    Ok((compression, records))
}

/// The records of aborted transactions, which compaction removes (as Kafka's
/// cleaner does): they must never hide an older committed value of their key.
#[derive(Default)]
struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    fn new(txns: &[crate::txn_state::AbortedTxn]) -> Aborted {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        Aborted(by_producer)
    }

    fn contains(&self, r: &Record) -> bool {
        r.transactional
            && self.0.get(&r.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|(first, last)| *first <= r.offset && r.offset <= *last)
            })
    }
}

/// Key → offset of its latest record within the dirty range of one pass.
#[derive(Default)]
struct OffsetMap {
    latest: HashMap<Bytes, i64>,
    bytes: usize,
}

impl OffsetMap {
    fn add_segment(
        &mut self,
        seg: &Segment,
        max_uncompressed: usize,
        aborted: &Aborted,
    ) -> Result<()> {
        for_each_batch(seg, |h, bytes| {
            if h.is_control() {
                return Ok(());
            }
            let (_, records) = decode(seg, &h, bytes, max_uncompressed)?;
            for r in records {
                if aborted.contains(&r) {
                    continue;
                }
                let Some(key) = r.key else { continue };
                if let Some(o) = self.latest.get_mut(&key[..]) {
                    *o = r.offset;
                } else {
                    // Copied so the map does not pin whole decoded batches in memory.
                    self.bytes += key.len() + MAP_ENTRY_OVERHEAD;
                    self.latest.insert(Bytes::copy_from_slice(&key), r.offset);
                }
            }
            Ok(())
        })
    }
}

/// A compacted copy of one segment, written to its `.cleaned` file.
struct Cleaned {
    /// The new segment (file handle on the `.cleaned` file), `None` when nothing is left.
    segment: Option<Segment>,
    cleaned_path: PathBuf,
    size: u64,
    records_removed: u64,
    tombstones_removed: u64,
    markers_removed: u64,
}

/// Tombstone bookkeeping of one pass.
struct Tombstones {
    /// Tombstones older than this are removed.
    horizon: i64,
    /// `delete.retention.ms`, to compute when a kept tombstone expires.
    retention_ms: i64,
    removed: u64,
    /// Earliest time a kept tombstone becomes removable (i64::MAX: none kept).
    next_expiry: i64,
}

/// Transaction markers of one pass (Kafka's cleaner rule): a marker is
/// removed once no record of its transaction is left before it — the aborted
/// records and the superseded committed ones were removed by an earlier pass,
/// so a marker whose transaction still has records in this pass's input stays
/// at least until the next one — and its own timestamp is older than
/// `delete.retention.ms`, so a read_committed consumer that read the
/// transaction's records has had that long to reach the marker.
#[derive(Default)]
struct TxnMarkers {
    /// Producers whose current transaction has records in the pass's input.
    in_input: HashSet<i64>,
    /// Of those, the ones with records this pass keeps.
    kept: HashSet<i64>,
    removed: u64,
}

impl TxnMarkers {
    /// A data batch was read (in log order); `kept_any`: some of its records stay.
    fn on_data(&mut self, h: &BatchHeader, kept_any: bool) {
        if h.producer_id >= 0 && h.attributes & TRANSACTIONAL_BIT != 0 {
            self.in_input.insert(h.producer_id);
            if kept_any {
                self.kept.insert(h.producer_id);
            }
        }
    }

    /// A control batch was read (in log order): whether it is removed now.
    /// A marker kept only because this pass removed the last records of its
    /// transaction makes a later pass due (through `tombs.next_expiry`).
    fn remove(&mut self, h: &BatchHeader, tombs: &mut Tombstones) -> bool {
        let in_input = self.in_input.remove(&h.producer_id);
        if self.kept.remove(&h.producer_id) {
            return false;
        }
        if !in_input && h.max_timestamp < tombs.horizon {
            self.removed += 1;
            return true;
        }
        let expiry = h
            .max_timestamp
            .saturating_add(tombs.retention_ms)
            .saturating_add(1);
        tombs.next_expiry = tombs.next_expiry.min(expiry);
        false
    }
}

/// Which records of a batch survive: not of an aborted transaction, not
/// superseded by a later record of the same key in the map, has a key, and
/// is not a tombstone older than the horizon.
fn retained<'a>(
    h: &BatchHeader,
    records: &'a [Record],
    map: &HashMap<Bytes, i64>,
    tombs: &mut Tombstones,
    aborted: &Aborted,
) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| {
            if aborted.contains(r) {
                return false;
            }
            let Some(key) = &r.key else { return false };
            if map.get(&key[..]).is_some_and(|&o| o > r.offset) {
                return false;
            }
            if r.value.is_none() {
                let ts = if h.is_log_append_time() {
                    h.max_timestamp
                } else {
                    r.timestamp
                };
                if ts < tombs.horizon {
                    tombs.removed += 1;
                    return false;
                }
                let expiry = ts.saturating_add(tombs.retention_ms).saturating_add(1);
                tombs.next_expiry = tombs.next_expiry.min(expiry);
            }
            true
        })
        .collect()
}

/// Re-encodes the retained records of a batch as one batch with the same
/// compression, producer id/epoch, leader epoch and record offsets/timestamps.
fn reencode(h: &BatchHeader, compression: Compression, keep: &[&Record]) -> Result<BytesMut> {
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        keep.iter().copied(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| Error::InvalidBatch(format!("cannot re-encode a compacted batch: {e}")))?;
    let new = BatchHeader::parse(&out)
        .filter(|n| n.total_size() == out.len())
        .ok_or_else(|| {
            Error::InvalidBatch("re-encoding a compacted batch did not give one batch".into())
        })?;
    let last_delta = i32::try_from(h.last_offset() - new.base_offset)
        .map_err(|_| Error::InvalidBatch("compacted batch offset delta overflow".into()))?;
    let base_sequence = if h.base_sequence < 0 {
        -1
    } else {
        new.base_sequence
    };
    let append_time = h.is_log_append_time().then_some(h.max_timestamp);
    batch::patch_cleaned(&mut out, last_delta, base_sequence, append_time);
    Ok(out)
}

/// Writes the compacted copy of `seg` to `<base>.log.cleaned` and fsyncs it.
/// Returns `None` when no record would be removed (the file is deleted again).
fn clean_segment(
    seg: &Segment,
    map: &HashMap<Bytes, i64>,
    tombs: &mut Tombstones,
    interval: u32,
    max_uncompressed: usize,
    aborted: &Aborted,
    markers: &mut TxnMarkers,
) -> Result<Option<Cleaned>> {
    let name = segment::log_file_name(seg.base_offset);
    let cleaned_path = seg.dir().join(format!("{name}{CLEANED_SUFFIX}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&cleaned_path)
        .map_err(|e| io_err(&cleaned_path, e))?;
    let mut state = Segment::new_state();
    let mut pos = 0u64;
    let mut next = seg.base_offset;
    let mut records_removed = 0u64;
    let tombstones_before = tombs.removed;
    let markers_before = markers.removed;
    let result = (|| -> Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut put = |bytes: &[u8], state: &mut segment::SegmentState| -> Result<()> {
            let nh = BatchHeader::parse(bytes).ok_or_else(|| {
                Error::InvalidBatch("compacted batch shorter than a header".into())
            })?;
            out.write_all(bytes).map_err(|e| io_err(&cleaned_path, e))?;
            state.on_batch(seg.base_offset, pos, &nh, interval);
            pos += bytes.len() as u64;
            next = nh.last_offset() + 1;
            Ok(())
        };
        for_each_batch(seg, |h, bytes| {
            if h.is_control() {
                if markers.remove(&h, tombs) {
                    return Ok(());
                }
                return put(&bytes, &mut state);
            }
            let (compression, records) = decode(seg, &h, bytes.clone(), max_uncompressed)?;
            let keep = retained(&h, &records, map, tombs, aborted);
            markers.on_data(&h, !keep.is_empty());
            records_removed += (records.len() - keep.len()) as u64;
            if keep.len() == records.len() {
                put(&bytes, &mut state)
            } else if keep.is_empty() {
                Ok(())
            } else {
                let rewritten = reencode(&h, compression, &keep)?;
                put(&rewritten, &mut state)
            }
        })?;
        out.flush().map_err(|e| io_err(&cleaned_path, e))?;
        Ok(())
    })();
    let markers_removed = markers.removed - markers_before;
    let done = result.and_then(|()| {
        if records_removed > 0 || markers_removed > 0 {
            file.sync_all().map_err(|e| io_err(&cleaned_path, e))?;
        }
        Ok(())
    });
    if let Err(e) = done {
        let _ = fs::remove_file(&cleaned_path);
        return Err(e);
    }
    if records_removed == 0 && markers_removed == 0 {
        fs::remove_file(&cleaned_path).map_err(|e| io_err(&cleaned_path, e))?;
        return Ok(None);
    }
    let segment = (pos > 0).then(|| {
        // Registered under its final path: it is only used (and reopened
        // from that path) once the swap has renamed it there.
        let s = Segment::from_parts(
            seg.base_offset,
            SegmentFile::new(seg.files(), &seg.dir().join(&name), file),
            pos,
            next,
            state,
        );
        s.mark_synced();
        s
    });
    Ok(Some(Cleaned {
        segment,
        cleaned_path,
        size: pos,
        records_removed,
        tombstones_removed: tombs.removed - tombstones_before,
        markers_removed,
    }))
}

/// How a cleaned segment ended up.
enum Swap {
    Replaced,
    Removed,
    /// The segment was deleted or truncated meanwhile: the work was discarded.
    Stale,
}

impl Log {
    /// Compacts the closed segments when the dirty ratio reaches
    /// `min_cleanable_dirty_ratio`, or when a tombstone kept by an earlier pass
    /// has become removable (always once after open, since that time is kept
    /// in memory only). See [`Log::compact_forced`] for the rules.
    /// Does nothing for a log without `compact`.
    pub fn compact(&self, now_ms: i64) -> Result<CompactionReport> {
        self.compact_pass(now_ms, false)
    }

    /// One compaction pass regardless of the dirty ratio (when anything is
    /// dirty or a kept tombstone is due). Rules:
    /// - Only closed segments are read and rewritten, never the active one; of
    ///   those, only the leading segments whose newest record is at least
    ///   `min_compaction_lag_ms` old are cleanable (Kafka's cleanable range).
    /// - The key → latest offset map is built from the dirty cleanable segments
    ///   (at or after the cleaner checkpoint), as Kafka does; the active
    ///   segment's keys are not used, so a record is removed only when a newer
    ///   record of its key is in a segment that truncation cannot remove.
    /// - Every cleanable segment is filtered with the map: a record stays if no
    ///   later record has its key. Keyless records are removed (Kafka's cleaner
    ///   does the same). A tombstone (null value) that is the latest for its key
    ///   is removed once its timestamp (the append time for LogAppendTime
    ///   batches) is older than `now_ms - delete_retention_ms`; by then the
    ///   older values of its key were removed by the pass that first mapped it.
    /// - A batch keeping all records is copied byte for byte; one keeping none
    ///   is dropped; otherwise its retained records are re-encoded as one batch
    ///   with the same compression, producer id/epoch, leader epoch, offsets and
    ///   timestamps; its base offset becomes the first retained record's offset
    ///   and its last offset delta still ends at the original last offset.
    ///   A control batch (transaction marker) is kept unchanged until no
    ///   record of its transaction is left and it is older than
    ///   `delete_retention_ms`; then it is removed (see `TxnMarkers`).
    /// - Only segments wholly below the first open transaction are cleanable, and
    ///   the records of aborted transactions are removed and never count as
    ///   a key's latest value (Kafka's rules).
    /// - A segment left empty is deleted, except the first one (kept as an
    ///   empty file so the log start offset survives a reopen). The log start
    ///   and end offsets never change.
    /// - The heavy work runs without the append lock; each segment is swapped
    ///   in (oldest first) under the append lock after checking it is still in
    ///   the log and no truncation happened since the pass started. Readers
    ///   holding the old segment keep reading its (unlinked) file.
    pub fn compact_forced(&self, now_ms: i64) -> Result<CompactionReport> {
        self.compact_pass(now_ms, true)
    }

    fn compact_pass(&self, now_ms: i64, force: bool) -> Result<CompactionReport> {
        let config = self.config.read().clone();
        let mut report = CompactionReport {
            cleaner_offset: self.cleaner_offset.load(Ordering::Acquire),
            ..CompactionReport::default()
        };
        if !config.compact {
            return Ok(report);
        }
        self.check_poisoned()?;
        let _pass = self.cleaner_lock.lock();
        let generation = self.truncations.load(Ordering::Acquire);
        let segs = self.snapshot();
        let closed = segs.len().saturating_sub(1);
        let lag = config.min_compaction_lag_ms;
        // Nothing at or past the first undecided transaction is cleaned: its
        // records could otherwise replace committed values.
        let stable = self
            .open_transactions()
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MAX);
        let cleanable = segs[..closed]
            .iter()
            .take_while(|s| {
                (lag <= 0 || retention_timestamp(s, now_ms) <= now_ms.saturating_sub(lag))
                    && s.next_offset() <= stable
            })
            .count();
        let checkpoint = self.cleaner_offset.load(Ordering::Acquire);
        let first_dirty = segs[..cleanable]
            .iter()
            .position(|s| s.base_offset >= checkpoint || s.next_offset() > checkpoint)
            .unwrap_or(cleanable);
        let total: u64 = segs[..cleanable].iter().map(|s| s.size()).sum();
        let dirty: u64 = segs[first_dirty..cleanable].iter().map(|s| s.size()).sum();
        report.dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        };
        let ratio_due =
            dirty > 0 && (force || report.dirty_ratio >= config.min_cleanable_dirty_ratio);
        let tombstones_due =
            cleanable > 0 && now_ms >= self.tombstone_expiry.load(Ordering::Acquire);
        if !ratio_due && !tombstones_due {
            return Ok(report);
        }

        let max_uncompressed = records::uncompressed_limit(config.max_message_bytes);
        let aborted = Aborted::new(&self.aborted_transactions(
            self.log_start_offset(),
            segs[cleanable.saturating_sub(1)].next_offset(),
        ));
        let mut map = OffsetMap::default();
        let mut end = first_dirty;
        while end < cleanable {
            map.add_segment(&segs[end], max_uncompressed, &aborted)?;
            end += 1;
            if map.bytes >= MAX_MAP_BYTES {
                break;
            }
        }
        let mut tombs = Tombstones {
            horizon: now_ms.saturating_sub(config.delete_retention_ms.max(0)),
            retention_ms: config.delete_retention_ms.max(0),
            removed: 0,
            next_expiry: i64::MAX,
        };
        let mut markers = TxnMarkers::default();
        // Oldest first: a crash between two swaps never leaves an older value
        // of a key whose tombstone was already removed.
        for seg in &segs[..end] {
            if seg.is_empty() {
                continue;
            }
            let Some(cleaned) = clean_segment(
                seg,
                &map.latest,
                &mut tombs,
                config.index_interval_bytes,
                max_uncompressed,
                &aborted,
                &mut markers,
            )?
            else {
                continue;
            };
            let (removed, tombstones, markers_removed, size) = (
                cleaned.records_removed,
                cleaned.tombstones_removed,
                cleaned.markers_removed,
                cleaned.size,
            );
            let before = seg.size();
            match self.swap_in(seg, cleaned, generation)? {
                Swap::Stale => {
                    if self.truncations.load(Ordering::Acquire) != generation {
                        return Ok(report);
                    }
                    continue;
                }
                Swap::Replaced => report.segments_rewritten += 1,
                Swap::Removed => report.segments_removed += 1,
            }
            report.records_removed += removed;
            report.tombstones_removed += tombstones;
            report.markers_removed += markers_removed;
            report.bytes_before += before;
            report.bytes_after += size;
        }

        let _w = self.writer.lock();
        if self.truncations.load(Ordering::Acquire) == generation {
            let offset = segs[end].base_offset;
            checkpoint::write_cleaner_offset(&self.dir, offset)?;
            self.cleaner_offset.store(offset, Ordering::Release);
            report.cleaner_offset = offset;
            self.tombstone_expiry
                .store(tombs.next_expiry, Ordering::Release);
        }
        report.cleaned = true;
        tracing::info!(
            dir = %self.dir.display(),
            rewritten = report.segments_rewritten,
            removed = report.segments_removed,
            records_removed = report.records_removed,
            tombstones_removed = report.tombstones_removed,
            cleaner_offset = report.cleaner_offset,
            "compacted log"
        );
        Ok(report)
    }

    /// Replaces `old` by its cleaned copy (or deletes it when nothing is left
    /// and it is not the first segment), under the append lock.
    fn swap_in(&self, old: &Arc<Segment>, cleaned: Cleaned, generation: u64) -> Result<Swap> {
        // Index files are written before the append lock is taken: if the swap
        // is then abandoned or interrupted, recovery finds them inconsistent
        // with the `.log` (or orphaned) and rebuilds or removes them.
        if let Some(new) = &cleaned.segment {
            new.write_indexes()?;
        }
        let _w = self.writer.lock();
        let segs = self.snapshot();
        let found = segs.iter().position(|s| Arc::ptr_eq(s, old));
        let idx = match found {
            Some(i)
                if i + 1 < segs.len() && self.truncations.load(Ordering::Acquire) == generation =>
            {
                i
            }
            _ => {
                let _ = fs::remove_file(&cleaned.cleaned_path);
                return Ok(Swap::Stale);
            }
        };
        let mut list = Vec::clone(&segs);
        let outcome = match cleaned.segment {
            None if idx > 0 => {
                list.remove(idx);
                *self.segments.write() = Arc::new(list);
                let _ = fs::remove_file(&cleaned.cleaned_path);
                old.delete_files()?;
                Swap::Removed
            }
            new => {
                let swap_path = self.dir.join(format!(
                    "{}{SWAP_SUFFIX}",
                    segment::log_file_name(old.base_offset)
                ));
                // No directory fsync between the renames: the second needs the
                // first, so a crash leaves `.cleaned`, `.swap` or the new `.log`.
                // Readers of the old segment keep its file, not the new one.
                old.detach()?;
                fs::rename(&cleaned.cleaned_path, &swap_path)
                    .map_err(|e| io_err(&cleaned.cleaned_path, e))?;
                fs::rename(&swap_path, old.log_path()).map_err(|e| io_err(&swap_path, e))?;
                checkpoint::sync_dir(&self.dir)?;
                let new = match new {
                    Some(s) => s,
                    // The first segment stays as an empty file: its name keeps the log start.
                    None => {
                        let file = OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(old.log_path())
                            .map_err(|e| io_err(old.log_path(), e))?;
                        let s = Segment::from_parts(
                            old.base_offset,
                            SegmentFile::new(&self.files, old.log_path(), file),
                            0,
                            old.base_offset,
                            Segment::new_state(),
                        );
                        s.write_indexes()?;
                        s
                    }
                };
                list[idx] = Arc::new(new);
                *self.segments.write() = Arc::new(list);
                Swap::Replaced
            }
        };
        Ok(outcome)
    }
}
