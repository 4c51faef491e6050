//! The request list and detail pages and their JSON API: filters, paging, escaping.

use crate::fixtures::{self, event_sid};
use crate::helpers::spawn_app;

async fn get_text(app: &crate::helpers::TestApp, path: &str) -> (u16, String) {
    let response = app.client.get(format!("{}{}", app.address, path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_list_filters_by_any_sid_type_status_verdict_and_text() {
    let app = spawn_app().await;
    let created = fixtures::task_event("task.created", &event_sid(1), 1_700_000_000_000, "Task created");
    let reserved = fixtures::reservation_event("reservation.created", &event_sid(2), 1_700_000_000_100);
    app.post_signed("/webhooks/events", &created).await;
    app.post_signed("/webhooks/events", &reserved).await;
    app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await;
    app.post_form("/webhooks/events", &fixtures::worker_activity_update(&event_sid(3), 1), None).await; // 403

    let ids = |value: serde_json::Value| -> Vec<i64> {
        value["requests"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
    };
    let (_, by_reservation) = app.get_json(&format!("/api/requests?sid={}", fixtures::RESERVATION)).await;
    assert_eq!(ids(by_reservation), vec![3, 2]);
    let (_, by_worker) = app.get_json(&format!("/api/requests?sid={}", fixtures::WORKER)).await;
    assert_eq!(ids(by_worker), vec![4, 3, 2], "the rejected request is still findable by its SIDs");
    let (_, by_type) = app.get_json("/api/requests?event_type=task.created").await;
    assert_eq!(ids(by_type), vec![1]);
    let (_, refused) = app.get_json("/api/requests?status=403&verdict=missing").await;
    assert_eq!(ids(refused), vec![4]);
    let (_, by_text) = app.get_json("/api/requests?q=selected_product").await;
    assert_eq!(ids(by_text), vec![3, 2, 1], "free text finds form-encoded JSON attributes");
    let (_, assignment) = app.get_json("/api/requests?endpoint=assignment").await;
    assert_eq!(ids(assignment), vec![3]);
    let (_, paged) = app.get_json("/api/requests?limit=2").await;
    assert_eq!(paged["next_before"], 3);
    let (_, older) = app.get_json("/api/requests?limit=2&before=3").await;
    assert_eq!(ids(older), vec![2, 1]);
    let (status, bad) = app.get_json("/api/requests?status=abc").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("status"));

    let (status, page) = get_text(&app, &format!("/requests?sid={}", fixtures::RESERVATION)).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"href="/requests/3""#) && page.contains(r#"href="/requests/2""#));
    assert!(!page.contains(r#"href="/requests/1""#), "task.created has no reservation SID");
}

#[tokio::test]
async fn the_detail_page_shows_everything_and_escapes_attributes() {
    let app = spawn_app().await;
    let mut params = fixtures::task_event("task.created", &event_sid(7), 1_700_000_000_000, "Task created");
    params.iter_mut().find(|(n, _)| n == "TaskAttributes").unwrap().1 =
        r#"{"name":"<script>alert('x')</script>"}"#.into();
    app.post_signed("/webhooks/events", &params).await;

    let (status, page) = get_text(&app, "/requests/1").await;
    assert_eq!(status, 200);
    assert!(!page.contains("<script>alert"), "attributes must be escaped");
    assert!(
        page.contains("&lt;script&gt;alert") || page.contains("&#60;script&#62;alert"),
        "the script shows as text"
    );
    assert!(page.contains(fixtures::TASK));
    assert!(page.contains(r#"data-copy="WT7e57a5c0000000000000000000000001""#), "copy button beside the SID");
    assert!(page.contains("The signature matches the configured public URL."));
    assert!(page.contains("X-Twilio-Signature") || page.contains("x-twilio-signature"));
    assert!(page.contains("(from TimestampMs)"));

    let (_, json) = app.get_json("/api/requests/1").await;
    assert_eq!(json["event_type"], "task.created");
    assert_eq!(json["response_status"], 204);
    assert!(json["body_base64"].as_str().unwrap().len() > 100);
    let (status, _) = get_text(&app, "/requests/99").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_duplicate_links_to_its_original() {
    let app = spawn_app().await;
    let event = fixtures::reservation_event("reservation.accepted", &event_sid(9), 1_700_000_000_000);
    app.post_signed("/webhooks/events", &event).await;
    app.post_signed("/webhooks/events", &event).await;
    let (_, page) = get_text(&app, "/requests/2").await;
    assert!(page.contains(r#"A re-delivery of <a href="/requests/1">#1</a>"#), "{page}");
    let (_, duplicates) = app.get_json("/api/requests?duplicate=yes").await;
    assert_eq!(duplicates["requests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_filtered_set_exports_as_har_and_ndjson() {
    let app = spawn_app().await;
    for i in 0..3 {
        let event = fixtures::reservation_event(
            "reservation.created",
            &event_sid(40 + i),
            1_700_000_000_000 + i as i64,
        );
        app.post_signed("/webhooks/events", &event).await;
    }
    app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await;

    let ndjson = app
        .client
        .get(format!("{}/api/requests/export.ndjson?event_type=reservation.created", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let text = ndjson.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["event_type"] == "reservation.created"));

    let (status, har) = app.get_json("/api/requests/export.har").await;
    assert_eq!(status, 200);
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(har["log"]["version"], "1.2");
    let first = &entries[0];
    assert_eq!(first["request"]["method"], "POST");
    assert!(first["request"]["url"].as_str().unwrap().ends_with("/webhooks/events"));
    assert!(first["request"]["postData"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "ReservationSid"));
    assert_eq!(first["response"]["status"], 204);
    assert_eq!(entries[3]["response"]["content"]["text"], "{}", "the assignment answer is in the HAR");
    let (status, _) = app.get_json("/api/requests/export.har?since=yesterday").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_free_text_search_is_bounded_per_page_and_continues_older() {
    let app = spawn_app().await;
    for i in 0..6 {
        let mut event =
            fixtures::task_event("task.updated", &event_sid(60 + i), 1_700_000_000_000 + i as i64, "u");
        if i == 0 {
            event.push(("Note".into(), "needle-in-the-oldest-row".into()));
        }
        app.post_signed("/webhooks/events", &event).await;
    }
    let store = taskrouter_tracer::storage::open(&app.database).await.unwrap();
    let filter = taskrouter_tracer::storage::requests::RequestFilter {
        text: Some("needle-in-the-oldest".into()),
        ..Default::default()
    };
    // Looking through 3 rows a page: the newest page finds nothing and says where to go on.
    let first = store.requests_page(filter.clone(), 50, 3).await.unwrap();
    assert!(first.rows.is_empty());
    assert_eq!((first.searched_from, first.next_before), (Some(4), Some(4)));
    let second = store
        .requests_page(
            taskrouter_tracer::storage::requests::RequestFilter { before: Some(4), ..filter },
            50,
            3,
        )
        .await
        .unwrap();
    assert_eq!(second.rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(second.next_before, None, "the whole log has been searched");
    // The page and API say the same within the default bound.
    let (_, api) = app.get_json("/api/requests?q=needle-in-the-oldest").await;
    assert_eq!(api["requests"][0]["id"], 1);
    assert_eq!(api["searched_from"], 1);
}
