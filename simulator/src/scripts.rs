//! The site scripts a simulated Data Center folder holds. Written as a careful DBA would: each
//! database is checked or backed up only where it exists (unlike the seed's printed script,
//! SEED-NOTES 9), so they run on every server role.

/// `Scripts\DBMaint.sql`: integrity check and statistics.
pub const DBMAINT_SQL: &str =
    "-- DBMaint.sql: integrity check and statistics (simulated site script)
USE master
GO
DBCC CHECKDB
GO
USE model
GO
DBCC CHECKDB
GO
USE msdb
GO
DBCC CHECKDB
GO
IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Directory')
BEGIN
    DBCC CHECKDB ('Directory')
END
GO
IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Registry')
BEGIN
    DBCC CHECKDB ('Registry')
END
GO
";

/// `DRProcs\database_backup.sql`: full backups of the Connected databases present.
pub const DATABASE_BACKUP_SQL: &str = "-- database_backup.sql: full backups (simulated site script)
IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Registry')
BEGIN
    BACKUP DATABASE [Registry] TO DISK = N'E:\\Backup\\Registry.bak' WITH INIT, NAME = N'Registry full backup'
END
GO
IF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Directory')
BEGIN
    BACKUP DATABASE [Directory] TO DISK = N'E:\\Backup\\Directory.bak' WITH INIT, NAME = N'Directory full backup'
END
GO
BACKUP DATABASE [msdb] TO DISK = N'E:\\Backup\\msdb.bak' WITH INIT
GO
";

/// (path relative to the Data Center folder, text).
pub const SITE_SCRIPTS: [(&str, &str); 2] = [
    (r"Scripts\DBMaint.sql", DBMAINT_SQL),
    (r"DRProcs\database_backup.sql", DATABASE_BACKUP_SQL),
];
