//! A browser-like session for form tests: keeps the tracer's session cookie and reads the
//! CSRF token from the pages it loads (reqwest is built without a cookie store).

use crate::helpers::TestApp;

pub struct WebSession {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
}

/// The value of the first hidden `csrf` input in `html`.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    Some(html[at..].split('"').next()?.to_string())
}

impl WebSession {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.address)
    }

    pub fn at(base: &str) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: base.to_string(), client, cookie: None }
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            if let Some(pair) = value.split(';').next().filter(|p| p.starts_with("tracer_session=")) {
                self.cookie = Some(pair.to_string());
            }
        }
    }

    /// GETs `path`, returning the status, the `Location` (if any) and the body.
    pub async fn get(&mut self, path: &str) -> (u16, Option<String>, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (status, location, response.text().await.unwrap())
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let (status, _, html) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {html}");
        csrf_in(&html).unwrap_or_else(|| panic!("no CSRF token on {path}"))
    }

    /// POSTs a form to `path`, returning the status, the `Location` (if any) and the body.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (status, location, response.text().await.unwrap())
    }
}
