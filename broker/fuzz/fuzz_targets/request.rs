//! Request frames as the broker reads them (header and body, no size prefix).
//!
//! The invariant: whatever `runnel_wire::check_request` accepts, the
//! `kafka-protocol` decoder reads without error and consumes exactly the bytes
//! the check walked; nothing panics, and decoding stays within a memory budget
//! proportional to the frame (see `runnel_fuzz::within_budget`). A frame the
//! check refuses is never decoded by the broker, so it ends the run here.

#![no_main]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    runnel_fuzz::within_budget(runnel_fuzz::budget_for(frame.len()), || check(frame));
});

fn check(frame: &[u8]) {
    let Ok(walked) = runnel_wire::check_request(frame) else {
        return;
    };
    let Some((raw_key, version)) = runnel_fuzz::key_and_version(frame) else {
        panic!("check_request accepted a frame of {} bytes", frame.len());
    };
    // The schema table knows APIs and versions the decoder does not; the broker
    // refuses those before decoding, by the decoder's own ranges.
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return;
    };
    let range = key.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    let mut buf = Bytes::copy_from_slice(frame);
    let header_version = key.request_header_version(version);
    if let Err(e) = RequestHeader::decode(&mut buf, header_version) {
        panic!(
            "{key:?} v{version}: accepted header does not decode (header v{header_version}): {e}"
        );
    }
    if let Err(e) = RequestKind::decode(key, &mut buf, version) {
        // kafka-protocol 0.18 knows tagged fields of Kafka releases newer than
        // the schema table (e.g. FetchPartition tag 1, v18+) and refuses them in
        // older versions, where the table skips them as unknown tags. The broker
        // then closes the connection on the decode error; nothing is allocated
        // from the tag. Any other disagreement is a finding.
        if format!("{e:#}").contains("is not valid for version") {
            return;
        }
        panic!("{key:?} v{version}: accepted body does not decode: {e}");
    }
    let consumed = frame.len() - buf.remaining();
    assert_eq!(
        consumed, walked,
        "{key:?} v{version}: the check walked {walked} bytes, the decoder read {consumed}"
    );
}
