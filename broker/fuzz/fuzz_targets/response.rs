//! Response frames as a client (the CLI, the operator, a follower) reads them.
//!
//! Input: the API key and version of the request it answers (2 + 2 bytes,
//! big-endian), then the response frame without its size prefix (response
//! header and body). The invariant mirrors the `request` target: whatever
//! `runnel_wire::check_response` accepts decodes without error, consuming
//! exactly the bytes the check walked, within the memory budget.

#![no_main]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((raw_key, version)) = runnel_fuzz::key_and_version(data) else {
        return;
    };
    let frame = &data[4..];
    runnel_fuzz::within_budget(runnel_fuzz::budget_for(frame.len()), || {
        check(raw_key, version, frame)
    });
});

fn check(raw_key: i16, version: i16, frame: &[u8]) {
    let Ok(walked) = runnel_wire::check_response(raw_key, version, frame) else {
        return;
    };
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return;
    };
    let range = key.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    let mut buf = Bytes::copy_from_slice(frame);
    let header_version = key.response_header_version(version);
    if let Err(e) = ResponseHeader::decode(&mut buf, header_version) {
        panic!("{key:?} v{version}: accepted response header does not decode (header v{header_version}): {e}");
    }
    if let Err(e) = ResponseKind::decode(key, &mut buf, version) {
        // See the request target: tags of newer Kafka releases known to the decoder.
        if format!("{e:#}").contains("is not valid for version") {
            return;
        }
        panic!("{key:?} v{version}: accepted response body does not decode: {e}");
    }
    let consumed = frame.len() - buf.remaining();
    assert_eq!(
        consumed, walked,
        "{key:?} v{version}: the check walked {walked} bytes, the decoder read {consumed}"
    );
}
