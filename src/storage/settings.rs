//! The settings table (`assignment_instructions`): how assignment callbacks are answered,
//! globally or per task queue / workflow. Small, rarely written, read once at start and after
//! each change (the hot path reads an in-memory copy of them, kept by the assignment instructions).

use sqlx::{Row, SqlitePool};

/// One stored instruction rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstructionRule {
    /// `global`, `queue` or `workflow`.
    pub scope: String,
    /// '' for global, else the WQ…/WW… SID.
    pub target: String,
    /// The JSON body answered to the assignment callback.
    pub answer: String,
    pub updated_at_ms: i64,
}

/// Every rule.
///
/// # Errors
/// Any database error.
pub async fn instruction_rules(pool: &SqlitePool) -> Result<Vec<InstructionRule>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT scope, target, answer, updated_at_ms FROM assignment_instructions ORDER BY scope, target",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(InstructionRule {
                scope: row.try_get("scope")?,
                target: row.try_get("target")?,
                answer: row.try_get("answer")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            })
        })
        .collect()
}

/// Sets (or replaces) the rule for `scope`/`target`.
///
/// # Errors
/// Any database error.
pub async fn save_instruction_rule(pool: &SqlitePool, rule: &InstructionRule) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment_instructions (scope, target, answer, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (scope, target) DO UPDATE SET answer = excluded.answer, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(&rule.scope)
    .bind(&rule.target)
    .bind(&rule.answer)
    .bind(rule.updated_at_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes the rule for `scope`/`target` (the next broader rule applies again).
///
/// # Errors
/// Any database error.
pub async fn delete_instruction_rule(
    pool: &SqlitePool,
    scope: &str,
    target: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM assignment_instructions WHERE scope = ?1 AND target = ?2")
        .bind(scope)
        .bind(target)
        .execute(pool)
        .await?;
    Ok(())
}
