//! What the `demo` and `simulate` commands run (their options are `cli`'s): the simulator's demo
//! workspace, and in `demo` the tracer wired to it.

use std::net::SocketAddr;
use std::process::ExitCode;

use rand::Rng;

use crate::cli::{DeliveryPaths, DemoArgs, SimulateArgs};
use crate::ingest::SignatureMode;
use crate::settings::Settings;
use crate::startup::Application;
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::rest;
use taskrouter_simulator::runtime::ClockMode;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{start_scenario, ScenarioOptions};

fn random_hex(length: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..length).map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("hex digit")).collect()
}

fn loopback_url(address: SocketAddr) -> String {
    let host = if address.ip().is_unspecified() { "127.0.0.1".to_string() } else { address.ip().to_string() };
    format!("http://{host}:{}", address.port())
}

/// `taskrouter-tracer demo`: the tracer and the simulator wired to each other.
///
/// # Errors
/// When either server cannot start.
pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let account_sid = args.twilio.account_sid.clone().unwrap_or_else(|| format!("AC{}", random_hex(32)));
    let auth_token = args.twilio.auth_token.clone().unwrap_or_else(|| random_hex(32));
    let mut serve = Settings { listen: args.listen, database: args.database.clone(), ..Settings::default() };
    serve.twilio = args.twilio.credentials();
    serve.twilio.account_sid = Some(account_sid.clone());
    serve.twilio.auth_token = Some(auth_token.as_str().into());
    serve.signature_check = Some(SignatureMode::Enforce);
    // With a fixed port the signed URL is known up front; with port 0 the tracer checks
    // against the Host header, which is the address the simulator calls.
    if args.listen.port() != 0 {
        serve.public_url = Some(loopback_url(args.listen));
    }
    // The simulator's REST address is bound first so the tracer can be pointed at it.
    let (rest_listener, rest_base_url) = rest::bind(args.simulator_listen)?;
    // The pages' actions (accept, reject, look up, create) go to the simulator, and the
    // projections judge reservations against the simulated workflow's timeout.
    serve.rest.base_url = rest_base_url.clone();
    serve.projection.default_reservation_timeout_ms = (args.reservation_timeout as i64).saturating_mul(1000);
    serve.reconcile_every = Some(args.reconcile_every);
    serve.follow_events_api = args.no_webhooks.then_some(1);
    serve.workspace_known_later = true;
    // Alerts on, to a receiver of the tracer's own, so a newcomer sees timeouts alerted.
    serve.demo_alert_receiver = true;
    tracing::debug!(%rest_base_url, "simulator REST API bound");
    let application = Application::build(serve).await?;
    let tracer_url = loopback_url(SocketAddr::new(args.listen.ip(), application.port()));
    let simulator = start_scenario(ScenarioOptions {
        seed: args.seed.unwrap_or_else(rand::random),
        account_sid: Some(account_sid.clone()),
        auth_token: auth_token.clone(),
        // The workspace starts with no callback URL; `connect` points it at the tracer below,
        // through the simulator's REST API, as it would a real workspace.
        callbacks: CallbackUrls { assignment: None, events: None },
        traffic: DemoTraffic {
            tasks_per_minute: args.rate,
            arrivals_for_ms: i64::MAX / 4,
            reservation_timeout: args.reservation_timeout,
        },
        faults: Faults { drop_rate: args.drop_rate.clamp(0.0, 1.0), ..Faults::default() },
        callback_timeouts: None,
        clock: ClockMode::Scaled(args.speed.max(0.01)),
        listener: rest_listener,
        event_streams: args.delivery.sink(&tracer_url),
    })?;
    application.history().add_workspace(&simulator.sids.workspace);
    let connector = application.connector().filter(|_| !args.no_webhooks);
    if let Some(connector) = &connector {
        let report = connector
            .connect(&simulator.sids.workspace, &tracer_url, false)
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(failure) = report.failure {
            anyhow::bail!("connecting the simulated workspace failed: {failure}");
        }
    }
    println!("taskrouter-tracer demo");
    println!("  open:                 {tracer_url}/");
    println!("  recorded requests:    {tracer_url}/api/requests");
    println!("  alerts received:      {tracer_url}/demo/alerts");
    println!("  simulator REST base:  {}", simulator.rest_base_url());
    println!("  workspace SID:        {}", simulator.sids.workspace);
    println!("  account SID:          {account_sid}");
    println!("  auth token:           {auth_token}");
    println!("  database:             {}", args.database.display());
    println!("  traffic:              {} tasks/min; Ctrl-C to stop", args.rate);
    if args.no_webhooks {
        println!("  webhooks:             none; following the Events API every second");
    } else if args.drop_rate > 0.0 {
        println!(
            "  webhooks:             {:.0} % dropped; reconciliation heals them every {} min",
            args.drop_rate * 100.0,
            args.reconcile_every
        );
    }
    match args.delivery.delivery {
        DeliveryPaths::Webhooks => {}
        DeliveryPaths::EventStreams => {
            println!("  events:               as Event Streams CloudEvent batches to {tracer_url}/webhooks/event-streams")
        }
        DeliveryPaths::Both => println!(
            "  events:               as webhooks and as Event Streams batches: each arrives twice, stored once"
        ),
    }
    println!("  ground truth:         {}/sim/ground-truth", simulator.rest_base_url());
    let driver = simulator.simulator.clone();
    tokio::select! {
        result = application.run_until_stopped() => result?,
        () = driver.run_until(i64::MAX / 2) => {},
    }
    if let Some(connector) = connector {
        // Put back, so the log does not keep a connection to a workspace that is gone.
        let _ = connector.disconnect(&simulator.sids.workspace, true).await;
    }
    simulator.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// `taskrouter-tracer simulate`: drives a tracer elsewhere and prints the ground truth as JSON.
///
/// # Errors
/// When the REST API cannot start.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let auth_token = args.auth_token.clone().unwrap_or_else(|| {
        let token = random_hex(32);
        eprintln!("no --auth-token given; signing with generated token {token}");
        token
    });
    let clock = if args.speed > 0.0 { ClockMode::Scaled(args.speed) } else { ClockMode::AsFastAsPossible };
    let (listener, _) = rest::bind(args.listen)?;
    let simulator = start_scenario(ScenarioOptions {
        seed: args.seed,
        account_sid: args.account_sid.clone(),
        auth_token,
        callbacks: CallbackUrls::tracer(&args.target),
        traffic: DemoTraffic {
            tasks_per_minute: args.rate,
            arrivals_for_ms: args.duration as i64 * 1000,
            reservation_timeout: args.reservation_timeout,
        },
        faults: Faults {
            duplicate_rate: args.duplicate_rate,
            reorder_rate: args.reorder_rate,
            drop_rate: args.drop_rate,
        },
        callback_timeouts: Some((
            std::time::Duration::from_millis(args.assignment_timeout_ms),
            std::time::Duration::from_millis(args.event_timeout_ms),
        )),
        clock,
        listener,
        event_streams: args.delivery.sink(&args.target),
    })?;
    eprintln!(
        "simulating workspace {} (account {}); REST API at {}",
        simulator.sids.workspace,
        simulator.account_sid,
        simulator.rest_base_url()
    );
    simulator.simulator.run_for((args.duration + args.drain) as i64 * 1000).await;
    let truth = simulator.simulator.ground_truth();
    println!("{}", serde_json::to_string_pretty(&truth)?);
    simulator.stop().await;
    Ok(ExitCode::SUCCESS)
}
