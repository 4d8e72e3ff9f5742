//! Small file helpers for the Raft storage: atomic replacement of a whole file
//! (write a temporary, fsync, rename, fsync the directory) and framed records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new content. With `durable` the new content is on disk before returning;
/// without it only the atomicity holds (used for hints that may go stale).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        sync_dir(path)?;
    }
    Ok(())
}

/// Fsyncs the directory holding `path`, so a rename or create in it is durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Runs blocking file I/O (writes with fsync) from async storage code without
/// stalling the other tasks of a multi-threaded runtime's worker.
pub(crate) fn blocking<T>(io: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(io)
        }
        _ => io(),
    }
}

/// Reads a whole file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Size of a record header: payload length and CRC-32C, both little-endian u32.
pub(crate) const RECORD_HEADER: usize = 8;

/// Appends one record (`len`, `crc32c(payload)`, `payload`) to `out`.
pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes the record at the start of `buf`: its payload and total size, or
/// `None` when the record is incomplete or its checksum does not match (a
/// torn or corrupt tail).
pub(crate) fn decode_record(buf: &[u8]) -> Option<(&[u8], usize)> {
    let header = buf.get(..RECORD_HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = buf.get(RECORD_HEADER..RECORD_HEADER.checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, RECORD_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_torn_tail_detection() {
        let mut buf = Vec::new();
        encode_record(b"hello", &mut buf).unwrap();
        encode_record(b"world", &mut buf).unwrap();
        let (first, n) = decode_record(&buf).unwrap();
        assert_eq!(first, b"hello");
        let (second, m) = decode_record(&buf[n..]).unwrap();
        assert_eq!(second, b"world");
        assert_eq!(n + m, buf.len());
        // A torn tail (partial record) and a flipped byte are both rejected.
        assert!(decode_record(&buf[n..buf.len() - 1]).is_none());
        let mut corrupt = buf.clone();
        corrupt[n + RECORD_HEADER] ^= 1;
        assert!(decode_record(&corrupt[n..]).is_none());
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote.json");
        assert_eq!(read_optional(&path).unwrap(), None);
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", false).unwrap();
        assert_eq!(read_optional(&path).unwrap().unwrap(), b"two");
    }
}
