//! OutflowServices, the Registry table listing DataTransfer API nodes: reading it, moving a
//! node's URL between CN and FQDN (matched by host and suffix, SEED-NOTES 3) and turning
//! `secureFlag` off — every value a parameter, every change compare-and-set, the rows before and
//! after kept as evidence.

use serde::Serialize;

use super::connect::{capture, classify, SqlClient, SqlError};
use super::{ServerEvidence, OUTFLOW_SUFFIX};
use crate::knowledge::operation::SqlOperation;

/// One OutflowServices row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutflowRow {
    pub server_id: i32,
    pub url: String,
    pub secure_flag: bool,
}

/// The host part of an OutflowServices URL (scheme and suffix removed), lower-cased.
fn url_host(url: &str) -> Option<String> {
    let u = url.trim();
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(u);
    let lower = u.to_ascii_lowercase();
    lower
        .strip_suffix(&OUTFLOW_SUFFIX.to_ascii_lowercase())
        .map(|h| h.trim_end_matches('/').to_string())
}

async fn read_rows(c: &mut SqlClient) -> Result<Vec<OutflowRow>, SqlError> {
    let rows = c
        .query(
            "SELECT ServerId, Url, secureFlag FROM Registry.dbo.OutflowServices ORDER BY ServerId",
            &[],
        )
        .await
        .map_err(classify)?
        .into_first_result()
        .await
        .map_err(classify)?;
    rows.iter()
        .map(|r| {
            Ok(OutflowRow {
                server_id: r
                    .try_get::<i32, _>(0)
                    .map_err(classify)?
                    .unwrap_or_default(),
                url: r
                    .try_get::<&str, _>(1)
                    .map_err(classify)?
                    .unwrap_or_default()
                    .to_string(),
                secure_flag: r.try_get::<bool, _>(2).map_err(classify)?.unwrap_or(false),
            })
        })
        .collect()
}

pub(super) async fn outflow(
    c: &mut SqlClient,
    op: &SqlOperation,
    ev: &mut ServerEvidence,
) -> Result<(), SqlError> {
    let before = read_rows(c).await?;
    ev.before = Some(before.clone());
    let mut changed = 0u64;
    match op {
        SqlOperation::OutflowRead => {}
        SqlOperation::OutflowUrlHost { from_host, to_host } => {
            let (from, to) = (from_host.trim().to_ascii_lowercase(), to_host.trim());
            // Host names come from the inventory; '/' would change the URL's shape. Anything else
            // is data: it only ever travels as a parameter.
            if from.is_empty() || to.is_empty() || to.contains('/') {
                return Err(SqlError::Refused(format!(
                    "OutflowServices URL change needs two host names; got `{from_host}` → `{to_host}`"
                )));
            }
            let matching: Vec<&OutflowRow> = before
                .iter()
                .filter(|r| url_host(&r.url).as_deref() == Some(from.as_str()))
                .collect();
            if matching.is_empty() {
                if before
                    .iter()
                    .any(|r| url_host(&r.url).as_deref() == Some(to.to_ascii_lowercase().as_str()))
                {
                    ev.note = Some(format!(
                        "already applied: the row of {to_host} uses {to_host}"
                    ));
                } else {
                    return Err(SqlError::Refused(format!(
                        "no OutflowServices row in Registry on {} has host {from_host} (rows: {})",
                        ev.server,
                        before
                            .iter()
                            .map(|r| r.url.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            for row in matching {
                // Keep any scheme the row had; only the host changes.
                let scheme = if row.url.trim().to_ascii_lowercase().starts_with("https://") {
                    "https://"
                } else if row.url.trim().to_ascii_lowercase().starts_with("http://") {
                    "http://"
                } else {
                    ""
                };
                let new_url = format!("{scheme}{to}{OUTFLOW_SUFFIX}");
                let (r, msgs) = capture(c.execute(
                    "UPDATE Registry.dbo.OutflowServices SET Url = @P1 WHERE ServerId = @P2 AND Url = @P3",
                    &[&new_url.as_str(), &row.server_id, &row.url.as_str()],
                ))
                .await;
                ev.messages.extend(msgs);
                let n = r.map_err(classify)?.total();
                if n != 1 {
                    return Err(SqlError::Refused(format!(
                        "row {} changed underneath Lockstep ({n} rows updated); nothing else was changed on {}",
                        row.server_id, ev.server
                    )));
                }
                changed += n;
            }
        }
        SqlOperation::SecureFlagOff { host } => match host {
            None => {
                let (r, msgs) = capture(c.execute(
                    "UPDATE Registry.dbo.OutflowServices SET secureFlag = @P1 WHERE secureFlag <> @P1",
                    &[&false],
                ))
                .await;
                ev.messages.extend(msgs);
                changed = r.map_err(classify)?.total();
            }
            Some(h) => {
                let want = h.trim().to_ascii_lowercase();
                let ids: Vec<i32> = before
                    .iter()
                    .filter(|r| url_host(&r.url).as_deref() == Some(want.as_str()))
                    .map(|r| r.server_id)
                    .collect();
                if ids.is_empty() {
                    return Err(SqlError::Refused(format!(
                        "no OutflowServices row in Registry on {} has host {h}",
                        ev.server
                    )));
                }
                for id in ids {
                    let (r, msgs) = capture(c.execute(
                        "UPDATE Registry.dbo.OutflowServices SET secureFlag = @P1 WHERE ServerId = @P2",
                        &[&false, &id],
                    ))
                    .await;
                    ev.messages.extend(msgs);
                    changed += r.map_err(classify)?.total();
                }
            }
        },
        _ => return Err(SqlError::Config("not an OutflowServices operation".into())),
    }
    if !matches!(op, SqlOperation::OutflowRead) {
        ev.rows_changed = Some(changed);
        ev.after = Some(read_rows(c).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_ignore_scheme_and_case() {
        assert_eq!(
            url_host("DT1.contoso.local/ose/OutflowServiceExtension.dll").as_deref(),
            Some("dt1.contoso.local")
        );
        assert_eq!(
            url_host("https://dt1/ose/outflowserviceextension.dll").as_deref(),
            Some("dt1")
        );
        assert_eq!(url_host("dt1/other"), None);
    }
}
