//! Sparse per-segment indexes kept in memory and written out on roll/close.
//!
//! The offset index maps a batch's base offset (relative to the segment base)
//! to its file position; the time index maps the largest timestamp seen so far
//! to the relative base offset of the batch that holds it. Both are strictly
//! ordered, so lookups are binary searches.

/// Bytes per offset index entry on disk: relative offset u32, position u32.
pub(crate) const OFFSET_ENTRY: usize = 8;
/// Bytes per time index entry on disk: timestamp i64, relative offset u32.
pub(crate) const TIME_ENTRY: usize = 12;

/// Offset → position index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    pub(crate) entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Adds an entry if it keeps both columns strictly increasing.
    pub(crate) fn push(&mut self, rel_offset: u32, position: u32) {
        if let Some(&(r, p)) = self.entries.last() {
            if rel_offset <= r || position <= p {
                return;
            }
        }
        self.entries.push((rel_offset, position));
    }

    /// File position of the last indexed batch whose base is <= `rel_offset` (0 if none).
    pub(crate) fn lookup(&self, rel_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(r, _)| r <= rel_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes an index file; `None` when its size or ordering is impossible.
    pub(crate) fn decode(bytes: &[u8]) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY) {
            return None;
        }
        let mut idx = OffsetIndex::default();
        for c in bytes.chunks_exact(OFFSET_ENTRY) {
            let r = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let p = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if let Some(&(lr, lp)) = idx.entries.last() {
                if r <= lr || p <= lp {
                    return None;
                }
            }
            idx.entries.push((r, p));
        }
        Some(idx)
    }
}

/// Timestamp → relative offset index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    pub(crate) entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if its timestamp is larger than the last one.
    pub(crate) fn push(&mut self, timestamp: i64, rel_offset: u32) {
        if let Some(&(t, r)) = self.entries.last() {
            if timestamp <= t || rel_offset < r {
                return;
            }
        }
        self.entries.push((timestamp, rel_offset));
    }

    /// Relative offset to start scanning from for the first timestamp >= `ts`:
    /// every batch before the returned one has a max timestamp < `ts`.
    pub(crate) fn lookup(&self, ts: i64) -> Option<u32> {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1].1)
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    /// Decodes a time index file; `None` when its size or ordering is impossible.
    pub(crate) fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY) {
            return None;
        }
        let mut idx = TimeIndex::default();
        for c in bytes.chunks_exact(TIME_ENTRY) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            let t = i64::from_be_bytes(t);
            let r = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(&(lt, lr)) = idx.entries.last() {
                if t <= lt || r < lr {
                    return None;
                }
            }
            idx.entries.push((t, r));
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_floor_entry() {
        let mut i = OffsetIndex::default();
        i.push(0, 0);
        i.push(10, 100);
        i.push(20, 200);
        i.push(15, 300); // out of order: ignored
        assert_eq!(i.lookup(5), 0);
        assert_eq!(i.lookup(10), 100);
        assert_eq!(i.lookup(19), 100);
        assert_eq!(i.lookup(1000), 200);
        assert_eq!(OffsetIndex::decode(&i.encode()), Some(i));
    }

    #[test]
    fn garbled_offset_index_is_rejected() {
        assert_eq!(OffsetIndex::decode(&[1, 2, 3]), None);
        let bad = [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 10];
        assert_eq!(OffsetIndex::decode(&bad), None);
    }

    #[test]
    fn time_index_lookup_returns_last_entry_strictly_below() {
        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(200, 5);
        t.push(150, 9); // not larger: ignored
        assert_eq!(t.lookup(50), None);
        assert_eq!(t.lookup(100), None);
        assert_eq!(t.lookup(101), Some(0));
        assert_eq!(t.lookup(500), Some(5));
        assert_eq!(TimeIndex::decode(&t.encode()), Some(t));
    }
}

/// Checks loaded index files against the batches of a segment, fed in file
/// order: every offset entry must point at a batch start with its base offset,
/// every time entry at a batch holding the max timestamp so far, and the last
/// time entry must carry the segment's max timestamp.
#[derive(Debug)]
pub(crate) struct IndexValidator {
    offset: Option<(OffsetIndex, usize)>,
    time: Option<(TimeIndex, usize)>,
    running_max: i64,
}

impl IndexValidator {
    pub(crate) fn new(offset: Option<OffsetIndex>, time: Option<TimeIndex>) -> IndexValidator {
        IndexValidator {
            offset: offset.map(|i| (i, 0)),
            time: time.map(|t| (t, 0)),
            running_max: -1,
        }
    }

    /// Accounts for the batch at `pos` with relative base offset `rel` and max timestamp `max_ts`.
    pub(crate) fn on_batch(&mut self, pos: u64, rel: u32, max_ts: i64) {
        self.running_max = self.running_max.max(max_ts);
        if let Some((idx, j)) = &mut self.offset {
            let mut ok = true;
            while let Some(&(r, p)) = idx.entries.get(*j) {
                if u64::from(p) > pos {
                    break;
                }
                ok &= u64::from(p) == pos && r == rel;
                *j += 1;
            }
            if !ok {
                self.offset = None;
            }
        }
        if let Some((tidx, j)) = &mut self.time {
            let mut ok = true;
            while let Some(&(t, r)) = tidx.entries.get(*j) {
                if r > rel {
                    break;
                }
                ok &= r == rel && t == max_ts && t == self.running_max;
                *j += 1;
            }
            if !ok {
                self.time = None;
            }
        }
    }

    /// The loaded indexes that proved consistent with the whole segment.
    pub(crate) fn finish(self, segment_max_ts: i64) -> (Option<OffsetIndex>, Option<TimeIndex>) {
        let offset = self
            .offset
            .filter(|(i, j)| *j == i.entries.len())
            .map(|(i, _)| i);
        let time = self
            .time
            .filter(|(t, j)| *j == t.entries.len())
            .map(|(t, _)| t)
            .filter(|t| {
                t.entries
                    .last()
                    .map_or(segment_max_ts < 0, |&(ts, _)| ts == segment_max_ts)
            });
        (offset, time)
    }
}
