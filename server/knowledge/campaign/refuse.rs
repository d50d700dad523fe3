//! Refusals: targets the guide has no procedure towards (checked before any search), and the
//! sentence for a target no order reaches — the first rule that stopped a stage, with the way
//! forward where the target left a release unnamed, or outside the guide where it lies there.

use super::stage::{mid_window, COMBINATION_RULE, CONNECTED, REQUIREMENTS, UPGRADE_SQL, WINDOWS};
use super::{estate_of, short_of, Refusal, Target};
use crate::knowledge::inventory::Inventory;
use crate::knowledge::preflight::compat;

/// Refusals a target earns before any search: releases the guide has no procedure towards.
pub(super) fn check_target(inv: &Inventory, target: &Target) -> Result<(), Refusal> {
    if target.connected.is_none() && target.windows.is_none() && target.sql_server.is_none() {
        return Err(Refusal::new(
            "campaign-target",
            "",
            "no target given; name at least one of connected=, windows= or sql=".into(),
        ));
    }
    let release = compat::target_release();
    if let Some(v) = target.connected.as_ref().filter(|v| **v != release) {
        return Err(Refusal::new(
            "connected-target-release",
            CONNECTED,
            format!(
                "connected={v}: the guide describes the upgrade to Connected Backup {release} only"
            ),
        )
        .outside());
    }
    if let (Some(w), Some(q)) = (target.windows, target.sql_server) {
        if compat::combination(w, q).is_none() {
            let with: Vec<String> = compat::sql_for(w).iter().map(|v| v.to_string()).collect();
            return Err(Refusal::new(
                COMBINATION_RULE,
                UPGRADE_SQL,
                format!(
                    "Connected Backup does not support {w} with {q}; with {w} it supports {}",
                    if with.is_empty() {
                        "no SQL Server release".into()
                    } else {
                        with.join(", ")
                    }
                ),
            ));
        }
    }
    newer_than_target(inv, target)?;
    let estate = estate_of(inv);
    if short_of(inv, &estate, target).is_empty() {
        return Ok(());
    }
    let from = compat::direct_upgrade_from();
    let behind: Vec<String> = inv
        .servers
        .iter()
        .filter(|s| s.connected_version < from)
        .map(|s| format!("{} runs {}", s.name, s.connected_version))
        .collect();
    if !behind.is_empty() {
        let (rule, section) = match target.connected {
            Some(_) => ("direct-upgrade", CONNECTED),
            None => ("connected-version-synchronized", REQUIREMENTS),
        };
        return Err(Refusal::new(
            rule,
            section,
            format!(
                "{}; 8.11 upgrades directly only from {from} or later, and every Windows or SQL Server upgrade needs {from} on every server. The way forward is an intermediate Connected Backup release ({from} or later) installed by its own documentation, which this guide does not describe; plan again once every server runs {from} or later",
                behind.join(", ")
            ),
        )
        .outside());
    }
    Ok(())
}

/// The guide has no downgrades: a server already past the target cannot reach it.
fn newer_than_target(inv: &Inventory, target: &Target) -> Result<(), Refusal> {
    let rule = "target-not-older-than-current";
    for s in &inv.servers {
        if let Some(v) = target
            .connected
            .as_ref()
            .filter(|v| s.connected_version > **v)
        {
            return Err(Refusal::new(rule, CONNECTED, format!("{} runs Connected Backup {}, newer than the target {v}; the guide describes no downgrade", s.name, s.connected_version)));
        }
        if let Some(w) = target.windows.filter(|w| s.windows > *w) {
            return Err(Refusal::new(
                rule,
                WINDOWS,
                format!(
                    "{} runs {}, newer than the target {w}; the guide describes no downgrade",
                    s.name, s.windows
                ),
            ));
        }
        if let (Some(q), Some(now), true) = (target.sql_server, s.sql_server, s.has_database()) {
            if now > q {
                return Err(Refusal::new(rule, UPGRADE_SQL, format!("{} runs {now}, newer than the target {q}; the guide describes no downgrade", s.name)));
            }
        }
    }
    Ok(())
}

/// The refusal when no order reaches the target: the first rule that stopped a stage, with the
/// way forward where the target left a release unnamed.
pub(super) fn unreachable(inv: &Inventory, target: &Target, first: Option<Refusal>) -> Refusal {
    let short = short_of(inv, &estate_of(inv), target);
    let mid = mid_window(&estate_of(inv));
    if first.is_none() && !mid.is_empty() {
        return Refusal::new(
            COMBINATION_RULE,
            UPGRADE_SQL,
            format!("{} run a Windows / SQL Server combination the guide does not support; their SQL Server upgrade comes first (add --target sql=...)", mid.join(", ")),
        );
    }
    let Some(mut r) = first else {
        return Refusal::new(
            "campaign-reachable",
            REQUIREMENTS,
            format!(
                "no procedure of the guide moves the estate towards the target ({})",
                short.join("; ")
            ),
        );
    };
    r.message = format!(
        "no order of the guide's procedures reaches the target: {}",
        r.message
    );
    if r.rule.ends_with("minimum-version") && target.connected.is_none() {
        r.message
            .push_str("; add --target connected=8.11 so that the 8.11 upgrade can come first");
    }
    if r.rule == "sql-upgrade-windows-version" && target.windows.is_none() {
        r.message.push_str("; add --target windows=2012 R2 (or 2016) so that the Windows Server upgrade can come first");
    }
    r
}
