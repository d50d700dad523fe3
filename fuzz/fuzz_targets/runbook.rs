//! cargo-fuzz target: see `fuzz/entries.rs` for the property.
#![no_main]

#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entries::runbook(data));
