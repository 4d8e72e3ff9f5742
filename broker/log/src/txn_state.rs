//! Transactions as one partition sees them (sans-IO): which producers have a
//! transaction open here (from their first transactional batch to their
//! commit or abort marker), the last stable offset (LSO) that read_committed
//! consumers may not pass, and the aborted transactions that they must skip
//! (Kafka's transaction index). Fed every batch header in log order, by
//! appends, by follower appends and by recovery; nothing here is stored on
//! its own: a log rebuilds it from its batches when it opens.

use std::collections::{BTreeMap, VecDeque};

use crate::batch::BatchHeader;

/// Attribute bit of batches written inside a transaction.
pub(crate) const TRANSACTIONAL_BIT: i16 = 1 << 4;

/// What a control batch (transaction marker) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// The transaction was aborted: its records are to be skipped.
    Abort,
    /// The transaction was committed.
    Commit,
}

impl ControlType {
    /// The type of a control record key (`version: i16, type: i16`); `None`
    /// for a key that is not one.
    pub fn from_key(key: &[u8]) -> Option<ControlType> {
        if key.len() < 4 {
            return None;
        }
        match i16::from_be_bytes([key[2], key[3]]) {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }

    /// The type of a control batch, from its first record's key (records of
    /// control batches are never compressed); `None` when the bytes after
    /// the header do not hold one.
    pub(crate) fn of_batch(after_header: &[u8]) -> Option<ControlType> {
        let mut b = after_header;
        let _length = varint(&mut b)?;
        let (_attributes, rest) = b.split_first()?;
        b = rest;
        let _timestamp_delta = varint(&mut b)?;
        let _offset_delta = varint(&mut b)?;
        let key_len = usize::try_from(varint(&mut b)?).ok()?;
        ControlType::from_key(b.get(..key_len)?)
    }
}

/// A zigzag varint (at most 10 bytes), advancing `b`.
fn varint(b: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let (byte, rest) = b.split_first()?;
        *b = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// An aborted transaction in this partition (a read_committed fetch returns
/// those overlapping what it reads, so the client drops their records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer that wrote it.
    pub producer_id: i64,
    /// Offset of its first batch here.
    pub first_offset: i64,
    /// Offset of its abort marker.
    pub last_offset: i64,
}

/// A transaction whose marker is written but not yet below the high
/// watermark: still unstable, since a new leader might not have the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Completing {
    first_offset: i64,
    marker_offset: i64,
}

/// The transactions of one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnState {
    /// Producer id → offset of its open transaction's first batch.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose markers may not be replicated yet, in marker order.
    completing: VecDeque<Completing>,
    /// Aborted transactions, in marker order.
    aborted: Vec<AbortedTxn>,
}

impl TxnState {
    /// Takes one batch into account (in log order). `control` is the
    /// marker's type for a control batch.
    pub(crate) fn observe(&mut self, h: &BatchHeader, control: Option<ControlType>) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            let Some(kind) = control else { return };
            // A marker for a producer without data here (a partition added to
            // the transaction but never written) ends nothing.
            if let Some(first_offset) = self.ongoing.remove(&h.producer_id) {
                self.completing.push_back(Completing {
                    first_offset,
                    marker_offset: h.base_offset,
                });
                if kind == ControlType::Abort {
                    self.aborted.push(AbortedTxn {
                        producer_id: h.producer_id,
                        first_offset,
                        last_offset: h.base_offset,
                    });
                }
            }
        } else if h.attributes & TRANSACTIONAL_BIT != 0 {
            self.ongoing.entry(h.producer_id).or_insert(h.base_offset);
        }
    }

    /// Forgets completed transactions whose markers are below `high_watermark`.
    pub(crate) fn advance(&mut self, high_watermark: i64) {
        while self
            .completing
            .front()
            .is_some_and(|c| c.marker_offset < high_watermark)
        {
            self.completing.pop_front();
        }
    }

    /// The last stable offset: the high watermark, or the first offset of a
    /// transaction still open (or whose marker is not yet below the high
    /// watermark) if that is lower.
    pub(crate) fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let open = self.ongoing.values().copied();
        let completing = self
            .completing
            .iter()
            .filter(|c| c.marker_offset >= high_watermark)
            .map(|c| c.first_offset);
        open.chain(completing)
            .fold(high_watermark, std::cmp::Ord::min)
    }

    /// Aborted transactions that overlap `[from, to)`: ended at or after
    /// `from` and begun before `to`.
    pub(crate) fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Markers are in offset order: skip those that end before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Open transactions: producer id → first offset (DescribeProducers).
    pub(crate) fn ongoing(&self) -> &BTreeMap<i64, i64> {
        &self.ongoing
    }

    /// Drops aborted transactions that end below the log start (deleted data).
    pub(crate) fn trim_to(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base_offset: i64, producer_id: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: 1,
        }
    }

    const TXN: i16 = TRANSACTIONAL_BIT;
    const MARKER: i16 = TRANSACTIONAL_BIT | crate::batch::CONTROL_BIT;

    #[test]
    fn the_lso_stops_at_the_first_open_transaction_until_its_marker_is_replicated() {
        let mut t = TxnState::default();
        t.observe(&header(0, -1, 0), None);
        assert_eq!(t.last_stable_offset(1), 1);
        t.observe(&header(1, 7, TXN), None);
        t.observe(&header(2, 8, TXN), None);
        t.observe(&header(3, 7, TXN), None);
        assert_eq!(t.last_stable_offset(4), 1);
        t.observe(&header(4, 7, MARKER), Some(ControlType::Commit));
        // Producer 8 is still open from offset 2.
        assert_eq!(t.last_stable_offset(5), 2);
        t.observe(&header(5, 8, MARKER), Some(ControlType::Abort));
        // Both markers written; 8's is not below the high watermark yet.
        assert_eq!(t.last_stable_offset(5), 2);
        assert_eq!(t.last_stable_offset(6), 6);
        t.advance(6);
        assert_eq!(t.last_stable_offset(6), 6);
        assert_eq!(
            t.aborted_between(0, 10),
            vec![AbortedTxn {
                producer_id: 8,
                first_offset: 2,
                last_offset: 5
            }]
        );
        assert!(t.aborted_between(6, 10).is_empty());
        assert!(t.aborted_between(0, 2).is_empty());
        t.trim_to(6);
        assert!(t.aborted_between(0, 10).is_empty());
    }

    #[test]
    fn markers_without_data_and_control_keys() {
        let mut t = TxnState::default();
        t.observe(&header(0, 9, MARKER), Some(ControlType::Abort));
        assert!(t.aborted_between(0, 10).is_empty());
        assert_eq!(t.last_stable_offset(1), 1);
        assert_eq!(
            ControlType::from_key(&[0, 0, 0, 1]),
            Some(ControlType::Commit)
        );
        assert_eq!(
            ControlType::from_key(&[0, 0, 0, 0]),
            Some(ControlType::Abort)
        );
        assert_eq!(ControlType::from_key(&[0, 0, 0, 7]), None);
        assert_eq!(ControlType::from_key(&[0, 0]), None);
        // length 8, attributes 0, ts delta 0, offset delta 0, key length 4, key.
        let record = [16u8, 0, 0, 0, 8, 0, 0, 0, 1];
        assert_eq!(ControlType::of_batch(&record), Some(ControlType::Commit));
        assert_eq!(ControlType::of_batch(&record[..6]), None);
    }
}
