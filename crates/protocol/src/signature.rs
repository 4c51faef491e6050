//! Twilio's `X-Twilio-Signature`: computing it, checking it exactly as Twilio's helper libraries
//! do, and explaining a failure in words a user can act on.
//!
//! Owns the algorithm only (no HTTP, no storage). The signed string is the full URL as Twilio
//! requested it followed by every form parameter, sorted by name (byte order), as `name + value`
//! with no delimiters; repeated names contribute each distinct value, sorted. JSON bodies are
//! signed through a `bodySHA256` query parameter instead. HMAC-SHA1 keyed with the auth token,
//! base64-encoded, compared in constant time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The name of the header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Computes the signature Twilio sends for a form-encoded request to `url` with `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in canonical_params(params) {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Sorted by name, then value; each distinct (name, value) once, as the helper libraries do.
fn canonical_params(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

const VALID_EXPLANATION: &str = "The signature matches the configured public URL.";
const MISSING_EXPLANATION: &str = "The request carries no X-Twilio-Signature header: it did not come from \
                                   Twilio, or a proxy stripped the header.";
const UNCHECKED_EXPLANATION: &str =
    "Signature checking is off (no auth token configured, or --signature-check off).";

/// What a signature check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature matches the configured public URL.
    Valid,
    /// A signature was sent but does not match; the reason says what probably went wrong.
    Invalid(String),
    /// No `X-Twilio-Signature` header at all.
    Missing,
    /// Checking is off, or no auth token is configured.
    Unchecked,
}

impl Verdict {
    /// The stored, filterable name of the verdict.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid(_) => "invalid",
            Verdict::Missing => "missing",
            Verdict::Unchecked => "unchecked",
        }
    }

    /// The explanation stored next to the verdict: only a failed check's, which is particular
    /// to the request; the others are [`Verdict::standard_explanation`] of the verdict.
    pub fn stored_detail(&self) -> Option<String> {
        match self {
            Verdict::Invalid(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// The explanation every request with this stored verdict shares (none for `invalid`).
    pub fn standard_explanation(verdict: &str) -> Option<&'static str> {
        match verdict {
            "valid" => Some(VALID_EXPLANATION),
            "missing" => Some(MISSING_EXPLANATION),
            "unchecked" => Some(UNCHECKED_EXPLANATION),
            _ => None,
        }
    }

    /// The human explanation of the verdict.
    pub fn explanation(&self) -> String {
        match self {
            Verdict::Valid => VALID_EXPLANATION.into(),
            Verdict::Invalid(reason) => reason.clone(),
            Verdict::Missing => MISSING_EXPLANATION.into(),
            Verdict::Unchecked => UNCHECKED_EXPLANATION.into(),
        }
    }

    /// Whether a request with this verdict may count as a TaskRouter fact.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Valid | Verdict::Unchecked)
    }
}

/// Everything needed to check one request.
pub struct SignedRequest<'a> {
    /// The URL Twilio called: the configured public base URL joined with the path and query.
    pub url: &'a str,
    /// The decoded form parameters (empty for a JSON body).
    pub params: &'a [(String, String)],
    /// The raw body, for `bodySHA256`.
    pub body: &'a [u8],
    /// The header's value, if any.
    pub signature: Option<&'a str>,
}

/// Checks `request` against `auth_token`. `alternative_urls` are other URLs the request might have
/// been signed for (the Host header's, http vs https…): they are tried only to diagnose a
/// failure, never to accept one.
pub fn verify(auth_token: &str, request: &SignedRequest<'_>, alternative_urls: &[String]) -> Verdict {
    let Some(signature) = request.signature else {
        return Verdict::Missing;
    };
    if let Some(declared) = query_param(request.url, "bodySHA256") {
        let actual = hex::encode(Sha256::digest(request.body));
        if !declared.eq_ignore_ascii_case(&actual) {
            return Verdict::Invalid(format!(
                "The URL's bodySHA256 ({declared}) is not the SHA-256 of the body received \
                 ({actual}): the body was changed on its way."
            ));
        }
    }
    let params_for = |url: &str| -> Vec<(String, String)> {
        if query_param(url, "bodySHA256").is_some() {
            Vec::new()
        } else {
            request.params.to_vec()
        }
    };
    let mut accepted = port_variants(request.url);
    if request.url.contains('\'') {
        // Node's helper also accepts the query re-serialised with `'` as `%27`.
        accepted.extend(port_variants(&request.url.replace('\'', "%27")));
    }
    for candidate in accepted {
        let params = params_for(&candidate);
        if signatures_equal(&compute(auth_token, &candidate, &params), signature) {
            return Verdict::Valid;
        }
    }
    Verdict::Invalid(diagnose(auth_token, request, signature, alternative_urls))
}

fn signatures_equal(expected: &str, received: &str) -> bool {
    expected.as_bytes().ct_eq(received.trim().as_bytes()).into()
}

/// Tries the usual culprits to say why a signature failed.
fn diagnose(
    auth_token: &str,
    request: &SignedRequest<'_>,
    signature: &str,
    alternative_urls: &[String],
) -> String {
    let mut candidates: Vec<String> = alternative_urls.to_vec();
    for url in std::iter::once(request.url.to_string()).chain(alternative_urls.iter().cloned()) {
        if let Some(flipped) = flip_scheme(&url) {
            candidates.push(flipped);
        }
        candidates.push(toggle_trailing_slash(&url));
    }
    for candidate in candidates {
        for variant in port_variants(&candidate) {
            if signatures_equal(&compute(auth_token, &variant, request.params), signature) {
                return format!(
                    "This request was signed for {variant}; the tracer checked it against {} ({}). \
                     Set --public-url to the URL configured in Twilio.",
                    request.url,
                    describe_difference(request.url, &variant)
                );
            }
        }
    }
    format!(
        "The signature does not match {} with any port variant, nor any usual alternative \
         (http/https, trailing slash, the Host header). Either the auth token differs from the \
         account that signed it (a sub-account signs with its own token), or the parameters were \
         changed on their way.",
        request.url
    )
}

fn describe_difference(configured: &str, signed_for: &str) -> &'static str {
    let scheme = |u: &str| u.split("://").next().unwrap_or("").to_ascii_lowercase();
    if scheme(configured) != scheme(signed_for) {
        "scheme differs"
    } else if configured.trim_end_matches('/') == signed_for.trim_end_matches('/') {
        "trailing slash differs"
    } else if authority(configured).map(strip_port) == authority(signed_for).map(strip_port) {
        "port differs"
    } else {
        "host differs"
    }
}

fn flip_scheme(url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("https://") {
        Some(format!("http://{rest}"))
    } else {
        url.strip_prefix("http://").map(|rest| format!("https://{rest}"))
    }
}

fn toggle_trailing_slash(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let toggled = match base.strip_suffix('/') {
        Some(stripped) => stripped.to_string(),
        None => format!("{base}/"),
    };
    match query {
        Some(q) => format!("{toggled}?{q}"),
        None => toggled,
    }
}

/// The authority part (`user@host:port`) of a URL, if it has one.
fn authority(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://")?.1;
    let end = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    Some(&after_scheme[..end])
}

fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(i)
            if authority[i + 1..].chars().all(|c| c.is_ascii_digit()) && !authority[i + 1..].is_empty() =>
        {
            &authority[..i]
        }
        _ => authority,
    }
}

/// The URL as given, with its port removed, and with the scheme's default port added, which
/// are the three forms Twilio's helper libraries accept.
pub fn port_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let Some((scheme, after_scheme)) = url.split_once("://") else {
        return variants;
    };
    let Some(auth) = authority(url) else {
        return variants;
    };
    let rest = &after_scheme[auth.len()..];
    let host_part = strip_port(auth);
    if host_part.len() != auth.len() {
        variants.push(format!("{scheme}://{host_part}{rest}"));
    } else {
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" => 443,
            "http" => 80,
            _ => return variants,
        };
        variants.push(format!("{scheme}://{auth}:{default_port}{rest}"));
    }
    variants
}

/// The first value of a query parameter in `url`, decoded.
/// `url` with its `bodySHA256` query parameter set to the hex SHA-256 of `body` (an old one
/// dropped): what Twilio signs for a JSON body, where the signature then covers the URL alone.
pub fn with_body_hash(url: &str, body: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(body));
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let mut kept: Vec<&str> =
        query.split('&').filter(|pair| !pair.is_empty() && !pair.starts_with("bodySHA256=")).collect();
    let pair = format!("bodySHA256={hash}");
    kept.push(&pair);
    let mut out = format!("{path}?{}", kept.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Whether `url` (or a path and query) carries a `bodySHA256` query parameter.
pub fn has_body_hash(url: &str) -> bool {
    query_param(url, "bodySHA256").is_some()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes()).find(|(n, _)| n == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn voice_params() -> Vec<(String, String)> {
        p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    fn check(url: &str, params: &[(String, String)], body: &[u8], sig: &str) -> Verdict {
        verify(TOKEN, &SignedRequest { url, params, body, signature: Some(sig) }, &[])
    }

    #[test]
    fn official_vector_base_url_and_params() {
        assert_eq!(compute(TOKEN, URL, &voice_params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(check(URL, &voice_params(), b"", "RSOYDt4T1cUTdK1PDd93/VVr8B8="), Verdict::Valid);
    }

    #[test]
    fn official_vectors_for_port_variants() {
        let with_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, with_443, &voice_params()), "kvajT1Ptam85bY51eRf/AJRuM3w=");
        let http_80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, http_80, &voice_params()), "0ZXoZLH/DfblKGATFgpif+LLRf4=");
        let http_1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, http_1234, &voice_params()), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
        // A request received on :1234 validates with the signature of the port-less URL.
        let https_1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(check(https_1234, &voice_params(), b"", "RSOYDt4T1cUTdK1PDd93/VVr8B8="), Verdict::Valid);
        // And a port-less URL validates with the signature Twilio made with :443 added.
        assert_eq!(check(URL, &voice_params(), b"", "kvajT1Ptam85bY51eRf/AJRuM3w="), Verdict::Valid);
    }

    #[test]
    fn official_vector_repeated_params() {
        let params = p(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(compute(TOKEN, URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn official_vector_array_params_in_any_order() {
        let forward =
            p(&[("MessagingBinding.Address", "+1325xxxxxxx"), ("MessagingBinding.Address", "+1415xxxxxxx")]);
        let backward =
            p(&[("MessagingBinding.Address", "+1415xxxxxxx"), ("MessagingBinding.Address", "+1325xxxxxxx")]);
        assert_eq!(compute(TOKEN, URL, &forward), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
        assert_eq!(compute(TOKEN, URL, &backward), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
    }

    #[test]
    fn official_vectors_with_credentials_in_url() {
        let creds = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, creds, &voice_params()), "CukzLTc1tT5dXEDIHm/tKBanW10=");
        let creds_443 = "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, creds_443, &voice_params()), "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=");
        assert_eq!(check(creds, &voice_params(), b"", "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="), Verdict::Valid);
        let user_only = "https://user@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(compute(TOKEN, user_only, &voice_params()), "2YRLlVAflCqxaNicjMpJcSTgzSs=");
    }

    #[test]
    fn official_vector_apostrophe_in_query_matches_percent_encoded_form() {
        let encoded = format!("{URL}&Body=It%27s+amazing");
        assert_eq!(compute(TOKEN, &encoded, &voice_params()), "TfZzewPq8wqrGlMfyAud8+/IvJ0=");
        let raw = format!("{URL}&Body=It's+amazing");
        assert_eq!(check(&raw, &voice_params(), b"", "TfZzewPq8wqrGlMfyAud8+/IvJ0="), Verdict::Valid);
    }

    #[test]
    fn official_vectors_json_body() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let url = format!("{URL}&bodySHA256={hash}");
        assert_eq!(compute(TOKEN, &url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
        assert_eq!(check(&url, &[], body, "a9nBmqA0ju/hNViExpshrM61xv4="), Verdict::Valid);
        let only_hash = format!("https://mycompany.com/myapp.php?bodySHA256={hash}");
        assert_eq!(compute(TOKEN, &only_hash, &[]), "y77kIzt2vzLz71DgmJGsen2scGs=");
        // A body that does not hash to bodySHA256 is refused even with a good URL signature.
        assert!(matches!(check(&url, &[], b"{}", "a9nBmqA0ju/hNViExpshrM61xv4="), Verdict::Invalid(_)));
        // Re-signing for a target sets the hash the official vector carries, replacing a stale one.
        assert_eq!(with_body_hash(URL, body), url);
        assert_eq!(with_body_hash(&format!("{URL}&bodySHA256=00"), body), url);
        assert_eq!(with_body_hash("https://mycompany.com/myapp.php", body), only_hash);
    }

    #[test]
    fn official_vector_empty_json_body_matches_only_with_port_added() {
        let hash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let url = format!("{URL}&bodySHA256={hash}");
        let with_port = url.replace("mycompany.com", "mycompany.com:443");
        assert_eq!(compute(TOKEN, &with_port, &[]), "Ldidvp12m26NI7eqEvxnEpkd9Hc=");
        assert_eq!(compute(TOKEN, &url, &[]), "rw/jVviOgicj2+kHZULvebnA4ag=");
        assert_eq!(check(&url, &[], b"{}", "Ldidvp12m26NI7eqEvxnEpkd9Hc="), Verdict::Valid);
    }

    fn taskrouter_params() -> Vec<(String, String)> {
        p(&[
            ("AccountSid", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("WorkspaceSid", "WSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("WorkflowSid", "WWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("TaskQueueSid", "WQaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("WorkerSid", "WKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("TaskSid", "WTaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("ReservationSid", "WRaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("TaskAttributes", r#"{"type":"support"}"#),
            ("WorkerAttributes", r#"{"contact_uri":"client:joey"}"#),
            ("TaskAge", "12"),
            ("TaskPriority", "0"),
            ("Timestamp", "1700000000"),
        ])
    }

    #[test]
    fn taskrouter_shaped_vector() {
        let url = "https://example.com/taskrouter/assignment";
        assert_eq!(compute(TOKEN, url, &taskrouter_params()), "T1EPy1p5+3HmGp1CJIwwx8mtv3k=");
        let with_port = "https://example.com:443/taskrouter/assignment";
        assert_eq!(compute(TOKEN, with_port, &taskrouter_params()), "E0vUK1PuqhLxfPlSN49wKr1m+xA=");
    }

    #[test]
    fn missing_header_is_missing() {
        let verdict = verify(
            TOKEN,
            &SignedRequest { url: URL, params: &voice_params(), body: b"", signature: None },
            &[],
        );
        assert_eq!(verdict, Verdict::Missing);
    }

    #[test]
    fn changed_parameter_is_invalid() {
        let mut params = voice_params();
        params[2].1 = "9999".into();
        assert!(matches!(check(URL, &params, b"", "RSOYDt4T1cUTdK1PDd93/VVr8B8="), Verdict::Invalid(_)));
    }

    #[test]
    fn scheme_mismatch_is_diagnosed_but_not_accepted() {
        let signed_for_https = compute(TOKEN, URL, &voice_params());
        let configured = "http://mycompany.com/myapp.php?foo=1&bar=2";
        let Verdict::Invalid(reason) = check(configured, &voice_params(), b"", &signed_for_https) else {
            panic!("a scheme mismatch must not validate");
        };
        assert!(reason.contains("scheme differs"), "{reason}");
        assert!(reason.contains("https://mycompany.com/myapp.php"), "{reason}");
    }

    #[test]
    fn host_header_mismatch_is_diagnosed() {
        let signed = compute(TOKEN, "https://abc.ngrok.app/webhooks/events", &voice_params());
        let verdict = verify(
            TOKEN,
            &SignedRequest {
                url: "https://tracer.example.com/webhooks/events",
                params: &voice_params(),
                body: b"",
                signature: Some(&signed),
            },
            &["https://abc.ngrok.app/webhooks/events".to_string()],
        );
        let Verdict::Invalid(reason) = verdict else { panic!("must not validate") };
        assert!(reason.contains("host differs"), "{reason}");
    }

    #[test]
    fn trailing_slash_is_diagnosed() {
        let signed = compute(TOKEN, "https://x.example/webhooks/events/", &voice_params());
        let Verdict::Invalid(reason) =
            check("https://x.example/webhooks/events", &voice_params(), b"", &signed)
        else {
            panic!("must not validate")
        };
        assert!(reason.contains("trailing slash"), "{reason}");
    }
}
