//! The alerts' SQL: their settings, what was alerted (`alert_state`, the exactly-once key), the
//! deliveries waiting (`alert_outbox`), how far the alerter has read the log (`alert_marks`),
//! and the reads detection needs from the log and the projections.
//!
//! Written through the read pool's connections, as the other settings are: these tables are
//! operational state beside the log (never hash-chained, never rebuilt), each write a small
//! transaction of its own, so the writer thread does none of this work. Every read here is
//! bounded: the log by id ranges after a mark, the projections through partial indexes.

use std::collections::HashSet;

use sqlx::{Row, SqlitePool};

use super::{Alert, AlertKind};

/// A threshold rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    pub id: i64,
    /// `queue` or `worker`.
    pub scope: String,
    /// A WQ…/WK… SID, or '' for every queue or worker.
    pub target: String,
    pub percent: f64,
    pub window_minutes: i64,
    pub min_reservations: i64,
    pub created_at_ms: i64,
}

/// Webhooks added on `/settings`, with when.
///
/// # Errors
/// Any database error.
pub async fn stored_webhooks(pool: &SqlitePool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT url, added_at_ms FROM alert_webhooks ORDER BY added_at_ms, url")
        .fetch_all(pool)
        .await
}

/// Adds a webhook (again: nothing changes).
///
/// # Errors
/// Any database error.
pub async fn add_webhook(pool: &SqlitePool, url: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO alert_webhooks (url, added_at_ms) VALUES (?1, ?2)")
        .bind(url)
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes a webhook and the deliveries still waiting for it.
///
/// # Errors
/// Any database error.
pub async fn remove_webhook(pool: &SqlitePool, url: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM alert_webhooks WHERE url = ?1").bind(url).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM alert_outbox WHERE target_url = ?1").bind(url).execute(&mut *tx).await?;
    tx.commit().await
}

/// The switches turned off.
///
/// # Errors
/// Any database error.
pub async fn disabled_switches(pool: &SqlitePool) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT substr(key, 5) FROM alert_settings WHERE key LIKE 'off:%' AND value = '1'")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(switch,)| switch).collect())
}

/// Turns a switch on or off.
///
/// # Errors
/// Any database error.
pub async fn set_switch(pool: &SqlitePool, switch: &str, on: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(format!("off:{switch}"))
    .bind(if on { "0" } else { "1" })
    .execute(pool)
    .await?;
    Ok(())
}

/// Every threshold rule, oldest first.
///
/// # Errors
/// Any database error.
pub async fn rules(pool: &SqlitePool) -> Result<Vec<ThresholdRule>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, scope, target, percent, window_minutes, min_reservations, created_at_ms \
         FROM alert_rules ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ThresholdRule {
                id: row.try_get("id")?,
                scope: row.try_get("scope")?,
                target: row.try_get("target")?,
                percent: row.try_get("percent")?,
                window_minutes: row.try_get("window_minutes")?,
                min_reservations: row.try_get("min_reservations")?,
                created_at_ms: row.try_get("created_at_ms")?,
            })
        })
        .collect()
}

/// Stores a new rule (its `id` is ignored) and returns its id.
///
/// # Errors
/// Any database error.
pub async fn add_rule(pool: &SqlitePool, rule: &ThresholdRule) -> Result<i64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO alert_rules (scope, target, percent, window_minutes, min_reservations, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&rule.scope)
    .bind(&rule.target)
    .bind(rule.percent)
    .bind(rule.window_minutes)
    .bind(rule.min_reservations)
    .bind(rule.created_at_ms)
    .execute(pool)
    .await?;
    Ok(done.last_insert_rowid())
}

/// Removes a rule and what it had alerted; returns whether it existed.
///
/// # Errors
/// Any database error.
pub async fn remove_rule(pool: &SqlitePool, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let removed = sqlx::query("DELETE FROM alert_rules WHERE id = ?1").bind(id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM alert_state WHERE kind = 'timeout_rate' AND subject LIKE ?1")
        .bind(format!("rule:{id}:%"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed.rows_affected() > 0)
}

/// A named mark of the alerter.
///
/// # Errors
/// Any database error.
pub async fn mark(pool: &SqlitePool, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM alert_marks WHERE name = ?1").bind(name).fetch_optional(pool).await
}

/// The `alert_state` kind an alert's exactly-once key lives under: a threshold's crossing and
/// its clearing share one row (its status says which was sent last).
fn state_kind(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::TimeoutRateExceeded | AlertKind::TimeoutRateCleared => "timeout_rate",
        other => other.as_str(),
    }
}

/// In one transaction: records each of `alerts` whose subject has not had this status yet
/// (an alert without a subject always is), queues a delivery of each recorded one to every one
/// of `targets`, and sets `marks`. Returns the indexes of the alerts recorded; the others
/// were already sent (a duplicate, a replay, an import, a restart).
///
/// # Errors
/// Any database error: then nothing is recorded, queued or marked.
pub async fn record_alerts(
    pool: &SqlitePool,
    alerts: &[Alert],
    targets: &[String],
    marks: &[(&str, i64)],
    now_ms: i64,
) -> Result<Vec<usize>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut recorded = Vec::new();
    for (index, alert) in alerts.iter().enumerate() {
        let fresh =
            match &alert.subject {
                None => true,
                Some(subject) => sqlx::query(
                    "INSERT INTO alert_state (kind, subject, status, changed_at_ms) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (kind, subject) DO UPDATE SET status = excluded.status, \
                     changed_at_ms = excluded.changed_at_ms WHERE alert_state.status != excluded.status",
                )
                .bind(state_kind(alert.kind))
                .bind(subject)
                .bind(alert.status)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1,
            };
        if !fresh {
            continue;
        }
        let payload = serde_json::to_string(&alert.body).expect("an alert serialises");
        for target in targets {
            sqlx::query(
                "INSERT INTO alert_outbox (kind, target_url, payload, related_to, created_at_ms, next_attempt_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )
            .bind(alert.kind.as_str())
            .bind(target)
            .bind(&payload)
            .bind(alert.related_to)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        recorded.push(index);
    }
    for (name, value) in marks {
        sqlx::query(
            "INSERT INTO alert_marks (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(recorded)
}

/// The subjects of `kind` whose last alert has `status` (the threshold rules firing now).
///
/// # Errors
/// Any database error.
pub async fn subjects_with_status(
    pool: &SqlitePool,
    kind: AlertKind,
    status: &str,
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT subject FROM alert_state WHERE kind = ?1 AND status = ?2")
            .bind(state_kind(kind))
            .bind(status)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(subject,)| subject).collect())
}

/// One delivery waiting.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub target_url: String,
    pub payload: String,
    pub related_to: Option<i64>,
    pub created_at_ms: i64,
    pub attempts: i64,
}

/// Deliveries due at `now_ms`, oldest first.
///
/// # Errors
/// Any database error.
pub async fn due_deliveries(
    pool: &SqlitePool,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, target_url, payload, related_to, created_at_ms, attempts FROM alert_outbox \
         WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxRow {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                target_url: row.try_get("target_url")?,
                payload: row.try_get("payload")?,
                related_to: row.try_get("related_to")?,
                created_at_ms: row.try_get("created_at_ms")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect()
}

/// Removes a delivery (made, or given up).
///
/// # Errors
/// Any database error.
pub async fn remove_delivery(pool: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM alert_outbox WHERE id = ?1").bind(id).execute(pool).await?;
    Ok(())
}

/// Counts a failed attempt of delivery `id` and holds every delivery to its webhook until
/// `retry_at_ms` (a receiver that is down is backed off as a whole).
///
/// # Errors
/// Any database error.
pub async fn retry_later(
    pool: &SqlitePool,
    id: i64,
    target_url: &str,
    retry_at_ms: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")
        .bind(id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    hold_target(&mut *tx, target_url, retry_at_ms).await?;
    tx.commit().await
}

/// Holds every delivery to `target_url` until `until_ms` at least (it is backing off).
///
/// # Errors
/// Any database error.
pub async fn hold_target<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    target_url: &str,
    until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE alert_outbox SET next_attempt_ms = max(next_attempt_ms, ?2) WHERE target_url = ?1")
        .bind(target_url)
        .bind(until_ms)
        .execute(executor)
        .await?;
    Ok(())
}

/// Makes every delivery to `target_url` due now (it has just answered again).
///
/// # Errors
/// Any database error.
pub async fn bring_forward(pool: &SqlitePool, target_url: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE alert_outbox SET next_attempt_ms = ?2 WHERE target_url = ?1 AND next_attempt_ms > ?2",
    )
    .bind(target_url)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deliveries waiting.
///
/// # Errors
/// Any database error.
pub async fn pending_deliveries(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM alert_outbox").fetch_one(pool).await
}

/// A log row detection looks at.
#[derive(Debug, Clone)]
pub struct LogCandidate {
    pub id: i64,
    pub endpoint: String,
    pub event_type: Option<String>,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub signature_verdict: String,
    pub is_fact: bool,
    /// The app's answer (`--forward-to`), as `relay::UpstreamAnswer` JSON.
    pub upstream: Option<String>,
    pub occurred_at_ms: Option<i64>,
    pub received_at_ms: i64,
}

/// The rows after `after_id` up to `through_id` that can raise an alert — timeout facts,
/// webhooks with a bad or missing signature, assignment callbacks relayed to an app — oldest
/// first, and how far they reach: `through_id`, or less when more than `limit` of either kind
/// wait (the next call goes on from there). Both reads are ranges of partial indexes holding
/// only such rows (`events_alert_candidates`, `events_bad_signature`), so the cost follows
/// the candidates, not the rows ingested.
///
/// # Errors
/// Any database error.
pub async fn log_candidates(
    pool: &SqlitePool,
    after_id: i64,
    through_id: i64,
    limit: i64,
) -> Result<(Vec<LogCandidate>, i64), sqlx::Error> {
    // Each WHERE repeats its index's predicate word for word, so SQLite can use the index.
    let timeouts_and_answers = candidates(
        pool,
        "(is_fact = 1 AND event_type = 'reservation.timeout') \
         OR (kind = 'webhook' AND endpoint = 'assignment' AND upstream IS NOT NULL)",
        (after_id, through_id, limit),
    )
    .await?;
    let bad_signatures =
        candidates(pool, "signature_verdict IN ('invalid', 'missing')", (after_id, through_id, limit))
            .await?;
    let mut reached = through_id;
    for found in [&timeouts_and_answers, &bad_signatures] {
        if found.len() as i64 >= limit {
            reached = reached.min(found.last().map_or(through_id, |row| row.id));
        }
    }
    let mut rows: Vec<LogCandidate> =
        timeouts_and_answers.into_iter().chain(bad_signatures).filter(|row| row.id <= reached).collect();
    rows.sort_by_key(|row| row.id);
    rows.dedup_by_key(|row| row.id);
    Ok((rows, reached))
}

async fn candidates(
    pool: &SqlitePool,
    predicate: &str,
    (after_id, through_id, limit): (i64, i64, i64),
) -> Result<Vec<LogCandidate>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, endpoint, event_type, task_sid, reservation_sid, worker_sid, signature_verdict, is_fact, \
                upstream, occurred_at_ms, received_at_ms \
         FROM events WHERE ({predicate}) AND id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
    ))
    .bind(after_id)
    .bind(through_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LogCandidate {
                id: row.try_get("id")?,
                endpoint: row.try_get("endpoint")?,
                event_type: row.try_get("event_type")?,
                task_sid: row.try_get("task_sid")?,
                reservation_sid: row.try_get("reservation_sid")?,
                worker_sid: row.try_get("worker_sid")?,
                signature_verdict: row.try_get("signature_verdict")?,
                is_fact: row.try_get("is_fact")?,
                upstream: row.try_get("upstream")?,
                occurred_at_ms: row.try_get("occurred_at_ms")?,
                received_at_ms: row.try_get("received_at_ms")?,
            })
        })
        .collect()
}

/// What the projections say about a reservation, for an alert's text.
#[derive(Debug, Clone, Default)]
pub struct ReservationContext {
    pub worker_name: Option<String>,
    pub queue_name: Option<String>,
    /// The timeout flag's explanation (how long it was pending, what the callback was answered).
    pub timeout_explanation: Option<String>,
}

/// The projections' view of `reservation_sid` (one primary-key read and one flag look-up).
///
/// # Errors
/// Any database error.
pub async fn reservation_context(
    pool: &SqlitePool,
    reservation_sid: &str,
) -> Result<Option<ReservationContext>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.worker_name, COALESCE(t.task_queue_name, t.task_queue_sid) AS queue, \
                (SELECT f.explanation FROM proj_flags f WHERE f.task_sid = r.task_sid AND f.kind = 'timeout' \
                   AND f.reservation_sid = r.reservation_sid LIMIT 1) AS explanation \
         FROM proj_reservations r LEFT JOIN proj_tasks t ON t.task_sid = r.task_sid \
         WHERE r.reservation_sid = ?1",
    )
    .bind(reservation_sid)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(ReservationContext {
            worker_name: row.try_get("worker_name")?,
            queue_name: row.try_get("queue")?,
            timeout_explanation: row.try_get("explanation")?,
        })
    })
    .transpose()
}

/// A reservation still pending.
#[derive(Debug, Clone)]
pub struct PendingReservation {
    pub reservation_sid: String,
    pub task_sid: String,
    pub worker_sid: Option<String>,
    pub worker_name: Option<String>,
    pub created_at_ms: i64,
    pub timeout_ms: i64,
    pub callback_answer: Option<String>,
    pub created_event_id: Option<i64>,
}

/// Reservations created since `since_ms` and still pending at `as_of_ms`, past their timeout
/// plus a grace (`grace_ms`, or the timeout itself when shorter), that have not been alerted as
/// overdue, oldest first, at most `limit`: a range of the partial index
/// `proj_reservations_pending`, which holds only pending reservations.
///
/// # Errors
/// Any database error.
pub async fn overdue_reservations(
    pool: &SqlitePool,
    since_ms: i64,
    as_of_ms: i64,
    grace_ms: i64,
    limit: i64,
) -> Result<Vec<PendingReservation>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.reservation_sid, r.task_sid, r.worker_sid, r.worker_name, r.created_at_ms, r.timeout_ms, \
                r.callback_answer, r.created_event_id \
         FROM proj_reservations r \
         WHERE r.status = 'pending' AND r.created_at_ms >= ?1 AND r.created_at_ms < ?2 \
           AND r.created_at_ms + r.timeout_ms + min(r.timeout_ms, ?4) < ?2 \
           AND NOT EXISTS (SELECT 1 FROM alert_state s \
                           WHERE s.kind = 'reservation.overdue' AND s.subject = r.reservation_sid) \
         ORDER BY r.created_at_ms LIMIT ?3",
    )
    .bind(since_ms)
    .bind(as_of_ms)
    .bind(limit)
    .bind(grace_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PendingReservation {
                reservation_sid: row.try_get("reservation_sid")?,
                task_sid: row.try_get("task_sid")?,
                worker_sid: row.try_get("worker_sid")?,
                worker_name: row.try_get("worker_name")?,
                created_at_ms: row.try_get("created_at_ms")?,
                timeout_ms: row.try_get("timeout_ms")?,
                callback_answer: row.try_get("callback_answer")?,
                created_event_id: row.try_get("created_event_id")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, AlertKind};

    fn about(kind: AlertKind, subject: &str, status: &'static str) -> Alert {
        let mut alert = Alert::new(kind, "text", "http://tracer/x".into());
        alert.subject = Some(subject.into());
        alert.status = status;
        alert
    }

    #[tokio::test]
    async fn a_subject_is_alerted_once_per_kind_and_a_threshold_once_per_crossing() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::open(&dir.path().join("t.db")).await.unwrap();
        let pool = &store.pool;
        let targets = ["http://a/1".to_string(), "http://b/2".to_string()];
        let timeout = about(AlertKind::ReservationTimeout, "WR1", "sent");
        let overdue = about(AlertKind::ReservationOverdue, "WR1", "sent");
        let recorded =
            record_alerts(pool, &[timeout.clone(), overdue], &targets, &[("m", 7)], 1).await.unwrap();
        assert_eq!(recorded, [0, 1], "one alert per kind of the same reservation");
        assert_eq!(pending_deliveries(pool).await.unwrap(), 4, "each to every webhook");
        assert_eq!(mark(pool, "m").await.unwrap(), Some(7));
        assert!(record_alerts(pool, &[timeout], &targets, &[], 2).await.unwrap().is_empty(), "never twice");

        let exceeded = about(AlertKind::TimeoutRateExceeded, "rule:1:WQ1", "firing");
        let cleared = about(AlertKind::TimeoutRateCleared, "rule:1:WQ1", "cleared");
        assert_eq!(record_alerts(pool, std::slice::from_ref(&exceeded), &[], &[], 3).await.unwrap(), [0]);
        assert!(record_alerts(pool, std::slice::from_ref(&exceeded), &[], &[], 4).await.unwrap().is_empty());
        let firing = subjects_with_status(pool, AlertKind::TimeoutRateCleared, "firing").await.unwrap();
        assert!(firing.contains("rule:1:WQ1"), "crossing and clearing share one state");
        assert_eq!(record_alerts(pool, &[cleared], &[], &[], 5).await.unwrap(), [0]);
        assert_eq!(record_alerts(pool, &[exceeded], &[], &[], 6).await.unwrap(), [0], "crossed again");
        assert!(remove_rule(pool, 1).await.is_ok());
        assert!(subjects_with_status(pool, AlertKind::TimeoutRateExceeded, "firing")
            .await
            .unwrap()
            .is_empty());
    }
}
