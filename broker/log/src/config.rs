//! [`LogConfig`]: the topic configs the log engine honours, with Kafka's
//! defaults, and [`TimestampType`] (`message.timestamp.type`).

/// How the timestamps of appended batches are treated (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite with the broker's clock at append.
    LogAppendTime,
}

/// Per-partition log settings (topic configs that the log engine honours).
/// May be changed at runtime with [`Log::set_config`].
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `retention.ms`; -1 means unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 means unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` contains `compact`: keep the latest record per key
    /// ([`Log::compact`]) and refuse keyless records.
    pub compact: bool,
    /// `cleanup.policy` contains `delete`: `retention.ms`/`retention.bytes` apply.
    /// A compact-only log (`compact: true, delete: false`) is never retention-deleted.
    pub delete: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) stays readable
    /// after its timestamp before compaction may remove it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: compaction runs when the uncompacted bytes
    /// are at least this fraction of the cleanable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: segments holding records newer than this are not compacted.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            compact: false,
            delete: true,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
        }
    }
}

impl LogConfig {
    /// True when `retention.ms`/`retention.bytes` delete segments (policy contains `delete`).
    pub fn retention_applies(&self) -> bool {
        self.delete || !self.compact
    }
}
