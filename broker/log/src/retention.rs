//! Retention policy (pure): which of the oldest closed segments to delete for
//! `retention.ms` and `retention.bytes`. Only a prefix of the closed segments
//! is ever chosen, and never the active (last) segment.

/// What the policy needs to know about one segment, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) size: u64,
    /// Largest record timestamp in the segment (file mtime when it has none).
    pub(crate) timestamp: i64,
}

/// Number of leading segments to delete. `segments` includes the active
/// segment as its last element.
pub(crate) fn segments_to_delete(
    segments: &[SegmentInfo],
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> usize {
    let closed = segments.len().saturating_sub(1);
    let mut n = 0;
    if retention_ms >= 0 {
        while n < closed && now_ms.saturating_sub(segments[n].timestamp) > retention_ms {
            n += 1;
        }
    }
    if retention_bytes >= 0 {
        let limit = retention_bytes as u64;
        let mut total: u64 = segments[n..].iter().map(|s| s.size).sum();
        // Like Kafka: delete a segment only if what remains is still >= the limit.
        while n < closed && total > limit && total - segments[n].size >= limit {
            total -= segments[n].size;
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(size: u64, timestamp: i64) -> SegmentInfo {
        SegmentInfo { size, timestamp }
    }

    #[test]
    fn time_retention_deletes_expired_prefix_but_not_active() {
        let s = [seg(10, 100), seg(10, 200), seg(10, 900), seg(10, 50)];
        assert_eq!(segments_to_delete(&s, 1000, 500, -1), 2);
        assert_eq!(segments_to_delete(&s, 1000, -1, -1), 0);
        // Even if everything is expired the active segment stays.
        assert_eq!(segments_to_delete(&s, 100_000, 10, -1), 3);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let s = [seg(10, 0), seg(10, 0), seg(10, 0), seg(10, 0)];
        assert_eq!(segments_to_delete(&s, 0, -1, 25), 1);
        assert_eq!(segments_to_delete(&s, 0, -1, 20), 2);
        assert_eq!(segments_to_delete(&s, 0, -1, 0), 3);
        assert_eq!(segments_to_delete(&s, 0, -1, 1000), 0);
    }
}
