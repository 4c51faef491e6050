//! Fuzzes what the tracer does with a webhook body (the parsing itself is `fuzz/`'s `form_body`):
//! the typed fact its projections consume, and ingest's decision about the request.
//!
//! Checks: nothing panics; a fact built from the raw body, as rebuilds do, is the one built from
//! the parsed parameters, and folds on its own; every body is either a fact or a rejection with a
//! reason and a JSON error answer, with the body kept byte for byte.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use taskrouter_protocol::webhook::{extract_facts, parse_form};
use taskrouter_protocol::{Endpoint, FormParams};
use taskrouter_tracer::ingest::{Ingest, IngestConfig, ReceivedRequest, SignatureMode};
use taskrouter_tracer::projections::fold::{fold_task, ProjectionConfig};
use taskrouter_tracer::projections::Fact;
use taskrouter_tracer::projections::Projector;
use taskrouter_tracer::relay::Relay;
use taskrouter_tracer::storage::writer::{Synchronous, Writer, WriterConfig};

const ARRIVAL_MS: i64 = 1_700_000_000_000;

/// One `Ingest` for the whole run. Its writer is never sent a row: `decide` only judges.
fn ingest() -> &'static Ingest {
    static INGEST: OnceLock<Ingest> = OnceLock::new();
    INGEST.get_or_init(|| {
        let database = std::env::temp_dir().join(format!("tracer-fuzz-{}.db", std::process::id()));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            taskrouter_tracer::storage::open(&database).await.expect("database opens").pool.close().await;
        });
        let writer = Writer::start(
            WriterConfig {
                database,
                synchronous: Synchronous::Normal,
                max_batch: 1,
                busy_timeout: Duration::from_secs(1),
                queue_capacity: 1,
                wal_restart_frames: taskrouter_tracer::storage::writer::DEFAULT_WAL_RESTART_FRAMES,
            },
            Default::default(),
            Projector::new(ProjectionConfig::default()),
        )
        .expect("writer starts");
        Ingest::new(
            IngestConfig {
                auth_token: None,
                // Unchecked, so that every well-formed body can reach the fact path.
                signature_mode: SignatureMode::Off,
                public_url: Some("https://tracer.example".into()),
                body_limit: 64 * 1024,
                forward_to: None,
                connected: Default::default(),
            },
            writer,
            Relay::new(None),
        )
    })
}

fuzz_target!(|body: &[u8]| {
    let parsed = parse_form(body);
    if let Ok(params) = &parsed {
        check_fact(body, params);
    }
    for endpoint in [Endpoint::Assignment, Endpoint::Events] {
        check_decision(endpoint, body, parsed.as_ref().ok());
    }
});

fn check_fact(body: &[u8], params: &FormParams) {
    for endpoint in [Endpoint::Assignment, Endpoint::Events] {
        let Ok(facts) = extract_facts(endpoint, params, ARRIVAL_MS) else { continue };
        // The typed fact the projections consume, folded on its own; a rebuild builds the same
        // fact from the stored body without parsing all of it.
        let fact = Fact::from_parts(1, &facts, Some(params), Some("{}"));
        assert_eq!(fact, Fact::from_body(1, &facts, body, Some("{}")), "the rebuild's fact is ingest's");
        let projection = fold_task("WTfuzz", &[fact], &[], &ProjectionConfig::default());
        assert_eq!(projection.timeline.len(), 1);
    }
}

fn check_decision(endpoint: Endpoint, body: &[u8], params: Option<&FormParams>) {
    let decision = ingest().decide(
        endpoint,
        ReceivedRequest {
            method: "POST".into(),
            path_and_query: format!("/webhooks/{}", endpoint.as_str()),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: body.to_vec(),
            body_truncated: false,
            read_error: None,
            remote_addr: None,
            claimed_base_urls: vec!["https://tracer.example".into()],
            arrived: Instant::now(),
            arrival_ms: ARRIVAL_MS,
        },
        &|_| "{}".to_string(),
    );
    let record = &decision.record;
    assert_eq!(record.body, body, "the body is kept byte for byte");
    assert_eq!(decision.accepted, (200..300).contains(&record.response_status));
    if decision.accepted {
        // Accepted (signatures unchecked) means a fact, nothing else.
        assert!(record.trusted && record.facts.is_some() && record.rejection.is_none());
        assert_eq!(record.params.as_ref(), params);
    } else {
        assert!(matches!(record.response_status, 400 | 413 | 415), "status {}", record.response_status);
        assert!(!record.trusted);
        let reason = record.rejection.as_deref().expect("a rejection says why");
        assert!(!reason.is_empty());
        let answer: serde_json::Value =
            serde_json::from_str(record.response_body.as_deref().unwrap_or("")).expect("a JSON error");
        assert!(answer.get("error").and_then(|e| e.as_str()).is_some_and(|e| !e.is_empty()));
    }
}
