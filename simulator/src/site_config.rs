//! The `lockstep serve` settings for a running simulated Data Center: a TOML fragment with
//! `simulated_site = true`, the `[sql]` table (every simulated SQL Server, its login, encryption
//! off because the simulator does not speak TDS TLS) and the `[probes]` table (the site CA and
//! the self-signed certificates as trust anchors, the host names mapped to loopback addresses),
//! plus the files it names: the password file, the PEM files and the site scripts folder.
//!
//! The fragment starts with a top-level key, so it goes before any table of the serve
//! configuration it is added to (or is the whole file).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::datacenter::SimulatedDataCenter;

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn path_value(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

/// Writes the fragment as `dir/lockstep-site.toml` (and its files under `dir`); returns its path.
pub fn write_site_config(dc: &SimulatedDataCenter, dir: &Path) -> anyhow::Result<PathBuf> {
    let e = dc.endpoints();
    let password_file = dir.join("sql-password");
    write(&password_file, &format!("{}\n", e.sql_password))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let scripts = dir.join("scripts");
    for (path, text) in crate::scripts::SITE_SCRIPTS {
        let rel: PathBuf = path.split(['\\', '/']).filter(|p| !p.is_empty()).collect();
        write(&scripts.join(rel), text)?;
    }
    std::fs::create_dir_all(&scripts)?;
    let mut ca_files = vec![dir.join("site-ca.pem")];
    write(&ca_files[0], &e.ca_pem)?;
    for (server, pem) in &e.self_signed_pem {
        let p = dir.join(format!("self-signed-{server}.pem"));
        write(&p, pem)?;
        ca_files.push(p);
    }
    let mut servers = Table::new();
    for (server, addr) in &e.sql {
        let mut t = Table::new();
        t.insert("address".into(), Value::String(addr.to_string()));
        servers.insert(server.clone(), Value::Table(t));
    }
    let mut sql = Table::new();
    sql.insert("user".into(), Value::String(e.sql_user.clone()));
    sql.insert("password_file".into(), path_value(&password_file));
    sql.insert("encrypt".into(), Value::String("off".into()));
    sql.insert("scripts_dir".into(), path_value(&scripts));
    sql.insert("servers".into(), Value::Table(servers));
    let mut resolve = Table::new();
    for (host, addr) in &e.resolve {
        resolve.insert(host.clone(), Value::String(addr.to_string()));
    }
    let mut probes = Table::new();
    probes.insert(
        "ca_files".into(),
        Value::Array(ca_files.iter().map(|p| path_value(p)).collect()),
    );
    probes.insert("resolve".into(), Value::Table(resolve));
    let mut top = Table::new();
    top.insert("simulated_site".into(), Value::Boolean(true));
    top.insert("sql".into(), Value::Table(sql));
    top.insert("probes".into(), Value::Table(probes));
    let text = format!(
        "# lockstep serve settings for the simulated Data Center `{}` (written by lockstep-sim).\n\
         # simulated_site shortens drain waits: never use it for a real site.\n{}",
        e.name,
        toml::to_string(&top)?
    );
    let out = dir.join("lockstep-site.toml");
    write(&out, &text)?;
    Ok(out)
}
