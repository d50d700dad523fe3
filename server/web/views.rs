//! What every page's layout needs ([`Chrome`]: who is signed in, their CSRF token, the menu), and
//! small display helpers shared by templates. Askama escapes every value; nothing here is ever
//! marked safe.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use super::auth::{CurrentUser, Role};
use super::AppError;

/// The frame around every signed-in page.
pub struct Chrome {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    /// Which menu entry is current.
    pub section: &'static str,
}

impl Chrome {
    pub fn new(user: &CurrentUser, section: &'static str) -> Chrome {
        Chrome {
            user: user.name().to_string(),
            role: user.role(),
            csrf: user.csrf_token().to_string(),
            section,
        }
    }
    pub fn can(&self, role: &str) -> bool {
        role.parse::<Role>()
            .map(|r| self.role.allows(r))
            .unwrap_or(false)
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// Renders a template into an HTML response.
pub fn html<T: Template>(t: &T) -> Result<Response, AppError> {
    Ok(Html(t.render()?).into_response())
}

/// `2026-11-27 21:40:05Z` from Unix seconds.
pub fn fmt_time(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".into(),
    }
}

/// `1h 05m`, `4m 10s`, `12s`.
pub fn fmt_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A page that redirects back after a plain (no JavaScript) form post.
pub fn see_other(to: &str) -> Response {
    axum::response::Redirect::to(to).into_response()
}
