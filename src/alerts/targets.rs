//! Alert webhook URLs: checked when given, and never shown whole. A Slack incoming webhook's
//! path is its secret (`https://hooks.slack.com/services/T…/B…/XXXX`), as is a URL's
//! `user:password@`, so pages, the tracer's own logs, the log's alert rows and `/api` show
//! only `scheme://host/…` and the last 4 characters.

use std::fmt;
use std::str::FromStr;

/// A webhook URL to POST alerts to; its `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertUrl(String);

impl AlertUrl {
    /// The URL in full, for sending only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AlertUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        checked_webhook_url(raw).map(Self)
    }
}

impl fmt::Debug for AlertUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlertUrl({})", redact_url(&self.0))
    }
}

impl fmt::Display for AlertUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `raw`, trimmed, when it is an `http` or `https` URL with a host; else why not (without
/// repeating the URL, which may hold a secret).
///
/// # Errors
/// A URL that cannot be parsed, has another scheme, or has no host.
pub fn checked_webhook_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let url = reqwest::Url::parse(raw).map_err(|e| format!("the alert webhook is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the alert webhook must be an http or https URL, not {}:", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the alert webhook URL has no host".into());
    }
    Ok(raw.to_string())
}

/// `scheme://host[:port]/…` and the URL's last 4 characters: enough to tell webhooks apart,
/// never the path's or the user's secret.
pub fn redact_url(raw: &str) -> String {
    let Ok(url) = reqwest::Url::parse(raw) else { return "(an unreadable URL)".into() };
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let base = format!("{}://{host}{port}", url.scheme());
    let mut rest = url.path().to_string();
    if let Some(query) = url.query() {
        rest.push('?');
        rest.push_str(query);
    }
    if rest.len() <= 1 {
        return format!("{base}/");
    }
    let tail: String = {
        let chars: Vec<char> = rest.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("{base}/…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slack_webhook_shows_its_host_and_last_four_characters_only() {
        let slack = "https://hooks.slack.com/services/T0000/B0000/abcdefghWXYZ";
        assert_eq!(redact_url(slack), "https://hooks.slack.com/…WXYZ");
        let parsed: AlertUrl = slack.parse().unwrap();
        assert_eq!(format!("{parsed:?}"), "AlertUrl(https://hooks.slack.com/…WXYZ)");
        assert_eq!(parsed.as_str(), slack);
    }

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let shown = redact_url("https://ops:s3cret@alerts.example.com:8443/hook?token=zz12");
        assert_eq!(shown, "https://alerts.example.com:8443/…zz12");
        assert!(!shown.contains("s3cret") && !shown.contains("ops"));
        assert_eq!(redact_url("http://127.0.0.1:9000"), "http://127.0.0.1:9000/");
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken_and_the_refusal_does_not_repeat_them() {
        assert!(checked_webhook_url(" https://hooks.example.com/x ").is_ok());
        for bad in ["ftp://secret@example.com/x", "not a url secret", "file:///etc/passwd"] {
            let error = checked_webhook_url(bad).unwrap_err();
            assert!(!error.contains("secret") && !error.contains("passwd"), "{error}");
        }
    }
}
