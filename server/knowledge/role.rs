//! What a person may do: the four roles, from watching to managing accounts.
//!
//! One vocabulary for the engine ([`crate::engine::Actor`] and its policy table), the plans (the
//! role that may pass a gate), the CLI and the API. Text becomes a [`Role`] at the edge through
//! [`FromStr`], whose error names the word and the accepted ones; the serde form is the same
//! lowercase word, so the audit log, stored plans and the OpenAPI read as before.
//!
//! Not to be confused with [`crate::knowledge::inventory::ServerRole`], what a *server* hosts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Roles in increasing power; each includes everything the ones before it may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: runs, reports, audit.
    Viewer,
    /// Prepares inventories, starts runs, performs manual tasks, retries, skips, pauses.
    Operator,
    /// Passes approval gates (never their own request).
    Approver,
    /// Manages accounts and agents.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether someone with this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// This role and every role below it: what a person holding it may act as.
    pub fn and_below(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.allows(*r))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    /// The message a person reads: the word given and the words accepted. A plain `String` so
    /// the form, account and settings errors can carry it as they are.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a role (expected viewer, operator, approver or admin)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_from_viewer_to_admin() {
        assert!(Role::Admin.allows(Role::Approver));
        assert!(Role::Approver.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Approver));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert_eq!("approver".parse::<Role>(), Ok(Role::Approver));
        assert!("root".parse::<Role>().unwrap_err().contains("root"));
    }

    #[test]
    fn every_role_round_trips_through_its_word_and_its_serde_form() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
    }

    #[test]
    fn an_unknown_role_is_refused_naming_the_word_and_the_accepted_ones() {
        for bad in ["", "Approver", "change-manager", " admin"] {
            let err = bad.parse::<Role>().unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
            assert!(err.contains("viewer, operator, approver or admin"), "{err}");
        }
    }

    #[test]
    fn a_role_holds_itself_and_the_roles_below_it() {
        let approver: Vec<Role> = Role::Approver.and_below().collect();
        assert_eq!(approver, [Role::Viewer, Role::Operator, Role::Approver]);
        assert_eq!(Role::Viewer.and_below().count(), 1);
    }
}
