//! Hostile HTTP against the real server: oversized and countless headers, bodies longer or
//! shorter than declared, slow clients, non-UTF-8 bytes, 10,000 parameters, deep JSON, huge
//! bodies. Each gets a bounded answer that says what was wrong; what reaches the application is
//! recorded; and while the hostile connection is open a signed webhook and `GET /healthz` still
//! succeed. Malformed requests are written on raw TCP sockets.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use taskrouter_protocol::signature;
use taskrouter_protocol::webhook::encode_form;

use crate::fixtures::{self, event_sid, Params};
use crate::helpers::{spawn_app, TestApp, AUTH_TOKEN};

/// The longest any answer may take here: the server's own deadlines are 10 s. Only a guard
/// against hanging, not a performance goal.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// What came back on a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    after: Duration,
}

impl Answer {
    fn error(&self) -> String {
        let json: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("a JSON error body, got {:?}", self.body));
        json["error"].as_str().expect("an error message").to_string()
    }

    fn recorded_as(&self) -> i64 {
        let json: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON body");
        json["recorded_as"].as_i64().unwrap_or_else(|| panic!("no record id in {}", self.body))
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connects")
}

/// The reading half of a raw connection, keeping bytes that arrived past one answer.
struct Answers<R> {
    stream: R,
    buffered: Vec<u8>,
}

impl<R: AsyncReadExt + Unpin> Answers<R> {
    fn new(stream: R) -> Self {
        Self { stream, buffered: Vec::new() }
    }

    /// The next HTTP answer (head, then a `content-length` body); `None` when the server closed
    /// the connection without one.
    async fn next(&mut self, started: Instant) -> Option<Answer> {
        let mut chunk = [0u8; 8192];
        let read = async {
            loop {
                if let Some(end) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buffered[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().expect("a length"));
                    if self.buffered.len() >= end + 4 + length {
                        let status = head.split(' ').nth(1)?.parse().ok()?;
                        let body = String::from_utf8_lossy(&self.buffered[end + 4..end + 4 + length]);
                        let answer = Answer { status, body: body.into_owned(), after: started.elapsed() };
                        self.buffered.drain(..end + 4 + length);
                        return Some(answer);
                    }
                }
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buffered.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(ANSWER_WITHIN, read).await.expect("answered (or closed) within the bound")
    }
}

/// Writes `bytes` while reading the answer, as a client that keeps sending would; write errors
/// (the server closed early) end the writing, not the test.
async fn send_and_read(stream: TcpStream, bytes: Vec<u8>, pace: Option<Duration>) -> Option<Answer> {
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        match pace {
            None => {
                let _ = writer.write_all(&bytes).await;
            }
            Some(pause) => {
                for byte in bytes {
                    if writer.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
        writer
    });
    let answer = Answers::new(&mut reader).next(started).await;
    sending.abort();
    answer
}

/// The head of a form POST to `path` on `app` (its Host is part of the signed URL).
fn post_head(app: &TestApp, path: &str, content_length: usize, signature: Option<&str>) -> String {
    let host = app.address.trim_start_matches("http://");
    let signature = signature.map(|s| format!("X-Twilio-Signature: {s}\r\n")).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {content_length}\r\n{signature}\r\n"
    )
}

/// A signed event body for `path`, as the raw requests below send it.
fn signed(app: &TestApp, path: &str, params: &Params) -> (Vec<u8>, String) {
    let url = format!("{}{path}", app.address);
    (encode_form(params).into_bytes(), signature::compute(AUTH_TOKEN, &url, params))
}

/// One signed webhook and one `GET /healthz`, both of which must succeed; returns how long they
/// took.
async fn probe(app: &TestApp, sid: u64) -> Duration {
    let started = Instant::now();
    let event = fixtures::task_event("task.updated", &event_sid(sid), 1_700_000_000_000, "probe");
    let webhook = app.post_signed("/webhooks/events", &event).await.status().as_u16();
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(webhook, 204, "a signed webhook is accepted meanwhile");
    assert_eq!(health.status().as_u16(), 200, "healthz answers meanwhile");
    started.elapsed()
}

/// Probes every 200 ms while `hostile` runs, and once after. Returns the hostile outcome and
/// how many probe rounds completed while it was still open (their slowest is printed, not
/// judged).
async fn while_open<T>(app: &TestApp, first_sid: u64, hostile: impl Future<Output = T>) -> (T, u64) {
    let mut hostile = std::pin::pin!(hostile);
    let (mut rounds, mut slowest) = (0, Duration::ZERO);
    let outcome = loop {
        let round = async {
            let took = probe(app, first_sid + rounds).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            took
        };
        tokio::select! {
            outcome = &mut hostile => break outcome,
            took = round => {
                rounds += 1;
                slowest = slowest.max(took);
            }
        }
    };
    eprintln!("probe rounds while the hostile connection was open: {rounds}, slowest {slowest:?}");
    // A fresh Sid: the round the outcome interrupted may have delivered `first_sid + rounds`.
    probe(app, first_sid + rounds + 1).await;
    (outcome, rounds)
}

/// The stored row's status, rejection, body length and truncation flag.
fn row(app: &TestApp, id: i64) -> (i64, String, i64, bool) {
    let sql = format!(
        "SELECT response_status, rejection, body, payload_encoding, body_truncated FROM events WHERE id = {id}"
    );
    app.query(&sql, |r| {
        let body = TestApp::payload(r, 2, 3)?;
        Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default(), body.len() as i64, r.get(4)?))
    })
    .pop()
    .expect("the request is in the log")
}

/// The stored body (decoded) of the first row matching `condition`.
fn stored_body(app: &TestApp, condition: &str) -> Vec<u8> {
    let sql = format!("SELECT body, payload_encoding FROM events WHERE {condition}");
    app.query(&sql, |r| TestApp::payload(r, 0, 1)).into_iter().next().expect("a row")
}

/// Rows that are not probes (every probe is a `task.updated` fact).
fn hostile_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM events WHERE NOT (is_fact AND event_type = 'task.updated')")
}

#[tokio::test]
async fn a_one_megabyte_header_is_refused_431_before_the_application() {
    let app = spawn_app().await;
    let mut request = post_head(&app, "/webhooks/events", 0, None).into_bytes();
    request.truncate(request.len() - 2);
    request.extend(b"X-Padding: ");
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    request.extend(b"\r\n\r\n");
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    let answer = answer.expect("an answer before the close");
    assert_eq!(answer.status, 431, "Request Header Fields Too Large");
    assert_eq!(hostile_rows(&app), 0, "refused by the HTTP layer, never reaching the log");
}

#[tokio::test]
async fn ten_thousand_headers_are_refused_431_before_the_application() {
    let app = spawn_app().await;
    let mut request = post_head(&app, "/webhooks/events", 0, None).into_bytes();
    request.truncate(request.len() - 2);
    for i in 0..10_000 {
        request.extend(format!("X-Header-{i}: v\r\n").into_bytes());
    }
    request.extend(b"\r\n");
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    assert_eq!(answer.expect("an answer").status, 431);
    assert_eq!(hostile_rows(&app), 0);
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_recorded_as_declared_and_the_rest_refused() {
    let app = spawn_app().await;
    for (n, surplus, rest_status) in [
        // The surplus is read as a next request, which it is not: 400 from the HTTP layer.
        (900, &b"&TaskPriority=99 and more bytes than declared\r\n\r\n"[..], Some(400)),
        // A surplus that starts a next request and never completes it: the connection is
        // closed by the keep-alive timeout (5 s), without an answer to a request never made.
        (901, &b"GET /healthz HTTP/1.1\r\nHost: 127"[..], None),
    ] {
        let event = fixtures::task_event("task.created", &event_sid(n), 1_700_000_000_000, "created");
        let (body, signature) = signed(&app, "/webhooks/events", &event);
        let mut request = post_head(&app, "/webhooks/events", body.len(), Some(&signature)).into_bytes();
        request.extend(&body);
        request.extend(surplus);

        let started = Instant::now();
        let mut stream = connect(&app).await;
        stream.write_all(&request).await.unwrap();
        let mut answers = Answers::new(stream);
        let (declared, rest) = while_open(&app, 10 * n, async {
            let declared = answers.next(started).await.expect("the declared request is answered");
            (declared, answers.next(started).await)
        })
        .await
        .0;

        assert_eq!(declared.status, 204, "the declared body is a complete, signed callback");
        let stored = stored_body(&app, &format!("event_sid = '{}' AND is_fact", event_sid(n)));
        assert_eq!(stored, body, "exactly the declared bytes are recorded");
        assert_eq!(rest.map(|a| a.status), rest_status);
    }
    assert_eq!(hostile_rows(&app), 2, "only the declared requests are recorded; the surplus is no request");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_recorded_with_what_arrived() {
    let app = spawn_app().await;
    let partial = b"EventType=task.created&TaskSid=WT7e57a5c0000000000000000000000001".to_vec();
    let mut request = post_head(&app, "/webhooks/events", 1000, Some("c2lnbmF0dXJl")).into_bytes();
    request.extend(&partial);
    let mut stream = connect(&app).await;
    stream.write_all(&request).await.unwrap();
    let mut answers = Answers::new(stream);
    // The client stalls and keeps the connection open.
    let (answer, rounds) = while_open(&app, 1, answers.next(Instant::now())).await;
    let answer = answer.expect("answered, not left hanging");
    assert!(rounds > 0, "other clients were served while the body stalled");
    assert_eq!(answer.status, 400);
    let error = answer.error();
    assert!(error.contains("did not arrive within 10 s"), "{error}");
    assert!(error.contains(&format!("{} bytes received of the 1000 declared", partial.len())), "{error}");
    let (status, rejection, stored, _) = row(&app, answer.recorded_as());
    assert_eq!((status, stored), (400, partial.len() as i64), "recorded with the bytes that arrived");
    assert!(rejection.contains("did not arrive"), "{rejection}");
    assert_eq!(answers.next(Instant::now()).await.map(|a| a.status), None, "then closed");
}

#[tokio::test]
async fn a_slowloris_head_on_a_new_connection_gets_408() {
    let app = spawn_app().await;
    let head = post_head(&app, "/webhooks/events", 10, None).into_bytes();
    let hostile = send_and_read(connect(&app).await, head, Some(Duration::from_secs(1)));
    let (answer, rounds) = while_open(&app, 1, hostile).await;
    let answer = answer.expect("a 408 before the close");
    assert!(rounds > 0, "other clients were served during the slowloris");
    assert_eq!(answer.status, 408);
    assert!(answer.error().contains("request head did not arrive within 10 s"), "{}", answer.body);
    assert!(answer.after < ANSWER_WITHIN);
    assert_eq!(hostile_rows(&app), 0, "an incomplete head never reaches the application");
}

#[tokio::test]
async fn a_slowloris_head_on_a_kept_alive_connection_gets_408() {
    // actix-web times out only a connection's first head; the second is the tracer's to bound.
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let first = Answers::new(&mut stream).next(Instant::now()).await;
    assert_eq!(first.map(|a| a.status), Some(200));
    let head = post_head(&app, "/webhooks/events", 10, None).into_bytes();
    let (answer, rounds) =
        while_open(&app, 1, send_and_read(stream, head, Some(Duration::from_secs(1)))).await;
    let answer = answer.expect("a 408 before the close");
    assert!(rounds > 0);
    assert_eq!(answer.status, 408);
    assert!(answer.error().contains("did not arrive within 10 s"), "{}", answer.body);
}

#[tokio::test]
async fn a_body_sent_one_byte_at_a_time_is_cut_off_and_recorded() {
    let app = spawn_app().await;
    let body = fixtures::task_event("task.created", &event_sid(901), 1_700_000_000_000, "slow");
    let (body, signature) = signed(&app, "/webhooks/events", &body);
    let mut stream = connect(&app).await;
    stream
        .write_all(post_head(&app, "/webhooks/events", body.len(), Some(&signature)).as_bytes())
        .await
        .unwrap();
    let hostile = send_and_read(stream, body.clone(), Some(Duration::from_millis(250)));
    let (answer, rounds) = while_open(&app, 1, hostile).await;
    let answer = answer.expect("answered");
    assert!(rounds > 0);
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains(&format!("of the {} declared", body.len())), "{}", answer.body);
    let (_, rejection, stored, _) = row(&app, answer.recorded_as());
    assert!(rejection.contains("did not arrive within 10 s"), "{rejection}");
    assert!(stored > 0 && (stored as usize) < body.len(), "the {stored} bytes that came are kept");
    assert_eq!(app.count("SELECT count(*) FROM events WHERE is_fact AND event_type = 'task.created'"), 0);
}

#[tokio::test]
async fn non_utf8_bytes_in_the_body_get_400_and_are_kept_byte_for_byte() {
    let app = spawn_app().await;
    let body = b"EventType=task.created&TaskAttributes=\xff\xfe{\x80}".to_vec();
    let mut request = post_head(&app, "/webhooks/events", body.len(), Some("c2lnbmF0dXJl")).into_bytes();
    request.extend(&body);
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    let answer = answer.expect("answered");
    assert_eq!(answer.status, 400, "malformed, whatever the signature");
    assert!(answer.error().contains("not valid UTF-8"), "{}", answer.body);
    let id = answer.recorded_as();
    let stored = stored_body(&app, &format!("id = {id}"));
    assert_eq!(stored, body);
}

#[tokio::test]
async fn non_utf8_bytes_in_the_query_are_refused_raw_and_recorded_percent_encoded() {
    let app = spawn_app().await;
    // A raw byte 0xFF is not a valid request target: the HTTP layer answers 400.
    let mut raw = b"POST /webhooks/events?note=\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    raw.extend(b"Content-Length: 0\r\n\r\n");
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, raw, None)).await;
    assert_eq!(answer.map(|a| a.status), Some(400));
    assert_eq!(hostile_rows(&app), 0);

    // Percent-encoded, the same bytes are a valid URL: signed over it, it is a fact, path kept.
    let path = "/webhooks/events?note=%FF%FE";
    let event = fixtures::task_event("task.created", &event_sid(902), 1_700_000_000_000, "query");
    let response = app.post_signed(path, &event).await;
    assert_eq!(response.status().as_u16(), 204);
    let sql = format!("SELECT path FROM events WHERE event_sid = '{}' AND is_fact", event_sid(902));
    let stored: String = app.query(&sql, |r| r.get(0)).remove(0);
    assert_eq!(stored, path);
}

#[tokio::test]
async fn ten_thousand_form_parameters_get_400_and_a_record() {
    let app = spawn_app().await;
    let mut params = fixtures::task_event("task.created", &event_sid(903), 1_700_000_000_000, "many");
    // `a=&` ten thousand times: 30 KB, inside the body limit.
    params.extend((0..10_000).map(|_| ("a".to_string(), String::new())));
    let (body, signature) = signed(&app, "/webhooks/events", &params);
    let mut request = post_head(&app, "/webhooks/events", body.len(), Some(&signature)).into_bytes();
    request.extend(&body);
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    let answer = answer.expect("answered");
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("10026 parameters"), "{}", answer.body);
    let (status, _, stored, truncated) = row(&app, answer.recorded_as());
    assert_eq!((status, stored, truncated), (400, body.len() as i64, false), "the whole body is kept");
}

#[tokio::test]
async fn deeply_nested_json_in_task_attributes_is_stored_as_text_and_pages_still_render() {
    let app = spawn_app().await;
    // 100,000 levels do not fit the 64 KB body limit: 413, stored truncated.
    // A task of its own: the probes update fixtures::TASK with ordinary attributes.
    const DEEP_TASK: &str = "WTdee9000000000000000000000000deep";
    let mut params = fixtures::task_event("task.created", &event_sid(904), 1_700_000_000_000, "deep");
    params.retain(|(name, _)| name != "TaskAttributes");
    for (name, value) in params.iter_mut() {
        if name == "TaskSid" || name == "ResourceSid" {
            *value = DEEP_TASK.into();
        }
    }
    let (head_params, _) = signed(&app, "/webhooks/events", &params);
    let mut huge = head_params.clone();
    huge.extend(b"&TaskAttributes=");
    huge.extend(std::iter::repeat_n(b'[', 100_000));
    let mut request = post_head(&app, "/webhooks/events", huge.len(), None).into_bytes();
    request.extend(&huge);
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    let answer = answer.expect("answered");
    assert_eq!(answer.status, 413);
    assert!(answer.error().contains("65536 byte limit"), "{}", answer.body);
    let (_, _, stored, truncated) = row(&app, answer.recorded_as());
    assert_eq!((stored, truncated), (65_536, true));

    // 20,000 levels (raw brackets, inside the limit) are a fact; nothing parses them recursively.
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    params.push(("TaskAttributes".into(), nested.clone()));
    let mut body = head_params;
    body.extend(format!("&TaskAttributes={nested}").into_bytes());
    let url = format!("{}/webhooks/events", app.address);
    let signature = signature::compute(AUTH_TOKEN, &url, &params);
    let response =
        app.post_raw("/webhooks/events", "application/x-www-form-urlencoded", body, Some(&signature)).await;
    assert_eq!(response.status().as_u16(), 204);
    let (status, task) = app.get_json(&format!("/api/tasks/{DEEP_TASK}")).await;
    assert_eq!(status, 200);
    assert_eq!(task["task"]["attributes"].as_str().map(str::len), Some(40_000));
    let page = app.client.get(format!("{}/tasks/{DEEP_TASK}", app.address)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "the task page shows attributes it cannot pretty-print");
}

#[tokio::test]
async fn an_oversized_body_gets_413_and_is_stored_truncated() {
    let app = spawn_app().await;
    let body = vec![b'a'; 10 << 20];
    let mut request = post_head(&app, "/webhooks/events", body.len(), None).into_bytes();
    request.extend(&body);
    let (answer, _) = while_open(&app, 1, send_and_read(connect(&app).await, request, None)).await;
    let answer = answer.expect("a 413 before the close");
    assert_eq!(answer.status, 413);
    assert!(answer.error().contains("byte limit (stored truncated)"), "{}", answer.body);
    let (status, _, stored, truncated) = row(&app, answer.recorded_as());
    assert_eq!((status, stored, truncated), (413, 65_536, true));
}
