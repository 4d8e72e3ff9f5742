//! A group member and the protocols it brings: the [`Member`] the state
//! machine keeps for each, Kafka's choice of one protocol among the members'
//! preferences, and the topics a consumer-protocol member subscribes to (read
//! from its opaque metadata).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use super::messages::{JoinRequest, Protocol};

/// The protocol type of Kafka consumer groups (whose metadata this broker can parse).
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A group member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id of the member's last JoinGroup.
    pub client_id: String,
    /// The client host of the member's last JoinGroup.
    pub client_host: String,
    /// Session timeout the member asked for.
    pub session_timeout_ms: i32,
    /// Rebalance timeout the member asked for.
    pub rebalance_timeout_ms: i32,
    /// Protocols in the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// The assignment of the current generation (opaque).
    pub assignment: Bytes,
    /// The member's session expires at this time unless it heartbeats.
    pub heartbeat_deadline_ms: i64,
    /// A JoinGroup of this member is parked at the barrier.
    pub awaiting_join: bool,
    /// A SyncGroup of this member is parked waiting for the leader.
    pub awaiting_sync: bool,
}

impl Member {
    /// A member joining with `req`; its JoinGroup waits at the barrier.
    pub fn from_join(member_id: String, req: &JoinRequest, now: i64) -> Member {
        Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            heartbeat_deadline_ms: now + i64::from(req.session_timeout_ms),
            awaiting_join: true,
            awaiting_sync: false,
        }
    }

    /// Takes the client, timeouts and protocols of a rejoin; the session
    /// restarts at `now`.
    pub fn update_from_join(&mut self, req: &JoinRequest, now: i64) {
        self.client_id = req.client_id.clone();
        self.client_host = req.client_host.clone();
        self.session_timeout_ms = req.session_timeout_ms;
        self.rebalance_timeout_ms = req.rebalance_timeout_ms;
        self.protocols = req.protocols.clone();
        self.heartbeat_deadline_ms = now + i64::from(req.session_timeout_ms);
    }

    /// Metadata of the named protocol, if the member supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// True when the member offers exactly these protocols, in this order.
    pub fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }
}

/// Names of the protocols every member supports.
pub(crate) fn candidate_protocols(members: &IndexMap<String, Member>) -> HashSet<&str> {
    let mut members = members.values();
    let Some(first) = members.next() else {
        return HashSet::new();
    };
    let mut set: HashSet<&str> = first.protocols.iter().map(|p| p.name.as_str()).collect();
    for m in members {
        let names: HashSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
        set.retain(|n| names.contains(n));
    }
    set
}

/// Kafka's choice: among the protocols every member supports, each member
/// votes for its most preferred one; the most votes win, ties going to the
/// leader's preference order (the first member's without a leader).
pub(crate) fn select_protocol(
    members: &IndexMap<String, Member>,
    leader: Option<&String>,
) -> Option<String> {
    let candidates = candidate_protocols(members);
    let mut votes: HashMap<&str, usize> = HashMap::new();
    for m in members.values() {
        if let Some(p) = m
            .protocols
            .iter()
            .find(|p| candidates.contains(p.name.as_str()))
        {
            *votes.entry(p.name.as_str()).or_default() += 1;
        }
    }
    let leader = leader
        .and_then(|l| members.get(l))
        .or_else(|| members.values().next())?;
    let mut best: Option<(&str, usize)> = None;
    for p in &leader.protocols {
        let count = votes.get(p.name.as_str()).copied().unwrap_or(0);
        if count > 0 && best.is_none_or(|(_, c)| count > c) {
            best = Some((p.name.as_str(), count));
        }
    }
    best.map(|(name, _)| name.to_string())
}

/// Topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`:
/// an i16 version, then the versioned body); empty if undecodable.
pub(crate) fn subscription_topics(metadata: &Bytes) -> Vec<String> {
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
