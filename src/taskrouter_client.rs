//! The one place the tracer calls TaskRouter's REST API (or the simulator, which serves the
//! same API at another base URL).
//!
//! HTTP Basic with the account SID and auth token, or an API key and secret; timeouts on every
//! call. Reads are tried up to [`READ_ATTEMPTS`] times with backoff (honouring `Retry-After`)
//! on timeouts, cut connections, 429, 5xx and unreadable JSON. Writes (accept, reject, create)
//! are sent once and never retried blindly, because a lost answer does not mean a lost write:
//! each failed write says whether it was [not applied](WriteOutcome::NotApplied), has an
//! [unknown outcome](WriteOutcome::Unknown) (timeout, cut connection, 5xx: check before
//! retrying), or [was applied](WriteOutcome::AppliedUnreadable) with an answer that could not
//! be read. Errors carry Twilio's `code` and a plain-words explanation of what to do next.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// The account SID (AC…) and its auth token.
    AuthToken { account_sid: String, auth_token: String },
    /// An API key (SK…) and its secret.
    ApiKey { key: String, secret: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::AuthToken { account_sid, .. } => write!(f, "AuthToken({account_sid}, [secret])"),
            Credentials::ApiKey { key, .. } => write!(f, "ApiKey({key}, [secret])"),
        }
    }
}

/// How to give the tracer REST credentials, for messages that need them.
pub const SET_CREDENTIALS: &str =
    "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)";

/// Attempts a read gets at most.
pub const READ_ATTEMPTS: u32 = 3;
/// The first pause between read attempts; each later pause doubles it.
const READ_BACKOFF: Duration = Duration::from_millis(250);
/// The longest `Retry-After` a read waits for; a longer one ends the read with the advice.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Whether a write that did not clearly succeed may have changed anything in TaskRouter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteOutcome {
    /// Refused (4xx, including 429) or never sent (no connection): nothing changed, and it may
    /// be sent again.
    NotApplied,
    /// Sent, but no trustworthy answer came (timeout, connection cut, 5xx): it may or may not
    /// have taken effect. Check the current state before sending it again.
    Unknown,
    /// Accepted (2xx), but the answer could not be read.
    AppliedUnreadable,
}

/// A failed call, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{summary}")]
pub struct ApiError {
    /// HTTP status, when an answer came back.
    pub status: Option<u16>,
    /// Twilio's error code (20404, 20003…), when the answer carried one.
    pub code: Option<i64>,
    /// Twilio's own message, or the transport failure.
    pub message: String,
    /// One sentence: what went wrong and what to do next.
    pub summary: String,
    /// No answer came within the client's timeout.
    pub timed_out: bool,
    /// For writes: whether TaskRouter may have applied it (`None` for reads).
    pub write_outcome: Option<WriteOutcome>,
    /// How many times the call was sent.
    pub attempts: u32,
}

impl ApiError {
    fn from_answer(status: u16, body: &str) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let code = parsed.as_ref().and_then(|v| v.get("code")).and_then(serde_json::Value::as_i64);
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message").or_else(|| v.get("detail")))
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(300).collect());
        let advice = match (status, code) {
            (401, _) | (_, Some(20003)) => {
                "TaskRouter refused the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or the API key and secret), and that they belong to the workspace's account.".to_string()
            }
            (403, _) => {
                "TaskRouter accepted the credentials but refused them this resource: check that the API key or account may read this workspace.".to_string()
            }
            (404, _) | (_, Some(20404)) => {
                "TaskRouter does not know this resource: it may be in another workspace, or deleted (finished tasks are deleted 5 minutes after they end).".to_string()
            }
            (429, _) => "TaskRouter is rate-limiting these calls: wait a moment and try again.".to_string(),
            (400, _) if message.contains("not in expected state") || message.contains("pending") => {
                "The reservation is no longer pending (accepted, rejected, timed out, canceled or rescinded meanwhile): refresh to see what happened.".to_string()
            }
            (500..=599, _) => "TaskRouter had an internal error: try again shortly.".to_string(),
            _ => "TaskRouter refused the request.".to_string(),
        };
        let code_text = code.map(|c| format!(" {c}")).unwrap_or_default();
        Self {
            status: Some(status),
            code,
            summary: format!("{advice} (HTTP {status}{code_text}: {message})"),
            message,
            timed_out: false,
            write_outcome: None,
            attempts: 1,
        }
    }

    /// This failure of a call about `workspace`, a 404 said as what it means there: the
    /// workspace is unknown to these credentials.
    pub fn about_workspace(mut self, workspace: &str) -> Self {
        if self.status == Some(404) {
            self.summary = format!(
                "TaskRouter does not know workspace {workspace} under these credentials: check the \
                 Workspace Sid and that it belongs to this account. ({})",
                self.message
            );
        }
        self
    }

    fn transport(error: &reqwest::Error, timeout: Duration) -> Self {
        let summary = if error.is_timeout() {
            format!(
                "TaskRouter did not answer within {:.1} s: check the connection and try again.",
                timeout.as_secs_f64()
            )
        } else if error.is_connect() {
            "TaskRouter could not be reached: check the base URL and the network.".to_string()
        } else {
            "The connection to TaskRouter failed before its answer arrived.".to_string()
        };
        Self {
            status: None,
            code: None,
            message: error.to_string(),
            summary: format!("{summary} ({error})"),
            timed_out: error.is_timeout(),
            write_outcome: None,
            attempts: 1,
        }
    }

    fn malformed(status: u16, error: &serde_json::Error) -> Self {
        Self {
            status: Some(status),
            code: None,
            message: error.to_string(),
            summary: format!(
                "TaskRouter answered HTTP {status} with JSON this tracer cannot read ({error})."
            ),
            timed_out: false,
            write_outcome: None,
            attempts: 1,
        }
    }

    /// Whether a read may be tried again: no answer, rate-limited, TaskRouter's own failure,
    /// or an answer that could not be read.
    fn is_transient(&self) -> bool {
        matches!(self.status, None | Some(429) | Some(500..=599))
            || (self.is_success() && self.code.is_none())
    }

    fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    /// The same failure, as the answer to a write sent once: whether it may have been applied,
    /// and what to do about it.
    fn for_write(mut self, connected: bool, timeout: Duration) -> Self {
        let outcome = match self.status {
            Some(200..=299) => WriteOutcome::AppliedUnreadable,
            Some(500..=599) => WriteOutcome::Unknown,
            Some(_) => WriteOutcome::NotApplied,
            None if !connected => WriteOutcome::NotApplied,
            None => WriteOutcome::Unknown,
        };
        self.summary = match outcome {
            WriteOutcome::Unknown => {
                let cause = match self.status {
                    Some(status) => format!("TaskRouter answered HTTP {status}, its own failure"),
                    None if self.timed_out => {
                        format!("TaskRouter did not answer within {:.1} s", timeout.as_secs_f64())
                    }
                    None => "the connection failed before TaskRouter's answer arrived".to_string(),
                };
                format!(
                    "Outcome unknown: {cause}, so it may or may not have been applied. Check the \
                     current state before trying again; do not simply retry. ({})",
                    self.message
                )
            }
            WriteOutcome::AppliedUnreadable => format!(
                "TaskRouter accepted it (HTTP {}) but its answer could not be read: refresh to see \
                 the new state. ({})",
                self.status.unwrap_or(200),
                self.message
            ),
            WriteOutcome::NotApplied if self.status.is_none() => {
                format!("Nothing was sent. {}", self.summary)
            }
            WriteOutcome::NotApplied => format!("Not applied. {}", self.summary),
        };
        self.write_outcome = Some(outcome);
        self
    }
}

/// The seconds of a `Retry-After` header (TaskRouter sends seconds, not dates).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A Task as the REST API returns it (fields the tracer uses; the rest is kept in `extra`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub sid: String,
    pub assignment_status: String,
    #[serde(default)]
    pub attributes: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub age: Option<i64>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub workflow_sid: Option<String>,
    #[serde(default)]
    pub task_queue_sid: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A Reservation as the REST API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reservation {
    pub sid: String,
    pub reservation_status: String,
    #[serde(default)]
    pub task_sid: Option<String>,
    #[serde(default)]
    pub worker_sid: Option<String>,
    #[serde(default)]
    pub worker_name: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub date_updated: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An Activity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Activity {
    pub sid: String,
    pub friendly_name: String,
    #[serde(default)]
    pub available: bool,
}

/// A Workflow (for its reservation timeout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workflow {
    pub sid: String,
    pub friendly_name: String,
    #[serde(default)]
    pub task_reservation_timeout: Option<i64>,
    #[serde(default)]
    pub assignment_callback_url: Option<String>,
    #[serde(default)]
    pub fallback_assignment_callback_url: Option<String>,
}

/// A Workspace's callback settings (what `connect` reads and writes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workspace {
    pub sid: String,
    #[serde(default)]
    pub friendly_name: String,
    #[serde(default)]
    pub event_callback_url: Option<String>,
    /// Comma-separated event types sent to `event_callback_url`; `None`: every type.
    #[serde(default)]
    pub events_filter: Option<String>,
}

/// One page of `GET …/Events`: each event's JSON text exactly as it came (to be stored as
/// fetched) and where the next page is.
#[derive(Debug, Clone, Deserialize)]
pub struct EventsPage {
    #[serde(default)]
    pub events: Vec<Box<serde_json::value::RawValue>>,
    pub meta: PageMeta,
}

/// A list page's `meta`.
#[derive(Debug, Clone, Deserialize)]
pub struct PageMeta {
    #[serde(default)]
    pub next_page_url: Option<String>,
}

/// The path and query of a page URL TaskRouter gave (`meta.next_page_url`): the page is asked
/// of the configured base URL, so the credentials go nowhere else.
fn path_and_query(page_url: &str) -> String {
    match reqwest::Url::parse(page_url) {
        Ok(url) => match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        },
        Err(_) => page_url.to_string(),
    }
}

fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// A new task.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewTask {
    pub workflow_sid: String,
    /// JSON text, e.g. `{"selected_language":"es"}`.
    pub attributes: String,
    pub priority: Option<i64>,
    /// Time to live in seconds (TaskRouter's default: 86,400).
    pub timeout: Option<i64>,
}

/// What a reservation is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationAnswer {
    Accept,
    /// Reject, moving the worker to this activity (or leaving it where it is).
    Reject {
        worker_activity_sid: Option<String>,
    },
}

/// A call made and its answer, for the log.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: &'static str,
    pub url: String,
    pub form: Vec<(String, String)>,
    pub status: Option<u16>,
    pub body: String,
    pub attempts: u32,
    /// No answer came within the client's timeout.
    pub timed_out: bool,
}

/// The TaskRouter REST client.
#[derive(Clone)]
pub struct TaskRouterClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    timeout: Duration,
}

impl TaskRouterClient {
    /// A client for `base_url` (no trailing slash needed).
    pub fn new(base_url: &str, credentials: Credentials, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("taskrouter-tracer/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a plain configuration builds");
        Self { http, base_url: base_url.trim_end_matches('/').to_string(), credentials, timeout }
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::AuthToken { account_sid, auth_token } => {
                request.basic_auth(account_sid, Some(auth_token))
            }
            Credentials::ApiKey { key, secret } => request.basic_auth(key, Some(secret)),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, ApiError> {
        self.get_url(&format!("{}{path}", self.base_url), query).await
    }

    async fn get_url<T: DeserializeOwned>(&self, url: &str, query: &[(&str, &str)]) -> Result<T, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut error, retry_after) = match self.authorize(self.http.get(url).query(query)).send().await
            {
                Err(error) => (ApiError::transport(&error, self.timeout), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(&response);
                    match response.text().await {
                        Err(error) => (ApiError::transport(&error, self.timeout), retry_after),
                        Ok(body) if (200..300).contains(&status) => match serde_json::from_str(&body) {
                            Ok(value) => return Ok(value),
                            Err(e) => (ApiError::malformed(status, &e), None),
                        },
                        Ok(body) => (ApiError::from_answer(status, &body), retry_after),
                    }
                }
            };
            error.attempts = attempt;
            // Exponential backoff, or what TaskRouter asked for when it said.
            let pause = retry_after.unwrap_or(READ_BACKOFF * 2u32.pow(attempt - 1));
            if attempt >= READ_ATTEMPTS || !error.is_transient() || pause > LONGEST_RETRY_AFTER {
                if attempt > 1 {
                    error.summary = format!("{} (tried {attempt} times)", error.summary);
                }
                return Err(error);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Posts a form once (writes are never retried blindly) and returns the parsed answer
    /// together with the exchange for the log.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: Vec<(String, String)>,
    ) -> (Result<T, ApiError>, Exchange) {
        let url = format!("{}{path}", self.base_url);
        let mut exchange = Exchange {
            method: "POST",
            url: url.clone(),
            form,
            status: None,
            body: String::new(),
            attempts: 1,
            timed_out: false,
        };
        let result = match self.authorize(self.http.post(&url).form(&exchange.form)).send().await {
            Err(error) => {
                Err(ApiError::transport(&error, self.timeout).for_write(!error.is_connect(), self.timeout))
            }
            Ok(response) => {
                let status = response.status().as_u16();
                exchange.status = Some(status);
                match response.text().await {
                    // The status came but the body was cut off: as good as no answer.
                    Err(error) => {
                        Err(ApiError::transport(&error, self.timeout).for_write(true, self.timeout))
                    }
                    Ok(body) => {
                        exchange.body = body;
                        if (200..300).contains(&status) {
                            serde_json::from_str(&exchange.body)
                                .map_err(|e| ApiError::malformed(status, &e).for_write(true, self.timeout))
                        } else {
                            Err(ApiError::from_answer(status, &exchange.body).for_write(true, self.timeout))
                        }
                    }
                }
            }
        };
        if let Err(error) = &result {
            exchange.timed_out = error.timed_out;
            if exchange.body.is_empty() {
                exchange.body = error.message.clone();
            }
        }
        (result, exchange)
    }

    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        let mut page: serde_json::Value = self.get(path, query).await?;
        let items =
            page.get_mut(key).map(serde_json::Value::take).unwrap_or(serde_json::Value::Array(Vec::new()));
        serde_json::from_value(items).map_err(|e| ApiError::malformed(200, &e))
    }

    /// `GET /v1/Workspaces/{ws}/Tasks/{task}`.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn fetch_task(&self, workspace: &str, task: &str) -> Result<Task, ApiError> {
        self.get(&format!("/v1/Workspaces/{workspace}/Tasks/{task}"), &[]).await
    }

    /// A task's reservations (first page of up to 1,000).
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn list_reservations(&self, workspace: &str, task: &str) -> Result<Vec<Reservation>, ApiError> {
        self.list(
            &format!("/v1/Workspaces/{workspace}/Tasks/{task}/Reservations"),
            "reservations",
            &[("PageSize", "1000")],
        )
        .await
    }

    /// One reservation, fresh.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn fetch_reservation(
        &self,
        workspace: &str,
        task: &str,
        reservation: &str,
    ) -> Result<Reservation, ApiError> {
        self.get(&format!("/v1/Workspaces/{workspace}/Tasks/{task}/Reservations/{reservation}"), &[]).await
    }

    /// Accepts or rejects a reservation (one attempt).
    pub async fn answer_reservation(
        &self,
        workspace: &str,
        task: &str,
        reservation: &str,
        answer: &ReservationAnswer,
    ) -> (Result<Reservation, ApiError>, Exchange) {
        let mut form = Vec::new();
        match answer {
            ReservationAnswer::Accept => form.push(("ReservationStatus".to_string(), "accepted".to_string())),
            ReservationAnswer::Reject { worker_activity_sid } => {
                form.push(("ReservationStatus".to_string(), "rejected".to_string()));
                if let Some(activity) = worker_activity_sid {
                    form.push(("WorkerActivitySid".to_string(), activity.clone()));
                }
            }
        }
        self.post(&format!("/v1/Workspaces/{workspace}/Tasks/{task}/Reservations/{reservation}"), form).await
    }

    /// Creates a task (one attempt).
    pub async fn create_task(&self, workspace: &str, task: &NewTask) -> (Result<Task, ApiError>, Exchange) {
        let mut form = vec![
            ("WorkflowSid".to_string(), task.workflow_sid.clone()),
            ("Attributes".to_string(), task.attributes.clone()),
        ];
        if let Some(priority) = task.priority {
            form.push(("Priority".to_string(), priority.to_string()));
        }
        if let Some(timeout) = task.timeout {
            form.push(("Timeout".to_string(), timeout.to_string()));
        }
        self.post(&format!("/v1/Workspaces/{workspace}/Tasks"), form).await
    }

    /// The workspace's activities.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn list_activities(&self, workspace: &str) -> Result<Vec<Activity>, ApiError> {
        self.list(&format!("/v1/Workspaces/{workspace}/Activities"), "activities", &[("PageSize", "1000")])
            .await
    }

    /// One workflow (for its `task_reservation_timeout`).
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn fetch_workflow(&self, workspace: &str, workflow: &str) -> Result<Workflow, ApiError> {
        self.get(&format!("/v1/Workspaces/{workspace}/Workflows/{workflow}"), &[]).await
    }

    /// `GET /v1/Workspaces/{ws}`.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn fetch_workspace(&self, workspace: &str) -> Result<Workspace, ApiError> {
        self.get(&format!("/v1/Workspaces/{workspace}"), &[]).await
    }

    /// Every workflow of the workspace, following `meta.next_page_url`.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn all_workflows(&self, workspace: &str) -> Result<Vec<Workflow>, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            workflows: Vec<Workflow>,
            meta: PageMeta,
        }
        let mut page: Page =
            self.get(&format!("/v1/Workspaces/{workspace}/Workflows"), &[("PageSize", "1000")]).await?;
        let mut workflows = std::mem::take(&mut page.workflows);
        while let Some(next) = page.meta.next_page_url.take().filter(|u| !u.is_empty()) {
            page = self.get_url(&format!("{}{}", self.base_url, path_and_query(&next)), &[]).await?;
            workflows.append(&mut page.workflows);
        }
        Ok(workflows)
    }

    /// `POST /v1/Workspaces/{ws}` with `form` (one attempt).
    pub async fn update_workspace(
        &self,
        workspace: &str,
        form: Vec<(String, String)>,
    ) -> (Result<Workspace, ApiError>, Exchange) {
        self.post(&format!("/v1/Workspaces/{workspace}"), form).await
    }

    /// `POST /v1/Workspaces/{ws}/Workflows/{ww}` with `form` (one attempt).
    pub async fn update_workflow(
        &self,
        workspace: &str,
        workflow: &str,
        form: Vec<(String, String)>,
    ) -> (Result<Workflow, ApiError>, Exchange) {
        self.post(&format!("/v1/Workspaces/{workspace}/Workflows/{workflow}"), form).await
    }

    /// The first page of a workspace's events matching `query` (`StartDate`, `EndDate`,
    /// `Minutes`, `TaskSid`…, `PageSize`); returns it with the URL it came from.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn first_events_page(
        &self,
        workspace: &str,
        query: &[(&str, &str)],
    ) -> Result<(EventsPage, String), ApiError> {
        let path = format!("/v1/Workspaces/{workspace}/Events");
        let requested = format!("{path}?{}", taskrouter_protocol::webhook::encode_form(&owned_pairs(query)));
        Ok((self.get(&path, query).await?, requested))
    }

    /// The page a previous one's `meta.next_page_url` names, as Twilio asks (never `Page=N`
    /// built by hand). Only its path and query are used: the credentials go to the configured
    /// base URL and nowhere else. Returns the page with its path and query.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn next_events_page(&self, next_page_url: &str) -> Result<(EventsPage, String), ApiError> {
        let path_and_query = path_and_query(next_page_url);
        let page = self.get_url(&format!("{}{path_and_query}", self.base_url), &[]).await?;
        Ok((page, path_and_query))
    }

    /// The workspace's workflows.
    ///
    /// # Errors
    /// [`ApiError`] in plain words.
    pub async fn list_workflows(&self, workspace: &str) -> Result<Vec<Workflow>, ApiError> {
        self.list(&format!("/v1/Workspaces/{workspace}/Workflows"), "workflows", &[("PageSize", "1000")])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_explained_in_plain_words() {
        let not_found = ApiError::from_answer(
            404,
            r#"{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}"#,
        );
        assert_eq!(not_found.code, Some(20404));
        assert!(not_found.summary.contains("does not know this resource"));
        let stale = ApiError::from_answer(
            400,
            r#"{"code":20001,"message":"Reservation WR1 not in expected state [pending] and cannot be updated to [accepted]","status":400}"#,
        );
        assert!(stale.summary.contains("no longer pending"), "{}", stale.summary);
        assert!(ApiError::from_answer(401, "{}").summary.contains("credentials"));
        assert!(ApiError::from_answer(503, "<html>").is_transient());
        assert!(!ApiError::from_answer(400, "{}").is_transient());
    }

    #[test]
    fn a_failed_write_says_whether_it_may_have_been_applied() {
        let outcome = |error: ApiError| error.for_write(true, Duration::from_secs(1)).write_outcome;
        assert_eq!(outcome(ApiError::from_answer(500, "{}")), Some(WriteOutcome::Unknown));
        assert_eq!(outcome(ApiError::from_answer(429, "{}")), Some(WriteOutcome::NotApplied));
        assert_eq!(outcome(ApiError::from_answer(400, "{}")), Some(WriteOutcome::NotApplied));
        let unreadable = serde_json::from_str::<Task>("{").unwrap_err();
        let applied = ApiError::malformed(200, &unreadable).for_write(true, Duration::from_secs(1));
        assert_eq!(applied.write_outcome, Some(WriteOutcome::AppliedUnreadable));
        assert!(applied.summary.contains("accepted it (HTTP 200)"), "{}", applied.summary);
        let unknown = ApiError::from_answer(502, "{}").for_write(true, Duration::from_secs(1));
        assert!(
            unknown.summary.starts_with("Outcome unknown: TaskRouter answered HTTP 502"),
            "{}",
            unknown.summary
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let credentials = Credentials::AuthToken { account_sid: "AC1".into(), auth_token: "s3cret".into() };
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }
}
