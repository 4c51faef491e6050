//! A TaskRouter webhook body, parsed: the form parameters in order, and the facts the log
//! indexes (event type, event SID, the resource SIDs, when it happened).
//!
//! Parsing never drops a field: unknown parameters stay in [`FormParams`] and in the stored raw
//! body. A body is *malformed* only when it cannot be a TaskRouter callback at all (not UTF-8
//! after decoding, missing the fields that identify it, an unreadable timestamp).

use super::timestamp::{self, OccurredAt};

/// Which webhook endpoint a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A Workflow's `AssignmentCallbackUrl`.
    Assignment,
    /// A Workspace's `EventCallbackUrl`.
    Events,
}

impl Endpoint {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Assignment => "assignment",
            Endpoint::Events => "events",
        }
    }

    /// Parses the stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "assignment" => Some(Endpoint::Assignment),
            "events" => Some(Endpoint::Events),
            _ => None,
        }
    }
}

/// The event type recorded for assignment callbacks, which carry none of their own.
pub const ASSIGNMENT_EVENT_TYPE: &str = "assignment";

/// Decoded form parameters, in the order they were sent (repeats kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams(pub Vec<(String, String)>);

impl FormParams {
    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Why a body is not a TaskRouter callback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid UTF-8 once percent-decoded (first bad parameter: {0})")]
    NotUtf8(String),
    #[error("parameter {0} is required for {1} callbacks and is missing or empty")]
    MissingField(&'static str, &'static str),
    #[error("{0}")]
    BadTimestamp(String),
    #[error(
        "the body has {0} parameters; TaskRouter callbacks carry a few dozen, and at most \
         {MAX_FORM_PARAMS} are accepted"
    )]
    TooManyParams(usize),
}

/// The most parameters a body may have. TaskRouter sends about 40; the bound keeps a 64 KB body
/// of `a&a&…` from becoming tens of thousands of allocations held until the row is committed.
pub const MAX_FORM_PARAMS: usize = 1000;

/// Decodes an `application/x-www-form-urlencoded` body strictly: a name or value that is not
/// UTF-8 after percent-decoding is an error (lossy decoding would silently change the data).
pub fn parse_form(body: &[u8]) -> Result<FormParams, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let count = form_segments(body).count();
    if count > MAX_FORM_PARAMS {
        return Err(ParseError::TooManyParams(count));
    }
    let mut pairs = Vec::with_capacity(count);
    for segment in form_segments(body) {
        let (name, value) = split_segment(segment);
        let name = decode_component(name).map_err(|_| ParseError::NotUtf8(lossy_name(name)))?;
        let value = decode_component(value).map_err(|_| ParseError::NotUtf8(name.clone()))?;
        pairs.push((name, value));
    }
    Ok(FormParams(pairs))
}

/// The first value of each of `names` in a form body, percent-decoded, decoding nothing else:
/// what [`parse_form`] followed by [`FormParams::get`] gives for a body `parse_form` accepts,
/// at a fraction of the cost (a rebuild reads a dozen parameters of millions of stored bodies).
/// A value that is not UTF-8 once decoded is `None`.
pub fn first_values<const N: usize>(body: &[u8], names: &[&str; N]) -> [Option<String>; N] {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut found = [false; N];
    let mut missing = N;
    for segment in form_segments(body) {
        let (raw_name, raw_value) = split_segment(segment);
        // Names are plain ASCII in practice; an encoded one is decoded before comparing.
        let decoded;
        let name: &[u8] = if memchr::memchr2(b'%', b'+', raw_name).is_some() {
            decoded = decode_component(raw_name).map(String::into_bytes).unwrap_or_default();
            &decoded
        } else {
            raw_name
        };
        if let Some(index) = names.iter().position(|wanted| wanted.as_bytes() == name) {
            if !found[index] {
                found[index] = true;
                values[index] = decode_component(raw_value).ok();
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
    }
    values
}

/// The non-empty `&`-separated segments of a form body (memchr: bodies are scanned in bulk,
/// not byte by byte; a rebuild scans millions of them).
fn form_segments(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || loop {
        let remaining = rest?;
        let segment = match memchr::memchr(b'&', remaining) {
            Some(end) => {
                rest = Some(&remaining[end + 1..]);
                &remaining[..end]
            }
            None => {
                rest = None;
                remaining
            }
        };
        if !segment.is_empty() {
            return Some(segment);
        }
    })
}

/// A segment's raw name and raw value (empty when it has no `=`).
fn split_segment(segment: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', segment) {
        Some(i) => (&segment[..i], &segment[i + 1..]),
        None => (segment, &segment[segment.len()..]),
    }
}

fn lossy_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned()
}

/// Percent-decodes one component, with `+` as space. A value without escapes (SIDs, names) is
/// copied whole. Otherwise the bytes before the first escape are copied whole and the rest is
/// decoded byte by byte, in place in that copy (each byte is written at or before the index it
/// was read from), because TaskRouter's values have escapes every few bytes
/// (`TaskAttributes`), too often for copying the runs between them to pay, and a growing
/// vector's bookkeeping would cost more than the decoding.
fn decode_component(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    let Some(first_escape) = memchr::memchr2(b'%', b'+', raw) else {
        return String::from_utf8(raw.to_vec());
    };
    let mut out = raw.to_vec();
    let mut written = first_escape;
    let mut read = first_escape;
    while read < raw.len() {
        out[written] = match raw[read] {
            b'+' => b' ',
            b'%' if read + 2 < raw.len() => match (hex_value(raw[read + 1]), hex_value(raw[read + 2])) {
                (Some(hi), Some(lo)) => {
                    read += 2;
                    hi << 4 | lo
                }
                _ => b'%',
            },
            byte => byte,
        };
        written += 1;
        read += 1;
    }
    out.truncate(written);
    String::from_utf8(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// What the log indexes about one well-formed callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFacts {
    /// `EventType`, or `assignment` for assignment callbacks.
    pub event_type: String,
    /// The event SID (`EV…`) on event callbacks.
    pub event_sid: Option<String>,
    pub account_sid: Option<String>,
    pub workspace_sid: Option<String>,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub task_queue_sid: Option<String>,
    pub workflow_sid: Option<String>,
    pub occurred_at: OccurredAt,
}

/// Extracts the indexed facts from a parsed body.
///
/// # Errors
/// A [`ParseError`] when the body lacks what identifies it (an assignment callback without
/// `TaskSid`/`ReservationSid`, an event without `EventType`) or carries an unreadable timestamp.
pub fn extract_facts(
    endpoint: Endpoint,
    params: &FormParams,
    arrival_ms: i64,
) -> Result<WebhookFacts, ParseError> {
    let owned = |name: &str| params.non_empty(name).map(str::to_string);
    let event_type = match endpoint {
        Endpoint::Assignment => {
            for required in ["TaskSid", "ReservationSid"] {
                if params.non_empty(required).is_none() {
                    return Err(ParseError::MissingField(
                        if required == "TaskSid" { "TaskSid" } else { "ReservationSid" },
                        "assignment",
                    ));
                }
            }
            ASSIGNMENT_EVENT_TYPE.to_string()
        }
        Endpoint::Events => {
            params.non_empty("EventType").ok_or(ParseError::MissingField("EventType", "event"))?.to_string()
        }
    };
    let occurred_at = timestamp::occurred_at(params.get("TimestampMs"), params.get("Timestamp"), arrival_ms)
        .map_err(ParseError::BadTimestamp)?;
    // Some events name their subject only through ResourceSid.
    let resource = |prefix: &str| {
        params.non_empty("ResourceSid").filter(|sid| sid.starts_with(prefix)).map(str::to_string)
    };
    Ok(WebhookFacts {
        event_type,
        event_sid: owned("Sid"),
        account_sid: owned("AccountSid"),
        workspace_sid: owned("WorkspaceSid").or_else(|| resource("WS")),
        task_sid: owned("TaskSid").or_else(|| resource("WT")),
        reservation_sid: owned("ReservationSid").or_else(|| resource("WR")),
        worker_sid: owned("WorkerSid").or_else(|| resource("WK")),
        task_queue_sid: owned("TaskQueueSid").or_else(|| resource("WQ")),
        workflow_sid: owned("WorkflowSid").or_else(|| resource("WW")),
        occurred_at,
    })
}

/// Encodes parameters as a form body (the inverse of [`parse_form`]).
pub fn encode_form(params: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeSource;

    fn params(pairs: &[(&str, &str)]) -> FormParams {
        FormParams(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect())
    }

    #[test]
    fn decodes_plus_and_percent_and_keeps_order_and_repeats() {
        let parsed = parse_form(b"B=a+b&A=%7B%22x%22%3A1%7D&B=%zz&C").unwrap();
        assert_eq!(
            parsed.0,
            vec![
                ("B".into(), "a b".into()),
                ("A".into(), "{\"x\":1}".into()),
                ("B".into(), "%zz".into()),
                ("C".into(), String::new()),
            ]
        );
    }

    #[test]
    fn truncated_percent_escape_is_kept_literally() {
        assert_eq!(parse_form(b"A=50%").unwrap().get("A"), Some("50%"));
        assert_eq!(parse_form(b"A=%4").unwrap().get("A"), Some("%4"));
    }

    #[test]
    fn round_trips_through_encode() {
        let original = params(&[("TaskAttributes", "{\"a\":\"é & =\"}"), ("X", "1+1")]);
        let encoded = encode_form(original.pairs());
        assert_eq!(parse_form(encoded.as_bytes()).unwrap(), original);
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        assert!(matches!(parse_form(b"A=%ff%fe"), Err(ParseError::NotUtf8(n)) if n == "A"));
        assert!(matches!(parse_form(b"   "), Err(ParseError::Empty)));
    }

    #[test]
    fn too_many_parameters_are_refused_before_decoding() {
        let at_limit = "a=1&".repeat(MAX_FORM_PARAMS);
        assert_eq!(parse_form(at_limit.as_bytes()).unwrap().pairs().len(), MAX_FORM_PARAMS);
        let over = "a=1&".repeat(10_000);
        let error = parse_form(over.as_bytes()).unwrap_err();
        assert_eq!(error, ParseError::TooManyParams(10_000));
        assert!(error.to_string().contains("10000 parameters"), "{error}");
    }

    #[test]
    fn assignment_callback_without_timestamp_uses_arrival() {
        let body = params(&[
            ("AccountSid", "ACCOUNTSID12345"),
            ("TaskSid", "WT4c0ef6723897ecb43afb7ba3bb3018fc"),
            ("ReservationSid", "WR94a7183792d4ac6cf53fe69db130f625"),
            ("WorkerSid", "WKafa49369465b396765e971773a0f6e8e"),
        ]);
        let facts = extract_facts(Endpoint::Assignment, &body, 77).unwrap();
        assert_eq!(facts.event_type, "assignment");
        assert_eq!(facts.occurred_at.source, TimeSource::Arrival);
        assert_eq!(facts.occurred_at.epoch_ms, 77);
        assert_eq!(facts.account_sid.as_deref(), Some("ACCOUNTSID12345"));
        assert_eq!(facts.event_sid, None);
    }

    #[test]
    fn assignment_callback_needs_its_sids() {
        let body = params(&[("TaskSid", "WT1")]);
        assert_eq!(
            extract_facts(Endpoint::Assignment, &body, 1),
            Err(ParseError::MissingField("ReservationSid", "assignment"))
        );
    }

    #[test]
    fn event_needs_an_event_type() {
        let body = params(&[("Sid", "EV1")]);
        assert!(matches!(
            extract_facts(Endpoint::Events, &body, 1),
            Err(ParseError::MissingField("EventType", _))
        ));
    }

    #[test]
    fn resource_sid_fills_in_the_subject() {
        let body = params(&[
            ("EventType", "worker.created"),
            ("ResourceType", "worker"),
            ("ResourceSid", "WKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("TimestampMs", "1522296198000"),
        ]);
        let facts = extract_facts(Endpoint::Events, &body, 1).unwrap();
        assert_eq!(facts.worker_sid.as_deref(), Some("WKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(facts.task_sid, None);
    }

    #[test]
    fn first_values_agree_with_the_full_parse() {
        let names = ["B", "A", "C", "Task Name", "Missing", "Empty"];
        let bodies: [&[u8]; 5] = [
            b"B=a+b&A=%7B%22x%22%3A1%7D&B=%zz&C",
            b"Task+Name=one&Task%20Name=two&Empty=&Empty=later",
            b"&&A=1&&",
            b"A=%C3%A9t%C3%A9&B=%F0%9F%93%9E",
            b"C=%2B%26%3D&A",
        ];
        for body in bodies {
            let parsed = parse_form(body).unwrap();
            let expected = names.map(|name| parsed.get(name).map(str::to_string));
            assert_eq!(first_values(body, &names), expected, "{}", String::from_utf8_lossy(body));
        }
    }

    /// Bytes that exercise every branch: escapes (valid, invalid, cut short), `+`, separators,
    /// plain ASCII and the pieces of multi-byte UTF-8.
    fn form_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> =
            b"%+&=aAfFgz09 ".iter().copied().chain([0xC3, 0xA9, 0xF0, 0x9F, 0x80]).collect();
        proptest::collection::vec(proptest::sample::select(alphabet), 0..48)
    }

    /// What a component decodes to, as simply as it can be said: the specification
    /// [`decode_component`]'s copying and decoding in place must keep to.
    fn reference_decode(raw: &[u8]) -> Result<String, std::string::FromUtf8Error> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let escaped = raw.get(i + 1..i + 3).and_then(|hex| {
                let hex = std::str::from_utf8(hex).ok()?;
                u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            match (raw[i], escaped) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out)
    }

    #[test]
    fn components_decode_escapes_pluses_and_stray_percents() {
        let cases: [(&[u8], Option<&str>); 8] = [
            (b"WT0123abc", Some("WT0123abc")),
            (b"a+b%20c", Some("a b c")),
            (b"%7B%22x%22%3A1%7D", Some("{\"x\":1}")),
            (b"100%", Some("100%")),
            (b"%4", Some("%4")),
            (b"%zz%41", Some("%zzA")),
            (b"%C3%A9t%C3%A9", Some("été")),
            (b"%C3", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(decode_component(raw).ok().as_deref(), expected, "{}", String::from_utf8_lossy(raw));
        }
    }

    proptest::proptest! {
        #[test]
        fn components_decode_as_the_reference_says(raw in form_bytes()) {
            proptest::prop_assert_eq!(decode_component(&raw).ok(), reference_decode(&raw).ok());
        }

        #[test]
        fn first_values_agree_with_the_full_parse_on_any_body(body in form_bytes()) {
            let names = ["a", "A", "a a", "%", "", "é"];
            if let Ok(parsed) = parse_form(&body) {
                let expected = names.map(|name| parsed.get(name).map(str::to_string));
                proptest::prop_assert_eq!(first_values(&body, &names), expected);
            }
        }
    }
}
