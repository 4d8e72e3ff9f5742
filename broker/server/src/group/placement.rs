//! Where a group lives: the internal topic `__consumer_offsets` and Kafka's
//! rule placing each group on one of its partitions, whose leader is the
//! group's coordinator.

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to
/// place a group on a partition of `__consumer_offsets`.
pub(crate) fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions` (abs(MIN_VALUE) is 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // Values of java.lang.String.hashCode (31*h + UTF-16 unit, wrapping).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("group"), 98629247);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partition_follows_kafkas_rule() {
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        let h = java_string_hash("console-consumer-1");
        assert_eq!(partition_for("console-consumer-1", 7), h.abs() % 7);
    }
}
