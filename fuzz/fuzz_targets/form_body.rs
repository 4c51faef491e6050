//! Fuzzes a webhook body from the bytes up: the form parser and fact extraction.
//!
//! Checks: nothing panics; a parsed body re-encodes to the same parameters; extracted facts agree
//! with the parameters they came from. What the tracer does with the body (the typed fact its
//! projections fold, ingest's decision) is `fuzz/tracer`'s `ingest_decision`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use taskrouter_protocol::timestamp::MAX_EPOCH_MS;
use taskrouter_protocol::webhook::{encode_form, extract_facts, parse_form, ParseError};
use taskrouter_protocol::{Endpoint, FormParams, TimeSource};

const ARRIVAL_MS: i64 = 1_700_000_000_000;

fuzz_target!(|body: &[u8]| {
    let parsed = parse_form(body);
    match &parsed {
        Ok(params) => check_params(body, params),
        Err(ParseError::Empty) => assert!(body.iter().all(u8::is_ascii_whitespace)),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});

fn check_params(body: &[u8], params: &FormParams) {
    // At most one pair per `&`-separated segment.
    assert!(params.pairs().len() <= body.iter().filter(|b| **b == b'&').count() + 1);
    if !params.pairs().is_empty() {
        let encoded = encode_form(params.pairs());
        assert_eq!(parse_form(encoded.as_bytes()).as_ref(), Ok(params), "encode/parse round trip");
    }
    for endpoint in [Endpoint::Assignment, Endpoint::Events] {
        let Ok(facts) = extract_facts(endpoint, params, ARRIVAL_MS) else { continue };
        assert!(!facts.event_type.is_empty());
        match endpoint {
            Endpoint::Assignment => {
                assert_eq!(facts.event_type, "assignment");
                assert_eq!(facts.task_sid.as_deref(), params.non_empty("TaskSid"));
                assert_eq!(facts.reservation_sid.as_deref(), params.non_empty("ReservationSid"));
            }
            Endpoint::Events => assert_eq!(Some(facts.event_type.as_str()), params.non_empty("EventType")),
        }
        if let Some(task) = &facts.task_sid {
            let named = params.non_empty("TaskSid").or(params.non_empty("ResourceSid"));
            assert_eq!(Some(task.as_str()), named);
        }
        match facts.occurred_at.source {
            TimeSource::Arrival => assert_eq!(facts.occurred_at.epoch_ms, ARRIVAL_MS),
            _ => assert!((0..=MAX_EPOCH_MS).contains(&facts.occurred_at.epoch_ms)),
        }
    }
}
