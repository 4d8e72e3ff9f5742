//! SASL tokens from clients that have not authenticated yet: the PLAIN message
//! and SCRAM's client-first and client-final messages, run through the
//! broker's SASL state machine (`runnel_server::fuzz_sasl_exchange`). The
//! first byte picks the mechanism; the rest is split into tokens at 0x1E.
//!
//! Invariants: no panic, memory within a budget proportional to the input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let mechanism = match first % 3 {
        0 => "PLAIN",
        1 => "SCRAM-SHA-256",
        _ => "SCRAM-SHA-512",
    };
    let tokens: Vec<&[u8]> = rest.split(|b| *b == 0x1e).take(3).collect();
    runnel_fuzz::within_budget(runnel_fuzz::budget_for(data.len()), || {
        runnel_server::fuzz_sasl_exchange(mechanism, &tokens);
    });
});
