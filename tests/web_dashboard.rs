//! The dashboard against the real application on port 0 with a fresh database per test.

#[path = "web/app.rs"]
mod app;
#[path = "web/auth.rs"]
mod auth;
#[path = "web/runs.rs"]
mod runs;
