//! Time windows: tumbling (size = advance) and hopping (advance < size), with a grace period
//! after which a window is closed and late records are dropped.

use std::time::Duration;

/// Windows of a fixed size starting every `advance`, closed `grace` after their end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows: back to back, each `size` long (no grace until [`Self::grace`]).
    pub fn tumbling(size: Duration) -> Self {
        let size_ms = (size.as_millis() as i64).max(1);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }

    /// Hopping windows: `size` long, a new one every `advance` (1 ms ≤ advance ≤ size).
    pub fn hopping(size: Duration, advance: Duration) -> Self {
        let size_ms = (size.as_millis() as i64).max(1);
        let advance_ms = (advance.as_millis() as i64).clamp(1, size_ms);
        TimeWindows {
            size_ms,
            advance_ms,
            grace_ms: 0,
        }
    }

    /// How long after its end a window still takes late records.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = grace.as_millis() as i64;
        self
    }

    /// Window size, milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Grace period, milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The starts of the windows that contain `timestamp` (windows start at multiples of the
    /// advance, from 0).
    pub fn starts_for(&self, timestamp: i64) -> Vec<i64> {
        let mut starts = Vec::new();
        let mut start = timestamp - timestamp.rem_euclid(self.advance_ms);
        while start > timestamp - self.size_ms {
            if start >= 0 {
                starts.push(start);
            }
            start -= self.advance_ms;
        }
        starts.reverse();
        starts
    }
}

/// A key of a windowed table: the record key and its window `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// Window start, milliseconds (inclusive).
    pub start: i64,
    /// Window end, milliseconds (exclusive).
    pub end: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_hold_each_timestamp_once() {
        let w = TimeWindows::tumbling(Duration::from_secs(10));
        assert_eq!(w.starts_for(0), vec![0]);
        assert_eq!(w.starts_for(9_999), vec![0]);
        assert_eq!(w.starts_for(10_000), vec![10_000]);
    }

    #[test]
    fn hopping_windows_hold_each_timestamp_size_over_advance_times() {
        let w = TimeWindows::hopping(Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(w.starts_for(12_000), vec![5_000, 10_000]);
        assert_eq!(w.starts_for(3_000), vec![0], "no window starts before 0");
    }
}
