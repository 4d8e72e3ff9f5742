//! Consumer groups: the sans-IO state machine ([`state`]), the record format
//! of `__consumer_offsets` ([`records`]) and the tokio runtime that drives
//! them ([`coordinator`]).

pub mod coordinator;
pub mod records;
pub mod state;

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

pub use coordinator::Coordinator;
pub use state::{Group, GroupConfig, GroupError, GroupState};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to
/// place a group on a partition of `__consumer_offsets`.
pub fn java_string_hash(s: &str) -> i32 {
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

/// Topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`:
/// an i16 version, then the versioned body); empty if undecodable.
pub fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    if metadata.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]).clamp(0, 3);
    let mut body = metadata.slice(2..);
    // Member metadata is opaque bytes from the client: check its counts
    // before the decoder trusts them.
    if runnel_wire::check_data("ConsumerProtocolSubscription", version, &body).is_err() {
        return Vec::new();
    }
    match ConsumerProtocolSubscription::decode(&mut body, version) {
        Ok(sub) => sub.topics.into_iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

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

    #[test]
    fn subscription_topics_decode_consumer_metadata() {
        let sub = ConsumerProtocolSubscription::default().with_topics(vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ]);
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        sub.encode(&mut buf, 1).unwrap();
        assert_eq!(subscription_topics(&buf.freeze()), vec!["a", "b"]);
        assert!(subscription_topics(&Bytes::from_static(b"\x00")).is_empty());
    }

    /// JoinGroup metadata is the client's bytes: a subscription claiming 2^31
    /// topics in a few bytes used to abort the broker when it was decoded.
    #[test]
    fn a_subscription_claiming_2_pow_31_topics_is_ignored() {
        let hostile = Bytes::from_static(b"\x00\x01\x7f\xff\xff\xff");
        assert!(subscription_topics(&hostile).is_empty());
    }
}
