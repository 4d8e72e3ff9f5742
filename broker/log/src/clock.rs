//! The wall clock every Runnel crate reads: record timestamps, retention and
//! group expiry all compare against the same milliseconds since the Unix epoch.

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it,
/// `i64::MAX` past the year 292 million).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
