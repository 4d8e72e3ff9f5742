//! Crash-safe replacement of a segment by a rewritten one (compaction).
//!
//! A cleaned segment is written to `<base>.log.cleaned` and fsynced, renamed
//! to `<base>.log.swap`, then renamed over `<base>.log` (the directory fsynced
//! after that). `rename` replaces atomically, so at every moment `<base>.log`
//! is wholly the old or wholly the new segment. On open, `.cleaned` files are
//! incomplete and deleted; a `.swap` file is complete and is renamed over its
//! `.log` ([`finish_interrupted_swaps`]).

use std::fs;
use std::io;
use std::path::Path;

use crate::checkpoint;
use crate::error::{io_err, Result};

/// Suffix of a compacted segment still being written (deleted on open).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a complete compacted segment about to replace its `.log` (finished on open).
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Completes or rolls back compaction swaps interrupted by a crash: a
/// `.cleaned` file may be partial and is deleted; a `.swap` file was fsynced
/// before it got that name, so it replaces its `.log` (whose index files are
/// deleted so recovery rebuilds them from the new contents).
pub(crate) fn finish_interrupted_swaps(dir: &Path) -> Result<()> {
    let mut touched = false;
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::warn!(file = %path.display(), "removing a partial compacted segment left by a crash");
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            touched = true;
        } else if let Some(target) = name.strip_suffix(SWAP_SUFFIX) {
            let Some(stem) = target.strip_suffix(".log") else {
                continue;
            };
            let target_path = dir.join(target);
            if target_path.exists() {
                tracing::warn!(file = %target_path.display(), "finishing a compaction swap interrupted by a crash");
                fs::rename(&path, &target_path).map_err(|e| io_err(&path, e))?;
                for ext in ["index", "timeindex"] {
                    let p = dir.join(format!("{stem}.{ext}"));
                    if let Err(e) = fs::remove_file(&p) {
                        if e.kind() != io::ErrorKind::NotFound {
                            return Err(io_err(&p, e));
                        }
                    }
                }
            } else {
                // The segment itself was deleted (retention): do not resurrect it.
                tracing::warn!(file = %path.display(), "removing a compacted segment whose original is gone");
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
            touched = true;
        }
    }
    if touched {
        checkpoint::sync_dir(dir)?;
    }
    Ok(())
}
