//! [`FileSlice`]: whole record batches as a byte range of a segment file, for a
//! reader that sends them without copying them into memory first (`sendfile`).
//!
//! A slice holds the segment's file open, so it stays readable after retention
//! deletes or compaction replaces the segment. A truncation of the log (a
//! follower cutting a diverged tail) can shorten the file under it; a send
//! then finds fewer bytes than the slice promised and must fail rather than pad.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// A byte range of a segment file holding whole batches.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    pos: u64,
    len: usize,
}

impl FileSlice {
    /// `len` bytes of `file` from `pos`.
    pub fn new(file: Arc<File>, pos: u64, len: usize) -> FileSlice {
        FileSlice { file, pos, len }
    }

    /// The segment file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the batches start in the file.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes of the batches.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Asks the kernel to start reading the slice into the page cache: `sendfile` runs on
    /// an async thread and would otherwise wait there for a cold range to come off disk.
    pub(crate) fn prefetch(&self) {
        if let Some(len) = std::num::NonZeroU64::new(self.len as u64) {
            // Only advice: a failure changes nothing but speed.
            let _ = rustix::fs::fadvise(
                &*self.file,
                self.pos,
                Some(len),
                rustix::fs::Advice::WillNeed,
            );
        }
    }

    /// Appends the slice's bytes to `buf` (for a connection that cannot send from a
    /// file, TLS); an error if the file no longer holds them all.
    pub fn read_into(&self, buf: &mut BytesMut) -> io::Result<()> {
        let start = buf.len();
        buf.resize(start + self.len, 0);
        self.file.read_exact_at(&mut buf[start..], self.pos)
    }

    /// The slice's bytes, read into memory.
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(self.len);
        self.read_into(&mut buf)?;
        Ok(buf.freeze())
    }
}

/// Batches read from the log for a fetch as file slices: the same batches
/// [`crate::Log::read`] would copy, in order, possibly from several segments.
#[derive(Debug, Clone, Default)]
pub struct SliceRead {
    /// One slice per segment read, in offset order (empty when nothing was read).
    pub slices: Vec<FileSlice>,
    /// Total bytes of the slices.
    pub len: usize,
    /// Offset after the last batch read (the requested offset when none).
    pub next_offset: i64,
    /// Log end offset (next offset to be assigned) at the time of the read.
    pub log_end_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}
