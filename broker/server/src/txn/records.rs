//! The record format of `__transaction_state`, defined here only: the key is
//! the transactional id (`i16` version 0, then an `i16`-length string), the
//! value its [`TxnMetadata`] (`i16` version 0, producer id, previous producer
//! id, epoch, timeout, status code, start and update times, partitions by
//! topic); a null value removes the id. The topic is compacted: the latest
//! record per key is the state.
//!
//! Decoding trusts nothing in the bytes: every length and count is checked
//! against the bytes left.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnStatus};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Errors decoding a record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// The bytes end before the field.
    #[error("record truncated while reading {0}")]
    Truncated(&'static str),
    /// A version or code this code does not know.
    #[error("unknown {0}")]
    Unknown(&'static str),
    /// A string is not UTF-8.
    #[error("invalid utf-8 in {0}")]
    Utf8(&'static str),
}

fn put_str(b: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(bytes.len() as i16);
    b.put_slice(bytes);
}

fn need(b: &Bytes, n: usize, what: &'static str) -> Result<(), RecordError> {
    if b.remaining() < n {
        Err(RecordError::Truncated(what))
    } else {
        Ok(())
    }
}

fn get_str(b: &mut Bytes, what: &'static str) -> Result<String, RecordError> {
    need(b, 2, what)?;
    let len = usize::try_from(b.get_i16()).map_err(|_| RecordError::Truncated(what))?;
    need(b, len, what)?;
    String::from_utf8(b.split_to(len).to_vec()).map_err(|_| RecordError::Utf8(what))
}

fn get_count(b: &mut Bytes, min_bytes: usize, what: &'static str) -> Result<usize, RecordError> {
    need(b, 4, what)?;
    let n = usize::try_from(b.get_i32()).unwrap_or(0);
    if n > b.remaining() / min_bytes.max(1) {
        return Err(RecordError::Truncated(what));
    }
    Ok(n)
}

/// The key of a transactional id.
pub(crate) fn encode_key(txn_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + txn_id.len());
    b.put_i16(KEY_VERSION);
    put_str(&mut b, txn_id);
    b.freeze()
}

/// The transactional id of a key.
pub(crate) fn decode_key(mut b: Bytes) -> Result<String, RecordError> {
    need(&b, 2, "key version")?;
    if b.get_i16() != KEY_VERSION {
        return Err(RecordError::Unknown("key version"));
    }
    get_str(&mut b, "transactional id")
}

/// The value of a transactional id's metadata.
pub(crate) fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(VALUE_VERSION);
    b.put_i64(m.producer_id);
    b.put_i64(m.prev_producer_id);
    b.put_i16(m.epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.status.code());
    b.put_i64(m.start_ms);
    b.put_i64(m.update_ms);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.freeze()
}

/// The metadata of `txn_id` from its value.
pub(crate) fn decode_value(txn_id: &str, mut b: Bytes) -> Result<TxnMetadata, RecordError> {
    need(&b, 2 + 8 + 8 + 2 + 4 + 1 + 8 + 8 + 4, "value")?;
    if b.get_i16() != VALUE_VERSION {
        return Err(RecordError::Unknown("value version"));
    }
    let producer_id = b.get_i64();
    let prev_producer_id = b.get_i64();
    let epoch = b.get_i16();
    let timeout_ms = b.get_i32();
    let status = TxnStatus::from_code(b.get_i8()).ok_or(RecordError::Unknown("status"))?;
    let start_ms = b.get_i64();
    let update_ms = b.get_i64();
    let topics = get_count(&mut b, 6, "topic count")?;
    let mut partitions = BTreeSet::new();
    for _ in 0..topics {
        let topic = get_str(&mut b, "topic")?;
        let n = get_count(&mut b, 4, "partition count")?;
        for _ in 0..n {
            partitions.insert((topic.clone(), b.get_i32()));
        }
    }
    Ok(TxnMetadata {
        txn_id: txn_id.to_string(),
        producer_id,
        prev_producer_id,
        epoch,
        timeout_ms,
        status,
        partitions,
        start_ms,
        update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_damage_is_an_error() {
        let mut m = TxnMetadata::new("app-1", 4000, 60_000, 5);
        m.status = TxnStatus::PrepareCommit;
        m.epoch = 3;
        m.prev_producer_id = 17;
        m.start_ms = 7;
        m.partitions = [
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ]
        .into();
        let value = encode_value(&m);
        assert_eq!(decode_value("app-1", value.clone()).unwrap(), m);
        assert_eq!(decode_key(encode_key("app-1")).unwrap(), "app-1");
        for cut in 0..value.len() {
            assert!(
                decode_value("app-1", value.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
        let mut bad = BytesMut::from(&value[..]);
        bad[2 + 8 + 8 + 2 + 4] = 9;
        assert_eq!(
            decode_value("app-1", bad.freeze()),
            Err(RecordError::Unknown("status"))
        );
    }
}
