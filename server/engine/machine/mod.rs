//! The pure state machines of runs and steps: `(state, event, now) -> Result<(state, actions)>`.
//!
//! Nothing here does IO or reads a clock; time is an argument. A refused transition is a typed
//! [`Refusal`] and leaves the state as it was (the caller's copy is never touched). Actions are
//! what the driver must do *after* the transition has committed.

use serde::{Deserialize, Serialize};

pub mod controls;
pub mod gating;
pub mod run;
pub mod step;

pub use controls::StepControl;
pub use run::{RunAction, RunEvent, RunState, RunStatus};
pub use step::{Approval, StepAction, StepCtx, StepEvent, StepState, StepStatus};

/// Milliseconds since the Unix epoch. The engine's only notion of time; passed in, never read.
pub type Millis = i64;

pub use crate::knowledge::role::Role;

/// The name the engine itself acts and logs under (driver transitions, system notes); the
/// pages tell a person's decisions from the engine's by it.
pub const ENGINE_ACTOR: &str = "lockstep";

/// A person (or the engine itself) acting on a run. The web layer builds this from the signed-in
/// user; the engine enforces roles and four-eyes itself so no front end can bypass them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    /// The roles this actor holds, each checked as it is (the web layer lists every role up to
    /// the person's own, see [`Actor::holding`]). Logged as their words; a word no [`Role`]
    /// spells, from a log written by another version, grants nothing and is dropped on reading.
    #[serde(deserialize_with = "known_roles")]
    pub roles: Vec<Role>,
    /// The person this account belongs to (single sign-on subject or verified e-mail), when it
    /// differs from the account name. Separation of duties compares persons, so two accounts of
    /// one person count as one. Left out of the log when absent, so older events read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, roles: &[Role]) -> Actor {
        Actor {
            name: name.into(),
            roles: roles.to_vec(),
            person: None,
        }
    }

    /// A person holding `role`, and so every role below it (roles are ordered: an approver may
    /// also do what an operator does).
    pub fn holding(name: impl Into<String>, role: Role) -> Actor {
        Actor {
            name: name.into(),
            roles: role.and_below().collect(),
            person: None,
        }
    }

    /// The same account, belonging to `person`.
    pub fn of_person(mut self, person: impl Into<String>) -> Actor {
        let person = person.into();
        self.person = (person != self.name).then_some(person);
        self
    }

    /// Who this is for separation of duties: the person, else the account name.
    pub fn person(&self) -> &str {
        self.person.as_deref().unwrap_or(&self.name)
    }

    /// The engine itself (driver transitions: unblock, dispatch, finish, lapse).
    pub fn engine() -> Actor {
        Actor::new(ENGINE_ACTOR, &[])
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Reads logged role words, dropping any that no [`Role`] spells (see [`Actor::roles`]).
fn known_roles<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
    let words = Vec::<String>::deserialize(d)?;
    Ok(words.iter().filter_map(|w| w.parse().ok()).collect())
}

/// Why a transition was refused. Each variant names what is wrong in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    #[error("`{event}` is not allowed while {what} is {from}")]
    NotAllowed {
        what: String,
        from: String,
        event: String,
    },
    #[error("{actor} lacks the role `{role}`")]
    MissingRole { actor: String, role: Role },
    #[error("four-eyes: {actor} {requested} and cannot approve it")]
    FourEyes { actor: String, requested: String },
    #[error("{actor} has already approved this step")]
    AlreadyApproved { actor: String },
    #[error("a comment is required")]
    CommentRequired,
    #[error("a note describing what was done is required")]
    NoteRequired,
    #[error("a justification is required to skip a step")]
    JustificationRequired,
    #[error("evidence is required to mark a step done")]
    EvidenceRequired,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("the approval gate lapsed at {expired_at}; it must be reopened")]
    GateExpired { expired_at: Millis },
    #[error(
        "the step's content changed since it was shown; review it again (expected {expected})"
    )]
    ContentChanged { expected: String },
    #[error("the task is claimed by {claimed_by}")]
    ClaimedByOther { claimed_by: String },
    #[error("the task must be claimed before it is completed")]
    NotClaimed,
    #[error("the next attempt may start at {not_before}")]
    BackoffPending { not_before: Millis },
    /// Separation of duties or a control's own rule (see [`crate::engine::policy`]). Maps to 403.
    #[error(transparent)]
    PolicyViolation(crate::engine::control::PolicyViolation),
    /// Order: the step's inputs are not done. Maps to 409.
    #[error("step {step} cannot leave pending: its input {waiting_on} is not done")]
    InputsNotDone { step: String, waiting_on: String },
    /// Preflight found errors nobody has overridden: the start waits. Maps to 409.
    #[error("preflight found {} error(s) that block the start: {}; fix them and approve again, or an approver other than the requester overrides each one with a justification", findings.len(), findings.join("; "))]
    PreflightBlocks { findings: Vec<String> },
    /// An override names no blocking finding of the run's latest preflight. Maps to 409.
    #[error("`{finding}` {why}")]
    NotOverridable { finding: String, why: String },
    /// Campaign order: a stage's run starts only once every earlier stage's run has succeeded
    /// (see [`crate::engine::policy::campaign_order`]). Maps to 409.
    #[error("stage {stage} of campaign {campaign} cannot start: {why}; a campaign's stages run in order, each once every stage before it has succeeded")]
    StageOutOfOrder {
        campaign: String,
        stage: i64,
        why: String,
    },
}

fn require_text(text: &str, refusal: Refusal) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        Err(refusal)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_logs_its_roles_as_their_words() {
        let olga = Actor::new("olga", &[Role::Operator, Role::Approver]);
        let json = serde_json::to_value(&olga).unwrap();
        assert_eq!(json["roles"], serde_json::json!(["operator", "approver"]));
        assert_eq!(serde_json::from_value::<Actor>(json).unwrap(), olga);
    }

    #[test]
    fn a_logged_role_no_version_knows_grants_nothing_and_does_not_break_the_read() {
        let json = serde_json::json!({ "name": "olga", "roles": ["operator", "change-manager"] });
        let olga: Actor = serde_json::from_value(json).unwrap();
        assert_eq!(olga.roles, [Role::Operator]);
        assert!(!olga.has_role(Role::Approver));
    }

    #[test]
    fn a_person_holding_a_role_holds_the_roles_below_it() {
        let carl = Actor::holding("carl", Role::Approver);
        assert!(carl.has_role(Role::Viewer) && carl.has_role(Role::Operator));
        assert!(carl.has_role(Role::Approver) && !carl.has_role(Role::Admin));
        assert!(Actor::engine().roles.is_empty());
    }
}
