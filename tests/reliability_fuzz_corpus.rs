//! The fuzz targets' entry points (`fuzz/entries.rs`) run in CI as ordinary tests: over the seed
//! corpus (the shipped examples and runbooks, hand-made wire messages, and every input saved under
//! `fuzz/regressions/<target>/` after a crash) and over seeded random mutations of it. The long
//! campaign is `scripts/fuzz` (cargo-fuzz, coverage-guided). `LOCKSTEP_FUZZ_SEED=N` replays one
//! sequence; `LOCKSTEP_FUZZ_CASES=N` sets the number of mutated inputs per target.

#[path = "../fuzz/entries.rs"]
mod entries;

use std::path::Path;

use lockstep_protocol::{Action, ActionId, ActionRequest};
use rand::{Rng, SeedableRng};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Files of a folder (those ending in `ext`, or all when empty), plus the saved regressions.
fn seeds(target: &str, dirs: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let regressions = format!("fuzz/regressions/{target}");
    let mut all = dirs.to_vec();
    all.push((regressions.as_str(), ""));
    let corpus = format!("fuzz/corpus/{target}");
    all.push((corpus.as_str(), ""));
    for (dir, ext) in all {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() && p.to_string_lossy().ends_with(ext) {
                out.push(std::fs::read(&p).expect("read seed"));
            }
        }
    }
    out
}

/// One random change: flip, insert, delete, duplicate a slice, or splice in a hostile token.
fn mutate(rng: &mut rand::rngs::StdRng, input: &[u8]) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"\"",
        b"[",
        b"]]",
        b"{",
        b"}",
        b"=",
        b"\n",
        b"\0",
        b"\xff\xfe",
        b"-1",
        b"18446744073709551616",
        b"9223372036854775807",
        b"1e999",
        b"[[servers]]",
        b"\\",
        b"\xc3",
        b"${",
        b"{{",
        b"'''",
    ];
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = v.len();
        match rng.gen_range(0..5) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                let i = rng.gen_range(0..=len);
                v.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                v.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let piece = v[a..b].to_vec();
                let i = rng.gen_range(0..=len);
                v.splice(i..i, piece);
            }
            _ => v.truncate(rng.gen_range(0..=len)),
        }
    }
    v
}

fn run(target: &str, seeds: Vec<Vec<u8>>, cases: u64, mut entry: impl FnMut(&[u8])) {
    assert!(!seeds.is_empty(), "{target}: no seed inputs found");
    let seed = env_number("LOCKSTEP_FUZZ_SEED", rand::random::<u32>() as u64);
    println!(
        "{target}: {} seeds, {cases} mutations, LOCKSTEP_FUZZ_SEED={seed}",
        seeds.len()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for s in &seeds {
        entry(s);
    }
    for _ in 0..cases {
        let base = &seeds[rng.gen_range(0..seeds.len())];
        let input = mutate(&mut rng, base);
        entry(&input);
    }
}

#[test]
fn the_inventory_parser_survives_mutated_inventories() {
    let s = seeds("inventory", &[("examples", ".toml")]);
    run(
        "inventory",
        s,
        env_number("LOCKSTEP_FUZZ_CASES", 3_000),
        entries::inventory,
    );
}

#[test]
fn the_runbook_parser_survives_mutated_runbooks() {
    let s = seeds("runbook", &[("runbooks", ".toml")]);
    run(
        "runbook",
        s,
        env_number("LOCKSTEP_FUZZ_CASES", 1_000),
        entries::runbook,
    );
}

#[test]
fn the_agent_survives_mutated_wire_messages() {
    let id = ActionId::new("run-1/step-1/1").expect("id");
    let actions = [
        Action::RegistryGet {
            key: r"HKLM\SOFTWARE\Connected\Registry".into(),
            name: "Version".into(),
        },
        Action::ServiceSetStartup {
            service: "W3SVC".into(),
            startup: lockstep_protocol::action::StartupType::Manual,
        },
    ];
    let mut s = seeds("agent_protocol", &[]);
    for a in actions {
        let req = ActionRequest::new(id.clone(), a, 1_900_000_000, 300);
        s.push(serde_json::to_vec(&req).expect("encode"));
    }
    s.push(br#"{"id":"run-1/step-1/1"}"#.to_vec());
    s.push(br"C:\Program Files\Connected\..\..\Windows\System32".to_vec());
    s.push(br"HKLM\SOFTWARE\..\SYSTEM\CurrentControlSet".to_vec());
    run(
        "agent_protocol",
        s,
        env_number("LOCKSTEP_FUZZ_CASES", 5_000),
        entries::agent_protocol,
    );
}

/// A PRELOGIN option table and the start of a LOGIN7 record, as a TDS client sends them.
fn tds_seeds() -> Vec<Vec<u8>> {
    let mut prelogin = vec![
        0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff,
    ];
    prelogin.extend_from_slice(&[0x0f, 0x00, 0x07, 0xd0, 0x00, 0x00, 0x00]);
    let mut login7 = vec![0u8; 94];
    login7[0] = 94;
    login7[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
    login7.extend_from_slice(
        &"sa"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>(),
    );
    let mut rpc = vec![
        0x16, 0, 0, 0, 0x12, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0,
    ];
    rpc.extend_from_slice(&[0xff, 0xff, 0x0a, 0x00, 0x00, 0x00]);
    vec![prelogin, login7, rpc]
}

#[test]
fn the_tds_packet_parsers_survive_mutated_packets() {
    let mut s = seeds("tds", &[]);
    s.extend(tds_seeds());
    run(
        "tds",
        s,
        env_number("LOCKSTEP_FUZZ_CASES", 20_000),
        entries::tds,
    );
}

#[test]
fn hostile_headers_on_the_event_stream_and_forms_never_get_a_5xx() {
    let web = entries::Web::start();
    let mut s = seeds("http_headers", &[]);
    for v in [
        "0",
        "-1",
        "9223372036854775807",
        "9223372036854775808",
        " 12 ",
        "1e3",
        "0x10",
        "",
        "abc",
        "__Host-lockstep=; __Host-lockstep=x",
        "cross-site",
        "same-origin",
        "multipart/form-data; boundary=",
        "text/plain",
    ] {
        s.push(v.as_bytes().to_vec());
    }
    run(
        "http_headers",
        s,
        env_number("LOCKSTEP_FUZZ_CASES", 300).min(2_000),
        |d| web.headers(d),
    );
}

/// Found by the wire fuzzing above: `check_time` computed `issued_at - now` and overflowed (a
/// panic in the agent's request handler) for an `issued_at` near `i64::MIN`.
#[test]
fn a_request_issued_at_the_end_of_time_is_refused_as_clock_skew_not_a_panic() {
    let id = ActionId::new("run-1/step-1/1").expect("id");
    let action = Action::RegistryGet {
        key: r"HKLM\SOFTWARE\Connected".into(),
        name: "Version".into(),
    };
    for issued_at in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let mut req = ActionRequest::new(id.clone(), action.clone(), 1_900_000_000, 300);
        req.issued_at = issued_at;
        let err = req.check_time(1_900_000_000).expect_err("refused");
        assert_eq!(
            err.code,
            lockstep_protocol::ErrorCode::ClockSkew,
            "{}",
            err.message
        );
        // The same request as bytes on the wire goes through the fuzz entry without a panic.
        entries::agent_protocol(&serde_json::to_vec(&req).expect("encode"));
    }
}

/// Found by the cargo-fuzz campaign (`fuzz/regressions/agent_protocol/registry-key-multibyte-prefix`):
/// the allowlist compared a registry key's first bytes with `HKLM\` by slicing the string, which
/// panicked when that length fell inside a multi-byte character. Such a key is now refused as
/// outside `HKLM\`, by every registry action, before anything is journaled.
#[test]
fn a_registry_key_starting_with_a_multi_byte_character_is_refused_not_a_panic() {
    use lockstep_agent::config::{AgentConfig, BackendKind};
    use lockstep_protocol::ErrorCode;
    let cfg = AgentConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        "state",
        BackendKind::Simulated,
    );
    // Byte 5 (the length of `HKLM\`) or 19 (`HKEY_LOCAL_MACHINE\`) inside a character.
    for key in [
        "ߤ\u{c}!ߤ0",
        "HKLMߤ\\SOFTWARE",
        "HKEY_LOCAL_MACHINEߤ\\x",
        "éééé",
    ] {
        let err = lockstep_agent::policy::normalize_registry_key(key).expect_err("refused");
        assert_eq!(err.code, ErrorCode::NotAllowed, "{}", err.message);
        assert!(
            err.message.contains("must start with HKLM"),
            "{}",
            err.message
        );
        for action in [
            Action::RegistryGet {
                key: key.into(),
                name: "Version".into(),
            },
            Action::RegistrySet {
                key: key.into(),
                name: "Version".into(),
                value: "8.11".into(),
            },
            Action::RegistryDelete {
                key: key.into(),
                name: None,
            },
        ] {
            let err = lockstep_agent::policy::check(&cfg, &action).expect_err("refused");
            assert_eq!(err.code, ErrorCode::NotAllowed, "{}", err.message);
        }
    }
    let saved = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/agent_protocol/registry-key-multibyte-prefix");
    entries::agent_protocol(&std::fs::read(saved).expect("the saved crash input"));
}
