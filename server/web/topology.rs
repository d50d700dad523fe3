//! A drawing of a Data Center's topology — sides, servers with their roles, directory pairs
//! across the sides — computed here as plain coordinates; `templates/partials/topology.html`
//! turns them into SVG (askama escapes every name).

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
    pub roles: String,
    pub version: String,
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
const BOX_H: u32 = 56;
const GAP: u32 = 14;
const COL_GAP: u32 = 120;
const PAD: u32 = 20;
const HEAD: u32 = 28;

pub fn draw(inv: &Inventory) -> Drawing {
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
    let rows = columns
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(1) as u32;
    let col_h = HEAD + rows * (BOX_H + GAP) + GAP;
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
        for (ri, s) in servers.iter().enumerate() {
            let bx = x + GAP;
            let by = PAD + HEAD + ri as u32 * (BOX_H + GAP);
            let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
            drawing.servers.push(ServerBox {
                x: bx,
                y: by,
                w: BOX_W,
                h: BOX_H,
                name: s.name.clone(),
                roles: roles.join(", "),
                version: format!("{} · Windows {}", s.connected_version, s.windows.as_str()),
            });
            placed.push((s.name.clone(), s.pair.clone(), bx, by, ci));
        }
    }
    for (i, a) in placed.iter().enumerate() {
        for b in placed.iter().skip(i + 1) {
            if a.1.is_some() && a.1 == b.1 && a.4 != b.4 {
                drawing.links.push(Link {
                    x1: a.2 + BOX_W,
                    y1: a.3 + BOX_H / 2,
                    x2: b.2,
                    y2: b.3 + BOX_H / 2,
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
    fn a_stand_alone_data_center_is_one_box_of_servers() {
        let d = draw(&example("standalone.toml"));
        assert_eq!(d.sides.len(), 1);
        assert!(d.links.is_empty());
    }
}
