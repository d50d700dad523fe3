//! Plan expansion: runbook × inventory × parameters → a DAG of concrete steps on concrete hosts.
//!
//! Deterministic: the same inputs give the same plan, byte for byte. Each runbook step becomes
//! zero, one or several planned steps:
//! - no `target`: one step, id `<step>`, not bound to a server;
//! - `target` with `pick = "one"`: one step, id `<step>`, on the first matching server;
//! - `target` (default `pick = "each"`): one step per matching server, id `<step>@<SERVER>`.
//!
//! Dependencies are resolved per planned step: `"x"` means every instance of `x`, `"x@host"` the
//! instance on the same server, `"x@side"` the instances on the same side, `"*"` everything
//! declared above. When a dependency has no instance (its condition is false for this Data
//! Center, e.g. redirects on a stand-alone server), the step depends on what that dependency
//! depended on instead, so the ordering the seed requires still holds through the gap.
//!
//! Joins keep the plan linear in the estate. When a step fanned out over many servers depends on
//! every instance of another (or on everything above), one edge per pair grows with the square
//! of the estate: 2,003 servers planned to 97 MB of JSON. Instead, past [`JOIN_MIN_EDGES`] pairs,
//! a [`StepKind::Barrier`] step (`<step>.all`, `<step>.all-<side>`, `<step>.after-all`) depends
//! on the instances and the fanned-out steps depend on it alone. Below that, small Data Centers
//! keep their direct edges, which read better.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use super::inventory::{Inventory, Server, ServerRole, Side, SqlServerVersion, WindowsVersion};
use super::operation::Operation;
use super::plan::{Plan, PlannedStep, RetryPolicy, StepKind};
use super::runbook::raw::{resolve_params, step_edges};
use super::runbook::{Condition, Dependency, Pick, RunFrom, Runbook, Selector, StepTemplate};
use super::template::{self, common_name, datatransfer_ssl, side_of, Scope};

/// Why a runbook cannot be expanded for an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A `--param` that is unknown, not allowed, or missing.
    #[error("{0}")]
    Parameter(String),
    /// A step marked `required` found no server to run on.
    #[error("step `{step}` needs a server matching {selector}, and the inventory has none")]
    NoTarget { step: String, selector: String },
    /// A template could not be filled for a server (e.g. no Registry server on the other side).
    #[error("step `{step}`{}: {message}", host.as_ref().map(|h| format!(" on {h}")).unwrap_or_default())]
    Template {
        step: String,
        host: Option<String>,
        message: String,
    },
}

/// Pairs (dependents × dependencies) from which a join replaces the direct edges: 8 servers
/// waiting for 8 keep their 64 edges; 1,000 waiting for 1,000 get 2,000 instead of a million.
pub const JOIN_MIN_EDGES: usize = 64;

/// The joins made so far, by the ids they join (one join serves every step that waits for the
/// same set), and their members (so "everything above" still sees what a join consumed).
#[derive(Default)]
struct Joins {
    by_members: HashMap<Vec<String>, String>,
    members: HashMap<String, Vec<String>>,
    /// The join of every instance of a runbook step (on one side, or on both).
    by_template: HashMap<(usize, Option<Side>), String>,
    /// The join of everything above a `"*"` step.
    after_all: HashMap<usize, String>,
    /// The joins in the order made, with the runbook position they follow.
    made: Vec<(usize, PlannedStep)>,
}

impl Joins {
    /// The join for `members` (in a stable order), made on first use: `id` and `title` name it,
    /// `after` is the runbook position of the steps it joins, `like` the step whose section and
    /// phase it belongs to.
    fn join(
        &mut self,
        members: Vec<String>,
        id: String,
        title: String,
        after: usize,
        like: &StepTemplate,
    ) -> String {
        if let Some(id) = self.by_members.get(&members) {
            return id.clone();
        }
        let step = PlannedStep {
            id: id.clone(),
            title,
            section: like.section.clone(),
            phase: like.phase.clone(),
            kind: StepKind::Barrier,
            host: None,
            depends_on: members.clone(),
            instructions: format!(
                "Nothing to do: this marker waits for the {} steps before it, so the steps after \
                 it depend on it alone instead of each on all of them.",
                members.len()
            ),
            operation: Operation::None,
            postcondition: None,
            undo: None,
            gate: None,
            retry: RetryPolicy::default(),
            timeout_secs: 60,
            estimate_secs: 0,
        };
        self.members.insert(id.clone(), members.clone());
        self.by_members.insert(members, id.clone());
        self.made.push((after, step));
        id
    }

    /// Whether a step fanned out `fan` times waiting for `members` ids should wait for a join.
    fn worth_it(fan: usize, members: usize) -> bool {
        members >= 2 && fan >= 2 && fan.saturating_mul(members) >= JOIN_MIN_EDGES
    }
}

/// One planned instance while expanding: its id and the server it is about.
struct Instance<'a> {
    id: String,
    about: Option<&'a Server>,
}

/// Expands `runbook` over `inventory` with `params` (`--param` values; defaults fill the rest).
pub fn expand(
    runbook: &Runbook,
    inventory: &Inventory,
    params: &BTreeMap<String, String>,
) -> Result<Plan, PlanError> {
    let params = resolve_params(runbook, params).map_err(PlanError::Parameter)?;
    let order = template_order(runbook);
    let mut instances: Vec<Vec<Instance>> = (0..runbook.steps.len()).map(|_| Vec::new()).collect();
    let mut steps: Vec<(usize, usize, PlannedStep)> = Vec::new();
    let mut deps_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut sinks_above: HashMap<usize, Vec<String>> = HashMap::new();
    let mut joins = Joins::default();

    for &t in &order {
        let tpl = &runbook.steps[t];
        if !condition_holds(&tpl.when, inventory, &params, tpl)? {
            continue;
        }
        let targets: Vec<Option<&Server>> = match &tpl.target {
            None => vec![None],
            Some(sel) => {
                let mut found = select(sel, inventory, &params, tpl)?;
                if sel.pick == Some(Pick::One) {
                    found.truncate(1);
                }
                if found.is_empty() && sel.required == Some(true) {
                    return Err(PlanError::NoTarget {
                        step: tpl.id.clone(),
                        selector: describe_selector(sel),
                    });
                }
                found.into_iter().map(Some).collect()
            }
        };
        let fanned = tpl
            .target
            .as_ref()
            .is_some_and(|s| s.pick != Some(Pick::One));
        let fan = targets.len();
        // Where "run from elsewhere" steps run depends on the template alone: chosen once, not
        // once per server (it sorts the estate).
        let elsewhere = match tpl.target.as_ref().and_then(|s| s.run_from) {
            Some(RunFrom::Elsewhere) => vantage(
                inventory,
                &tpl.target
                    .as_ref()
                    .map(|s| s.roles.clone())
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        for (n, about) in targets.into_iter().enumerate() {
            let id = match (fanned, about) {
                (true, Some(s)) => format!("{}@{}", tpl.id, s.name),
                _ => tpl.id.clone(),
            };
            let runs_on = match tpl.target.as_ref().and_then(|s| s.run_from) {
                Some(RunFrom::Elsewhere) => elsewhere,
                _ => about,
            };
            let mut deps = BTreeSet::new();
            for d in &tpl.depends_on {
                let mut cx = DepCx {
                    rb: runbook,
                    instances: &instances,
                    deps_of: &deps_of,
                    sinks_above: &mut sinks_above,
                    joins: &mut joins,
                    fan,
                };
                resolve_dep(&mut cx, d, t, about, &mut deps);
            }
            let scope = Scope::Bind {
                inventory,
                host: about,
                params: &params,
                decls: &runbook.parameters,
            };
            let bind = |v: &Option<toml::Value>| -> Result<Option<Operation>, PlanError> {
                v.as_ref()
                    .map(|v| template::to_operation(v, &scope))
                    .transpose()
                    .map_err(|message| PlanError::Template {
                        step: tpl.id.clone(),
                        host: about.map(|s| s.name.clone()),
                        message,
                    })
            };
            let text = |s: &str| {
                template::fill_text(s, &scope).map_err(|message| PlanError::Template {
                    step: tpl.id.clone(),
                    host: about.map(|s| s.name.clone()),
                    message,
                })
            };
            let instructions = text(&tpl.instructions)?;
            let operation = match bind(&tpl.operation)? {
                Some(op) => op,
                None if tpl.kind == super::plan::StepKind::Manual => Operation::Manual {
                    instructions: instructions.clone(),
                },
                None => Operation::None,
            };
            let planned = PlannedStep {
                id: id.clone(),
                title: text(&tpl.title)?,
                section: tpl.section.clone(),
                phase: tpl.phase.clone(),
                kind: tpl.kind,
                host: runs_on.map(|s| s.name.clone()),
                depends_on: deps.iter().cloned().collect(),
                instructions,
                operation,
                postcondition: bind(&tpl.postcondition)?,
                undo: bind(&tpl.undo)?,
                gate: tpl.gate.clone(),
                retry: tpl.retry.clone(),
                timeout_secs: tpl.timeout_secs,
                estimate_secs: tpl.estimate_secs,
            };
            deps_of.insert(id.clone(), deps);
            instances[t].push(Instance { id, about });
            steps.push((t, n, planned));
        }
    }
    // A join sorts right after the instances it joins (its position's last), before what waits.
    steps.extend(
        joins
            .made
            .into_iter()
            .map(|(after, join)| (after, usize::MAX, join)),
    );
    Ok(Plan {
        runbook: runbook.id.clone(),
        runbook_title: runbook.title.clone(),
        inventory: inventory.name.clone(),
        topology: inventory.topology,
        params,
        steps: reduce(topological(steps)),
    })
}

/// Drops each dependency that another dependency of the same step already implies (transitive
/// reduction): the ordering is unchanged, and the printed plan says only what matters.
///
/// Steps arrive in topological order, so one pass suffices. Ancestor sets are bit sets over step
/// positions: a 200-server estate has about 1,500 steps, and sets of id strings made this
/// quadratic in string copies.
fn reduce(mut steps: Vec<PlannedStep>) -> Vec<PlannedStep> {
    let words = steps.len().div_ceil(64);
    let pos: HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let has = |set: &[u64], i: usize| set[i / 64] & (1 << (i % 64)) != 0;
    let mut ancestors: Vec<Vec<u64>> = Vec::with_capacity(steps.len());
    for s in &mut steps {
        let deps: Vec<usize> = s
            .depends_on
            .iter()
            .filter_map(|d| pos.get(d).copied())
            // Topological order puts every dependency earlier; anything else is left as is.
            .filter(|&d| d < ancestors.len())
            .collect();
        let mut implied = vec![0u64; words];
        for &d in &deps {
            for (w, a) in implied.iter_mut().zip(&ancestors[d]) {
                *w |= a;
            }
        }
        let mut mine = implied.clone();
        for &d in &deps {
            mine[d / 64] |= 1 << (d % 64);
        }
        s.depends_on
            .retain(|d| pos.get(d).is_none_or(|&i| !has(&implied, i)));
        ancestors.push(mine);
    }
    steps
}

/// Runbook steps in dependency order, file order among equals.
fn template_order(rb: &Runbook) -> Vec<usize> {
    let edges = step_edges(&rb.steps);
    let mut indegree: Vec<usize> = edges.iter().map(|e| e.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); rb.steps.len()];
    for (i, e) in edges.iter().enumerate() {
        for &j in e {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..rb.steps.len())
        .filter(|&i| indegree[i] == 0)
        .map(Reverse)
        .collect();
    let mut out = Vec::new();
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    out
}

/// Planned steps in a topological order: a step is ready when all it depends on is placed;
/// among ready steps, the one earliest in the runbook (then in server order) goes first.
fn topological(steps: Vec<(usize, usize, PlannedStep)>) -> Vec<PlannedStep> {
    let pos: HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, (_, _, s))| (s.id.clone(), i))
        .collect();
    let mut indegree: Vec<usize> = steps.iter().map(|(_, _, s)| s.depends_on.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, (_, _, s)) in steps.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(&j) = pos.get(d) {
                dependents[j].push(i);
            }
        }
    }
    let key = |i: usize| (steps[i].0, steps[i].1, i);
    let mut ready: BinaryHeap<Reverse<(usize, usize, usize)>> = (0..steps.len())
        .filter(|&i| indegree[i] == 0)
        .map(|i| Reverse(key(i)))
        .collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(key(d)));
            }
        }
    }
    let mut slots: Vec<Option<PlannedStep>> = steps.into_iter().map(|(_, _, s)| Some(s)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// What resolving a dependency reads (the expansion so far) and adds to (the joins).
struct DepCx<'r, 'a> {
    rb: &'r Runbook,
    instances: &'r [Vec<Instance<'a>>],
    deps_of: &'r HashMap<String, BTreeSet<String>>,
    sinks_above: &'r mut HashMap<usize, Vec<String>>,
    joins: &'r mut Joins,
    /// How many instances the dependent step fans out to (decides whether a join pays).
    fan: usize,
}

/// Adds to `out` the planned ids that step template `t`, about server `about`, depends on via `d`.
fn resolve_dep(
    cx: &mut DepCx,
    d: &Dependency,
    t: usize,
    about: Option<&Server>,
    out: &mut BTreeSet<String>,
) {
    let rb = cx.rb;
    let Some(dep_id) = d.step_id() else {
        // "*": the sinks among everything planned from steps declared above (except "*" steps).
        // The answer depends only on `t` (every step above is fully planned by then), so it is
        // worked out once per template, not once per fanned-out instance.
        let (instances, deps_of, joins) = (cx.instances, cx.deps_of, &*cx.joins);
        let sinks = cx.sinks_above.entry(t).or_insert_with(|| {
            let above: Vec<&Instance> = (0..t)
                .filter(|&j| !rb.steps[j].depends_on.contains(&Dependency::Everything))
                .flat_map(|j| instances[j].iter())
                .collect();
            let mut depended: HashSet<&String> = above
                .iter()
                .flat_map(|i| deps_of.get(&i.id).into_iter().flatten())
                .collect();
            // What a join consumed counts as depended on, as if the edges went direct (each
            // join once: a thousand steps wait for the same one).
            let consumed: Vec<&String> = depended
                .iter()
                .filter_map(|d| joins.members.get(*d))
                .flatten()
                .collect();
            depended.extend(consumed);
            above
                .iter()
                .filter(|i| !depended.contains(&i.id))
                .map(|i| i.id.clone())
                .collect()
        });
        if Joins::worth_it(cx.fan, sinks.len()) {
            if let Some(id) = cx.joins.after_all.get(&t) {
                out.insert(id.clone());
                return;
            }
            let tpl = &rb.steps[t];
            let id = cx.joins.join(
                sinks.clone(),
                format!("{}.after-all", tpl.id),
                format!("Everything before {} is done", tpl.id),
                t.saturating_sub(1),
                tpl,
            );
            cx.joins.after_all.insert(t, id.clone());
            out.insert(id);
        } else {
            out.extend(sinks.iter().cloned());
        }
        return;
    };
    let Some(j) = rb.steps.iter().position(|s| s.id == dep_id) else {
        return; // refused when the runbook was loaded
    };
    let matching: Vec<&Instance> = cx.instances[j]
        .iter()
        .filter(|i| match (d, about, i.about) {
            (Dependency::SameHost(_), Some(a), Some(b)) => a.name == b.name,
            (Dependency::SameSide(_), Some(a), Some(b)) => side_of(a) == side_of(b),
            (Dependency::SameSide(_), Some(_), None) => true,
            _ => true,
        })
        .collect();
    if matching.is_empty() {
        // Pass through: depend on what the missing step would have depended on.
        for dd in &rb.steps[j].depends_on {
            resolve_dep(cx, dd, j, about, out);
        }
    } else if !matches!(d, Dependency::SameHost(_)) && Joins::worth_it(cx.fan, matching.len()) {
        let tpl = &rb.steps[j];
        let side = match (d, about) {
            (Dependency::SameSide(_), Some(a)) => Some(side_of(a)),
            _ => None,
        };
        // Every instance of the dependent step asks for the same join: answer from the memo
        // without listing the members again.
        if let Some(id) = cx.joins.by_template.get(&(j, side)) {
            out.insert(id.clone());
            return;
        }
        let (id, title) = match (d, about) {
            (Dependency::SameSide(_), Some(a)) => (
                format!("{}.all-{}", tpl.id, side_of(a)),
                format!("Every {} step on the {} side is done", tpl.id, side_of(a)),
            ),
            _ => (
                format!("{}.all", tpl.id),
                format!("Every {} step is done", tpl.id),
            ),
        };
        let members = matching.into_iter().map(|i| i.id.clone()).collect();
        let id = cx.joins.join(members, id, title, j, tpl);
        cx.joins.by_template.insert((j, side), id.clone());
        out.insert(id);
    } else {
        out.extend(matching.into_iter().map(|i| i.id.clone()));
    }
}

fn condition_holds(
    c: &Condition,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    tpl: &StepTemplate,
) -> Result<bool, PlanError> {
    if !c.topology.is_empty() && !c.topology.contains(&inv.topology) {
        return Ok(false);
    }
    for (name, values) in &c.params {
        if !params.get(name).is_some_and(|v| values.contains(v)) {
            return Ok(false);
        }
    }
    if let Some(sel) = &c.exists {
        if select(sel, inv, params, tpl)?.is_empty() {
            return Ok(false);
        }
    }
    if let Some(sel) = &c.absent {
        if !select(sel, inv, params, tpl)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Servers matching a selector: primary side first, then by name.
fn select<'a>(
    sel: &Selector,
    inv: &'a Inventory,
    params: &BTreeMap<String, String>,
    tpl: &StepTemplate,
) -> Result<Vec<&'a Server>, PlanError> {
    let scope = Scope::Bind {
        inventory: inv,
        host: None,
        params,
        decls: &[],
    };
    let fill = |s: &Option<String>| -> Result<Option<String>, PlanError> {
        s.as_ref()
            .map(|s| template::fill_text(s, &scope))
            .transpose()
            .map_err(|message| PlanError::Template {
                step: tpl.id.clone(),
                host: None,
                message,
            })
    };
    let name = fill(&sel.name)?;
    let windows_below = match fill(&sel.windows_below)? {
        None => None,
        Some(w) => Some(serde_json::from_value::<WindowsVersion>(serde_json::Value::String(w.clone())).map_err(|_| {
            PlanError::Parameter(format!("`{w}` is not a Windows Server release (\"2008 R2\", \"2012 R2\", \"2016\")"))
        })?),
    };
    let sql_below = match fill(&sel.sql_below)? {
        None => None,
        Some(w) => Some(
            serde_json::from_value::<SqlServerVersion>(serde_json::Value::String(w.clone()))
                .map_err(|_| {
                    PlanError::Parameter(format!(
                        "`{w}` is not a SQL Server release (\"2012 SP4\", \"2014 SP2\", \"2016\")"
                    ))
                })?,
        ),
    };
    let mut out: Vec<&Server> = inv
        .servers
        .iter()
        .filter(|s| sel.roles.is_empty() || sel.roles.iter().any(|r| s.has(*r)))
        .filter(|s| sel.all_roles.iter().all(|r| s.has(*r)))
        .filter(|s| !sel.not_roles.iter().any(|r| s.has(*r)))
        .filter(|s| sel.side.is_none_or(|side| side_of(s) == side))
        .filter(|s| sel.pair.as_ref().is_none_or(|p| s.pair.as_ref() == Some(p)))
        .filter(|s| name.as_ref().is_none_or(|n| &s.name == n))
        .filter(|s| sel.web_services.is_none_or(|w| s.hosts_web_services() == w))
        .filter(|s| sel.database.is_none_or(|d| s.has_database() == d))
        .filter(|s| sel.cn_differs.is_none_or(|d| cn_differs(s) == d))
        .filter(|s| {
            sel.datatransfer_ssl
                .is_none_or(|d| s.has(ServerRole::DatatransferApi) && datatransfer_ssl(s) == d)
        })
        .filter(|s| sel.certificate.is_none_or(|c| s.certificate.is_some() == c))
        .filter(|s| windows_below.is_none_or(|w| s.windows < w))
        .filter(|s| sql_below.is_none_or(|v| s.sql_server.is_some_and(|have| have < v)))
        .collect();
    out.sort_by(|a, b| (side_of(a), &a.name).cmp(&(side_of(b), &b.name)));
    Ok(out)
}

/// The certificate's common name differs from the server's FQDN (case-insensitive, as DNS is).
pub fn cn_differs(s: &Server) -> bool {
    s.certificate.is_some() && !common_name(s).eq_ignore_ascii_case(&s.fqdn)
}

/// A server hosting none of `roles` to run a check from: a server without Web Services first
/// (primary side first, then by name), else any; `None` (Lockstep itself) when every server hosts one.
fn vantage<'a>(inv: &'a Inventory, roles: &[ServerRole]) -> Option<&'a Server> {
    let mut c: Vec<&Server> = inv
        .servers
        .iter()
        .filter(|s| !roles.iter().any(|r| s.has(*r)))
        .collect();
    c.sort_by(|a, b| {
        (a.hosts_web_services(), side_of(a), &a.name).cmp(&(
            b.hosts_web_services(),
            side_of(b),
            &b.name,
        ))
    });
    c.first().copied()
}

fn describe_selector(sel: &Selector) -> String {
    let mut parts = Vec::new();
    if !sel.roles.is_empty() {
        parts.push(format!(
            "roles {}",
            sel.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("|")
        ));
    }
    if let Some(s) = sel.side {
        parts.push(format!("side {s}"));
    }
    if let Some(n) = &sel.name {
        parts.push(format!("name {n}"));
    }
    if parts.is_empty() {
        "its target".into()
    } else {
        parts.join(", ")
    }
}

/// The side a planned step's server is on (for tests and rendering).
pub fn side_name(s: &Server) -> Side {
    side_of(s)
}
