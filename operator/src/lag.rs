//! Sans-IO core of the Consumer reconciler: lag from committed and log end offsets, the bounded
//! per-partition list for the status, and whether an offset reset may run now.

use crate::crd::{ConsumerSpec, PartitionLag, MAX_LAG_ENTRIES};

/// Offsets of one partition the group has committed to, as the brokers report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The group's committed offset.
    pub committed_offset: i64,
    /// The partition's log end offset.
    pub log_end_offset: i64,
}

/// Lag figures for a Consumer status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LagSummary {
    /// Sum of all partitions' lag.
    pub total_lag: i64,
    /// Largest lag of one partition.
    pub max_lag: i64,
    /// Per partition, largest lag first (ties by topic, partition), at most MAX_LAG_ENTRIES.
    pub partitions: Vec<PartitionLag>,
    /// True when the spec's lagAlert.maxLag is exceeded by some partition.
    pub lag_high: bool,
}

/// Computes the lag of the partitions the spec's `topics` filter selects.
pub fn summarize_lag(spec: &ConsumerSpec, offsets: &[PartitionOffsets]) -> LagSummary {
    let mut partitions: Vec<PartitionLag> = offsets
        .iter()
        .filter(|o| spec.topics.is_empty() || spec.topics.contains(&o.topic))
        .map(|o| PartitionLag {
            topic: o.topic.clone(),
            partition: o.partition,
            committed_offset: o.committed_offset,
            log_end_offset: o.log_end_offset,
            // A committed offset past the end (e.g. after truncation) is no lag, not negative lag.
            lag: (o.log_end_offset - o.committed_offset).max(0),
        })
        .collect();
    let total_lag = partitions.iter().map(|p| p.lag).sum();
    let max_lag = partitions.iter().map(|p| p.lag).max().unwrap_or(0);
    partitions.sort_by(|a, b| {
        b.lag
            .cmp(&a.lag)
            .then_with(|| a.topic.cmp(&b.topic))
            .then_with(|| a.partition.cmp(&b.partition))
    });
    partitions.truncate(MAX_LAG_ENTRIES);
    let lag_high = spec.lag_alert.as_ref().is_some_and(|a| max_lag > a.max_lag);
    LagSummary {
        total_lag,
        max_lag,
        partitions,
        lag_high,
    }
}

/// What to do about `spec.offsetReset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetDecision {
    /// No reset requested, or this nonce was applied already.
    Nothing,
    /// A new nonce, but the group has members: wait (condition ResetPending=True).
    WaitForEmptyGroup {
        /// Current member count.
        members: i32,
    },
    /// A new nonce and an empty group: apply the reset now, then record the nonce.
    Apply,
}

/// Decides whether the requested offset reset runs now.
pub fn reset_decision(
    spec: &ConsumerSpec,
    last_applied_nonce: Option<&str>,
    members: i32,
) -> ResetDecision {
    match &spec.offset_reset {
        Some(reset) if Some(reset.nonce.as_str()) != last_applied_nonce => {
            if members > 0 {
                ResetDecision::WaitForEmptyGroup { members }
            } else {
                ResetDecision::Apply
            }
        }
        _ => ResetDecision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClusterReference, LagAlert, OffsetReset, ResetStrategy};

    fn spec(topics: &[&str], max_lag: Option<i64>) -> ConsumerSpec {
        ConsumerSpec {
            cluster_ref: ClusterReference {
                name: "demo".into(),
            },
            group_id: "billing".into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            lag_alert: max_lag.map(|max_lag| LagAlert { max_lag }),
            offset_reset: None,
        }
    }

    fn offsets(topic: &str, partition: i32, committed: i64, end: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: topic.into(),
            partition,
            committed_offset: committed,
            log_end_offset: end,
        }
    }

    #[test]
    fn lag_is_end_minus_committed_largest_first() {
        let s = spec(&[], Some(50));
        let summary = summarize_lag(
            &s,
            &[
                offsets("orders", 0, 10, 20),
                offsets("orders", 1, 0, 100),
                offsets("audit", 0, 7, 5),
            ],
        );
        assert_eq!(summary.total_lag, 110);
        assert_eq!(summary.max_lag, 100);
        assert!(summary.lag_high);
        let order: Vec<(&str, i32, i64)> = summary
            .partitions
            .iter()
            .map(|p| (p.topic.as_str(), p.partition, p.lag))
            .collect();
        assert_eq!(
            order,
            [("orders", 1, 100), ("orders", 0, 10), ("audit", 0, 0)]
        );
    }

    #[test]
    fn topics_filter_and_threshold_apply() {
        let s = spec(&["audit"], Some(5));
        let summary = summarize_lag(
            &s,
            &[offsets("orders", 0, 0, 1000), offsets("audit", 0, 0, 5)],
        );
        assert_eq!(
            (summary.total_lag, summary.max_lag, summary.lag_high),
            (5, 5, false)
        );
        assert_eq!(summary.partitions.len(), 1);
    }

    #[test]
    fn lag_list_is_bounded() {
        let many: Vec<PartitionOffsets> =
            (0..500).map(|p| offsets("t", p, 0, i64::from(p))).collect();
        let summary = summarize_lag(&spec(&[], None), &many);
        assert_eq!(summary.partitions.len(), MAX_LAG_ENTRIES);
        assert_eq!(summary.partitions[0].lag, 499);
        assert_eq!(summary.total_lag, (0..500).sum::<i64>());
        assert!(!summary.lag_high, "no lagAlert, no LagHigh");
    }

    #[test]
    fn a_new_nonce_resets_only_an_empty_group_once() {
        let mut s = spec(&[], None);
        assert_eq!(reset_decision(&s, None, 0), ResetDecision::Nothing);
        s.offset_reset = Some(OffsetReset {
            strategy: ResetStrategy::Earliest,
            timestamp: None,
            offsets: vec![],
            nonce: "2".into(),
        });
        assert_eq!(
            reset_decision(&s, Some("1"), 3),
            ResetDecision::WaitForEmptyGroup { members: 3 }
        );
        assert_eq!(reset_decision(&s, Some("1"), 0), ResetDecision::Apply);
        assert_eq!(reset_decision(&s, Some("2"), 0), ResetDecision::Nothing);
    }
}
