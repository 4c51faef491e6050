//! `/settings`: how assignment callbacks are answered, the connected workspaces, forwarding,
//! and the alerts section, drawn for `GET` and again, with what went wrong, by the handlers
//! that change them (`actions` for instructions and connections, `alerts` for alerts).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::html::{format_ms, render};
use super::security::csrf_for;
use super::AppState;
use crate::alerts::store::{self as store, ThresholdRule};
use crate::alerts::{self, redact_url, AlertKind};
use crate::storage::settings::{self, InstructionRule};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(settings_page));
}

struct RuleRow {
    rule: InstructionRule,
    updated: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    csrf: String,
    rules: Vec<RuleRow>,
    forwarding_to: Option<String>,
    error: Option<String>,
    saved: bool,
    login_required: bool,
    activities: Vec<crate::taskrouter_client::Activity>,
    queues: Vec<(String, Option<String>)>,
    workflows: Vec<(String, Option<String>)>,
    connections: Vec<ConnectionRow>,
    /// What the last disconnect from this page did.
    notice: Option<String>,
    /// The alerts section.
    alerts: AlertSettings,
}

/// A workspace `connect`ed to the tracer, as the settings page shows it.
struct ConnectionRow {
    plan: crate::connect::Plan,
    since: String,
    plan_id: i64,
}

#[derive(Deserialize)]
struct SettingsQuery {
    #[serde(default)]
    saved: bool,
}

pub async fn settings_view(
    http: &HttpRequest,
    state: &AppState,
    error: Option<String>,
    saved: bool,
) -> HttpResponse {
    settings_view_with(http, state, error, saved, None).await
}

pub async fn settings_view_with(
    http: &HttpRequest,
    state: &AppState,
    error: Option<String>,
    saved: bool,
    notice: Option<String>,
) -> HttpResponse {
    let connections = crate::storage::connections::connected_workspaces(&state.store.pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, row)| {
            let plan = serde_json::from_slice(&row.body).ok()?;
            Some(ConnectionRow { plan, since: format_ms(row.recorded_at_ms), plan_id: row.id })
        })
        .collect();
    let rules = settings::instruction_rules(&state.store.pool).await.unwrap_or_default();
    // Suggestions only: the form still takes any SID when these cannot be listed.
    let activities = match state.actions.workspace_for(None).await {
        Ok(workspace) => state.actions.activities(&workspace).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let (queues, workflows) =
        crate::projections::overview::queues_and_workflows(&state.store.pool).await.unwrap_or_default();
    let mut response = render(&SettingsPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        csrf: csrf_for(http, state),
        rules: rules
            .into_iter()
            .map(|rule| RuleRow { updated: format_ms(rule.updated_at_ms), rule })
            .collect(),
        forwarding_to: state.ingest.config().forward_to.clone(),
        error: error.clone(),
        saved,
        login_required: state.security.requires_login(),
        activities,
        queues,
        workflows,
        connections,
        notice,
        alerts: settings_section(http, state).await,
    });
    if error.is_some() {
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
    }
    response
}

async fn settings_page(
    http: HttpRequest,
    query: web::Query<SettingsQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    settings_view(&http, &state, None, query.saved).await
}

/// A webhook as the settings page lists it.
pub struct WebhookRow {
    /// Names it in the remove form without putting the URL in the page.
    pub id: String,
    pub shown: String,
    /// `command line`, `settings` or `demo`.
    pub source: &'static str,
}

pub struct SwitchRow {
    pub name: &'static str,
    pub description: &'static str,
    pub on: bool,
}

/// The alerts section of the settings page.
pub struct AlertSettings {
    pub webhooks: Vec<WebhookRow>,
    pub switches: Vec<SwitchRow>,
    pub rules: Vec<ThresholdRule>,
    /// What the last change from this section did.
    pub notice: Option<String>,
}

/// An opaque id of a stored webhook.
pub fn webhook_id(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

/// The section as it stands; `http`'s `alerts=` says what the last change did.
pub async fn settings_section(http: &HttpRequest, state: &AppState) -> AlertSettings {
    let alerts = &state.alerts;
    let mut webhooks: Vec<WebhookRow> = alerts
        .command_line_webhooks()
        .into_iter()
        .map(|shown| WebhookRow { id: String::new(), shown, source: "command line" })
        .collect();
    for (url, _) in store::stored_webhooks(&state.store.pool).await.unwrap_or_default() {
        webhooks.push(WebhookRow { id: webhook_id(&url), shown: redact_url(&url), source: "settings" });
    }
    if let Some(demo) = alerts.demo_receiver() {
        webhooks.push(WebhookRow { id: String::new(), shown: redact_url(demo), source: "demo" });
    }
    let switches = alerts::SWITCHES
        .iter()
        .map(|(name, description)| SwitchRow {
            name,
            description,
            on: AlertKind::parse(name)
                .map_or_else(|| alerts.enabled(AlertKind::TimeoutRateExceeded), |kind| alerts.enabled(kind)),
        })
        .collect();
    let notice = web::Query::<SectionQuery>::from_query(http.query_string()).ok().and_then(|q| {
        match q.alerts.as_str() {
            "saved" => Some("Alert settings saved.".to_string()),
            "test" => Some(
                "A test alert was queued for every webhook; each attempt is in the log (alert requests)."
                    .to_string(),
            ),
            _ => None,
        }
    });
    AlertSettings {
        webhooks,
        switches,
        rules: store::rules(&state.store.pool).await.unwrap_or_default(),
        notice,
    }
}

#[derive(Deserialize)]
struct SectionQuery {
    #[serde(default)]
    alerts: String,
}
