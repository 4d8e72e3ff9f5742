//! Names of the topics a topology reads and writes.

/// A topic of the topology: a user topic, or an internal one named after the application.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicRef {
    /// A topic the user names.
    User(String),
    /// `<application.id>-<suffix>` (repartition and changelog topics).
    Internal(String),
}

impl TopicRef {
    /// The topic's name for this application.
    pub fn full_name(&self, app_id: &str) -> String {
        match self {
            TopicRef::User(name) => name.clone(),
            TopicRef::Internal(suffix) => format!("{app_id}-{suffix}"),
        }
    }
}
