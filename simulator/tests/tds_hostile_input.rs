//! Hostile and malformed input never panics the simulated SQL Server: random packets, random RPC
//! payloads and random T-SQL made of the words it knows. Deterministic (seeded) so a failure
//! reproduces.

use lockstep_simulator::sql::{Event, InstanceSpec, Session, SqlInstance};
use lockstep_simulator::tds::{self, rpc};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn instance() -> SqlInstance {
    SqlInstance::new(InstanceSpec {
        server_name: "FUZZ".into(),
        has_registry: true,
        has_directory: true,
        outflow: vec![],
        registry_mdf_mb: 10,
        registry_ldf_mb: 1,
        logins: vec![("sa".into(), "pw".into())],
    })
    .unwrap()
}

#[test]
fn random_rpc_payloads_are_refused_or_read_never_panic() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5000 {
        let mut p = vec![0x16, 0, 0, 0, 0x12, 0, 0, 0, 0x02, 0];
        p.extend(r.bytes(18));
        p.extend([0xFF, 0xFF, 10, 0, 0, 0]);
        let n = r.below(64) as usize;
        p.extend(r.bytes(n));
        let _ = rpc::parse_rpc(&p, true);
    }
}

#[test]
fn random_tsql_from_known_words_answers_every_error_with_an_error_done() {
    const WORDS: [&str; 40] = [
        "USE",
        "Registry",
        "DBCC",
        "CHECKDB",
        "EXEC",
        "sp_updatestats",
        "BACKUP",
        "DATABASE",
        "TO",
        "DISK",
        "=",
        "N'x'",
        "IF",
        "NOT",
        "EXISTS",
        "(",
        ")",
        "SELECT",
        "TOP",
        "1",
        "FROM",
        "sys.databases",
        "WHERE",
        "name",
        "BEGIN",
        "END",
        "UPDATE",
        "OutflowServices",
        "SET",
        "Url",
        "@P1",
        "'",
        "[",
        "]",
        ";",
        "dbo.",
        "..",
        "GO",
        "PRINT",
        "WITH",
    ];
    let inst = instance();
    let mut r = Rng(42);
    for _ in 0..3000 {
        let n = r.below(12) as usize + 1;
        let text: Vec<&str> = (0..n)
            .map(|_| WORDS[r.below(WORDS.len() as u64) as usize])
            .collect();
        let text = text.join(" ");
        let mut s = Session::default();
        let ev = inst.execute(&mut s, &text, &[]);
        // Every error is answered and closed by a DONE that carries the error flag.
        if let Some(i) = ev.iter().position(|e| matches!(e, Event::Error(_))) {
            let closed = ev[i..]
                .iter()
                .any(|e| matches!(e, Event::Done { error: true, .. }));
            assert!(closed, "`{text}` → {ev:?}");
        }
    }
    // the databases are still there after all that
    assert!(inst.database("Registry").is_some());
}

#[tokio::test]
async fn random_bytes_on_the_wire_end_the_connection_without_panicking() {
    use tokio::io::AsyncWriteExt;
    let mut r = Rng(7);
    for i in 0..300 {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut junk = Vec::new();
        if i % 2 == 0 {
            // a plausible header first, so the reader gets past framing
            junk.extend([
                [0x12u8, 0x01, 0x01, 0x03][r.below(4) as usize],
                0x01,
                0x00,
                0x40,
                0,
                0,
                1,
                0,
            ]);
        }
        let n = r.below(200) as usize;
        junk.extend(r.bytes(n));
        client.write_all(&junk).await.unwrap();
        drop(client);
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tds::handle_connection(server, instance()),
        )
        .await;
        assert!(res.is_ok(), "the handler hung on {junk:?}");
    }
}
