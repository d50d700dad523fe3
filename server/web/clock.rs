//! The web layer's clock: the system clock in production, a hand-moved one in tests so session
//! timeouts are tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// Unix seconds, moved by [`Clock::advance`].
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        match self {
            Clock::System => time::OffsetDateTime::now_utc().unix_timestamp(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Milliseconds since the epoch (the engine's unit).
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => {
                (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
            }
            Clock::Manual(t) => t.load(Ordering::SeqCst) * 1000,
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, secs: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }
}
