//! Fuzzes the Event Streams body parser: one CloudEvent or a batch, each TaskRouter event
//! mapped onto its event callback's parameters.
//!
//! Input: the body. Checks: nothing panics; a body is refused whole or taken whole; each event
//! taken is a slice of the body as received; a TaskRouter event has the parameters its fact is
//! indexed by, a time within range, and reads back from its stored text (what a rebuild does)
//! to exactly what ingest mapped; any other type never becomes a fact.

#![no_main]

use libfuzzer_sys::fuzz_target;
use taskrouter_protocol::cloud_event::{
    parse_delivery, parse_stored, MAX_EVENTS_PER_BODY, TASKROUTER_TYPE_PREFIX,
};
use taskrouter_protocol::timestamp::MAX_EPOCH_MS;

const ARRIVAL_MS: i64 = 42;

fuzz_target!(|data: &[u8]| {
    let Ok(delivery) = parse_delivery(data, ARRIVAL_MS) else { return };
    assert!(!delivery.events.is_empty() && delivery.events.len() <= MAX_EVENTS_PER_BODY);
    assert!(delivery.batched || delivery.events.len() == 1);
    let body = std::str::from_utf8(data).expect("a parsed body is UTF-8");
    for (index, event) in delivery.events.iter().enumerate() {
        assert_eq!(event.index, index);
        let start = event.raw.as_ptr() as usize - body.as_ptr() as usize;
        assert!(start + event.raw.len() <= body.len(), "each event is a slice of the body");
        assert!(!event.id.is_empty() && !event.event_type.is_empty());
        match &event.taskrouter {
            None => assert!(!event.event_type.starts_with(TASKROUTER_TYPE_PREFIX)),
            Some(mapped) => {
                let suffix = &event.event_type[TASKROUTER_TYPE_PREFIX.len()..];
                assert_eq!(mapped.params.get("EventType"), Some(suffix));
                assert_eq!(mapped.facts.event_type, suffix);
                assert!(mapped.facts.event_sid.as_deref().is_some_and(|sid| !sid.is_empty()));
                assert_eq!(mapped.facts.event_sid.as_deref(), mapped.params.get("Sid"));
                assert!((0..=MAX_EPOCH_MS).contains(&mapped.facts.occurred_at.epoch_ms));
                let stored = parse_stored(event.raw, ARRIVAL_MS).expect("a mapped event reads back");
                assert_eq!(&stored, mapped, "the rebuild's mapping is ingest's");
            }
        }
    }
});
