//! The figures read from the database at each scrape — runs by state, steps by state and kind,
//! agent health — written into a `prometheus_client` [`Registry`] made for that one scrape, so
//! that a run deleted or an agent removed leaves no stale series behind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::Row;

use crate::web::{AppError, Core};

/// Run states, so that every state is reported (with 0) from the first scrape.
const RUN_STATES: [&str; 9] = [
    "draft",
    "awaiting_start_approval",
    "running",
    "paused",
    "succeeded",
    "failed",
    "aborted",
    "undoing",
    "undone",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    state: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AgentLabels {
    pub agent: String,
}

/// This scrape's database figures.
pub(super) async fn figures(core: &Core) -> Result<Registry, AppError> {
    let mut registry = Registry::default();
    registry.register("lockstep_runs", "Runs by state", runs(core).await?);
    registry.register(
        "lockstep_steps",
        "Steps of all runs by state and kind",
        steps(core).await?,
    );
    let (up, age) = agents(core).await?;
    registry.register(
        "lockstep_agent_up",
        "Whether the agent answered its last heartbeat (1) or not (0)",
        up,
    );
    registry.register(
        "lockstep_agent_heartbeat_age_seconds",
        "Seconds since the agent's last heartbeat",
        age,
    );
    Ok(registry)
}

async fn runs(core: &Core) -> Result<Family<RunLabels, Gauge>, AppError> {
    let family = Family::<RunLabels, Gauge>::default();
    for state in RUN_STATES {
        let labels = RunLabels {
            state: state.into(),
        };
        family.get_or_create(&labels).set(0);
    }
    for row in sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        .fetch_all(&core.pool)
        .await?
    {
        let state: String = row.try_get("status")?;
        family
            .get_or_create(&RunLabels { state })
            .set(row.try_get("n")?);
    }
    Ok(family)
}

async fn steps(core: &Core) -> Result<Family<StepLabels, Gauge>, AppError> {
    let family = Family::<StepLabels, Gauge>::default();
    for row in sqlx::query("SELECT status, kind, COUNT(*) AS n FROM steps GROUP BY status, kind")
        .fetch_all(&core.pool)
        .await?
    {
        let labels = StepLabels {
            state: row.try_get("status")?,
            kind: row.try_get("kind")?,
        };
        family.get_or_create(&labels).set(row.try_get("n")?);
    }
    Ok(family)
}

type AgentGauges = Family<AgentLabels, Gauge>;

/// Up (1 when the last heartbeat was answered) and the heartbeat's age, for agents that have
/// been asked at least once.
async fn agents(core: &Core) -> Result<(AgentGauges, AgentGauges), AppError> {
    let (up, age) = (AgentGauges::default(), AgentGauges::default());
    let now = core.clock.now_secs();
    for a in crate::executors::agent::registry::list(&core.pool)
        .await
        .map_err(AppError::Internal)?
    {
        let labels = AgentLabels { agent: a.server };
        up.get_or_create(&labels)
            .set(i64::from(a.status == "online"));
        if let Some(at) = a.checked_at {
            age.get_or_create(&labels).set((now - at).max(0));
        }
    }
    Ok((up, age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_by_the_client() {
        let family = AgentGauges::default();
        family
            .get_or_create(&AgentLabels {
                agent: "a\"b\\c\nd".into(),
            })
            .set(1);
        let mut registry = Registry::default();
        registry.register("x", "X", family);
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &registry).unwrap();
        assert!(out.contains(r#"x{agent="a\"b\\c\nd"} 1"#), "{out}");
    }
}
