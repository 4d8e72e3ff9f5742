//! Records as they flow through a topology.

/// One record: a key, a value and its timestamp (milliseconds since the epoch, the input
/// record's own timestamp unless a processor set another).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl<K, V> Record<K, V> {
    /// A record with this key, value and timestamp.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
        }
    }
}

/// An update of a table: the value before and after (`None`: absent, or deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<V> {
    /// The previous value of the key.
    pub old: Option<V>,
    /// The new value (`None` when the key was deleted).
    pub new: Option<V>,
}

/// Bytes as they come from and go to Kafka: an absent key or value is `None`.
pub(crate) type RawRecord = Record<Option<Vec<u8>>, Option<Vec<u8>>>;

/// A record a task writes to a topic.
#[derive(Debug)]
pub(crate) struct Output {
    /// Full topic name.
    pub topic: String,
    /// The partition, when the writer decides it (changelogs: the task's partition).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}
