//! Notification deliveries of a run, as the run page lists them: one row per delivery (a
//! notification to one receiver) with its attempts, last status and next retry, built from the
//! attempts `crate::notify` records.

use crate::notify::DeliveryAttempt;
use crate::web::views::fmt_time;

pub struct DeliveryRow {
    /// Receiver: scheme and host only (the notifier never stores secret URL paths).
    pub channel: String,
    pub event: String,
    pub step: String,
    pub attempts: u32,
    /// `delivered`, `failed` (will retry) or `gave_up`, with the HTTP status or error.
    pub status: &'static str,
    pub detail: String,
    pub last_at: String,
    pub next_retry: String,
}

/// One row per delivery, in the order the deliveries started.
pub fn rows(attempts: &[DeliveryAttempt]) -> Vec<DeliveryRow> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: std::collections::HashMap<&str, &DeliveryAttempt> = Default::default();
    for a in attempts {
        if !last.contains_key(a.delivery_id.as_str()) {
            order.push(&a.delivery_id);
        }
        last.insert(&a.delivery_id, a);
    }
    order
        .into_iter()
        .filter_map(|id| last.get(id).copied())
        .map(|a| DeliveryRow {
            channel: a.target.clone(),
            event: a.notification.clone(),
            step: a.step_id.clone().unwrap_or_default(),
            attempts: a.attempt,
            status: match a.outcome.as_str() {
                "delivered" => "delivered",
                "gave_up" => "gave_up",
                _ => "failed",
            },
            detail: match (&a.http_status, &a.error) {
                (Some(s), Some(e)) => format!("HTTP {s}: {e}"),
                (Some(s), None) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            },
            last_at: fmt_time(a.at.div_euclid(1000)),
            next_retry: match a.retry_at {
                Some(t) if a.outcome == "failed" => fmt_time(t.div_euclid(1000)),
                _ => "-".into(),
            },
        })
        .collect()
}
