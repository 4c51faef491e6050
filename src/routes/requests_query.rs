//! The request-list query string, shared by the page and the JSON API: every field arrives as
//! text (an HTML form sends empty fields), and is turned into a [`RequestFilter`] here.

use serde::{Deserialize, Serialize};

use crate::storage::requests::RequestFilter;
use taskrouter_protocol::timestamp;

/// The raw query string of `/requests` and `/api/requests`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RequestQuery {
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub event_type: String,
    #[serde(default)]
    pub sid: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub verdict: String,
    /// `yes`, `no`, or empty for either.
    #[serde(default)]
    pub duplicate: String,
    /// ISO-8601 (a `datetime-local` field's value is taken as UTC) or epoch ms.
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub limit: String,
}

fn non_empty(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn parse_time(value: &str) -> Result<Option<i64>, String> {
    let Some(value) = non_empty(value) else { return Ok(None) };
    timestamp::parse_epoch_ms(&value)
        .or_else(|| timestamp::parse_iso8601(&value))
        .or_else(|| timestamp::parse_iso8601(&format!("{value}:00")))
        .map(Some)
        .ok_or_else(|| format!("{value:?} is not a date and time (use 2026-11-28T14:05 or epoch ms)"))
}

impl RequestQuery {
    /// The filter, or a message saying which field is wrong.
    ///
    /// # Errors
    /// A readable message naming the field that does not parse.
    pub fn to_filter(&self) -> Result<RequestFilter, String> {
        let number = |name: &str, value: &str| -> Result<Option<i64>, String> {
            non_empty(value)
                .map(|v| v.parse().map_err(|_| format!("{name} {v:?} is not a number")))
                .transpose()
        };
        Ok(RequestFilter {
            endpoint: non_empty(&self.endpoint),
            event_type: non_empty(&self.event_type),
            sid: non_empty(&self.sid),
            status: number("status", &self.status)?,
            verdict: non_empty(&self.verdict),
            duplicate: match self.duplicate.trim() {
                "yes" | "true" => Some(true),
                "no" | "false" => Some(false),
                _ => None,
            },
            since_ms: parse_time(&self.since)?,
            until_ms: parse_time(&self.until)?,
            text: non_empty(&self.q),
            before: number("before", &self.before)?,
            min_id: None,
        })
    }

    /// The page size asked for, within bounds.
    pub fn limit(&self) -> u32 {
        self.limit.trim().parse().unwrap_or(50).clamp(1, 500)
    }

    /// This query with `before` replaced, as a query string (for "older" links).
    pub fn with_before(&self, before: i64) -> String {
        let mut next = self.clone();
        next.before = before.to_string();
        serde_urlencoded::to_string(&next).unwrap_or_default()
    }
}
