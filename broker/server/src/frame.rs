//! A response frame as the connection writes it: encoded bytes, and for Fetch the
//! record batches left in their segment files ([`FileSlice`]s), so a plaintext
//! connection sends them with `sendfile(2)` and no copy of log data passes through
//! the broker's memory (a TLS connection reads them just before it encrypts them).
//!
//! The response is encoded by kafka-protocol as every other one is, with each spliced
//! partition's `records` empty; [`splice`] then finds those fields with the wire
//! schema walker (`runnel_wire::response_records_fields`), writes the real lengths and
//! puts the file slices in their place.

use bytes::{BufMut, Bytes, BytesMut};
use runnel_log::FileSlice;

/// One piece of a frame.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Bytes in memory.
    Bytes(Bytes),
    /// Record batches in a segment file.
    File(FileSlice),
}

/// A whole response frame (size prefix, header, body) in pieces; the first is always
/// in memory and holds at least the size prefix and the header.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    parts: Vec<Part>,
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame {
            parts: vec![Part::Bytes(bytes)],
        }
    }
}

impl Frame {
    /// A frame of these pieces (the first in memory, holding the size prefix).
    #[cfg(test)]
    pub(crate) fn from_parts(parts: Vec<Part>) -> Frame {
        Frame { parts }
    }

    /// The pieces in the order they go on the wire.
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Bytes on the wire.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                Part::File(f) => f.len(),
            })
            .sum()
    }

    /// Rewrites the first, in-memory piece (the header and the fields before the first
    /// spliced records, where `throttle_time_ms` is).
    pub(crate) fn map_head(mut self, f: impl FnOnce(Bytes) -> Bytes) -> Frame {
        if let Some(Part::Bytes(head)) = self.parts.first_mut() {
            *head = f(std::mem::take(head));
        }
        self
    }

    /// Reads every file piece into one buffer (for tests and callers that need bytes).
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> std::io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.len());
        for part in &self.parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File(f) => f.read_into(&mut out)?,
            }
        }
        Ok(out.freeze())
    }
}

/// Puts file slices in place of the empty `records` fields of an encoded response
/// `frame` (size prefix, response header of `header_len` bytes, body). `records` has one
/// entry per `records` field of the body in wire order: the slices to send there, or
/// `None` to leave the field as encoded. The size prefix is rewritten.
pub(crate) fn splice(
    frame: Bytes,
    api_key: i16,
    version: i16,
    header_len: usize,
    records: Vec<Option<Vec<FileSlice>>>,
) -> Result<Frame, String> {
    if records.iter().all(Option::is_none) {
        return Ok(Frame::from(frame));
    }
    let body_at = 4 + header_len;
    let body = frame
        .get(body_at..)
        .ok_or_else(|| "encoded response shorter than its header".to_string())?;
    let fields = runnel_wire::response_records_fields(api_key, version, body)
        .map_err(|e| format!("cannot splice records into the encoded response: {e}"))?;
    if fields.len() != records.len() {
        return Err(format!(
            "the encoded response has {} records fields, {} were expected",
            fields.len(),
            records.len()
        ));
    }
    let mut parts = Vec::new();
    let mut copied = 0usize; // frame bytes already in `parts`
    let mut size = frame.len() - 4;
    for (field, slices) in fields.iter().zip(records) {
        let Some(slices) = slices else { continue };
        if field.len != Some(0) {
            return Err("a spliced records field was not encoded empty".to_string());
        }
        let length_at = body_at + field.length_at;
        let data_at = body_at + field.data_at;
        let len: usize = slices.iter().map(FileSlice::len).sum();
        let mut length = BytesMut::with_capacity(5);
        if field.compact {
            let value = u32::try_from(len + 1)
                .map_err(|_| format!("records of {len} bytes do not fit in a response"))?;
            put_uvarint(&mut length, value);
        } else {
            let value = i32::try_from(len)
                .map_err(|_| format!("records of {len} bytes do not fit in a response"))?;
            length.put_i32(value);
        }
        size = size - (data_at - length_at) + length.len() + len;
        parts.push(Part::Bytes(frame.slice(copied..length_at)));
        parts.push(Part::Bytes(length.freeze()));
        parts.extend(slices.into_iter().map(Part::File));
        copied = data_at;
    }
    if copied < frame.len() {
        parts.push(Part::Bytes(frame.slice(copied..)));
    }
    let size = i32::try_from(size).map_err(|_| format!("a response of {size} bytes"))?;
    // The first piece is the frame up to the first spliced field: it holds the size prefix.
    if let Some(Part::Bytes(first)) = parts.first_mut() {
        let mut head = BytesMut::from(&first[..]);
        head[0..4].copy_from_slice(&size.to_be_bytes());
        *first = head.freeze();
    }
    Ok(Frame { parts })
}

fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::encode_response;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
    use std::io::Write;

    fn response(records: [Option<Bytes>; 3]) -> FetchResponse {
        let [a, b, c] = records;
        FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(0)
                            .with_records(a),
                        PartitionData::default()
                            .with_partition_index(1)
                            .with_records(b),
                    ]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("u")))
                    .with_partitions(vec![PartitionData::default()
                        .with_partition_index(0)
                        .with_records(c)]),
            ])
    }

    #[test]
    fn a_spliced_frame_is_byte_for_byte_the_frame_encoded_with_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let mut file = std::fs::File::create(&path).unwrap();
        // Two "segments" worth of bytes in one file; what is around them must not be sent.
        file.write_all(b"xxxxHELLO-WORLDyyyyA-LONGER-RUN-OF-BATCHES-zz")
            .unwrap();
        drop(file);
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let hello = FileSlice::new(file.clone(), 4, 11);
        let run = FileSlice::new(file.clone(), 19, 24);
        for version in [4i16, 11, 12, 16] {
            let expected = encode_response(
                7,
                version,
                &response([
                    Some(Bytes::from_static(b"HELLO-WORLD")),
                    Some(Bytes::from_static(b"")),
                    Some(Bytes::from_static(b"HELLO-WORLDA-LONGER-RUN-OF-BATCHES-")),
                ]),
            )
            .unwrap();
            let encoded = encode_response(
                7,
                version,
                &response([Some(Bytes::new()), Some(Bytes::new()), Some(Bytes::new())]),
            )
            .unwrap();
            let header_len = 4 + usize::from(FetchResponse::header_version(version) >= 1);
            let frame = splice(
                encoded,
                ApiKey::Fetch as i16,
                version,
                header_len,
                vec![
                    Some(vec![hello.clone()]),
                    None,
                    Some(vec![hello.clone(), run.clone()]),
                ],
            )
            .unwrap();
            assert_eq!(frame.len(), expected.len(), "v{version}");
            assert_eq!(frame.to_bytes().unwrap(), expected, "v{version}");
            assert!(matches!(frame.parts()[0], Part::Bytes(_)));
            assert_eq!(
                frame
                    .parts()
                    .iter()
                    .filter(|p| matches!(p, Part::File(_)))
                    .count(),
                3
            );
            // And it decodes as the response it stands for.
            let mut body = frame.to_bytes().unwrap().slice(4..);
            ResponseHeader::decode(&mut body, FetchResponse::header_version(version)).unwrap();
            let decoded = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(
                decoded.responses[1].partitions[0].records.as_deref(),
                Some(&b"HELLO-WORLDA-LONGER-RUN-OF-BATCHES-"[..])
            );
        }
    }

    #[test]
    fn a_records_field_that_was_not_left_empty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, b"HELLO").unwrap();
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let encoded = encode_response(
            7,
            12,
            &response([Some(Bytes::from_static(b"already")), None, None]),
        )
        .unwrap();
        let err = splice(
            encoded.clone(),
            ApiKey::Fetch as i16,
            12,
            5,
            vec![Some(vec![FileSlice::new(file, 0, 5)]), None, None],
        )
        .unwrap_err();
        assert!(err.contains("not encoded empty"), "{err}");
        let err = splice(
            encoded,
            ApiKey::Fetch as i16,
            12,
            5,
            vec![None, Some(vec![])],
        )
        .unwrap_err();
        assert!(err.contains("records fields"), "{err}");
    }
}
