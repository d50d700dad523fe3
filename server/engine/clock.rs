//! Where the engine's "now" comes from. The state machines take time as an argument; the driver
//! and the [`Engine`](super::driver::Engine) handle read it here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::machine::Millis;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;

    /// Unix seconds now, for the records kept in seconds (accounts, sessions, tokens, agent
    /// facts): the one place the web turns the engine's milliseconds into seconds.
    fn now_secs(&self) -> i64 {
        self.now().div_euclid(1000)
    }
}

/// Wall-clock time that advances with tokio's clock: real time in production, and under
/// `#[tokio::test(start_paused = true)]` it moves only when tokio's paused time moves, so
/// timeouts, backoff and gate expiry are tested without sleeping.
pub struct TokioClock {
    base_ms: Millis,
    base: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0);
        TokioClock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Millis {
        self.base_ms + self.base.elapsed().as_millis() as Millis
    }
}

/// A clock a test sets by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}
