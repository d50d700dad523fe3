//! cargo-fuzz target: hostile header values against the dashboard; see `fuzz/entries.rs`.
#![no_main]

#[path = "../entries.rs"]
mod entries;

use std::sync::OnceLock;

static WEB: OnceLock<entries::Web> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| WEB.get_or_init(entries::Web::start).headers(data));
