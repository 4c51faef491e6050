//! A real browser accepting a pending reservation from the task page, with the tracer wired
//! to the simulator.

use std::time::Duration;

use fantoccini::Locator;
use taskrouter_tracer::taskrouter_client::NewTask;

use crate::browser::start_browser;
use crate::web_actions::{reservation_in, sim_client, wired};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_pending_reservation_from_the_task_page() {
    let Some(browser) = start_browser().await else { return };
    let (app, sim) = wired(|_| {}).await;
    let (created, _) = sim_client(&sim)
        .create_task(
            &sim.sids.workspace,
            &NewTask {
                workflow_sid: sim.sids.workflow.clone(),
                attributes: r#"{"selected_language":"es"}"#.into(),
                priority: None,
                timeout: None,
            },
        )
        .await;
    let task = created.unwrap().sid;
    let reservation = reservation_in(&app, &task, "pending").await;
    let c = &browser.client;

    c.goto(&format!("{}/tasks/{task}", app.address)).await.unwrap();
    let row = format!(r#"tr[data-reservation="{reservation}"]"#);
    let status = c.find(Locator::Css(&format!("{row} .reservation-status"))).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "pending");
    c.find(Locator::Css(&format!("{row} button.accept"))).await.unwrap().click().await.unwrap();
    let result = c.wait().for_element(Locator::Css("#action-result")).await.unwrap();
    let message = result.text().await.unwrap();
    assert!(message.contains("TaskRouter answered 200") && message.contains("accepted"), "{message}");
    let timeline = c.find(Locator::Css("#timeline")).await.unwrap().text().await.unwrap();
    assert!(timeline.contains("action.accept"), "the action is on the timeline");

    // TaskRouter's own reservation.accepted callback follows; the page shows it (reloading).
    let mut shown = String::new();
    for _ in 0..50 {
        c.refresh().await.unwrap();
        shown =
            c.find(Locator::Css(&format!("{row} .reservation-status"))).await.unwrap().text().await.unwrap();
        if shown == "accepted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown, "accepted");
    assert!(
        c.find_all(Locator::Css(&format!("{row} button.accept"))).await.unwrap().is_empty(),
        "no second accept offered"
    );
    browser.client.clone().close().await.unwrap();
    sim.stop().await;
}
