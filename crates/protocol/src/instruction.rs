//! Assignment-callback answers, judged as TaskRouter judges them: `200`, `application/json`,
//! within 5 s, and JSON that is `{}` (defer) or a known `instruction` with its required fields.
//!
//! Pure: it maps an answer to findings, each with the Twilio warning or error it would cause
//! (when Twilio documents one) and what to fix.

use serde::{Deserialize, Serialize};

/// TaskRouter's wait for an assignment callback's answer.
pub const ASSIGNMENT_DEADLINE_MS: u64 = 5_000;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// TaskRouter ignores the answer (the reservation stays pending and may time out).
    Error,
    /// TaskRouter logs a warning but the outcome may still be what you meant.
    Warning,
}

/// One problem with an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The Twilio error/warning code it would cause, where Twilio documents one.
    pub twilio_code: Option<u32>,
    pub problem: String,
    pub fix: String,
}

/// What an answer means to TaskRouter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerCheck {
    /// `accept`, `reject`, `dequeue`, `call`, `redirect`, `defer` (`{}`), or `none` when ignored.
    pub instruction: String,
    pub findings: Vec<Finding>,
}

impl AnswerCheck {
    /// True when TaskRouter would act on the answer as intended.
    pub fn is_ok(&self) -> bool {
        self.findings.iter().all(|f| f.severity == Severity::Warning)
    }
}

fn finding(severity: Severity, twilio_code: Option<u32>, problem: &str, fix: &str) -> Finding {
    Finding { severity, twilio_code, problem: problem.to_string(), fix: fix.to_string() }
}

/// Judges an app's answer to an assignment callback.
pub fn check_assignment_answer(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    latency_ms: u64,
) -> AnswerCheck {
    let mut findings = Vec::new();
    let ignored = |findings: Vec<Finding>| AnswerCheck { instruction: "none".into(), findings };
    if latency_ms > ASSIGNMENT_DEADLINE_MS {
        findings.push(finding(
            Severity::Error,
            None,
            &format!("answered after {latency_ms} ms; TaskRouter waits 5,000 ms"),
            "Answer the assignment callback at once (e.g. {} to defer) and do slow work afterwards; \
             TaskRouter calls the FallbackAssignmentCallbackUrl instead.",
        ));
    }
    if status != 200 {
        findings.push(finding(
            Severity::Error,
            None,
            &format!("answered HTTP {status}; TaskRouter needs 200"),
            "Return 200 OK; any other status makes TaskRouter ignore the answer and try the \
             FallbackAssignmentCallbackUrl.",
        ));
        return ignored(findings);
    }
    let is_json = content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        findings.push(finding(
            Severity::Error,
            None,
            &format!(
                "Content-Type is {}; TaskRouter needs application/json",
                content_type.unwrap_or("missing")
            ),
            "Set Content-Type: application/json on the answer.",
        ));
    }
    let trimmed = String::from_utf8_lossy(body);
    let trimmed = trimmed.trim();
    if trimmed.is_empty() {
        findings.push(finding(
            Severity::Warning,
            Some(40005),
            "the answer is empty: no instruction",
            "To defer the decision, answer {} and accept or reject through the REST API later.",
        ));
        return AnswerCheck { instruction: "defer".into(), findings };
    }
    let value: serde_json::Value = match serde_json::from_str(trimmed) {
        Ok(value) => value,
        Err(error) => {
            findings.push(finding(
                Severity::Error,
                Some(40001),
                &format!("the answer is not JSON ({error})"),
                "Return a JSON object such as {\"instruction\":\"accept\"}, not escaped or quoted JSON.",
            ));
            return ignored(findings);
        }
    };
    let Some(object) = value.as_object() else {
        findings.push(finding(
            Severity::Error,
            Some(40001),
            "the answer is JSON but not an object (an escaped or quoted JSON string?)",
            "Return a JSON object such as {\"instruction\":\"accept\"}.",
        ));
        return ignored(findings);
    };
    let Some(instruction) = object.get("instruction") else {
        let problem = if object.is_empty() {
            "{} defers the decision (TaskRouter logs warning 40005)"
        } else {
            "the JSON has no \"instruction\" (TaskRouter logs warning 40005 and waits)"
        };
        findings.push(finding(
            Severity::Warning,
            Some(40005),
            problem,
            "Accept or reject the reservation through the REST API before the reservation timeout.",
        ));
        return AnswerCheck { instruction: "defer".into(), findings };
    };
    let name = instruction.as_str().unwrap_or_default().to_ascii_lowercase();
    let field = |key: &str| object.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let is_url =
        |key: &str| field(key).is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
    match name.as_str() {
        "accept" => {}
        "reject" => {
            if field("activity_sid").is_none() {
                findings.push(finding(
                    Severity::Warning,
                    None,
                    "reject without activity_sid: the worker keeps its current (available) activity and may be \
                     offered the task again at once",
                    "Add \"activity_sid\" naming an unavailable activity.",
                ));
            }
        }
        "dequeue" => {
            if field("from").is_none() {
                findings.push(finding(
                    Severity::Error,
                    Some(40132),
                    "dequeue without \"from\"",
                    "Add \"from\": a verified caller ID (or a client/SIP caller).",
                ));
            }
        }
        "call" => {
            if !is_url("url") {
                findings.push(finding(
                    Severity::Error,
                    Some(40112),
                    "call without a well-formed \"url\"",
                    "Add \"url\": the http(s) URL of the TwiML to run when the worker answers.",
                ));
            }
            if field("from").is_none() {
                findings.push(finding(
                    Severity::Error,
                    None,
                    "call without \"from\"",
                    "Add \"from\": the caller ID to use.",
                ));
            }
        }
        "redirect" => {
            if !field("call_sid").is_some_and(|s| s.starts_with("CA") && s.len() == 34) {
                findings.push(finding(
                    Severity::Error,
                    Some(40121),
                    "redirect without a valid \"call_sid\"",
                    "Add \"call_sid\": the CA… SID of a live call.",
                ));
            }
            if !is_url("url") {
                findings.push(finding(
                    Severity::Error,
                    Some(40120),
                    "redirect without a well-formed \"url\"",
                    "Add \"url\": the http(s) URL of the TwiML to redirect the call to.",
                ));
            }
        }
        _ => {
            findings.push(finding(
                Severity::Error,
                Some(55555),
                &format!("unknown instruction {instruction}"),
                "Use accept, reject, dequeue, call or redirect (or answer {} and use the REST API).",
            ));
            return ignored(findings);
        }
    }
    AnswerCheck { instruction: name, findings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> AnswerCheck {
        check_assignment_answer(200, Some("application/json"), body.as_bytes(), 10)
    }

    fn codes(check: &AnswerCheck) -> Vec<Option<u32>> {
        check.findings.iter().map(|f| f.twilio_code).collect()
    }

    #[test]
    fn accept_and_a_complete_reject_are_clean() {
        assert!(check(r#"{"instruction":"accept"}"#).findings.is_empty());
        let reject = check(r#"{"instruction":"reject","activity_sid":"WA0123456789abcdef0123456789abcdef"}"#);
        assert_eq!((reject.instruction.as_str(), reject.findings.len()), ("reject", 0));
    }

    #[test]
    fn empty_object_defers_with_warning_40005() {
        let answer = check("{}");
        assert_eq!(answer.instruction, "defer");
        assert_eq!(codes(&answer), vec![Some(40005)]);
        assert!(answer.is_ok());
    }

    #[test]
    fn escaped_json_is_40001() {
        let answer = check(r#""{\"instruction\":\"accept\"}""#);
        assert_eq!(codes(&answer), vec![Some(40001)]);
        assert!(!answer.is_ok());
        assert_eq!(codes(&check("instruction=accept")), vec![Some(40001)]);
    }

    #[test]
    fn unknown_instruction_is_55555() {
        assert_eq!(codes(&check(r#"{"instruction":"take"}"#)), vec![Some(55555)]);
    }

    #[test]
    fn missing_required_fields_are_named() {
        assert_eq!(
            codes(&check(r#"{"instruction":"redirect","url":"https://x.example/t"}"#)),
            vec![Some(40121)]
        );
        assert_eq!(codes(&check(r#"{"instruction":"call","from":"+15550000000"}"#)), vec![Some(40112)]);
        assert_eq!(codes(&check(r#"{"instruction":"dequeue"}"#)), vec![Some(40132)]);
        assert!(check(r#"{"instruction":"reject"}"#).is_ok(), "a reject without activity is only a warning");
    }

    #[test]
    fn wrong_status_type_or_lateness_is_an_error() {
        let not_ok = check_assignment_answer(500, Some("application/json"), b"{}", 10);
        assert_eq!(not_ok.instruction, "none");
        let html = check_assignment_answer(200, Some("text/html"), br#"{"instruction":"accept"}"#, 10);
        assert!(!html.is_ok());
        let late =
            check_assignment_answer(200, Some("application/json"), br#"{"instruction":"accept"}"#, 5_200);
        assert!(late.findings[0].problem.contains("5200 ms"));
    }
}
