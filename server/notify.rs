//! Notifications: watches the engine's committed audit events and tells people when a gate is
//! waiting, a step failed or needs an operator, or a run finished, through webhooks (signed JSON,
//! Microsoft Teams, Slack) and e-mail ([`smtp`]). Each delivery runs in its own task with capped
//! exponential backoff, so a slow or failing receiver never holds up the run; every attempt is
//! recorded in `notification_attempts` and read back with [`deliveries`].

pub mod config;
pub mod payload;
pub mod sign;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use sqlx::Row;
use tokio::sync::broadcast::error::RecvError;

pub use config::{NotifyConfig, Webhook};
pub use payload::{Format, Notification, NotifyKind};
pub use sign::{verify_signature, ReplayGuard, SignatureError};

use crate::engine::Store;

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub audit_event_id: i64,
    pub notification: String,
    /// Scheme and host of the receiver.
    pub target: String,
    pub attempt: u32,
    pub at: i64,
    /// `delivered`, `failed` (will retry) or `gave_up` (last attempt failed).
    pub outcome: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// When the next attempt is due (ms since the epoch), after a `failed` attempt.
    pub retry_at: Option<i64>,
}

/// Every delivery attempt for `run_id`, oldest first (for the run page).
pub async fn deliveries(pool: &SqlitePool, run_id: &str) -> sqlx::Result<Vec<DeliveryAttempt>> {
    let rows = sqlx::query(
        "SELECT delivery_id, run_id, step_id, audit_event_id, notification, target, attempt, at,
                outcome, http_status, error, retry_at
         FROM notification_attempts WHERE run_id = ? ORDER BY id",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| DeliveryAttempt {
            delivery_id: r.get(0),
            run_id: r.get(1),
            step_id: r.get(2),
            audit_event_id: r.get(3),
            notification: r.get(4),
            target: r.get(5),
            attempt: r.get::<i64, _>(6) as u32,
            at: r.get(7),
            outcome: r.get(8),
            http_status: r.get::<Option<i64>, _>(9).map(|s| s as u16),
            error: r.get(10),
            retry_at: r.get(11),
        })
        .collect())
}

struct Shared {
    store: Store,
    config: NotifyConfig,
    client: reqwest::Client,
    /// The SMTP relay of `[notify.email]`, built once (its CA file read at start).
    relay: Option<smtp::Relay>,
    /// The store's writer, for `notification_attempts`.
    writer: SqlitePool,
}

/// Starts watching `store` for notifiable events. Returns at once; the task ends when the store's
/// event channel closes. With no webhooks configured it does nothing.
pub async fn spawn(
    store: Store,
    config: NotifyConfig,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs))
        .user_agent(concat!("lockstep/", env!("CARGO_PKG_VERSION")));
    if config.webhooks.iter().any(|w| w.url.scheme() == "https") {
        let pem = std::fs::read(&config.ca_file)
            .map_err(|e| anyhow::anyhow!("notify.ca_file {}: {e}", config.ca_file.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("notify.ca_file {}: {e}", config.ca_file.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build()?;
    let timeout = Duration::from_secs(config.timeout_secs);
    let relay = match &config.email {
        Some(email) => {
            Some(smtp::Relay::new(email, &config.ca_file, timeout).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    // Deliveries are recorded through the store's one writer, like every other table.
    let writer = store.writer().clone();
    let shared = Arc::new(Shared {
        store,
        config,
        client,
        relay,
        writer,
    });
    let mut events = shared.store.subscribe();
    Ok(tokio::spawn(async move {
        let mut last_id = 0i64;
        loop {
            let batch = match events.recv().await {
                Ok(e) => vec![e],
                Err(RecvError::Closed) => return,
                // Fell behind the broadcast: read what was missed from the log itself.
                Err(RecvError::Lagged(_)) => {
                    match shared.store.events_after(last_id, None, 10_000).await {
                        Ok(missed) => missed,
                        Err(e) => {
                            tracing::warn!("notify: cannot replay missed events: {e}");
                            Vec::new()
                        }
                    }
                }
            };
            for event in batch {
                if event.id <= last_id {
                    continue;
                }
                last_id = event.id;
                for n in payload::classify_all(&event) {
                    for (i, hook) in shared.config.webhooks.iter().enumerate() {
                        if hook.events.contains(&n.kind) {
                            tokio::spawn(deliver(shared.clone(), Target::Webhook(i), n.clone()));
                        }
                    }
                    if let Some(email) = &shared.config.email {
                        if email.events.contains(&n.kind) {
                            tokio::spawn(deliver(shared.clone(), Target::Email, n.clone()));
                        }
                    }
                }
            }
        }
    }))
}

#[derive(Clone, Copy)]
enum Target {
    Webhook(usize),
    Email,
}

/// Sends one notification to one receiver, retrying with capped exponential backoff.
async fn deliver(shared: Arc<Shared>, target: Target, n: Notification) {
    let delivery_id = uuid::Uuid::new_v4().to_string();
    let title = match (&n.run_id, &n.step_id) {
        (Some(r), Some(s)) => shared.store.step(r, s).await.ok().map(|s| s.spec.title),
        _ => None,
    };
    let ticket = match &n.run_id {
        Some(r) => shared.store.run(r).await.ok().map(|run| payload::Ticket {
            url: shared.config.ticket_link(&run.change_ticket),
            number: run.change_ticket,
        }),
        None => None,
    };
    let text = payload::summary(&n, title.as_deref());
    // The ticket rides along in every message, so people and change systems can match them up.
    let text = match &ticket {
        Some(t) => format!("{text} (change {})", t.number),
        None => text,
    };
    let (label, body) = match target {
        Target::Webhook(i) => {
            let hook = &shared.config.webhooks[i];
            let body = payload::body(hook.format, &n, &delivery_id, &text, ticket.as_ref());
            (
                config::redacted(&hook.url),
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        Target::Email => (
            format!(
                "smtp://{}",
                shared
                    .config
                    .email
                    .as_ref()
                    .map(|e| e.server.as_str())
                    .unwrap_or("")
            ),
            Vec::new(),
        ),
    };
    let max = shared.config.max_attempts;
    for attempt in 1..=max {
        let result = match (target, &shared.config.email) {
            (Target::Webhook(i), _) => {
                send(
                    &shared.client,
                    &shared.config.webhooks[i],
                    &delivery_id,
                    &body,
                )
                .await
            }
            (Target::Email, Some(email)) => {
                let Some(relay) = &shared.relay else { return };
                let mail = smtp::Mail {
                    from: &email.from,
                    to: &email.to,
                    subject: &format!("[Lockstep] {text}"),
                    body: &format!(
                        "{text}\n\nEvent: {}\nRun: {}\nStatus: {}\nDelivery: {delivery_id}\n",
                        n.kind.as_str(),
                        n.run_id.as_deref().unwrap_or("-"),
                        n.status
                    ),
                };
                relay.send(&mail).await.map_err(|e| (None, e))
            }
            (Target::Email, None) => return,
        };
        let (outcome, status, error) = match &result {
            Ok(()) => ("delivered", None, None),
            Err((status, e)) if attempt == max => ("gave_up", *status, Some(e.clone())),
            Err((status, e)) => ("failed", *status, Some(e.clone())),
        };
        let factor = 1u64 << (attempt - 1).min(30);
        let wait = shared
            .config
            .backoff_initial_ms
            .saturating_mul(factor)
            .min(shared.config.backoff_max_ms);
        let retry_in = (result.is_err() && attempt < max).then_some(wait);
        record(
            &shared,
            &label,
            &delivery_id,
            &n,
            Try {
                attempt,
                outcome,
                status,
                error,
                retry_in,
            },
        )
        .await;
        if result.is_ok() || attempt == max {
            return;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    delivery_id: &str,
    body: &[u8],
) -> Result<(), (Option<u16>, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut req = client
        .post(hook.url.clone())
        .header("content-type", "application/json")
        .header(sign::DELIVERY_HEADER, delivery_id)
        .body(body.to_vec());
    if let Some(secret) = &hook.secret {
        req = req.header(sign::TIMESTAMP_HEADER, now.to_string()).header(
            sign::SIGNATURE_HEADER,
            sign::sign(secret.as_bytes(), now, body),
        );
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err((
            Some(resp.status().as_u16()),
            format!("receiver answered {}", resp.status()),
        )),
        // Without the URL: it may hold the receiver's secret.
        Err(e) => Err((None, format!("{}", e.without_url()))),
    }
}

/// One attempt's result, as recorded.
struct Try {
    attempt: u32,
    outcome: &'static str,
    status: Option<u16>,
    error: Option<String>,
    /// Milliseconds until the next attempt, if there will be one.
    retry_in: Option<u64>,
}

async fn record(shared: &Shared, target: &str, delivery_id: &str, n: &Notification, t: Try) {
    let Try {
        attempt,
        outcome,
        status,
        error,
        retry_in,
    } = t;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let retry_at = retry_in.map(|w| at.saturating_add(i64::try_from(w).unwrap_or(i64::MAX)));
    let done = sqlx::query(
        "INSERT INTO notification_attempts (delivery_id, run_id, step_id, audit_event_id,
             notification, target, attempt, at, outcome, http_status, error, retry_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(delivery_id)
    .bind(&n.run_id)
    .bind(&n.step_id)
    .bind(n.audit_event_id)
    .bind(n.kind.as_str())
    .bind(target)
    .bind(i64::from(attempt))
    .bind(at)
    .bind(outcome)
    .bind(status.map(i64::from))
    .bind(&error)
    .bind(retry_at)
    .execute(&shared.writer)
    .await;
    if let Err(e) = done {
        tracing::warn!("notify: cannot record delivery {delivery_id} attempt {attempt}: {e}");
    }
    match outcome {
        "gave_up" => tracing::warn!(
            "notify: gave up on {} to {} after {attempt} attempts: {}",
            n.kind.as_str(),
            target,
            error.unwrap_or_default()
        ),
        _ => tracing::debug!("notify: {} attempt {attempt}: {outcome}", n.kind.as_str()),
    }
}
