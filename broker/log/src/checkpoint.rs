//! Small per-partition checkpoint files (recovery point + clean-shutdown flag,
//! log start offset, cleaner offset, leader epochs, high watermark), written
//! atomically: temp file, fsync, rename, fsync dir.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::epoch_cache::EpochEntry;
use crate::error::{io_err, Error};

/// File holding the recovery point and the clean-shutdown flag.
pub(crate) const RECOVERY_FILE: &str = "recovery-point.checkpoint";
/// File holding the log start offset (DeleteRecords).
pub(crate) const LOG_START_FILE: &str = "log-start-offset.checkpoint";
/// File holding the cleaner checkpoint (offsets below it are compacted).
pub(crate) const CLEANER_FILE: &str = "cleaner-offset.checkpoint";
/// File holding the leader epoch cache.
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch.checkpoint";
/// File holding the high watermark.
pub(crate) const HIGH_WATERMARK_FILE: &str = "high-watermark.checkpoint";
/// Suffix of temp files; any found on open are leftovers of a crash.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

const RECOVERY_HEADER: &str = "runnel-recovery-point v1";
const LOG_START_HEADER: &str = "runnel-log-start-offset v1";
const CLEANER_HEADER: &str = "runnel-cleaner-offset v1";
const LEADER_EPOCH_HEADER: &str = "runnel-leader-epoch v1";
const HIGH_WATERMARK_HEADER: &str = "runnel-high-watermark v1";
/// Largest checkpoint file read; a larger one is damaged (the leader epoch
/// file, the largest, takes about 30 bytes per epoch).
const MAX_CHECKPOINT_BYTES: u64 = 16 << 20;

/// What the recovery checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RecoveryPoint {
    /// Every segment wholly below this offset is durable with valid indexes.
    pub(crate) offset: i64,
    /// The log was closed cleanly.
    pub(crate) clean: bool,
}

/// Reads a whole file of at most `max` bytes; `None` when it is missing,
/// unreadable or larger (a damaged file is then not read into memory).
pub(crate) fn read_at_most(path: &Path, max: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)
        .ok()?
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .ok()?;
    if out.len() as u64 > max {
        tracing::warn!(file = %path.display(), max, "ignoring a file larger than it can be");
        return None;
    }
    Some(out)
}

/// A checkpoint file as text; `None` when missing, unreadable, too large or not UTF-8.
fn read_text(path: &Path) -> Option<String> {
    String::from_utf8(read_at_most(path, MAX_CHECKPOINT_BYTES)?).ok()
}

/// Writes `contents` to `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, &dst)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&dst, e));
    }
    sync_dir(dir)
}

/// Fsyncs a directory so renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Writes the recovery checkpoint.
pub(crate) fn write_recovery_point(dir: &Path, rp: RecoveryPoint) -> Result<(), Error> {
    let body = format!("{RECOVERY_HEADER}\n{} {}\n", rp.offset, u8::from(rp.clean));
    write_atomic(dir, RECOVERY_FILE, body.as_bytes())
}

/// Reads the recovery checkpoint; `None` when missing or unreadable (scan everything).
pub(crate) fn read_recovery_point(dir: &Path) -> Option<RecoveryPoint> {
    let text = read_text(&dir.join(RECOVERY_FILE))?;
    let mut lines = text.lines();
    if lines.next()? != RECOVERY_HEADER {
        return None;
    }
    let mut parts = lines.next()?.split(' ');
    let offset = parts.next()?.parse::<i64>().ok()?;
    let clean = match parts.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    (offset >= 0).then_some(RecoveryPoint { offset, clean })
}

/// Writes the log start offset checkpoint.
pub(crate) fn write_log_start(dir: &Path, offset: i64) -> Result<(), Error> {
    let body = format!("{LOG_START_HEADER}\n{offset}\n");
    write_atomic(dir, LOG_START_FILE, body.as_bytes())
}

/// Reads the log start offset checkpoint; `None` when missing or unreadable.
pub(crate) fn read_log_start(dir: &Path) -> Option<i64> {
    let text = read_text(&dir.join(LOG_START_FILE))?;
    let mut lines = text.lines();
    if lines.next()? != LOG_START_HEADER {
        return None;
    }
    lines.next()?.trim().parse::<i64>().ok().filter(|o| *o >= 0)
}

/// Writes the cleaner checkpoint.
pub(crate) fn write_cleaner_offset(dir: &Path, offset: i64) -> Result<(), Error> {
    let body = format!("{CLEANER_HEADER}\n{offset}\n");
    write_atomic(dir, CLEANER_FILE, body.as_bytes())
}

/// Reads the cleaner checkpoint; `None` when missing or unreadable (everything is dirty).
pub(crate) fn read_cleaner_offset(dir: &Path) -> Option<i64> {
    let text = read_text(&dir.join(CLEANER_FILE))?;
    let mut lines = text.lines();
    if lines.next()? != CLEANER_HEADER {
        return None;
    }
    lines.next()?.trim().parse::<i64>().ok().filter(|o| *o >= 0)
}

/// Writes the leader epoch cache: header, entry count, then `<epoch> <start offset>` per line.
pub(crate) fn write_leader_epochs(dir: &Path, entries: &[EpochEntry]) -> Result<(), Error> {
    let mut body = format!("{LEADER_EPOCH_HEADER}\n{}\n", entries.len());
    for e in entries {
        body.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    write_atomic(dir, LEADER_EPOCH_FILE, body.as_bytes())
}

/// Reads the leader epoch cache; `None` when missing or damaged (wrong
/// header, count not matching the lines, unparsable line, trailing data).
pub(crate) fn read_leader_epochs(dir: &Path) -> Option<Vec<EpochEntry>> {
    let text = read_text(&dir.join(LEADER_EPOCH_FILE))?;
    if !text.ends_with('\n') {
        return None;
    }
    let mut lines = text.lines();
    if lines.next()? != LEADER_EPOCH_HEADER {
        return None;
    }
    let count = lines.next()?.parse::<usize>().ok()?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for line in lines {
        let (epoch, start) = line.split_once(' ')?;
        entries.push(EpochEntry {
            epoch: epoch.parse().ok()?,
            start_offset: start.parse().ok()?,
        });
    }
    (entries.len() == count).then_some(entries)
}

/// Writes the high watermark checkpoint.
pub(crate) fn write_high_watermark(dir: &Path, offset: i64) -> Result<(), Error> {
    let body = format!("{HIGH_WATERMARK_HEADER}\n{offset}\n");
    write_atomic(dir, HIGH_WATERMARK_FILE, body.as_bytes())
}

/// Reads the high watermark checkpoint; `None` when missing or unreadable.
pub(crate) fn read_high_watermark(dir: &Path) -> Option<i64> {
    let text = read_text(&dir.join(HIGH_WATERMARK_FILE))?;
    let mut lines = text.lines();
    if lines.next()? != HIGH_WATERMARK_HEADER {
        return None;
    }
    lines.next()?.trim().parse::<i64>().ok().filter(|o| *o >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_larger_than_the_limit_are_not_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        assert_eq!(read_at_most(&path, 4), None);
        fs::write(&path, b"1234").unwrap();
        assert_eq!(read_at_most(&path, 4), Some(b"1234".to_vec()));
        assert_eq!(read_at_most(&path, 3), None);
        // A checkpoint with valid contents followed by 16 MiB of padding is damaged.
        let f = File::create(d.path().join(LOG_START_FILE)).unwrap();
        (&f).write_all(format!("{LOG_START_HEADER}\n7\n").as_bytes())
            .unwrap();
        assert_eq!(read_log_start(d.path()), Some(7));
        f.set_len(MAX_CHECKPOINT_BYTES + 1).unwrap();
        assert_eq!(read_log_start(d.path()), None);
    }

    #[test]
    fn checkpoints_round_trip_and_garbage_reads_as_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_recovery_point(d.path()), None);
        write_recovery_point(
            d.path(),
            RecoveryPoint {
                offset: 42,
                clean: true,
            },
        )
        .unwrap();
        assert_eq!(
            read_recovery_point(d.path()),
            Some(RecoveryPoint {
                offset: 42,
                clean: true
            })
        );
        write_log_start(d.path(), 7).unwrap();
        write_cleaner_offset(d.path(), 9).unwrap();
        assert_eq!(read_cleaner_offset(d.path()), Some(9));
        assert_eq!(read_log_start(d.path()), Some(7));
        fs::write(d.path().join(LOG_START_FILE), b"\xff\x00junk").unwrap();
        assert_eq!(read_log_start(d.path()), None);
        assert!(!d
            .path()
            .join(format!("{RECOVERY_FILE}{TMP_SUFFIX}"))
            .exists());
    }

    #[test]
    fn leader_epochs_and_high_watermark_round_trip_and_damage_reads_as_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_leader_epochs(d.path()), None);
        let entries = vec![
            EpochEntry {
                epoch: 1,
                start_offset: 0,
            },
            EpochEntry {
                epoch: 3,
                start_offset: 17,
            },
        ];
        write_leader_epochs(d.path(), &entries).unwrap();
        assert_eq!(read_leader_epochs(d.path()), Some(entries.clone()));
        write_leader_epochs(d.path(), &[]).unwrap();
        assert_eq!(read_leader_epochs(d.path()), Some(vec![]));
        let path = d.path().join(LEADER_EPOCH_FILE);
        write_leader_epochs(d.path(), &entries).unwrap();
        let full = fs::read(&path).unwrap();
        // A torn file (count says 2, one line left) is damaged.
        fs::write(&path, &full[..full.len() - 5]).unwrap();
        assert_eq!(read_leader_epochs(d.path()), None);
        fs::write(&path, b"runnel-leader-epoch v1\n1\n1 x\n").unwrap();
        assert_eq!(read_leader_epochs(d.path()), None);
        assert_eq!(read_high_watermark(d.path()), None);
        write_high_watermark(d.path(), 12).unwrap();
        assert_eq!(read_high_watermark(d.path()), Some(12));
    }
}
