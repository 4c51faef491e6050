//! The state every handler shares: the edge's handles on ingest, the log's reads, the
//! writer's health, actions, the Events API, connect and alerts. `startup` builds it.

use std::sync::Arc;

use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::storage::writer::StorageHealth;
use crate::storage::ReadStore;

/// State shared by every handler.
pub struct AppState {
    pub ingest: Ingest,
    /// Outbound HTTP for replays (the same client `ingest` forwards with).
    pub relay: Relay,
    pub store: ReadStore,
    pub metrics: Arc<Metrics>,
    pub writer_health: Arc<StorageHealth>,
    /// How far the projections have followed the log (pages wait for them).
    pub progress: Arc<crate::storage::progress::ProjectionProgress>,
    /// REST calls made from the pages (accept, reject, create, look up), each logged.
    pub actions: crate::actions::Actions,
    /// How assignment callbacks are answered (cached settings).
    pub instructions: crate::instructions::AssignmentInstructions,
    /// Login and CSRF.
    pub security: super::security::WebSecurity,
    /// TaskRouter's Events API: imports from pages, the follower and reconciliation.
    pub history: Arc<crate::history::History>,
    /// `connect`/`disconnect` (with REST credentials).
    pub connector: Option<crate::connect::Connector>,
    /// Alerts: detection, delivery, their settings.
    pub alerts: Arc<crate::alerts::Alerts>,
}

impl AppState {
    /// What a page's banner says about the projections: `None` unless they are far enough
    /// behind the log that what the page shows is not up to date.
    pub fn projection_lag(&self) -> Option<String> {
        let lag = self.progress.lag();
        (lag.millis >= super::consistency::PAGE_WAIT.as_millis() as i64).then(|| lag.describe()).flatten()
    }

    /// What a page's banner says while alerts cannot be delivered, else `None`.
    pub fn alert_problem(&self) -> Option<String> {
        self.alerts.problem()
    }
}
