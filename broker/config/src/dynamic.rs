//! The broker configs that change at runtime: set with IncrementalAlterConfigs
//! or AlterConfigs on a BROKER resource (a broker id, or "" for the
//! cluster-wide default) and stored in the metadata quorum. They have Kafka's
//! names only; no file key, variable or flag sets them, and every key of
//! [`KEYS`](crate::KEYS) is static (read-only in DescribeConfigs).

/// Leader-side rate (bytes/s) for replicas in `leader.replication.throttled.replicas`.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// Follower-side rate (bytes/s) for replicas in `follower.replication.throttled.replicas`.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";

/// One dynamic broker config. Its values are non-negative 64-bit integers
/// (Kafka's Long), validated where they are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicKey {
    /// Kafka's name.
    pub name: &'static str,
    /// One-line documentation.
    pub doc: &'static str,
}

/// The broker configs that may be changed at runtime, with one-line docs.
pub const DYNAMIC_KEYS: &[DynamicKey] = &[
    DynamicKey {
        name: LEADER_RATE,
        doc: "bytes/s a leader sends to out-of-sync followers of the replicas in \
              leader.replication.throttled.replicas (unset = unthrottled)",
    },
    DynamicKey {
        name: FOLLOWER_RATE,
        doc: "bytes/s a follower fetches for the replicas in \
              follower.replication.throttled.replicas while out of sync (unset = unthrottled)",
    },
];

/// The dynamic broker config named `name`; the error (sent to clients with
/// INVALID_CONFIG) names it and lists the dynamic ones.
pub fn find_dynamic(name: &str) -> Result<&'static DynamicKey, String> {
    DYNAMIC_KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        format!(
            "{name:?} is not a dynamic broker configuration (dynamic: {})",
            DYNAMIC_KEYS
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_keys_are_found_and_others_refused_naming_the_dynamic_ones() {
        assert_eq!(find_dynamic(LEADER_RATE).unwrap().name, LEADER_RATE);
        assert_eq!(find_dynamic(FOLLOWER_RATE).unwrap().name, FOLLOWER_RATE);
        let err = find_dynamic("log.retention.ms").unwrap_err();
        assert_eq!(
            err,
            "\"log.retention.ms\" is not a dynamic broker configuration (dynamic: \
             leader.replication.throttled.rate, follower.replication.throttled.rate)"
        );
    }
}
