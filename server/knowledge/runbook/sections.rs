//! The seed's headings, exactly as printed in *Upgrading the Data Center 8.11*. A runbook step
//! names the heading it carries out; a heading not in this list is a typo and is refused.

/// `(chapter, heading)`. Some headings appear in two chapters ("Verify Data Integrity", "Back Up
/// the SQL Databases", "Stop Data Center Services"); a step's text says which one it follows.
pub const SEED_SECTIONS: &[(u8, &str)] = &[
    (1, "How the Upgrade Process Affects Users"),
    (1, "Prepare for the Upgrade"),
    (1, "Review Upgrade Guidelines and Recommendations"),
    (1, "Verify Data Integrity"),
    (1, "Download the Software"),
    (1, "Upgrade Connected Backup"),
    (1, "Upgrade the Data Center"),
    (1, "Stop Data Center Services"),
    (1, "Redirect Web Services Applications to Another Server"),
    (1, "Back Up the SQL Databases"),
    (1, "Perform the Data Center Upgrade"),
    (1, "Start the Upgraded Data Center"),
    (1, "Upgrade Web Services Applications"),
    (1, "Upgrade the Data Center on Secondary Servers"),
    (1, "Install or Upgrade the Management API"),
    (1, "Enable the TLS Protocol"),
    (1, "Configure Security Settings"),
    (1, "Install the SSL Certificate"),
    (
        1,
        "Update the Data Transfer API URL in the Registry Database",
    ),
    (1, "Disable DataTransfer API Support for SSL"),
    (1, "Configure the Account Management Website for SSL"),
    (1, "Configure IIS with SSL"),
    (
        1,
        "Account Management Website Registry Settings for SSL Communication",
    ),
    (1, "Install Connected Reporting Services"),
    (1, "Verify the Upgrade"),
    (2, "Uninstall the Management API"),
    (2, "Uninstall the DataTransfer API"),
    (3, "Upgrade Requirements"),
    (3, "Upgrade a Data Center Server to Windows Server"),
    (3, "Upgrade Stand-Alone Data Center Servers to SQL Server"),
    (3, "Upgrade Mirrored Data Center Servers to SQL Server"),
    (3, "Upgrade Clustered Data Center Servers to SQL Server"),
    (3, "SQL Server Upgrade Tasks"),
    (3, "Prepare for SQL Server Upgrade"),
    (3, "General Preparation Tasks"),
    (3, "Redirect Web Services Applications"),
    (3, "Upgrade SQL Server"),
    (3, "Modify the Data Center Maintenance Scripts"),
    (3, "General Post-Upgrade Tasks"),
    (3, "Start Data Center Services"),
    (
        3,
        "Redirect Web Services Applications After SQL Server Upgrade",
    ),
];

/// Whether `heading` is one of the seed's headings, exactly as printed.
pub fn is_seed_section(heading: &str) -> bool {
    SEED_SECTIONS.iter().any(|(_, h)| *h == heading)
}

/// The chapter a heading first appears in.
pub fn chapter_of(heading: &str) -> Option<u8> {
    SEED_SECTIONS
        .iter()
        .find(|(_, h)| *h == heading)
        .map(|(c, _)| *c)
}
