//! A real browser (headless Chromium through chromedriver) on the inspector pages.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! chromedriver the tests say so and pass, except under CI (`CI` set), where they fail.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::fixtures::{self, event_sid};
use crate::helpers::spawn_app;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> Option<&'static str> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Starts chromedriver and a headless Chromium, or `None` (with a note) where they are missing.
pub async fn start_browser() -> Option<Browser> {
    let Some(driver_path) = chromedriver() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing under CI: install chromium-driver"
        );
        eprintln!("browser test skipped: install chromium and chromium-driver to run it");
        return None;
    };
    let port = crate::helpers::free_port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    let mut last_error = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&webdriver)
            .await
        {
            Ok(client) => return Some(Browser { client, driver, _profile: profile }),
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not start a browser session: {last_error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_list_filters_by_task_and_the_detail_shows_an_injected_script_as_text() {
    let Some(browser) = start_browser().await else { return };
    let app = spawn_app().await;
    let mut hostile = fixtures::task_event("task.created", &event_sid(1), 1_700_000_000_000, "Task created");
    hostile.iter_mut().find(|(n, _)| n == "TaskAttributes").unwrap().1 =
        r#"{"name":"<script>window.__injected = 1; document.title = 'pwned';</script>"}"#.into();
    app.post_signed("/webhooks/events", &hostile).await;
    let mut other_task =
        fixtures::task_event("task.created", &event_sid(2), 1_700_000_000_001, "Task created");
    for (name, value) in other_task.iter_mut() {
        if name == "TaskSid" || name == "ResourceSid" {
            *value = "WT0000000000000000000000000000other".into();
        }
    }
    app.post_signed("/webhooks/events", &other_task).await;
    app.post_signed(
        "/webhooks/events",
        &fixtures::reservation_event("reservation.created", &event_sid(3), 1_700_000_000_100),
    )
    .await;
    let c = &browser.client;

    c.goto(&format!("{}/requests", app.address)).await.unwrap();
    assert_eq!(c.find_all(Locator::Css("#requests tbody tr")).await.unwrap().len(), 3);

    // Filter by the task's SID, as a user would: type it and submit.
    let sid_field = c.find(Locator::Css("input[name=sid]")).await.unwrap();
    sid_field.send_keys(fixtures::TASK).await.unwrap();
    c.find(Locator::Css("form.filters button[type=submit]")).await.unwrap().click().await.unwrap();
    // The list before the submit has `#requests` too: the filtered page is the one whose URL
    // names the task.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !c.current_url().await.unwrap().as_str().contains(fixtures::TASK) {
        assert!(std::time::Instant::now() < deadline, "the filtered page never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    c.wait().for_element(Locator::Css("#requests")).await.unwrap();
    let rows = c.find_all(Locator::Css("#requests tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2, "only the two requests naming the task");
    assert!(c.current_url().await.unwrap().as_str().contains(fixtures::TASK));

    // Open the task.created request.
    c.find(Locator::Css(r#"#requests a[href="/requests/1"]"#)).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#params")).await.unwrap();
    let parameters = c.find(Locator::Css("#params")).await.unwrap().text().await.unwrap();
    assert!(parameters.contains("TaskSid") && parameters.contains(fixtures::TASK));
    assert!(parameters.contains("<script>window.__injected = 1;"), "the script is shown as text");
    assert_eq!(c.find(Locator::Css("#verdict")).await.unwrap().text().await.unwrap(), "valid");
    let injected = c.execute("return typeof window.__injected;", vec![]).await.unwrap();
    assert_eq!(injected, json!("undefined"), "the injected script must not run");
    assert_ne!(c.title().await.unwrap(), "pwned");
    browser.client.clone().close().await.unwrap();
}
