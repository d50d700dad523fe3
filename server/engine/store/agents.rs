//! The agent registry: which URL and certificate thumbprint belong to each inventory server, and
//! the last heartbeat's result (online/offline, version, clock skew). SQL lives here.

use const_format::concatcp;
use lockstep_protocol::tls::Thumbprint;
use sqlx::SqlitePool;

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub server: String,
    pub url: String,
    pub thumbprint: Thumbprint,
    pub added_at: i64,
    pub checked_at: Option<i64>,
    /// "unknown", "online" or "offline".
    pub status: String,
    pub agent_version: Option<String>,
    pub backend: Option<String>,
    pub clock_skew: Option<i64>,
    pub last_error: Option<String>,
}

/// Checks a URL for `lockstep agent add`: https, a host, no path/query (the protocol adds them).
pub fn check_url(url: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("--url `{url}`: {e}"))?;
    if u.scheme() != "https" {
        return Err(format!(
            "--url `{url}` must start with https:// (agents speak only mutual TLS)"
        ));
    }
    if u.host().is_none() {
        return Err(format!("--url `{url}` has no host"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!("--url `{url}` must be just https://host:port"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Server names as the inventory spells them: letters, digits, `-`, `_`, `.`; 1..=63.
pub fn check_server(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "--server `{name}` must be 1 to 63 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

type Row = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn record(r: Row) -> anyhow::Result<AgentRecord> {
    Ok(AgentRecord {
        thumbprint: Thumbprint::parse(&r.2)
            .map_err(|e| anyhow::anyhow!("agents.thumbprint for {}: {e}", r.0))?,
        server: r.0,
        url: r.1,
        added_at: r.3,
        checked_at: r.4,
        status: r.5,
        agent_version: r.6,
        backend: r.7,
        clock_skew: r.8,
        last_error: r.9,
    })
}

const COLUMNS: &str = "server, url, thumbprint, added_at, checked_at, status, agent_version, backend, clock_skew, last_error";

/// Registers (or re-points) a server's agent. Re-pointing resets the health columns.
pub async fn add(
    pool: &SqlitePool,
    server: &str,
    url: &str,
    thumbprint: Thumbprint,
    now: i64,
) -> anyhow::Result<AgentRecord> {
    check_server(server).map_err(anyhow::Error::msg)?;
    let url = check_url(url).map_err(anyhow::Error::msg)?;
    sqlx::query(
        "INSERT INTO agents (server, url, thumbprint, added_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (server) DO UPDATE SET url = excluded.url, thumbprint = excluded.thumbprint,
           added_at = excluded.added_at, checked_at = NULL, status = 'unknown', agent_version = NULL,
           backend = NULL, clock_skew = NULL, last_error = NULL",
    )
    .bind(server)
    .bind(&url)
    .bind(thumbprint.to_string())
    .bind(now)
    .execute(pool)
    .await?;
    get(pool, server)
        .await?
        .ok_or_else(|| anyhow::anyhow!("agent {server} vanished after insert"))
}

pub async fn get(pool: &SqlitePool, server: &str) -> anyhow::Result<Option<AgentRecord>> {
    let row: Option<Row> = sqlx::query_as(concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM agents WHERE server = ?"
    ))
    .bind(server)
    .fetch_optional(pool)
    .await?;
    row.map(record).transpose()
}

pub async fn list(pool: &SqlitePool) -> anyhow::Result<Vec<AgentRecord>> {
    let rows: Vec<Row> = sqlx::query_as(concatcp!(
        "SELECT ",
        COLUMNS,
        " FROM agents ORDER BY server"
    ))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(record).collect()
}

/// What one heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    Online {
        agent_version: String,
        backend: String,
        clock_skew: i64,
    },
    Offline {
        error: String,
    },
}

impl Heartbeat {
    /// What a health answer read at `now` (Unix seconds, the orchestrator's clock) says. The skew
    /// is computed without overflow (a hostile or broken `now` such as `i64::MIN` cannot wrap to
    /// a small number), and a clock further off than an agent accepts requests
    /// ([`MAX_CLOCK_SKEW_SECS`](lockstep_protocol::MAX_CLOCK_SKEW_SECS)) reads offline: every action sent
    /// to it would be refused.
    pub fn from_health(h: lockstep_protocol::Health, now: i64) -> Heartbeat {
        let limit = lockstep_protocol::MAX_CLOCK_SKEW_SECS;
        match h.now.checked_sub(now) {
            Some(skew) if skew.unsigned_abs() <= limit.unsigned_abs() => Heartbeat::Online {
                agent_version: h.agent_version,
                backend: h.backend,
                clock_skew: skew,
            },
            _ => Heartbeat::Offline {
                error: format!(
                    "the agent's clock reads {} but ours reads {now}: more than {limit} s apart, so it would refuse every action; fix the clocks",
                    h.now
                ),
            },
        }
    }
}

pub async fn record_heartbeat(
    pool: &SqlitePool,
    server: &str,
    beat: &Heartbeat,
    now: i64,
) -> anyhow::Result<()> {
    let q = match beat {
        Heartbeat::Online {
            agent_version,
            backend,
            clock_skew,
        } => sqlx::query(
            "UPDATE agents SET checked_at = ?, status = 'online', agent_version = ?, backend = ?,
               clock_skew = ?, last_error = NULL WHERE server = ?",
        )
        .bind(now)
        .bind(agent_version)
        .bind(backend)
        .bind(clock_skew)
        .bind(server),
        Heartbeat::Offline { error } => sqlx::query(
            "UPDATE agents SET checked_at = ?, status = 'offline', last_error = ? WHERE server = ?",
        )
        .bind(now)
        .bind(error)
        .bind(server),
    };
    q.execute(pool).await?;
    Ok(())
}

/// The latest facts an agent reported, with when they arrived (orchestrator clock, unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFacts {
    pub server: String,
    pub received_at: i64,
    pub facts: lockstep_protocol::SiteFacts,
}

impl StoredFacts {
    /// Seconds since the facts arrived (never negative).
    pub fn age_secs(&self, now: i64) -> i64 {
        now.saturating_sub(self.received_at).max(0)
    }
}

/// Replaces the stored facts of `server` (which must be a registered agent).
pub async fn record_facts(
    pool: &SqlitePool,
    server: &str,
    facts: &lockstep_protocol::SiteFacts,
    now: i64,
) -> anyhow::Result<()> {
    let json = serde_json::to_string(facts)?;
    sqlx::query(
        "INSERT INTO agent_facts (server, received_at, collected_at, facts_json) VALUES (?, ?, ?, ?)
         ON CONFLICT (server) DO UPDATE SET received_at = excluded.received_at,
           collected_at = excluded.collected_at, facts_json = excluded.facts_json",
    )
    .bind(server)
    .bind(now)
    .bind(facts.collected_at)
    .bind(json)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every server's latest facts, by server name. A row that no longer decodes (written by another
/// version) is left out with a warning rather than failing the page that asked.
pub async fn all_facts(
    pool: &SqlitePool,
) -> anyhow::Result<std::collections::BTreeMap<String, StoredFacts>> {
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT server, received_at, facts_json FROM agent_facts ORDER BY server")
            .fetch_all(pool)
            .await?;
    let mut out = std::collections::BTreeMap::new();
    for (server, received_at, json) in rows {
        match serde_json::from_str(&json) {
            Ok(facts) => {
                out.insert(
                    server.clone(),
                    StoredFacts {
                        server,
                        received_at,
                        facts,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "stored facts do not decode; ignored")
            }
        }
    }
    Ok(out)
}

/// Every server's latest facts with their age at `now`, as preflight reads them
/// ([`crate::knowledge::preflight::preflight_live`]); facts older than `stale_after_secs` are
/// kept (so preflight can say how old they are) but not trusted.
pub async fn live_facts(
    pool: &SqlitePool,
    now: i64,
    stale_after_secs: i64,
) -> anyhow::Result<crate::knowledge::preflight::LiveFacts> {
    Ok(live_facts_of(all_facts(pool).await?, now, stale_after_secs))
}

/// The stored facts as preflight takes them (`preflight_live`): each server's facts with their
/// age at `now` (orchestrator clock) and the staleness limit (`[agents] facts_stale_secs`).
pub fn live_facts_of(
    stored: std::collections::BTreeMap<String, StoredFacts>,
    now: i64,
    stale_after_secs: i64,
) -> crate::knowledge::preflight::LiveFacts {
    crate::knowledge::preflight::LiveFacts {
        servers: stored
            .into_values()
            .map(|s| {
                let age_secs = s.age_secs(now);
                (
                    s.server,
                    crate::knowledge::preflight::ServerFacts {
                        facts: s.facts,
                        age_secs,
                    },
                )
            })
            .collect(),
        stale_after_secs,
    }
}

#[cfg(test)]
mod heartbeat_tests {
    use super::*;

    fn health(now: i64) -> lockstep_protocol::Health {
        lockstep_protocol::Health {
            protocol: lockstep_protocol::PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            backend: "simulated".into(),
            hostname: "dc1".into(),
            now,
            running_actions: 0,
        }
    }

    #[test]
    fn a_wrapped_or_large_clock_skew_reads_offline() {
        let now = 1_800_000_000;
        assert!(matches!(
            Heartbeat::from_health(health(now + 3), now),
            Heartbeat::Online { clock_skew: 3, .. }
        ));
        for agent_now in [i64::MIN, i64::MAX, now - 301, now + 301] {
            assert!(
                matches!(
                    Heartbeat::from_health(health(agent_now), now),
                    Heartbeat::Offline { .. }
                ),
                "{agent_now}"
            );
        }
    }
}
