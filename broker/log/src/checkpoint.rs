//! Small per-partition checkpoint files (recovery point + clean-shutdown flag,
//! log start offset), written atomically: temp file, fsync, rename, fsync dir.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::Error;

/// File holding the recovery point and the clean-shutdown flag.
pub(crate) const RECOVERY_FILE: &str = "recovery-point.checkpoint";
/// File holding the log start offset (DeleteRecords).
pub(crate) const LOG_START_FILE: &str = "log-start-offset.checkpoint";
/// File holding the cleaner checkpoint (offsets below it are compacted).
pub(crate) const CLEANER_FILE: &str = "cleaner-offset.checkpoint";
/// Suffix of temp files; any found on open are leftovers of a crash.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

const RECOVERY_HEADER: &str = "runnel-recovery-point v1";
const LOG_START_HEADER: &str = "runnel-log-start-offset v1";
const CLEANER_HEADER: &str = "runnel-cleaner-offset v1";

/// What the recovery checkpoint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RecoveryPoint {
    /// Every segment wholly below this offset is durable with valid indexes.
    pub(crate) offset: i64,
    /// The log was closed cleanly.
    pub(crate) clean: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
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
    let text = fs::read_to_string(dir.join(RECOVERY_FILE)).ok()?;
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
    let text = fs::read_to_string(dir.join(LOG_START_FILE)).ok()?;
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
    let text = fs::read_to_string(dir.join(CLEANER_FILE)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != CLEANER_HEADER {
        return None;
    }
    lines.next()?.trim().parse::<i64>().ok().filter(|o| *o >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
