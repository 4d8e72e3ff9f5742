//! Incremental fetch sessions (KIP-227), without I/O: the broker-wide cache of sessions a
//! Fetch request opens, continues or closes. A session remembers the partitions a client
//! fetches with their fetch parameters and what the last response said of each (high
//! watermark, last stable offset, log start offset), so that:
//! - an incremental request names only the partitions whose parameters changed (and the
//!   partitions to forget); the others are fetched with their remembered parameters;
//! - an incremental response carries only the partitions with something new (records, an
//!   error, a preferred read replica, or a changed offset).
//!
//! `session_epoch` -1 is a sessionless full fetch (closing `session_id` if given); 0 opens a
//! new session (closing `session_id` if given), or fetches sessionless when the cache is full;
//! a positive epoch continues `session_id` and must be the one the session expects next
//! (FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH otherwise). When the cache is
//! full, a session idle for at least [`MIN_EVICTION_AGE`] makes room (least recently used
//! first), as Kafka's `max.incremental.fetch.session.cache.slots` cache does.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

/// A session idle for less than this is never evicted to make room for a new one.
pub(crate) const MIN_EVICTION_AGE: Duration = Duration::from_secs(120);

/// How a request names a topic: by name (Fetch v7-v12) or by id (v13+).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TopicKey {
    Name(String),
    Id(Uuid),
}

impl TopicKey {
    fn of(name: &TopicName, id: Uuid, by_id: bool) -> TopicKey {
        if by_id {
            TopicKey::Id(id)
        } else {
            TopicKey::Name(name.0.to_string())
        }
    }
}

/// What the last response said of a partition (high watermark, LSO, log start offset).
type Sent = (i64, i64, i64);

struct Cached {
    params: FetchPartition,
    sent: Option<Sent>,
}

struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeMap<(TopicKey, i32), Cached>,
    last_used: Instant,
}

/// What to do with a Fetch request.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Answer at once with this top-level error and no partitions.
    Refuse(ResponseError),
    /// Fetch the request's own topics, or `topics` for an incremental request (the session's
    /// partitions); answer with `session_id` (0: no session), and, when `incremental`, pass the
    /// response through [`FetchSessions::finish`] to drop what is unchanged.
    Fetch {
        session_id: i32,
        incremental: bool,
        topics: Option<Vec<FetchTopic>>,
    },
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    last_id: i32,
}

/// The broker's fetch sessions (shared by every connection).
pub(crate) struct FetchSessions {
    max_sessions: usize,
    inner: Mutex<Inner>,
}

/// The epoch after `epoch` (wrapping to 1: 0 and -1 have their own meaning).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    /// A cache of at most `max_sessions` sessions (0: every fetch is sessionless).
    pub(crate) fn new(max_sessions: usize) -> FetchSessions {
        FetchSessions {
            max_sessions,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Number of open sessions.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// Opens, continues or closes the request's session; `by_id` is whether the request names
    /// topics by id (Fetch v13+).
    pub(crate) fn begin(&self, request: &FetchRequest, by_id: bool, now: Instant) -> Begin {
        let id = request.session_id;
        if id == 0 && request.session_epoch == -1 {
            // Sessionless, as librdkafka and followers always fetch: no cache to look at.
            return Begin::Fetch {
                session_id: 0,
                incremental: false,
                topics: None,
            };
        }
        let mut inner = self.inner.lock();
        match request.session_epoch {
            -1 => {
                if id != 0 && inner.sessions.remove(&id).is_none() {
                    return Begin::Refuse(ResponseError::FetchSessionIdNotFound);
                }
                Begin::Fetch {
                    session_id: 0,
                    incremental: false,
                    topics: None,
                }
            }
            0 => {
                if id != 0 {
                    inner.sessions.remove(&id);
                }
                let session_id = if self.make_room(&mut inner, now) {
                    let new_id = inner.new_id();
                    let mut session = Session {
                        next_epoch: 1,
                        partitions: BTreeMap::new(),
                        last_used: now,
                    };
                    session.update(request, by_id);
                    inner.sessions.insert(new_id, session);
                    new_id
                } else {
                    0
                };
                Begin::Fetch {
                    session_id,
                    incremental: false,
                    topics: None,
                }
            }
            epoch if epoch > 0 => {
                let Some(session) = inner.sessions.get_mut(&id) else {
                    return Begin::Refuse(ResponseError::FetchSessionIdNotFound);
                };
                if session.next_epoch != epoch {
                    return Begin::Refuse(ResponseError::InvalidFetchSessionEpoch);
                }
                session.next_epoch = next_epoch(epoch);
                session.last_used = now;
                session.update(request, by_id);
                Begin::Fetch {
                    session_id: id,
                    incremental: true,
                    topics: Some(session.topics()),
                }
            }
            _ => Begin::Refuse(ResponseError::InvalidFetchSessionEpoch),
        }
    }

    /// Records what the response tells of each partition of `session_id` and, for an
    /// incremental response, keeps only the partitions with something new.
    pub(crate) fn finish(
        &self,
        session_id: i32,
        incremental: bool,
        by_id: bool,
        responses: Vec<FetchableTopicResponse>,
        has_records: impl Fn(&FetchableTopicResponse, i32) -> bool,
    ) -> Vec<FetchableTopicResponse> {
        if session_id == 0 {
            return responses;
        }
        let mut inner = self.inner.lock();
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            return responses;
        };
        responses
            .into_iter()
            .filter_map(|mut topic| {
                let key = TopicKey::of(&topic.topic, topic.topic_id, by_id);
                let with_records: Vec<bool> = topic
                    .partitions
                    .iter()
                    .map(|p| has_records(&topic, p.partition_index))
                    .collect();
                let mut with_records = with_records.into_iter();
                topic.partitions.retain(|p| {
                    let sent = (p.high_watermark, p.last_stable_offset, p.log_start_offset);
                    let news = with_records.next().unwrap_or(false)
                        || p.records.as_ref().is_some_and(|r| !r.is_empty())
                        || p.error_code != 0
                        || p.preferred_read_replica.0 >= 0;
                    let changed = match session
                        .partitions
                        .get_mut(&(key.clone(), p.partition_index))
                    {
                        Some(cached) => {
                            let changed = cached.sent != Some(sent);
                            cached.sent = Some(sent);
                            changed
                        }
                        None => true,
                    };
                    !incremental || news || changed
                });
                (!incremental || !topic.partitions.is_empty()).then_some(topic)
            })
            .collect()
    }

    /// True when a new session fits, evicting the least recently used one idle for at least
    /// [`MIN_EVICTION_AGE`] if the cache is full.
    fn make_room(&self, inner: &mut Inner, now: Instant) -> bool {
        if inner.sessions.len() < self.max_sessions {
            return true;
        }
        let oldest = inner
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_used)
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= MIN_EVICTION_AGE)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                inner.sessions.remove(&id);
                true
            }
            None => false,
        }
    }
}

impl Inner {
    /// A positive id no open session has.
    fn new_id(&mut self) -> i32 {
        loop {
            self.last_id = if self.last_id == i32::MAX {
                1
            } else {
                self.last_id + 1
            };
            if !self.sessions.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }
}

impl Session {
    /// Adds or updates the request's partitions and forgets its forgotten ones.
    fn update(&mut self, request: &FetchRequest, by_id: bool) {
        for topic in &request.topics {
            let key = TopicKey::of(&topic.topic, topic.topic_id, by_id);
            for p in &topic.partitions {
                let cached = self
                    .partitions
                    .entry((key.clone(), p.partition))
                    .or_insert_with(|| Cached {
                        params: p.clone(),
                        sent: None,
                    });
                cached.params = p.clone();
            }
        }
        for forgotten in &request.forgotten_topics_data {
            let key = TopicKey::of(&forgotten.topic, forgotten.topic_id, by_id);
            for p in &forgotten.partitions {
                self.partitions.remove(&(key.clone(), *p));
            }
        }
    }

    /// Every partition of the session as the topics of a full request.
    fn topics(&self) -> Vec<FetchTopic> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((key, _), cached) in &self.partitions {
            let (name, id) = match key {
                TopicKey::Name(name) => (name.clone(), Uuid::nil()),
                TopicKey::Id(id) => (String::new(), *id),
            };
            let same = topics
                .last()
                .is_some_and(|t| t.topic.0.as_str() == name && t.topic_id == id);
            if !same {
                topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name)))
                        .with_topic_id(id),
                );
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(cached.params.clone());
            }
        }
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;
    use kafka_protocol::messages::fetch_response::PartitionData;

    fn part(index: i32, offset: i64) -> FetchPartition {
        FetchPartition::default()
            .with_partition(index)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20)
    }

    fn topic(name: &str, parts: Vec<FetchPartition>) -> FetchTopic {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(name.into())))
            .with_partitions(parts)
    }

    fn request(id: i32, epoch: i32, topics: Vec<FetchTopic>) -> FetchRequest {
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(topics)
    }

    fn fetched(
        cache: &FetchSessions,
        request: &FetchRequest,
        by_id: bool,
        now: Instant,
    ) -> (i32, bool, Vec<(String, i32, i64)>) {
        match cache.begin(request, by_id, now) {
            Begin::Fetch {
                session_id,
                incremental,
                topics,
            } => (
                session_id,
                incremental,
                topics
                    .unwrap_or_else(|| request.topics.clone())
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (t.topic.0.to_string(), p.partition, p.fetch_offset))
                    })
                    .collect(),
            ),
            Begin::Refuse(e) => panic!("refused: {e:?}"),
        }
    }

    fn response(name: &str, parts: &[(i32, i64, bool)]) -> FetchableTopicResponse {
        FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_string(name.into())))
            .with_partitions(
                parts
                    .iter()
                    .map(|(i, hw, records)| {
                        PartitionData::default()
                            .with_partition_index(*i)
                            .with_high_watermark(*hw)
                            .with_last_stable_offset(*hw)
                            .with_records(records.then(|| Bytes::from_static(b"batch")))
                    })
                    .collect(),
            )
    }

    fn indexes(responses: &[FetchableTopicResponse]) -> Vec<(String, i32)> {
        responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_index))
            })
            .collect()
    }

    #[test]
    fn an_incremental_request_fetches_the_remembered_partitions_with_its_changes() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let full = request(0, 0, vec![topic("a", vec![part(0, 5), part(1, 7)])]);
        let (id, incremental, parts) = fetched(&cache, &full, false, now);
        assert!(id > 0 && !incremental);
        assert_eq!(parts, [("a".into(), 0, 5), ("a".into(), 1, 7)]);
        // Epoch 1 moves partition 0 on, adds b-0 and forgets a-1.
        let mut next = request(
            id,
            1,
            vec![topic("a", vec![part(0, 9)]), topic("b", vec![part(0, 0)])],
        );
        next.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("a")))
            .with_partitions(vec![1])];
        let (same, incremental, parts) = fetched(&cache, &next, false, now);
        assert_eq!((same, incremental), (id, true));
        assert_eq!(parts, [("a".into(), 0, 9), ("b".into(), 0, 0)]);
        // Epoch 2 names nothing: the same partitions at their remembered offsets.
        let (_, _, parts) = fetched(&cache, &request(id, 2, vec![]), false, now);
        assert_eq!(parts, [("a".into(), 0, 9), ("b".into(), 0, 0)]);
    }

    #[test]
    fn a_wrong_epoch_or_session_is_refused_and_epoch_minus_one_closes() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let (id, _, _) = fetched(
            &cache,
            &request(0, 0, vec![topic("a", vec![part(0, 0)])]),
            false,
            now,
        );
        assert!(matches!(
            cache.begin(&request(id, 2, vec![]), false, now),
            Begin::Refuse(ResponseError::InvalidFetchSessionEpoch)
        ));
        assert!(matches!(
            cache.begin(&request(id + 1, 1, vec![]), false, now),
            Begin::Refuse(ResponseError::FetchSessionIdNotFound)
        ));
        // A refused request does not move the epoch on.
        let (_, incremental, _) = fetched(&cache, &request(id, 1, vec![]), false, now);
        assert!(incremental);
        // Epoch -1 closes it and fetches sessionless; the session is gone.
        let (sessionless, incremental, parts) = fetched(
            &cache,
            &request(id, -1, vec![topic("a", vec![part(0, 3)])]),
            false,
            now,
        );
        assert_eq!((sessionless, incremental), (0, false));
        assert_eq!(parts, [("a".into(), 0, 3)]);
        assert_eq!(cache.len(), 0);
        assert!(matches!(
            cache.begin(&request(id, 2, vec![]), false, now),
            Begin::Refuse(ResponseError::FetchSessionIdNotFound)
        ));
    }

    #[test]
    fn an_incremental_response_keeps_only_partitions_with_news() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let full = request(
            0,
            0,
            vec![topic("a", vec![part(0, 0), part(1, 0), part(2, 0)])],
        );
        let (id, _, _) = fetched(&cache, &full, false, now);
        // The full response is kept whole and remembered.
        let kept = cache.finish(
            id,
            false,
            false,
            vec![response(
                "a",
                &[(0, 10, true), (1, 4, false), (2, 0, false)],
            )],
            |_, _| false,
        );
        assert_eq!(indexes(&kept).len(), 3);
        fetched(&cache, &request(id, 1, vec![]), false, now);
        // Partition 0 has records (left in their files), 1's high watermark moved, 2 has
        // nothing new.
        let kept = cache.finish(
            id,
            true,
            false,
            vec![response(
                "a",
                &[(0, 10, false), (1, 6, false), (2, 0, false)],
            )],
            |_, p| p == 0,
        );
        assert_eq!(indexes(&kept), [("a".into(), 0), ("a".into(), 1)]);
        // Nothing new at all: no topic in the answer.
        fetched(&cache, &request(id, 2, vec![]), false, now);
        let kept = cache.finish(
            id,
            true,
            false,
            vec![response(
                "a",
                &[(0, 10, false), (1, 6, false), (2, 0, false)],
            )],
            |_, _| false,
        );
        assert!(kept.is_empty(), "{kept:?}");
    }

    #[test]
    fn a_full_cache_evicts_only_sessions_idle_long_enough() {
        let cache = FetchSessions::new(1);
        let t0 = Instant::now();
        let open = |now| {
            fetched(
                &cache,
                &request(0, 0, vec![topic("a", vec![part(0, 0)])]),
                false,
                now,
            )
            .0
        };
        let first = open(t0);
        assert!(first > 0);
        // Full, and the only session is fresh: the next fetch is sessionless.
        assert_eq!(open(t0 + Duration::from_secs(1)), 0);
        // Once it has been idle for MIN_EVICTION_AGE it makes room.
        let second = open(t0 + MIN_EVICTION_AGE);
        assert!(second > 0 && second != first);
        assert_eq!(cache.len(), 1);
        // No cache at all: always sessionless.
        let none = FetchSessions::new(0);
        assert_eq!(fetched(&none, &request(0, 0, vec![]), false, t0).0, 0);
    }

    #[test]
    fn topics_named_by_id_are_remembered_by_id() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = Uuid::from_u128(7);
        let by_id = FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![part(0, 4)]);
        let (session, _, _) = fetched(&cache, &request(0, 0, vec![by_id]), true, now);
        match cache.begin(&request(session, 1, vec![]), true, now) {
            Begin::Fetch { topics, .. } => {
                let topics = topics.expect("an incremental request gets the session's topics");
                assert_eq!(topics.len(), 1);
                assert_eq!(topics[0].topic_id, id);
                assert_eq!(topics[0].partitions[0].fetch_offset, 4);
            }
            Begin::Refuse(e) => panic!("refused: {e:?}"),
        }
    }
}
