//! The seed's ordering rules, checked on a plan's dependency closure (never on list order).
//! Shared by the example tests (`ordering.rs`) and the property tests (`properties.rs`).
//! Each checker returns every broken rule as a sentence, so a failure says what the seed wants.

use std::collections::HashSet;

use lockstep::knowledge::inventory::{Inventory, Server, ServerRole, Side, Topology};
use lockstep::knowledge::operation::{Operation, RedirectValue, SqlOperation};
use lockstep::knowledge::plan::Plan;

pub struct Check<'a> {
    pub plan: &'a Plan,
    pub inv: &'a Inventory,
    pub broken: Vec<String>,
}

pub fn side(s: &Server) -> Side {
    s.side.unwrap_or(Side::Primary)
}

impl<'a> Check<'a> {
    pub fn new(plan: &'a Plan, inv: &'a Inventory) -> Self {
        Check {
            plan,
            inv,
            broken: Vec::new(),
        }
    }

    pub fn has(&self, id: &str) -> bool {
        self.plan.step(id).is_some()
    }

    /// `later` exists, `earlier` exists, and `later` transitively depends on `earlier`.
    pub fn after(&mut self, later: &str, earlier: &str) {
        if !self.has(later) {
            self.broken
                .push(format!("step {later} is missing (needed after {earlier})"));
        } else if !self.has(earlier) {
            self.broken
                .push(format!("step {earlier} is missing (needed before {later})"));
        } else if !self.plan.runs_after(later, earlier) {
            self.broken
                .push(format!("{later} does not wait for {earlier}"));
        }
    }

    pub fn exists(&mut self, id: &str) {
        if !self.has(id) {
            self.broken.push(format!("step {id} is missing"));
        }
    }

    pub fn absent(&mut self, id: &str, why: &str) {
        if self.has(id) {
            self.broken
                .push(format!("step {id} should not exist: {why}"));
        }
    }

    pub fn db_servers(&self, on: Side) -> Vec<&'a Server> {
        self.inv
            .servers
            .iter()
            .filter(|s| s.has_database() && side(s) == on)
            .collect()
    }

    pub fn with(&self, role: ServerRole) -> Vec<&'a Server> {
        self.inv.servers.iter().filter(|s| s.has(role)).collect()
    }

    pub fn web_servers(&self) -> Vec<&'a Server> {
        self.inv
            .servers
            .iter()
            .filter(|s| s.hosts_web_services())
            .collect()
    }

    pub fn registry(&self, on: Side) -> &'a Server {
        self.inv
            .servers
            .iter()
            .find(|s| s.has(ServerRole::Registry) && side(s) == on)
            .expect("a Registry server on that side")
    }

    pub fn finish(self) -> Result<(), String> {
        if self.broken.is_empty() {
            Ok(())
        } else {
            Err(self.broken.join("\n"))
        }
    }
}

/// Structure every plan must have: unique ids, known hosts, dependencies on earlier steps only.
pub fn well_formed(plan: &Plan, inv: &Inventory) -> Result<(), String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut broken = Vec::new();
    for s in &plan.steps {
        for d in &s.depends_on {
            if !seen.contains(d.as_str()) {
                broken.push(format!(
                    "{} depends on {d}, which is not placed before it",
                    s.id
                ));
            }
        }
        if !seen.insert(&s.id) {
            broken.push(format!("step id {} is used twice", s.id));
        }
        if let Some(h) = &s.host {
            if inv.server(h).is_none() {
                broken.push(format!(
                    "{} runs on {h}, which is not in the inventory",
                    s.id
                ));
            }
        }
        if let Some((_, host)) = s.id.split_once('@') {
            if inv.server(host).is_none() {
                broken.push(format!(
                    "{} names {host}, which is not in the inventory",
                    s.id
                ));
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("\n"))
    }
}

/// The per-server upgrade sequence of one side: stop → backup → Setup → start → verify.
fn side_sequence(c: &mut Check, on: Side) {
    let p = if on == Side::Primary {
        ""
    } else {
        "secondary-"
    };
    let standalone = c.inv.topology == Topology::Standalone;
    let rm = c.registry(on).name.clone();
    let servers: Vec<&Server> = c.db_servers(on);
    for s in &servers {
        let h = &s.name;
        c.after(
            &format!("{p}drain-sessions@{h}"),
            &format!("{p}restrict-sessions@{h}"),
        );
        c.after(
            &format!("{p}stop-services@{h}"),
            &format!("{p}drain-sessions@{h}"),
        );
        let backup = if standalone {
            format!("backup-weeklymaint@{h}")
        } else {
            format!("{p}backup-databases@{h}")
        };
        c.after(&backup, &format!("{p}stop-services@{h}"));
        let setup = if s.has(ServerRole::Registry) {
            format!("{p}setup-registry@{h}")
        } else {
            format!("{p}setup-directory@{h}")
        };
        c.after(&setup, &backup);
        // Every server of the side is stopped before its Registration Master's Setup runs, and
        // every server starts only after every Setup of the side (they stop and start together).
        c.after(
            &format!("{p}setup-registry@{rm}"),
            &format!("{p}stop-services@{h}"),
        );
        c.after(&format!("{p}start-services@{rm}"), &setup);
        c.after(
            &format!("{p}start-services@{h}"),
            &format!("{p}setup-registry@{rm}"),
        );
        c.after(
            &format!("{p}allow-sessions@{h}"),
            &format!("{p}start-services@{h}"),
        );
        c.after(
            &format!("{p}verify-data-center@{h}"),
            &format!("{p}allow-sessions@{h}"),
        );
        for r in c.with(ServerRole::Registry) {
            c.after(
                &format!("{p}stop-services@{h}"),
                &format!("verify-integrity@{}", r.name),
            );
        }
    }
}

/// Chapter 1 (`upgrade-8.11`) for any topology.
pub fn upgrade_811(plan: &Plan, inv: &Inventory) -> Result<(), String> {
    well_formed(plan, inv)?;
    let mut c = Check::new(plan, inv);
    let standalone = inv.topology == Topology::Standalone;
    side_sequence(&mut c, Side::Primary);
    let primary: Vec<String> = c
        .db_servers(Side::Primary)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let webs: Vec<String> = c.web_servers().iter().map(|s| s.name.clone()).collect();

    // Redirects: none on a stand-alone Data Center; otherwise after the stop, before the backup,
    // towards the secondary Registry server, and back to the primary after the Web Services Setup.
    if standalone {
        for s in &plan.steps {
            if s.id.contains("redirect") {
                c.broken
                    .push(format!("{} redirects on a stand-alone Data Center", s.id));
            }
        }
    } else {
        let (prim, sec) = (
            c.registry(Side::Primary).name.clone(),
            c.registry(Side::Secondary).name.clone(),
        );
        for w in c.web_servers() {
            let w = &w.name;
            for x in &primary {
                c.after(
                    &format!("redirect-iisreset@{w}"),
                    &format!("stop-services@{x}"),
                );
                c.after(
                    &format!("backup-databases@{x}"),
                    &format!("redirect-iisreset@{w}"),
                );
            }
            c.after(
                &format!("redirect-back-iisreset@{w}"),
                &format!("web-setup@{w}"),
            );
        }
        for s in &plan.steps {
            if let Operation::Redirect { value, to_server } = &s.operation {
                let want = if s.id.starts_with("redirect-back") {
                    &prim
                } else {
                    &sec
                };
                if to_server != want {
                    c.broken
                        .push(format!("{} redirects to {to_server}, not {want}", s.id));
                }
                let host = s.host.as_deref().and_then(|h| inv.server(h));
                let fits = host.is_some_and(|h| match value {
                    RedirectValue::RegistryConnect => {
                        h.has(ServerRole::SupportCenter)
                            || h.has(ServerRole::AccountManagementWebsite)
                    }
                    RedirectValue::DbPreferedRegistry => h.has(ServerRole::DatatransferApi),
                });
                if !fits {
                    c.broken
                        .push(format!("{} changes a value its server does not have", s.id));
                }
            }
        }
        for w in c
            .with(ServerRole::SupportCenter)
            .into_iter()
            .chain(c.with(ServerRole::AccountManagementWebsite))
        {
            c.exists(&format!("redirect-registryconnect@{}", w.name));
            c.exists(&format!("redirect-back-registryconnect@{}", w.name));
        }
        for w in c.with(ServerRole::DatatransferApi) {
            c.exists(&format!("redirect-preferedregistry@{}", w.name));
            c.exists(&format!("redirect-back-preferedregistry@{}", w.name));
        }
    }

    // Web Services only after the Data Center is back.
    for w in &webs {
        for x in &primary {
            c.after(
                &format!("web-setup@{w}"),
                &format!("verify-data-center@{x}"),
            );
        }
    }

    // The secondary side: after the primary side is back and Web Services point at it again;
    // and it keeps running while the primary side is upgraded.
    if !standalone {
        side_sequence(&mut c, Side::Secondary);
        let secondary: Vec<String> = c
            .db_servers(Side::Secondary)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for y in &secondary {
            for x in &primary {
                c.after(
                    &format!("secondary-restrict-sessions@{y}"),
                    &format!("verify-data-center@{x}"),
                );
            }
            for w in &webs {
                c.after(
                    &format!("secondary-restrict-sessions@{y}"),
                    &format!("redirect-back-iisreset@{w}"),
                );
            }
        }
        for s in &plan.steps {
            if s.id.starts_with("secondary-") || s.phase == "Secondary side" {
                continue;
            }
            let early =
                s.phase == "Data Center" || s.phase == "Web Services" || s.phase == "Prepare";
            if early
                && plan
                    .ancestors(&s.id)
                    .iter()
                    .any(|a| a.starts_with("secondary-"))
            {
                c.broken.push(format!(
                    "{} waits for the secondary side, which must keep running meanwhile",
                    s.id
                ));
            }
        }
    } else {
        for s in &plan.steps {
            if s.id.starts_with("secondary-") {
                c.broken
                    .push(format!("{} exists on a stand-alone Data Center", s.id));
            }
        }
    }

    // Management API after Web Services (and after the secondary side); security after it.
    let mapi: Vec<String> = c
        .with(ServerRole::ManagementApi)
        .iter()
        .map(|s| format!("mapi-install@{}", s.name))
        .collect();
    for m in &mapi {
        for w in &webs {
            c.after(m, &format!("web-setup@{w}"));
            if !standalone {
                c.after(m, &format!("redirect-back-iisreset@{w}"));
            }
        }
        for y in c.db_servers(Side::Secondary) {
            c.after(m, &format!("secondary-verify-data-center@{}", y.name));
        }
        for s in &plan.steps {
            if s.phase == "Security settings" {
                c.after(&s.id.clone(), m);
            }
        }
    }

    // OutflowServices URL: FQDN before any (re)install, CN after, only where the CN differs.
    for n in c.with(ServerRole::DatatransferApi) {
        let cn_differs = n
            .certificate
            .as_ref()
            .is_some_and(|cert| !cert.common_name.eq_ignore_ascii_case(&n.fqdn));
        let ssl = n.datatransfer.as_ref().is_none_or(|d| d.ssl);
        let to_fqdn = format!("url-to-fqdn@{}", n.name);
        let to_cn = format!("url-to-cn@{}", n.name);
        if cn_differs {
            for s in &plan.steps {
                if s.id.starts_with("setup-")
                    || s.id.starts_with("secondary-setup-")
                    || s.id.starts_with("web-setup@")
                    || s.id.starts_with("mapi-install@")
                {
                    c.after(&s.id.clone(), &to_fqdn);
                }
            }
        } else {
            c.absent(&to_fqdn, "its certificate CN is its FQDN");
        }
        if cn_differs && ssl {
            for w in &webs {
                c.after(&to_cn, &format!("web-setup@{w}"));
            }
            for m in &mapi {
                c.after(&to_cn, m);
            }
            check_outflow_op(&mut c, &to_cn, &n.fqdn, cn_of(n));
            check_outflow_op(&mut c, &to_fqdn, cn_of(n), &n.fqdn);
        } else {
            c.absent(&to_cn, "its URL keeps the FQDN");
        }
        if ssl {
            c.absent(
                &format!("disable-datatransfer-ssl@{}", n.name),
                "its DataTransfer API uses SSL",
            );
        } else {
            c.exists(&format!("disable-datatransfer-ssl@{}", n.name));
            c.absent(
                &format!("bind-certificate-datatransfer@{}", n.name),
                "SSL is off",
            );
        }
    }

    verification_last(
        &mut c,
        &[
            ("verify-support-center@", ServerRole::SupportCenter),
            (
                "verify-account-management-website@",
                ServerRole::AccountManagementWebsite,
            ),
            ("verify-datatransfer@", ServerRole::DatatransferApi),
            ("verify-management-api@", ServerRole::ManagementApi),
        ],
    );
    c.finish()
}

fn cn_of(s: &Server) -> &str {
    s.certificate
        .as_ref()
        .map(|c| c.common_name.as_str())
        .unwrap_or(&s.fqdn)
}

fn check_outflow_op(c: &mut Check, id: &str, from: &str, to: &str) {
    match c.plan.step(id).map(|s| &s.operation) {
        Some(Operation::Sql(SqlOperation::OutflowUrlHost { from_host, to_host })) => {
            if from_host != from || to_host != to {
                c.broken.push(format!(
                    "{id} rewrites {from_host} → {to_host}, not {from} → {to}"
                ));
            }
        }
        Some(other) => c.broken.push(format!(
            "{id} does {other:?}, not an OutflowServices URL rewrite"
        )),
        None => c.broken.push(format!("step {id} is missing")),
    }
}

/// Verification comes after every other step, each from a server that does not host what it checks.
pub fn verification_last(c: &mut Check, checks: &[(&str, ServerRole)]) {
    let verify: Vec<String> = c
        .plan
        .steps
        .iter()
        .filter(|s| s.phase == "Verify")
        .map(|s| s.id.clone())
        .collect();
    let others: Vec<String> = c
        .plan
        .steps
        .iter()
        .filter(|s| s.phase != "Verify")
        .map(|s| s.id.clone())
        .collect();
    for v in &verify {
        let anc = c.plan.ancestors(v);
        for o in &others {
            if !anc.contains(o) {
                c.broken.push(format!(
                    "{v} does not wait for {o}: verification comes last"
                ));
            }
        }
    }
    for (prefix, role) in checks {
        for server in c.with(*role) {
            let id = format!("{prefix}{}", server.name);
            match c.plan.step(&id) {
                None => c.broken.push(format!("step {id} is missing")),
                Some(s) => {
                    if let Some(h) = s.host.as_deref().and_then(|h| c.inv.server(h)) {
                        if h.has(*role) {
                            c.broken.push(format!(
                                "{id} runs on {}, which hosts the {role} it checks",
                                h.name
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Chapter 3, SQL Server (`upgrade-sql-server`), when every Data Center server is below target.
pub fn upgrade_sql(plan: &Plan, inv: &Inventory, tools_folder: &str) -> Result<(), String> {
    well_formed(plan, inv)?;
    let mut c = Check::new(plan, inv);
    let standalone = inv.topology == Topology::Standalone;
    let sides: &[Side] = if standalone {
        &[Side::Primary]
    } else {
        &[Side::Primary, Side::Secondary]
    };
    let webs: Vec<String> = c.web_servers().iter().map(|s| s.name.clone()).collect();
    for &on in sides {
        let p = if on == Side::Primary {
            ""
        } else {
            "secondary-"
        };
        let rm = c.registry(on).name.clone();
        for s in c.db_servers(on) {
            let h = s.name.clone();
            c.after(
                &format!("{p}stop-services@{h}"),
                &format!("verify-integrity@{h}"),
            );
            let backup = if standalone {
                format!("backup-weeklymaint@{h}")
            } else {
                format!("{p}backup-databases@{h}")
            };
            c.after(&backup, &format!("{p}exit-applications@{h}"));
            c.after(&format!("{p}restrict-sessions@{h}"), &backup);
            let chain = [
                "restrict-sessions",
                "drain-sessions",
                "stop-services",
                "stop-sql-agent",
                if s.has(ServerRole::Registry) {
                    "upgrade-sql-registry"
                } else {
                    "upgrade-sql-directory"
                },
                "check-db",
                "update-stats",
                "start-backup-index",
                "modify-maintenance-scripts",
                "restart-server",
                "restart-sql-agent",
                "start-services",
                "allow-sessions",
            ];
            for pair in chain.windows(2) {
                c.after(
                    &format!("{p}{}@{h}", pair[1]),
                    &format!("{p}{}@{h}", pair[0]),
                );
            }
            c.after(
                &format!("{p}upgrade-sql-registry@{rm}"),
                &format!("{p}stop-sql-agent@{h}"),
            );
            if !s.has(ServerRole::Registry) {
                c.after(
                    &format!("{p}upgrade-sql-directory@{h}"),
                    &format!("{p}upgrade-sql-registry@{rm}"),
                );
            }
            // CHECKDB and sp_updatestats only for the databases that exist there (SEED-NOTES 9).
            let mut want = vec!["master", "model", "msdb"];
            if s.has(ServerRole::Directory) {
                want.push("Directory");
            }
            if s.has(ServerRole::Registry) {
                want.push("Registry");
            }
            match plan.step(&format!("{p}check-db@{h}")).map(|s| &s.operation) {
                Some(Operation::Sql(SqlOperation::CheckDb { databases })) if *databases == want => {
                }
                other => c
                    .broken
                    .push(format!("{p}check-db@{h} checks {other:?}, not {want:?}")),
            }
            match plan
                .step(&format!("{p}modify-maintenance-scripts@{h}"))
                .map(|s| &s.operation)
            {
                Some(Operation::OsqlPathReplace {
                    tools_folder: t, ..
                }) if t == tools_folder => {}
                other => c.broken.push(format!(
                    "{p}modify-maintenance-scripts@{h} does {other:?}, not folder {tools_folder}"
                )),
            }
            if on == Side::Primary && !standalone {
                for w in &webs {
                    c.after(
                        &format!("stop-services@{h}"),
                        &format!("redirect-iisreset@{w}"),
                    );
                    c.after(&format!("redirect-iisreset@{w}"), &backup);
                    c.after(
                        &format!("redirect-back-iisreset@{w}"),
                        &format!("allow-sessions@{h}"),
                    );
                }
                for y in c.db_servers(Side::Secondary) {
                    c.after(
                        &format!("secondary-stop-services@{}", y.name),
                        &format!("allow-sessions@{h}"),
                    );
                    for w in &webs {
                        c.after(
                            &format!("secondary-stop-services@{}", y.name),
                            &format!("redirect-back-iisreset@{w}"),
                        );
                    }
                }
            }
        }
    }
    if standalone {
        for s in &plan.steps {
            if s.id.contains("redirect") || s.id.starts_with("secondary-") {
                c.broken
                    .push(format!("{} exists on a stand-alone Data Center", s.id));
            }
        }
    }
    verification_last(&mut c, &[]);
    c.finish()
}

/// Chapter 3, Windows Server (`upgrade-windows-server`), when every server is below target.
pub fn upgrade_windows(plan: &Plan, inv: &Inventory) -> Result<(), String> {
    well_formed(plan, inv)?;
    let mut c = Check::new(plan, inv);
    let standalone = inv.topology == Topology::Standalone;
    for s in &inv.servers {
        let p = if side(s) == Side::Primary {
            ""
        } else {
            "secondary-"
        };
        let h = &s.name;
        if s.has_database() {
            c.after(
                &format!("{p}upgrade-windows@{h}"),
                &format!("{p}stop-services@{h}"),
            );
            c.after(
                &format!("{p}allow-sessions@{h}"),
                &format!("{p}start-services@{h}"),
            );
            c.after(
                &format!("{p}start-services@{h}"),
                &format!("{p}post-upgrade-fix@{h}"),
            );
        }
        c.after(
            &format!("{p}post-upgrade-fix@{h}"),
            &format!("{p}upgrade-windows@{h}"),
        );
        c.after(
            &format!("{p}start-w3svc@{h}"),
            &format!("{p}stop-iisadmin@{h}"),
        );
        c.after(
            &format!("{p}event-log-clean@{h}"),
            &format!("{p}start-w3svc@{h}"),
        );
        if side(s) == Side::Secondary {
            for x in inv.servers.iter().filter(|x| side(x) == Side::Primary) {
                let first = if s.has_database() {
                    "restrict-sessions"
                } else {
                    "upgrade-windows"
                };
                c.after(
                    &format!("secondary-{first}@{h}"),
                    &format!("event-log-clean@{}", x.name),
                );
            }
        }
    }
    if standalone {
        for s in &plan.steps {
            if s.id.starts_with("secondary-") {
                c.broken
                    .push(format!("{} exists on a stand-alone Data Center", s.id));
            }
        }
    }
    verification_last(&mut c, &[]);
    c.finish()
}
