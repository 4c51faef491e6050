//! The embedded TaskRouter simulator: a faithful, seeded model of workspaces, workers, queues,
//! workflows, tasks and reservations that calls a tracer (or any endpoint) with real assignment
//! and event callbacks and serves TaskRouter's REST API.
//!
//! It shares no state with the tracer: the two only talk HTTP. `engine` decides, `delivery`
//! carries callbacks (with faults on demand), `rest` serves the API, `runtime` drives the clock,
//! `scenario` builds the demo workspace. The tracer's `demo` and `simulate` commands drive it; other
//! projects' tests can start it the same way: `start_scenario` (in `harness`) starts it all.

pub mod attributes;
pub mod delivery;
pub mod engine;
pub mod event_streams;
pub mod expression;
pub mod ground_truth;
pub mod harness;
pub mod model;
pub mod rest;
pub mod runtime;
pub mod scenario;
pub mod sid;

pub use engine::{Engine, Instruction, SimError};
pub use ground_truth::{Counters, DeliveryStats, GroundTruth};
pub use harness::{start_scenario, RunningSimulator, ScenarioOptions};
pub use runtime::{Simulator, SimulatorConfig};
