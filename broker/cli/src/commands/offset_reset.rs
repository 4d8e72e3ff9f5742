//! The pure part of `runnel group reset-offsets`: parsing `--topic T:P,P`
//! and `--to-datetime`, and computing the new offset of every partition from
//! its committed offset and log bounds. Every new offset lies within
//! [log start, log end], as Kafka's tool guarantees.

use serde::Serialize;

/// `--topic T` or `--topic T:0,2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicSpec {
    pub(crate) topic: String,
    /// `None`: every partition of the topic.
    pub(crate) partitions: Option<Vec<i32>>,
}

/// Parses `TOPIC` or `TOPIC:P,P,...`.
pub(crate) fn parse_topic_spec(s: &str) -> Result<TopicSpec, String> {
    let (topic, parts) = match s.rsplit_once(':') {
        Some((t, p)) => (t, Some(p)),
        None => (s, None),
    };
    if topic.is_empty() {
        return Err(format!("expected TOPIC or TOPIC:P,P..., got '{s}'"));
    }
    let partitions = match parts {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for p in list.split(',') {
                let n: i32 = p
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("'{p}' in '{s}' is not a partition number"))?;
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            out.sort_unstable();
            Some(out)
        }
    };
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions,
    })
}

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetMode {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// The first record at or after this time (ms since the epoch); the log
    /// end when there is none.
    Datetime(i64),
    /// This offset, clamped to the log.
    Offset(i64),
    /// The committed offset plus this (may be negative), clamped to the log.
    ShiftBy(i64),
}

/// What is known about one partition before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionState {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The group's committed offset, if any.
    pub(crate) committed: Option<i64>,
    /// Log start offset.
    pub(crate) earliest: i64,
    /// Log end offset.
    pub(crate) latest: i64,
    /// ListOffsets by timestamp (for [`ResetMode::Datetime`]); `None` when
    /// no record is that recent.
    pub(crate) at_time: Option<i64>,
}

/// One row of the plan; also the `--output json` shape of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlanRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// `null` when the group has no committed offset there.
    pub(crate) current_offset: Option<i64>,
    pub(crate) new_offset: i64,
}

/// Computes the new offset of every partition, sorted by topic and partition.
pub(crate) fn plan(mode: ResetMode, states: &[PartitionState]) -> Result<Vec<PlanRow>, String> {
    let mut rows = Vec::with_capacity(states.len());
    for s in states {
        let clamp = |o: i64| o.clamp(s.earliest, s.latest.max(s.earliest));
        let new_offset = match mode {
            ResetMode::Earliest => s.earliest,
            ResetMode::Latest => s.latest,
            ResetMode::Datetime(_) => clamp(s.at_time.unwrap_or(s.latest)),
            ResetMode::Offset(o) => clamp(o),
            ResetMode::ShiftBy(n) => {
                let current = s.committed.ok_or_else(|| {
                    format!(
                        "cannot shift topic '{}' partition {}: the group has no committed offset there",
                        s.topic, s.partition
                    )
                })?;
                clamp(current.saturating_add(n))
            }
        };
        rows.push(PlanRow {
            topic: s.topic.clone(),
            partition: s.partition,
            current_offset: s.committed,
            new_offset,
        });
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(rows)
}

/// Parses an ISO 8601 date-time such as `2026-01-01T00:00:00Z`,
/// `2026-01-01T10:30:00.250+02:00` or `2026-01-01T00:00:00` (no zone means
/// UTC), returning milliseconds since the Unix epoch.
pub(crate) fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("'{s}' is not a date-time like 2026-01-01T00:00:00Z ({why})");
    let b = s.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = b.get(range).ok_or_else(|| bad("too short"))?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits"));
        }
        Ok(digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |i: usize, c: &[u8]| -> Result<(), String> {
        match b.get(i) {
            Some(x) if c.contains(x) => Ok(()),
            _ => Err(bad(&format!(
                "expected '{}' at position {}",
                c[0] as char,
                i + 1
            ))),
        }
    };
    let year = num(0..4)?;
    expect(4, b"-")?;
    let month = num(5..7)?;
    expect(7, b"-")?;
    let day = num(8..10)?;
    expect(10, b"Tt ")?;
    let hour = num(11..13)?;
    expect(13, b":")?;
    let minute = num(14..16)?;
    expect(16, b":")?;
    let second = num(17..19)?;
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err(bad("expected digits after '.'"));
        }
        // Milliseconds: pad or cut the fraction to three digits.
        let frac: String = b[start..end]
            .iter()
            .map(|&d| d as char)
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        millis = frac.parse().map_err(|_| bad("bad fraction"))?;
        i = end;
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let h = num(i + 1..i + 3)?;
            let m = match (b.get(i + 3), b.len()) {
                (Some(b':'), n) if n == i + 6 => num(i + 4..i + 6)?,
                (Some(_), n) if n == i + 5 => num(i + 3..i + 5)?,
                (None, _) => 0,
                _ => return Err(bad("bad zone offset")),
            };
            if h > 23 || m > 59 {
                return Err(bad("zone offset out of range"));
            }
            let total = h * 60 + m;
            if sign == b'+' {
                total
            } else {
                -total
            }
        }
        Some(_) => return Err(bad("unexpected text after the seconds")),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad("a field is out of range"));
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: count whole years
/// from 1970, then whole months of the year.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let leap_days_before = |year: i64| {
        // Leap years in [1, year).
        let p = year - 1;
        p / 4 - p / 100 + p / 400
    };
    let years = (y - 1970) * 365 + leap_days_before(y) - leap_days_before(1970);
    let months: i64 = (1..m).map(|mm| days_in_month(y, mm)).sum();
    years + months + d - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(committed: Option<i64>, earliest: i64, latest: i64) -> PartitionState {
        PartitionState {
            topic: "t".into(),
            partition: 0,
            committed,
            earliest,
            latest,
            at_time: None,
        }
    }

    fn new_offset(mode: ResetMode, s: PartitionState) -> i64 {
        plan(mode, &[s]).expect("plan")[0].new_offset
    }

    #[test]
    fn to_earliest_and_latest_use_the_log_bounds() {
        assert_eq!(new_offset(ResetMode::Earliest, state(Some(7), 3, 10)), 3);
        assert_eq!(new_offset(ResetMode::Latest, state(Some(7), 3, 10)), 10);
        assert_eq!(new_offset(ResetMode::Latest, state(None, 0, 0)), 0);
    }

    #[test]
    fn to_offset_is_clamped_to_the_log() {
        assert_eq!(new_offset(ResetMode::Offset(5), state(None, 3, 10)), 5);
        assert_eq!(new_offset(ResetMode::Offset(1), state(None, 3, 10)), 3);
        assert_eq!(new_offset(ResetMode::Offset(99), state(None, 3, 10)), 10);
    }

    #[test]
    fn shift_by_moves_from_the_committed_offset_within_the_log() {
        assert_eq!(new_offset(ResetMode::ShiftBy(-2), state(Some(7), 3, 10)), 5);
        assert_eq!(new_offset(ResetMode::ShiftBy(2), state(Some(7), 3, 10)), 9);
        assert_eq!(
            new_offset(ResetMode::ShiftBy(-100), state(Some(7), 3, 10)),
            3
        );
        assert_eq!(
            new_offset(ResetMode::ShiftBy(100), state(Some(7), 3, 10)),
            10
        );
        assert_eq!(
            new_offset(ResetMode::ShiftBy(i64::MAX), state(Some(7), 3, 10)),
            10,
            "no overflow"
        );
    }

    #[test]
    fn shift_by_without_a_committed_offset_is_an_error_naming_the_partition() {
        let err = plan(ResetMode::ShiftBy(1), &[state(None, 0, 5)]).expect_err("must fail");
        assert!(err.contains("topic 't' partition 0"), "{err}");
    }

    #[test]
    fn to_datetime_uses_the_offset_for_the_time_or_the_log_end() {
        let mut s = state(Some(9), 0, 10);
        s.at_time = Some(4);
        assert_eq!(new_offset(ResetMode::Datetime(1), s), 4);
        assert_eq!(
            new_offset(ResetMode::Datetime(1), state(Some(9), 0, 10)),
            10,
            "no record that recent: the log end"
        );
    }

    #[test]
    fn plan_keeps_the_current_offset_and_sorts_rows() {
        let mut a = state(Some(2), 0, 10);
        a.partition = 1;
        let b = state(None, 0, 10);
        let rows = plan(ResetMode::Earliest, &[a, b]).expect("plan");
        assert_eq!(
            rows,
            vec![
                PlanRow {
                    topic: "t".into(),
                    partition: 0,
                    current_offset: None,
                    new_offset: 0
                },
                PlanRow {
                    topic: "t".into(),
                    partition: 1,
                    current_offset: Some(2),
                    new_offset: 0
                },
            ]
        );
    }

    #[test]
    fn datetimes_parse_to_epoch_milliseconds() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00Z"),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            parse_datetime("2000-02-29T12:00:00.5Z"),
            Ok(951_825_600_500)
        );
        assert_eq!(
            parse_datetime("2026-01-01T02:00:00+02:00"),
            parse_datetime("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_datetime("2025-12-31T19:00:00-0500"),
            parse_datetime("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_datetime("2026-01-01T00:00:00"),
            parse_datetime("2026-01-01T00:00:00Z"),
            "no zone means UTC"
        );
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn malformed_datetimes_are_refused() {
        for s in [
            "",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00Q",
            "2026/01/01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(parse_datetime(s).is_err(), "{s:?} must be refused");
        }
    }

    #[test]
    fn topic_specs_name_all_or_some_partitions() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:2,0,2"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2])
            })
        );
        assert!(parse_topic_spec("orders:x").is_err());
        assert!(parse_topic_spec(":1").is_err());
        assert!(parse_topic_spec("orders:-1").is_err());
    }
}
