//! Who may use the pages and the JSON API, and proof that a form came from our own page.
//!
//! Every browser gets a signed session cookie (`tracer_session`: a random id, whether it has
//! logged in, and an HMAC under a per-process random key). State-changing forms carry a CSRF
//! token, the HMAC of that session id, checked on POST. When the tracer listens on anything but
//! loopback, everything except the webhooks (authenticated by their signature), `/healthz` and
//! `/login` needs a logged-in session or `Authorization: Bearer <ui password>`. Passwords are
//! compared in constant time and never rendered or logged.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;

const COOKIE: &str = "tracer_session";

/// The login policy and the key sessions and CSRF tokens are signed with.
pub struct WebSecurity {
    password_digest: Option<[u8; 32]>,
    require_login: bool,
    key: [u8; 32],
}

/// The caller's session, as the guard established it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub authenticated: bool,
    /// Authenticated by `Authorization: Bearer`, not a cookie: no CSRF risk.
    pub bearer: bool,
    /// Not in the request: the guard sets the cookie on the answer.
    fresh: bool,
}

impl WebSecurity {
    /// `require_login` when listening beyond loopback; then a password is mandatory.
    ///
    /// # Errors
    /// When a login is required and no password is configured.
    pub fn new(password: Option<&str>, require_login: bool) -> anyhow::Result<Self> {
        let password = password.filter(|p| !p.is_empty());
        if require_login && password.is_none() {
            anyhow::bail!(
                "refusing to listen beyond loopback without a login: set --ui-password (TRACER_UI_PASSWORD), \
                 or listen on 127.0.0.1"
            );
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Ok(Self {
            password_digest: password.map(|p| Sha256::digest(p.as_bytes()).into()),
            require_login,
            key,
        })
    }

    pub fn requires_login(&self) -> bool {
        self.require_login
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\x1f");
        }
        mac
    }

    fn cookie_value(&self, id: &str, authenticated: bool) -> String {
        let flag = if authenticated { "a" } else { "u" };
        let signature = hex::encode(self.mac(&["session", id, flag]).finalize().into_bytes());
        format!("{id}.{flag}.{signature}")
    }

    fn parse_cookie(&self, value: &str) -> Option<Session> {
        let mut parts = value.split('.');
        let (id, flag, signature) = (parts.next()?, parts.next()?, parts.next()?);
        let signature = hex::decode(signature).ok()?;
        self.mac(&["session", id, flag]).verify_slice(&signature).ok()?;
        Some(Session { id: id.to_string(), authenticated: flag == "a", bearer: false, fresh: false })
    }

    /// Whether `given` is the configured password (constant time).
    pub fn password_matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.password_digest.is_some_and(|digest| bool::from(digest.ct_eq(&given)))
    }

    /// The CSRF token for forms shown to `session`.
    pub fn csrf_token(&self, session: &Session) -> String {
        hex::encode(self.mac(&["csrf", &session.id]).finalize().into_bytes())
    }

    fn csrf_matches(&self, session: &Session, token: &str) -> bool {
        hex::decode(token.trim()).is_ok_and(|t| self.mac(&["csrf", &session.id]).verify_slice(&t).is_ok())
    }

    /// A `Set-Cookie` for a (new) session.
    pub fn session_cookie(&self, id: &str, authenticated: bool) -> String {
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie_value(id, authenticated))
    }
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn cookie_from(request: &HttpRequest) -> Option<String> {
    request.headers().get_all("cookie").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        },
    )
}

/// The session the guard attached to this request.
pub fn session(request: &HttpRequest) -> Session {
    request.extensions().get::<Session>().cloned().unwrap_or(Session {
        id: String::new(),
        authenticated: false,
        bearer: false,
        fresh: false,
    })
}

/// The CSRF token to put in this page's forms.
pub fn csrf_for(request: &HttpRequest, state: &AppState) -> String {
    state.security.csrf_token(&session(request))
}

/// `None` when a POST carries this session's CSRF token, else the 403 to answer.
pub fn csrf_refusal(request: &HttpRequest, state: &AppState, token: &str) -> Option<HttpResponse> {
    let session = session(request);
    if session.bearer || (!session.id.is_empty() && state.security.csrf_matches(&session, token)) {
        None
    } else {
        Some(HttpResponse::Forbidden().content_type("text/plain; charset=utf-8").body(
            "refused: this form's security token is missing or stale (CSRF check). Reload the page and send it again.",
        ))
    }
}

fn is_public(path: &str) -> bool {
    path.starts_with("/webhooks/") || path == "/healthz" || path == "/login"
}

/// The middleware: attaches a [`Session`], requires a login where configured, and sets the
/// session cookie on first contact.
///
/// # Errors
/// Whatever the wrapped service returns.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    // Webhooks are authenticated by their signature: pass them through before any other work.
    if request.path().starts_with("/webhooks/") {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    }
    let path = request.path().to_string();
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    };
    let security = &state.security;
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| security.password_matches(token));
    let mut session =
        cookie_from(request.request()).and_then(|value| security.parse_cookie(&value)).unwrap_or_else(|| {
            Session { id: new_session_id(), authenticated: false, bearer: false, fresh: true }
        });
    if bearer {
        session.authenticated = true;
        session.bearer = true;
    }
    if security.require_login && !session.authenticated && !is_public(&path) {
        let response = if path.starts_with("/api/") || path == "/metrics" || request.method() != "GET" {
            HttpResponse::Unauthorized()
                .content_type("application/json")
                .body(r#"{"error":"log in first (or send Authorization: Bearer <ui password>)"}"#)
        } else {
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let next_param: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
            HttpResponse::SeeOther().insert_header(("Location", format!("/login?next={next_param}"))).finish()
        };
        let mut response = request.into_response(response);
        if session.fresh {
            set_cookie(&mut response, &security.session_cookie(&session.id, false));
        }
        return Ok(response.map_into_right_body());
    }
    let fresh = session.fresh.then(|| session.id.clone());
    request.extensions_mut().insert(session);
    let mut response = next.call(request).await?;
    if let Some(id) = fresh {
        if !response.headers().contains_key(SET_COOKIE) {
            set_cookie(&mut response, &state.security.session_cookie(&id, false));
        }
    }
    Ok(response.map_into_left_body())
}

fn set_cookie<B>(response: &mut ServiceResponse<B>, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout));
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    csrf: String,
    next: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// Only a local path: never an open redirect.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/".to_string()
    }
}

async fn login_page(
    http: HttpRequest,
    query: web::Query<LoginQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    super::html::render(&LoginPage {
        storage_problem: None,
        projection_lag: None,
        alert_problem: None,
        csrf: csrf_for(&http, &state),
        next: safe_next(&query.next),
        error: None,
    })
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(http: HttpRequest, form: web::Form<LoginForm>, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    if !state.security.password_matches(&form.password) {
        tracing::warn!(remote = ?http.peer_addr(), "failed login");
        // A little friction against guessing.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut response = super::html::render(&LoginPage {
            storage_problem: None,
            projection_lag: None,
            alert_problem: None,
            csrf: csrf_for(&http, &state),
            next: safe_next(&form.next),
            error: Some("That is not the password.".into()),
        });
        *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return response;
    }
    // A new session id on login, so a planted cookie cannot be promoted.
    HttpResponse::SeeOther()
        .insert_header(("Location", safe_next(&form.next)))
        .insert_header((SET_COOKIE, state.security.session_cookie(&new_session_id(), true)))
        .finish()
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(http: HttpRequest, form: web::Form<CsrfOnly>, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .insert_header((SET_COOKIE, state.security.session_cookie(&new_session_id(), false)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_tokens_are_bound_to_the_key_and_session() {
        let security = WebSecurity::new(Some("pw"), true).unwrap();
        let cookie = security.cookie_value("abc", true);
        let session = security.parse_cookie(&cookie).unwrap();
        assert!(session.authenticated);
        assert!(security.parse_cookie(&cookie.replace(".a.", ".u.")).is_none(), "the flag is signed");
        let token = security.csrf_token(&session);
        assert!(security.csrf_matches(&session, &token));
        let other = Session { id: "xyz".into(), ..session.clone() };
        assert!(!security.csrf_matches(&other, &token));
        assert!(security.password_matches("pw") && !security.password_matches("p"));
        assert!(WebSecurity::new(None, true).is_err());
        assert_eq!(safe_next("//evil.example"), "/");
    }
}
