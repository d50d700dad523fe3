//! The words of a Windows server that actions, evidence and facts all speak: service start types
//! and run states, event levels, and the Connected Backup components. A leaf: it imports nothing of
//! the crate, so `action`, `evidence` and `facts` can each use it without importing one another.

use serde::{Deserialize, Serialize};

/// Windows service start types (`sc config start=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartupType {
    Automatic,
    DelayedAutomatic,
    Manual,
    Disabled,
}

impl StartupType {
    pub fn as_str(self) -> &'static str {
        match self {
            StartupType::Automatic => "automatic",
            StartupType::DelayedAutomatic => "delayed_automatic",
            StartupType::Manual => "manual",
            StartupType::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Result<StartupType, String> {
        match s.to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "automatic" | "auto" => Ok(StartupType::Automatic),
            "delayed_automatic" | "delayed_auto" => Ok(StartupType::DelayedAutomatic),
            "manual" | "demand" => Ok(StartupType::Manual),
            "disabled" => Ok(StartupType::Disabled),
            _ => Err(format!(
                "`{s}` is not a startup type (automatic, delayed_automatic, manual, disabled)"
            )),
        }
    }
}

/// Event levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    Critical,
    Error,
    Warning,
    Information,
}

impl EventLevel {
    /// Windows event level number (1 critical … 4 information).
    pub fn number(self) -> u8 {
        match self {
            EventLevel::Critical => 1,
            EventLevel::Error => 2,
            EventLevel::Warning => 3,
            EventLevel::Information => 4,
        }
    }
    pub fn from_number(n: u8) -> Option<EventLevel> {
        match n {
            1 => Some(EventLevel::Critical),
            2 => Some(EventLevel::Error),
            3 => Some(EventLevel::Warning),
            4 | 0 => Some(EventLevel::Information),
            _ => None,
        }
    }
}

/// Windows service states as `sc query` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceRunState {
    Stopped,
    StartPending,
    StopPending,
    Running,
    ContinuePending,
    PausePending,
    Paused,
    /// The service is not installed on this host.
    NotInstalled,
}

/// A Connected Backup component with its own installed-version record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The Data Center (Registration Master / directory server software).
    DataCenter,
    SupportCenter,
    AccountManagementWebsite,
    DatatransferApi,
    ManagementApi,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::DataCenter,
        Component::SupportCenter,
        Component::AccountManagementWebsite,
        Component::DatatransferApi,
        Component::ManagementApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::DataCenter => "data_center",
            Component::SupportCenter => "support_center",
            Component::AccountManagementWebsite => "account_management_website",
            Component::DatatransferApi => "datatransfer_api",
            Component::ManagementApi => "management_api",
        }
    }

    /// How a person names it.
    pub fn label(self) -> &'static str {
        match self {
            Component::DataCenter => "Data Center",
            Component::SupportCenter => "Support Center",
            Component::AccountManagementWebsite => "Account Management Website",
            Component::DatatransferApi => "DataTransfer API",
            Component::ManagementApi => "Management API",
        }
    }
}
