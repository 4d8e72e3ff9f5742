//! The "consumer" embedded protocol: the subscription a member sends in
//! JoinGroup and the assignment the leader hands out in SyncGroup, in the
//! standard layout (an i16 version, then the versioned struct) that the Java
//! client and librdkafka use, so members of every client can share a group.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The newest layout of both structs that kafka-protocol knows; newer
/// versions only append fields, so they are read as this one.
const MAX_KNOWN_VERSION: i16 = 3;
/// Version we write for subscriptions: v1 (topics, user data, owned
/// partitions) is understood by every client in use, including kafka-python.
const SUBSCRIPTION_VERSION: i16 = 1;
/// Version we write for assignments: v0 is all any reader needs.
const ASSIGNMENT_VERSION: i16 = 0;

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicPartitions {
    /// Topic name.
    pub topic: String,
    /// Partition indexes, ascending.
    pub partitions: Vec<i32>,
}

/// What a member subscribes to, decoded from its JoinGroup metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Topics, in the order the member listed them.
    pub topics: Vec<String>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
    /// Partitions the member owned before this rebalance (v1+).
    pub owned_partitions: Vec<TopicPartitions>,
}

/// Encodes a subscription for JoinGroup.
pub fn encode_subscription(sub: &Subscription) -> Result<Bytes, String> {
    let msg = ConsumerProtocolSubscription::default()
        .with_topics(sub.topics.iter().map(|t| str_bytes(t)).collect())
        .with_user_data(sub.user_data.clone())
        .with_owned_partitions(
            sub.owned_partitions
                .iter()
                .map(|tp| {
                    OwnedTopic::default()
                        .with_topic(topic_name(&tp.topic))
                        .with_partitions(tp.partitions.clone())
                })
                .collect(),
        );
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    msg.encode(&mut buf, SUBSCRIPTION_VERSION)
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Decodes a member's JoinGroup metadata of protocol type "consumer".
pub fn decode_subscription(data: &[u8]) -> Result<Subscription, String> {
    let (version, mut body) = split_version(data, "ConsumerProtocolSubscription")?;
    let msg = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| format!("undecodable consumer subscription v{version}: {e}"))?;
    Ok(Subscription {
        topics: msg.topics.iter().map(ToString::to_string).collect(),
        user_data: msg.user_data,
        owned_partitions: msg
            .owned_partitions
            .into_iter()
            .map(|tp| TopicPartitions {
                topic: tp.topic.0.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
    })
}

/// Encodes an assignment for SyncGroup.
pub fn encode_assignment(assigned: &[TopicPartitions]) -> Result<Bytes, String> {
    let msg = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assigned
            .iter()
            .map(|tp| {
                AssignedTopic::default()
                    .with_topic(topic_name(&tp.topic))
                    .with_partitions(tp.partitions.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    msg.encode(&mut buf, ASSIGNMENT_VERSION)
        .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Decodes an assignment from SyncGroup or DescribeGroups. Empty data (a
/// member that got nothing, or a group mid-rebalance) is an empty assignment.
pub fn decode_assignment(data: &[u8]) -> Result<Vec<TopicPartitions>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(data, "ConsumerProtocolAssignment")?;
    let msg = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| format!("undecodable consumer assignment v{version}: {e}"))?;
    let mut out: Vec<TopicPartitions> = msg
        .assigned_partitions
        .into_iter()
        .map(|tp| {
            let mut partitions = tp.partitions;
            partitions.sort_unstable();
            TopicPartitions {
                topic: tp.topic.0.to_string(),
                partitions,
            }
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Splits the leading version off consumer protocol data and checks the body
/// against the schema of `name` (another member's bytes: the decoder would
/// trust every count in them).
fn split_version(data: &[u8], name: &str) -> Result<(i16, Bytes), String> {
    let mut body = Bytes::copy_from_slice(data);
    if body.len() < 2 {
        return Err(format!(
            "consumer protocol data of {} bytes is too short",
            body.len()
        ));
    }
    let version = body.get_i16();
    if version < 0 {
        return Err(format!("consumer protocol version {version} is invalid"));
    }
    let version = version.min(MAX_KNOWN_VERSION);
    runnel_wire::check_data(name, version, &body)
        .map_err(|e| format!("undecodable consumer protocol data: {e}"))?;
    Ok((version, body))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips() {
        let sub = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: None,
            owned_partitions: vec![TopicPartitions {
                topic: "a".into(),
                partitions: vec![1, 2],
            }],
        };
        let data = encode_subscription(&sub).expect("encode");
        assert_eq!(&data[..2], &[0, 1], "version prefix");
        assert_eq!(decode_subscription(&data).expect("decode"), sub);
    }

    #[test]
    fn newer_subscription_versions_are_read_by_their_known_prefix() {
        // A v3 subscription as the Java client writes it (with rack id), then
        // a made-up v5 that appends bytes we do not know.
        let msg = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")])
            .with_generation_id(7)
            .with_rack_id(Some(StrBytes::from_static_str("r1")));
        let mut buf = BytesMut::new();
        buf.put_i16(5);
        msg.encode(&mut buf, 3).expect("encode");
        buf.put_slice(&[1, 2, 3]);
        let sub = decode_subscription(&buf).expect("decode");
        assert_eq!(sub.topics, vec!["t".to_string()]);
    }

    #[test]
    fn assignment_round_trips_sorted() {
        let assigned = vec![
            TopicPartitions {
                topic: "b".into(),
                partitions: vec![3, 1],
            },
            TopicPartitions {
                topic: "a".into(),
                partitions: vec![0],
            },
        ];
        let data = encode_assignment(&assigned).expect("encode");
        let back = decode_assignment(&data).expect("decode");
        assert_eq!(
            back,
            vec![
                TopicPartitions {
                    topic: "a".into(),
                    partitions: vec![0]
                },
                TopicPartitions {
                    topic: "b".into(),
                    partitions: vec![1, 3]
                },
            ]
        );
    }

    #[test]
    fn empty_assignment_data_means_nothing_assigned() {
        assert!(decode_assignment(&[]).expect("decode").is_empty());
        assert!(decode_assignment(&[0]).is_err());
        // v0 assignment claiming 2^31 topics in a 6-byte body.
        let mut hostile = vec![0, 0];
        hostile.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
        let err = decode_assignment(&hostile).expect_err("must refuse");
        assert!(err.contains("AssignedPartitions"), "{err}");
        let err = decode_subscription(&hostile).expect_err("must refuse");
        assert!(err.contains("Topics"), "{err}");
    }
}
