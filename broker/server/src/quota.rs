//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-219), without I/O: which quota applies to a
//! client, the rate it is measured at, and how long a request that pushed it over is
//! throttled. Byte rates count produced and fetched bytes; the request quota
//! (`request_percentage`) counts the time the broker's threads spend on a client's requests,
//! as a percentage of one thread (200 = two threads' worth).
//!
//! Resolution follows Kafka's precedence, the first entity holding the quota key wins:
//! user + client id, user + default client, user, default user + client id, default user +
//! default client, default user, client id, default client. The matched entity also decides
//! who shares a rate: a quota set for a user alone is shared by all that user's clients,
//! a default client quota gives each client id its own.
//!
//! A rate is measured as Kafka's `Rate` over `samples` windows of `window_ms` each (11 x 1 s
//! by default): the bytes recorded in the windows still kept, over their elapsed time but at
//! least `samples - 1` windows. A request that takes the rate above the quota is throttled
//! for `(rate - quota) / quota * elapsed window`, at most the whole window span.

use std::collections::{BTreeMap, HashMap, VecDeque};

use parking_lot::Mutex;
use runnel_meta::{QuotaEntity, QuotaValue};

/// When a throttled client's connection may be read again (KIP-219): the broker answers at
/// once with the throttle time and reads nothing more from the connection until then.
#[derive(Debug, Default)]
pub(crate) struct Mute(Mutex<Option<std::time::Instant>>);

impl Mute {
    /// Stops reading the connection until `until` (the later of two throttles wins).
    pub(crate) fn until(&self, until: std::time::Instant) {
        let mut at = self.0.lock();
        *at = Some(at.map_or(until, |t| t.max(until)));
    }

    /// The instant reading may resume, if it is muted now; clears it.
    pub(crate) fn take(&self) -> Option<std::time::Instant> {
        self.0.lock().take()
    }
}

/// Milliseconds of `at` on a monotonic clock local to this process (rates only compare them).
pub(crate) fn millis(at: std::time::Instant) -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    i64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(i64::MAX)
}

/// The user of a connection without authentication, as Kafka names it.
pub(crate) const ANONYMOUS: &str = "ANONYMOUS";

/// Which rate a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QuotaKind {
    /// Produce request bytes (`producer_byte_rate`).
    Produce,
    /// Fetch response bytes of consumers (`consumer_byte_rate`).
    Fetch,
    /// Time spent handling the client's requests (`request_percentage`), recorded in
    /// percent-seconds of one thread (see [`percent_seconds`]).
    Request,
}

/// Thread time as the request quota records it: `nanos` of work is `nanos / 10^7` percent of
/// one thread for one second, so the rate over the window (per second) is a percentage.
pub(crate) fn percent_seconds(nanos: u64) -> f64 {
    nanos as f64 / 10_000_000.0
}

impl QuotaKind {
    /// The quota key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }
}

/// Who shares a rate: the components of the matched entity that name the client (None: the
/// quota does not depend on that component).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Sharing {
    user: Option<String>,
    client_id: Option<String>,
}

/// The quota for `key` that applies to `user`'s client `client_id`, with who shares it.
pub(crate) fn resolve(
    quotas: &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(Sharing, f64)> {
    let named = |s: &str| Some(Some(s.to_string()));
    let default = Some(None);
    let u = || Some(user.to_string());
    let c = || Some(client_id.to_string());
    // (entity, who shares the rate), in Kafka's precedence.
    let candidates = [
        (named(user), named(client_id), u(), c()),
        (named(user), default.clone(), u(), c()),
        (named(user), None, u(), None),
        (default.clone(), named(client_id), u(), c()),
        (default.clone(), default.clone(), u(), c()),
        (default.clone(), None, u(), None),
        (None, named(client_id), None, c()),
        (None, default.clone(), None, c()),
    ];
    candidates
        .into_iter()
        .find_map(|(user_part, client_part, su, sc)| {
            let entity = QuotaEntity {
                user: user_part,
                client_id: client_part,
            };
            let value = quotas.get(&entity)?.get(key)?;
            Some((
                Sharing {
                    user: su,
                    client_id: sc,
                },
                value.0,
            ))
        })
}

/// Bytes recorded per window, oldest first (Kafka's `SampledStat` behind `Rate`).
#[derive(Debug, Clone)]
pub(crate) struct RateWindow {
    /// (window start ms, bytes recorded in it).
    windows: VecDeque<(i64, f64)>,
    samples: usize,
    window_ms: i64,
}

impl RateWindow {
    /// A rate over `samples` windows of `window_ms`.
    pub(crate) fn new(samples: usize, window_ms: i64) -> RateWindow {
        RateWindow {
            windows: VecDeque::new(),
            samples: samples.max(2),
            window_ms: window_ms.max(1),
        }
    }

    fn purge(&mut self, now_ms: i64) {
        let span = self.window_ms * i64::try_from(self.samples).unwrap_or(i64::MAX);
        while self
            .windows
            .front()
            .is_some_and(|(start, _)| now_ms - start >= span)
        {
            self.windows.pop_front();
        }
    }

    /// Adds `value` at `now_ms` (negative to take back a recorded value).
    pub(crate) fn record(&mut self, now_ms: i64, value: f64) {
        self.purge(now_ms);
        match self.windows.back_mut() {
            Some((start, total)) if now_ms - *start < self.window_ms => *total += value,
            _ => {
                self.windows.push_back((now_ms, value));
                while self.windows.len() > self.samples {
                    self.windows.pop_front();
                }
            }
        }
    }

    /// The measured span in ms: since the oldest kept window, at least `samples - 1` windows.
    fn elapsed_ms(&self, now_ms: i64) -> i64 {
        let minimum = self.window_ms * i64::try_from(self.samples - 1).unwrap_or(i64::MAX);
        let since = self.windows.front().map_or(0, |(start, _)| now_ms - start);
        since.max(minimum).max(1)
    }

    /// Bytes per second at `now_ms`.
    pub(crate) fn rate(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let total: f64 = self.windows.iter().map(|(_, v)| v).sum();
        total.max(0.0) * 1000.0 / self.elapsed_ms(now_ms) as f64
    }

    /// How long to throttle a client at `now_ms` whose quota is `bound` bytes per second.
    pub(crate) fn throttle_ms(&mut self, now_ms: i64, bound: f64) -> u64 {
        let rate = self.rate(now_ms);
        if rate <= bound || bound <= 0.0 {
            return 0;
        }
        let elapsed = self.elapsed_ms(now_ms) as f64;
        let max = (self.window_ms * i64::try_from(self.samples).unwrap_or(i64::MAX)) as f64;
        ((rate - bound) / bound * elapsed).min(max).round() as u64
    }
}

/// The broker's rates, one per (kind, who shares it).
pub(crate) struct Quotas {
    samples: usize,
    window_ms: i64,
    rates: Mutex<HashMap<(QuotaKind, Sharing), RateWindow>>,
}

impl Quotas {
    /// Rates over `samples` windows of `window_ms` (Kafka: 11 x 1000).
    pub(crate) fn new(samples: usize, window_ms: i64) -> Quotas {
        Quotas {
            samples,
            window_ms,
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// Records `amount` of `kind` (bytes, or percent-seconds for [`QuotaKind::Request`]) for
    /// `user`'s client `client_id` against the quota that applies (none: nothing is recorded)
    /// and returns how long to throttle it, in ms.
    pub(crate) fn record(
        &self,
        quotas: &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        amount: f64,
        now_ms: i64,
    ) -> u64 {
        let Some((sharing, bound)) = resolve(quotas, user, client_id, kind.key()) else {
            return 0;
        };
        let mut rates = self.rates.lock();
        let rate = rates
            .entry((kind, sharing))
            .or_insert_with(|| RateWindow::new(self.samples, self.window_ms));
        rate.record(now_ms, amount);
        rate.throttle_ms(now_ms, bound)
    }

    /// Takes back `bytes` recorded by [`Quotas::record`] (a throttled fetch sends no records).
    pub(crate) fn unrecord(
        &self,
        quotas: &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: u64,
        now_ms: i64,
    ) {
        let Some((sharing, _)) = resolve(quotas, user, client_id, kind.key()) else {
            return;
        };
        if let Some(rate) = self.rates.lock().get_mut(&(kind, sharing)) {
            rate.record(now_ms, -(bytes as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        QuotaEntity {
            user: user.map(|u| u.map(str::to_string)),
            client_id: client.map(|c| c.map(str::to_string)),
        }
    }

    fn with(entries: &[(QuotaEntity, f64)]) -> BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>> {
        entries
            .iter()
            .map(|(e, v)| {
                (
                    e.clone(),
                    BTreeMap::from([("producer_byte_rate".to_string(), QuotaValue(*v))]),
                )
            })
            .collect()
    }

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let all = [
            (entity(Some(Some("u")), Some(Some("c"))), 1.0),
            (entity(Some(Some("u")), Some(None)), 2.0),
            (entity(Some(Some("u")), None), 3.0),
            (entity(Some(None), Some(Some("c"))), 4.0),
            (entity(Some(None), Some(None)), 5.0),
            (entity(Some(None), None), 6.0),
            (entity(None, Some(Some("c"))), 7.0),
            (entity(None, Some(None)), 8.0),
        ];
        for skip in 0..all.len() {
            let quotas = with(&all[skip..]);
            let (_, bound) = resolve(&quotas, "u", "c", "producer_byte_rate").expect("a quota");
            assert_eq!(bound, all[skip].1, "with the first {skip} entities absent");
        }
        assert!(resolve(&BTreeMap::new(), "u", "c", "producer_byte_rate").is_none());
        // Another key is not this key's quota.
        assert!(resolve(&with(&all), "u", "c", "consumer_byte_rate").is_none());
    }

    #[test]
    fn a_default_client_quota_gives_each_client_its_own_rate_and_a_user_quota_is_shared() {
        let per_client = with(&[(entity(None, Some(None)), 100.0)]);
        let (a, _) = resolve(&per_client, ANONYMOUS, "a", "producer_byte_rate").expect("a");
        let (b, _) = resolve(&per_client, ANONYMOUS, "b", "producer_byte_rate").expect("b");
        assert_ne!(a, b);
        let per_user = with(&[(entity(Some(Some("u")), None), 100.0)]);
        let (a, _) = resolve(&per_user, "u", "a", "producer_byte_rate").expect("a");
        let (b, _) = resolve(&per_user, "u", "b", "producer_byte_rate").expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn the_rate_is_measured_over_the_kept_windows_with_kafkas_minimum_span() {
        let mut r = RateWindow::new(11, 1000);
        r.record(0, 10_000.0);
        // One window of data over the 10 s minimum span.
        assert_eq!(r.rate(500), 1000.0);
        for s in 1..11 {
            r.record(s * 1000, 10_000.0);
        }
        // 110 kB over 10 s and a bit.
        assert!(
            (r.rate(10_000) - 11_000.0).abs() < 1.0,
            "{}",
            r.rate(10_000)
        );
        // Windows older than 11 s are dropped.
        assert!((r.rate(20_000) - 1_000.0).abs() < 1.0, "{}", r.rate(20_000));
        assert_eq!(r.rate(40_000), 0.0);
    }

    #[test]
    fn throttle_time_is_the_excess_over_the_quota_times_the_window() {
        let mut r = RateWindow::new(11, 1000);
        r.record(0, 20_000.0);
        // 20 kB over 10 s = 2 kB/s against 1 kB/s: (2 - 1) / 1 * 10 s.
        assert_eq!(r.throttle_ms(0, 1000.0), 10_000);
        assert_eq!(r.throttle_ms(0, 2000.0), 0);
        // Capped at the whole span (11 s).
        r.record(1, 1_000_000.0);
        assert_eq!(r.throttle_ms(1, 1000.0), 11_000);
    }

    #[test]
    fn only_clients_with_a_quota_are_measured_and_unrecord_takes_bytes_back() {
        let quotas = with(&[(entity(None, Some(Some("slow"))), 1000.0)]);
        let q = Quotas::new(11, 1000);
        assert_eq!(
            q.record(
                &quotas,
                QuotaKind::Produce,
                ANONYMOUS,
                "fast",
                (1u64 << 30) as f64,
                0
            ),
            0
        );
        assert_eq!(
            q.record(&quotas, QuotaKind::Produce, ANONYMOUS, "slow", 5_000.0, 0),
            0,
            "5 kB over 10 s is 500 B/s"
        );
        let t = q.record(&quotas, QuotaKind::Produce, ANONYMOUS, "slow", 15_000.0, 0);
        assert_eq!(t, 10_000);
        q.unrecord(&quotas, QuotaKind::Produce, ANONYMOUS, "slow", 15_000, 0);
        assert_eq!(
            q.record(&quotas, QuotaKind::Produce, ANONYMOUS, "slow", 0.0, 0),
            0
        );
        // The fetch rate is separate.
        assert_eq!(
            q.record(
                &quotas,
                QuotaKind::Fetch,
                ANONYMOUS,
                "slow",
                (1u64 << 30) as f64,
                0
            ),
            0
        );
    }

    #[test]
    fn the_request_quota_is_a_percentage_of_one_thread() {
        let mut quotas = with(&[]);
        quotas.insert(
            entity(None, Some(Some("busy"))),
            [("request_percentage".to_string(), QuotaValue(50.0))].into(),
        );
        let q = Quotas::new(11, 1000);
        // 4 s of thread time over the minimum 10 s span: 40 % of a thread, under 50 %.
        let t = q.record(
            &quotas,
            QuotaKind::Request,
            ANONYMOUS,
            "busy",
            percent_seconds(4_000_000_000),
            0,
        );
        assert_eq!(t, 0);
        // 2 s more: 60 %, a fifth over the quota: throttled a fifth of the span.
        let t = q.record(
            &quotas,
            QuotaKind::Request,
            ANONYMOUS,
            "busy",
            percent_seconds(2_000_000_000),
            0,
        );
        assert_eq!(t, 2_000);
        // Byte quotas do not apply to it, nor it to them.
        assert_eq!(
            q.record(&quotas, QuotaKind::Produce, ANONYMOUS, "busy", 1e12, 0),
            0
        );
    }
}
