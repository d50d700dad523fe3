//! The dashboard and JSON API (axum + askama + htmx + server-sent events).
