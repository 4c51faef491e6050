//! Reads of what `connect` and `disconnect` recorded in the log: a workspace's latest plan,
//! and whether a later `disconnect` finished it. The log is the only record, so the state
//! survives a crash of whatever ran `connect`.

use sqlx::{Row, SqlitePool};

use super::payload;

/// Endpoint of the row holding a connect plan (its body: the plan as JSON).
pub const PLAN_ENDPOINT: &str = "action.connect.plan";
/// Endpoint of the row saying a plan was undone.
pub const DONE_ENDPOINT: &str = "action.disconnect.done";

/// A recorded plan still in force.
#[derive(Debug, Clone)]
pub struct PlanRow {
    pub id: i64,
    pub recorded_at_ms: i64,
    /// The plan's JSON.
    pub body: Vec<u8>,
}

/// `workspace`'s plan in force: its latest plan row, unless a later row says it was undone.
///
/// # Errors
/// Any database error, or a stored body that cannot be decoded.
pub async fn active_plan(pool: &SqlitePool, workspace: &str) -> Result<Option<PlanRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, endpoint, received_at_ms, body, payload_encoding FROM events INDEXED BY events_connection \
         WHERE workspace_sid = ?1 AND kind = 'action' \
           AND (endpoint = 'action.connect.plan' OR endpoint = 'action.disconnect.done') \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(workspace)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.try_get::<String, _>("endpoint")? != PLAN_ENDPOINT {
        return Ok(None);
    }
    let encoding: Option<String> = row.try_get("payload_encoding")?;
    let stored: Vec<u8> = row.try_get("body")?;
    let body = payload::decode(encoding.as_deref(), &stored)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        .into_owned();
    Ok(Some(PlanRow { id: row.try_get("id")?, recorded_at_ms: row.try_get("received_at_ms")?, body }))
}

/// Every workspace with a plan in force.
///
/// # Errors
/// Any database error.
pub async fn connected_workspaces(pool: &SqlitePool) -> Result<Vec<(String, PlanRow)>, sqlx::Error> {
    let workspaces: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT workspace_sid FROM events INDEXED BY events_connection \
         WHERE workspace_sid IS NOT NULL AND kind = 'action' \
           AND (endpoint = 'action.connect.plan' OR endpoint = 'action.disconnect.done')",
    )
    .fetch_all(pool)
    .await?;
    let mut connected = Vec::new();
    for workspace in workspaces {
        if let Some(plan) = active_plan(pool, &workspace).await? {
            connected.push((workspace, plan));
        }
    }
    Ok(connected)
}
