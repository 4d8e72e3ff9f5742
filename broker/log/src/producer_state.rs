//! Idempotent-producer bookkeeping (sans-IO): per producer id, the current
//! epoch and the last few batches' sequence ranges and offsets, used to drop
//! retried duplicates and to refuse sequence gaps. Rebuilt from batch headers
//! when a log is opened.

use std::collections::{HashMap, VecDeque};

use crate::error::Error;

/// How many recent batches per producer are remembered (Kafka's in-flight limit).
pub(crate) const CACHED_BATCHES: usize = 5;

/// Adds `delta` to a sequence number, wrapping from `i32::MAX` to 0 as Kafka does.
pub(crate) fn add_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CachedBatch {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// Max timestamp of the last batch written (DescribeProducers' `last_timestamp`).
    last_timestamp: i64,
}

impl ProducerEntry {
    fn record(&mut self, epoch: i16, batch: CachedBatch) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        self.batches.push_back(batch);
        while self.batches.len() > CACHED_BATCHES {
            self.batches.pop_front();
        }
    }
}

/// The producer fields of one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) max_timestamp: i64,
}

impl ProducerBatch {
    /// The idempotence-relevant part of a header; `None` for non-idempotent batches.
    pub(crate) fn from_header(h: &crate::batch::BatchHeader) -> Option<ProducerBatch> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return None;
        }
        Some(ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: add_sequence(h.base_sequence, h.last_offset_delta),
            max_timestamp: h.max_timestamp,
        })
    }
}

/// Verdict on one incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// Not seen before: write it.
    New,
    /// A retry of a batch already in the log at these offsets.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Sequence state of every idempotent producer writing to one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    /// Checks the batches of one append in order, each as if the previous ones
    /// were already written. Nothing is recorded.
    pub(crate) fn check_all(
        &self,
        batches: &[Option<ProducerBatch>],
    ) -> Result<Vec<SeqCheck>, Error> {
        let mut overlay: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let Some(b) = b else {
                out.push(SeqCheck::New);
                continue;
            };
            let entry = match overlay.get(&b.producer_id) {
                Some(e) => Some(e),
                None => self.producers.get(&b.producer_id),
            };
            let verdict = check_one(entry, b)?;
            if verdict == SeqCheck::New {
                let mut e = entry.cloned().unwrap_or_else(|| ProducerEntry {
                    epoch: b.epoch,
                    ..ProducerEntry::default()
                });
                // Offsets are unknown until the write; a duplicate inside one append is not expected.
                e.record(
                    b.epoch,
                    CachedBatch {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        base_offset: -1,
                        last_offset: -1,
                    },
                );
                overlay.insert(b.producer_id, e);
            }
            out.push(verdict);
        }
        Ok(out)
    }

    /// Records a batch that is now in the log (also used when rebuilding on open).
    pub(crate) fn record(&mut self, b: &ProducerBatch, base_offset: i64, last_offset: i64) {
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.epoch,
                ..ProducerEntry::default()
            });
        if b.epoch < entry.epoch {
            return;
        }
        entry.last_timestamp = b.max_timestamp;
        entry.record(
            b.epoch,
            CachedBatch {
                first_seq: b.first_seq,
                last_seq: b.last_seq,
                base_offset,
                last_offset,
            },
        );
    }

    /// A transaction marker of `producer_id` written at `epoch`: a newer epoch
    /// (the coordinator fenced the producer) makes older-epoch batches
    /// INVALID_PRODUCER_EPOCH from now on, and sequences start afresh.
    pub(crate) fn mark(&mut self, producer_id: i64, epoch: i16) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                ..ProducerEntry::default()
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    /// The current epoch of `producer_id`, if it is tracked.
    pub(crate) fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Offset of the last record of `producer_id`'s newest remembered batch.
    pub(crate) fn last_offset(&self, producer_id: i64) -> Option<i64> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.batches.back())
            .map(|b| b.last_offset)
    }

    /// Number of producers tracked.
    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every tracked producer, by producer id.
    pub(crate) fn describe(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerInfo {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

/// One idempotent producer's state on a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// Producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// Sequence number of the last record written (-1 before any).
    pub last_sequence: i32,
    /// Max timestamp of the last batch written.
    pub last_timestamp: i64,
}

fn check_one(entry: Option<&ProducerEntry>, b: &ProducerBatch) -> Result<SeqCheck, Error> {
    let Some(entry) = entry else {
        // Unknown producer (new, or its state aged out with retention): accept any sequence.
        return Ok(SeqCheck::New);
    };
    if b.epoch < entry.epoch {
        return Err(Error::InvalidProducerEpoch {
            producer_id: b.producer_id,
            current: entry.epoch,
            got: b.epoch,
        });
    }
    if b.epoch > entry.epoch {
        if b.first_seq != 0 {
            return Err(Error::OutOfOrderSequence {
                producer_id: b.producer_id,
                expected: 0,
                got: b.first_seq,
            });
        }
        return Ok(SeqCheck::New);
    }
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|c| c.first_seq == b.first_seq && c.last_seq == b.last_seq)
    {
        return Ok(SeqCheck::Duplicate {
            base_offset: dup.base_offset,
            last_offset: dup.last_offset,
        });
    }
    if let Some(last) = entry.batches.back() {
        let expected = add_sequence(last.last_seq, 1);
        if b.first_seq != expected {
            return Err(Error::OutOfOrderSequence {
                producer_id: b.producer_id,
                expected,
                got: b.first_seq,
            });
        }
    }
    Ok(SeqCheck::New)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(pid: i64, epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: add_sequence(first, count - 1),
            max_timestamp: i64::from(first) * 10,
        }
    }

    fn check(m: &ProducerStateManager, b: ProducerBatch) -> Result<SeqCheck, Error> {
        m.check_all(&[Some(b)]).map(|v| v[0])
    }

    #[test]
    fn a_marker_with_a_newer_epoch_fences_the_older_one() {
        let mut m = ProducerStateManager::default();
        m.record(&pb(1, 3, 0, 2), 0, 1);
        m.mark(1, 3);
        assert_eq!(
            check(&m, pb(1, 3, 2, 1)).unwrap(),
            SeqCheck::New,
            "same epoch goes on"
        );
        m.mark(1, 4);
        assert!(matches!(
            check(&m, pb(1, 3, 2, 1)),
            Err(Error::InvalidProducerEpoch {
                current: 4,
                got: 3,
                ..
            })
        ));
        assert_eq!(check(&m, pb(1, 4, 0, 1)).unwrap(), SeqCheck::New);
        m.mark(1, 2);
        assert!(
            check(&m, pb(1, 3, 0, 1)).is_err(),
            "an older marker changes nothing"
        );
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        let m = ProducerStateManager::default();
        assert_eq!(check(&m, pb(1, 0, 42, 3)).unwrap(), SeqCheck::New);
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_original_offsets() {
        let mut m = ProducerStateManager::default();
        m.record(&pb(1, 0, 0, 3), 10, 12);
        m.record(&pb(1, 0, 3, 2), 13, 14);
        assert_eq!(
            check(&m, pb(1, 0, 0, 3)).unwrap(),
            SeqCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(check(&m, pb(1, 0, 5, 1)).unwrap(), SeqCheck::New);
    }

    #[test]
    fn sequence_gap_is_out_of_order() {
        let mut m = ProducerStateManager::default();
        m.record(&pb(1, 0, 0, 3), 0, 2);
        assert!(matches!(
            check(&m, pb(1, 0, 4, 1)),
            Err(Error::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
    }

    #[test]
    fn old_epoch_is_fenced_and_new_epoch_must_start_at_zero() {
        let mut m = ProducerStateManager::default();
        m.record(&pb(1, 5, 0, 3), 0, 2);
        assert!(matches!(
            check(&m, pb(1, 4, 3, 1)),
            Err(Error::InvalidProducerEpoch {
                current: 5,
                got: 4,
                ..
            })
        ));
        assert!(matches!(
            check(&m, pb(1, 6, 3, 1)),
            Err(Error::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(check(&m, pb(1, 6, 0, 1)).unwrap(), SeqCheck::New);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut m = ProducerStateManager::default();
        for i in 0..6 {
            m.record(&pb(1, 0, i, 1), i64::from(i), i64::from(i));
        }
        // Batch 0 aged out: it is now out of order rather than a duplicate.
        assert!(matches!(
            check(&m, pb(1, 0, 0, 1)),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            check(&m, pb(1, 0, 1, 1)),
            Ok(SeqCheck::Duplicate { .. })
        ));
    }

    #[test]
    fn sequence_wraps_to_zero_after_i32_max() {
        let mut m = ProducerStateManager::default();
        m.record(&pb(1, 0, i32::MAX - 1, 2), 0, 1);
        assert_eq!(check(&m, pb(1, 0, 0, 1)).unwrap(), SeqCheck::New);
        assert_eq!(add_sequence(i32::MAX, 1), 0);
    }

    #[test]
    fn batches_in_one_append_are_checked_in_order() {
        let m = ProducerStateManager::default();
        let ok = m
            .check_all(&[Some(pb(1, 0, 0, 2)), Some(pb(1, 0, 2, 2))])
            .unwrap();
        assert_eq!(ok, vec![SeqCheck::New, SeqCheck::New]);
        assert!(m
            .check_all(&[Some(pb(1, 0, 0, 2)), Some(pb(1, 0, 5, 2))])
            .is_err());
    }

    #[test]
    fn describe_lists_each_producer_with_its_epoch_last_sequence_and_timestamp() {
        let mut m = ProducerStateManager::default();
        assert_eq!(m.describe(), []);
        m.record(&pb(7, 0, 0, 5), 0, 4);
        m.record(&pb(3, 2, 0, 1), 5, 5);
        m.record(&pb(7, 0, 5, 3), 6, 8);
        // An older epoch's late batch changes nothing.
        m.record(&pb(3, 1, 9, 1), 9, 9);
        assert_eq!(
            m.describe(),
            [
                ProducerInfo {
                    producer_id: 3,
                    epoch: 2,
                    last_sequence: 0,
                    last_timestamp: 0,
                },
                ProducerInfo {
                    producer_id: 7,
                    epoch: 0,
                    last_sequence: 7,
                    last_timestamp: 50,
                },
            ]
        );
    }
}
