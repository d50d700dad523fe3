//! The vendor's version tables: which Windows Server / SQL Server combinations Connected Backup
//! supports, and the Connected Backup version each Windows or SQL Server target needs.
//!
//! The seed lists supported combinations three times, and the lists differ (SEED-NOTES 6): the
//! chapter 3 introduction names five, "Upgrade Requirements" four (including 2008 R2, as a state
//! servers may stay in while the others are upgraded), and "Upgrade SQL Server" all six, under
//! "Connected Backup supports only the following software combinations". This is the one table;
//! each row says the section it comes from and where else it is listed.

use crate::knowledge::inventory::{SqlServerVersion, Version, WindowsVersion};

/// One supported Windows Server / SQL Server combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combination {
    pub windows: WindowsVersion,
    pub sql: SqlServerVersion,
    /// The seed section this row comes from, exactly as printed.
    pub section: &'static str,
    /// Other sections listing the same combination.
    pub also_listed_in: &'static [&'static str],
    /// Supported only while the remaining servers are upgraded ("Upgrade Requirements").
    pub interim: bool,
}

const UPGRADE_SQL: &str = "Upgrade SQL Server";
const REQUIREMENTS: &str = "Upgrade Requirements";

pub const SUPPORTED: [Combination; 6] = [
    Combination {
        windows: WindowsVersion::W2008R2,
        sql: SqlServerVersion::S2008R2Sp3,
        section: REQUIREMENTS,
        also_listed_in: &[UPGRADE_SQL],
        interim: true,
    },
    Combination {
        windows: WindowsVersion::W2012R2,
        sql: SqlServerVersion::S2012Sp4,
        section: UPGRADE_SQL,
        also_listed_in: &[REQUIREMENTS],
        interim: false,
    },
    Combination {
        windows: WindowsVersion::W2012R2,
        sql: SqlServerVersion::S2014Sp2,
        section: UPGRADE_SQL,
        also_listed_in: &[REQUIREMENTS],
        interim: false,
    },
    Combination {
        windows: WindowsVersion::W2012R2,
        sql: SqlServerVersion::S2016,
        section: UPGRADE_SQL,
        also_listed_in: &[],
        interim: false,
    },
    Combination {
        windows: WindowsVersion::W2016,
        sql: SqlServerVersion::S2014Sp2,
        section: UPGRADE_SQL,
        also_listed_in: &[REQUIREMENTS],
        interim: false,
    },
    Combination {
        windows: WindowsVersion::W2016,
        sql: SqlServerVersion::S2016,
        section: UPGRADE_SQL,
        also_listed_in: &[],
        interim: false,
    },
];

/// The table row for a combination, if the seed supports it.
pub fn combination(windows: WindowsVersion, sql: SqlServerVersion) -> Option<&'static Combination> {
    SUPPORTED
        .iter()
        .find(|c| c.windows == windows && c.sql == sql)
}

/// SQL Server releases supported with `windows`, for "upgrade SQL Server to one of ..." advice.
pub fn sql_for(windows: WindowsVersion) -> Vec<SqlServerVersion> {
    SUPPORTED
        .iter()
        .filter(|c| c.windows == windows)
        .map(|c| c.sql)
        .collect()
}

/// The Connected Backup version every server needs before a server moves to this SQL Server
/// release (the "Before You Begin" lists of the three SQL Server upgrade sections). `None` for a
/// release that is not an upgrade target.
pub fn minimum_for_sql(target: SqlServerVersion) -> Option<Version> {
    match target {
        SqlServerVersion::S2008R2Sp3 => None,
        SqlServerVersion::S2012Sp4 => Some(Version::new(&[8, 8, 1])),
        SqlServerVersion::S2014Sp2 => Some(Version::new(&[8, 8, 3])),
        SqlServerVersion::S2016 => Some(Version::new(&[8, 8, 6])),
    }
}

/// The Connected Backup version every server needs before a server moves to this Windows Server
/// release ("Upgrade a Data Center Server to Windows Server": 8.8.1 for 2012 R2, 8.8.6.1 for
/// 2016 — its step 1 checks only 8.8.1, SEED-NOTES 7).
pub fn minimum_for_windows(target: WindowsVersion) -> Option<Version> {
    match target {
        WindowsVersion::W2008R2 => None,
        WindowsVersion::W2012R2 => Some(Version::new(&[8, 8, 1])),
        WindowsVersion::W2016 => Some(Version::new(&[8, 8, 6, 1])),
    }
}

/// The in-place Windows Server upgrades the seed describes: 2008 R2 → 2012 R2 and 2012 R2 → 2016.
pub fn windows_upgrade_supported(from: WindowsVersion, to: WindowsVersion) -> bool {
    matches!(
        (from, to),
        (WindowsVersion::W2008R2, WindowsVersion::W2012R2)
            | (WindowsVersion::W2012R2, WindowsVersion::W2016)
    )
}

/// Connected Backup 8.8.1: every server runs it or later before any Windows or SQL Server upgrade.
pub fn synchronized_minimum() -> Version {
    Version::new(&[8, 8, 1])
}

/// The oldest Connected Backup version 8.11 upgrades directly. The seed does not list them ("refer
/// to the *Connected Backup Release Notes*", Upgrade Connected Backup, step 1); Lockstep assumes
/// 8.8.1, the version the seed itself requires of every server before any Data Center upgrade
/// ("Upgrade Requirements"). Written down in docs/SEED-ASSUMPTIONS.md; change it here only.
pub fn direct_upgrade_from() -> Version {
    Version::new(&[8, 8, 1])
}

/// The Connected Backup release this procedure installs.
pub fn target_release() -> Version {
    Version::new(&[8, 11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_six_combinations_upgrade_sql_server_lists() {
        assert_eq!(SUPPORTED.len(), 6);
        assert!(combination(WindowsVersion::W2016, SqlServerVersion::S2012Sp4).is_none());
        assert!(combination(WindowsVersion::W2008R2, SqlServerVersion::S2016).is_none());
        let interim = combination(WindowsVersion::W2008R2, SqlServerVersion::S2008R2Sp3);
        assert!(interim.is_some_and(|c| c.interim));
    }

    #[test]
    fn windows_server_2016_needs_8_8_6_1() {
        assert_eq!(
            minimum_for_windows(WindowsVersion::W2016),
            Some(Version::new(&[8, 8, 6, 1]))
        );
        assert_eq!(
            minimum_for_sql(SqlServerVersion::S2014Sp2),
            Some(Version::new(&[8, 8, 3]))
        );
    }
}
