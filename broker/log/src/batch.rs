//! Magic-v2 record batch headers: parsing, validation (framing, magic, CRC-32C)
//! and the few in-place rewrites the broker is allowed to make (base offset,
//! partition leader epoch, LogAppendTime timestamps).

use crate::error::Error;

/// Bytes from the start of a batch to the end of its fixed header.
pub(crate) const HEADER_LEN: usize = 61;
/// `baseOffset` + `batchLength`: the part of the header not counted in `batchLength`.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength` (a header with zero records).
pub(crate) const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Attribute bit set on control batches (transaction markers).
pub(crate) const CONTROL_BIT: i16 = 1 << 5;
/// Attribute bit set when the batch's timestamps are LogAppendTime.
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;

/// The fixed header fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) base_offset: i64,
    pub(crate) batch_length: i32,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) magic: i8,
    pub(crate) crc: u32,
    pub(crate) attributes: i16,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header; `None` when fewer than [`HEADER_LEN`] bytes are given.
    pub(crate) fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64_at(b, BASE_OFFSET),
            batch_length: i32_at(b, BATCH_LENGTH),
            partition_leader_epoch: i32_at(b, LEADER_EPOCH),
            magic: b[MAGIC] as i8,
            crc: i32_at(b, CRC) as u32,
            attributes: i16_at(b, ATTRIBUTES),
            last_offset_delta: i32_at(b, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(b, BASE_TIMESTAMP),
            max_timestamp: i64_at(b, MAX_TIMESTAMP),
            producer_id: i64_at(b, PRODUCER_ID),
            producer_epoch: i16_at(b, PRODUCER_EPOCH),
            base_sequence: i32_at(b, BASE_SEQUENCE),
            record_count: i32_at(b, RECORD_COUNT),
        })
    }

    /// Total bytes of the batch including the 12-byte log overhead.
    pub(crate) fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch.
    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// True when record timestamps are LogAppendTime (readers use `max_timestamp`).
    pub(crate) fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// True for control batches (transaction markers), which carry no user records.
    pub(crate) fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Checks the header fields that do not need the payload.
    pub(crate) fn check_fields(&self) -> Result<(), String> {
        if self.magic != 2 {
            return Err(format!(
                "unsupported magic {} (only v2 batches are accepted)",
                self.magic
            ));
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(format!(
                "batch length {} below the minimum {MIN_BATCH_LENGTH}",
                self.batch_length
            ));
        }
        if self.last_offset_delta < 0 {
            return Err(format!(
                "negative lastOffsetDelta {}",
                self.last_offset_delta
            ));
        }
        if self.record_count < 0 {
            return Err(format!("negative record count {}", self.record_count));
        }
        Ok(())
    }
}

/// CRC-32C of a whole batch as stored in its header (covers attributes..end).
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Verifies the CRC of a complete batch.
pub(crate) fn check_crc(batch: &[u8], header: &BatchHeader) -> Result<(), Error> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(Error::CorruptBatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// One validated batch of an append, located in the request buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IncomingBatch {
    pub(crate) pos: usize,
    pub(crate) header: BatchHeader,
}

/// Validates the framing, magic, CRC and size of every batch in `records`
/// before anything is written.
pub(crate) fn validate_all(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<IncomingBatch>, Error> {
    if records.is_empty() {
        return Err(Error::InvalidBatch("no record batch in the request".into()));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest).ok_or_else(|| {
            Error::InvalidBatch(format!(
                "{} trailing bytes at position {pos} are shorter than a batch header",
                rest.len()
            ))
        })?;
        header.check_fields().map_err(Error::InvalidBatch)?;
        let size = header.total_size();
        if size > rest.len() {
            return Err(Error::InvalidBatch(format!(
                "batch at position {pos} claims {size} bytes but only {} remain",
                rest.len()
            )));
        }
        if size > max_message_bytes {
            return Err(Error::BatchTooLarge {
                size,
                max: max_message_bytes,
            });
        }
        check_crc(&rest[..size], &header)?;
        out.push(IncomingBatch { pos, header });
        pos += size;
    }
    Ok(out)
}

/// Writes the broker-owned fields (outside the CRC) into a batch.
pub(crate) fn set_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a batch as LogAppendTime with `now_ms` as its max timestamp and
/// recomputes the CRC, as Kafka does for `message.timestamp.type=LogAppendTime`.
pub(crate) fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the header fields of a batch re-encoded by compaction that must
/// keep the original batch's meaning, then recomputes the CRC: the last offset
/// delta (so the batch still ends at the original last offset, as Kafka's
/// cleaner keeps it), the base sequence, and for LogAppendTime batches the
/// timestamp-type bit and the append time held in `max_timestamp`.
pub(crate) fn patch_cleaned(
    batch: &mut [u8],
    last_offset_delta: i32,
    base_sequence: i32,
    log_append_time: Option<i64>,
) {
    batch[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    batch[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    if let Some(ts) = log_append_time {
        let attributes = i16_at(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
    }
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an uncompressed-looking batch with `n` fake records of `payload` bytes total.
    pub(crate) fn raw_batch(record_count: i32, payload: usize, max_ts: i64) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload];
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[MAGIC] = 2;
        b[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(record_count - 1).max(0).to_be_bytes());
        b[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
        b[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
        b[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
        b[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&(-1i16).to_be_bytes());
        b[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
        b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
        for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
            *x = (i % 251) as u8;
        }
        let crc = compute_crc(&b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch with the given attributes, record count and records section
    /// (compressed or not), with a correct length and CRC: what anyone can forge.
    pub(crate) fn forged_batch(attributes: i16, record_count: i32, body: &[u8]) -> Vec<u8> {
        let mut b = raw_batch(record_count, body.len(), 5);
        b[HEADER_LEN..].copy_from_slice(body);
        b[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = compute_crc(&b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Makes the length field and CRC of a (mutated) batch agree with its bytes,
    /// so a decoder gets past both checks.
    pub(crate) fn fix_length_and_crc(b: &mut [u8]) {
        if b.len() < HEADER_LEN {
            return;
        }
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Rewrites the record count of a batch and recomputes its CRC.
    pub(crate) fn set_record_count(b: &mut [u8], record_count: i32) {
        b[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
        let crc = compute_crc(b);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn valid_batch_passes_validation() {
        let b = raw_batch(3, 10, 5);
        let v = validate_all(&b, 1 << 20).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].header.last_offset_delta, 2);
        assert_eq!(v[0].header.record_count, 3);
    }

    #[test]
    fn flipped_payload_byte_is_a_crc_error() {
        let mut b = raw_batch(3, 10, 5);
        b[HEADER_LEN + 2] ^= 1;
        assert!(matches!(
            validate_all(&b, 1 << 20),
            Err(Error::CorruptBatch { .. })
        ));
    }

    #[test]
    fn trailing_garbage_and_short_input_are_invalid() {
        let mut b = raw_batch(1, 4, 5);
        b.push(0);
        assert!(matches!(
            validate_all(&b, 1 << 20),
            Err(Error::InvalidBatch(_))
        ));
        let b = raw_batch(1, 4, 5);
        assert!(matches!(
            validate_all(&b[..b.len() - 1], 1 << 20),
            Err(Error::InvalidBatch(_))
        ));
        assert!(matches!(
            validate_all(&[], 1 << 20),
            Err(Error::InvalidBatch(_))
        ));
    }

    #[test]
    fn wrong_magic_is_invalid() {
        let mut b = raw_batch(1, 4, 5);
        b[MAGIC] = 1;
        assert!(matches!(
            validate_all(&b, 1 << 20),
            Err(Error::InvalidBatch(_))
        ));
    }

    #[test]
    fn oversized_batch_is_rejected() {
        let b = raw_batch(1, 100, 5);
        assert!(matches!(
            validate_all(&b, 50),
            Err(Error::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        let mut b = raw_batch(2, 8, 5);
        set_log_append_time(&mut b, 1234);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 1234);
        check_crc(&b, &h).unwrap();
    }
}
