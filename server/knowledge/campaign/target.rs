//! The campaign's target, parsed at the edge from `connected=8.11`, `windows=2016`, `sql=2016`.
//!
//! A release the guide does not cover (Windows Server 2019, SQL Server 2017) is not a typo: it is
//! refused as lying outside the guide, so the person knows no spelling will make Lockstep plan it.

use super::{Refusal, Target};
use crate::knowledge::inventory::{SqlServerVersion, Version, WindowsVersion};

const KEYS: &str = "connected=VERSION, windows=RELEASE or sql=RELEASE";
const WINDOWS: &str = "Upgrade a Data Center Server to Windows Server";
const SQL: &str = "Upgrade SQL Server";

/// Parses `KEY=VALUE` items (each key at most once, at least one key) into a [`Target`].
pub fn parse_target<S: AsRef<str>>(items: &[S]) -> Result<Target, Refusal> {
    let mut t = Target {
        connected: None,
        windows: None,
        sql_server: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        let item = item.as_ref();
        let Some((key, value)) = item.split_once('=') else {
            return Err(syntax(format!(
                "`{item}` is not KEY=VALUE; use {KEYS}, e.g. --target windows=2016"
            )));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if seen.contains(&key) {
            return Err(syntax(format!("--target {key}=... is given twice")));
        }
        match key.as_str() {
            "connected" => {
                let v = value
                    .parse::<Version>()
                    .map_err(|e| syntax(format!("connected={value}: {e}")))?;
                t.connected = Some(v);
            }
            "windows" => t.windows = Some(windows(value)?),
            "sql" | "sql_server" | "sql-server" => t.sql_server = Some(sql(value)?),
            _ => return Err(syntax(format!("`{key}` is not a target; use {KEYS}"))),
        }
        seen.push(key);
    }
    if seen.is_empty() {
        return Err(syntax(format!(
            "no target given; name at least one of {KEYS}"
        )));
    }
    Ok(t)
}

fn syntax(message: String) -> Refusal {
    Refusal::new("campaign-target", "", message)
}

/// `2016`, `2012 R2` (any case and spacing: `2012r2`); a year the guide does not cover is refused
/// as outside the guide.
fn windows(value: &str) -> Result<WindowsVersion, Refusal> {
    let norm = normalise(value);
    let covered = [
        WindowsVersion::W2008R2,
        WindowsVersion::W2012R2,
        WindowsVersion::W2016,
    ];
    if let Some(w) = covered.iter().find(|w| normalise(w.as_str()) == norm) {
        return Ok(*w);
    }
    if starts_with_year(&norm) {
        return Err(Refusal::new(
            "windows-release-covered",
            WINDOWS,
            format!("windows={value}: the guide describes in-place upgrades to Windows Server 2012 R2 and 2016 only"),
        )
        .outside());
    }
    Err(syntax(format!(
        "windows={value} is not a Windows Server release; use \"2012 R2\" or \"2016\""
    )))
}

/// `2016`, `2014 SP2`, `2012 SP4`; other years and service packs are outside the guide.
fn sql(value: &str) -> Result<SqlServerVersion, Refusal> {
    let norm = normalise(value);
    let covered = [
        SqlServerVersion::S2008R2Sp3,
        SqlServerVersion::S2012Sp4,
        SqlServerVersion::S2014Sp2,
        SqlServerVersion::S2016,
    ];
    if let Some(q) = covered.iter().find(|q| normalise(q.as_str()) == norm) {
        return Ok(*q);
    }
    if starts_with_year(&norm) {
        return Err(Refusal::new(
            "sql-release-covered",
            SQL,
            format!("sql={value}: the guide supports SQL Server 2012 SP4, 2014 SP2 and 2016 as upgrade targets only"),
        )
        .outside());
    }
    Err(syntax(format!(
        "sql={value} is not a SQL Server release; use \"2012 SP4\", \"2014 SP2\" or \"2016\""
    )))
}

/// Lower case without spaces: `2012 R2` and `2012r2` compare equal.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn starts_with_year(s: &str) -> bool {
    s.len() >= 4 && s.chars().take(4).all(|c| c.is_ascii_digit()) && s.starts_with('2')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_targets_of_the_issue_parse() {
        let t = parse_target(&["connected=8.11", "windows=2016", "sql=2016"]).unwrap();
        assert_eq!(t.connected, Some(Version::new(&[8, 11])));
        assert_eq!(t.windows, Some(WindowsVersion::W2016));
        assert_eq!(t.sql_server, Some(SqlServerVersion::S2016));
        let t = parse_target(&["windows=2012r2", "sql=2014 sp2"]).unwrap();
        assert_eq!(t.windows, Some(WindowsVersion::W2012R2));
        assert_eq!(t.sql_server, Some(SqlServerVersion::S2014Sp2));
    }

    #[test]
    fn releases_the_guide_does_not_cover_are_refused_as_outside_it() {
        let r = parse_target(&["windows=2019"]).unwrap_err();
        assert_eq!(r.rule, "windows-release-covered");
        assert!(r.outside_guide);
        let r = parse_target(&["sql=2017"]).unwrap_err();
        assert_eq!(r.rule, "sql-release-covered");
        assert!(r.outside_guide);
    }

    #[test]
    fn malformed_targets_name_what_is_wrong() {
        for (items, says) in [
            (vec!["windows"], "not KEY=VALUE"),
            (vec!["os=2016"], "`os` is not a target"),
            (vec!["windows=2016", "windows=2012 R2"], "given twice"),
            (vec!["windows=banana"], "not a Windows Server release"),
            (vec!["connected=eight"], "connected=eight"),
        ] {
            let r = parse_target(&items).unwrap_err();
            assert_eq!(r.rule, "campaign-target");
            assert!(!r.outside_guide);
            assert!(r.message.contains(says), "{items:?}: {}", r.message);
        }
        let none: [&str; 0] = [];
        assert!(parse_target(&none)
            .unwrap_err()
            .message
            .contains("no target"));
    }
}
