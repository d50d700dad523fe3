//! Stored inventories (the `data_centers` table): each upload of a name is a new version; the
//! latest is current. The text is stored as uploaded, and only text that parses is stored.

use sqlx::{Row, SqlitePool};

use crate::knowledge::inventory::{Inventory, InventoryError};

#[derive(Debug, Clone)]
pub struct StoredDataCenter {
    pub id: i64,
    pub name: String,
    pub toml: String,
    pub uploaded_by: String,
    pub uploaded_at: i64,
}

impl StoredDataCenter {
    /// Parses the stored text (it parsed when stored; a newer parser may disagree).
    pub fn inventory(&self) -> Result<Inventory, InventoryError> {
        Inventory::from_toml(&self.toml, &self.name)
    }
}

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredDataCenter, sqlx::Error> {
    Ok(StoredDataCenter {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        toml: r.try_get("toml")?,
        uploaded_by: r.try_get("uploaded_by")?,
        uploaded_at: r.try_get("uploaded_at")?,
    })
}

/// The current version of every Data Center, by name.
pub async fn list(pool: &SqlitePool) -> Result<Vec<StoredDataCenter>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.name, d.toml, d.uploaded_by, d.uploaded_at FROM data_centers d \
         WHERE d.id = (SELECT MAX(id) FROM data_centers WHERE name = d.name) ORDER BY d.name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn current(
    pool: &SqlitePool,
    name: &str,
) -> Result<Option<StoredDataCenter>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, name, toml, uploaded_by, uploaded_at FROM data_centers WHERE name = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Parses `toml` and stores it under the inventory's own name. Nothing is stored on error.
pub async fn save(
    pool: &SqlitePool,
    toml: &str,
    by: &str,
    now: i64,
) -> Result<Result<Inventory, InventoryError>, sqlx::Error> {
    let inv = match Inventory::from_toml(toml, "inventory") {
        Ok(inv) => inv,
        Err(e) => return Ok(Err(e)),
    };
    sqlx::query(
        "INSERT INTO data_centers (name, toml, uploaded_by, uploaded_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&inv.name)
    .bind(toml)
    .bind(by)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(Ok(inv))
}
