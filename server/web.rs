//! The dashboard and JSON API (axum + askama + htmx + server-sent events).
//!
//! [`state`] holds what the handlers share ([`AppState`] and the sub-states they extract),
//! [`routes`] builds the whole application from it ([`router`]), and [`serve`] runs it on a bound
//! listener (plain HTTP on loopback, or TLS) until the shutdown future completes. Tests start the
//! real application the same way on port 0.

pub mod api;
pub mod assets;
pub mod audit_words;
pub mod auth;
pub mod campaigns;
pub mod chain;
pub mod datacenters;
pub mod error;
pub mod estate;
pub mod live;
pub mod metrics;
pub mod pages;
pub mod record;
pub mod request_id;
pub mod routes;
pub mod runview;
pub mod security;
pub mod state;
pub mod tls;
pub mod topology;
pub mod views;
pub mod words;

pub use error::AppError;
pub use routes::{router, MAX_FORM_BYTES};
pub use state::{AppState, Auth, Core, SharedClock, Site, Wake, WebSettings};
pub use tls::serve;
