//! The facts collector of `lockstep serve` (and the demo): every `facts_interval_secs`, and on
//! demand ("Refresh facts", `POST /api/v1/agents/refresh`), it asks each registered agent for a
//! heartbeat (`GET /v1/health`) and its facts (`GET /v1/facts`), and records both in the
//! registry, so the pages and preflight see the site as found with the facts' age.
//!
//! Agents are asked concurrently, at most [`CONCURRENCY`] at a time, each request bounded by a
//! timeout, so one dead agent costs one timeout and never holds up the others. One collection
//! runs at a time: a refresh asked for during a scheduled one waits for it and then runs.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use lockstep_agent::client::AgentClient;
use lockstep_protocol::tls::Identity;
use lockstep_protocol::SiteFacts;
use sqlx::SqlitePool;
use tokio::sync::watch;

use super::registry::{self, AgentRecord, Heartbeat};

/// How many agents are asked at once.
pub const CONCURRENCY: usize = 8;
/// How long one request to an agent may take (facts read CIM, the registry and SQL Server).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What one collection found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub online: usize,
    pub offline: usize,
    /// Agents whose facts were recorded.
    pub facts: usize,
    /// "SERVER: reason" for every agent that did not answer or whose facts were refused.
    pub problems: Vec<String>,
}

pub struct Collector {
    pool: SqlitePool,
    identity: Identity,
    /// The orchestrator's clock in Unix seconds (the dashboard's clock, so ages agree with it).
    now: Arc<dyn Fn() -> i64 + Send + Sync>,
    timeout: Duration,
    /// Held for the length of a collection, so two never overlap.
    running: tokio::sync::Mutex<()>,
}

/// What asking one agent gave.
struct Answer {
    server: String,
    beat: Heartbeat,
    facts: Result<SiteFacts, String>,
}

impl Collector {
    pub fn new(
        pool: SqlitePool,
        identity: Identity,
        now: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Collector {
        Collector {
            pool,
            identity,
            now,
            timeout: REQUEST_TIMEOUT,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Shorter per-request timeouts (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Collector {
        self.timeout = timeout;
        self
    }

    async fn ask(&self, a: AgentRecord) -> Answer {
        let client = match AgentClient::new(&a.url, &self.identity, a.thumbprint, self.timeout) {
            Ok(c) => c,
            Err(e) => {
                return Answer {
                    server: a.server,
                    beat: Heartbeat::Offline {
                        error: e.to_string(),
                    },
                    facts: Err("no client".into()),
                }
            }
        };
        let beat = match client.health().await {
            Ok(h) => Heartbeat::from_health(h, (self.now)()),
            Err(e) => Heartbeat::Offline {
                error: e.to_string(),
            },
        };
        let facts = match &beat {
            Heartbeat::Online { .. } => client.facts().await.map_err(|e| e.to_string()),
            Heartbeat::Offline { error } => Err(error.clone()),
        };
        Answer {
            server: a.server,
            beat,
            facts,
        }
    }

    /// Asks every registered agent (or only those of `servers`, by name) now and records what
    /// each answered.
    pub async fn collect(&self, servers: Option<&[String]>) -> anyhow::Result<Collected> {
        let _one_at_a_time = self.running.lock().await;
        let agents: Vec<AgentRecord> = registry::list(&self.pool)
            .await?
            .into_iter()
            .filter(|a| servers.is_none_or(|s| s.iter().any(|n| n.eq_ignore_ascii_case(&a.server))))
            .collect();
        let answers: Vec<Answer> = stream::iter(agents)
            .map(|a| self.ask(a))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out = Collected::default();
        for a in answers {
            let now = (self.now)();
            registry::record_heartbeat(&self.pool, &a.server, &a.beat, now).await?;
            match &a.beat {
                Heartbeat::Online { .. } => out.online += 1,
                Heartbeat::Offline { error } => {
                    out.offline += 1;
                    out.problems.push(format!("{}: {error}", a.server));
                    continue;
                }
            }
            match a.facts {
                Ok(f) => {
                    registry::record_facts(&self.pool, &a.server, &f, now).await?;
                    out.facts += 1;
                }
                Err(e) => {
                    tracing::warn!(server = %a.server, error = %e, "facts refused");
                    out.problems.push(format!("{}: facts: {e}", a.server));
                }
            }
        }
        Ok(out)
    }

    /// Collects at once, then every `interval`, until `shutdown` turns true (or its sender goes).
    pub fn spawn(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    r = shutdown.changed() => {
                        if r.is_err() || *shutdown.borrow() {
                            return;
                        }
                        continue;
                    }
                }
                match self.collect(None).await {
                    Ok(c) => tracing::debug!(
                        online = c.online,
                        offline = c.offline,
                        facts = c.facts,
                        "agents collected"
                    ),
                    Err(e) => tracing::warn!(error = %e, "collecting agent facts failed"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_facts_carry_each_servers_age_and_only_fresh_ones_are_trusted() {
        let stored = |server: &str, received_at| registry::StoredFacts {
            server: server.into(),
            received_at,
            facts: SiteFacts::empty(server, received_at),
        };
        let all = [stored("DC1", 1_000), stored("DC2", 500)]
            .into_iter()
            .map(|s| (s.server.clone(), s))
            .collect();
        let live = registry::live_facts_of(all, 1_100, 180);
        assert_eq!(live.servers["DC1"].age_secs, 100);
        assert_eq!(live.servers["DC2"].age_secs, 600);
        assert!(live.fresh("DC1").is_some());
        assert!(live.fresh("DC2").is_none(), "stale");
    }

    #[tokio::test]
    async fn an_agent_that_does_not_answer_is_recorded_offline_with_the_reason_and_no_facts() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::engine::Store::open(&dir.path().join("l.db"))
            .await
            .unwrap();
        let pool = store.writer().clone();
        // A port nothing listens on: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let thumb = lockstep_protocol::tls::Thumbprint([7; 32]);
        registry::add(
            &pool,
            "DC1",
            &format!("https://127.0.0.1:{port}"),
            thumb,
            10,
        )
        .await
        .unwrap();
        let identity = Identity::generate("orchestrator").unwrap();
        let c = Collector::new(pool.clone(), identity, Arc::new(|| 1_000))
            .with_timeout(Duration::from_secs(2));
        let got = c.collect(None).await.unwrap();
        assert_eq!((got.online, got.offline, got.facts), (0, 1, 0));
        assert!(got.problems[0].starts_with("DC1: "), "{:?}", got.problems);
        let a = registry::get(&pool, "DC1").await.unwrap().unwrap();
        assert_eq!(a.status, "offline");
        assert_eq!(a.checked_at, Some(1_000), "checked, no longer 'never'");
        assert!(a.last_error.is_some());
        assert!(registry::all_facts(&pool).await.unwrap().is_empty());
    }
}
