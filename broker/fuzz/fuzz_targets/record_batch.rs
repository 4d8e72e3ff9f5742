//! One magic-v2 record batch as a producer sent it or as it lies on disk,
//! decoded by `runnel_log::records::decode_batch` (framing, records, headers,
//! and decompression with every codec).
//!
//! The target rewrites `batchLength` and the CRC-32C of each input before
//! decoding: the broker checks both first, so without the rewrite almost every
//! mutation would stop at the CRC and the record parsing behind it would never
//! be reached. Invariants: no panic; memory within the bound runnel-log
//! states (`records::memory_bound`); a batch that decodes has exactly
//! the record count its header announces.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runnel_log::records::{decode_batch, memory_bound};

/// Offsets in the batch header.
const BATCH_LENGTH: usize = 8;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const RECORD_COUNT: usize = 57;
const HEADER_LEN: usize = 61;
/// The decompression limit used here: Kafka's default `max.message.bytes`
/// rounded up (the broker's own limit is larger; a bound is a bound, and a
/// small one keeps runs fast).
const MAX_UNCOMPRESSED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut batch = data.to_vec();
    if batch.len() >= HEADER_LEN {
        let length = i32::try_from(batch.len() - 12).unwrap_or(i32::MAX);
        batch[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    let announced = (batch.len() >= HEADER_LEN).then(|| {
        i32::from_be_bytes([
            batch[RECORD_COUNT],
            batch[RECORD_COUNT + 1],
            batch[RECORD_COUNT + 2],
            batch[RECORD_COUNT + 3],
        ])
    });
    // What runnel-log promises one decode may hold at most (C codecs' own
    // allocations are outside the Rust allocator and not counted).
    let budget = runnel_fuzz::BASE_BUDGET + memory_bound(batch.len(), MAX_UNCOMPRESSED);
    let bytes = Bytes::from(batch);
    runnel_fuzz::within_budget(budget, || {
        if let Ok(records) = decode_batch(bytes, MAX_UNCOMPRESSED) {
            assert_eq!(
                Some(records.len()),
                announced.and_then(|n| usize::try_from(n).ok()),
                "decoded record count differs from the header's"
            );
        }
    });
});
