//! What the alerts section of `/settings` posts — webhooks (shown redacted), the switches,
//! threshold rules, the "send a test alert" button — and `demo`'s own receiver (`/demo/alerts`).
//! The section itself is drawn by `settings_page`.
//!
//! Every POST checks its CSRF token and every change is logged as an `action.settings` row,
//! with webhook URLs redacted there too.

use std::collections::VecDeque;
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::html::{format_ms, render};
use super::security::csrf_refusal;
use super::settings_page::{settings_view, webhook_id};
use super::AppState;
use crate::actions::ActionContext;
use crate::alerts::store::{self as store, ThresholdRule};
use crate::alerts::{self, redact_url, Alert, AlertKind};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings/alerts/webhooks", web::post().to(add_webhook))
        .route("/settings/alerts/webhooks/remove", web::post().to(remove_webhook))
        .route("/settings/alerts/switches", web::post().to(save_switches))
        .route("/settings/alerts/rules", web::post().to(add_rule))
        .route("/settings/alerts/rules/remove", web::post().to(remove_rule))
        .route("/settings/alerts/test", web::post().to(send_test));
}

fn context(http: &HttpRequest) -> ActionContext {
    ActionContext { remote_addr: http.peer_addr().map(|a| a.to_string()), related_to: None }
}

fn back_to_settings(what: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", format!("/settings?alerts={what}#alerts"))).finish()
}

/// Reloads the alerter's settings and logs the change as an `action.settings` row.
async fn changed(
    http: &HttpRequest,
    state: &AppState,
    form: &[(String, String)],
    what: &str,
) -> HttpResponse {
    if let Err(error) = state.alerts.reload_settings().await {
        tracing::error!(%error, "saved an alert setting but could not reload the alert settings");
    }
    state.actions.record_setting(form, what, "alerts", "", &context(http)).await;
    back_to_settings("saved")
}

#[derive(Deserialize)]
struct WebhookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    url: String,
}

async fn add_webhook(
    http: HttpRequest,
    form: web::Form<WebhookForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let url = match alerts::targets::checked_webhook_url(&form.url) {
        Ok(url) => url,
        Err(problem) => {
            return settings_view(&http, &state, Some(format!("Not added: {problem}")), false).await
        }
    };
    if let Err(error) =
        store::add_webhook(&state.store.pool, &url, chrono::Utc::now().timestamp_millis()).await
    {
        return settings_view(&http, &state, Some(format!("Not added: {error}")), false).await;
    }
    let shown = redact_url(&url);
    changed(
        &http,
        &state,
        &[("alert_webhook".into(), shown.clone())],
        &format!("alert webhook added: {shown}"),
    )
    .await
}

#[derive(Deserialize)]
struct RemoveWebhookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

async fn remove_webhook(
    http: HttpRequest,
    form: web::Form<RemoveWebhookForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let stored = store::stored_webhooks(&state.store.pool).await.unwrap_or_default();
    let Some((url, _)) = stored.into_iter().find(|(url, _)| webhook_id(url) == form.id) else {
        return settings_view(
            &http,
            &state,
            Some("Not removed: no such alert webhook (already removed?)".into()),
            false,
        )
        .await;
    };
    if let Err(error) = store::remove_webhook(&state.store.pool, &url).await {
        return settings_view(&http, &state, Some(format!("Not removed: {error}")), false).await;
    }
    let shown = redact_url(&url);
    let form = [("alert_webhook".to_string(), shown.clone()), ("removed".to_string(), "true".to_string())];
    changed(&http, &state, &form, &format!("alert webhook removed: {shown}")).await
}

/// The switches form: a checkbox `on` per switch left on.
async fn save_switches(http: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let csrf = pairs.iter().find(|(n, _)| n == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    if let Some(refused) = csrf_refusal(&http, &state, csrf) {
        return refused;
    }
    let on: Vec<&str> = pairs.iter().filter(|(n, _)| n == "on").map(|(_, v)| v.as_str()).collect();
    let mut summary = Vec::new();
    for (switch, _) in alerts::SWITCHES {
        let enabled = on.contains(&switch);
        if let Err(error) = store::set_switch(&state.store.pool, switch, enabled).await {
            return settings_view(&http, &state, Some(format!("Not saved: {error}")), false).await;
        }
        summary.push(format!("{switch} {}", if enabled { "on" } else { "off" }));
    }
    let sent: Vec<(String, String)> = pairs.into_iter().filter(|(n, _)| n != "csrf").collect();
    changed(&http, &state, &sent, &format!("alert kinds: {}", summary.join(", "))).await
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    percent: String,
    #[serde(default)]
    window_minutes: String,
    #[serde(default)]
    min_reservations: String,
}

/// The rule a form describes, or what is wrong with it.
fn rule_from_form(form: &RuleForm, now_ms: i64) -> Result<ThresholdRule, String> {
    let scope = form.scope.trim();
    let prefix = match scope {
        "queue" => "WQ",
        "worker" => "WK",
        _ => return Err(format!("the scope must be queue or worker, not {scope:?}")),
    };
    let target = form.target.trim();
    let names_one = target.starts_with(prefix) && target.len() == 34;
    if !target.is_empty() && !names_one {
        return Err(format!("{target:?} is not a {scope} SID ({prefix}… with 34 characters); leave it empty for every {scope}"));
    }
    let percent: f64 = form
        .percent
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .ok()
        .filter(|p: &f64| *p >= 0.0 && *p < 100.0)
        .ok_or_else(|| format!("the rate must be a percentage from 0 to 99, not {:?}", form.percent))?;
    let number = |raw: &str, default: i64, range: std::ops::RangeInclusive<i64>, what: &str| {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(default);
        }
        raw.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            format!("{what} must be a whole number from {} to {}, not {raw:?}", range.start(), range.end())
        })
    };
    Ok(ThresholdRule {
        id: 0,
        scope: scope.to_string(),
        target: target.to_string(),
        percent,
        window_minutes: number(&form.window_minutes, 15, 1..=1_440, "the window (minutes)")?,
        min_reservations: number(&form.min_reservations, 5, 1..=100_000, "the least number of reservations")?,
        created_at_ms: now_ms,
    })
}

async fn add_rule(http: HttpRequest, form: web::Form<RuleForm>, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let rule = match rule_from_form(&form, chrono::Utc::now().timestamp_millis()) {
        Ok(rule) => rule,
        Err(problem) => {
            return settings_view(&http, &state, Some(format!("Rule not added: {problem}")), false).await
        }
    };
    let id = match store::add_rule(&state.store.pool, &rule).await {
        Ok(id) => id,
        Err(error) => {
            return settings_view(&http, &state, Some(format!("Rule not added: {error}")), false).await
        }
    };
    let sent = vec![
        ("scope".to_string(), rule.scope.clone()),
        ("target".to_string(), rule.target.clone()),
        ("percent".to_string(), rule.percent.to_string()),
        ("window_minutes".to_string(), rule.window_minutes.to_string()),
        ("min_reservations".to_string(), rule.min_reservations.to_string()),
    ];
    let what = format!(
        "alert rule {id} added: timeout rate of {} {} above {} % over {} min (at least {} reservations)",
        rule.scope,
        if rule.target.is_empty() { "(any)" } else { &rule.target },
        rule.percent,
        rule.window_minutes,
        rule.min_reservations
    );
    changed(&http, &state, &sent, &what).await
}

#[derive(Deserialize)]
struct RemoveRuleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: i64,
}

async fn remove_rule(
    http: HttpRequest,
    form: web::Form<RemoveRuleForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    match store::remove_rule(&state.store.pool, form.id).await {
        Ok(true) => {}
        Ok(false) => {
            return settings_view(&http, &state, Some("Not removed: no such rule".into()), false).await
        }
        Err(error) => {
            return settings_view(&http, &state, Some(format!("Not removed: {error}")), false).await
        }
    }
    let sent = [("rule".to_string(), form.id.to_string()), ("removed".to_string(), "true".to_string())];
    changed(&http, &state, &sent, &format!("alert rule {} removed", form.id)).await
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    csrf: String,
}

/// "Send a test alert": one alert of kind `test` to every webhook, delivered and logged as any.
async fn send_test(http: HttpRequest, form: web::Form<TestForm>, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    if state.alerts.webhooks().is_empty() {
        let problem = "No alert webhook is configured: add one above (or start with --alert-webhook URL).";
        return settings_view(&http, &state, Some(problem.into()), false).await;
    }
    let text = format!(
        "taskrouter-tracer test alert, sent from the settings page at {} UTC: alerts reach this webhook.",
        format_ms(chrono::Utc::now().timestamp_millis())
    );
    let alert = Alert::new(AlertKind::Test, &text, state.alerts.link("/settings#alerts"));
    match state.alerts.send_now(alert).await {
        Ok(_) => back_to_settings("test"),
        Err(error) => {
            settings_view(&http, &state, Some(format!("The test alert was not queued: {error}")), false).await
        }
    }
}

/// Where `demo`'s alerter posts (under `/webhooks/`, so it needs no login, as TaskRouter's
/// callbacks do not).
pub const DEMO_RECEIVER_PATH: &str = "/webhooks/demo-alerts";
/// Alerts `demo`'s receiver keeps (the newest).
const DEMO_KEPT: usize = 200;

/// `demo`'s receiver: the alerts it got, newest first, in memory only.
#[derive(Default)]
pub struct DemoInbox {
    received: Mutex<VecDeque<(i64, serde_json::Value)>>,
}

/// The receiver's routes (registered by `demo` only).
pub fn demo_receiver(cfg: &mut web::ServiceConfig) {
    cfg.route(DEMO_RECEIVER_PATH, web::post().to(demo_receive))
        .route("/demo/alerts", web::get().to(demo_page))
        .route("/api/demo/alerts", web::get().to(demo_api));
}

async fn demo_receive(body: web::Bytes, inbox: web::Data<DemoInbox>) -> HttpResponse {
    let Ok(alert) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return HttpResponse::BadRequest().body("an alert is JSON");
    };
    let mut received = inbox.received.lock().unwrap_or_else(|p| p.into_inner());
    received.push_front((chrono::Utc::now().timestamp_millis(), alert));
    received.truncate(DEMO_KEPT);
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn demo_api(inbox: web::Data<DemoInbox>) -> HttpResponse {
    let received = inbox.received.lock().unwrap_or_else(|p| p.into_inner());
    let alerts: Vec<&serde_json::Value> = received.iter().map(|(_, alert)| alert).collect();
    HttpResponse::Ok().json(serde_json::json!({ "alerts": alerts }))
}

struct DemoRow {
    at: String,
    kind: String,
    text: String,
    url: String,
}

#[derive(Template)]
#[template(path = "alerts/demo.html")]
struct DemoPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    alert_problem: Option<String>,
    rows: Vec<DemoRow>,
}

async fn demo_page(inbox: web::Data<DemoInbox>, state: web::Data<AppState>) -> HttpResponse {
    let rows = {
        let received = inbox.received.lock().unwrap_or_else(|p| p.into_inner());
        received
            .iter()
            .map(|(at, alert)| {
                let field = |name: &str| alert.get(name).and_then(|v| v.as_str()).unwrap_or("").to_string();
                DemoRow { at: format_ms(*at), kind: field("kind"), text: field("text"), url: field("url") }
            })
            .collect()
    };
    render(&DemoPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(scope: &str, target: &str, percent: &str) -> RuleForm {
        RuleForm {
            csrf: String::new(),
            scope: scope.into(),
            target: target.into(),
            percent: percent.into(),
            window_minutes: String::new(),
            min_reservations: String::new(),
        }
    }

    #[test]
    fn a_rule_form_is_checked_and_defaults_to_fifteen_minutes_and_five_reservations() {
        let rule = rule_from_form(&form("queue", "", "20 %"), 7).unwrap();
        assert_eq!((rule.percent, rule.window_minutes, rule.min_reservations), (20.0, 15, 5));
        assert!(rule_from_form(&form("queue", "WK00112233445566778899aabbccddeeff", "20"), 7).is_err());
        assert!(rule_from_form(&form("team", "", "20"), 7).is_err());
        assert!(rule_from_form(&form("worker", "", "120"), 7).is_err());
        assert!(rule_from_form(&form("worker", "WK00112233445566778899aabbccddeeff", "5"), 7).is_ok());
    }
}
