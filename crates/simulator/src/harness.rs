//! One call that starts a whole simulated TaskRouter: the demo workspace (`scenario`), its
//! REST API (`rest`) and its callback delivery, on the current tokio runtime. What the tracer's
//! `demo` and its tests use, and what another project's tests can use to get a TaskRouter that
//! calls their app.

use std::sync::Arc;

use crate::delivery::{DeliveryConfig, Faults};
use crate::engine::Engine;
use crate::event_streams::EventStreamsSink;
use crate::rest::{self, RestServer};
use crate::runtime::{ClockMode, Simulator, SimulatorConfig};
use crate::scenario::{self, CallbackUrls, DemoSids, DemoTraffic};

/// A simulator with the demo workspace, its REST API and its delivery worker, all started.
pub struct RunningSimulator {
    pub simulator: Arc<Simulator>,
    pub rest: RestServer,
    pub sids: DemoSids,
    pub account_sid: String,
    delivery_worker: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// The REST base URL to give a TaskRouter client (`--taskrouter-base-url`).
    pub fn rest_base_url(&self) -> &str {
        self.rest.base_url()
    }

    pub async fn stop(self) {
        self.delivery_worker.abort();
        self.rest.handle.stop(false).await;
    }
}

/// Everything needed to start the demo scenario.
pub struct ScenarioOptions {
    pub seed: u64,
    pub account_sid: Option<String>,
    pub auth_token: String,
    pub callbacks: CallbackUrls,
    pub traffic: DemoTraffic,
    pub faults: Faults,
    /// Answer windows for (assignment, event) callbacks; `None`: TaskRouter's 5 s and 15 s.
    pub callback_timeouts: Option<(std::time::Duration, std::time::Duration)>,
    pub clock: ClockMode,
    /// The REST API's listener, from [`rest::bind`].
    pub listener: std::net::TcpListener,
    /// An Event Streams webhook sink for the workspace's events.
    pub event_streams: Option<EventStreamsSink>,
}

/// Builds the demo workspace and starts the REST API (on the current runtime).
///
/// # Errors
/// When the REST address cannot be bound.
pub fn start_scenario(options: ScenarioOptions) -> std::io::Result<RunningSimulator> {
    let start_ms = chrono::Utc::now().timestamp_millis();
    let mut engine = Engine::new(options.seed, start_ms, options.account_sid);
    let sids = scenario::build_demo(&mut engine, &options.callbacks, &options.traffic);
    let account_sid = engine.account_sid.clone();
    let mut delivery = DeliveryConfig::new(options.auth_token.clone(), options.faults, options.seed);
    delivery.event_streams = options.event_streams;
    if let Some((assignment, event)) = options.callback_timeouts {
        delivery.assignment_timeout = assignment;
        delivery.event_timeout = event;
    }
    let simulator = Simulator::new(engine, SimulatorConfig { delivery, clock: options.clock });
    let rest = rest::start(simulator.clone(), options.listener, &options.auth_token)?;
    let delivery_worker = simulator.spawn_delivery_worker();
    Ok(RunningSimulator { simulator, rest, sids, account_sid, delivery_worker })
}
