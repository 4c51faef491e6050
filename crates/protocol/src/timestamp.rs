//! When a TaskRouter fact happened, by TaskRouter's own clock.
//!
//! Real callbacks carry `TimestampMs` (epoch milliseconds) and `Timestamp` (epoch seconds) as
//! decimal strings; assignment callbacks carry neither. ISO-8601 is accepted as a fallback.

use chrono::{DateTime, NaiveDateTime};

/// Where an occurrence time came from, from most to least precise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// `TimestampMs`, epoch milliseconds.
    TimestampMs,
    /// `Timestamp`, epoch seconds.
    TimestampSeconds,
    /// `Timestamp` written as ISO-8601 / RFC 3339.
    Iso8601,
    /// No usable timestamp: our arrival time stands in (assignment callbacks).
    Arrival,
}

impl TimeSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::TimestampMs => "TimestampMs",
            TimeSource::TimestampSeconds => "Timestamp",
            TimeSource::Iso8601 => "iso8601",
            TimeSource::Arrival => "arrival",
        }
    }
}

/// An occurrence time in epoch milliseconds, with its provenance and the raw string it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurredAt {
    pub epoch_ms: i64,
    pub source: TimeSource,
    pub raw: Option<String>,
}

/// Largest epoch-ms accepted (year 9999), so arithmetic on times can never overflow. Public so
/// the fuzz targets can check every parsed time against it.
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// Parses a decimal epoch in milliseconds.
pub fn parse_epoch_ms(raw: &str) -> Option<i64> {
    let value: i64 = raw.trim().parse().ok()?;
    (0..=MAX_EPOCH_MS).contains(&value).then_some(value)
}

/// Parses a decimal epoch in seconds (a fractional part is kept to the millisecond).
pub fn parse_epoch_seconds(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 12 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)]).parse().ok()?;
    let value = seconds.checked_mul(1000)?.checked_add(millis)?;
    (value <= MAX_EPOCH_MS).then_some(value)
}

/// Parses ISO-8601 / RFC 3339 (with or without an offset; without one, UTC is assumed).
pub fn parse_iso8601(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(raw) {
        return Some(parsed.timestamp_millis()).filter(|v| (0..=MAX_EPOCH_MS).contains(v));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(parsed) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(parsed.and_utc().timestamp_millis()).filter(|v| (0..=MAX_EPOCH_MS).contains(v));
        }
    }
    None
}

/// The occurrence time from `TimestampMs`, else `Timestamp` (epoch seconds, else ISO-8601),
/// else the arrival time. A present but unparseable value is an error, not a silent fallback.
pub fn occurred_at(
    timestamp_ms: Option<&str>,
    timestamp: Option<&str>,
    arrival_ms: i64,
) -> Result<OccurredAt, String> {
    if let Some(raw) = timestamp_ms.filter(|s| !s.trim().is_empty()) {
        return parse_epoch_ms(raw)
            .map(|epoch_ms| OccurredAt {
                epoch_ms,
                source: TimeSource::TimestampMs,
                raw: Some(raw.to_string()),
            })
            .ok_or_else(|| format!("TimestampMs {raw:?} is not epoch milliseconds"));
    }
    if let Some(raw) = timestamp.filter(|s| !s.trim().is_empty()) {
        if let Some(epoch_ms) = parse_epoch_seconds(raw) {
            return Ok(OccurredAt {
                epoch_ms,
                source: TimeSource::TimestampSeconds,
                raw: Some(raw.to_string()),
            });
        }
        return parse_iso8601(raw)
            .map(|epoch_ms| OccurredAt { epoch_ms, source: TimeSource::Iso8601, raw: Some(raw.to_string()) })
            .ok_or_else(|| format!("Timestamp {raw:?} is neither epoch seconds nor ISO-8601"));
    }
    Ok(OccurredAt { epoch_ms: arrival_ms, source: TimeSource::Arrival, raw: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_ms_wins_over_seconds() {
        let t = occurred_at(Some("1687959728350"), Some("1687959728"), 5).unwrap();
        assert_eq!(t.epoch_ms, 1_687_959_728_350);
        assert_eq!(t.source, TimeSource::TimestampMs);
        assert_eq!(t.raw.as_deref(), Some("1687959728350"));
    }

    #[test]
    fn seconds_are_used_without_ms() {
        let t = occurred_at(None, Some("1700000000"), 5).unwrap();
        assert_eq!(t.epoch_ms, 1_700_000_000_000);
        assert_eq!(t.source, TimeSource::TimestampSeconds);
    }

    #[test]
    fn iso_is_the_fallback() {
        let t = occurred_at(None, Some("2015-02-07T00:32:41Z"), 5).unwrap();
        assert_eq!(t.epoch_ms, 1_423_269_161_000);
        assert_eq!(t.source, TimeSource::Iso8601);
        let naive = occurred_at(None, Some("2015-02-07T00:32:41.250"), 5).unwrap();
        assert_eq!(naive.epoch_ms, 1_423_269_161_250);
    }

    #[test]
    fn arrival_stands_in_when_nothing_is_sent() {
        let t = occurred_at(None, None, 42).unwrap();
        assert_eq!((t.epoch_ms, t.source), (42, TimeSource::Arrival));
    }

    #[test]
    fn garbage_is_an_error_not_a_fallback() {
        assert!(occurred_at(Some("soon"), None, 1).is_err());
        assert!(occurred_at(None, Some("yesterday"), 1).is_err());
        assert!(occurred_at(Some("-5"), None, 1).is_err());
        assert!(occurred_at(Some("99999999999999999999"), None, 1).is_err());
    }

    #[test]
    fn fractional_seconds_keep_milliseconds() {
        assert_eq!(parse_epoch_seconds("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_epoch_seconds("1700000000.1234"), Some(1_700_000_000_123));
        assert_eq!(parse_epoch_seconds("1e9"), None);
    }
}
