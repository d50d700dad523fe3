//! How a plan is shown: the printable runbook a change manager attaches to a change request
//! (text), the machine contract (JSON, see the README) and a Graphviz graph (dot).

use std::collections::HashMap;
use std::fmt::Write;

use super::{Plan, PlannedStep, StepKind};
use crate::knowledge::operation::{
    Operation, ProbeOperation, RedirectValue, ServiceSet, SqlOperation, WaitCondition,
};
use crate::knowledge::runbook::format_duration;

/// The plan as JSON: `{"runbook","topology","steps":[{"id","title","section","kind","host",
/// "depends_on"}]}` plus the rest of each step (operation, gate, estimates, ...).
pub fn json(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// The printable runbook: numbered steps grouped by phase, each with its server, the seed
/// section it carries out, what it waits for, what is done and what is checked after.
pub fn text(plan: &Plan) -> String {
    let number: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i + 1))
        .collect();
    let mut out = String::new();
    let params = if plan.params.is_empty() {
        "none".to_string()
    } else {
        plan.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let count = |k: StepKind| plan.steps.iter().filter(|s| s.kind == k).count();
    let _ = writeln!(out, "{} ({})", plan.runbook_title, plan.runbook);
    let _ = writeln!(
        out,
        "{}",
        "=".repeat(plan.runbook_title.len() + plan.runbook.len() + 3)
    );
    let _ = writeln!(out, "Data Center:  {} ({})", plan.inventory, plan.topology);
    let _ = writeln!(out, "Parameters:   {params}");
    // Joins are counted apart (and named only when there are some): they are no one's work.
    let joins = count(StepKind::Barrier);
    let _ = writeln!(
        out,
        "Steps:        {} ({} approvals, {} manual, {} automated{})",
        plan.steps.len(),
        count(StepKind::Approval),
        count(StepKind::Manual),
        plan.steps.len() - count(StepKind::Approval) - count(StepKind::Manual) - joins,
        if joins > 0 {
            format!(", {joins} joins")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "Estimate:     {} on the critical path, {} if run one after another",
        format_duration(plan.critical_path_secs()),
        format_duration(plan.total_estimate_secs())
    );
    let mut phase = "";
    let mut phase_no = 0;
    for (i, s) in plan.steps.iter().enumerate() {
        if s.phase != phase {
            phase = &s.phase;
            phase_no += 1;
            let title = format!("Phase {phase_no}: {phase}");
            let _ = write!(out, "\n{title}\n{}\n", "-".repeat(title.len()));
        }
        step_text(&mut out, i + 1, s, &number);
    }
    out
}

fn step_text(out: &mut String, n: usize, s: &PlannedStep, number: &HashMap<&str, usize>) {
    const INDENT: &str = "       ";
    let _ = writeln!(out, "\n{n:>4}. {}", s.title);
    let host = s.host.as_deref().unwrap_or("-");
    let _ = writeln!(out, "{INDENT}id:       {}", s.id);
    let _ = writeln!(
        out,
        "{INDENT}kind:     {:<9} host: {host:<12} estimate: {}  timeout: {}",
        s.kind.as_str(),
        format_duration(s.estimate_secs),
        format_duration(s.timeout_secs)
    );
    let _ = writeln!(out, "{INDENT}seed:     \"{}\"", s.section);
    let after = if s.depends_on.is_empty() {
        "start".to_string()
    } else {
        let mut ns: Vec<usize> = s
            .depends_on
            .iter()
            .filter_map(|d| number.get(d.as_str()).copied())
            .collect();
        ns.sort();
        format!(
            "step {}",
            ns.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let _ = writeln!(out, "{INDENT}after:    {after}");
    wrap_into(out, "what:", &s.instructions);
    if !matches!(s.operation, Operation::None | Operation::Manual { .. }) {
        wrap_into(out, "action:", &describe(&s.operation));
    }
    if let Some(g) = &s.gate {
        let lapse = g
            .expires_after_secs
            .map(|e| format!("; lapses after {}", format_duration(e)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{INDENT}gate:     {} approval(s) by role \"{}\", never by the requester{lapse}",
            g.quorum, g.role
        );
    }
    let check = match (&s.postcondition, s.kind) {
        (Some(p), _) => describe(p),
        (None, StepKind::Approval) => "the approvals are recorded".into(),
        (None, StepKind::Manual) => "the operator's completion note".into(),
        (None, StepKind::Barrier) => "every step it joins is done".into(),
        (None, _) => "the action's own result".into(),
    };
    wrap_into(out, "check:", &check);
    if let Some(u) = &s.undo {
        wrap_into(out, "undo:", &describe(u));
    }
    if s.retry.max_attempts > 1 {
        let _ = writeln!(
            out,
            "{INDENT}retry:    up to {} attempts",
            s.retry.max_attempts
        );
    }
}

/// Writes `label` and `text` word-wrapped at 100 columns under the step's indent.
fn wrap_into(out: &mut String, label: &str, text: &str) {
    const WIDTH: usize = 100;
    let lead = format!("       {label:<10}");
    let pad = " ".repeat(lead.len());
    let mut line = lead.clone();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = pad.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

fn services(s: &ServiceSet) -> String {
    match s {
        ServiceSet::Connected => "every Connected service".into(),
        ServiceSet::Named { names } => names.join(", "),
    }
}

/// One sentence saying what an operation does or checks.
pub fn describe(op: &Operation) -> String {
    match op {
        Operation::None => "nothing to execute".into(),
        Operation::Manual { .. } => "performed by a person".into(),
        Operation::Wait { condition, interval_secs, timeout_secs } => match condition {
            WaitCondition::BackupSessionsLow { max, stable_secs } => format!(
                "wait until current backup sessions are at most {max} for {} (checked every {}, gives up after {})",
                format_duration(*stable_secs),
                format_duration(*interval_secs),
                format_duration(*timeout_secs)
            ),
        },
        Operation::ServicesStop { services: s } => format!("stop {}", services(s)),
        Operation::ServicesStart { services: s } => format!("start {}", services(s)),
        Operation::ServicesRunning { services: s } => format!("{} running", services(s)),
        Operation::SetStartupType { service, startup } => format!("startup type of {service} set to {startup}"),
        Operation::Redirect { value, to_server } => format!(
            "{} points at {to_server} (previous value recorded)",
            match value {
                RedirectValue::RegistryConnect => "RegistryConnect",
                RedirectValue::DbPreferedRegistry => "DB_PreferedRegistry",
            }
        ),
        Operation::RegistrySet { key, name, value } => format!("{key}\\{name} = \"{value}\" (previous value recorded)"),
        Operation::RegistryDeleteKey { key } => format!("delete {key} (its values recorded first)"),
        Operation::OsqlPathReplace { files, tools_folder } => format!(
            "in {}, every Microsoft SQL Server\\NNN\\Tools\\BINN\\OSQL.EXE becomes folder {tools_folder}",
            files.join(" and ")
        ),
        Operation::RunScheduledTask { task } => format!("run the scheduled task {task} and wait for it"),
        Operation::IisReset => "restart IIS (iisreset)".into(),
        Operation::IisHttpsBinding { port, common_name } => {
            format!("Default Web Site has an https binding on port {port} with the certificate for {common_name}")
        }
        Operation::ProductVersion { expect, component: None } => format!("installed Connected Backup version is {expect}"),
        Operation::ProductVersion { expect, component: Some(c) } => format!("installed {} version is {expect}", c.label()),
        Operation::EventLogClean => "no warning or error in the Application event log".into(),
        Operation::OsVersion { windows, sql_server } => {
            let mut parts = Vec::new();
            if let Some(w) = windows {
                parts.push(format!("Windows Server {w}"));
            }
            if let Some(s) = sql_server {
                parts.push(format!("SQL Server {s}"));
            }
            format!("{} installed", parts.join(" and "))
        }
        Operation::Sql(sql) => match sql {
            SqlOperation::CheckDb { databases } => format!("DBCC CHECKDB on {}", databases.join(", ")),
            SqlOperation::UpdateStats { databases } => format!("sp_updatestats on {}", databases.join(", ")),
            SqlOperation::RunScript { path } => format!("run {path} from the Data Center folder; any error stops"),
            SqlOperation::OutflowUrlHost { from_host, to_host } => format!(
                "in every Registry database, OutflowServices URL {from_host}/ose/OutflowServiceExtension.dll becomes {to_host}/ose/OutflowServiceExtension.dll"
            ),
            SqlOperation::SecureFlagOff { host } => match host {
                Some(h) => format!("in every Registry database, secureFlag = 0 for the node at {h}"),
                None => "in every Registry database, secureFlag = 0 for every node".into(),
            },
            SqlOperation::OutflowRead => "OutflowServices rows read and recorded".into(),
            SqlOperation::BackupVerify { databases, folder } => format!(
                "BACKUP DATABASE … WITH CHECKSUM of {} into {folder}, each proved by RESTORE VERIFYONLY",
                databases.join(", ")
            ),
            SqlOperation::RestoreFromRun { from_run, verify_only: true } => format!(
                "the verified backups of run {from_run} on this server pass RESTORE VERIFYONLY again"
            ),
            SqlOperation::RestoreFromRun { from_run, .. } => format!(
                "RESTORE DATABASE … WITH REPLACE from the verified backups of run {from_run}"
            ),
        },
        Operation::Probe(p) => match p {
            ProbeOperation::SupportCenter { url, expect_version } => {
                format!("{url} opens the Support Center logon page showing version {expect_version}")
            }
            ProbeOperation::DataTransferStatus { url } => format!("{url} answers well-formed XML"),
            ProbeOperation::ManagementService { url } => {
                format!("{url} opens a page whose first sentence starts \"You have created a\"")
            }
        },
    }
}

/// The plan as a Graphviz digraph, one cluster per phase.
pub fn dot(plan: &Plan) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", esc(&plan.runbook));
    let _ = writeln!(
        out,
        "  label=\"{} — {} ({})\";",
        esc(&plan.runbook_title),
        esc(&plan.inventory),
        plan.topology
    );
    let _ = writeln!(
        out,
        "  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];"
    );
    let mut phases: Vec<&str> = Vec::new();
    for s in &plan.steps {
        if !phases.contains(&s.phase.as_str()) {
            phases.push(&s.phase);
        }
    }
    for (p, phase) in phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{p}\" {{\n    label=\"{}\";",
            esc(phase)
        );
        for (i, s) in plan
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == *phase)
        {
            let shape = match s.kind {
                StepKind::Approval => ", shape=octagon, style=filled, fillcolor=\"#ffe9a8\"",
                StepKind::Manual => ", style=rounded",
                StepKind::Probe => ", shape=ellipse",
                StepKind::Barrier => ", shape=point",
                _ => "",
            };
            let host = s.host.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}. {}\\n{} · {}\"{shape}];",
                esc(&s.id),
                i + 1,
                esc(&s.title),
                esc(host),
                s.kind.as_str()
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for s in &plan.steps {
        for d in &s.depends_on {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", esc(d), esc(&s.id));
        }
    }
    out.push_str("}\n");
    out
}
