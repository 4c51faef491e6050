//! `connect` / `disconnect` against the simulator and a local app: the round trip leaves every
//! field as it was, the clobber guard, `--force`, a refused update midway, disconnect after the
//! server that connected died, and forwarding to each workflow's original URL while connected.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use serde_json::Value;
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::RunningSimulator;
use taskrouter_tracer::cli::Cli;

use crate::helpers::{spawn_app_with, start_simulator, TestApp, AUTH_TOKEN, SIM_ACCOUNT};

struct Rest {
    base: String,
    workspace: String,
    client: reqwest::Client,
}

impl Rest {
    fn of(sim: &RunningSimulator) -> Self {
        Self {
            base: sim.rest_base_url().to_string(),
            workspace: sim.sids.workspace.clone(),
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}/v1/Workspaces/{}{path}", self.base, self.workspace))
            .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> u16 {
        self.client
            .post(format!("{}/v1/Workspaces/{}{path}", self.base, self.workspace))
            .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
            .form(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The workspace and every workflow, as TaskRouter shows them (the fields connect may touch
    /// and every other).
    async fn snapshot(&self) -> (Value, Vec<Value>) {
        let mut workspace = self.get("").await;
        workspace.as_object_mut().unwrap().remove("date_updated");
        let mut workflows = self.get("/Workflows").await["workflows"].as_array().unwrap().clone();
        for workflow in &mut workflows {
            workflow.as_object_mut().unwrap().remove("date_updated");
        }
        (workspace, workflows)
    }
}

/// A simulator with three workflows: one calling `app/assign-1`, one `app/assign-2`, one with no
/// assignment URL; the workspace's event URL `app/events`, its EventsFilter set.
async fn three_workflows(app_url: &str) -> (RunningSimulator, Rest, Vec<String>) {
    let traffic = DemoTraffic { tasks_per_minute: 0.0, arrivals_for_ms: 0, reservation_timeout: 30 };
    let sim = start_simulator(
        91,
        CallbackUrls { assignment: None, events: None },
        traffic,
        Faults::default(),
        None,
    );
    let rest = Rest::of(&sim);
    let mut workflows = vec![sim.sids.workflow.clone()];
    {
        let mut engine = sim.simulator.engine();
        for name in ["second", "third"] {
            let sid =
                engine.add_workflow(&sim.sids.workspace, name, None, 30, Vec::new(), &sim.sids.queues[0]);
            workflows.push(sid);
        }
    }
    assert_eq!(
        rest.post(
            &format!("/Workflows/{}", workflows[0]),
            &[("AssignmentCallbackUrl", &format!("{app_url}/assign-1"))]
        )
        .await,
        200
    );
    assert_eq!(
        rest.post(
            &format!("/Workflows/{}", workflows[1]),
            &[
                ("AssignmentCallbackUrl", &format!("{app_url}/assign-2")),
                ("FallbackAssignmentCallbackUrl", "https://fallback.example/a")
            ]
        )
        .await,
        200
    );
    let filter = "task.created,task.completed,reservation.created,reservation.accepted";
    assert_eq!(
        rest.post("", &[("EventCallbackUrl", &format!("{app_url}/events")), ("EventsFilter", filter)]).await,
        200
    );
    (sim, rest, workflows)
}

async fn run(args: &[&str]) -> std::process::ExitCode {
    let cli = Cli::parse_from(args);
    taskrouter_tracer::commands::run(cli.command).await.unwrap()
}

fn command<'a>(
    verb: &'a str,
    database: &'a str,
    sim: &'a RunningSimulator,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "taskrouter-tracer",
        verb,
        "--database",
        database,
        "--workspace-sid",
        &sim.sids.workspace,
        "--taskrouter-base-url",
        sim.rest_base_url(),
        "--account-sid",
        SIM_ACCOUNT,
        "--auth-token",
        AUTH_TOKEN,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn connect_then_disconnect_leaves_every_field_as_it_was_and_guards_against_clobbering() {
    let (sim, rest, workflows) = three_workflows("http://127.0.0.1:9").await;
    let before = rest.snapshot().await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("connect.db");
    let db = database.to_str().unwrap();
    let tracer = "https://tracer.example";

    // A dry run changes nothing.
    assert_eq!(
        run(&command("connect", db, &sim, &["--public-url", tracer, "--dry-run"])).await,
        std::process::ExitCode::SUCCESS
    );
    assert_eq!(rest.snapshot().await, before);

    assert_eq!(
        run(&command("connect", db, &sim, &["--public-url", tracer])).await,
        std::process::ExitCode::SUCCESS
    );
    let (workspace, connected) = rest.snapshot().await;
    assert_eq!(workspace["event_callback_url"], "https://tracer.example/webhooks/events");
    assert_eq!(workspace["events_filter"], before.0["events_filter"], "EventsFilter untouched");
    for workflow in &connected {
        assert_eq!(workflow["assignment_callback_url"], "https://tracer.example/webhooks/assignment");
    }
    let second = connected.iter().find(|w| w["sid"] == workflows[1].as_str()).unwrap();
    assert_eq!(
        second["fallback_assignment_callback_url"], "https://fallback.example/a",
        "fallbacks untouched"
    );
    // Twice is harmless: the originals recorded the first time stay the originals.
    assert_eq!(
        run(&command("connect", db, &sim, &["--public-url", tracer])).await,
        std::process::ExitCode::SUCCESS
    );

    // Someone changes one workflow meanwhile: disconnect leaves it, restores the rest, exits 2.
    assert_eq!(
        rest.post(
            &format!("/Workflows/{}", workflows[2]),
            &[("AssignmentCallbackUrl", "https://someone-else.example/x")]
        )
        .await,
        200
    );
    assert_eq!(run(&command("disconnect", db, &sim, &[])).await, std::process::ExitCode::from(2));
    let (workspace, partly) = rest.snapshot().await;
    assert_eq!(workspace, before.0);
    for (now, was) in partly.iter().zip(&before.1) {
        if now["sid"] == workflows[2].as_str() {
            assert_eq!(
                now["assignment_callback_url"], "https://someone-else.example/x",
                "the clobbered value is left"
            );
        } else {
            assert_eq!(now, was, "the others are restored");
        }
    }
    // --force restores it too (to its original: empty).
    assert_eq!(run(&command("disconnect", db, &sim, &["--force"])).await, std::process::ExitCode::SUCCESS);
    assert_eq!(rest.snapshot().await, before, "every field as it was, the empty one empty");
    // Nothing left to undo.
    assert_eq!(run(&command("disconnect", db, &sim, &[])).await, std::process::ExitCode::SUCCESS);
    // Every change is in the log, before and after.
    let connection = rusqlite::Connection::open(&database).unwrap();
    let writes: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM events WHERE endpoint IN ('action.connect', 'action.disconnect')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(writes, 2 * (4 + 3 + 1), "connect 4 changes, disconnect 3 then 1, each recorded twice");
    sim.stop().await;
}

#[tokio::test]
async fn a_refused_update_midway_rolls_back_what_was_changed() {
    let (sim, rest, _) = three_workflows("http://127.0.0.1:9").await;
    let before = rest.snapshot().await;
    // The last workflow connect changes (the workspace and two workflows come before it).
    let last = before.1.last().unwrap()["sid"].as_str().unwrap().to_string();
    let status = reqwest::Client::new()
        .post(format!("{}/sim/refuse-updates", sim.rest_base_url()))
        .form(&[("Sid", last.as_str())])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("refused.db");
    let db = database.to_str().unwrap();
    assert_eq!(
        run(&command("connect", db, &sim, &["--public-url", "https://tracer.example"])).await,
        std::process::ExitCode::from(1)
    );
    assert_eq!(rest.snapshot().await, before, "rolled back: the workspace is as it was");
    let connection = rusqlite::Connection::open(&database).unwrap();
    let rollbacks: i64 = connection
        .query_row("SELECT COUNT(*) FROM events WHERE endpoint = 'action.connect.rollback'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rollbacks, 2 * 3, "the workspace and two workflows undone, each recorded twice");
    assert_eq!(
        run(&command("disconnect", db, &sim, &[])).await,
        std::process::ExitCode::SUCCESS,
        "nothing is left connected"
    );
    sim.stop().await;
}

#[derive(Default)]
struct AppLog {
    /// (path, signature valid for the URL it was sent to).
    requests: Vec<(String, bool)>,
}

/// The user's own app: validates X-Twilio-Signature for the URL it was called at, answers
/// assignment callbacks with an accept, records everything.
async fn users_app() -> (String, Arc<Mutex<AppLog>>, actix_web::dev::ServerHandle) {
    let log = Arc::new(Mutex::new(AppLog::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (shared, own) = (log.clone(), base.clone());
    let server = HttpServer::new(move || {
        let (log, own) = (shared.clone(), own.clone());
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let (log, own) = (log.clone(), own.clone());
            async move {
                let params = taskrouter_protocol::webhook::parse_form(&body).map(|p| p.0).unwrap_or_default();
                let url = format!("{own}{}", request.uri());
                let signature =
                    request.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
                let valid = taskrouter_protocol::signature::compute(AUTH_TOKEN, &url, &params) == signature;
                log.lock().unwrap().requests.push((request.path().to_string(), valid));
                if request.path().starts_with("/assign") {
                    HttpResponse::Ok().content_type("application/json").body(r#"{"instruction":"accept"}"#)
                } else {
                    HttpResponse::NoContent().finish()
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (base, log, handle)
}

async fn create_task(rest: &Rest, workflow: &str) -> String {
    let response = rest
        .client
        .post(format!("{}/v1/Workspaces/{}/Tasks", rest.base, rest.workspace))
        .basic_auth(SIM_ACCOUNT, Some(AUTH_TOKEN))
        .form(&[("WorkflowSid", workflow), ("Attributes", "{}")])
        .send()
        .await
        .unwrap();
    response.json::<Value>().await.unwrap()["sid"].as_str().unwrap().to_string()
}

async fn tracer(sim: &RunningSimulator, database: Option<std::path::PathBuf>) -> TestApp {
    let (base, workspace) = (sim.rest_base_url().to_string(), sim.sids.workspace.clone());
    spawn_app_with(move |args| {
        if let Some(database) = database {
            args.database = database;
        }
        args.twilio.account_sid = Some(SIM_ACCOUNT.into());
        args.rest.base_url = base;
        args.workspace_sid = Some(workspace);
        args.reconcile_every = Some(0);
    })
    .await
}

#[tokio::test]
async fn while_connected_each_callback_reaches_its_own_original_and_the_settings_page_disconnects() {
    let (app_url, app_log, app) = users_app().await;
    let (sim, rest, workflows) = three_workflows(&app_url).await;
    let before = rest.snapshot().await;
    let server = tracer(&sim, None).await;
    let connector = server.connector.clone().expect("credentials configured");
    let report = connector.connect(&sim.sids.workspace, &server.address, false).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    assert!(report.warnings.iter().any(|w| w.contains("EventsFilter leaves out")), "{report:?}");

    // A task in each of the first two workflows: each assignment callback goes through the
    // tracer to its own workflow's original URL, re-signed; the app's accept is what TaskRouter gets.
    for workflow in &workflows[..2] {
        let task = create_task(&rest, workflow).await;
        sim.simulator.run_for(5_000).await;
        let status = rest.get(&format!("/Tasks/{task}")).await["assignment_status"].clone();
        assert_eq!(status, "assigned", "the app's accept reached TaskRouter for {workflow}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let requests = app_log.lock().unwrap().requests.clone();
        let seen = |path: &str| requests.iter().filter(|(p, _)| p == path).count();
        if seen("/assign-1") >= 1 && seen("/assign-2") >= 1 && seen("/events") >= 2 {
            assert!(
                requests.iter().all(|(_, valid)| *valid),
                "every forwarded request is validly signed: {requests:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{requests:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A workflow with no original URL is answered by the tracer's own rules: the app never
    // hears of it.
    create_task(&rest, &workflows[2]).await;
    sim.simulator.run_for(30_000).await;
    let paths: Vec<String> = app_log.lock().unwrap().requests.iter().map(|(p, _)| p.clone()).collect();
    assert!(paths.iter().all(|p| ["/assign-1", "/assign-2", "/events"].contains(&p.as_str())), "{paths:?}");
    let settings = server.get_text("/settings").await;
    assert!(
        settings.contains(&format!("data-workspace=\"{}\"", sim.sids.workspace)),
        "the settings page shows the connection"
    );

    // The settings page's button puts everything back (CSRF checked).
    let mut session = crate::web_session::WebSession::new(&server);
    let token = session.csrf("/settings").await;
    let (status, _, _) = session
        .post("/settings/disconnect", &[("csrf", "forged"), ("workspace_sid", &sim.sids.workspace)])
        .await;
    assert_eq!(status, 403);
    let (status, _, page) = session
        .post("/settings/disconnect", &[("csrf", &token), ("workspace_sid", &sim.sids.workspace)])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Disconnected, originals restored"), "{page}");
    assert_eq!(rest.snapshot().await, before);
    server.stop().await;
    app.stop(false).await;
    sim.stop().await;
}

fn serve_connected(database: &std::path::Path, port: u16, sim: &RunningSimulator) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
        .args(["serve", "--connect", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &format!("http://127.0.0.1:{port}"), "--workspace-sid", &sim.sids.workspace])
        .args(["--taskrouter-base-url", sim.rest_base_url(), "--reconcile-every", "0", "--database"])
        .arg(database)
        .env("TWILIO_ACCOUNT_SID", SIM_ACCOUNT)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("server starts")
}

async fn wait_until_connected(rest: &Rest, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = format!("http://127.0.0.1:{port}/webhooks/events");
    while rest.get("").await["event_callback_url"] != wanted.as_str() {
        assert!(Instant::now() < deadline, "serve --connect never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_connect_disconnects_on_sigterm_and_a_kill_9_is_undone_from_the_log() {
    let (sim, rest, _) = three_workflows("http://127.0.0.1:9").await;
    let before = rest.snapshot().await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("served.db");

    let port = crate::helpers::free_port();
    let mut child = serve_connected(&database, port, &sim);
    wait_until_connected(&rest, port).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(rest.snapshot().await, before, "SIGTERM puts everything back");

    let port = crate::helpers::free_port();
    let mut child = serve_connected(&database, port, &sim);
    wait_until_connected(&rest, port).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(rest.snapshot().await, before, "a kill -9 leaves the workspace connected");
    let db = database.to_str().unwrap();
    assert_eq!(run(&command("disconnect", db, &sim, &[])).await, std::process::ExitCode::SUCCESS);
    assert_eq!(rest.snapshot().await, before, "disconnect finishes from what the log recorded");
    sim.stop().await;
}
