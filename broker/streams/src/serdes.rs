//! Serdes: how keys and values are turned into bytes and back.
//!
//! The wire formats match Kafka's own serdes where Kafka has one: UTF-8 strings, raw bytes,
//! 8-byte big-endian `i64` (Kafka's `LongSerde`), and JSON through serde.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Turns a `T` into bytes and back.
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `value`.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, String>;
    /// The value of `bytes` (an absent key or value is read as empty bytes).
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String>;
}

/// A shared serde, as the DSL takes them.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Raw bytes, unchanged.
pub fn bytes() -> SerdeRef<Vec<u8>> {
    Arc::new(BytesSerde)
}

/// UTF-8 strings (invalid UTF-8 is an error).
pub fn string() -> SerdeRef<String> {
    Arc::new(StringSerde)
}

/// 8-byte big-endian signed integers, as Kafka's `LongSerde`.
pub fn i64() -> SerdeRef<i64> {
    Arc::new(I64Serde)
}

/// JSON through serde.
pub fn json<T: Serialize + DeserializeOwned + Send + Sync + 'static>() -> SerdeRef<T> {
    Arc::new(JsonSerde(PhantomData))
}

/// Windowed keys as Kafka's time-windowed serde writes them: the key's bytes, then the window
/// start as 8 big-endian bytes (the end is start + `size_ms`).
pub fn windowed<K: 'static>(
    key_serde: SerdeRef<K>,
    size_ms: i64,
) -> SerdeRef<crate::window::Windowed<K>> {
    Arc::new(WindowedSerde { key_serde, size_ms })
}

struct WindowedSerde<K> {
    key_serde: SerdeRef<K>,
    size_ms: i64,
}

impl<K: 'static> Serde<crate::window::Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &crate::window::Windowed<K>) -> Result<Vec<u8>, String> {
        let mut bytes = self.key_serde.serialize(&value.key)?;
        bytes.extend_from_slice(&value.start.to_be_bytes());
        Ok(bytes)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<crate::window::Windowed<K>, String> {
        let split = bytes
            .len()
            .checked_sub(8)
            .ok_or_else(|| format!("a windowed key has at least 8 bytes, got {}", bytes.len()))?;
        let start = i64::from_be_bytes(
            bytes[split..]
                .try_into()
                .map_err(|_| "short key".to_string())?,
        );
        Ok(crate::window::Windowed {
            key: self.key_serde.deserialize(&bytes[..split])?,
            start,
            end: start + self.size_ms,
        })
    }
}

struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
}

struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, String> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
    }
}

struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Vec<u8>, String> {
        Ok(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<i64, String> {
        let raw: [u8; 8] = bytes
            .try_into()
            .map_err(|_| format!("an i64 is 8 bytes, got {}", bytes.len()))?;
        Ok(i64::from_be_bytes(raw))
    }
}

struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn i64_is_eight_big_endian_bytes_like_kafkas_long_serde() {
        let s = i64();
        assert_eq!(s.serialize(&258).unwrap(), vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(s.deserialize(&[0, 0, 0, 0, 0, 0, 1, 2]).unwrap(), 258);
        assert!(s.deserialize(&[1, 2]).unwrap_err().contains("8 bytes"));
    }

    #[test]
    fn json_and_string_round_trip_and_refuse_bad_input() {
        let j = json::<Vec<u32>>();
        assert_eq!(
            j.deserialize(&j.serialize(&vec![1, 2]).unwrap()).unwrap(),
            vec![1, 2]
        );
        assert!(j.deserialize(b"{").is_err());
        assert!(string()
            .deserialize(&[0xff, 0xfe])
            .unwrap_err()
            .contains("UTF-8"));
    }
}
