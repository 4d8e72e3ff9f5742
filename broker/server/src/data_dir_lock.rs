//! The exclusive lock on `data_dir/.lock` that keeps two brokers from opening
//! the same data directory. It is an OS file lock (flock on Unix), so the
//! kernel releases it when the holding process exits, even after kill -9.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::errors::Error;

/// Name of the lock file inside the data directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a data directory, released when dropped.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    // Holding the open file holds the lock.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting and writes this process's pid into the
    /// lock file; fails with [`Error::DataDirLocked`] if another holder has it.
    pub(crate) fn acquire(data_dir: &Path) -> Result<DataDirLock, Error> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        // No truncate here: the file holds the current holder's pid until we own the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse::<u32>().ok());
                return Err(Error::DataDirLocked {
                    dir: data_dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}
