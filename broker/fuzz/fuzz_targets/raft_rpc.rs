//! Request frames on the metadata quorum's RPC listener (the bytes after the
//! 4-byte length: a JSON envelope around an openraft RPC or one of the
//! quorum's own requests), decoded by `runnel_meta::decode_rpc_request`
//! exactly as the listener decodes them. The listener is reachable before any
//! authentication.
//!
//! Invariants: no panic, no stack exhaustion, memory within a budget
//! proportional to the frame. `-dict=broker/fuzz/dict/raft_rpc.dict` (passed
//! by scripts/fuzz.sh) gives libFuzzer the JSON keys and variant names; without
//! a sanitizer runtime it cannot learn them from string comparisons itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    runnel_fuzz::within_budget(runnel_fuzz::budget_for(body.len()), || {
        let _ = runnel_meta::decode_rpc_request(body);
    });
});
