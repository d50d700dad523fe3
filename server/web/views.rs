//! What every page's layout needs ([`Chrome`]: who is signed in, their CSRF token, the menu), and
//! small display helpers shared by templates. Askama escapes every value; the only markup marked
//! safe is a [`Stamp`], which holds nothing but digits and fixed words.

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

/// A moment as a person reads it: `<time datetime="…Z" title="… UTC">… UTC</time>`. Rendered in
/// UTC and labelled so (what a reader without JavaScript sees); `static/app.js` rewrites the text
/// into the viewer's time zone and leaves `datetime` and the UTC title for hovering. Built only
/// from a number, so templates may mark it `|safe`.
#[derive(Template, Clone, Debug, PartialEq, Eq)]
#[template(
    source = r#"<time datetime="{{ iso }}" title="{{ utc }} UTC" data-local="{{ form }}">{{ shown }} UTC</time>"#,
    ext = "html"
)]
pub struct Stamp {
    /// `2026-11-27T21:40:05Z`.
    pub iso: String,
    /// `2026-11-27 21:40:05`.
    pub utc: String,
    /// What the text shows: the date and time, or the time of day alone (`time`).
    pub form: &'static str,
    pub shown: String,
}

impl Stamp {
    /// Date and time, from Unix milliseconds.
    pub fn at(ms: i64) -> Stamp {
        Stamp::of(ms, "datetime")
    }

    /// Time of day only (log lines, where the date is the run's), from Unix milliseconds.
    pub fn time_of_day(ms: i64) -> Stamp {
        Stamp::of(ms, "time")
    }

    fn of(ms: i64, form: &'static str) -> Stamp {
        let utc = fmt_time(ms.div_euclid(1000))
            .trim_end_matches('Z')
            .to_string();
        let (date, time) = utc.split_once(' ').unwrap_or(("", &utc));
        Stamp {
            iso: format!("{date}T{time}Z"),
            shown: if form == "time" {
                time.to_string()
            } else {
                utc.clone()
            },
            utc,
            form,
        }
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

#[cfg(test)]
mod tests {
    use super::Stamp;
    use askama::Template;

    #[test]
    fn a_stamp_is_utc_labelled_with_a_machine_readable_datetime() {
        let html = Stamp::at(1_764_279_605_000).render().unwrap();
        assert_eq!(
            html,
            "<time datetime=\"2025-11-27T21:40:05Z\" title=\"2025-11-27 21:40:05 UTC\" \
             data-local=\"datetime\">2025-11-27 21:40:05 UTC</time>"
        );
        let t = Stamp::time_of_day(1_764_279_605_000).render().unwrap();
        assert!(t.ends_with(">21:40:05 UTC</time>"), "{t}");
    }
}
