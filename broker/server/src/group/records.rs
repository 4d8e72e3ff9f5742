//! The record format of `__consumer_offsets`, defined here only.
//!
//! Keys start with a big-endian i16 that says what they are (as in Kafka):
//! `1` = committed offset (group, topic, partition), `2` = group metadata
//! (group). Values start with an i16 schema version: `1`, and `2` for the
//! group metadata of a consumer-protocol (KIP-848) group, which appends its
//! epochs, members, target assignment and subscribed topics to the fields of
//! `1`. Strings are an i16 length (-1 = null) then UTF-8; byte arrays an i32
//! length then bytes.
//! A null value is a tombstone: the offset or the group was deleted. The
//! topic is compacted, so only the latest record per key survives.
//!
//! Decoding trusts nothing in the bytes (anyone allowed to produce to the
//! topic could have written them): every length and count is checked against
//! the bytes left before anything is sliced or reserved.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::consumer::{Assignor, Catalog, ConsumerGroup, ConsumerMember, MemberState, Partitions};
use super::member::Member;
use super::messages::Protocol;
use super::offsets::CommittedOffset;

/// Key type of a committed offset.
const OFFSET_KEY: i16 = 1;
/// Key type of group metadata.
const GROUP_KEY: i16 = 2;
/// Schema version of values written by this code.
const VALUE_VERSION: i16 = 1;
/// Schema version of the group metadata of a consumer-protocol group.
const CONSUMER_GROUP_VERSION: i16 = 2;
/// Fewest bytes one consumer member takes: three strings, three optional
/// strings, a name count, an optional regex and assignor, three i32, a
/// state and two empty partition maps.
const MIN_CONSUMER_MEMBER_BYTES: usize = 3 * 2 + 2 * 2 + 4 + 2 * 2 + 3 * 4 + 1 + 2 * 4;
/// Fewest bytes one member takes in a group value: four empty strings, two
/// timeouts, a protocol count and an empty assignment.
const MIN_MEMBER_BYTES: usize = 4 * 2 + 4 + 4 + 4 + 4;
/// Fewest bytes one protocol takes: an empty name and empty metadata.
const MIN_PROTOCOL_BYTES: usize = 2 + 4;

/// Errors decoding a record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the field.
    #[error("record truncated while reading {0}")]
    Truncated(&'static str),
    /// A key or value type this code does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    /// A string is not UTF-8.
    #[error("invalid utf-8 in {0}")]
    Utf8(&'static str),
    /// A count cannot fit in the bytes that follow it.
    #[error("{what} {count} cannot fit in the {remaining} bytes left")]
    ImplausibleCount {
        /// Which count.
        what: &'static str,
        /// The count read.
        count: i32,
        /// Bytes left after it.
        remaining: usize,
    },
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    /// The committed offset of one partition for one group.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's metadata.
    Group {
        /// Group id.
        group: String,
    },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

/// Persisted group metadata (the state that survives a restart).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMetadata {
    /// Protocol type (`None`: the group only stores offsets).
    pub protocol_type: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its state (Empty: when it became empty).
    pub state_timestamp_ms: i64,
    /// Members with their protocols and assignments (runtime fields unused).
    pub members: Vec<Member>,
    /// The consumer-protocol state (KIP-848), for such a group.
    pub(crate) consumer: Option<ConsumerGroup>,
}

struct Writer(BytesMut);

impl Writer {
    fn i16(&mut self, v: i16) {
        self.0.put_i16(v);
    }
    fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }
    fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }
    fn str(&mut self, s: &str) {
        // Group ids, topics and member ids are far below 32 KiB; longer text is cut.
        let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
        self.0.put_i16(bytes.len() as i16);
        self.0.put_slice(bytes);
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.0.put_i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.put_i32(b.len() as i32);
        self.0.put_slice(b);
    }
    fn partitions(&mut self, p: &Partitions) {
        self.i32(p.len() as i32);
        for (topic, partitions) in p {
            self.str(topic);
            self.i32(partitions.len() as i32);
            for p in partitions {
                self.i32(*p);
            }
        }
    }
    fn consumer(&mut self, c: &ConsumerGroup) {
        self.i32(c.group_epoch());
        self.i32(c.assignment_epoch());
        self.opt_str(c.assignor().map(Assignor::name));
        self.i32(c.subscribed_metadata().len() as i32);
        for (topic, (id, count)) in c.subscribed_metadata() {
            self.str(topic);
            self.0.put_slice(id.as_bytes());
            self.i32(*count);
        }
        self.i32(c.member_count() as i32);
        for m in c.members() {
            self.str(&m.member_id);
            self.opt_str(m.instance_id.as_deref());
            self.opt_str(m.rack_id.as_deref());
            self.str(&m.client_id);
            self.str(&m.client_host);
            self.i32(m.subscribed_topic_names.len() as i32);
            for t in &m.subscribed_topic_names {
                self.str(t);
            }
            self.opt_str(m.subscribed_topic_regex.as_deref());
            self.opt_str(m.server_assignor.as_deref());
            self.i32(m.rebalance_timeout_ms);
            self.i32(m.member_epoch);
            self.i32(m.previous_member_epoch);
            self.0.put_i8(m.state.code());
            self.partitions(&m.assigned);
            self.partitions(&m.pending_revocation);
        }
        self.i32(c.targets().len() as i32);
        for (member, p) in c.targets() {
            self.str(member);
            self.partitions(p);
        }
    }
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &'static str) -> Result<(), RecordError> {
        if self.0.remaining() < n {
            Err(RecordError::Truncated(what))
        } else {
            Ok(())
        }
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, RecordError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn opt_str(&mut self, what: &'static str) -> Result<Option<String>, RecordError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize, what)?;
        let raw = self.0.split_to(len as usize);
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Utf8(what))
    }
    fn str(&mut self, what: &'static str) -> Result<String, RecordError> {
        Ok(self.opt_str(what)?.unwrap_or_default())
    }
    /// A non-negative i32 count (negative reads as 0) of items taking at
    /// least `min_bytes` each, checked against the bytes left.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, RecordError> {
        let count = self.i32(what)?;
        let n = usize::try_from(count).unwrap_or(0);
        if n > self.0.remaining() / min_bytes {
            return Err(RecordError::ImplausibleCount {
                what,
                count,
                remaining: self.0.remaining(),
            });
        }
        Ok(n)
    }
    fn partitions(&mut self, what: &'static str) -> Result<Partitions, RecordError> {
        let topics = self.count(what, 2 + 4)?;
        let mut out = Partitions::new();
        for _ in 0..topics {
            let topic = self.str(what)?;
            let n = self.count(what, 4)?;
            let mut set = std::collections::BTreeSet::new();
            for _ in 0..n {
                set.insert(self.i32(what)?);
            }
            out.insert(topic, set);
        }
        Ok(out)
    }
    fn consumer(&mut self) -> Result<ConsumerGroup, RecordError> {
        let group_epoch = self.i32("group epoch")?;
        let assignment_epoch = self.i32("assignment epoch")?;
        let assignor = self
            .opt_str("assignor")?
            .and_then(|a| Assignor::from_name(&a));
        let topics = self.count("subscribed topics", 2 + 16 + 4)?;
        let mut subscribed = Catalog::new();
        for _ in 0..topics {
            let topic = self.str("subscribed topic")?;
            self.need(16, "topic id")?;
            let mut id = [0u8; 16];
            self.0.copy_to_slice(&mut id);
            let count = self.i32("partition count")?;
            subscribed.insert(topic, (uuid::Uuid::from_bytes(id), count));
        }
        let count = self.count("consumer member count", MIN_CONSUMER_MEMBER_BYTES)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = self.str("member id")?;
            let instance_id = self.opt_str("instance id")?;
            let rack_id = self.opt_str("rack id")?;
            let client_id = self.str("client id")?;
            let client_host = self.str("client host")?;
            let names = self.count("subscribed topic names", 2)?;
            let mut subscribed_topic_names = std::collections::BTreeSet::new();
            for _ in 0..names {
                subscribed_topic_names.insert(self.str("subscribed topic name")?);
            }
            let regex = self.opt_str("subscribed topic regex")?;
            let server_assignor = self.opt_str("server assignor")?;
            let rebalance_timeout_ms = self.i32("rebalance timeout")?;
            let member_epoch = self.i32("member epoch")?;
            let previous_member_epoch = self.i32("previous member epoch")?;
            self.need(1, "member state")?;
            let code = self.0.get_i8();
            let state = MemberState::from_code(code).ok_or(RecordError::UnknownVersion {
                what: "member state",
                version: i16::from(code),
            })?;
            let assigned = self.partitions("assigned partitions")?;
            let pending_revocation = self.partitions("partitions pending revocation")?;
            members.push(ConsumerMember::new(
                member_id,
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                regex,
                server_assignor,
                rebalance_timeout_ms,
                member_epoch,
                previous_member_epoch,
                state,
                assigned,
                pending_revocation,
            ));
        }
        let targets = self.count("target count", 2 + 4)?;
        let mut target = std::collections::BTreeMap::new();
        for _ in 0..targets {
            let member = self.str("target member")?;
            target.insert(member, self.partitions("target partitions")?);
        }
        Ok(ConsumerGroup::from_parts(
            group_epoch,
            assignment_epoch,
            assignor,
            members,
            target,
            subscribed,
        ))
    }
    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize, what)?;
        Ok(self.0.split_to(len as usize))
    }
}

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut w = Writer(BytesMut::with_capacity(64));
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            w.i16(OFFSET_KEY);
            w.str(group);
            w.str(topic);
            w.i32(*partition);
        }
        RecordKey::Group { group } => {
            w.i16(GROUP_KEY);
            w.str(group);
        }
    }
    w.0.freeze()
}

/// Decodes a key.
pub fn decode_key(bytes: Bytes) -> Result<RecordKey, RecordError> {
    let mut r = Reader(bytes);
    match r.i16("key type")? {
        OFFSET_KEY => Ok(RecordKey::Offset {
            group: r.str("group")?,
            topic: r.str("topic")?,
            partition: r.i32("partition")?,
        }),
        GROUP_KEY => Ok(RecordKey::Group {
            group: r.str("group")?,
        }),
        version => Err(RecordError::UnknownVersion {
            what: "key",
            version,
        }),
    }
}

/// Encodes a committed offset.
pub fn encode_offset(offset: &CommittedOffset) -> Bytes {
    let mut w = Writer(BytesMut::with_capacity(32 + offset.metadata.len()));
    w.i16(VALUE_VERSION);
    w.i64(offset.offset);
    w.i32(offset.leader_epoch);
    w.str(&offset.metadata);
    w.i64(offset.commit_timestamp_ms);
    w.0.freeze()
}

/// Decodes a committed offset.
pub fn decode_offset(bytes: Bytes) -> Result<CommittedOffset, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16("offset value version")?;
    if version != VALUE_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "offset value",
            version,
        });
    }
    Ok(CommittedOffset {
        offset: r.i64("offset")?,
        leader_epoch: r.i32("leader epoch")?,
        metadata: r.str("metadata")?,
        commit_timestamp_ms: r.i64("commit timestamp")?,
    })
}

/// Encodes group metadata.
pub fn encode_group(group: &GroupMetadata) -> Bytes {
    let mut w = Writer(BytesMut::with_capacity(256));
    w.i16(if group.consumer.is_some() {
        CONSUMER_GROUP_VERSION
    } else {
        VALUE_VERSION
    });
    w.opt_str(group.protocol_type.as_deref());
    w.i32(group.generation_id);
    w.opt_str(group.protocol_name.as_deref());
    w.opt_str(group.leader.as_deref());
    w.i64(group.state_timestamp_ms);
    w.i32(group.members.len() as i32);
    for m in &group.members {
        w.str(&m.member_id);
        w.opt_str(m.group_instance_id.as_deref());
        w.str(&m.client_id);
        w.str(&m.client_host);
        w.i32(m.session_timeout_ms);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.protocols.len() as i32);
        for p in &m.protocols {
            w.str(&p.name);
            w.bytes(&p.metadata);
        }
        w.bytes(&m.assignment);
    }
    if let Some(consumer) = &group.consumer {
        w.consumer(consumer);
    }
    w.0.freeze()
}

/// Decodes group metadata.
pub fn decode_group(bytes: Bytes) -> Result<GroupMetadata, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16("group value version")?;
    if version != VALUE_VERSION && version != CONSUMER_GROUP_VERSION {
        return Err(RecordError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.opt_str("protocol type")?;
    let generation_id = r.i32("generation")?;
    let protocol_name = r.opt_str("protocol name")?;
    let leader = r.opt_str("leader")?;
    let state_timestamp_ms = r.i64("state timestamp")?;
    let count = r.count("member count", MIN_MEMBER_BYTES)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.str("member id")?;
        let group_instance_id = r.opt_str("group instance id")?;
        let client_id = r.str("client id")?;
        let client_host = r.str("client host")?;
        let session_timeout_ms = r.i32("session timeout")?;
        let rebalance_timeout_ms = r.i32("rebalance timeout")?;
        let protocol_count = r.count("protocol count", MIN_PROTOCOL_BYTES)?;
        let mut protocols = Vec::with_capacity(protocol_count);
        for _ in 0..protocol_count {
            protocols.push(Protocol {
                name: r.str("protocol name")?,
                metadata: r.bytes("protocol metadata")?,
            });
        }
        let assignment = r.bytes("assignment")?;
        members.push(Member {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment,
            heartbeat_deadline_ms: 0,
            awaiting_join: false,
            awaiting_sync: false,
        });
    }
    let consumer = if version == CONSUMER_GROUP_VERSION {
        Some(r.consumer()?)
    } else {
        None
    };
    Ok(GroupMetadata {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
        consumer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_differ_by_kind() {
        let offset = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let group = RecordKey::Group { group: "g".into() };
        assert_eq!(decode_key(encode_key(&offset)).unwrap(), offset);
        assert_eq!(decode_key(encode_key(&group)).unwrap(), group);
        assert_ne!(encode_key(&offset), encode_key(&group));
        // Same logical key, same bytes: compaction relies on it.
        assert_eq!(encode_key(&offset), encode_key(&offset.clone()));
    }

    #[test]
    fn offset_values_round_trip() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "ünïcode meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(decode_offset(encode_offset(&v)).unwrap(), v);
    }

    #[test]
    fn group_values_round_trip() {
        let member = Member {
            member_id: "m-1".into(),
            group_instance_id: Some("i-1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: Bytes::from_static(b"\x00\x01sub"),
            }],
            assignment: Bytes::from_static(b"assigned"),
            heartbeat_deadline_ms: 0,
            awaiting_join: false,
            awaiting_sync: false,
        };
        let g = GroupMetadata {
            protocol_type: Some("consumer".into()),
            generation_id: 5,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 123,
            members: vec![member],
            consumer: None,
        };
        assert_eq!(decode_group(encode_group(&g)).unwrap(), g);
        let empty = GroupMetadata {
            protocol_type: None,
            generation_id: 0,
            protocol_name: None,
            leader: None,
            state_timestamp_ms: 9,
            members: vec![],
            consumer: None,
        };
        assert_eq!(decode_group(encode_group(&empty)).unwrap(), empty);
    }

    #[test]
    fn consumer_protocol_groups_round_trip() {
        let member = ConsumerMember::new(
            "m-1".into(),
            Some("i-1".into()),
            Some("rack-a".into()),
            "c".into(),
            "/127.0.0.1".into(),
            ["t".to_string()].into(),
            Some("orders-.*".into()),
            Some("range".into()),
            30_000,
            4,
            3,
            MemberState::UnrevokedPartitions,
            [("t".to_string(), [0, 1].into())].into(),
            [("orders-eu".to_string(), [2].into())].into(),
        );
        let consumer = ConsumerGroup::from_parts(
            5,
            5,
            Some(Assignor::Range),
            vec![member],
            [("m-1".to_string(), [("t".to_string(), [0].into())].into())].into(),
            [("t".to_string(), (uuid::Uuid::from_bytes([7; 16]), 2))].into(),
        );
        let g = GroupMetadata {
            protocol_type: Some("consumer".into()),
            generation_id: 0,
            protocol_name: None,
            leader: None,
            state_timestamp_ms: 1,
            members: vec![],
            consumer: Some(consumer),
        };
        let bytes = encode_group(&g);
        assert_eq!(&bytes[..2], &[0, 2], "value version 2");
        assert_eq!(decode_group(bytes.clone()).unwrap(), g);
        for cut in 0..bytes.len() {
            assert!(decode_group(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let full = encode_key(&RecordKey::Offset {
            group: "group".into(),
            topic: "topic".into(),
            partition: 1,
        });
        for cut in 0..full.len() {
            assert!(decode_key(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode_key(Bytes::from_static(b"\x00\x09")),
            Err(RecordError::UnknownVersion { .. })
        ));
        let v = encode_offset(&CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        });
        for cut in 0..v.len() {
            assert!(decode_offset(v.slice(..cut)).is_err());
        }
    }

    /// A group value with no protocol type, name or leader and `members`
    /// as its member count, followed by `rest`.
    fn group_value(members: i32, rest: &[u8]) -> Bytes {
        let mut w = Writer(BytesMut::new());
        w.i16(VALUE_VERSION);
        w.opt_str(None);
        w.i32(1);
        w.opt_str(None);
        w.opt_str(None);
        w.i64(0);
        w.i32(members);
        w.0.put_slice(rest);
        w.0.freeze()
    }

    #[test]
    fn huge_member_and_protocol_counts_are_refused_before_reserving() {
        // Reserving i32::MAX members (about 400 GB) would abort the process.
        assert_eq!(
            decode_group(group_value(i32::MAX, &[0; 64])),
            Err(RecordError::ImplausibleCount {
                what: "member count",
                count: i32::MAX,
                remaining: 64,
            })
        );
        // Three members cannot fit in 3 * 24 - 1 bytes.
        assert!(matches!(
            decode_group(group_value(3, &[0; 3 * MIN_MEMBER_BYTES - 1])),
            Err(RecordError::ImplausibleCount { .. })
        ));
        let mut member = Writer(BytesMut::new());
        for s in ["m", "i", "c", "h"] {
            member.str(s);
        }
        member.i32(1);
        member.i32(1);
        member.i32(i32::MAX);
        member.0.put_slice(&[0; 32]);
        assert_eq!(
            decode_group(group_value(1, &member.0)),
            Err(RecordError::ImplausibleCount {
                what: "protocol count",
                count: i32::MAX,
                remaining: 32,
            })
        );
    }

    #[test]
    fn lengths_past_the_end_are_truncation_errors() {
        // A string claiming 32 KiB, bytes claiming 2 GiB, in a few bytes.
        let mut w = Writer(BytesMut::new());
        w.i16(OFFSET_KEY);
        w.i16(i16::MAX);
        w.0.put_slice(b"short");
        assert_eq!(
            decode_key(w.0.freeze()),
            Err(RecordError::Truncated("group"))
        );
        let mut member = Writer(BytesMut::new());
        for s in ["m", "i", "c", "h"] {
            member.str(s);
        }
        member.i32(1);
        member.i32(1);
        member.i32(0);
        member.i32(i32::MAX);
        member.0.put_slice(&[0; 24]);
        assert_eq!(
            decode_group(group_value(1, &member.0)),
            Err(RecordError::Truncated("assignment"))
        );
    }
}
