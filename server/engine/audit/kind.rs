//! What an audit event records, as a type: [`EventKind`].
//!
//! The `kind` column holds a word (`run.approve_start`, `step.skip`, `comment`, …) that is part
//! of every event's hash and signature, of the exports, the webhooks and the OpenAPI, so the words
//! never change. They become an [`EventKind`] in one place, when a row is read from the store
//! (the `sqlx::Decode` below) or an export is parsed (serde), and readers match on variants instead
//! of comparing strings. A word this version does not know (an event written by a newer one)
//! reads as [`EventKind::Other`] and keeps its exact text, so the chain still verifies.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::machine::{RunEvent, StepEvent};

/// Declares the known kinds once: each variant beside the word stored for it.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident => $word:literal,)*) => {
        /// The kind of an audit event (see the module documentation).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
            /// A word this version does not know, kept as it was written.
            Other(String),
        }

        impl EventKind {
            /// Every kind this version writes, in declaration order.
            pub const KNOWN: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The stored word.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventKind::$variant => $word,)*
                    EventKind::Other(word) => word,
                }
            }

            fn known(word: &str) -> Option<EventKind> {
                match word {
                    $($word => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// A run was created from a plan.
    RunCreated => "run.created",
    RunSubmit => "run.submit",
    RunApproveStart => "run.approve_start",
    RunPause => "run.pause",
    RunResume => "run.resume",
    RunAbort => "run.abort",
    RunCompleted => "run.completed",
    RunStalled => "run.stalled",
    RunReopen => "run.reopen",
    RunUndo => "run.undo",
    RunExtendWindow => "run.extend_window",
    RunPreflight => "run.preflight",
    RunHold => "run.hold",
    RunOverrideFinding => "run.override_finding",
    RunWindowWarning => "run.window_warning",
    RunWindowHold => "run.window_hold",
    StepUnblock => "step.unblock",
    StepStart => "step.start",
    StepApprove => "step.approve",
    StepReject => "step.reject",
    StepLapse => "step.lapse",
    StepReopenGate => "step.reopen_gate",
    StepContentChanged => "step.content_changed",
    StepClaim => "step.claim",
    StepComplete => "step.complete",
    StepHeartbeat => "step.heartbeat",
    StepFinished => "step.finished",
    StepVerified => "step.verified",
    StepReconciled => "step.reconciled",
    StepRetry => "step.retry",
    StepAskAgain => "step.ask_again",
    StepSkip => "step.skip",
    StepMarkDone => "step.mark_done",
    StepMarkFailed => "step.mark_failed",
    StepCancel => "step.cancel",
    StepCancelAnswered => "step.cancel_answered",
    /// A step's content was amended (its resolved inputs changed).
    StepAmended => "step.amended",
    /// A person's comment on a run or a step.
    Comment => "comment",
    /// A Data Center's recorded versions were updated after a run succeeded.
    VersionsUpdated => "datacenter.versions_updated",
    /// An operator planned a campaign: a Data Center, a target and the ordered stages.
    CampaignCreated => "campaign.created",
    /// An operator created the run of a campaign's stage (re-planned against the estate found).
    CampaignStageRun => "campaign.stage_run",
    /// Every stage of a campaign succeeded: the estate reached the campaign's target.
    CampaignDone => "campaign.done",
    /// Someone acknowledged a break in the chain, with a reason.
    AuditBreakAcknowledged => "audit_break_acknowledged",
    /// Signing began: events before this one carry no signature.
    AuditSigningStarted => "audit_signing_started",
}

/// What an event is about, from its word's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// `run.*`: a run's transition or decision.
    Run,
    /// `step.*`: a step's transition or decision.
    Step,
    /// Anything else: comments, notes, the chain's own events.
    Other,
}

impl EventKind {
    /// Whether the event is a run's, a step's or neither. Read from the word, so an unknown
    /// `step.*` word from a newer version still counts as a step's.
    pub fn subject(&self) -> Subject {
        let word = self.as_str();
        if word.starts_with("run.") {
            Subject::Run
        } else if word.starts_with("step.") {
            Subject::Step
        } else {
            Subject::Other
        }
    }

    pub fn is_run(&self) -> bool {
        self.subject() == Subject::Run
    }

    pub fn is_step(&self) -> bool {
        self.subject() == Subject::Step
    }
}

impl From<&str> for EventKind {
    fn from(word: &str) -> Self {
        EventKind::known(word).unwrap_or_else(|| EventKind::Other(word.to_string()))
    }
}

impl From<String> for EventKind {
    fn from(word: String) -> Self {
        EventKind::known(&word).unwrap_or(EventKind::Other(word))
    }
}

/// The kind a run's transition is logged as (`run.<event name>`). Exhaustive, so a new event
/// cannot be logged without a kind of its own.
impl From<&RunEvent> for EventKind {
    fn from(event: &RunEvent) -> Self {
        match event {
            RunEvent::Submit { .. } => EventKind::RunSubmit,
            RunEvent::ApproveStart { .. } => EventKind::RunApproveStart,
            RunEvent::Pause { .. } => EventKind::RunPause,
            RunEvent::Resume { .. } => EventKind::RunResume,
            RunEvent::Abort { .. } => EventKind::RunAbort,
            RunEvent::Completed => EventKind::RunCompleted,
            RunEvent::Stalled { .. } => EventKind::RunStalled,
            RunEvent::Reopen { .. } => EventKind::RunReopen,
            RunEvent::Undo { .. } => EventKind::RunUndo,
            RunEvent::ExtendWindow { .. } => EventKind::RunExtendWindow,
            RunEvent::Preflight { .. } => EventKind::RunPreflight,
            RunEvent::Hold { .. } => EventKind::RunHold,
            RunEvent::OverrideFinding { .. } => EventKind::RunOverrideFinding,
            RunEvent::WindowWarning { .. } => EventKind::RunWindowWarning,
            RunEvent::WindowHold { .. } => EventKind::RunWindowHold,
        }
    }
}

/// The kind a step's transition is logged as (`step.<event name>`).
impl From<&StepEvent> for EventKind {
    fn from(event: &StepEvent) -> Self {
        match event {
            StepEvent::Unblock => EventKind::StepUnblock,
            StepEvent::Start => EventKind::StepStart,
            StepEvent::Approve { .. } => EventKind::StepApprove,
            StepEvent::Reject { .. } => EventKind::StepReject,
            StepEvent::Lapse => EventKind::StepLapse,
            StepEvent::ReopenGate { .. } => EventKind::StepReopenGate,
            StepEvent::ContentChanged => EventKind::StepContentChanged,
            StepEvent::Claim { .. } => EventKind::StepClaim,
            StepEvent::Complete { .. } => EventKind::StepComplete,
            StepEvent::Heartbeat => EventKind::StepHeartbeat,
            StepEvent::Finished { .. } => EventKind::StepFinished,
            StepEvent::Verified { .. } => EventKind::StepVerified,
            StepEvent::Reconciled { .. } => EventKind::StepReconciled,
            StepEvent::Retry { .. } => EventKind::StepRetry,
            StepEvent::AskAgain { .. } => EventKind::StepAskAgain,
            StepEvent::Skip { .. } => EventKind::StepSkip,
            StepEvent::MarkDone { .. } => EventKind::StepMarkDone,
            StepEvent::MarkFailed { .. } => EventKind::StepMarkFailed,
            StepEvent::Cancel => EventKind::StepCancel,
            StepEvent::CancelAnswered { .. } => EventKind::StepCancelAnswered,
        }
    }
}

impl FromStr for EventKind {
    /// Never fails: an unknown word is [`EventKind::Other`].
    type Err = Infallible;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Ok(EventKind::from(word))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for EventKind {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Compare with a stored word (tests and filters read as `e.kind == "step.skip"`).
impl PartialEq<str> for EventKind {
    fn eq(&self, word: &str) -> bool {
        self.as_str() == word
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

impl PartialEq<String> for EventKind {
    fn eq(&self, word: &String) -> bool {
        self.as_str() == word
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(EventKind::from)
    }
}

impl sqlx::Type<sqlx::Sqlite> for EventKind {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for EventKind {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::sqlite::SqliteArgumentsBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(self.as_str().to_string(), buf)
    }
}

/// The one place a stored word becomes a kind.
impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for EventKind {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value).map(EventKind::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_through_its_word_serde_and_display() {
        for kind in EventKind::KNOWN {
            let word = kind.as_str();
            assert_eq!(&word.parse::<EventKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), word);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, serde_json::to_string(word).unwrap());
            assert_eq!(&serde_json::from_str::<EventKind>(&json).unwrap(), kind);
            assert!(!matches!(kind, EventKind::Other(_)), "{word}");
        }
    }

    #[test]
    fn the_known_words_are_distinct() {
        let mut words: Vec<&str> = EventKind::KNOWN.iter().map(EventKind::as_str).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), EventKind::KNOWN.len());
    }

    #[test]
    fn an_unknown_word_is_kept_as_other_and_written_back_unchanged() {
        for word in [
            "",
            "run.teleport",
            "step.future_thing",
            "Comment",
            "agent.enrolled",
        ] {
            let kind: EventKind = word.parse().unwrap();
            assert_eq!(kind, EventKind::Other(word.to_string()));
            assert_eq!(kind.as_str(), word);
            assert_eq!(serde_json::to_value(&kind).unwrap(), word);
        }
    }

    #[test]
    fn the_subject_is_read_from_the_word() {
        assert_eq!(EventKind::RunApproveStart.subject(), Subject::Run);
        assert_eq!(EventKind::RunCreated.subject(), Subject::Run);
        assert_eq!(EventKind::StepAmended.subject(), Subject::Step);
        assert_eq!(EventKind::Comment.subject(), Subject::Other);
        assert_eq!(
            EventKind::from("step.future_thing").subject(),
            Subject::Step
        );
        assert!(EventKind::StepSkip.is_step() && !EventKind::StepSkip.is_run());
    }

    #[test]
    fn a_transition_is_logged_under_its_subject_and_its_event_name() {
        use crate::engine::machine::Actor;
        let olga = || Actor::new("olga", &[]);
        let runs = [
            RunEvent::Submit { actor: olga() },
            RunEvent::Completed,
            RunEvent::Resume { actor: olga() },
        ];
        for e in &runs {
            assert_eq!(EventKind::from(e), format!("run.{}", e.name()));
        }
        let steps = [
            StepEvent::Unblock,
            StepEvent::Retry { actor: olga() },
            StepEvent::AskAgain { actor: olga() },
            StepEvent::CancelAnswered { cancelled: true },
        ];
        for e in &steps {
            assert_eq!(EventKind::from(e), format!("step.{}", e.name()));
        }
    }

    #[test]
    fn it_compares_with_the_stored_word() {
        assert!(EventKind::StepSkip == "step.skip");
        assert!(EventKind::StepSkip == *"step.skip");
        let stored = String::from("step.skip");
        assert!(EventKind::StepSkip == stored);
        assert!(EventKind::StepSkip != "step.retry");
    }
}
