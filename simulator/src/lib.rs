//! A simulated Connected Backup Data Center.
