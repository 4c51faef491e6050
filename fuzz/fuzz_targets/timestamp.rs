//! Fuzzes the timestamp parsers: `TimestampMs`, `Timestamp` (epoch seconds or ISO-8601) and the
//! choice between them.
//!
//! Input: the `TimestampMs` value, a NUL byte, then the `Timestamp` value (no NUL: only
//! `TimestampMs`). Checks: nothing panics; every accepted time is within 0..=MAX_EPOCH_MS; a
//! present but unreadable value is an error, never a silent fallback; and a time written in each
//! accepted form (decimal ms, decimal seconds with millis, RFC 3339) reads back to itself.

#![no_main]

use chrono::{DateTime, SecondsFormat};
use libfuzzer_sys::fuzz_target;
use taskrouter_protocol::timestamp::{
    occurred_at, parse_epoch_ms, parse_epoch_seconds, parse_iso8601, MAX_EPOCH_MS,
};
use taskrouter_protocol::TimeSource;

const ARRIVAL_MS: i64 = 42;

fn in_range(value: i64) -> bool {
    (0..=MAX_EPOCH_MS).contains(&value)
}

/// A value that counts as sent: present and not blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|s| !s.trim().is_empty())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ms, seconds) = match text.split_once('\0') {
        Some((ms, seconds)) => (Some(ms), Some(seconds)),
        None => (Some(text.as_ref()), None),
    };
    for raw in [ms, seconds].into_iter().flatten() {
        for value in [parse_epoch_ms(raw), parse_epoch_seconds(raw), parse_iso8601(raw)].into_iter().flatten()
        {
            assert!(in_range(value), "{raw:?} gave {value}");
        }
    }
    match occurred_at(ms, seconds, ARRIVAL_MS) {
        Ok(at) => {
            match at.source {
                TimeSource::Arrival => {
                    assert!(present(ms).is_none() && present(seconds).is_none());
                    assert_eq!(at.epoch_ms, ARRIVAL_MS);
                }
                TimeSource::TimestampMs => assert_eq!(Some(at.epoch_ms), parse_epoch_ms(ms.unwrap())),
                TimeSource::TimestampSeconds | TimeSource::Iso8601 => assert!(present(ms).is_none()),
            }
            if at.source != TimeSource::Arrival {
                assert!(in_range(at.epoch_ms));
            }
        }
        Err(message) => {
            assert!(present(ms).is_some() || present(seconds).is_some(), "absent values fall back");
            assert!(!message.is_empty());
        }
    }
    // Round trips of a time drawn from the input.
    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let value = (u64::from_le_bytes(word) % (MAX_EPOCH_MS as u64 + 1)) as i64;
    assert_eq!(parse_epoch_ms(&value.to_string()), Some(value));
    assert_eq!(parse_epoch_seconds(&format!("{}.{:03}", value / 1000, value % 1000)), Some(value));
    let rfc3339 = DateTime::from_timestamp_millis(value)
        .expect("within chrono's range")
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    assert_eq!(parse_iso8601(&rfc3339), Some(value), "{rfc3339}");
});
