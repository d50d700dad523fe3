//! A drawing of a Data Center's topology — sides, servers with their roles, directory pairs
//! across the sides — computed here as plain coordinates; `templates/partials/topology.html`
//! turns them into SVG (askama escapes every name).
//!
//! Every role and every version gets its own line and a box is as tall as its lines, so no text
//! runs out of its box whatever the number of roles; the side boxes grow with their servers.

use std::collections::BTreeMap;

use crate::knowledge::inventory::{Inventory, Side};

pub struct Drawing {
    pub width: u32,
    pub height: u32,
    pub sides: Vec<SideBox>,
    pub servers: Vec<ServerBox>,
    pub links: Vec<Link>,
}

pub struct SideBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub label: String,
}

pub struct ServerBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub name: String,
    /// The roles, then the versions, one text line each.
    pub lines: Vec<Line>,
    /// The agent's health (`online`, `offline`, `unknown`, `not enrolled`), a CSS class too.
    pub health: String,
    /// [`ServerBox::health`] as a CSS class (`agent-not-enrolled`).
    pub health_class: String,
    /// Whether a run's step is moving or waiting on this server now.
    pub busy: bool,
    /// The state of the run's step on this server ([`StepState::class`]), empty for none.
    pub step_state: &'static str,
    /// The step's state and whole title in words (the box's line may be cut), for `<title>`.
    pub step_words: String,
}

/// One line of text inside a server box, at its baseline `y`.
pub struct Line {
    pub y: u32,
    pub text: String,
    /// `roles`, `version` or `step`.
    pub class: &'static str,
}

/// What the drawing shows of a server beyond the inventory: versions from the agent's latest
/// facts and the agent's health.
#[derive(Debug, Clone, Default)]
pub struct ServerDetail {
    /// "Connected 8.11", "Windows Server 2016", "SQL Server 2016" (from facts); empty to use
    /// the inventory's recorded versions.
    pub versions: Vec<String>,
    pub health: String,
    /// While a run is active: the step on this server that is moving, waiting for a person,
    /// failed or last done.
    pub step: Option<StepOnServer>,
}

/// A run's step on a server, as the drawing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOnServer {
    pub title: String,
    pub state: StepState,
}

/// What a server's step is doing, in the four states a person reads at a glance. Each has a
/// word and a sign, so the state never rests on colour alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepState {
    Done,
    Running,
    Waiting,
    Failed,
}

impl StepState {
    pub fn word(self) -> &'static str {
        match self {
            StepState::Running => "running",
            StepState::Waiting => "waiting for a person",
            StepState::Failed => "failed",
            StepState::Done => "done",
        }
    }

    pub fn sign(self) -> &'static str {
        match self {
            StepState::Running => "▶",
            StepState::Waiting => "‖",
            StepState::Failed => "✖",
            StepState::Done => "✔",
        }
    }

    /// A CSS class and `data-step` value.
    pub fn class(self) -> &'static str {
        match self {
            StepState::Running => "running",
            StepState::Waiting => "waiting",
            StepState::Failed => "failed",
            StepState::Done => "done",
        }
    }
}

impl StepOnServer {
    /// "✔ done: Stop Data Center services".
    pub fn words(&self) -> String {
        format!(
            "{} {}: {}",
            self.state.sign(),
            self.state.word(),
            self.title
        )
    }
}

/// A dashed line joining the two members of a pair.
pub struct Link {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
    pub label: String,
}

const BOX_W: u32 = 240;
/// Name line plus padding; each further line adds [`LINE_H`].
const BOX_BASE_H: u32 = 28;
const LINE_H: u32 = 14;
/// Characters of a step's words that fit across a box at 10 px.
const STEP_CHARS: usize = 36;
const GAP: u32 = 14;
const COL_GAP: u32 = 120;
const PAD: u32 = 20;
const HEAD: u32 = 28;

/// The drawing from the inventory alone.
pub fn draw(inv: &Inventory) -> Drawing {
    draw_with(inv, &BTreeMap::new())
}

fn lines_of(
    s: &crate::knowledge::inventory::Server,
    detail: Option<&ServerDetail>,
) -> Vec<(String, &'static str)> {
    let mut lines: Vec<(String, &'static str)> = s
        .roles
        .iter()
        .map(|r| (r.as_str().replace('_', " "), "roles"))
        .collect();
    match detail.filter(|d| !d.versions.is_empty()) {
        Some(d) => lines.extend(d.versions.iter().map(|v| (v.clone(), "version"))),
        None => {
            lines.push((format!("Connected {}", s.connected_version), "version"));
            lines.push((format!("Windows {}", s.windows.as_str()), "version"));
        }
    }
    if let Some(step) = detail
        .and_then(|d| d.step.as_ref())
        .map(StepOnServer::words)
    {
        // A step title can be long: cut it to the box (the title element has it whole).
        let short: String = if step.chars().count() > STEP_CHARS {
            let mut t: String = step.chars().take(STEP_CHARS - 1).collect();
            t.push('…');
            t
        } else {
            step.clone()
        };
        lines.push((short, "step"));
    }
    lines
}

fn box_h(lines: usize) -> u32 {
    BOX_BASE_H + lines as u32 * LINE_H
}

/// The drawing with each server's versions from facts and its agent's health (`detail` by
/// server name; servers missing from it show the inventory's versions).
pub fn draw_with(inv: &Inventory, detail: &BTreeMap<String, ServerDetail>) -> Drawing {
    let columns: Vec<(String, Vec<&crate::knowledge::inventory::Server>)> = match inv.topology {
        crate::knowledge::inventory::Topology::Standalone => {
            vec![("Data Center".to_string(), inv.servers.iter().collect())]
        }
        _ => [Side::Primary, Side::Secondary]
            .into_iter()
            .map(|side| {
                let mut v: Vec<_> = inv
                    .servers
                    .iter()
                    .filter(|s| s.side == Some(side))
                    .collect();
                v.sort_by(|a, b| (a.pair.as_deref(), &a.name).cmp(&(b.pair.as_deref(), &b.name)));
                (format!("{side} side"), v)
            })
            .collect(),
    };
    let col_h = columns
        .iter()
        .map(|(_, v)| {
            v.iter()
                .map(|s| box_h(lines_of(s, detail.get(&s.name)).len()) + GAP)
                .sum::<u32>()
        })
        .max()
        .unwrap_or(0)
        .max(box_h(2) + GAP)
        + HEAD
        + GAP;
    let mut drawing = Drawing {
        width: PAD * 2
            + columns.len() as u32 * (BOX_W + 2 * GAP)
            + (columns.len() as u32 - 1) * COL_GAP,
        height: PAD * 2 + col_h,
        sides: Vec::new(),
        servers: Vec::new(),
        links: Vec::new(),
    };
    let mut placed: Vec<(String, Option<String>, u32, u32, usize)> = Vec::new();
    for (ci, (label, servers)) in columns.iter().enumerate() {
        let x = PAD + ci as u32 * (BOX_W + 2 * GAP + COL_GAP);
        drawing.sides.push(SideBox {
            x,
            y: PAD,
            w: BOX_W + 2 * GAP,
            h: col_h,
            label: label.clone(),
        });
        let mut by = PAD + HEAD;
        for s in servers.iter() {
            let bx = x + GAP;
            let d = detail.get(&s.name);
            let lines = lines_of(s, d);
            let h = box_h(lines.len());
            drawing.servers.push(ServerBox {
                x: bx,
                y: by,
                w: BOX_W,
                h,
                name: s.name.clone(),
                lines: lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (text, class))| Line {
                        y: by + 18 + (i as u32 + 1) * LINE_H,
                        text,
                        class,
                    })
                    .collect(),
                health: d
                    .map(|d| d.health.clone())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "unknown".into()),
                health_class: String::new(),
                busy: d
                    .and_then(|d| d.step.as_ref())
                    .is_some_and(|s| matches!(s.state, StepState::Running | StepState::Waiting)),
                step_state: d
                    .and_then(|d| d.step.as_ref())
                    .map_or("", |s| s.state.class()),
                step_words: d
                    .and_then(|d| d.step.as_ref())
                    .map(StepOnServer::words)
                    .unwrap_or_default(),
            });
            if let Some(b) = drawing.servers.last_mut() {
                b.health_class = format!("agent-{}", b.health.replace(' ', "-"));
            }
            placed.push((s.name.clone(), s.pair.clone(), bx, by + h / 2, ci));
            by += h + GAP;
        }
    }
    for (i, a) in placed.iter().enumerate() {
        for b in placed.iter().skip(i + 1) {
            if a.1.is_some() && a.1 == b.1 && a.4 != b.4 {
                drawing.links.push(Link {
                    x1: a.2 + BOX_W,
                    y1: a.3,
                    x2: b.2,
                    y2: b.3,
                    label: a.1.clone().unwrap_or_default(),
                });
            }
        }
    }
    drawing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Inventory {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        Inventory::load(&path).expect("example inventory parses")
    }

    #[test]
    fn a_clustered_data_center_has_two_sides_and_its_pairs_are_joined_across_them() {
        let inv = example("clustered.toml");
        let d = draw(&inv);
        assert_eq!(d.sides.len(), 2);
        assert_eq!(d.servers.len(), inv.servers.len());
        let pairs: std::collections::BTreeSet<&str> = inv
            .servers
            .iter()
            .filter_map(|s| s.pair.as_deref())
            .collect();
        assert_eq!(d.links.len(), pairs.len(), "one line per directory pair");
        for l in &d.links {
            assert!(
                l.x1 < l.x2,
                "pairs run from the primary to the secondary side"
            );
        }
        for b in &d.servers {
            assert!(
                b.x + b.w <= d.width && b.y + b.h <= d.height,
                "{} is inside the drawing",
                b.name
            );
        }
    }

    #[test]
    fn every_line_stays_inside_its_box_whatever_the_number_of_roles() {
        let mut inv = example("clustered.toml");
        // Give one server every role any server has.
        let all: Vec<_> = inv.servers.iter().flat_map(|s| s.roles.clone()).collect();
        inv.servers[0].roles = all.iter().cycle().take(12).cloned().collect();
        let mut detail = BTreeMap::new();
        detail.insert(
            inv.servers[1].name.clone(),
            ServerDetail {
                versions: vec![
                    "Connected 8.11".into(),
                    "Windows Server 2016".into(),
                    "SQL Server 2016".into(),
                ],
                health: "online".into(),
                step: Some(StepOnServer {
                    title: "Upgrade the Registration Master with Data Center Setup".into(),
                    state: StepState::Waiting,
                }),
            },
        );
        let d = draw_with(&inv, &detail);
        for b in &d.servers {
            assert!(b.y + b.h <= d.height, "{} is inside the drawing", b.name);
            for l in &b.lines {
                assert!(
                    l.y > b.y && l.y + 4 <= b.y + b.h,
                    "`{}` of {} is inside its box",
                    l.text,
                    b.name
                );
                // 10 px text is at most about 6 px a character.
                assert!(
                    l.text.chars().count() * 6 <= (b.w - 16) as usize,
                    "`{}` fits across",
                    l.text
                );
            }
        }
        let first = &d
            .servers
            .iter()
            .find(|b| b.name == inv.servers[0].name)
            .unwrap();
        let roles = inv.servers[0].roles.len();
        assert!(roles >= 3, "the test gives one server several roles");
        assert_eq!(
            first.lines.iter().filter(|l| l.class == "roles").count(),
            roles
        );
        let second = &d
            .servers
            .iter()
            .find(|b| b.name == inv.servers[1].name)
            .unwrap();
        assert_eq!(second.health, "online");
        assert!(second.lines.iter().any(|l| l.text == "SQL Server 2016"));
        // Boxes of one side never overlap.
        for a in &d.servers {
            for b in &d.servers {
                if a.name != b.name && a.x == b.x {
                    assert!(
                        a.y + a.h <= b.y || b.y + b.h <= a.y,
                        "{} and {} overlap",
                        a.name,
                        b.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_stand_alone_data_center_is_one_box_of_servers() {
        let d = draw(&example("standalone.toml"));
        assert_eq!(d.sides.len(), 1);
        assert!(d.links.is_empty());
    }
}
