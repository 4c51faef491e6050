//! The demo contact center: one workspace with activities, multilingual workers, four queues
//! (one multi-reservation, one with a single agent), a workflow with filters and a routing timeout, and people who
//! accept, reject or ignore reservations and customers who hang up. Everything the tracer has
//! to explain happens in it within minutes.

use serde_json::json;

use super::engine::{Behaviour, Engine};
use super::model::WorkflowFilter;

/// Where the simulator sends its callbacks.
#[derive(Debug, Clone)]
pub struct CallbackUrls {
    pub assignment: Option<String>,
    pub events: Option<String>,
}

impl CallbackUrls {
    /// The tracer's two webhook endpoints under `base` (e.g. `http://127.0.0.1:8787`).
    pub fn tracer(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            assignment: Some(format!("{base}/webhooks/assignment")),
            events: Some(format!("{base}/webhooks/events")),
        }
    }
}

/// The SIDs a scenario created, for commands and tests to refer to.
#[derive(Debug, Clone)]
pub struct DemoSids {
    pub workspace: String,
    pub workflow: String,
    pub available: String,
    pub offline: String,
    pub busy: String,
    pub break_activity: String,
    pub queues: Vec<String>,
    pub workers: Vec<String>,
}

/// Knobs of the demo traffic.
#[derive(Debug, Clone)]
pub struct DemoTraffic {
    pub tasks_per_minute: f64,
    /// Arrivals stop after this much virtual time from the start.
    pub arrivals_for_ms: i64,
    /// Seconds a reservation may stay pending.
    pub reservation_timeout: u64,
}

/// Builds the demo workspace into `engine` and starts its people and customers.
pub fn build_demo(engine: &mut Engine, urls: &CallbackUrls, traffic: &DemoTraffic) -> DemoSids {
    let ws = engine.add_workspace("Acme Support", urls.events.clone());
    let offline = engine.add_activity(&ws, "Offline", false);
    let available = engine.add_activity(&ws, "Available", true);
    let busy = engine.add_activity(&ws, "Busy", false);
    let break_activity = engine.add_activity(&ws, "Break", false);
    engine.set_timeout_activity(&ws, &offline);
    let people = [
        ("alice", json!({"languages": ["en"], "skill": ["support"], "contact_uri": "client:alice"})),
        (
            "bob",
            json!({"languages": ["en", "es"], "skill": ["support", "sales"], "contact_uri": "client:bob"}),
        ),
        ("carmen", json!({"languages": ["es"], "skill": ["support"], "contact_uri": "client:carmen"})),
        ("dmitri", json!({"languages": ["en"], "skill": ["sales"], "contact_uri": "client:dmitri"})),
        ("elena", json!({"languages": ["es", "en"], "skill": ["sales"], "contact_uri": "client:elena"})),
        (
            "farid",
            json!({"languages": ["en"], "skill": ["support", "billing"], "contact_uri": "client:farid"}),
        ),
        (
            "grace",
            json!({"languages": ["en"], "skill": ["sales", "support", "vip"], "contact_uri": "client:grace"}),
        ),
        ("hiro", json!({"languages": ["en"], "skill": ["support"], "contact_uri": "client:hiro"})),
        (
            "ines",
            json!({"languages": ["es", "en"], "skill": ["support", "billing"], "contact_uri": "client:ines"}),
        ),
        ("jamal", json!({"languages": ["en"], "skill": ["sales"], "contact_uri": "client:jamal"})),
        ("kiri", json!({"languages": ["en", "es"], "skill": ["support"], "contact_uri": "client:kiri"})),
        ("lena", json!({"languages": ["en"], "skill": ["billing", "support"], "contact_uri": "client:lena"})),
    ];
    let workers =
        people.into_iter().map(|(name, attrs)| engine.add_worker(&ws, name, attrs, &available)).collect();
    let spanish = engine.add_queue(&ws, "Spanish", r#"languages HAS "es""#, 1, Some(busy.clone()));
    let support = engine.add_queue(
        &ws,
        "Support",
        r#"languages HAS "en" AND skill has "support""#,
        1,
        Some(busy.clone()),
    );
    let sales = engine.add_queue(&ws, "Sales", r#"skill HAS "sales""#, 2, Some(busy.clone()));
    let everyone = engine.add_queue(&ws, "Everyone", "1==1", 1, Some(busy.clone()));
    // One VIP agent: VIP callers queue up, so the workflow times some out and TTLs expire.
    let vip = engine.add_queue(&ws, "VIP", r#"skill HAS "vip""#, 1, Some(busy.clone()));
    let filters = vec![
        WorkflowFilter {
            friendly_name: "VIP".into(),
            expression: r#"customer.tier == "vip""#.into(),
            queue_sid: vip.clone(),
            timeout: Some(60),
        },
        WorkflowFilter {
            friendly_name: "Spanish speakers".into(),
            expression: r#"selected_language == "es""#.into(),
            queue_sid: spanish.clone(),
            timeout: None,
        },
        WorkflowFilter {
            friendly_name: "Sales".into(),
            expression: r#"type == "sales""#.into(),
            queue_sid: sales.clone(),
            // Sales leads that wait too long are dropped by the workflow.
            timeout: Some(240),
        },
        WorkflowFilter {
            friendly_name: "Support".into(),
            expression: r#"type IN ["support", "billing"]"#.into(),
            queue_sid: support.clone(),
            timeout: None,
        },
    ];
    let workflow = engine.add_workflow(
        &ws,
        "Inbound",
        urls.assignment.clone(),
        traffic.reservation_timeout,
        filters,
        &everyone,
    );
    let start = engine.now_ms();
    engine.start_behaviour(Behaviour {
        workspace_sid: ws.clone(),
        workflow_sid: workflow.clone(),
        tasks_per_minute: traffic.tasks_per_minute,
        arrivals_until_ms: start + traffic.arrivals_for_ms,
        task_templates: vec![
            json!({"type": "support", "selected_language": "en", "channel": "voice"}),
            json!({"type": "support", "selected_language": "es", "channel": "voice"}),
            json!({"type": "sales", "selected_language": "en", "channel": "chat"}),
            json!({"type": "billing", "selected_language": "en", "channel": "voice"}),
            json!({"type": "feedback", "selected_language": "en", "channel": "sms"}),
            json!({"type": "support", "selected_language": "en", "channel": "voice", "customer": {"tier": "vip"}}),
        ],
        accept_probability: 0.72,
        reject_probability: 0.13,
        think_ms: (1_000, 6_000),
        talk_ms: (5_000, 30_000),
        wrapup_ms: (2_000, 10_000),
        away_ms: (10_000, 45_000),
        hangup_probability: 0.08,
        hangup_after_ms: (2_000, 40_000),
        short_ttl_probability: 0.05,
        short_ttl_seconds: 45,
        available_activity_sid: available.clone(),
        reject_activity_sid: break_activity.clone(),
    });
    DemoSids {
        workspace: ws,
        workflow,
        available,
        offline,
        busy,
        break_activity,
        queues: vec![vip, spanish, support, sales, everyone],
        workers,
    }
}
