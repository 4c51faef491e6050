//! The one place the tracer calls TaskRouter's REST API (or the simulator, which serves the
//! same API at another base URL).
//!
//! HTTP Basic with the account SID and auth token, or an API key and secret; timeouts on every
//! call; reads are retried with backoff on timeouts, 429 and 5xx; writes (accept, reject,
//! create) are never retried blindly, because a lost answer does not mean a lost write.
//! Errors carry Twilio's `code` and a plain-words explanation of what to do next.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Twilio's production base URL.
pub const DEFAULT_BASE_URL: &str = "https://taskrouter.twilio.com";

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
        }
    }

    fn transport(error: &reqwest::Error) -> Self {
        let summary = if error.is_timeout() {
            "TaskRouter did not answer in time: check the connection and try again."
        } else if error.is_connect() {
            "TaskRouter could not be reached: check the base URL and the network."
        } else {
            "The call to TaskRouter failed."
        };
        Self { status: None, code: None, message: error.to_string(), summary: format!("{summary} ({error})") }
    }

    fn malformed(status: u16, error: &serde_json::Error) -> Self {
        Self {
            status: Some(status),
            code: None,
            message: error.to_string(),
            summary: format!(
                "TaskRouter answered HTTP {status} with JSON this tracer cannot read ({error})."
            ),
        }
    }

    /// Whether a read may be tried again.
    fn is_transient(&self) -> bool {
        matches!(self.status, None | Some(429) | Some(500..=599))
    }
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
}

/// The TaskRouter REST client.
#[derive(Clone)]
pub struct TaskRouterClient {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    read_attempts: u32,
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
        Self { http, base_url: base_url.trim_end_matches('/').to_string(), credentials, read_attempts: 2 }
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
        let url = format!("{}{path}", self.base_url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (error, retry_after) = match self.authorize(self.http.get(&url).query(query)).send().await {
                Err(error) => (ApiError::transport(&error), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return serde_json::from_str(&body).map_err(|e| ApiError::malformed(status, &e));
                    }
                    (ApiError::from_answer(status, &body), retry_after)
                }
            };
            if attempt >= self.read_attempts || !error.is_transient() {
                return Err(error);
            }
            let backoff = retry_after
                .unwrap_or(Duration::from_millis(250 * u64::from(attempt)))
                .min(Duration::from_secs(2));
            tokio::time::sleep(backoff).await;
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
        };
        let result = match self.authorize(self.http.post(&url).form(&exchange.form)).send().await {
            Err(error) => Err(ApiError::transport(&error)),
            Ok(response) => {
                let status = response.status().as_u16();
                exchange.status = Some(status);
                exchange.body = response.text().await.unwrap_or_default();
                if (200..300).contains(&status) {
                    serde_json::from_str(&exchange.body).map_err(|e| ApiError::malformed(status, &e))
                } else {
                    Err(ApiError::from_answer(status, &exchange.body))
                }
            }
        };
        if let Err(error) = &result {
            if exchange.status.is_none() {
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
    fn debug_never_shows_secrets() {
        let credentials = Credentials::AuthToken { account_sid: "AC1".into(), auth_token: "s3cret".into() };
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }
}
