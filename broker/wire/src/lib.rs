//! Checks a Kafka frame against Kafka's message schemas before anything
//! decodes it, so that no length or count read off the wire can drive an
//! allocation larger than the bytes that could back it.
//!
//! Why this exists: `kafka-protocol` 0.18 passes every array length it reads
//! straight to `Vec::with_capacity`, before decoding a single element. A 40-byte
//! frame can declare 2^31 elements of a 140-byte struct; the allocation fails,
//! and an allocation failure aborts the process (no `catch_unwind` contains it).
//! Kafka's own generated readers refuse an array whose length exceeds the bytes
//! remaining; this crate does the same, and more strictly: every element needs
//! at least its minimal wire size, so `count * min_size <= remaining`.
//!
//! The walk follows the schema table generated from Kafka's JSON message
//! definitions (`schema.rs`, see `scripts/gen_wire_schema.py`): the fields of
//! the API version at hand, classic or compact encodings per the message's
//! flexible versions, nullable versions, and tagged fields (known tags are
//! walked by type and must fill exactly their declared size). A frame that
//! passes is one the decoder reads without surprises; the cost is one pass over
//! the frame's metadata (record data is skipped as opaque bytes).
//!
//! After a frame passes, decoding it allocates at most the sum over its arrays
//! of `count * size_of::<element>()`, where the counts together cannot exceed
//! the frame's length: a small multiple of the bytes actually received.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod schema;
mod schema_types;

use schema::MESSAGES;
use schema_types::{Field, Kind, Message, Ty};

/// The API key of ApiVersions, whose response header stays v0 in every version
/// (KIP-511: a client must be able to read it before it knows the versions).
const API_VERSIONS_KEY: i16 = 18;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame names an API key this schema table does not know.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// No data structure of this name is in the schema table.
    #[error("unknown data structure {0}")]
    UnknownData(String),
    /// The version is outside the API's valid versions.
    #[error("{name} v{version} is not a version Kafka defines ({min}-{max})")]
    UnknownVersion {
        /// Message name.
        name: &'static str,
        /// Requested version.
        version: i16,
        /// Lowest valid version.
        min: i16,
        /// Highest valid version.
        max: i16,
    },
    /// The frame is malformed at `path`.
    #[error("malformed {name} v{version} at {path}: {reason}")]
    Malformed {
        /// Message name (or header name).
        name: &'static str,
        /// Its version.
        version: i16,
        /// Dotted field path, with array indexes.
        path: String,
        /// What is wrong there.
        reason: String,
    },
}

/// The versions Kafka's schemas define for a request (`None` for an unknown key).
pub fn request_versions(api_key: i16) -> Option<(i16, i16)> {
    find(api_key, Kind::Request).map(|m| (m.valid.0, m.valid.1))
}

/// The versions Kafka's schemas define for a response (`None` for an unknown key).
pub fn response_versions(api_key: i16) -> Option<(i16, i16)> {
    find(api_key, Kind::Response).map(|m| (m.valid.0, m.valid.1))
}

/// The request header version used by `api_key` at `version` (1, or 2 in flexible versions).
pub fn request_header_version(api_key: i16, version: i16) -> Option<i16> {
    find(api_key, Kind::Request).map(|m| if m.flexible.contains(version) { 2 } else { 1 })
}

/// The response header version used by `api_key` at `version` (0, or 1 in
/// flexible versions; ApiVersions always 0).
pub fn response_header_version(api_key: i16, version: i16) -> Option<i16> {
    find(api_key, Kind::Response).map(|m| {
        if m.flexible.contains(version) && api_key != API_VERSIONS_KEY {
            1
        } else {
            0
        }
    })
}

/// Checks a whole request frame (header and body, without the 4-byte size
/// prefix). Returns how many bytes the header and body occupy (trailing bytes
/// are left alone, as Kafka does).
pub fn check_request(frame: &[u8]) -> Result<usize, WireError> {
    if frame.len() < 4 {
        return Err(malformed(
            "RequestHeader",
            0,
            String::new(),
            "shorter than 4 bytes",
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let message = find(api_key, Kind::Request).ok_or(WireError::UnknownApi(api_key))?;
    check_version(message, version)?;
    let header_version = if message.flexible.contains(version) {
        2
    } else {
        1
    };
    let header = header("RequestHeader");
    let mut r = Reader::new(frame);
    walk_message(&mut r, header, header_version)?;
    walk_message(&mut r, message, version)?;
    Ok(r.pos)
}

/// Checks a response frame of `api_key` at `version` (response header and
/// body, without the 4-byte size prefix). Returns the bytes they occupy.
pub fn check_response(api_key: i16, version: i16, frame: &[u8]) -> Result<usize, WireError> {
    let message = find(api_key, Kind::Response).ok_or(WireError::UnknownApi(api_key))?;
    check_version(message, version)?;
    let header_version = response_header_version(api_key, version).unwrap_or(0);
    let mut r = Reader::new(frame);
    walk_message(&mut r, header("ResponseHeader"), header_version)?;
    walk_message(&mut r, message, version)?;
    Ok(r.pos)
}

/// Checks a response body alone (after its header has been read).
pub fn check_response_body(api_key: i16, version: i16, body: &[u8]) -> Result<usize, WireError> {
    let message = find(api_key, Kind::Response).ok_or(WireError::UnknownApi(api_key))?;
    check_version(message, version)?;
    let mut r = Reader::new(body);
    walk_message(&mut r, message, version)?;
    Ok(r.pos)
}

/// A `records` field found in an encoded response body ([`response_records_fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsField {
    /// Where the field's length starts.
    pub length_at: usize,
    /// Where its bytes start (after the length).
    pub data_at: usize,
    /// Its length (`None`: null).
    pub len: Option<usize>,
    /// Whether the length is a compact (unsigned varint, length + 1) one, else an int32.
    pub compact: bool,
}

/// Every `records` field of a response body, in wire order, after checking the
/// whole body against the schema: where the broker splices record batches it sends
/// from a file (zero-copy fetch) into an encoded response.
pub fn response_records_fields(
    api_key: i16,
    version: i16,
    body: &[u8],
) -> Result<Vec<RecordsField>, WireError> {
    let message = find(api_key, Kind::Response).ok_or(WireError::UnknownApi(api_key))?;
    check_version(message, version)?;
    let mut r = Reader::new(body);
    r.records = Some(Vec::new());
    walk_message(&mut r, message, version)?;
    if r.pos != body.len() {
        return Err(malformed(
            message.name,
            version,
            "(top)".to_string(),
            &format!("{} bytes after the end of the message", body.len() - r.pos),
        ));
    }
    Ok(r.records.unwrap_or_default())
}

/// Where a top-level field of a response body starts (`None` if the field is
/// not on the wire at `version`, is tagged, or the body ends before it), so
/// the broker can rewrite a fixed-size field such as `ThrottleTimeMs` in an
/// encoded response without knowing each message's layout.
pub fn response_field_offset(api_key: i16, version: i16, body: &[u8], name: &str) -> Option<usize> {
    let message = find(api_key, Kind::Response)?;
    if !message.valid.contains(version) {
        return None;
    }
    let ctx = Ctx {
        version,
        flexible: message.flexible.contains(version),
    };
    let mut r = Reader::new(body);
    for field in message.fields {
        if !field.versions.contains(version) || is_tagged(field, version) {
            continue;
        }
        if field.name == name {
            return Some(r.pos);
        }
        walk_field(&mut r, field, ctx).ok()?;
    }
    None
}

/// Checks the body of a versioned data structure carried inside another
/// message (`ConsumerProtocolSubscription`, `ConsumerProtocolAssignment`: the
/// bytes after their leading i16 version). Returns the bytes it occupies.
pub fn check_data(name: &str, version: i16, body: &[u8]) -> Result<usize, WireError> {
    let message = MESSAGES
        .iter()
        .find(|m| m.kind == Kind::Data && m.name == name)
        .ok_or_else(|| WireError::UnknownData(name.to_string()))?;
    check_version(message, version)?;
    let mut r = Reader::new(body);
    walk_message(&mut r, message, version)?;
    Ok(r.pos)
}

fn find(api_key: i16, kind: Kind) -> Option<&'static Message> {
    MESSAGES
        .iter()
        .find(|m| m.kind == kind && m.api_key == api_key)
}

fn header(name: &str) -> &'static Message {
    // The table is generated with both headers; a missing one is a generator bug
    // that the unit tests catch.
    MESSAGES
        .iter()
        .find(|m| m.kind == Kind::Header && m.name == name)
        .unwrap_or(&MESSAGES[0])
}

fn check_version(message: &'static Message, version: i16) -> Result<(), WireError> {
    if message.valid.contains(version) {
        Ok(())
    } else {
        Err(WireError::UnknownVersion {
            name: message.name,
            version,
            min: message.valid.0,
            max: message.valid.1,
        })
    }
}

fn malformed(name: &'static str, version: i16, path: String, reason: &str) -> WireError {
    WireError::Malformed {
        name,
        version,
        path,
        reason: reason.to_string(),
    }
}

/// A failure deep in a walk: the reason, and the field path built while
/// returning (innermost first).
struct Fail {
    path: Vec<String>,
    reason: String,
}

impl Fail {
    fn new(reason: impl Into<String>) -> Self {
        Fail {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }
}

type Walk<T = ()> = Result<T, Fail>;

fn walk_message(
    r: &mut Reader<'_>,
    message: &'static Message,
    version: i16,
) -> Result<(), WireError> {
    let ctx = Ctx {
        version,
        flexible: message.flexible.contains(version),
    };
    walk_struct(r, message.fields, ctx).map_err(|fail| {
        let mut path = String::new();
        for segment in fail.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        if path.is_empty() {
            path.push_str("(top)");
        }
        malformed(message.name, version, path, &fail.reason)
    })
}

/// What every level of one message's walk shares.
#[derive(Clone, Copy)]
struct Ctx {
    version: i16,
    flexible: bool,
}

fn is_tagged(field: &Field, version: i16) -> bool {
    field
        .tag
        .is_some_and(|(_, tagged)| tagged.contains(version))
}

fn walk_struct(r: &mut Reader<'_>, fields: &'static [Field], ctx: Ctx) -> Walk {
    for field in fields {
        if !field.versions.contains(ctx.version) || is_tagged(field, ctx.version) {
            continue;
        }
        walk_field(r, field, ctx).map_err(|f| f.at(field.name))?;
    }
    if ctx.flexible {
        walk_tagged_fields(r, fields, ctx)?;
    }
    Ok(())
}

fn walk_tagged_fields(r: &mut Reader<'_>, fields: &'static [Field], ctx: Ctx) -> Walk {
    let count = r.uvarint().map_err(|f| f.at("(tagged fields)"))?;
    // No allocation depends on `count`: each iteration consumes at least two
    // bytes or fails.
    for _ in 0..count {
        let tag = r.uvarint().map_err(|f| f.at("(tag)"))?;
        let size = r.uvarint().map_err(|f| f.at(format!("(tag {tag} size)")))? as usize;
        if size > r.remaining() {
            return Err(Fail::new(format!(
                "tagged field {tag} declares {size} bytes but only {} remain",
                r.remaining()
            )));
        }
        let known = fields.iter().find(|f| f.tag.is_some_and(|(t, _)| t == tag));
        match known {
            None => {
                r.skip(size)?;
            }
            Some(field)
                if is_tagged(field, ctx.version) && field.versions.contains(ctx.version) =>
            {
                let start = r.pos;
                let mut sub = Reader::new(&r.buf[..start + size]);
                sub.pos = start;
                walk_field(&mut sub, field, ctx).map_err(|f| f.at(field.name))?;
                if sub.pos != start + size {
                    return Err(Fail::new(format!(
                        "tagged field {} (tag {tag}) declares {size} bytes but its value takes {}",
                        field.name,
                        sub.pos - start
                    ))
                    .at(field.name));
                }
                r.pos = start + size;
            }
            Some(field) => {
                return Err(Fail::new(format!(
                    "tag {tag} ({}) is not valid in version {}",
                    field.name, ctx.version
                )));
            }
        }
    }
    Ok(())
}

fn walk_field(r: &mut Reader<'_>, field: &'static Field, ctx: Ctx) -> Walk {
    let nullable = field.nullable.contains(ctx.version);
    let flexible = match field.flexible {
        Some(v) => v.contains(ctx.version),
        None => ctx.flexible,
    };
    walk_value(r, &field.ty, nullable, Ctx { flexible, ..ctx })
}

fn walk_value(r: &mut Reader<'_>, ty: &'static Ty, nullable: bool, ctx: Ctx) -> Walk {
    match ty {
        Ty::Bool | Ty::Int8 => r.skip(1),
        Ty::Int16 | Ty::Uint16 => r.skip(2),
        Ty::Int32 => r.skip(4),
        Ty::Int64 | Ty::Float64 => r.skip(8),
        Ty::Uuid => r.skip(16),
        Ty::String => {
            let Some(len) = r.length(ctx.flexible, false, nullable, "string")? else {
                return Ok(());
            };
            let bytes = r.take(len)?;
            if std::str::from_utf8(bytes).is_err() {
                return Err(Fail::new("string is not valid UTF-8"));
            }
            Ok(())
        }
        Ty::Bytes => {
            let Some(len) = r.length(ctx.flexible, true, nullable, "bytes")? else {
                return Ok(());
            };
            r.skip(len)
        }
        Ty::Records => {
            let length_at = r.pos;
            let len = r.length(ctx.flexible, true, nullable, "bytes")?;
            let data_at = r.pos;
            if let Some(found) = r.records.as_mut() {
                found.push(RecordsField {
                    length_at,
                    data_at,
                    len,
                    compact: ctx.flexible,
                });
            }
            match len {
                Some(len) => r.skip(len),
                None => Ok(()),
            }
        }
        Ty::Array(element) => {
            let Some(count) = r.length(ctx.flexible, true, nullable, "array")? else {
                return Ok(());
            };
            let min = min_size(element, false, ctx).max(1);
            if count > r.remaining() / min {
                return Err(Fail::new(format!(
                    "array of {count} elements (at least {min} bytes each) but only {} bytes remain",
                    r.remaining()
                )));
            }
            for i in 0..count {
                walk_value(r, element, false, ctx).map_err(|f| f.at(format!("[{i}]")))?;
            }
            Ok(())
        }
        Ty::Struct(fields) => {
            if nullable {
                match r.i8()? {
                    -1 => return Ok(()),
                    1 => {}
                    other => {
                        return Err(Fail::new(format!(
                            "nullable struct marker {other} (expected -1 or 1)"
                        )))
                    }
                }
            }
            walk_struct(r, fields, ctx)
        }
    }
}

/// The fewest bytes a value of `ty` takes on the wire at this version.
fn min_size(ty: &'static Ty, nullable: bool, ctx: Ctx) -> usize {
    match ty {
        Ty::Bool | Ty::Int8 => 1,
        Ty::Int16 | Ty::Uint16 => 2,
        Ty::Int32 => 4,
        Ty::Int64 | Ty::Float64 => 8,
        Ty::Uuid => 16,
        Ty::String => {
            if ctx.flexible {
                1
            } else {
                2
            }
        }
        Ty::Bytes | Ty::Records | Ty::Array(_) => {
            if ctx.flexible {
                1
            } else {
                4
            }
        }
        Ty::Struct(_) if nullable => 1,
        Ty::Struct(fields) => {
            let mut total = usize::from(ctx.flexible);
            for field in fields.iter() {
                if field.versions.contains(ctx.version) && !is_tagged(field, ctx.version) {
                    let flexible = match field.flexible {
                        Some(v) => v.contains(ctx.version),
                        None => ctx.flexible,
                    };
                    total += min_size(
                        &field.ty,
                        field.nullable.contains(ctx.version),
                        Ctx { flexible, ..ctx },
                    );
                }
            }
            total
        }
    }
}

/// A cursor over the frame; every read is checked against what remains.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where each `records` field's length starts and its bytes start, when a caller
    /// asked for them ([`response_records_fields`]).
    records: Option<Vec<RecordsField>>,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            records: None,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Walk<&'a [u8]> {
        if n > self.remaining() {
            return Err(Fail::new(format!(
                "needs {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> Walk {
        self.take(n).map(|_| ())
    }

    fn i8(&mut self) -> Walk<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Walk<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Walk<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint read exactly as `kafka-protocol` reads it: at most
    /// five bytes, bits beyond 32 dropped.
    fn uvarint(&mut self) -> Walk<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(self.take(1)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Reads the length prefix of a string (`i16` classic), bytes or array
    /// (`i32` classic), or any of them compact (`uvarint` of length + 1).
    /// `None` is null, refused unless the field is nullable in this version.
    fn length(
        &mut self,
        compact: bool,
        wide: bool,
        nullable: bool,
        what: &str,
    ) -> Walk<Option<usize>> {
        let len: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match len {
            -1 if nullable => Ok(None),
            -1 => Err(Fail::new(format!(
                "null {what} in a field that is not nullable"
            ))),
            n if n < 0 => Err(Fail::new(format!("negative {what} length {n}"))),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| Fail::new(format!("{what} length {n} does not fit in memory"))),
        }
    }
}

#[cfg(test)]
mod tests;
