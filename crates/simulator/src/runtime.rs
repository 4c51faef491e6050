//! Driving the engine: the clock (real time, scaled, or as fast as possible), the delivery
//! passes that carry the outbox over HTTP and feed assignment answers back, and the handle the
//! REST API and the commands share.
//!
//! Each delivery pass awaits every callback's answer before sending the next, and the engine
//! only moves to its next timer once the pass is over, so a seeded run is deterministic.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::delivery::{AssignmentAnswer, Delivery, DeliveryConfig, DeliveryState};
use super::engine::{Engine, OutboundKind};
use super::ground_truth::GroundTruth;

/// How the virtual clock relates to the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockMode {
    /// Jump straight to the next timer: hours of TaskRouter in moments (tests, benchmarks).
    AsFastAsPossible,
    /// Virtual seconds per wall second (1.0 is real time).
    Scaled(f64),
}

pub struct SimulatorConfig {
    pub delivery: DeliveryConfig,
    pub clock: ClockMode,
}

/// A running simulator: the engine behind a lock, plus its delivery.
pub struct Simulator {
    engine: Mutex<Engine>,
    delivery: Delivery,
    delivery_state: tokio::sync::Mutex<DeliveryState>,
    clock: ClockMode,
    outbox_ready: tokio::sync::Notify,
    wall_start: Instant,
    virtual_start_ms: i64,
}

impl Simulator {
    pub fn new(engine: Engine, config: SimulatorConfig) -> Arc<Self> {
        let (delivery, delivery_state) = Delivery::new(config.delivery);
        let virtual_start_ms = engine.now_ms();
        Arc::new(Self {
            engine: Mutex::new(engine),
            delivery,
            delivery_state: tokio::sync::Mutex::new(delivery_state),
            clock: config.clock,
            outbox_ready: tokio::sync::Notify::new(),
            wall_start: Instant::now(),
            virtual_start_ms,
        })
    }

    /// The engine, with its clock brought up to the wall clock in real-time modes. Never hold
    /// the guard across an await.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        let mut engine = self.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let ClockMode::Scaled(_) = self.clock {
            engine.set_now(self.wall_now_ms());
        }
        engine
    }

    fn wall_now_ms(&self) -> i64 {
        match self.clock {
            ClockMode::AsFastAsPossible => self.virtual_start_ms,
            ClockMode::Scaled(speed) => {
                self.virtual_start_ms + (self.wall_start.elapsed().as_secs_f64() * 1000.0 * speed) as i64
            }
        }
    }

    /// The ground truth: what happened, and what was delivered.
    pub fn ground_truth(&self) -> GroundTruth {
        let mut truth = self.engine().ground_truth();
        truth.delivery = self.delivery.stats();
        truth
    }

    /// Delivers everything in the outbox, applying assignment answers as they come back (which
    /// may queue more callbacks, delivered in the same pass).
    pub async fn deliver_outbox(&self) {
        let mut state = self.delivery_state.lock().await;
        loop {
            let next = self.engine().take_outbox();
            let Some(outbound) = next else { break };
            match &outbound.kind {
                OutboundKind::Assignment { reservation_sid } => {
                    if let AssignmentAnswer::Instruction(instruction) =
                        self.delivery.deliver_assignment(&outbound).await
                    {
                        // A reservation that moved on meanwhile refuses: as TaskRouter would.
                        let _ = self.engine().apply_instruction(reservation_sid, instruction);
                    }
                }
                OutboundKind::Event { .. } => self.delivery.deliver_event(&mut state, outbound).await,
            }
        }
        self.delivery.flush(&mut state).await;
    }

    /// Asks the delivery worker to carry whatever the REST API just queued.
    pub fn wake_delivery(&self) {
        self.outbox_ready.notify_one();
    }

    /// Starts the worker that delivers callbacks caused by REST calls, on the current runtime
    /// (so every callback leaves from the same runtime). Abort the handle to stop it.
    pub fn spawn_delivery_worker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let simulator = self.clone();
        tokio::spawn(async move {
            loop {
                simulator.outbox_ready.notified().await;
                simulator.deliver_outbox().await;
            }
        })
    }

    /// Runs timers (and delivers what they cause) until virtual time `until_ms`.
    pub async fn run_until(&self, until_ms: i64) {
        self.deliver_outbox().await;
        loop {
            let next = self.engine().next_timer_at();
            match self.clock {
                ClockMode::AsFastAsPossible => {
                    let Some(at) = next.filter(|at| *at <= until_ms) else { break };
                    self.engine().advance_to(at);
                }
                ClockMode::Scaled(speed) => {
                    let now = self.wall_now_ms();
                    if now >= until_ms {
                        self.engine().advance_to(until_ms);
                        self.deliver_outbox().await;
                        break;
                    }
                    match next {
                        Some(at) if at <= now => self.engine().advance_to(at),
                        _ => {
                            // Wake at the next timer, but at least every 100 ms: the REST API
                            // may have added an earlier one meanwhile.
                            let wait = next.unwrap_or(until_ms).min(until_ms) - now;
                            let wall_wait = (wait as f64 / speed.max(1e-6)).clamp(1.0, 100.0);
                            tokio::time::sleep(Duration::from_millis(wall_wait as u64)).await;
                            continue;
                        }
                    }
                }
            }
            self.deliver_outbox().await;
        }
        self.engine().set_now(until_ms);
    }

    /// Runs for `duration_ms` of virtual time from now.
    pub async fn run_for(&self, duration_ms: i64) {
        let until = self.engine().now_ms() + duration_ms;
        self.run_until(until).await;
    }
}
