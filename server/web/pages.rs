//! The HTML pages. Each page module holds its handlers and askama structs; the htmx endpoints
//! of a page return the same partial template the page includes.

pub mod agents;
pub mod audit;
pub mod confirm;
pub mod datacenters;
pub mod login;
pub mod newrun;
pub mod overview;
pub mod report;
pub mod run_history;
pub mod runbooks;
pub mod runs;
pub mod site_facts;
pub mod step;
pub mod users;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/overview/run-history", get(run_history::partial))
        .route("/overview/events", get(overview::events))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}/disable", post(users::disable))
        .route("/account", get(users::account))
        .route("/account/tokens", post(users::create_token))
        .route("/account/tokens/{id}/revoke", post(users::revoke_token))
        .route(
            "/datacenters",
            get(datacenters::list).post(datacenters::upload),
        )
        .route("/datacenters/{name}", get(datacenters::show))
        .route(
            "/datacenters/{name}/drawing",
            get(datacenters::drawing::live),
        )
        .route(
            "/datacenters/{name}/events",
            get(datacenters::events::events),
        )
        .route("/runbooks", get(runbooks::list))
        .route("/runbooks/{id}", get(runbooks::show))
        .route("/agents", get(agents::page))
        .route("/agents/refresh", post(agents::refresh))
        .route("/audit", get(audit::page))
        .route("/audit/export.csv", get(audit::export_csv))
        .route("/audit/export.jsonl", get(audit::export_jsonl))
        .route("/audit/export.bundle.json", get(audit::export_bundle))
        .route("/runs", get(runs::list).post(newrun::create))
        .route("/runs/new", get(newrun::form))
        .route("/runs/preview", post(newrun::preview))
        .route("/runs/{id}", get(runs::page))
        .route("/runs/{id}/report", get(report::page))
        .route("/runs/{id}/report.json", get(report::json))
        .route("/runs/{id}/events", get(crate::web::live::stream))
        .route("/runs/{id}/comments", post(runs::add_comment))
        .route("/runs/{id}/steps/{step}", get(step::page))
        .route("/runs/{id}/steps/{step}/log.txt", get(step::log_text))
        // GET of a dangerous control's address is its confirmation page (see confirm.rs).
        .route(
            "/runs/{id}/{action}",
            get(confirm::run_control).post(runs::control),
        )
        .route(
            "/runs/{id}/steps/{step}/{action}",
            get(confirm::step_control).post(runs::step_control),
        )
}
