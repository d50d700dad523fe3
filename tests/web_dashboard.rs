//! The dashboard against the real application on port 0 with a fresh database per test.

#[path = "web/agentfacts.rs"]
mod agentfacts;
#[path = "web/api.rs"]
mod api;
#[path = "web/app.rs"]
mod app;
#[path = "web/auth.rs"]
mod auth;
#[path = "web/cockpit_pages.rs"]
mod cockpit_pages;
#[path = "web/gates.rs"]
mod gates;
#[path = "web/live.rs"]
mod live;
#[path = "web/matrix.rs"]
mod matrix;
#[path = "web/pages.rs"]
mod pages;
#[path = "web/policy.rs"]
mod policy;
#[path = "web/preflightfacts.rs"]
mod preflightfacts;
#[path = "web/runpage.rs"]
mod runpage;
#[path = "web/runs.rs"]
mod runs;
#[path = "web/sitefacts.rs"]
mod sitefacts;
#[path = "web/sources.rs"]
mod sources;
#[path = "web/startup.rs"]
mod startup;
#[path = "web/tls.rs"]
mod tls;
