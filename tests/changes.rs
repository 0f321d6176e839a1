//! The Changes page end to end: target edits over the server-function API, auto-saved
//! snapshots listed, compared with now and restored in real headless Chromium, and the
//! API's contract for bad snapshot ids.

use std::time::Duration;

use fantoccini::{Client, Locator};
use tests::{click, eventually_text, http_post_form, text_of, wait_for, Browser, Perfpilot};

const AUTOSAVE_EVERY: u64 = 5;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"))
}

/// Sets the CPU utilization target through the target-edit server function; returns the
/// change number it got.
fn set_cpu_target(server: &Perfpilot, value: u32) -> u64 {
    let (status, body) = http_post_form(
        server.addr,
        "/api/set_target",
        &format!("resource=cpu&metric=utilization&value={value}"),
    );
    assert_eq!(status, 200, "set_target {value}: {body}");
    json(&body)["change"]
        .as_u64()
        .unwrap_or_else(|| panic!("set_target answers its change number: {body}"))
}

fn change_counter(server: &Perfpilot) -> u64 {
    let (status, body) = http_post_form(server.addr, "/api/changes", "");
    assert_eq!(status, 200, "list changes: {body}");
    json(&body)["change"].as_u64().expect("a change number")
}

async fn active_element_id(client: &Client) -> String {
    client
        .execute(
            "return document.activeElement && document.activeElement.id",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 153 lines today; split before it grows
async fn snapshots_are_listed_compared_and_restored_in_the_browser() {
    let server = Perfpilot::start(&["--autosave-every", "5"]);
    // Five edits: the fifth is auto-saved with the target at 54; two more move it to 61.
    let mut change = 0;
    for value in [50, 51, 52, 53, 54, 60, 61] {
        change = set_cpu_target(&server, value);
    }
    assert_eq!(change, 7, "each accepted edit is one change");

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/changes")).await.unwrap();
    browser.wait_for_hydration().await;

    assert_eq!(text_of(client, "#change-counter").await, "7");
    assert_eq!(
        text_of(client, "#autosave-left").await,
        "3 changes until the next auto-save"
    );
    let row = text_of(client, "tr[data-snapshot='5']").await;
    assert!(
        row.starts_with("#5"),
        "the snapshot row names its change: {row}"
    );
    // The edits came from the local (loopback, auth none) admin.
    assert_eq!(
        text_of(client, "tr[data-snapshot='5'] .col-who").await,
        "anonymous · admin"
    );
    let saved = text_of(client, "tr[data-snapshot='5'] time").await;
    assert!(
        saved.len() == 19 && saved.as_bytes()[10] == b' ' && saved.starts_with("20"),
        "the wall time is ISO-like UTC text: {saved}"
    );
    assert!(row.contains("✓ verified"), "{row}");
    assert_eq!(
        client
            .find_all(Locator::Css("#snapshots tbody tr"))
            .await
            .unwrap()
            .len(),
        1,
        "seven changes at N=5 give one snapshot"
    );
    browser.screenshot("changes-list.png").await;

    // Selecting the snapshot shows how now differs from it.
    tests::click_until(
        client,
        Locator::Css("tr[data-snapshot='5'] a.compare-link"),
        "#diff",
    )
    .await;
    eventually_text(client, "#diff", "the target difference", |t| {
        t == "cpu: target.value: 54.0 → 61.0"
    })
    .await;
    assert!(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .ends_with("/changes?snapshot=5"));
    assert_eq!(active_element_id(client).await, "snapshot-detail-title");
    browser.screenshot("changes-diff.png").await;

    // The confirmation step is keyboard-first: focus lands on Cancel, Escape backs out and
    // returns focus to the Restore button.
    let start = client.find(Locator::Id("restore-start")).await.unwrap();
    assert_eq!(start.text().await.unwrap(), "Restore snapshot #5…");
    start.click().await.unwrap();
    wait_for(client, Locator::Id("restore-confirm")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active_element_id(client).await, "restore-cancel");
    browser.screenshot("changes-confirm.png").await;
    client
        .find(Locator::Id("restore-cancel"))
        .await
        .unwrap()
        .send_keys("\u{e00c}")
        .await
        .unwrap();
    wait_for(client, Locator::Id("restore-start")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active_element_id(client).await, "restore-start");
    assert_eq!(change_counter(&server), 7, "cancelling changes nothing");

    // Enter on the focused button asks again; this time confirm.
    client
        .find(Locator::Id("restore-start"))
        .await
        .unwrap()
        .send_keys("\u{e007}")
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Id("restore-confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    eventually_text(client, "#restore-result", "the restore outcome", |t| {
        t.contains("Restored snapshot #5 as change #8.")
    })
    .await;
    assert_eq!(
        text_of(client, "#restore-changes").await,
        "cpu: target.value: 61.0 → 54.0"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        active_element_id(client).await,
        "restore-outcome",
        "focus moves to the outcome once the restore is done"
    );
    // One change for the restore, seen live, and the snapshot is now identical to now.
    eventually_text(client, "#change-counter", "8", |t| t == "8").await;
    eventually_text(client, "#diff-identical", "no differences", |t| {
        t == "Identical to the current state."
    })
    .await;
    assert_eq!(
        text_of(client, "#autosave-left").await,
        "2 changes until the next auto-save"
    );
    assert_eq!(change_counter(&server), 8);
    browser.screenshot("changes-restored.png").await;

    // Dark mode and a phone-sized viewport.
    click(client, Locator::Id("theme-toggle")).await;
    click(client, Locator::Id("theme-toggle")).await;
    browser.screenshot("changes-restored-dark.png").await;
    client.set_window_size(360, 900).await.unwrap();
    browser.screenshot("changes-narrow-dark.png").await;
    // The page must not scroll sideways, and the table must fit without its own scroller;
    // a failure names the elements that stick out.
    let overflow = client
        .execute(
            "const root = document.documentElement, table = document.querySelector('.table-scroll');
             const w = root.clientWidth, t = table.getBoundingClientRect().right;
             const name = e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className
               + '@' + Math.round(e.getBoundingClientRect().right);
             const out = [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > w + 1)
               .concat([...table.querySelectorAll('*')]
                 .filter(e => e.getBoundingClientRect().right > t + 1))
               .slice(0, 8).map(name).join(' ');
             return [root.scrollWidth - w, table.scrollWidth - table.clientWidth, out];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        (overflow[0].as_i64(), overflow[1].as_i64()),
        (Some(0), Some(0)),
        "nothing is wider than 360 px: {}",
        overflow[2]
    );
    client.set_window_size(1280, 900).await.unwrap();

    // The overview shows the restored target.
    click(client, Locator::LinkText("Overview")).await;
    eventually_text(
        client,
        "[data-resource='cpu'] .card-target",
        "the restored target",
        |t| t.starts_with("Target: ") && t.contains("≤ 54 %"),
    )
    .await;

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshot_ids_are_refused_with_a_4xx_and_change_nothing() {
    let server = Perfpilot::start(&["--autosave-every", "5"]);
    for value in 50..55 {
        set_cpu_target(&server, value);
    }
    assert_eq!(change_counter(&server), AUTOSAVE_EVERY);

    let (status, body) = http_post_form(server.addr, "/api/restore_snapshot", "snapshot=999");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("snapshot #999 is not in the snapshot ring"),
        "the message names the rule: {body}"
    );
    let (status, body) = http_post_form(server.addr, "/api/restore_snapshot", "snapshot=abc");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("snapshot: must be a snapshot id"),
        "the message names the field and the rule: {body}"
    );
    let (status, body) = http_post_form(server.addr, "/api/snapshot_diff", "snapshot=4");
    assert_eq!(status, 404, "only every 5th change is saved: {body}");
    assert_eq!(
        change_counter(&server),
        AUTOSAVE_EVERY,
        "refusals use no number"
    );

    // The listing the page is built from, and a good restore for contrast.
    let (status, body) = http_post_form(server.addr, "/api/changes", "");
    assert_eq!(status, 200, "{body}");
    let summary = json(&body);
    assert_eq!(summary["autosave_every"], AUTOSAVE_EVERY);
    assert_eq!(summary["until_autosave"], AUTOSAVE_EVERY);
    assert_eq!(summary["snapshots"][0]["change"], AUTOSAVE_EVERY);
    assert_eq!(summary["snapshots"][0]["problem"], serde_json::Value::Null);
    let (status, body) = http_post_form(server.addr, "/api/restore_snapshot", "snapshot=5");
    assert_eq!(status, 200, "{body}");
    let outcome = json(&body);
    assert_eq!(outcome["change"], AUTOSAVE_EVERY + 1);
    assert_eq!(outcome["differences"], serde_json::json!([]));
    assert_eq!(change_counter(&server), AUTOSAVE_EVERY + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_snapshot_in_the_url_shows_an_error_state() {
    let server = Perfpilot::start(&["--autosave-every", "5"]);
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&server.url("/changes?snapshot=42"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    assert_eq!(text_of(client, "#change-counter").await, "0");
    let empty = text_of(client, "#no-snapshots").await;
    assert!(
        empty.contains("first snapshot is auto-saved at change #5"),
        "{empty}"
    );
    let error = text_of(client, "#diff-error").await;
    assert!(
        error.contains("snapshot #42 is not in the snapshot ring"),
        "{error}"
    );
    assert!(
        client.find(Locator::Id("restore-start")).await.is_err(),
        "no Restore for a snapshot that is not there"
    );
    browser.screenshot("changes-empty-error.png").await;
    browser.close().await;
}
