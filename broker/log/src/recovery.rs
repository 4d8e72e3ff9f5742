//! Opening a log directory: crash recovery. Every segment's batch headers are
//! scanned (to rebuild indexes in memory and restore idempotent-producer
//! state); the active segment and every segment at or after the recovery point
//! are also CRC-checked. The first torn or corrupt batch there and everything
//! after it is cut off. An interrupted compaction swap is finished or rolled
//! back first (see [`swap::finish_interrupted_swaps`]). Index files that are missing or differ from the
//! rebuilt ones are rewritten; stray temp and orphan index files are removed.
//! The leader epoch checkpoint is clamped to the recovered log and checked
//! against every batch's epoch; when missing, damaged or inconsistent it is
//! rebuilt from the batch headers.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::HEADER_LEN;
use crate::checkpoint::{self, RecoveryPoint, TMP_SUFFIX};
use crate::config::LogConfig;
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{io_err, Error};
use crate::files::{FileCache, SegmentFile};
use crate::index::{IndexValidator, OffsetIndex, TimeIndex, OFFSET_ENTRY, TIME_ENTRY};
use crate::producer_state::{ProducerBatch, ProducerStateManager};
use crate::segment::{self, Segment};
use crate::swap;
use crate::txn_state::TxnState;

/// What recovery did when the log was opened; the server logs it.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Segments whose batches were CRC-scanned.
    pub segments_scanned: usize,
    /// Bytes cut off a torn or corrupt tail (0 when the log was clean).
    pub truncated_bytes: u64,
    /// The segment file that was truncated, and the reason, if any.
    pub truncation: Option<(PathBuf, String)>,
    /// Index files rebuilt because they were missing or damaged.
    pub indexes_rebuilt: usize,
    /// The leader epoch checkpoint was missing, damaged or inconsistent with
    /// the batch headers and was rebuilt from them.
    pub epoch_cache_rebuilt: bool,
}

/// Everything `Log::open` needs from the directory.
pub(crate) struct Opened {
    pub(crate) segments: Vec<Arc<Segment>>,
    pub(crate) producers: ProducerStateManager,
    pub(crate) txns: TxnState,
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    pub(crate) recovery_point: i64,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) report: RecoveryReport,
}

/// Consecutive batches with the same partition leader epoch, in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochRun {
    pub(crate) epoch: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

/// Extends `runs` with one batch.
pub(crate) fn push_run(runs: &mut Vec<EpochRun>, epoch: i32, base_offset: i64, last_offset: i64) {
    match runs.last_mut() {
        Some(r) if r.epoch == epoch => r.last_offset = last_offset,
        _ => runs.push(EpochRun {
            epoch,
            base_offset,
            last_offset,
        }),
    }
}

/// True when `cache` gives every batch at or after `log_start` its header epoch.
fn epochs_consistent(cache: &LeaderEpochCache, runs: &[EpochRun], log_start: i64) -> bool {
    runs.iter()
        .filter(|r| r.epoch >= 0 && r.last_offset >= log_start)
        .all(|r| {
            let from = r.base_offset.max(log_start);
            let Some(entry) = cache.epoch_at(from) else {
                return false;
            };
            // No other epoch may start inside the run.
            entry.epoch == r.epoch
                && cache
                    .epoch_at(r.last_offset)
                    .is_some_and(|e| e.epoch == r.epoch)
        })
}

/// The leader epoch cache of a recovered log: the checkpoint clamped to
/// `[log_start, log_end)` when it agrees with the batch headers, else rebuilt
/// from them. Returns the cache and whether it was rebuilt.
fn recover_epochs(
    dir: &Path,
    runs: &[EpochRun],
    log_start: i64,
    log_end: i64,
) -> Result<(LeaderEpochCache, bool), Error> {
    let loaded = checkpoint::read_leader_epochs(dir).and_then(LeaderEpochCache::from_entries);
    let rebuilt =
        || LeaderEpochCache::rebuild(runs.iter().map(|r| (r.epoch, r.base_offset)), log_start);
    let (cache, rebuild, changed) = match loaded {
        Some(mut cache) => {
            // Entries past the end were written ahead of data a crash lost.
            let mut changed = cache.truncate_from_end(log_end);
            changed |= cache.truncate_from_start(log_start);
            if epochs_consistent(&cache, runs, log_start) {
                (cache, false, changed)
            } else {
                tracing::warn!(dir = %dir.display(), "leader epoch checkpoint disagrees with the batch headers; rebuilding it");
                (rebuilt(), true, true)
            }
        }
        None => {
            let damaged = dir.join(checkpoint::LEADER_EPOCH_FILE).exists();
            if damaged {
                tracing::warn!(dir = %dir.display(), "leader epoch checkpoint is damaged; rebuilding it from the batch headers");
            }
            // A new, empty log has nothing to rebuild: not reported, and
            // nothing written (a missing file reads as the same empty cache).
            let rebuild = damaged || !runs.is_empty();
            (rebuilt(), rebuild, rebuild)
        }
    };
    if changed {
        checkpoint::write_leader_epochs(dir, cache.entries())?;
    }
    Ok((cache, rebuild))
}

enum FileKind {
    Log,
    Index,
    TimeIndex,
}

/// Largest index file a segment of `segment_len` bytes can have: every entry
/// stands for a distinct batch (at least a header long), plus the entry a
/// roll or close adds. A larger file is damaged and rebuilt without being read.
fn max_index_bytes(segment_len: u64, entry_len: usize) -> u64 {
    (segment_len / HEADER_LEN as u64 + 2).saturating_mul(entry_len as u64)
}

fn parse_name(name: &str) -> Option<(i64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse::<i64>().ok()?;
    let kind = match ext {
        "log" => FileKind::Log,
        "index" => FileKind::Index,
        "timeindex" => FileKind::TimeIndex,
        _ => return None,
    };
    Some((base, kind))
}

/// Opens and recovers the log in `dir`.
pub(crate) fn open_dir(
    files: &Arc<FileCache>,
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Opened, Error> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    swap::finish_interrupted_swaps(dir)?;
    let mut bases = BTreeSet::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX) {
            // A crash interrupted an atomic write; the target file is intact.
            let _ = fs::remove_file(entry.path());
            continue;
        }
        match parse_name(&name) {
            Some((base, FileKind::Log)) => {
                bases.insert(base);
            }
            Some((base, FileKind::Index | FileKind::TimeIndex)) => {
                index_files.push((base, entry.path()))
            }
            None => {}
        }
    }
    for (base, path) in index_files {
        if !bases.contains(&base) {
            // Left behind by a segment deletion interrupted by a crash.
            let _ = fs::remove_file(path);
        }
    }
    let rp_file = checkpoint::read_recovery_point(dir);
    let rp = rp_file.unwrap_or_default();
    let log_start_cp = checkpoint::read_log_start(dir);
    // A new log: its checkpoints would say what their absence says.
    let fresh = bases.is_empty() && rp_file.is_none() && log_start_cp.is_none();
    let bases: Vec<i64> = bases.into_iter().collect();
    let interval = config.index_interval_bytes;

    let mut report = RecoveryReport::default();
    let mut producers = ProducerStateManager::default();
    let mut txns = TxnState::default();
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut to_rewrite: Vec<i64> = Vec::new();
    let mut delete_rest_from: Option<usize> = None;
    let mut runs: Vec<EpochRun> = Vec::new();

    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let log_path = dir.join(segment::log_file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| io_err(&log_path, e))?;
        let len = file.metadata().map_err(|e| io_err(&log_path, e))?.len();
        let verify = is_last || bases.get(i + 1).is_none_or(|&next| next > rp.offset);
        let mut state = Segment::new_state();
        let mut first_ts: Option<i64> = None;
        let loaded_idx = checkpoint::read_at_most(
            &dir.join(segment::index_file_name(base)),
            max_index_bytes(len, OFFSET_ENTRY),
        )
        .and_then(|b| OffsetIndex::decode(&b));
        let loaded_tidx = checkpoint::read_at_most(
            &dir.join(segment::time_index_file_name(base)),
            max_index_bytes(len, TIME_ENTRY),
        )
        .and_then(|b| TimeIndex::decode(&b));
        let mut validator = IndexValidator::new(loaded_idx, loaded_tidx);
        let outcome = segment::scan_file(&file, base, len, verify, |m| {
            state.on_batch(base, m.pos, &m.header, interval);
            validator.on_batch(
                m.pos,
                segment::rel_offset(base, m.header.base_offset),
                m.header.max_timestamp,
            );
            if first_ts.is_none() {
                first_ts = Some(m.header.max_timestamp);
            }
            if let Some(pb) = ProducerBatch::from_header(&m.header) {
                producers.record(&pb, m.header.base_offset, m.header.last_offset());
            }
            if m.header.is_control() && m.header.producer_id >= 0 {
                producers.mark(m.header.producer_id, m.header.producer_epoch);
            }
            txns.observe(&m.header, m.control);
            push_run(
                &mut runs,
                m.header.partition_leader_epoch,
                m.header.base_offset,
                m.header.last_offset(),
            );
        })
        .map_err(|e| io_err(&log_path, e))?;
        if verify {
            report.segments_scanned += 1;
        }
        state.push_time_entry(base);
        if let Some(stop) = &outcome.stop {
            let cut = len - outcome.valid_len;
            tracing::warn!(
                dir = %dir.display(),
                file = %log_path.display(),
                position = stop.pos,
                bytes_truncated = cut,
                valid_bytes = outcome.valid_len,
                reason = %stop.reason,
                "recovery truncated {cut} bytes at position {} of {}: {}",
                stop.pos,
                log_path.display(),
                stop.reason
            );
            file.set_len(outcome.valid_len)
                .map_err(|e| io_err(&log_path, e))?;
            file.sync_all().map_err(|e| io_err(&log_path, e))?;
            report.truncated_bytes += cut;
            if report.truncation.is_none() {
                report.truncation = Some((log_path.clone(), stop.reason.clone()));
            }
        }
        // Index files on disk are kept when consistent with the batches (they
        // may be sparser or denser than this config would build); otherwise
        // the rebuilt ones replace them. The active segment's files are only
        // expected to be current after a clean close.
        let (valid_idx, valid_tidx) = validator.finish(state.max_timestamp);
        // An empty active segment is closed without index files.
        let expect_files = !is_last || (rp.clean && outcome.valid_len > 0);
        if expect_files {
            report.indexes_rebuilt +=
                usize::from(valid_idx.is_none()) + usize::from(valid_tidx.is_none());
        }
        let needs_rewrite = valid_idx.is_none() || valid_tidx.is_none();
        if let Some(idx) = valid_idx {
            state.index = idx;
        }
        if let Some(tidx) = valid_tidx {
            state.time_index = tidx;
        }
        if needs_rewrite {
            to_rewrite.push(base);
        }
        state.first_append_ms = first_ts.map(|t| if t >= 0 { t } else { now_ms });
        // What recovery keeps is made durable before the checkpoint moves
        // past it (bytes the previous process wrote may be in the page cache
        // only). Done here, while the file is surely open: the file cache
        // may close it before the loop ends. After a clean close everything
        // was fsynced then, and segments below the recovery point before.
        if verify && !rp.clean {
            file.sync_data().map_err(|e| io_err(&log_path, e))?;
        }
        let seg = Segment::from_parts(
            base,
            SegmentFile::new(files, &log_path, file),
            outcome.valid_len,
            outcome.next_offset,
            state,
        );
        segments.push(Arc::new(seg));
        if outcome.stop.is_some() && verify && !is_last {
            delete_rest_from = Some(i + 1);
            break;
        }
    }
    if let Some(from) = delete_rest_from {
        for &base in bases[from..].iter().rev() {
            let path = dir.join(segment::log_file_name(base));
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            tracing::warn!(file = %path.display(), bytes = len, "recovery truncated the log: deleting segment after a corrupt batch");
            report.truncated_bytes += len;
            for name in [
                segment::log_file_name(base),
                segment::index_file_name(base),
                segment::time_index_file_name(base),
            ] {
                let p = dir.join(name);
                if let Err(e) = fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(io_err(&p, e));
                    }
                }
            }
        }
    }

    // An empty segment starting below the end of the one before it is a
    // leftover of an interrupted roll; keeping it would move the end offset back.
    let mut kept: Vec<Arc<Segment>> = Vec::with_capacity(segments.len());
    for seg in segments {
        if let Some(prev) = kept.last() {
            if seg.is_empty() && seg.base_offset < prev.next_offset() {
                tracing::warn!(file = %seg.log_path().display(), "removing an empty segment left by an interrupted roll");
                seg.delete_files()?;
                continue;
            }
        }
        kept.push(seg);
    }
    let mut segments = kept;
    if segments.is_empty() {
        let base = log_start_cp.unwrap_or(0);
        segments.push(Arc::new(Segment::create(files, dir, base)?));
    }
    let last = segments.len() - 1;
    for seg in &segments[..last] {
        if to_rewrite.contains(&seg.base_offset) {
            seg.write_indexes()?;
        }
    }
    for seg in &segments {
        seg.mark_synced();
    }
    let log_end = segments[last].next_offset();
    let first_base = segments[0].base_offset;
    let log_start = log_start_cp
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end);
    let recovery_point = segments[last].base_offset;
    let (epochs, epochs_rebuilt) = recover_epochs(dir, &runs, log_start, log_end)?;
    report.epoch_cache_rebuilt = epochs_rebuilt;
    // Marks the log open (not clean) before anything is written to it. A new
    // log's missing file reads as the same point (0, not clean).
    if !fresh {
        checkpoint::write_recovery_point(
            dir,
            RecoveryPoint {
                offset: recovery_point,
                clean: false,
            },
        )?;
    }
    txns.trim_to(log_start);
    Ok(Opened {
        segments,
        producers,
        txns,
        log_start,
        log_end,
        recovery_point,
        epochs,
        report,
    })
}

/// Rebuilds idempotent-producer and transaction state from the batch headers of `segments`.
pub(crate) fn rebuild_producers(
    segments: &[Arc<Segment>],
) -> Result<(ProducerStateManager, TxnState), Error> {
    let mut producers = ProducerStateManager::default();
    let mut txns = TxnState::default();
    for seg in segments {
        segment::scan_file(&*seg.file()?, seg.base_offset, seg.size(), false, |m| {
            if let Some(pb) = ProducerBatch::from_header(&m.header) {
                producers.record(&pb, m.header.base_offset, m.header.last_offset());
            }
            if m.header.is_control() && m.header.producer_id >= 0 {
                producers.mark(m.header.producer_id, m.header.producer_epoch);
            }
            txns.observe(&m.header, m.control);
        })
        .map_err(|e| io_err(seg.log_path(), e))?;
    }
    Ok((producers, txns))
}
