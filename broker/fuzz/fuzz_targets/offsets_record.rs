//! Keys and values of `__consumer_offsets` records, read back at start-up and
//! on coordinator failover from a log anyone with produce access could have
//! written to.
//!
//! Input: one byte choosing the decoder (0 key, 1 offset value, 2 group value;
//! other values try all three), then the record's key or value bytes. Decoding
//! must not panic and must stay within the memory budget; whatever decodes
//! must survive an encode/decode round trip unchanged.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use runnel_server::consumer_offsets_records::{
    decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    runnel_fuzz::within_budget(runnel_fuzz::budget_for(rest.len()), || match which {
        0 => key(bytes),
        1 => offset(bytes),
        2 => group(bytes),
        _ => {
            key(bytes.clone());
            offset(bytes.clone());
            group(bytes);
        }
    });
});

fn key(bytes: Bytes) {
    if let Ok(k) = decode_key(bytes) {
        assert_eq!(
            decode_key(encode_key(&k)).as_ref(),
            Ok(&k),
            "key round trip"
        );
    }
}

fn offset(bytes: Bytes) {
    if let Ok(v) = decode_offset(bytes) {
        assert_eq!(
            decode_offset(encode_offset(&v)).as_ref(),
            Ok(&v),
            "offset round trip"
        );
    }
}

fn group(bytes: Bytes) {
    if let Ok(g) = decode_group(bytes) {
        assert_eq!(
            decode_group(encode_group(&g)).as_ref(),
            Ok(&g),
            "group round trip"
        );
    }
}
