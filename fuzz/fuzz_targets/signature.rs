//! Fuzzes the `X-Twilio-Signature` check with arbitrary URLs, parameters, bodies and headers.
//!
//! Input: four newline-separated parts — auth token, URL, header value, then the form body
//! (parsed as the webhook endpoints parse it; an unparseable body signs no parameters).
//! Checks: nothing panics; a missing header is `Missing`; the signature computed for the input
//! verifies, and any other signature does not; a URL carrying a `bodySHA256` that does not
//! match the body never verifies; and the same request signed through `bodySHA256` (as Twilio
//! signs JSON bodies) verifies whatever parameters come with it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use taskrouter_protocol::signature::{compute, port_variants, verify, SignedRequest, Verdict};
use taskrouter_protocol::webhook::parse_form;

/// `bodySHA256` as the verifier finds it: the first query parameter of that name, decoded.
fn declared_body_hash(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes()).find(|(n, _)| n == "bodySHA256").map(|(_, v)| v.into_owned())
}

/// A different signature of the same shape: the first character changed.
fn tampered(signature: &str) -> String {
    let replacement = if signature.starts_with('A') { "B" } else { "A" };
    format!("{replacement}{}", &signature[1..])
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let token = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let params = parse_form(body).map(|p| p.0).unwrap_or_default();
    let check = |url: &str, signature: Option<&str>| {
        let alternatives = [url.replacen("https://", "http://", 1), format!("{url}/")];
        verify(&token, &SignedRequest { url, params: &params, body, signature }, &alternatives)
    };

    assert_eq!(port_variants(&url).first(), Some(&url));
    assert_eq!(check(&url, None), Verdict::Missing);
    if let Verdict::Invalid(reason) = check(&url, Some(&header)) {
        assert!(!reason.is_empty());
    }

    let body_hash = hex::encode(Sha256::digest(body));
    match declared_body_hash(&url) {
        None => {
            let signature = compute(&token, &url, &params);
            assert_eq!(check(&url, Some(&signature)), Verdict::Valid, "its own signature verifies");
            assert_ne!(check(&url, Some(&tampered(&signature))), Verdict::Valid, "another does not");
            if !url.contains('#') {
                let separator = if url.contains('?') { '&' } else { '?' };
                let json_url = format!("{url}{separator}bodySHA256={body_hash}");
                let signature = compute(&token, &json_url, &[]);
                assert_eq!(check(&json_url, Some(&signature)), Verdict::Valid, "bodySHA256 signing");
            }
        }
        Some(declared) if !declared.eq_ignore_ascii_case(&body_hash) => {
            let signature = compute(&token, &url, &[]);
            assert!(matches!(check(&url, Some(&signature)), Verdict::Invalid(_)), "a changed body");
        }
        Some(_) => {
            let signature = compute(&token, &url, &[]);
            assert_eq!(check(&url, Some(&signature)), Verdict::Valid);
        }
    }
});
