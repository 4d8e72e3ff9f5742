//! Bounded decoding of one magic-v2 record batch whose bytes came from a
//! client or back from disk: the log cleaner, timestamp lookups, the keys
//! check of compacted topics and the group coordinator's replay use it instead
//! of `kafka_protocol`'s `RecordBatchDecoder`, which trusts the counts and
//! sizes in the bytes (a batch claiming 2^31 records, or a compression bomb,
//! made it allocate until the process aborted).
//!
//! Invariants, whatever the input: no panic; decompression stops after
//! `max_uncompressed + 1` bytes; every count is checked against the bytes
//! left before anything is reserved for it, and every length before it is
//! sliced. A decoded [`Record`] takes far more memory than the 7 bytes it
//! needs at least on the wire (about 180 bytes, and about 90 per header), so
//! the decoded structures are held to a budget too:
//! [`DECODED_MEMORY_FACTOR`] times the larger of the input and
//! `max_uncompressed`. [`memory_bound`] adds up everything one decode may
//! hold besides its input.

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};

use crate::batch::{self, BatchHeader, HEADER_LEN};

/// Fewest bytes one encoded record takes: its length, attributes, timestamp
/// delta, offset delta, key length, value length and header count, one byte each.
pub const MIN_RECORD_BYTES: usize = 7;
/// Fewest bytes one record header takes: key length and value length.
const MIN_HEADER_BYTES: usize = 2;
/// Memory the decoded records of one batch may take, as a multiple of the
/// larger of the input and `max_uncompressed` (see the module docs).
pub const DECODED_MEMORY_FACTOR: usize = 8;
/// Memory one decoded header takes in a record's `IndexMap`, at most: the
/// entry (hash, key, value) and its share of the index table.
const HEADER_MEMORY: usize = 96;
/// How many times `max.message.bytes` the records of a stored batch may
/// decompress to ([`uncompressed_limit`]). The topic limit applies to the
/// compressed batch and producers fill batches by estimated compressed size,
/// so well-compressed data legitimately expands several times.
pub const MAX_EXPANSION: usize = 16;
/// The uncompressed limit never goes below this many bytes.
const MIN_UNCOMPRESSED_LIMIT: usize = 1 << 20;
/// zstd may keep a window this large (2^23 bytes) even when the limit is
/// smaller: a streaming compressor at levels up to 19 announces windows up to
/// that size whatever the amount of data.
const MIN_ZSTD_WINDOW_LOG: u32 = 23;
/// Memory the codecs keep besides their output, at most: LZ4 frame buffers
/// for 4 MiB blocks, zstd's context and input buffer, inflate state.
const CODEC_STATE: usize = 10 << 20;
/// Bytes that start a snappy stream in the xerial framing Java clients write.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Length of the xerial header: magic, version and compatible version.
const XERIAL_HEADER_LEN: usize = 16;

/// Attribute bit of transactional batches.
const TRANSACTIONAL_BIT: i16 = 1 << 4;
/// Attribute bit of batches whose delete horizon was set by compaction.
const DELETE_HORIZON_BIT: i16 = 1 << 6;
/// Attribute bits holding the compression codec.
const COMPRESSION_MASK: i16 = 0x7;

/// Why a batch could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The fixed header is missing, malformed or disagrees with the bytes given.
    #[error("invalid batch header: {0}")]
    Header(String),
    /// The batch's CRC does not match its contents.
    #[error("crc mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The compression attribute names no known codec.
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    /// The compressed records are not a valid stream of their codec.
    #[error("cannot decompress {codec:?} records: {reason}")]
    Decompress {
        /// The batch's codec.
        codec: Compression,
        /// What the decompressor said.
        reason: String,
    },
    /// The records decompress to more than the caller's limit.
    #[error("records decompress to more than {limit} bytes")]
    TooLarge {
        /// The limit given by the caller.
        limit: usize,
    },
    /// A count read from the bytes cannot fit in the bytes that follow it.
    #[error("{what} {count} cannot fit in the {remaining} bytes left")]
    ImplausibleCount {
        /// Which count.
        what: &'static str,
        /// The count read.
        count: i64,
        /// Bytes left after it.
        remaining: usize,
    },
    /// A field of a record is malformed or runs past the end of its record.
    #[error("record {index}: {reason}")]
    Record {
        /// Position of the record in the batch.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Bytes are left after the last record the header announces.
    #[error("{0} bytes follow the last record")]
    TrailingBytes(usize),
    /// The decoded records would take more memory than the budget
    /// ([`DECODED_MEMORY_FACTOR`] times the larger of the input and the limit).
    #[error("decoded records would take more than {budget} bytes")]
    TooManyRecords {
        /// The budget in bytes.
        budget: usize,
    },
}

/// The uncompressed limit for batches of a topic whose `max.message.bytes`
/// is `max_message_bytes`: [`MAX_EXPANSION`] times it, at least 16 MiB.
pub fn uncompressed_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .max(MIN_UNCOMPRESSED_LIMIT)
        .saturating_mul(MAX_EXPANSION)
}

/// The most memory one [`decode_batch`] of an `input_len`-byte batch may hold
/// besides the input itself: the decompressed bytes (a growing buffer, so
/// twice the limit), zstd's window (8 MiB at least: streaming compressors
/// announce that much at levels up to 19), the codecs' own state, and twice
/// the decoded-records budget (the last record is checked after it is
/// decoded). A fuzz target's allocation budget can use it.
pub fn memory_bound(input_len: usize, max_uncompressed: usize) -> usize {
    let decompressed = max_uncompressed.saturating_add(1).saturating_mul(2);
    let window = 1usize << zstd_window_log(max_uncompressed);
    let records = input_len
        .max(max_uncompressed)
        .saturating_mul(DECODED_MEMORY_FACTOR)
        .saturating_mul(2);
    decompressed
        .saturating_add(window)
        .saturating_add(CODEC_STATE)
        .saturating_add(records)
}

/// Decodes every record of the one batch that `batch` holds exactly (header
/// included), after checking its framing and CRC. Compressed records may
/// expand to at most `max_uncompressed` bytes; a batch beyond that is
/// [`RecordsError::TooLarge`]. Record fields are filled as
/// `kafka_protocol::records::RecordBatchDecoder` fills them.
pub fn decode_batch(batch: Bytes, max_uncompressed: usize) -> Result<Vec<Record>, RecordsError> {
    decode_iter(batch, max_uncompressed)?.into_vec()
}

/// Like [`decode_batch`], but yields the records one at a time, so callers
/// that look at each record once hold only the (bounded) decompressed bytes.
/// The framing, CRC and decompression are checked before this returns; a
/// malformed record is an `Err` item, after which the iterator ends.
pub fn decode_iter(batch: Bytes, max_uncompressed: usize) -> Result<RecordIter, RecordsError> {
    let header = BatchHeader::parse(&batch).ok_or_else(|| {
        RecordsError::Header(format!(
            "{} bytes are shorter than a batch header ({HEADER_LEN})",
            batch.len()
        ))
    })?;
    header.check_fields().map_err(RecordsError::Header)?;
    if header.total_size() != batch.len() {
        return Err(RecordsError::Header(format!(
            "header claims {} bytes, {} given",
            header.total_size(),
            batch.len()
        )));
    }
    let computed = batch::compute_crc(&batch);
    if computed != header.crc {
        return Err(RecordsError::Crc {
            stored: header.crc,
            computed,
        });
    }
    let compression = compression_of(header.attributes)?;
    let budget = batch
        .len()
        .max(max_uncompressed)
        .saturating_mul(DECODED_MEMORY_FACTOR);
    let body = batch.slice(HEADER_LEN..);
    let body = if compression == Compression::None || (header.record_count == 0 && body.is_empty())
    {
        body
    } else {
        decompress(compression, &body, max_uncompressed)?
    };
    // `check_fields` refused negative counts.
    let count = usize::try_from(header.record_count).unwrap_or(usize::MAX);
    if count > body.len() / MIN_RECORD_BYTES {
        return Err(RecordsError::ImplausibleCount {
            what: "record count",
            count: i64::from(header.record_count),
            remaining: body.len(),
        });
    }
    Ok(RecordIter {
        header,
        compression,
        body,
        left: count,
        index: 0,
        budget,
    })
}

/// The records of one batch, decoded as they are read ([`decode_iter`]).
#[derive(Debug)]
pub struct RecordIter {
    header: BatchHeader,
    compression: Compression,
    /// Uncompressed records not read yet.
    body: Bytes,
    /// Records announced by the header and not yet read.
    left: usize,
    /// Position in the batch of the next record.
    index: usize,
    /// Memory the decoded records may take (one record's headers at most).
    budget: usize,
}

impl RecordIter {
    /// The batch's compression codec.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// All the records, refused when they would take more memory than the
    /// budget ([`RecordsError::TooManyRecords`]); what [`decode_batch`] returns.
    pub fn into_vec(self) -> Result<Vec<Record>, RecordsError> {
        let budget = self.budget;
        let mut used = self.left.saturating_mul(size_of::<Record>());
        if used > budget {
            return Err(RecordsError::TooManyRecords { budget });
        }
        let mut records = Vec::with_capacity(self.left);
        for record in self {
            let record = record?;
            used = used.saturating_add(record.headers.capacity().saturating_mul(HEADER_MEMORY));
            if used > budget {
                return Err(RecordsError::TooManyRecords { budget });
            }
            records.push(record);
        }
        Ok(records)
    }

    fn next_record(&mut self) -> Result<Record, RecordsError> {
        let index = self.index;
        let len =
            read_varint(&mut self.body).map_err(|reason| RecordsError::Record { index, reason })?;
        let len = usize::try_from(len).map_err(|_| RecordsError::Record {
            index,
            reason: format!("negative record length {len}"),
        })?;
        if len > self.body.len() {
            return Err(RecordsError::Record {
                index,
                reason: format!(
                    "record length {len} runs past the {} bytes left",
                    self.body.len()
                ),
            });
        }
        let bytes = self.body.split_to(len);
        decode_record(bytes, &self.header, self.budget)
            .map_err(|reason| RecordsError::Record { index, reason })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.body.is_empty() {
                return None;
            }
            let trailing = self.body.len();
            self.body.clear();
            return Some(Err(RecordsError::TrailingBytes(trailing)));
        }
        let result = self.next_record();
        self.index += 1;
        self.left -= 1;
        if result.is_err() {
            self.left = 0;
            self.body.clear();
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left + usize::from(!self.body.is_empty())))
    }
}

fn compression_of(attributes: i16) -> Result<Compression, RecordsError> {
    Ok(match attributes & COMPRESSION_MASK {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => return Err(RecordsError::UnknownCompression(other)),
    })
}

/// Decompresses `data` into at most `limit` bytes (also used for payloads that are not
/// record batches, such as the metrics of KIP-714's PushTelemetry).
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Bytes, RecordsError> {
    let failed = |e: std::io::Error| RecordsError::Decompress {
        codec,
        reason: e.to_string(),
    };
    let out = match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(data), limit).map_err(failed)?
        }
        Compression::Zstd => {
            // `data` is already in memory: no input buffer is needed.
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(failed)?;
            decoder
                .window_log_max(zstd_window_log(limit))
                .map_err(failed)?;
            read_bounded(decoder, limit).map_err(failed)?
        }
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(data).map_err(failed)?;
            let out = read_bounded(&mut decoder, limit).map_err(failed)?;
            // A stream cut short reads as a clean end; `finish` tells them apart.
            if out.len() <= limit {
                decoder.finish().1.map_err(failed)?;
            }
            out
        }
        Compression::Snappy => snappy(data, limit)?,
    };
    if out.len() > limit {
        return Err(RecordsError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Reads `reader` to its end or to `limit + 1` bytes, whichever comes first
/// (more than `limit` bytes means the caller refuses the batch).
fn read_bounded(reader: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

/// Largest zstd window (as a power of two) worth accepting for `limit` bytes.
fn zstd_window_log(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    // zstd refuses values above its own maximum (31 on 64-bit targets).
    needed.clamp(MIN_ZSTD_WINDOW_LOG, 31)
}

/// Decompresses raw snappy or the xerial framing Java clients write (a
/// header, then blocks each preceded by its big-endian u32 length), checking
/// every block's announced size against what is left of `limit` before
/// allocating for it.
fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let failed = |reason: String| RecordsError::Decompress {
        codec: Compression::Snappy,
        reason,
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        snappy_block(data, limit, &mut out)?;
        return Ok(out);
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| failed("truncated xerial header".into()))?;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(failed("truncated xerial block length".into()));
        }
        let len = rest.get_u32() as usize;
        let block = rest
            .get(..len)
            .ok_or_else(|| failed(format!("xerial block of {len} bytes runs past the end")))?;
        rest = &rest[len..];
        snappy_block(block, limit, &mut out)?;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, refusing it when its announced
/// size would take `out` past `limit`.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let failed = |e: snap::Error| RecordsError::Decompress {
        codec: Compression::Snappy,
        reason: e.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(failed)?;
    if len > limit.saturating_sub(out.len()) {
        return Err(RecordsError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(failed)?;
    out.truncate(start + written);
    Ok(())
}

/// Decodes the record in `bytes` (its length prefix already removed); its
/// headers may take `budget` bytes of memory.
fn decode_record(mut bytes: Bytes, h: &BatchHeader, budget: usize) -> Result<Record, String> {
    let b = &mut bytes;
    if !b.has_remaining() {
        return Err("empty record".into());
    }
    let _attributes = b.get_i8();
    let timestamp_delta = read_varlong(b)?;
    let offset_delta = read_varint(b)?;
    let key = read_nullable(b, "key")?;
    let value = read_nullable(b, "value")?;
    let header_count = read_varint(b)?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| format!("negative header count {header_count}"))?;
    if header_count > b.len() / MIN_HEADER_BYTES {
        return Err(format!(
            "header count {header_count} cannot fit in the {} bytes left",
            b.len()
        ));
    }
    if header_count.saturating_mul(HEADER_MEMORY) > budget {
        return Err(format!(
            "header count {header_count} would take more than {budget} bytes decoded"
        ));
    }
    let mut headers = IndexMap::with_capacity(header_count);
    for _ in 0..header_count {
        let key = read_nullable(b, "header key")?.ok_or("null header key")?;
        let key = StrBytes::from_utf8(key).map_err(|e| format!("header key: {e}"))?;
        let value = read_nullable(b, "header value")?;
        headers.insert(key, value);
    }
    if b.has_remaining() {
        return Err(format!("{} bytes follow the record's fields", b.len()));
    }
    Ok(Record {
        transactional: h.attributes & TRANSACTIONAL_BIT != 0,
        control: h.is_control(),
        delete_horizon: h.attributes & DELETE_HORIZON_BIT != 0,
        partition_leader_epoch: h.partition_leader_epoch,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        timestamp_type: if h.is_log_append_time() {
            TimestampType::LogAppend
        } else {
            TimestampType::Creation
        },
        offset: h.base_offset.wrapping_add(i64::from(offset_delta)),
        sequence: h.base_sequence.wrapping_add(offset_delta),
        timestamp: h.base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
        headers,
    })
}

/// A varint length then that many bytes; length -1 is null.
fn read_nullable(b: &mut Bytes, what: &str) -> Result<Option<Bytes>, String> {
    let len = read_varint(b)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| format!("negative {what} length {len}"))?;
    if len > b.len() {
        return Err(format!(
            "{what} length {len} runs past the {} bytes left",
            b.len()
        ));
    }
    Ok(Some(b.split_to(len)))
}

/// A zigzag varint of at most 5 bytes (Kafka's `ByteUtils.readVarint`).
fn read_varint(b: &mut Bytes) -> Result<i32, String> {
    let raw = read_unsigned(b, 5)?;
    // At most 35 bits were read; the top ones fall off as in Java.
    let raw = raw as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong of at most 10 bytes.
fn read_varlong(b: &mut Bytes) -> Result<i64, String> {
    let raw = read_unsigned(b, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(b: &mut Bytes, max_bytes: u32) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        if !b.has_remaining() {
            return Err("varint runs past the end of the record".into());
        }
        let byte = b.get_u8();
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(format!("varint longer than {max_bytes} bytes"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bytes::BytesMut;
    use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
    use proptest::prelude::*;

    use super::*;
    use crate::batch::tests::{fix_length_and_crc, forged_batch, set_record_count};

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const MIB: usize = 1 << 20;

    fn record(i: i64, key: Option<&str>, value: Option<Vec<u8>>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 7,
            producer_id: 42,
            producer_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset: 100 + i,
            sequence: 10 + i as i32,
            timestamp: 1_700_000_000_000 + i * 3,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(Bytes::from),
            headers: IndexMap::new(),
        }
    }

    /// Records exercising null keys and values, empty and non-ASCII bytes, headers.
    fn sample_records() -> Vec<Record> {
        let mut with_headers = record(2, Some("h"), Some(b"v".to_vec()));
        with_headers
            .headers
            .insert(StrBytes::from_static_str("trace"), Some(Bytes::from("abc")));
        with_headers
            .headers
            .insert(StrBytes::from_static_str("empty"), None);
        vec![
            record(0, Some("k0"), Some(b"value-0".to_vec())),
            record(1, None, Some(vec![0xff; 300])),
            with_headers,
            record(3, Some("tomb"), None),
            record(4, Some(""), Some(Vec::new())),
        ]
    }

    fn encode(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.freeze()
    }

    /// What kafka-protocol's (unbounded) decoder makes of a well-formed batch.
    fn reference(batch: &Bytes) -> Vec<Record> {
        RecordBatchDecoder::decode(&mut batch.clone())
            .unwrap()
            .records
    }

    /// Appends a zigzag varint.
    fn varint(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// One record's bytes, length prefix included, from its fields after the length.
    fn framed(fields: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(fields.len() as i64, &mut out);
        out.extend_from_slice(fields);
        out
    }

    /// Record fields with the given key length field and header count field
    /// (attributes, timestamp and offset deltas zero; null value).
    fn fields(key_len: i64, key: &[u8], header_count: i64) -> Vec<u8> {
        let mut f = vec![0, 0, 0];
        varint(key_len, &mut f);
        f.extend_from_slice(key);
        varint(-1, &mut f);
        varint(header_count, &mut f);
        f
    }

    fn the_body(batch: &Bytes) -> &[u8] {
        &batch[HEADER_LEN..]
    }

    #[test]
    fn well_formed_batches_decode_as_kafka_protocol_decodes_them() {
        for codec in CODECS {
            let batch = encode(&sample_records(), codec);
            let ours = decode_batch(batch.clone(), MIB).unwrap();
            assert_eq!(ours, reference(&batch), "{codec:?}");
            assert_eq!(ours.len(), 5);
            let iter = decode_iter(batch, MIB).unwrap();
            assert_eq!(iter.compression(), codec);
        }
    }

    #[test]
    fn batch_flags_are_carried_to_every_record() {
        let mut records = sample_records();
        for r in &mut records {
            r.transactional = true;
        }
        // The encoder never sets the timestamp type; the log does, as here.
        let mut batch = encode(&records, Compression::Lz4).to_vec();
        batch::set_log_append_time(&mut batch, 1_800_000_000_000);
        let batch = Bytes::from(batch);
        let ours = decode_batch(batch.clone(), MIB).unwrap();
        assert!(ours
            .iter()
            .all(|r| r.transactional && r.timestamp_type == TimestampType::LogAppend));
        assert_eq!(ours, reference(&batch));

        let mut control = vec![record(0, Some("\0\0\0\0"), Some(vec![0, 0, 0, 0, 0, 0]))];
        control[0].control = true;
        control[0].transactional = true;
        let batch = encode(&control, Compression::None);
        let ours = decode_batch(batch.clone(), MIB).unwrap();
        assert!(ours[0].control && ours[0].transactional);
        assert_eq!(ours, reference(&batch));
    }

    #[test]
    fn empty_batch_decodes_to_no_records() {
        let batch = Bytes::from(forged_batch(0, 0, &[]));
        assert_eq!(decode_batch(batch, MIB).unwrap(), vec![]);
        // A compressed empty batch (no compressed stream at all) is empty too.
        let batch = Bytes::from(forged_batch(1, 0, &[]));
        assert_eq!(decode_batch(batch, MIB).unwrap(), vec![]);
    }

    #[test]
    fn record_count_i32_max_with_a_valid_crc_is_refused_before_reserving() {
        for codec in CODECS {
            let batch = encode(&sample_records(), codec);
            let mut forged = batch.to_vec();
            set_record_count(&mut forged, i32::MAX);
            // Reserving i32::MAX records (about 400 GB) would abort the process.
            let err = decode_batch(Bytes::from(forged), MIB).unwrap_err();
            assert!(
                matches!(err, RecordsError::ImplausibleCount { what: "record count", count, .. } if count == i64::from(i32::MAX)),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn record_count_beyond_the_records_present_is_an_error() {
        let batch = encode(&sample_records(), Compression::None);
        let mut forged = batch.to_vec();
        set_record_count(&mut forged, 6);
        assert!(matches!(
            decode_batch(Bytes::from(forged), MIB),
            Err(RecordsError::Record { index: 5, .. })
        ));
    }

    #[test]
    fn header_count_i32_max_is_refused_before_reserving() {
        let body = framed(&fields(1, b"k", i64::from(i32::MAX)));
        let batch = Bytes::from(forged_batch(0, 1, &body));
        // `IndexMap::with_capacity(i32::MAX)` would abort the process.
        match decode_batch(batch, MIB) {
            Err(RecordsError::Record { index: 0, reason }) => {
                assert!(reason.starts_with("header count 2147483647"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_length_larger_than_the_batch_is_an_error() {
        for key_len in [1_000_000, i64::from(i32::MAX)] {
            let body = framed(&fields(key_len, b"kk", 0));
            let batch = Bytes::from(forged_batch(0, 1, &body));
            match decode_batch(batch, MIB) {
                Err(RecordsError::Record { index: 0, reason }) => {
                    assert!(reason.starts_with("key length"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // The record's own length may not run past the batch either.
        let mut body = Vec::new();
        varint(1_000_000, &mut body);
        body.extend_from_slice(&fields(1, b"k", 0));
        let batch = Bytes::from(forged_batch(0, 1, &body));
        match decode_batch(batch, MIB) {
            Err(RecordsError::Record { index: 0, reason }) => {
                assert!(reason.starts_with("record length"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn negative_lengths_and_overlong_varints_are_errors() {
        for f in [fields(-2, b"", 0), fields(1, b"k", -1)] {
            let batch = Bytes::from(forged_batch(0, 1, &framed(&f)));
            assert!(matches!(
                decode_batch(batch, MIB),
                Err(RecordsError::Record { index: 0, .. })
            ));
        }
        let mut f = vec![0];
        f.extend_from_slice(&[0xff; 11]);
        let batch = Bytes::from(forged_batch(0, 1, &framed(&f)));
        assert!(matches!(
            decode_batch(batch, MIB),
            Err(RecordsError::Record { index: 0, .. })
        ));
    }

    #[test]
    fn bytes_after_the_fields_or_the_records_are_errors() {
        let mut f = fields(1, b"k", 0);
        f.push(0);
        let batch = Bytes::from(forged_batch(0, 1, &framed(&f)));
        assert!(matches!(
            decode_batch(batch, MIB),
            Err(RecordsError::Record { index: 0, .. })
        ));
        let mut body = framed(&fields(1, b"k", 0));
        body.extend_from_slice(&[0; 9]);
        let batch = Bytes::from(forged_batch(0, 1, &body));
        assert_eq!(
            decode_batch(batch, MIB),
            Err(RecordsError::TrailingBytes(9))
        );
    }

    /// A valid batch of one record holding 64 MiB of zeros: it decodes when
    /// nothing bounds decompression.
    fn bomb(codec: Compression) -> Bytes {
        encode(&[record(0, Some("k"), Some(vec![0; 64 * MIB]))], codec)
    }

    #[test]
    fn compression_bombs_are_refused_at_the_limit() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = bomb(codec);
            assert!(batch.len() < 4 * MIB, "{codec:?}: {} bytes", batch.len());
            assert_eq!(
                decode_batch(batch.clone(), MIB),
                Err(RecordsError::TooLarge { limit: MIB }),
                "{codec:?}"
            );
            // The same batch decodes when the caller allows its size.
            let records = decode_batch(batch.clone(), 65 * MIB).unwrap();
            assert_eq!(records[0].value.as_ref().map(Bytes::len), Some(64 * MIB));

            // Decompression stops at the limit rather than checking the size
            // afterwards: with the end of the stream cut off, reading to the
            // end fails, while stopping at the limit never gets there.
            let mut cut = batch[..batch.len() - batch.len() / 10].to_vec();
            fix_length_and_crc(&mut cut);
            let cut = Bytes::from(cut);
            assert!(
                matches!(
                    decode_batch(cut.clone(), 65 * MIB),
                    Err(RecordsError::Decompress { .. })
                ),
                "{codec:?}"
            );
            assert_eq!(
                decode_batch(cut, MIB),
                Err(RecordsError::TooLarge { limit: MIB }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_bombs_are_refused_from_their_announced_size() {
        let plain = encode(
            &[record(0, Some("k"), Some(vec![0; 64 * MIB]))],
            Compression::None,
        );
        let compressed = snap::raw::Encoder::new()
            .compress_vec(the_body(&plain))
            .unwrap();
        let batch = Bytes::from(forged_batch(2, 1, &compressed));
        assert_eq!(
            decode_batch(batch, MIB),
            Err(RecordsError::TooLarge { limit: MIB })
        );
        // A header announcing 4 GiB in front of nothing is refused before allocating.
        let batch = Bytes::from(forged_batch(2, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert_eq!(
            decode_batch(batch, MIB),
            Err(RecordsError::TooLarge { limit: MIB })
        );
        // Within the limit, raw snappy (without xerial framing) decodes.
        let small = encode(&sample_records(), Compression::None);
        let compressed = snap::raw::Encoder::new()
            .compress_vec(the_body(&small))
            .unwrap();
        let batch = Bytes::from(forged_batch(2, 5, &compressed));
        assert_eq!(decode_batch(batch, MIB).unwrap().len(), 5);
    }

    #[test]
    fn gzip_bomb_of_many_members_is_refused() {
        // Concatenated members: a decoder that stops after the first is not enough.
        let mut body = Vec::new();
        for _ in 0..64 {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&vec![0; MIB]).unwrap();
            body.extend_from_slice(&e.finish().unwrap());
        }
        let batch = Bytes::from(forged_batch(1, 1, &body));
        assert_eq!(
            decode_batch(batch, MIB),
            Err(RecordsError::TooLarge { limit: MIB })
        );
    }

    #[test]
    fn zstd_frames_needing_a_huge_window_are_refused() {
        let plain = encode(&sample_records(), Compression::None);
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(30).unwrap();
        e.long_distance_matching(true).unwrap();
        e.write_all(the_body(&plain)).unwrap();
        let body = e.finish().unwrap();
        let batch = Bytes::from(forged_batch(4, 5, &body));
        assert!(matches!(
            decode_batch(batch, MIB),
            Err(RecordsError::Decompress {
                codec: Compression::Zstd,
                ..
            })
        ));
    }

    /// A gzip batch of `n` minimal records (7 bytes each, null key and value).
    fn many_empty_records(n: usize) -> Bytes {
        let one = framed(&fields(-1, b"", 0));
        let plain: Vec<u8> = one.iter().copied().cycle().take(one.len() * n).collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&plain).unwrap();
        Bytes::from(forged_batch(1, n as i32, &e.finish().unwrap()))
    }

    #[test]
    fn decoded_records_are_held_to_a_memory_budget() {
        // 100,000 records of 7 bytes: 700 KB uncompressed, within the 1 MiB
        // limit, but about 18 MB as `Record`s, beyond 8 times the limit.
        let batch = many_empty_records(100_000);
        assert!(batch.len() < 64 * 1024);
        assert_eq!(
            decode_batch(batch.clone(), MIB),
            Err(RecordsError::TooManyRecords {
                budget: DECODED_MEMORY_FACTOR * MIB
            })
        );
        // One at a time they are fine: only the decompressed bytes are held.
        let iter = decode_iter(batch.clone(), MIB).unwrap();
        assert_eq!(iter.map(Result::unwrap).count(), 100_000);
        // With a larger limit the budget grows with it.
        assert_eq!(decode_batch(batch, 4 * MIB).unwrap().len(), 100_000);
    }

    #[test]
    fn headers_are_held_to_the_memory_budget() {
        // 10,000 headers of 2 bytes (empty key, null value): 20 KB on the
        // wire, about 1 MB as an `IndexMap` sized for them.
        let mut f = vec![0, 0, 0];
        varint(1, &mut f);
        f.push(b'k');
        varint(-1, &mut f);
        varint(10_000, &mut f);
        for _ in 0..10_000 {
            varint(0, &mut f);
            varint(-1, &mut f);
        }
        let batch = Bytes::from(forged_batch(0, 1, &framed(&f)));
        match decode_batch(batch.clone(), 1024) {
            Err(RecordsError::Record { index: 0, reason }) => {
                assert!(reason.contains("would take more than"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let records = decode_batch(batch, MIB).unwrap();
        // The same (empty) key ten thousand times: the last value wins.
        assert_eq!(records[0].headers.len(), 1);
    }

    #[test]
    fn truncated_batches_are_errors() {
        for codec in CODECS {
            let batch = encode(&sample_records(), codec);
            for cut in 0..batch.len() {
                assert!(
                    decode_batch(batch.slice(..cut), MIB).is_err(),
                    "{codec:?} cut at {cut}"
                );
                // Also with a header that agrees with the shorter batch, so the
                // cut reaches the decompressor and the record decoder.
                let mut fixed = batch[..cut].to_vec();
                fix_length_and_crc(&mut fixed);
                assert!(
                    decode_batch(Bytes::from(fixed), MIB).is_err(),
                    "{codec:?} fixed cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn crc_and_codec_are_checked() {
        let batch = encode(&sample_records(), Compression::None);
        let mut flipped = batch.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode_batch(Bytes::from(flipped), MIB),
            Err(RecordsError::Crc { .. })
        ));
        let batch = Bytes::from(forged_batch(5, 0, &[]));
        assert_eq!(
            decode_batch(batch, MIB),
            Err(RecordsError::UnknownCompression(5))
        );
        let mut longer = encode(&sample_records(), Compression::None).to_vec();
        longer.push(0);
        assert!(matches!(
            decode_batch(Bytes::from(longer), MIB),
            Err(RecordsError::Header(_))
        ));
    }

    #[test]
    fn limit_scales_with_max_message_bytes() {
        assert_eq!(uncompressed_limit(0), MAX_EXPANSION * MIB);
        assert_eq!(uncompressed_limit(8 * MIB), MAX_EXPANSION * 8 * MIB);
        assert_eq!(uncompressed_limit(usize::MAX), usize::MAX);
        assert_eq!(zstd_window_log(MIB), MIN_ZSTD_WINDOW_LOG);
        assert_eq!(zstd_window_log(64 * MIB), 26);
        assert_eq!(zstd_window_log(usize::MAX), 31);
        // 2 MiB buffer + 8 MiB window + 10 MiB codec state + 16 MiB records.
        assert_eq!(
            memory_bound(100, MIB),
            2 * (MIB + 1) + 8 * MIB + 10 * MIB + 16 * MIB
        );
        assert_eq!(memory_bound(usize::MAX, usize::MAX), usize::MAX);
    }

    fn check_invariants(batch: Vec<u8>) {
        let len = batch.len();
        if let Ok(records) = decode_batch(Bytes::from(batch), 64 * 1024) {
            assert!(records.len() <= 64 * 1024 / MIN_RECORD_BYTES + len);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check_invariants(bytes.clone());
            // Also as the records section of a batch that passes the CRC check.
            for attributes in 0..5 {
                check_invariants(forged_batch(attributes, 3, &bytes));
            }
        }

        #[test]
        fn mutated_batches_never_panic(
            codec in 0usize..5,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
            fix in any::<bool>(),
        ) {
            let mut batch = encode(&sample_records(), CODECS[codec]).to_vec();
            for (at, byte, kind) in edits {
                if batch.is_empty() {
                    break;
                }
                let i = at.index(batch.len());
                match kind {
                    0 => batch[i] = byte,
                    1 => batch[i] ^= 1 << (byte % 8),
                    2 => batch.insert(i, byte),
                    _ => { batch.remove(i); }
                }
            }
            if fix {
                fix_length_and_crc(&mut batch);
            }
            check_invariants(batch);
        }
    }
}
