//! Before / after in the real browser: a manual mark and a target edit each get a row,
//! measured once the window after them ends; bad marks are refused with the rule.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use tests::{click, http_post_form, Browser, Perfpilot};

async fn rows_in_state(client: &Client, state: &str) -> usize {
    client
        .find_all(Locator::Css(&format!(
            ".proof-table tbody tr[data-state='{state}']"
        )))
        .await
        .map(|rows| rows.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 129 lines today; split before it grows
async fn marks_and_target_edits_get_a_before_after_row() {
    let server = Perfpilot::start(&["--baseline-secs", "2", "--verify-secs", "3"]);
    let browser = Browser::start().await;
    let client = &browser.client;
    tokio::time::sleep(Duration::from_secs(3)).await;

    client.goto(&server.url("/before-after")).await.unwrap();
    browser.wait_for_hydration().await;
    let empty = client
        .find(Locator::Css(".empty-state h2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(empty, "Nothing to compare yet");

    // A blank mark is refused with the rule and adds nothing.
    click(client, Locator::Id("mark-add")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let text = client
            .find(Locator::Id("mark-error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        error,
        "label: must be 1–120 characters and not blank, got 0 characters"
    );

    client
        .find(Locator::Id("mark-label"))
        .await
        .unwrap()
        .send_keys("deployed v2.3")
        .await
        .unwrap();
    click(client, Locator::Id("mark-add")).await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".proof-table tbody tr[data-state='pending']"))
        .await
        .expect("a pending row for the mark");

    let (status, response) = http_post_form(
        server.addr,
        "/api/set_target",
        "resource=cpu&metric=utilization&value=90",
    );
    assert_eq!(status, 200, "{response}");

    // Both rows finish once their 3 s after-windows end (the page re-reads while pending).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let finished = rows_in_state(client, "met").await + rows_in_state(client, "missed").await;
        if finished == 2 && rows_in_state(client, "pending").await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows did not finish: {finished} finished"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let table = client
        .find(Locator::Css(".proof-table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("mark: deployed v2.3"), "{table}");
    assert!(table.contains("target edit (change #1)"), "{table}");
    assert!(table.contains("p95 utilization ≤ 90 %"), "{table}");
    let befores = client
        .find_all(Locator::Css(".proof-table tbody td:nth-child(3)"))
        .await
        .unwrap();
    for cell in befores {
        let text = cell.text().await.unwrap();
        assert!(text.ends_with('%'), "a measured before value: {text}");
    }
    let overlays = client
        .find_all(Locator::Css(
            ".proof-table svg.overlay polyline.overlay-after",
        ))
        .await
        .unwrap();
    assert_eq!(overlays.len(), 2, "each finished row draws its overlay");
    for line in overlays {
        let points = line.attr("points").await.unwrap().unwrap_or_default();
        assert!(
            points.contains(','),
            "the after window has points: {points:?}"
        );
    }
    browser.screenshot("before-after.png").await;
    // The target edit is a threshold change, never an improvement.
    let threshold = client
        .find(Locator::Css(".proof-table tbody tr[data-kind='threshold']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(threshold.contains("threshold"), "{threshold}");
    // On a phone the table stacks its cells: nothing wider than the screen, in dark too.
    client.set_window_size(390, 844).await.unwrap();
    browser.emulate_color_scheme("dark").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (overflow, culprits) = tests::horizontal_overflow(client).await;
    let table_width: i64 = client
        .execute(
            "const t = document.querySelector('.proof-table'); return Math.round(t.getBoundingClientRect().width);",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap_or(-1);
    browser.screenshot("before-after-390-dark.png").await;
    assert!(
        overflow <= 0,
        "the page scrolls sideways by {overflow} px: {culprits}"
    );
    assert!(
        (0..=390).contains(&table_width),
        "the table fits the phone: {table_width} px"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_on_unknown_or_targetless_resources_are_refused() {
    let server = Perfpilot::start(&[]);
    let (status, response) = http_post_form(server.addr, "/api/add_mark", "resource=nope&label=x");
    assert_eq!(status, 404, "{response}");
    assert!(
        response.contains("resource `nope` does not exist"),
        "{response}"
    );
    let (status, response) =
        http_post_form(server.addr, "/api/add_mark", "resource=disk%3A%2F&label=x");
    assert_eq!(status, 422, "{response}");
    assert!(
        response.contains("has no target, so a before/after has nothing to compare against"),
        "{response}"
    );
    let long = "x".repeat(121);
    let (status, response) = http_post_form(
        server.addr,
        "/api/add_mark",
        &format!("resource=cpu&label={long}"),
    );
    assert_eq!(status, 422, "{response}");
    assert!(
        response.contains("label: must be 1–120 characters"),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_says_what_moved_around_it_when_asked() {
    let server = Perfpilot::start(&[
        "--push-create-resources",
        "--baseline-secs",
        "2",
        "--verify-secs",
        "3",
    ]);
    // "custom:91" steps from about 20 to about 80 four minutes ago; "custom:92" stays.
    tests::push_a_step_and_a_flat_series(&server, "custom:91", "custom:92", "depth");
    // Short windows: the row is measured a few seconds after the mark.
    tests::set_settings(
        &server,
        "custom:91",
        &[("window_secs", 5), ("baseline_secs", 2), ("verify_secs", 3)],
    );
    tests::set_target(&server, "custom:91", "depth", 90.0, 0);
    let (status, body) = http_post_form(
        server.addr,
        "/api/add_mark",
        "resource=custom%3A91&label=deployed+v2.4",
    );
    assert_eq!(status, 200, "{body}");
    // The after window is measured on samples that come after the mark.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = tests::now_ms();
        tests::push_series(&server, "custom:91", "depth", &[t - t % 1000], |_| 80.0);
    }

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/before-after")).await.unwrap();
    browser.wait_for_hydration().await;
    let row = ".proof-table tbody tr[data-kind='mark']";
    let deadline = Instant::now() + Duration::from_secs(30);
    let summary = loop {
        // Measured rows offer the question; pending ones do not yet.
        if let Ok(summary) = client
            .find(Locator::Css(&format!("{row} .row-changed summary")))
            .await
        {
            break summary;
        }
        if Instant::now() > deadline {
            let (_, rows) = server.get("/api/comparisons");
            let page = client.source().await.unwrap_or_default();
            let at = page.find("proof-table").unwrap_or(0);
            panic!(
                "the mark's row was not measured: {rows:.1500}\n{:.3000}",
                &page[at..]
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    summary.click().await.unwrap();
    let listed = tests::eventually_text(
        client,
        &format!("{row} .row-changed li[data-resource='custom:91']"),
        "the stepped series under the row",
        |t| !t.is_empty(),
    )
    .await;
    assert!(listed.starts_with("Custom 91 — depth: 20."), "{listed}");
    assert!(listed.contains("→ 80."), "{listed}");
    let others = client
        .find_all(Locator::Css(&format!(
            "{row} .row-changed li[data-resource='custom:92']"
        )))
        .await
        .unwrap();
    assert!(others.is_empty(), "the flat series did not move");
    browser
        .screenshots_of(".proof-table", "before-after-what-moved")
        .await;
    browser.close().await;
}
