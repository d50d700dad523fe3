//! What the in-process rehearsal tests share: options for one of the example Data Centers with a
//! fresh database and simulator folder, and a rehearsal driven to its end.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lockstep::rehearsal::{Fault, Options, Rehearsal, Report};

/// The example inventory `examples/{topology}.toml`.
pub fn inventory(topology: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"))
}

/// Options to rehearse `runbook` with `params` on the example `topology`, with `faults`
/// (`SERVER:KIND`); the folder holds the run's database and the simulated hosts.
pub fn options(
    topology: &str,
    runbook: &str,
    params: &[(&str, &str)],
    faults: &[&str],
) -> (Options, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        inventory: inventory(topology),
        runbook: runbook.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        faults: faults.iter().map(|f| f.parse::<Fault>().unwrap()).collect(),
        db: dir.path().join("rehearsal.db"),
        sim_dir: dir.path().join("sim"),
        runbooks_dir: None,
    };
    (o, dir)
}

/// Starts the rehearsal and drives it to its end.
pub async fn rehearse(o: Options) -> (Rehearsal, Report) {
    let r = Rehearsal::start(o).await.unwrap();
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    (r, report)
}
