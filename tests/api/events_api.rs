//! TaskRouter's own history: `import`, following the Events API and reconciliation, against
//! the simulator's Events API and a local fake of Twilio's (429s, paging across hosts,
//! redacted attributes).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use serde_json::{json, Value};
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::rest;
use taskrouter_simulator::runtime::ClockMode;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{start_scenario, RunningSimulator, ScenarioOptions};
use taskrouter_tracer::cli::{Cli, Command, ImportArgs};
use taskrouter_tracer::commands::import::{run as run_import, ImportRun};
use taskrouter_tracer::history::import::Summary;

use crate::helpers::{
    dump, first_difference, spawn_app, spawn_app_with, start_simulator, TestApp, AUTH_TOKEN, SIM_ACCOUNT,
};

/// Only event callbacks: the Events API has no assignment callbacks, so the two paths are
/// compared on what both carry.
fn events_only(base: &str) -> CallbackUrls {
    CallbackUrls { assignment: None, events: CallbackUrls::tracer(base).events }
}

fn traffic(per_minute: f64, minutes: i64) -> DemoTraffic {
    DemoTraffic { tasks_per_minute: per_minute, arrivals_for_ms: minutes * 60_000, reservation_timeout: 30 }
}

fn import_args(database: &std::path::Path, base_url: &str, workspace: &str, extra: &[&str]) -> ImportArgs {
    let mut argv = vec![
        "taskrouter-tracer",
        "import",
        "--database",
        database.to_str().unwrap(),
        "--workspace-sid",
        workspace,
        "--taskrouter-base-url",
        base_url,
        "--account-sid",
        SIM_ACCOUNT,
        "--auth-token",
        AUTH_TOKEN,
        "--taskrouter-timeout-ms",
        "5000",
    ];
    argv.extend_from_slice(extra);
    let Command::Import(args) = Cli::parse_from(argv).command else { panic!("import parses") };
    *args
}

/// Imports and returns the one window's summary.
async fn import(args: &ImportArgs) -> Summary {
    match run_import(args, false).await.expect("import runs") {
        ImportRun::Done(mut windows) => {
            assert_eq!(windows.len(), 1);
            windows.remove(0).1.expect("the window imports")
        }
        ImportRun::Refused(why) => panic!("import refused: {why}"),
    }
}

#[tokio::test]
async fn import_gives_the_webhook_paths_projections_and_dedups_in_both_orders() {
    let started = since_start_now();
    let webhooks = spawn_app().await;
    let sim = start_simulator(21, events_only(&webhooks.address), traffic(12.0, 8), Faults::default(), None);
    sim.simulator.run_for(10 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    webhooks.projections_caught_up().await;
    let emitted: u64 = truth.events_emitted.values().sum();
    assert!(emitted > 1_000, "more than one page of events: {emitted}");

    // The same history from the Events API alone, into a database of its own.
    let dir = tempfile::tempdir().unwrap();
    let imported_db = dir.path().join("imported.db");
    let args = import_args(&imported_db, sim.rest_base_url(), &sim.sids.workspace, &["--since", &started]);
    let summary = import(&args).await;
    assert_eq!(summary.fetched, emitted, "{summary:?}");
    assert_eq!(summary.new, emitted);
    assert_eq!((summary.known, summary.redacted, summary.unreadable), (0, 0, 0));
    assert!(summary.pages >= 2, "{summary:?}");
    let from_webhooks = dump(&webhooks.database);
    let from_api = dump(&imported_db);
    let difference = first_difference(&from_webhooks, &from_api);
    if let Some((left, _)) = &difference {
        // What the imported log holds for the first task that differs, to tell a missing fact
        // from a fold that went another way.
        let task = left.split('"').nth(1).unwrap_or_default().to_string();
        let connection = rusqlite::Connection::open(&imported_db).unwrap();
        let mut statement = connection
            .prepare(
                "SELECT id, event_type, occurred_at_ms, is_fact FROM events WHERE task_sid = ?1 ORDER BY id",
            )
            .unwrap();
        let rows: Vec<(i64, String, i64, i64)> = statement
            .query_map([&task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mark: Option<i64> = connection
            .query_row("SELECT value FROM proj_meta WHERE key = 'projected_through'", [], |r| r.get(0))
            .ok();
        let last: i64 = connection.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0)).unwrap();
        panic!("projections differ at {difference:?}; the imported log's rows of {task}: {rows:?}; mark {mark:?} of {last}");
    }
    assert!(from_api.contains("task.completed") || from_api.contains("completed"));

    // Import after the webhooks: everything is already in the log, nothing is stored again.
    let rows_before = webhooks.count("SELECT COUNT(*) FROM events");
    let into_webhook_db =
        import_args(&webhooks.database, sim.rest_base_url(), &sim.sids.workspace, &["--since", &started]);
    let again = import(&into_webhook_db).await;
    assert_eq!((again.fetched, again.new, again.known), (emitted, 0, emitted), "{again:?}");
    assert_eq!(webhooks.count("SELECT COUNT(*) FROM events"), rows_before);
    webhooks.projections_caught_up().await;
    assert_eq!(first_difference(&dump(&webhooks.database), &from_webhooks), None);

    // Webhooks after the import: the same events, delivered again as signed callbacks to a
    // server on the imported log, are recorded as duplicates and change nothing.
    let bodies: Vec<Vec<(String, String)>> = webhooks.query(
        "SELECT body, payload_encoding FROM events WHERE endpoint = 'events' AND is_fact = 1 ORDER BY id LIMIT 300",
        |row| {
            let body = TestApp::payload(row, 0, 1)?;
            Ok(taskrouter_protocol::webhook::parse_form(&body).unwrap().0)
        },
    );
    let imported_app = spawn_app_with(|args| args.database = imported_db.clone()).await;
    for params in &bodies {
        let response = imported_app.post_signed("/webhooks/events", params).await;
        assert_eq!(response.status().as_u16(), 204);
    }
    imported_app.projections_caught_up().await;
    let duplicates = imported_app.count(
        "SELECT COUNT(*) FROM events WHERE endpoint = 'events' AND duplicate_of IS NOT NULL AND is_fact = 0",
    );
    assert_eq!(duplicates as usize, bodies.len());
    assert_eq!(first_difference(&dump(&imported_db), &from_api), None);
    let (status, listed) = imported_app.get_json("/api/requests?endpoint=events-api&limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(5), "{listed}");
    assert_eq!(listed["requests"][0]["endpoint"], "events-api");
    imported_app.stop().await;
    webhooks.stop().await;
    sim.stop().await;
}

fn since_start_now() -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn an_import_while_serve_writes_leaves_one_unbroken_chain_and_the_rebuilds_projections() {
    let started = since_start_now();
    let app = spawn_app().await;
    // Webhooks of one run keep arriving while events of the same run are imported.
    let sim = start_simulator(33, events_only(&app.address), traffic(20.0, 6), Faults::default(), None);
    let driver = sim.simulator.clone();
    let run = tokio::spawn(async move { driver.run_for(8 * 60_000).await });
    let args = import_args(&app.database, sim.rest_base_url(), &sim.sids.workspace, &["--since", &started]);
    let mut imports = 0;
    while !run.is_finished() || imports < 2 {
        import(&args).await;
        imports += 1;
    }
    run.await.unwrap();
    let last = import(&args).await;
    app.projections_caught_up().await;
    let emitted: u64 = sim.simulator.ground_truth().events_emitted.values().sum();
    assert_eq!(last.fetched, emitted);
    let facts = app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1") as u64;
    assert_eq!(facts, emitted, "each event is one fact, whichever path brought it first");
    app.stop().await;
    let connection = rusqlite::Connection::open(&app.database).unwrap();
    let report = taskrouter_tracer::storage::event_log::verify(&connection, |_| {}).unwrap();
    assert_eq!(report.first_bad_row, None, "the hash chain has no fork");
    let comparison = taskrouter_tracer::commands::compare_with_rebuild(
        &app.database,
        &taskrouter_tracer::projections::ProjectionConfig::default(),
    )
    .unwrap();
    assert_eq!(first_difference(&comparison.stored, &comparison.rebuilt), None);
    sim.stop().await;
}

/// A simulator whose clock follows the wall clock, sending no webhook at all.
fn real_time_simulator(seed: u64) -> RunningSimulator {
    start_scenario(ScenarioOptions {
        seed,
        account_sid: Some(SIM_ACCOUNT.into()),
        auth_token: AUTH_TOKEN.into(),
        callbacks: CallbackUrls { assignment: None, events: None },
        traffic: DemoTraffic { tasks_per_minute: 0.0, arrivals_for_ms: 0, reservation_timeout: 30 },
        faults: Faults::default(),
        callback_timeouts: None,
        clock: ClockMode::Scaled(1.0),
        listener: rest::bind("127.0.0.1:0".parse().unwrap()).unwrap().0,
        event_streams: None,
    })
    .expect("simulator starts")
}

async fn create_task(sim: &RunningSimulator) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/Workspaces/{}/Tasks", sim.rest_base_url(), sim.sids.workspace))
        .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
        .form(&[("WorkflowSid", sim.sids.workflow.as_str()), ("Attributes", r#"{"selected_language":"en"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    response.json::<Value>().await.unwrap()["sid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn following_the_events_api_needs_no_webhook_and_sees_a_new_event_within_two_polls() {
    let sim = real_time_simulator(41);
    let driver = sim.simulator.clone();
    let clock = tokio::spawn(async move { driver.run_until(i64::MAX / 2).await });
    let app = spawn_app_with(|args| {
        args.twilio.account_sid = Some(SIM_ACCOUNT.into());
        args.rest.base_url = sim.rest_base_url().to_string();
        args.workspace_sid = Some(sim.sids.workspace.clone());
        args.follow_events_api = Some(1);
        args.reconcile_every = Some(0);
    })
    .await;
    // One poll first, so the next event is the follower's steady state.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let task = create_task(&sim).await;
    let created = Instant::now();
    let seen = loop {
        let (status, _) = app.get_json(&format!("/api/tasks/{task}")).await;
        if status == 200 {
            break created.elapsed();
        }
        assert!(created.elapsed() < Duration::from_secs(10), "the task never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(seen < Duration::from_millis(2_500), "seen after {seen:?}, more than two 1 s polls");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE endpoint <> 'events-api'"),
        0,
        "no webhook at all"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("tracer_events_api_events_total{via=\"follow\"} "), "{metrics}");
    assert!(metrics.contains("tracer_events_api_lag_seconds{via=\"follow\"} "), "{metrics}");
    let follow_count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tracer_events_api_events_total{via=\"follow\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(follow_count >= 1, "{metrics}");
    let dashboard = app.get_text("/").await;
    assert!(dashboard.contains("id=\"follower\""), "the dashboard shows the follower");
    // The task page says where its events came from.
    let page = app.get_text(&format!("/tasks/{task}")).await;
    assert!(page.contains("via-api"), "the timeline marks events fetched from the API");
    clock.abort();
    app.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn reconciliation_heals_dropped_webhooks_when_the_tracer_starts() {
    let first = spawn_app().await;
    let faults = Faults { duplicate_rate: 0.0, reorder_rate: 0.0, drop_rate: 0.15 };
    let sim = start_simulator(51, events_only(&first.address), traffic(10.0, 3), faults, None);
    sim.simulator.run_for(4 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    let dropped: u64 = truth.delivery.events_dropped.values().sum();
    assert!(dropped > 0, "{truth:?}");
    first.stop().await;
    // The same log, now with credentials: reconciliation runs at start and fills the gaps.
    let database = first.database.clone();
    let healed_app = spawn_app_with(|args| {
        args.database = database;
        args.twilio.account_sid = Some(SIM_ACCOUNT.into());
        args.rest.base_url = sim.rest_base_url().to_string();
        args.workspace_sid = Some(sim.sids.workspace.clone());
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let emitted: u64 = truth.events_emitted.values().sum();
    loop {
        healed_app.projections_caught_up().await;
        let facts = healed_app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1") as u64;
        if facts == emitted {
            break;
        }
        assert!(Instant::now() < deadline, "{facts} facts of {emitted} after reconciliation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed =
        healed_app.count("SELECT COUNT(*) FROM events WHERE endpoint = 'events-api' AND is_fact = 1") as u64;
    assert_eq!(healed, dropped, "exactly the dropped events were appended");
    let metrics = healed_app.get_text("/metrics").await;
    assert!(metrics.contains(&format!("tracer_events_api_healed_total {dropped}\n")), "{metrics}");
    // Every task ends as the simulator says.
    let projected: std::collections::BTreeMap<String, String> = healed_app
        .query("SELECT task_sid, status FROM proj_tasks", |row| Ok((row.get(0)?, row.get(1)?)))
        .into_iter()
        .collect();
    assert_eq!(projected, truth.task_status);
    healed_app.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn bad_credentials_and_an_unknown_workspace_are_refused_in_plain_words_and_write_nothing() {
    let sim = start_simulator(
        61,
        CallbackUrls { assignment: None, events: None },
        traffic(0.0, 0),
        Faults::default(),
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("never.db");
    let mut args = import_args(&database, sim.rest_base_url(), &sim.sids.workspace, &[]);
    args.rest.twilio.auth_token = Some("wrong-token".into());
    match run_import(&args, false).await.unwrap() {
        ImportRun::Refused(why) => assert!(why.contains("refused the credentials"), "{why}"),
        done => panic!("{done:?}"),
    }
    let args = import_args(&database, sim.rest_base_url(), "WS00000000000000000000000000000000", &[]);
    match run_import(&args, false).await.unwrap() {
        ImportRun::Refused(why) => {
            assert!(why.contains("does not know workspace WS00000000000000000000000000000000"), "{why}")
        }
        done => panic!("{done:?}"),
    }
    let mut args = import_args(&database, sim.rest_base_url(), &sim.sids.workspace, &[]);
    args.rest.twilio.auth_token = None;
    match run_import(&args, false).await.unwrap() {
        ImportRun::Refused(why) => assert!(why.contains("needs REST credentials"), "{why}"),
        done => panic!("{done:?}"),
    }
    assert!(!database.exists(), "nothing was written, not even an empty log");
    // A window older than TaskRouter keeps: what exists is imported, and the summary says so.
    let forty_days_ago = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let args =
        import_args(&database, sim.rest_base_url(), &sim.sids.workspace, &["--since", &forty_days_ago]);
    let summary = import(&args).await;
    let note = summary.retention_note.clone().expect("the summary says the window was cut");
    assert!(note.starts_with("TaskRouter keeps events for 30 days"), "{note}");
    assert!(summary.describe().ends_with(&note));
    sim.stop().await;
}

const FAKE_WS: &str = "WS0123456789abcdef0123456789abcdef";
const FAKE_TASK: &str = "WT0123456789abcdef0123456789abcdef";

fn fake_event(n: u32, event_type: &str, date_ms: i64, attributes: &str) -> Value {
    json!({
        "account_sid": SIM_ACCOUNT, "workspace_sid": FAKE_WS, "sid": format!("EV{n:032x}"),
        "event_type": event_type, "description": "", "event_date_ms": date_ms, "event_date": "",
        "resource_type": "task", "resource_sid": FAKE_TASK,
        "event_data": {"task_sid": FAKE_TASK, "task_attributes": attributes, "task_assignment_status": "pending",
                       "workspace_sid": FAKE_WS, "task_queue_sid": "WQ0123456789abcdef0123456789abcdef"}
    })
}

/// A local fake of TaskRouter's Events API: a 429 first, then two pages (newest first) whose
/// `next_page_url` names another host. Both events are older than 30 days.
async fn fake_events_api(
    created_ms: i64,
    updated_ms: i64,
) -> (String, Arc<AtomicU32>, Arc<std::sync::Mutex<Vec<String>>>, actix_web::dev::ServerHandle) {
    let calls = Arc::new(AtomicU32::new(0));
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let page_one = json!({"events": [fake_event(2, "task.updated", updated_ms, r#"{"redacted":"***"}"#)],
        "meta": {"next_page_url": format!("https://elsewhere.example/v1/Workspaces/{FAKE_WS}/Events?PageSize=1000&PageToken=PT1"),
                 "page": 0, "page_size": 1000}});
    let page_two = json!({"events": [fake_event(1, "task.created", created_ms, "{}")],
        "meta": {"next_page_url": null, "page": 1, "page_size": 1000}});
    let (state_calls, state_hosts) = (calls.clone(), hosts.clone());
    let server = HttpServer::new(move || {
        let (calls, hosts, page_one, page_two) =
            (state_calls.clone(), state_hosts.clone(), page_one.clone(), page_two.clone());
        App::new()
            .route(
                &format!("/v1/Workspaces/{FAKE_WS}"),
                web::get().to(|| async { HttpResponse::Ok().json(json!({"sid": FAKE_WS})) }),
            )
            .route(
                &format!("/v1/Workspaces/{FAKE_WS}/Events"),
                web::get().to(move |request: HttpRequest| {
                    let (calls, hosts, page_one, page_two) =
                        (calls.clone(), hosts.clone(), page_one.clone(), page_two.clone());
                    async move {
                        hosts.lock().unwrap().push(request.connection_info().host().to_string());
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            return HttpResponse::TooManyRequests()
                                .insert_header(("Retry-After", "1"))
                                .json(json!({"code": 20429, "message": "Too many requests"}));
                        }
                        if request.query_string().contains("PageToken=PT1") {
                            HttpResponse::Ok().json(page_two)
                        } else {
                            HttpResponse::Ok().json(page_one)
                        }
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (base, calls, hosts, handle)
}

#[tokio::test]
async fn a_429_is_waited_out_pages_follow_next_page_url_on_our_host_and_redacted_attributes_never_win() {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (created_ms, updated_ms) = (now_ms - 43_300 * 60_000, now_ms - 43_250 * 60_000);
    let (base, calls, hosts, server) = fake_events_api(created_ms, updated_ms).await;
    // The webhook of the first event arrived when it happened, with the task's attributes.
    let app = spawn_app().await;
    let webhook: Vec<(String, String)> = [
        ("Sid", format!("EV{:032x}", 1)),
        ("EventType", "task.created".into()),
        ("AccountSid", SIM_ACCOUNT.into()),
        ("WorkspaceSid", FAKE_WS.into()),
        ("TaskSid", FAKE_TASK.into()),
        ("TaskAttributes", r#"{"known":true}"#.into()),
        ("TaskAssignmentStatus", "pending".into()),
        ("TimestampMs", created_ms.to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    assert_eq!(app.post_signed("/webhooks/events", &webhook).await.status().as_u16(), 204);
    app.projections_caught_up().await;

    let args = import_args(&app.database, &base, FAKE_WS, &["--task-sid", FAKE_TASK]);
    let started = Instant::now();
    let summary = import(&args).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "the Retry-After second was waited");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one 429, then two pages");
    assert!(
        hosts.lock().unwrap().iter().all(|h| h.starts_with("127.0.0.1")),
        "credentials never left the base URL"
    );
    assert_eq!(
        (summary.fetched, summary.new, summary.known, summary.redacted, summary.pages),
        (2, 1, 1, 1, 2),
        "{summary:?}"
    );
    assert!(summary.describe().contains("1 older than 30 days stored without their task attributes"));
    let attributes: Vec<Option<String>> =
        app.query(&format!("SELECT attributes FROM proj_tasks WHERE task_sid = '{FAKE_TASK}'"), |r| r.get(0));
    assert_eq!(
        attributes,
        vec![Some(r#"{"known":true}"#.to_string())],
        "the redacted event did not overwrite them"
    );
    let stored: Vec<Vec<u8>> = app.query(
        "SELECT body, payload_encoding FROM events WHERE endpoint = 'events-api' ORDER BY id LIMIT 1",
        |row| TestApp::payload(row, 0, 1),
    );
    let served = fake_event(2, "task.updated", updated_ms, r#"{"redacted":"***"}"#).to_string();
    assert_eq!(String::from_utf8_lossy(&stored[0]), served, "the event's JSON is stored as it came");
    let statuses: Vec<String> = app.query(
        &format!("SELECT kind FROM proj_timeline WHERE task_sid = '{FAKE_TASK}' ORDER BY position"),
        |r| r.get(0),
    );
    assert_eq!(statuses.len(), 2, "both events are on the timeline: {statuses:?}");
    app.stop().await;
    server.stop(false).await;
}

async fn list_events(sim: &RunningSimulator, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/Workspaces/{}/Events?{query}", sim.rest_base_url(), sim.sids.workspace))
        .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn events_of(page: &Value) -> Vec<Value> {
    page["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_simulators_events_api_has_the_specs_fields_filters_paging_and_retention() {
    let sim = start_simulator(
        71,
        CallbackUrls { assignment: None, events: None },
        traffic(6.0, 3),
        Faults::default(),
        None,
    );
    let started_ms = sim.simulator.engine().now_ms();
    sim.simulator.run_for(5 * 60_000).await;
    let start = chrono::DateTime::from_timestamp_millis(started_ms - 1_000).unwrap().to_rfc3339();
    let since = format!("StartDate={}&PageSize=1000", urlencoding(&start));
    let (status, all) = list_events(&sim, &since).await;
    assert_eq!(status, 200, "{all}");
    let all = events_of(&all);
    assert!(all.len() > 50, "{}", all.len());
    // Every field of the OpenAPI spec's Event, on every event.
    let fields = [
        "account_sid",
        "actor_sid",
        "actor_type",
        "actor_url",
        "description",
        "event_data",
        "event_date",
        "event_date_ms",
        "event_type",
        "resource_sid",
        "resource_type",
        "resource_url",
        "sid",
        "source",
        "source_ip_address",
        "url",
        "workspace_sid",
    ];
    for event in &all {
        for field in fields {
            assert!(event.get(field).is_some(), "{field} missing from {event}");
        }
        assert!(event["sid"].as_str().unwrap().starts_with("EV"));
    }
    // Newest first.
    let dates: Vec<i64> = all.iter().map(|e| e["event_date_ms"].as_i64().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    // Each filter keeps exactly the matching events.
    let reservation =
        all.iter().find(|e| e["event_type"] == "reservation.created").expect("a reservation").clone();
    let data = &reservation["event_data"];
    for (param, value, field) in [
        ("TaskSid", data["task_sid"].as_str().unwrap(), "task_sid"),
        ("ReservationSid", data["reservation_sid"].as_str().unwrap(), "reservation_sid"),
        ("WorkerSid", data["worker_sid"].as_str().unwrap(), "worker_sid"),
        ("TaskQueueSid", data["task_queue_sid"].as_str().unwrap(), "task_queue_sid"),
        ("WorkflowSid", data["workflow_sid"].as_str().unwrap(), "workflow_sid"),
    ] {
        let (_, filtered) = list_events(&sim, &format!("{since}&{param}={value}")).await;
        let filtered = events_of(&filtered);
        let expected =
            all.iter().filter(|e| e["event_data"][field] == value || e["resource_sid"] == value).count();
        assert!(!filtered.is_empty(), "{param}");
        assert_eq!(filtered.len(), expected, "{param}={value}");
    }
    let (_, created) = list_events(&sim, &format!("{since}&EventType=task.created")).await;
    assert!(events_of(&created).iter().all(|e| e["event_type"] == "task.created"));
    let end = chrono::DateTime::from_timestamp_millis(dates[dates.len() / 2]).unwrap().to_rfc3339();
    let (_, until) = list_events(&sim, &format!("{since}&EndDate={}", urlencoding(&end))).await;
    assert!(events_of(&until).iter().all(|e| e["event_date_ms"].as_i64().unwrap() <= dates[dates.len() / 2]));
    // Minutes counts back from the simulator's now.
    let (_, recent) = list_events(&sim, "Minutes=1&PageSize=1000").await;
    let now = sim.simulator.engine().now_ms();
    assert!(events_of(&recent).iter().all(|e| e["event_date_ms"].as_i64().unwrap() >= now - 60_000));
    // Paging: next_page_url until null, every event once.
    let (_, mut page) = list_events(&sim, &since.replace("PageSize=1000", "PageSize=7")).await;
    let mut paged = Vec::new();
    loop {
        paged.extend(events_of(&page));
        let Some(next) = page["meta"]["next_page_url"].as_str() else { break };
        assert!(next.contains("PageToken="), "{next}");
        page = reqwest::Client::new()
            .get(next)
            .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(paged, all);
    let (status, _) = list_events(&sim, "PageSize=1001").await;
    assert_eq!(status, 400);
    // Retention: 31 days later the run's events are gone, whatever StartDate says.
    sim.simulator.run_for(31 * 24 * 3_600_000).await;
    let (_, later) = list_events(&sim, &since).await;
    assert!(events_of(&later).iter().all(|e| e["event_date_ms"].as_i64().unwrap() > started_ms + 5 * 60_000));
    sim.stop().await;
}

fn urlencoding(raw: &str) -> String {
    taskrouter_protocol::webhook::encode_form(&[("x".to_string(), raw.to_string())])[2..].to_string()
}

#[tokio::test]
async fn the_task_page_fetches_a_tasks_missing_events_from_the_api() {
    let sim_listener = rest::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let sim_base = sim_listener.1.clone();
    let app = spawn_app_with(|args| {
        args.twilio.account_sid = Some(SIM_ACCOUNT.into());
        args.rest.base_url = sim_base.clone();
        args.reconcile_every = Some(0);
    })
    .await;
    let faults = Faults { duplicate_rate: 0.0, reorder_rate: 0.0, drop_rate: 0.3 };
    let sim = start_simulator(81, events_only(&app.address), traffic(6.0, 2), faults, Some(sim_listener.0));
    sim.simulator.run_for(4 * 60_000).await;
    app.projections_caught_up().await;
    let gapped: Vec<String> = app
        .query("SELECT DISTINCT task_sid FROM proj_flags WHERE kind = 'gap' ORDER BY task_sid", |r| r.get(0));
    let task = gapped.first().expect("a task with a missing step").clone();
    let mut session = crate::web_session::WebSession::new(&app);
    let (status, _, page) = session.get(&format!("/tasks/{task}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("A step of this task is missing"), "the page offers the fetch");
    let token = crate::web_session::csrf_in(&page).unwrap();
    let (status, location, _) = session.post("/import", &[("csrf", &token), ("task_sid", &task)]).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let job = location.strip_prefix("/import?job=").expect("to the job's page").to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    let outcome = loop {
        let (status, job) = app.get_json(&format!("/api/imports/{job}")).await;
        assert_eq!(status, 200);
        if job["running"] == false {
            break job;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(outcome["result"]["Ok"].is_array(), "{outcome}");
    assert!(outcome["new"].as_u64().unwrap() > 0, "{outcome}");
    let (_, _, listing) = session.get(&location).await;
    assert!(listing.contains("already in the log"), "the import page shows the job");
    app.projections_caught_up().await;
    let (_, _, page) = session.get(&format!("/tasks/{task}")).await;
    assert!(!page.contains("A step of this task is missing"), "the gap is healed");
    assert!(page.contains("via-api"), "the healed steps are marked as fetched from the API");
    // A fetched event replays as the event callback it stands for: signed, form-encoded, and
    // here, sent to the tracer itself, known as the same event.
    let fetched: Vec<i64> = app.query(
        &format!(
            "SELECT id FROM events WHERE endpoint = 'events-api' AND task_sid = '{task}' ORDER BY id LIMIT 1"
        ),
        |r| r.get(0),
    );
    let replay = app
        .client
        .post(format!("{}/api/requests/{}/replay", app.address, fetched[0]))
        .json(&json!({"url": format!("{}/webhooks/events", app.address)}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 200);
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["answer"]["status"], 204, "{replayed}");
    app.projections_caught_up().await;
    let duplicate_of: Vec<Option<i64>> = app.query(
        "SELECT duplicate_of FROM events WHERE kind = 'webhook' AND endpoint = 'events' ORDER BY id DESC LIMIT 1",
        |r| r.get(0),
    );
    assert_eq!(duplicate_of, vec![Some(fetched[0])], "the replayed callback is the fetched event");
    // Bad input: a clear error, nothing started.
    let (status, _, page) = session.post("/import", &[("csrf", &token), ("task_sid", "nonsense")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("is not a Task Sid"), "{page}");
    let (status, _, _) = session.post("/import", &[("csrf", "forged"), ("task_sid", &task)]).await;
    assert_eq!(status, 403);
    app.stop().await;
    sim.stop().await;
}
