//! The leader side of one partition's replication, with no I/O: the position
//! each ISR member has durably reached, the high watermark derived from them,
//! Kafka's `lastCaughtUpTime` rule for shrinking the ISR, the expansion rule,
//! and `acks=all` completion. It proposes ISR changes (for the caller to send
//! as AlterIsr) instead of applying them; the ISR changes only when the
//! metadata that commits it arrives through [`LeaderState::update_assignment`].
//! Time is a parameter (`now_ms`), so tests drive it with a fake clock.

use std::collections::BTreeMap;

/// A broker id.
pub(crate) type BrokerId = i32;

/// Why an `acks=all` append cannot be (or was not) acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckError {
    /// NOT_ENOUGH_REPLICAS (19): the ISR was below `min.insync.replicas` at
    /// append time; nothing is appended.
    NotEnoughReplicas,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): the batch was appended but the
    /// ISR shrank below `min.insync.replicas` before it was committed.
    NotEnoughReplicasAfterAppend,
}

/// Where an `acks=all` append stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckStatus {
    /// The high watermark has not reached the append's end offset yet.
    Pending,
    /// Committed on every ISR member, with the ISR at least `min.insync.replicas`.
    Done,
    /// Committed, but the ISR is now too small (or was at append time).
    Failed(AckError),
}

/// An ISR change the leader wants committed through the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsrChange {
    /// The proposed ISR.
    pub isr: Vec<BrokerId>,
    /// The leader epoch it is proposed under.
    pub leader_epoch: i32,
    /// The partition epoch of the view it is based on.
    pub partition_epoch: i32,
}

/// What the leader needs to know about its partition when it takes over.
#[derive(Debug, Clone)]
pub(crate) struct LeaderInit {
    /// This broker.
    pub me: BrokerId,
    /// The leader epoch this broker leads under.
    pub leader_epoch: i32,
    /// The partition epoch of the metadata.
    pub partition_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<BrokerId>,
    /// Committed ISR.
    pub isr: Vec<BrokerId>,
    /// Log end offset when the epoch started (a follower below it cannot join the ISR).
    pub epoch_start_offset: i64,
    /// The leader's log end offset.
    pub log_end_offset: i64,
    /// The leader's durable position (its synced offset).
    pub leader_position: i64,
    /// The checkpointed high watermark (the HW never moves back on the leader).
    pub high_watermark: i64,
    /// `replica_lag_time_max_ms`.
    pub lag_max_ms: i64,
}

/// Replication progress of one follower, as the leader sees it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The follower's last fetch offset: it has appended and fsynced every
    /// offset below it. -1 until it fetches from this leader.
    position: i64,
    /// Last time the follower was caught up to the leader's log end.
    last_caught_up_ms: i64,
    /// Time of its previous fetch and the leader's log end offset then.
    last_fetch_ms: i64,
    last_fetch_leader_leo: i64,
}

/// The leader's replication state of one partition. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct LeaderState {
    me: BrokerId,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    /// An ISR change sent to the quorum and not yet seen in the metadata.
    /// While it is in flight the HW counts the union of both ISRs (Kafka's
    /// "maximal ISR"), and no other change is proposed.
    pending: Option<Vec<BrokerId>>,
    followers: BTreeMap<BrokerId, Follower>,
    epoch_start_offset: i64,
    leader_leo: i64,
    leader_position: i64,
    hw: i64,
    lag_max_ms: i64,
}

impl LeaderState {
    /// A new leader's state. ISR followers count as caught up at `now_ms`
    /// (they get a full lag period to fetch from the new leader); their
    /// positions are unknown until they fetch, so the HW starts at the
    /// checkpointed value.
    pub(crate) fn new(init: LeaderInit, now_ms: i64) -> LeaderState {
        let mut state = LeaderState {
            me: init.me,
            leader_epoch: init.leader_epoch,
            partition_epoch: init.partition_epoch,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending: None,
            followers: BTreeMap::new(),
            epoch_start_offset: init.epoch_start_offset,
            leader_leo: init.log_end_offset,
            leader_position: init.leader_position.min(init.log_end_offset),
            hw: init.high_watermark.min(init.log_end_offset).max(0),
            lag_max_ms: init.lag_max_ms,
        };
        state.update_assignment(init.partition_epoch, init.replicas, init.isr, now_ms);
        state.recompute_hw();
        state
    }

    /// New committed metadata for the partition (same leader epoch): the
    /// replica set and ISR replace the local view and any in-flight change is
    /// settled. Returns the new HW if it advanced (a shrink can let it move).
    pub(crate) fn update_assignment(
        &mut self,
        partition_epoch: i32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        now_ms: i64,
    ) -> Option<i64> {
        self.partition_epoch = partition_epoch;
        self.pending = None;
        self.followers.retain(|id, _| replicas.contains(id));
        for &id in &replicas {
            if id != self.me {
                self.followers.entry(id).or_insert(Follower {
                    position: -1,
                    // A replica already in the ISR gets a full lag period;
                    // one outside it has never been caught up.
                    last_caught_up_ms: if isr.contains(&id) { now_ms } else { 0 },
                    last_fetch_ms: 0,
                    last_fetch_leader_leo: -1,
                });
            }
        }
        self.replicas = replicas;
        self.isr = isr;
        self.recompute_hw()
    }

    /// The leader appended: its log end offset is now `leo`.
    pub(crate) fn on_leader_append(&mut self, leo: i64) {
        self.leader_leo = self.leader_leo.max(leo);
    }

    /// The leader's log was fsynced up to `synced` (exclusive). Returns the new
    /// HW if it advanced.
    pub(crate) fn on_leader_synced(&mut self, synced: i64) -> Option<i64> {
        self.leader_position = self.leader_position.max(synced.min(self.leader_leo));
        self.recompute_hw()
    }

    /// A follower fetched from `fetch_offset` at `now_ms`, which says it holds
    /// (durably) every offset below. Updates its position and caught-up time
    /// (Kafka's rule: caught up now if it reached the leader's current end,
    /// or caught up as of its previous fetch if it reached the end the leader
    /// had then), may advance the HW and may propose an ISR expansion.
    pub(crate) fn on_follower_fetch(
        &mut self,
        follower: BrokerId,
        fetch_offset: i64,
        now_ms: i64,
    ) -> FetchProgress {
        let leo = self.leader_leo;
        let Some(f) = self.followers.get_mut(&follower) else {
            return FetchProgress::default();
        };
        // An offset past the leader's end is a diverged tail, not replicated data.
        let offset = fetch_offset.min(leo);
        f.position = offset;
        if offset >= leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_leo = leo;
        let high_watermark = self.recompute_hw();
        let isr_change = self.maybe_expand(follower);
        FetchProgress {
            high_watermark,
            isr_change,
        }
    }

    fn maybe_expand(&mut self, follower: BrokerId) -> Option<IsrChange> {
        if self.pending.is_some() || self.isr.contains(&follower) {
            return None;
        }
        let position = self.followers.get(&follower)?.position;
        if position < self.hw || position < self.epoch_start_offset {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(follower);
        isr.sort_unstable();
        Some(self.propose(isr))
    }

    /// Followers in the ISR that are behind the leader's end and have not
    /// been caught up for `replica_lag_time_max_ms` are proposed for removal
    /// (the leader itself always stays). Call periodically.
    pub(crate) fn maybe_shrink(&mut self, now_ms: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let out: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|id| *id != self.me)
            .filter(|id| {
                self.followers.get(id).is_none_or(|f| {
                    f.position < self.leader_leo
                        && now_ms.saturating_sub(f.last_caught_up_ms) > self.lag_max_ms
                })
            })
            .collect();
        if out.is_empty() {
            return None;
        }
        let isr = self
            .isr
            .iter()
            .copied()
            .filter(|id| !out.contains(id))
            .collect();
        Some(self.propose(isr))
    }

    fn propose(&mut self, isr: Vec<BrokerId>) -> IsrChange {
        self.pending = Some(isr.clone());
        IsrChange {
            isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }

    /// The in-flight ISR change was refused or lost; a later call may propose again.
    pub(crate) fn isr_change_failed(&mut self) {
        self.pending = None;
    }

    /// The HW is the minimum durable position over the maximal ISR (the
    /// committed ISR plus a pending expansion's new member); it never moves back.
    fn recompute_hw(&mut self) -> Option<i64> {
        let mut members: Vec<BrokerId> = self.isr.clone();
        if let Some(pending) = &self.pending {
            members.extend(pending.iter().filter(|id| !self.isr.contains(id)));
        }
        if !members.contains(&self.me) {
            members.push(self.me);
        }
        let candidate = members
            .iter()
            .map(|id| {
                if *id == self.me {
                    self.leader_position
                } else {
                    self.followers.get(id).map_or(-1, |f| f.position)
                }
            })
            .min()
            .unwrap_or(self.leader_position);
        if candidate > self.hw {
            self.hw = candidate;
            Some(candidate)
        } else {
            None
        }
    }

    /// Before an `acks=all` append: refused when the committed ISR is smaller
    /// than `min_isr`.
    pub(crate) fn check_append(&self, min_isr: usize) -> Result<(), AckError> {
        if self.isr.len() < min_isr {
            Err(AckError::NotEnoughReplicas)
        } else {
            Ok(())
        }
    }

    /// Whether an `acks=all` append ending at `end_offset` (exclusive) is
    /// complete: once the HW covers it, it succeeds if the ISR still has at
    /// least `min_isr` members and fails with NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// otherwise (Kafka's checkEnoughReplicasReachOffset).
    pub(crate) fn ack_status(&self, end_offset: i64, min_isr: usize) -> AckStatus {
        if self.hw < end_offset {
            AckStatus::Pending
        } else if self.isr.len() < min_isr {
            AckStatus::Failed(AckError::NotEnoughReplicasAfterAppend)
        } else {
            AckStatus::Done
        }
    }

    /// The high watermark.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.hw
    }

    /// The committed ISR.
    pub(crate) fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// Assigned replicas.
    pub(crate) fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// The leader epoch.
    pub(crate) fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition epoch of the last metadata seen.
    pub(crate) fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The leader's log end offset as last reported.
    #[cfg(test)]
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.leader_leo
    }

    /// True while an ISR change is in flight.
    #[cfg(test)]
    pub(crate) fn has_pending_change(&self) -> bool {
        self.pending.is_some()
    }

    /// KIP-392 (Kafka's RackAwareReplicaSelector): the replica a consumer in `client_rack`
    /// should fetch `fetch_offset` from, when it is not this leader. None when the leader is
    /// in that rack itself, or no in-sync follower there holds the offset yet. Among several,
    /// the one furthest ahead (then the lowest id). `rack_of` gives the rack of a live
    /// (unfenced) broker, None for a dead or rackless one.
    pub(crate) fn preferred_read_replica(
        &self,
        fetch_offset: i64,
        client_rack: &str,
        rack_of: impl Fn(BrokerId) -> Option<String>,
    ) -> Option<BrokerId> {
        if rack_of(self.me).as_deref() == Some(client_rack) {
            return None;
        }
        self.isr
            .iter()
            .filter(|id| **id != self.me)
            .filter_map(|id| {
                let position = self.followers.get(id)?.position;
                (position >= fetch_offset && rack_of(*id).as_deref() == Some(client_rack))
                    .then_some((position, std::cmp::Reverse(*id)))
            })
            .max()
            .map(|(_, std::cmp::Reverse(id))| id)
    }

    /// Records each follower is behind the leader's end (unknown position = whole log).
    pub(crate) fn follower_lags(&self) -> Vec<(BrokerId, i64)> {
        self.followers
            .iter()
            .map(|(id, f)| (*id, self.leader_leo - f.position.max(0)))
            .collect()
    }
}

/// What a follower fetch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FetchProgress {
    /// The new HW, if it advanced.
    pub high_watermark: Option<i64>,
    /// An ISR expansion to propose, if the follower caught up.
    pub isr_change: Option<IsrChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 10_000;

    fn leader(replicas: &[BrokerId], isr: &[BrokerId], leo: i64, now: i64) -> LeaderState {
        LeaderState::new(
            LeaderInit {
                me: 1,
                leader_epoch: 5,
                partition_epoch: 7,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                epoch_start_offset: leo,
                log_end_offset: leo,
                leader_position: leo,
                high_watermark: 0,
                lag_max_ms: LAG,
            },
            now,
        )
    }

    /// Appends `n` records and fsyncs them on the leader.
    fn append_synced(s: &mut LeaderState, n: i64) -> i64 {
        let end = s.log_end_offset() + n;
        s.on_leader_append(end);
        s.on_leader_synced(end);
        end
    }

    #[test]
    fn a_consumer_is_sent_to_the_in_sync_follower_of_its_rack_that_holds_the_offset() {
        let racks = |id: BrokerId| -> Option<String> {
            match id {
                1 => Some("a".into()),
                2 | 3 => Some("b".into()),
                4 => Some("c".into()),
                _ => None,
            }
        };
        let mut s = leader(&[1, 2, 3, 4], &[1, 2, 3, 4], 0, 0);
        let end = append_synced(&mut s, 100);
        // Followers that never fetched hold nothing the leader knows of.
        assert_eq!(s.preferred_read_replica(0, "b", racks), None);
        s.on_follower_fetch(2, 60, 1);
        s.on_follower_fetch(3, end, 1);
        s.on_follower_fetch(4, end, 1);
        // The one furthest ahead of the two in rack b.
        assert_eq!(s.preferred_read_replica(50, "b", racks), Some(3));
        s.on_follower_fetch(2, end, 2);
        // Equally far: the lowest id.
        assert_eq!(s.preferred_read_replica(50, "b", racks), Some(2));
        // An offset no follower holds yet stays on the leader.
        assert_eq!(s.preferred_read_replica(end + 1, "b", racks), None);
        // The leader's own rack, an unknown rack: the leader.
        assert_eq!(s.preferred_read_replica(50, "a", racks), None);
        assert_eq!(s.preferred_read_replica(50, "z", racks), None);
        // A dead broker (no rack given) is never chosen.
        assert_eq!(
            s.preferred_read_replica(50, "c", |id| (id != 4).then(|| racks(id)).flatten()),
            None
        );
        assert_eq!(s.preferred_read_replica(50, "c", racks), Some(4));
        // Out of the ISR: not chosen.
        let mut s = leader(&[1, 2, 3, 4], &[1, 2], 0, 0);
        let end = append_synced(&mut s, 100);
        s.on_follower_fetch(4, end, 1);
        assert_eq!(s.preferred_read_replica(50, "c", racks), None);
    }

    #[test]
    fn single_replica_high_watermark_is_the_synced_offset() {
        let mut s = leader(&[1], &[1], 0, 0);
        assert_eq!(s.high_watermark(), 0);
        s.on_leader_append(10);
        assert_eq!(
            s.high_watermark(),
            0,
            "appended but not fsynced is not committed"
        );
        assert_eq!(s.on_leader_synced(6), Some(6));
        assert_eq!(s.on_leader_synced(10), Some(10));
        assert_eq!(s.ack_status(10, 1), AckStatus::Done);
    }

    #[test]
    fn new_leader_starts_at_checkpointed_hw_until_followers_fetch() {
        let mut s = LeaderState::new(
            LeaderInit {
                me: 1,
                leader_epoch: 2,
                partition_epoch: 3,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                epoch_start_offset: 50,
                log_end_offset: 50,
                leader_position: 50,
                high_watermark: 40,
                lag_max_ms: LAG,
            },
            0,
        );
        assert_eq!(s.high_watermark(), 40);
        assert_eq!(s.on_follower_fetch(2, 50, 1).high_watermark, Some(50));
    }

    #[test]
    fn hw_is_the_minimum_durable_position_over_the_isr() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        append_synced(&mut s, 10);
        assert_eq!(s.high_watermark(), 0, "followers have not fetched yet");
        assert_eq!(s.on_follower_fetch(2, 10, 1).high_watermark, None);
        assert_eq!(s.on_follower_fetch(3, 4, 1).high_watermark, Some(4));
        assert_eq!(s.on_follower_fetch(3, 10, 2).high_watermark, Some(10));
        assert_eq!(s.high_watermark(), 10);
    }

    #[test]
    fn leader_unsynced_data_holds_back_the_hw() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        s.on_leader_append(10);
        s.on_follower_fetch(2, 10, 1);
        assert_eq!(s.high_watermark(), 0);
        assert_eq!(s.on_leader_synced(10), Some(10));
    }

    #[test]
    fn hw_never_moves_back() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 10);
        s.on_follower_fetch(2, 10, 1);
        assert_eq!(s.high_watermark(), 10);
        // A follower restarting from an older offset does not lower it.
        s.on_follower_fetch(2, 3, 2);
        assert_eq!(s.high_watermark(), 10);
    }

    #[test]
    fn non_isr_follower_does_not_hold_back_the_hw() {
        let mut s = leader(&[1, 2, 3], &[1, 2], 0, 0);
        append_synced(&mut s, 10);
        assert_eq!(s.on_follower_fetch(2, 10, 1).high_watermark, Some(10));
    }

    #[test]
    fn fetch_offset_past_leader_end_is_not_counted() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 5);
        s.on_follower_fetch(2, 99, 1);
        assert_eq!(s.high_watermark(), 5);
        assert_eq!(s.follower_lags(), vec![(2, 0)]);
    }

    #[test]
    fn follower_behind_for_longer_than_lag_max_is_shrunk() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        append_synced(&mut s, 10);
        s.on_follower_fetch(2, 10, 100);
        s.on_follower_fetch(3, 10, 100);
        append_synced(&mut s, 10);
        // 2 keeps up, 3 stops fetching.
        s.on_follower_fetch(2, 20, 200);
        assert_eq!(
            s.maybe_shrink(100 + LAG),
            None,
            "exactly lag max is still in sync"
        );
        let change = s.maybe_shrink(100 + LAG + 1).expect("shrink");
        assert_eq!(
            change,
            IsrChange {
                isr: vec![1, 2],
                leader_epoch: 5,
                partition_epoch: 7
            }
        );
        // Only one change in flight.
        assert_eq!(s.maybe_shrink(100 + 3 * LAG), None);
        // Until committed, the HW still waits for 3 (maximal ISR).
        assert_eq!(s.high_watermark(), 10);
        assert_eq!(
            s.update_assignment(8, vec![1, 2, 3], vec![1, 2], 200 + LAG),
            Some(20)
        );
        assert_eq!(s.isr(), &[1, 2]);
        assert!(!s.has_pending_change());
    }

    #[test]
    fn caught_up_follower_stays_in_sync_however_long_it_is_idle() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 10);
        s.on_follower_fetch(2, 10, 5);
        assert_eq!(s.maybe_shrink(5 + 100 * LAG), None);
    }

    #[test]
    fn slow_but_steady_follower_stays_in_sync_via_previous_fetch_rule() {
        // The follower never reaches the leader's *current* end because the
        // leader keeps appending, but each fetch reaches the end the leader
        // had at its previous fetch: caught up as of that previous fetch.
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        let mut now = 0;
        let mut prev_end = 0;
        for _ in 0..20 {
            let end = append_synced(&mut s, 10);
            s.on_follower_fetch(2, prev_end, now);
            prev_end = end;
            now += LAG / 2;
            assert_eq!(s.maybe_shrink(now), None, "at {now}");
        }
    }

    #[test]
    fn follower_that_never_fetches_from_new_leader_is_shrunk_after_lag_max() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 1_000);
        append_synced(&mut s, 1);
        assert_eq!(s.maybe_shrink(1_000 + LAG), None);
        assert_eq!(s.maybe_shrink(1_001 + LAG).map(|c| c.isr), Some(vec![1]));
    }

    #[test]
    fn idle_partition_never_shrinks() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        // Nothing appended: follower position unknown but the leader's end is 0.
        s.on_follower_fetch(2, 0, 1);
        assert_eq!(s.maybe_shrink(100 * LAG), None);
    }

    #[test]
    fn leader_is_never_shrunk_out() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 10);
        let change = s.maybe_shrink(10 * LAG).expect("shrink");
        assert_eq!(change.isr, vec![1]);
    }

    #[test]
    fn follower_catching_up_to_hw_is_proposed_for_expansion() {
        let mut s = leader(&[1, 2, 3], &[1, 2], 0, 0);
        append_synced(&mut s, 10);
        s.on_follower_fetch(2, 10, 1);
        assert_eq!(s.high_watermark(), 10);
        assert_eq!(s.on_follower_fetch(3, 5, 2).isr_change, None, "below HW");
        let change = s.on_follower_fetch(3, 10, 3).isr_change.expect("expand");
        assert_eq!(change.isr, vec![1, 2, 3]);
        assert_eq!(change.partition_epoch, 7);
        // In flight: not proposed twice, and the new member already counts for the HW.
        assert_eq!(s.on_follower_fetch(3, 10, 4).isr_change, None);
        append_synced(&mut s, 5);
        s.on_follower_fetch(2, 15, 5);
        assert_eq!(s.high_watermark(), 10, "pending member 3 holds the HW");
        s.on_follower_fetch(3, 15, 6);
        assert_eq!(s.high_watermark(), 15);
        s.update_assignment(8, vec![1, 2, 3], vec![1, 2, 3], 7);
        assert_eq!(s.isr(), &[1, 2, 3]);
    }

    #[test]
    fn follower_below_epoch_start_is_not_expanded() {
        // Leader of epoch 5 started at offset 20 with HW 10 (not yet advanced).
        let mut s = LeaderState::new(
            LeaderInit {
                me: 1,
                leader_epoch: 5,
                partition_epoch: 1,
                replicas: vec![1, 2],
                isr: vec![1],
                epoch_start_offset: 20,
                log_end_offset: 20,
                leader_position: 20,
                high_watermark: 10,
                lag_max_ms: LAG,
            },
            0,
        );
        assert_eq!(
            s.high_watermark(),
            20,
            "a lone leader commits its synced log"
        );
        assert_eq!(s.on_follower_fetch(2, 15, 1).isr_change, None);
        assert!(s.on_follower_fetch(2, 20, 2).isr_change.is_some());
    }

    #[test]
    fn failed_isr_change_can_be_proposed_again() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 1);
        assert!(s.maybe_shrink(LAG + 1).is_some());
        assert!(s.maybe_shrink(LAG + 2).is_none());
        s.isr_change_failed();
        assert!(s.maybe_shrink(LAG + 3).is_some());
    }

    #[test]
    fn unknown_follower_fetch_changes_nothing() {
        let mut s = leader(&[1, 2], &[1, 2], 0, 0);
        append_synced(&mut s, 3);
        assert_eq!(s.on_follower_fetch(9, 3, 1), FetchProgress::default());
        assert_eq!(s.high_watermark(), 0);
    }

    #[test]
    fn removed_replica_is_forgotten() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        append_synced(&mut s, 3);
        s.on_follower_fetch(2, 3, 1);
        assert_eq!(s.update_assignment(9, vec![1, 2], vec![1, 2], 2), Some(3));
        assert_eq!(s.replicas(), &[1, 2]);
        assert_eq!(s.follower_lags(), vec![(2, 0)]);
    }

    #[test]
    fn acks_all_refused_when_isr_below_min_insync() {
        let s = leader(&[1, 2, 3], &[1], 0, 0);
        assert_eq!(s.check_append(2), Err(AckError::NotEnoughReplicas));
        assert_eq!(s.check_append(1), Ok(()));
    }

    #[test]
    fn acks_all_completes_when_hw_reaches_end_offset() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        assert_eq!(s.check_append(2), Ok(()));
        let end = append_synced(&mut s, 4);
        assert_eq!(s.ack_status(end, 2), AckStatus::Pending);
        s.on_follower_fetch(2, end, 1);
        assert_eq!(
            s.ack_status(end, 2),
            AckStatus::Pending,
            "3 is in the ISR too"
        );
        s.on_follower_fetch(3, end, 1);
        assert_eq!(s.ack_status(end, 2), AckStatus::Done);
    }

    #[test]
    fn acks_all_still_succeeds_after_shrink_to_min_insync() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        let end = append_synced(&mut s, 4);
        s.on_follower_fetch(2, end, 1);
        assert!(s.maybe_shrink(LAG + 1).is_some());
        s.update_assignment(8, vec![1, 2, 3], vec![1, 2], LAG + 1);
        assert_eq!(s.ack_status(end, 2), AckStatus::Done);
    }

    #[test]
    fn acks_all_fails_after_append_when_isr_shrank_below_min_insync() {
        let mut s = leader(&[1, 2, 3], &[1, 2, 3], 0, 0);
        assert_eq!(s.check_append(2), Ok(()));
        let end = append_synced(&mut s, 4);
        assert_eq!(s.ack_status(end, 2), AckStatus::Pending);
        assert_eq!(s.maybe_shrink(LAG + 1).map(|c| c.isr), Some(vec![1]));
        s.update_assignment(8, vec![1, 2, 3], vec![1], LAG + 1);
        assert_eq!(s.high_watermark(), end, "the lone leader commits");
        assert_eq!(
            s.ack_status(end, 2),
            AckStatus::Failed(AckError::NotEnoughReplicasAfterAppend)
        );
        assert_eq!(s.check_append(2), Err(AckError::NotEnoughReplicas));
    }
}
