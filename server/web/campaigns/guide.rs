//! The vendor's guide as a page, opened at a section (`/guide?section=Upgrade%20SQL%20Server#here`):
//! where a campaign says which rule put a stage where it is, the link shows the guide's own words.
//! The text is compiled in, as the runbooks and the rules were written from it.

use askama::Template;
use axum::extract::Query;
use axum::response::Response;

use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{html, Chrome};
use crate::web::AppError;

const GUIDE: &str = include_str!("../../../docs/seed/upgrading-the-data-center-8.11.txt");

/// Longest section name looked for (the guide's headings are far shorter).
const MAX_SECTION_CHARS: usize = 200;

#[derive(serde::Deserialize)]
pub struct At {
    #[serde(default)]
    section: String,
}

pub struct Line {
    pub text: &'static str,
    /// The section's heading: the page opens here.
    pub here: bool,
}

#[derive(Template)]
#[template(path = "guide.html")]
pub struct GuidePage {
    pub chrome: Chrome,
    pub section: String,
    pub found: bool,
    pub lines: Vec<Line>,
}

/// The line that is the section's heading: the first line that is exactly the section's name
/// (the table of contents' lines carry a page number after a tab, so they are passed over).
fn heading(section: &str) -> Option<usize> {
    let wanted = section.trim();
    if wanted.is_empty() {
        return None;
    }
    GUIDE
        .lines()
        .position(|l| l.trim().eq_ignore_ascii_case(wanted))
}

/// `GET /guide?section=…`.
pub async fn page(me: CurrentUser, Query(at): Query<At>) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    if at.section.chars().count() > MAX_SECTION_CHARS {
        return Err(AppError::BadRequest(format!(
            "section: at most {MAX_SECTION_CHARS} characters"
        )));
    }
    let at_line = heading(&at.section);
    html(&GuidePage {
        chrome: Chrome::new(&me, "guide"),
        found: at_line.is_some(),
        section: at.section,
        lines: GUIDE
            .lines()
            .enumerate()
            .map(|(i, text)| Line {
                text,
                here: Some(i) == at_line,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_found_at_its_heading_not_in_the_contents() {
        let at = heading("Upgrade SQL Server").unwrap();
        assert_eq!(GUIDE.lines().nth(at).unwrap().trim(), "Upgrade SQL Server");
        let contents = heading("Upgrade Requirements").unwrap();
        assert!(
            contents > 100,
            "the table of contents was matched: line {contents}"
        );
        assert_eq!(heading("No such section"), None);
        assert_eq!(heading("  "), None);
    }
}
