//! The man-page parts of `--help`: examples, environment variables and exit status, added to
//! each command's long help (`--help`; `-h` stays short). They live here, in one table, rather
//! than in each command's file, so that they are reviewed together and a test
//! (`tests/cli_help.rs`) can insist every command has them. Commands whose own `long_about`
//! already ends in examples (preflight, plan, inventory check, runbook list/show) are left alone.
//!
//! [`command`] is the `lockstep` command with these sections; `main` parses with [`parse`].

use clap::{CommandFactory, FromArgMatches};

use super::Cli;

const TOP: &str = "\
Examples:
  lockstep inventory check dc.toml                  # is the Data Center described correctly?
  lockstep preflight --inventory dc.toml --runbook upgrade-8.11
  lockstep plan --inventory dc.toml --runbook upgrade-8.11 > change-request.txt
  lockstep rehearse --inventory dc.toml --runbook upgrade-8.11
  lockstep serve --config /etc/lockstep/lockstep.toml
  lockstep demo                                     # a simulated Data Center on 127.0.0.1:8080

Environment:
  LOCKSTEP_LOG_FORMAT   text (default) or json: the log format on standard error
  RUST_LOG              log level filter (default info; warn for demo and rehearse),
                        e.g. RUST_LOG=lockstep=debug
  LOCKSTEP_DB           the SQLite database (default lockstep-data/lockstep.db)
  LOCKSTEP_*            every configuration setting (`lockstep config check` lists them)

Exit status:
  0  success
  1  the command ran and found a problem it reports: an invalid inventory or configuration, a
     preflight error, a broken audit chain, an agent offline, a failed rehearsal
  2  the command could not run: bad arguments, a file that cannot be read, a database error

Full documentation: README.md (Quick start, CLI reference, Configuration).";

/// `(command path, sections)`; the path is the subcommand names separated by spaces.
const SECTIONS: &[(&str, &str)] = &[
    (
        "inventory",
        "\
Examples:
  lockstep inventory check examples/mirrored.toml

Exit status:
  0  the inventory is valid
  1  it has problems (each printed as FILE:LINE: FIELD: MESSAGE)
  2  the file cannot be read",
    ),
    (
        "runbook",
        "\
Examples:
  lockstep runbook list
  lockstep runbook show upgrade-8.11

Environment:
  LOCKSTEP_RUNBOOKS_DIR  a directory of site runbooks (*.toml) added to the built-in ones",
    ),
    (
        "audit",
        "\
Examples:
  lockstep audit verify --db /var/lib/lockstep/lockstep.db
  lockstep audit export --format csv --out audit.csv",
    ),
    (
        "audit verify",
        "\
Checks every event's hash against the one before it and its Ed25519 signature, the signed head
file kept beside the database, and the append-only guard triggers, so an event changed, removed
or appended by hand (without the signing key) is found; --checkpoints also compares the log with
signed checkpoints held elsewhere, which catches a rewrite even by someone holding the key.

With --export FILE, checks an export written by `lockstep audit export --format bundle` (or the
Audit page's verifiable export) without any database: the chain from its first event, the head
recorded at export (so an appended or removed last event is found), every event's signature and
the head's under the export's public key, and the checkpoints it carries. The verdict names the
key's fingerprint: compare it with the server's, or pass --key with the server's public key
(audit-signing.key.pub, obtained out of band) and the export must be signed by that key.

Examples:
  lockstep audit verify
  lockstep audit verify --db /var/lib/lockstep/lockstep.db
  lockstep audit verify --export change-2041-audit.json
  lockstep audit verify --export change-2041-audit.json --key audit-signing.key.pub
  lockstep audit verify --checkpoints /mnt/syslog-copy/audit-checkpoints.jsonl

Environment:
  LOCKSTEP_DB         the database (default lockstep-data/lockstep.db)
  LOCKSTEP_AUDIT_KEY  the signing key (default audit-signing.key in the database's folder)

Exit status:
  0  the chain is intact (prints the number of events and the last hash)
  1  it is broken (prints the first bad event and what is wrong)
  2  the database cannot be opened, or the export cannot be read or is not an export",
    ),
    (
        "audit acknowledge",
        "\
After a break was investigated: records it (event and kind, every problem found) in one new
signed event that starts a new segment, recreates dropped guard triggers, and lets `lockstep
serve` accept changes again. `audit verify` keeps listing the break as acknowledged.

Examples:
  lockstep audit acknowledge --by ada --reason \"INC-42: test copy restored over the live file\"

Environment:
  LOCKSTEP_DB         the database (default lockstep-data/lockstep.db)
  LOCKSTEP_AUDIT_KEY  the signing key (default audit-signing.key in the database's folder)

Exit status:
  0  acknowledged
  2  the chain is not broken, no reason was given, or the database cannot be opened",
    ),
    (
        "audit export",
        "\
Examples:
  lockstep audit export --format jsonl > audit.jsonl
  lockstep audit export --format csv --run 3f2a… --out change-1234-audit.csv
  lockstep audit export --format bundle --out audit-bundle.json

Environment:
  LOCKSTEP_DB  the database (default lockstep-data/lockstep.db)

Exit status:
  0  written
  2  the database cannot be opened, or --out cannot be written",
    ),
    (
        "backup",
        "\
An online copy: `lockstep serve` may keep running. The copy's audit head file is written beside
it (FILE.audit-head); keep the two together.

Examples:
  lockstep backup /var/backups/lockstep/lockstep-$(date +%F).db
  lockstep backup --db /var/lib/lockstep/lockstep.db /mnt/backup/lockstep.db

Environment:
  LOCKSTEP_DB  the database to copy (default lockstep-data/lockstep.db)

Exit status:
  0  the backup is written
  2  the database does not exist, FILE already exists, or the copy failed",
    ),
    (
        "restore",
        "\
Stop `lockstep serve` first. The backup and its audit chain are checked before anything is
replaced; a backup that does not verify is refused and nothing changes.

Examples:
  lockstep restore /var/backups/lockstep/lockstep-2026-11-27.db --db /var/lib/lockstep/new.db
  lockstep restore --force /var/backups/lockstep/lockstep-2026-11-27.db

Environment:
  LOCKSTEP_DB  the database to restore into (default lockstep-data/lockstep.db)

Exit status:
  0  restored and verified
  2  the backup cannot be restored (named reason), or the database exists and --force is missing",
    ),
    (
        "agent",
        "\
Examples:
  lockstep agent identity          # the thumbprint to give `lockstep-agent trust` on each host
  lockstep agent add --server DC1 --url https://dc1.corp.example:7443 --thumbprint 3F9A…
  lockstep agent health",
    ),
    (
        "agent add",
        "\
Examples:
  lockstep agent add --server DC1 --url https://dc1.corp.example:7443 \\
      --thumbprint 3F9A0C…(64 hex digits, as `lockstep-agent init` printed it)

Environment:
  LOCKSTEP_DB, LOCKSTEP_DATA_DIR  as for `lockstep serve` (or --config / --db)

Exit status:
  0  registered
  2  a bad server name, URL or thumbprint (named), or the database cannot be opened",
    ),
    (
        "agent list",
        "\
Prints one line per agent: server, URL, thumbprint, last status, agent version.

Examples:
  lockstep agent list --config /etc/lockstep/lockstep.toml

",
    ),
    (
        "agent health",
        "\
Examples:
  lockstep agent health --config /etc/lockstep/lockstep.toml

Exit status:
  0  every agent answered
  1  at least one is offline (its line says why)
  2  the database or the orchestrator identity cannot be read",
    ),
    (
        "agent identity",
        "\
Examples:
  lockstep agent identity --config /etc/lockstep/lockstep.toml
  # then, on each Windows host:  lockstep-agent trust <that thumbprint>

",
    ),
    (
        "serve",
        "\
Plain HTTP is allowed only on a loopback address; anywhere else give a certificate (--tls-cert
and --tls-key) or --tls-self-signed. The notifier, the engine's driver and single sign-on start
with it when configured, and so does the facts collector: every registered agent's heartbeat and
facts at start-up and then every [agents] facts_interval_secs (60 by default). Stop it with
Ctrl-C (SIGINT).

Examples:
  lockstep serve                                        # http://127.0.0.1:8080/
  lockstep serve --config /etc/lockstep/lockstep.toml
  lockstep serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem
  LOCKSTEP_LOG_FORMAT=json lockstep serve --config lockstep.toml 2>> /var/log/lockstep.jsonl

Environment (each overrides the configuration file; flags override both):
  LOCKSTEP_LISTEN, LOCKSTEP_DATA_DIR, LOCKSTEP_DB, LOCKSTEP_TLS_CERT, LOCKSTEP_TLS_KEY,
  LOCKSTEP_TLS_SELF_SIGNED, LOCKSTEP_SESSION_IDLE_SECS, LOCKSTEP_SESSION_ABSOLUTE_SECS,
  LOCKSTEP_LOGIN_MAX_FAILURES, LOCKSTEP_LOGIN_LOCKOUT_SECS,
  LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS, LOCKSTEP_NOTIFY_*, LOCKSTEP_SQL_*, LOCKSTEP_PROBES_*, LOCKSTEP_OIDC_*, LOCKSTEP_METRICS_TOKEN(_FILE), LOCKSTEP_LOG_FORMAT,
  LOCKSTEP_FACTS_INTERVAL_SECS, LOCKSTEP_FACTS_STALE_SECS.
  `lockstep config check` shows the effective value of each and where it came from.

Exit status:
  0  stopped by Ctrl-C
  2  the configuration is invalid (the setting is named), or the address or database cannot be
     used",
    ),
    (
        "user",
        "\
Examples:
  lockstep user add olga --role operator
  lockstep user list
  lockstep user disable olga",
    ),
    (
        "user add",
        "\
The password must have at least 8 characters, must not be a commonly chosen one or the account
name. Accounts that sign in through single sign-on are created at their first sign-in instead.

Examples:
  lockstep user add breakglass --role admin
  printf '%s\\n' \"$PASSWORD\" | lockstep user add olga --role operator --password-stdin

Exit status:
  0  created
  2  a bad name, role or password (the rule is named), or the account exists",
    ),
    (
        "user disable",
        "\
Examples:
  lockstep user disable olga

Exit status:
  0  disabled; its sessions ended and its API tokens stopped working
  2  no such account, or the database cannot be opened",
    ),
    (
        "user token",
        "\
The token is printed once; Lockstep keeps only its hash. Send it as `Authorization: Bearer
<token>` to the JSON API (/api/v1).

Examples:
  lockstep user token change-system --label itsm
  curl -H \"Authorization: Bearer $TOKEN\" https://lockstep.corp.example/api/v1/runs

Exit status:
  0  printed
  2  no such account, the account is disabled, or the label is empty",
    ),
    (
        "user list",
        "\
Prints one line per account: name, role, active or disabled (tab-separated).

Examples:
  lockstep user list --config /etc/lockstep/lockstep.toml

",
    ),
    (
        "demo",
        "\
Everything runs on this machine: a simulated Data Center (agents, SQL Server endpoint, web
probes) and the dashboard on plain HTTP. The demo accounts and their passwords are printed at the
first start.

Examples:
  lockstep demo
  lockstep demo --topology clustered --listen 127.0.0.1:9090
  lockstep demo --inventory dc.toml --data-dir /tmp/lockstep-demo

Exit status:
  0  stopped by Ctrl-C
  2  the inventory is invalid or the address cannot be used",
    ),
    (
        "rehearse",
        "\
Examples:
  lockstep rehearse --inventory examples/mirrored.toml --runbook upgrade-8.11
  lockstep rehearse --inventory dc.toml --runbook upgrade-sql-server --param target=2016
  lockstep rehearse --inventory dc.toml --runbook upgrade-8.11 --fault DC1:checkdb-error

Exit status:
  0  the rehearsal succeeded
  1  it failed (the report says where and why)
  2  the inventory, runbook or parameters are invalid",
    ),
    (
        "campaign",
        "\
Examples:
  lockstep campaign plan --inventory dc.toml --target connected=8.11 --target windows=2016 --target sql=2016
  lockstep campaign rehearse --inventory dc.toml --target connected=8.11 --target sql=2016",
    ),
    (
        "config",
        "\
Examples:
  lockstep config check --config /etc/lockstep/lockstep.toml",
    ),
    (
        "config check",
        "\
Examples:
  lockstep config check
  lockstep config check --config /etc/lockstep/lockstep.toml
  LOCKSTEP_LISTEN=0.0.0.0:8443 lockstep config check --config lockstep.toml

Environment:
  every LOCKSTEP_* setting `lockstep serve` reads (printed with its source)

Exit status:
  0  the configuration is valid (every setting printed)
  1  it is not (the setting or variable at fault is named on standard error)",
    ),
    (
        "completions",
        "\
Examples:
  lockstep completions bash > /etc/bash_completion.d/lockstep
  lockstep completions zsh > \"${fpath[1]}/_lockstep\"
  lockstep completions fish > ~/.config/fish/completions/lockstep.fish
  lockstep completions powershell >> $PROFILE",
    ),
];

/// The table's command paths (for the test that keeps it in step with the commands).
pub fn documented_paths() -> Vec<&'static str> {
    SECTIONS.iter().map(|(p, _)| *p).collect()
}

fn attach(cmd: clap::Command, path: &[&str], text: &'static str) -> clap::Command {
    match path {
        [] => {
            // Keep what the command already says after its help (e.g. rehearse's fault list).
            let before = cmd
                .get_after_long_help()
                .or(cmd.get_after_help())
                .map(|s| s.to_string());
            match before {
                Some(b) => cmd.after_long_help(format!("{b}\n\n{text}")),
                None => cmd.after_long_help(text),
            }
        }
        [first, rest @ ..] => {
            // A renamed command must not make `lockstep` panic at start; the test notices.
            if cmd.find_subcommand(first).is_some() {
                cmd.mut_subcommand(*first, |c| attach(c, rest, text))
            } else {
                cmd
            }
        }
    }
}

/// The `lockstep` command with the man-page sections.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().after_long_help(TOP);
    for (path, text) in SECTIONS {
        let parts: Vec<&str> = path.split(' ').collect();
        cmd = attach(cmd, &parts, text.trim_end());
    }
    cmd
}

/// Parses the process's arguments (clap's own exit on `--help`, `--version` and usage errors).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
