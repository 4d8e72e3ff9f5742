//! Replication throttling, Kafka's model: the dynamic broker configs
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate`
//! (bytes/s, per broker id or cluster-wide default) cap the replication
//! traffic of the replicas listed in the topic configs
//! `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`
//! (`partition:broker,...` or `*`). A leader stops sending records of throttled
//! partitions to out-of-sync followers while its leader quota is spent; a
//! follower stops asking for them while its follower quota is spent. Everything
//! here is pure (time is passed in), so it is unit-tested without a runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runnel_meta::{BrokerId, ClusterState};

// The dynamic broker configs (names and docs) are declared with the others in runnel-config.
pub use crate::config::dynamic::{FOLLOWER_RATE, LEADER_RATE};

/// Topic config: `partition:broker` pairs throttled on the leader side (or `*`).
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic config: `partition:broker` pairs throttled on the follower side (or `*`).
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Checks one dynamic broker config; the error names the key and goes to
/// clients with INVALID_CONFIG.
pub(crate) fn validate_broker_config(key: &str, value: &str) -> Result<(), String> {
    crate::config::dynamic::find_dynamic(key)?;
    parse_rate(value).map(|_| ()).ok_or_else(|| {
        format!(
            "invalid value {value:?} for {key}: expected a non-negative number of bytes per second"
        )
    })
}

/// A rate value: a non-negative 64-bit integer.
fn parse_rate(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| u64::try_from(v).ok())
}

/// The replicas a throttled-replicas topic config lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ThrottledReplicas {
    /// None (the config is unset or empty).
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// Explicit `(partition, broker)` pairs.
    Listed(Vec<(i32, BrokerId)>),
}

impl ThrottledReplicas {
    /// Parses `"0:1,0:2,1:3"`, `"*"` or `""`; the error names the bad entry.
    pub(crate) fn parse(value: &str) -> Result<ThrottledReplicas, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(ThrottledReplicas::None);
        }
        if value == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let mut pairs = Vec::new();
        for entry in value.split(',').map(str::trim) {
            let parsed = entry.split_once(':').and_then(|(p, b)| {
                let p = p.trim().parse::<i32>().ok().filter(|p| *p >= 0)?;
                let b = b.trim().parse::<BrokerId>().ok().filter(|b| *b >= 0)?;
                Some((p, b))
            });
            match parsed {
                Some(pair) => pairs.push(pair),
                None => {
                    return Err(format!(
                        "malformed entry {entry:?}: expected partition:brokerId \
                         (e.g. 0:1,0:2) or *"
                    ))
                }
            }
        }
        Ok(ThrottledReplicas::Listed(pairs))
    }

    /// Whether replica `broker` of `partition` is throttled.
    pub(crate) fn contains(&self, partition: i32, broker: BrokerId) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// One broker's throttle settings, derived from the cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleView {
    /// This broker's leader rate (its own override, else the cluster default).
    pub leader_rate: Option<u64>,
    /// This broker's follower rate (its own override, else the cluster default).
    pub follower_rate: Option<u64>,
    leader: HashMap<String, ThrottledReplicas>,
    follower: HashMap<String, ThrottledReplicas>,
}

impl ThrottleView {
    /// The settings of broker `me` in `state`. Malformed stored values (never
    /// accepted by the alter APIs) count as unset.
    pub fn new(state: &ClusterState, me: BrokerId) -> ThrottleView {
        let rate = |key: &str| {
            let own = state
                .broker_configs
                .get(&me.to_string())
                .and_then(|c| c.get(key));
            let default = || state.broker_configs.get("").and_then(|c| c.get(key));
            // Long.MAX_VALUE is Kafka's "unthrottled" default.
            own.or_else(default)
                .and_then(|v| parse_rate(v))
                .filter(|r| *r < i64::MAX as u64)
        };
        let lists = |key: &str| -> HashMap<String, ThrottledReplicas> {
            state
                .topics
                .iter()
                .filter_map(|(name, t)| {
                    let list = ThrottledReplicas::parse(t.configs.get(key)?).ok()?;
                    (list != ThrottledReplicas::None).then(|| (name.clone(), list))
                })
                .collect()
        };
        ThrottleView {
            leader_rate: rate(LEADER_RATE),
            follower_rate: rate(FOLLOWER_RATE),
            leader: lists(LEADER_REPLICAS),
            follower: lists(FOLLOWER_REPLICAS),
        }
    }

    /// Whether the leader side throttles `topic`-`partition` led by `leader`.
    pub fn leader_throttled(&self, topic: &str, partition: i32, leader: BrokerId) -> bool {
        self.leader_rate.is_some()
            && self
                .leader
                .get(topic)
                .is_some_and(|l| l.contains(partition, leader))
    }

    /// Whether the follower side throttles `topic`-`partition` replicated on `follower`.
    pub fn follower_throttled(&self, topic: &str, partition: i32, follower: BrokerId) -> bool {
        self.follower_rate.is_some()
            && self
                .follower
                .get(topic)
                .is_some_and(|l| l.contains(partition, follower))
    }
}

/// Burst allowance: a full bucket holds this much time's worth of the rate.
/// Short, so the observed rate stays close to the configured one even for
/// transfers of a few seconds.
const BURST: Duration = Duration::from_millis(250);

/// A token bucket in bytes. Hand-written rather than a crate: the
/// well-known rate limiters (governor, leaky-bucket) count cells per call and
/// cannot go into debt by the size of a batch that is only known after the
/// read, which Kafka-style "send the batch, then pay for it" needs.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` bytes/s.
    pub(crate) fn new(rate: u64, now: Instant) -> TokenBucket {
        let mut b = TokenBucket {
            rate,
            tokens: 0.0,
            last: now,
        };
        b.tokens = b.capacity();
        b
    }

    fn capacity(&self) -> f64 {
        if self.rate == 0 {
            // Rate 0 stops throttled replication altogether.
            return 0.0;
        }
        // At least one byte, so a tiny rate still lets a first batch through.
        (self.rate as f64 * BURST.as_secs_f64()).max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.capacity());
    }

    /// The configured rate.
    #[cfg(test)]
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate, keeping what was earned at the old one (up to the new capacity).
    pub(crate) fn set_rate(&mut self, rate: u64, now: Instant) {
        if rate != self.rate {
            self.refill(now);
            self.rate = rate;
            self.tokens = self.tokens.min(self.capacity());
        }
    }

    /// Bytes that may be sent now; zero or less means the quota is spent.
    pub(crate) fn available(&mut self, now: Instant) -> i64 {
        self.refill(now);
        self.tokens.floor() as i64
    }

    /// Pays for `bytes` already sent (may leave the bucket in debt).
    pub(crate) fn record(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    /// How long until at least one byte may be sent again (`None`: never, rate 0).
    pub(crate) fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Some(Duration::ZERO);
        }
        if self.rate == 0 {
            return None;
        }
        Some(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.rate as f64,
        ))
    }
}

/// A shared quota (one per side per broker): a token bucket that exists only
/// while a rate is configured.
#[derive(Debug, Default)]
pub(crate) struct ReplicationQuota {
    bucket: Mutex<Option<TokenBucket>>,
}

impl ReplicationQuota {
    /// Applies the configured rate (`None` = unthrottled).
    pub(crate) fn configure(&self, rate: Option<u64>, now: Instant) {
        let mut bucket = self.bucket.lock();
        match (rate, bucket.as_mut()) {
            (None, _) => *bucket = None,
            (Some(rate), Some(b)) => b.set_rate(rate, now),
            (Some(rate), None) => *bucket = Some(TokenBucket::new(rate, now)),
        }
    }

    /// Bytes that may be sent now (`None`: unthrottled; `<= 0`: quota spent).
    pub(crate) fn available(&self, now: Instant) -> Option<i64> {
        self.bucket.lock().as_mut().map(|b| b.available(now))
    }

    /// Pays for bytes of throttled partitions.
    pub(crate) fn record(&self, bytes: u64, now: Instant) {
        if let Some(b) = self.bucket.lock().as_mut() {
            b.record(bytes, now);
        }
    }

    /// How long until the quota allows sending again (zero when it does now;
    /// `max` when no refill is coming, so callers re-check the config).
    pub(crate) fn wait(&self, now: Instant, max: Duration) -> Duration {
        match self.bucket.lock().as_mut() {
            None => Duration::ZERO,
            Some(b) => b.wait(now).unwrap_or(max).min(max),
        }
    }

    /// The rate in effect, if any.
    #[cfg(test)]
    pub(crate) fn rate(&self) -> Option<u64> {
        self.bucket.lock().as_ref().map(TokenBucket::rate)
    }
}

/// Which side of replication a throttle applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThrottleSide {
    /// The leader sending to followers.
    Leader,
    /// A follower fetching from its leader.
    Follower,
}

impl ThrottleSide {
    /// The metric label of this side.
    pub(super) fn label(self) -> &'static str {
        match self {
            ThrottleSide::Leader => "leader",
            ThrottleSide::Follower => "follower",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_meta::TopicMeta;

    #[test]
    fn a_bucket_starts_with_a_short_burst_and_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert_eq!(b.available(t0), 250, "a quarter second of burst");
        b.record(1250, t0);
        assert_eq!(b.available(t0), -1000);
        assert_eq!(b.wait(t0), Some(Duration::from_secs_f64(1.001)));
        assert_eq!(b.available(t0 + Duration::from_millis(500)), -500);
        assert_eq!(b.available(t0 + Duration::from_secs(1)), 0);
        // Idle time never earns more than the burst.
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 250);
    }

    #[test]
    fn the_average_rate_stays_at_the_configured_rate_whatever_the_chunk_size() {
        // Send whenever allowed, in 300-byte chunks (larger than the burst), for 10 s.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        let mut sent = 0u64;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            if b.available(now) > 0 {
                b.record(300, now);
                sent += 300;
            }
            now += b.wait(now).unwrap().max(Duration::from_millis(1));
        }
        // rate * time + burst + one chunk of overshoot, at most.
        assert!((9_700..=10_550).contains(&sent), "{sent}");
    }

    #[test]
    fn rate_changes_keep_earned_tokens_within_the_new_burst_and_zero_never_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10_000, t0);
        b.set_rate(100, t0);
        assert_eq!(b.available(t0), 25);
        b.set_rate(0, t0);
        b.record(10, t0);
        assert_eq!(b.wait(t0 + Duration::from_secs(100)), None);
        let q = ReplicationQuota::default();
        assert_eq!(q.available(t0), None, "unconfigured = unthrottled");
        q.configure(Some(0), t0);
        assert_eq!(
            q.wait(t0, Duration::from_secs(1)),
            Duration::from_secs(1),
            "rate 0 re-checks after max"
        );
        q.configure(None, t0);
        assert_eq!(q.rate(), None);
    }

    #[test]
    fn throttled_replica_lists_parse_star_pairs_and_name_a_bad_entry() {
        assert_eq!(
            ThrottledReplicas::parse(" 0:1, 1:2 ").unwrap(),
            ThrottledReplicas::Listed(vec![(0, 1), (1, 2)])
        );
        assert_eq!(
            ThrottledReplicas::parse("*").unwrap(),
            ThrottledReplicas::All
        );
        assert_eq!(
            ThrottledReplicas::parse("").unwrap(),
            ThrottledReplicas::None
        );
        for bad in ["0", "0:x", "a:1", "0:1,", "-1:2", "0:1:2", "*,0:1"] {
            let err = ThrottledReplicas::parse(bad).unwrap_err();
            assert!(err.contains("malformed entry"), "{bad}: {err}");
        }
        let l = ThrottledReplicas::parse("0:1,2:3").unwrap();
        assert!(l.contains(0, 1) && l.contains(2, 3));
        assert!(!l.contains(0, 3) && !l.contains(1, 1));
        assert!(ThrottledReplicas::All.contains(7, 9));
        assert!(!ThrottledReplicas::None.contains(0, 0));
    }

    #[test]
    fn broker_rates_are_non_negative_longs_of_known_dynamic_keys() {
        assert!(validate_broker_config(LEADER_RATE, "1048576").is_ok());
        assert!(validate_broker_config(FOLLOWER_RATE, "0").is_ok());
        assert!(validate_broker_config(LEADER_RATE, "-1").is_err());
        assert!(validate_broker_config(LEADER_RATE, "fast").is_err());
        let err = validate_broker_config("log.retention.ms", "1").unwrap_err();
        assert!(err.contains("log.retention.ms"), "{err}");
    }

    #[test]
    fn the_view_takes_the_broker_override_over_the_cluster_default_and_matches_replicas() {
        let mut state = ClusterState::default();
        let set = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        state.broker_configs.insert(
            String::new(),
            set(&[(LEADER_RATE, "100"), (FOLLOWER_RATE, "200")]),
        );
        state
            .broker_configs
            .insert("2".into(), set(&[(FOLLOWER_RATE, "50")]));
        state.topics.insert(
            "t".into(),
            std::sync::Arc::new(TopicMeta {
                name: "t".into(),
                id: Default::default(),
                partitions: Vec::new(),
                configs: set(&[(LEADER_REPLICAS, "0:1"), (FOLLOWER_REPLICAS, "0:2,1:2")]),
            }),
        );
        let v1 = ThrottleView::new(&state, 1);
        assert_eq!((v1.leader_rate, v1.follower_rate), (Some(100), Some(200)));
        let v2 = ThrottleView::new(&state, 2);
        assert_eq!((v2.leader_rate, v2.follower_rate), (Some(100), Some(50)));
        assert!(v1.leader_throttled("t", 0, 1));
        assert!(!v1.leader_throttled("t", 1, 1));
        assert!(!v1.leader_throttled("other", 0, 1));
        assert!(v2.follower_throttled("t", 1, 2));
        assert!(!v2.follower_throttled("t", 0, 3));
        // Lists without a rate throttle nothing.
        state.broker_configs.clear();
        assert!(!ThrottleView::new(&state, 1).leader_throttled("t", 0, 1));
    }
}
