//! Browser end-to-end tests: the real `perfpilot` binary, real headless Chromium.

use fantoccini::Locator;
use tests::{click, copy_dir, site_root, text_of, wait_for, Browser, Perfpilot, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_hydrates_and_the_theme_toggle_reacts() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;

    let title = client.title().await.unwrap();
    assert_eq!(title, "perfpilot");
    let toggle = client.find(Locator::Id("theme-toggle")).await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: auto");
    let root = client.find(Locator::Css("html")).await.unwrap();
    assert_eq!(root.attr("data-theme").await.unwrap(), None);

    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: light");
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("light")
    );

    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: dark");
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("dark")
    );
    browser.screenshot("overview-dark.png").await;

    // The choice survives a reload: the boot script applies it before first paint.
    client.refresh().await.unwrap();
    browser.wait_for_hydration().await;
    let root = client.find(Locator::Css("html")).await.unwrap();
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("dark")
    );
    let toggle = client.find(Locator::Id("theme-toggle")).await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: dark");

    browser.close().await;
}

/// The palette variables the dark-mode tests read, and their values in each theme (the
/// compare overlay's `--series-N` are read by the chart canvas too).
const PALETTE_VARS: [&str; 4] = ["--series-1", "--series-2", "--series-3", "--bg"];
const LIGHT: [&str; 4] = ["#2563eb", "#9333ea", "#be185d", "#f7f8fa"];
const DARK: [&str; 4] = ["#60a5fa", "#c084fc", "#f472b6", "#0d1117"];

/// The palette as the page computes it on `<html>`, and its `data-theme`.
async fn palette(client: &fantoccini::Client) -> (Vec<String>, Option<String>) {
    let value = client
        .execute(
            "const style = getComputedStyle(document.documentElement);
             return [arguments[0].map(name => style.getPropertyValue(name).trim().toLowerCase()),
                     document.documentElement.getAttribute('data-theme')];",
            vec![serde_json::json!(PALETTE_VARS)],
        )
        .await
        .expect("read the computed palette");
    let vars = value[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    (vars, value[1].as_str().map(str::to_owned))
}

async fn assert_palette(
    client: &fantoccini::Client,
    want: [&str; 4],
    theme: Option<&str>,
    when: &str,
) {
    let (vars, data_theme) = palette(client).await;
    assert_eq!(vars, want, "{when}: {PALETTE_VARS:?}");
    assert_eq!(data_theme.as_deref(), theme, "{when}: data-theme");
}

/// Registered before each document's own scripts: records every `data-theme` `<html>`
/// gets, and whether `<body>` existed yet (it does not before the first paint).
const RECORD_THEMES: &str = "window.__themes = [];
    new MutationObserver(() => window.__themes.push([
      document.documentElement.getAttribute('data-theme'), document.body !== null]))
      .observe(document, { subtree: true, attributes: true, attributeFilter: ['data-theme'] });";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dark_mode_is_one_palette_for_the_toggle_and_the_system_setting() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({ "source": RECORD_THEMES }),
        )
        .await;
    browser.emulate_color_scheme("light").await;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    assert_palette(client, LIGHT, None, "auto, light system").await;

    // The toggle's Dark gets the whole dark palette, compare-overlay colours included.
    click(client, Locator::Id("theme-toggle")).await;
    assert_palette(client, LIGHT, Some("light"), "light").await;
    click(client, Locator::Id("theme-toggle")).await;
    assert_eq!(text_of(client, "#theme-toggle").await, "Theme: dark");
    assert_palette(client, DARK, Some("dark"), "dark").await;
    click(client, Locator::Id("theme-toggle")).await;
    assert_eq!(text_of(client, "#theme-toggle").await, "Theme: auto");
    assert_palette(client, LIGHT, None, "back to auto, light system").await;

    // The system turns dark while the page is open: Auto follows with the same palette.
    browser.emulate_color_scheme("dark").await;
    eventually(10, "auto follows the system to dark", || async {
        palette(client).await == (to_strings(DARK), Some("dark".to_owned()))
    })
    .await;

    // A load on a dark system is dark from before the first paint, never light between.
    client.refresh().await.unwrap();
    browser.wait_for_hydration().await;
    assert_palette(client, DARK, Some("dark"), "reloaded, auto, dark system").await;
    let seen = client
        .execute("return window.__themes;", vec![])
        .await
        .unwrap();
    assert_eq!(
        seen[0],
        serde_json::json!(["dark", false]),
        "data-theme is dark before <body> exists: {seen}"
    );
    assert!(
        seen.as_array().unwrap().iter().all(|s| s[0] == "dark"),
        "never another theme on the way: {seen}"
    );

    // A choice beats the system: Light on a dark system is light.
    click(client, Locator::Id("theme-toggle")).await;
    assert_palette(client, LIGHT, Some("light"), "light, dark system").await;
    click(client, Locator::Id("theme-toggle")).await;
    click(client, Locator::Id("theme-toggle")).await;
    assert_eq!(text_of(client, "#theme-toggle").await, "Theme: auto");
    browser.emulate_color_scheme("light").await;
    eventually(10, "auto follows the system back to light", || async {
        palette(client).await == (to_strings(LIGHT), None)
    })
    .await;

    browser.close().await;
}

fn to_strings(values: [&str; 4]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_works_client_side_and_unknown_urls_get_a_404_page() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    click(client, Locator::LinkText("Changes")).await;
    let heading = wait_for(client, Locator::XPath("//h1[text()='Changes']")).await;
    assert_eq!(heading.text().await.unwrap(), "Changes");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/changes"));

    let (status, body) = server.get("/no/such/page");
    assert_eq!(status, 404);
    assert!(body.contains("Page not found"), "{body:.500}");

    client.goto(&server.url("/no/such/page")).await.unwrap();
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Page not found");
    browser.screenshot("not-found.png").await;

    browser.close().await;
}

async fn cards_updated_at(client: &fantoccini::Client) -> i64 {
    let cards = client.find(Locator::Css(".cards")).await.unwrap();
    cards
        .attr("data-updated")
        .await
        .unwrap()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` every 200 ms for up to `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_shows_live_host_resources_without_a_reload() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;

    for resource in ["cpu", "memory"] {
        let card = client
            .wait()
            .for_element(Locator::Css(&format!(
                "article.card[data-resource='{resource}']"
            )))
            .await
            .unwrap_or_else(|_| panic!("a card for {resource}"));
        let value = card
            .find(Locator::Css(".value"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            value.ends_with('%') || value == "no data",
            "{resource}: {value}"
        );
    }
    let cpu_target = client
        .find(Locator::Css(
            "article.card[data-resource='cpu'] .card-target",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cpu_target, "Target: p95 utilization ≤ 65 % for 5 m");
    // A resource without a target says so instead of showing the seed's initial status.
    let disk_badge = client
        .find(Locator::Css("article.card[data-resource^='disk:'] .badge"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(disk_badge, "No target");

    let first = cards_updated_at(client).await;
    eventually(10, "the overview to update from the websocket", || async {
        cards_updated_at(client).await > first
    })
    .await;
    // The top-process scan runs every few seconds; the CPU card then names the busiest.
    eventually(15, "the CPU card to name its top process", || async {
        match client
            .find(Locator::Css("article.card[data-resource='cpu'] .card-top"))
            .await
        {
            Ok(top) => top.text().await.unwrap_or_default().starts_with("Top: "),
            Err(_) => false,
        }
    })
    .await;
    let second = cards_updated_at(client).await;
    eventually(10, "a second live update", || async {
        cards_updated_at(client).await > second
    })
    .await;
    browser.screenshot("overview.png").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_banner_shows_while_the_server_is_down_and_live_data_resumes() {
    let server = Perfpilot::start(&[]);
    let port = server.addr.port();
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    let before = cards_updated_at(client).await;
    eventually(10, "live data before the restart", || async {
        cards_updated_at(client).await > before
    })
    .await;
    assert!(client.find(Locator::Id("reconnect-banner")).await.is_err());

    drop(server);
    eventually(10, "the reconnect banner", || async {
        client.find(Locator::Id("reconnect-banner")).await.is_ok()
    })
    .await;
    browser.screenshot("reconnecting.png").await;

    let server = Perfpilot::start_on(port, &["--ephemeral"]);
    eventually(20, "the banner to go away after the restart", || async {
        client.find(Locator::Id("reconnect-banner")).await.is_err()
    })
    .await;
    let resumed = cards_updated_at(client).await;
    eventually(10, "live data after the restart", || async {
        cards_updated_at(client).await > resumed
    })
    .await;
    drop(server);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_360_px_phone_without_sideways_scrolling() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;
    client.set_window_size(360, 800).await.unwrap();
    for (path, shot) in [
        ("/", "narrow-overview.png"),
        ("/resource?id=cpu&range=5m", "narrow-resource.png"),
        ("/before-after", "narrow-before-after.png"),
        ("/settings", "narrow-settings.png"),
        ("/audit", "narrow-audit.png"),
    ] {
        client.goto(&server.url(path)).await.unwrap();
        browser.wait_for_hydration().await;
        // Let live data render the cards before measuring.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let (overflow, offenders) = tests::horizontal_overflow(client).await;
        browser.screenshot(shot).await;
        assert_eq!(
            overflow, 0,
            "{path} scrolls sideways at 360 px; sticking out: {offenders}"
        );
    }
    browser.close().await;
}

/// The wasm and JS files the page has fetched so far, with their compressed (encoded) sizes,
/// from the browser's own resource timing.
async fn fetched_bundle_files(client: &fantoccini::Client) -> Vec<(String, u64)> {
    let entries = client
        .execute(
            "return performance.getEntriesByType('resource')
                .filter(e => /\\.(wasm|js)$/.test(new URL(e.name).pathname))
                .map(e => [new URL(e.name).pathname, e.encodedBodySize]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(entries).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_downloads_the_shell_and_its_own_chunks_and_others_only_when_visited() {
    let server = Perfpilot::start(&[]);

    // The server lists each page's chunks as preloads (every time: Leptos' own preloading
    // found its manifest only sometimes), so the browser fetches them alongside the main
    // module instead of after hydration asks for them.
    let pages = [
        ("/", "overview_route"),
        ("/changes", "changes_route"),
        ("/audit", "audit_route"),
        ("/resource?id=cpu", "resource_route"),
        ("/before-after", "proof_route"),
        ("/settings", "settings_route"),
    ];
    for attempt in 0..3 {
        for (path, route) in pages {
            let (status, html) = server.get(path);
            assert_eq!(status, 200, "{path}");
            let preloads: Vec<&str> = html
                .split("<link")
                .skip(1)
                .filter(|link| link.contains("rel=\"preload\""))
                .filter_map(|link| link.split("href=\"").nth(1)?.split('"').next())
                .collect();
            assert!(
                preloads
                    .iter()
                    .any(|href| href.contains(&format!("split___{route}_view"))),
                "attempt {attempt}: {path} preloads its own chunk: {preloads:?}"
            );
            for (_, other) in pages.iter().filter(|(_, other)| *other != route) {
                assert!(
                    !preloads.iter().any(|href| href.contains(other)),
                    "{path} preloads {other}: {preloads:?}"
                );
            }
            assert!(
                preloads.iter().all(|href| href.starts_with("/pkg/")),
                "{preloads:?}"
            );
        }
    }

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    wait_for(client, Locator::Css(".cards .card")).await;
    // A resource timing entry appears when its download completes, which on a loaded
    // machine can be a moment after hydration: wait for the page's own chunk.
    eventually(
        20,
        "the overview's chunk in the resource timings",
        || async {
            fetched_bundle_files(client)
                .await
                .iter()
                .any(|(name, _)| name.contains("overview_route"))
        },
    )
    .await;
    let first_visit = fetched_bundle_files(client).await;
    let names: Vec<&str> = first_visit.iter().map(|(name, _)| name.as_str()).collect();
    for other in ["changes_route", "resource_route", "settings_route"] {
        assert!(
            !names.iter().any(|name| name.contains(other)),
            "{other} was downloaded on the overview: {names:?}"
        );
    }
    let bytes: u64 = first_visit.iter().map(|(_, size)| size).sum();
    println!(
        "first visit to /: {} files, {bytes} bytes as transferred (encoded)",
        first_visit.len()
    );

    // Navigating fetches the next page's chunk and renders it.
    click(client, Locator::LinkText("Changes")).await;
    wait_for(client, Locator::XPath("//h1[text()='Changes']")).await;
    assert!(
        client.find(Locator::Css(".route-progress")).await.is_err(),
        "the loading bar goes away once the page is shown"
    );
    eventually(
        20,
        "the Changes page's chunk in the resource timings",
        || async {
            fetched_bundle_files(client)
                .await
                .iter()
                .any(|(name, _)| name.contains("changes_route"))
        },
    )
    .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_code_cannot_be_downloaded_says_so_and_offers_a_reload() {
    // A tab opened before an upgrade, or a network failure, finds a page's chunk missing:
    // here the Changes page's own chunk is removed from a copy of the site.
    let site = TempDir::new("site-without-a-chunk");
    copy_dir(&site_root(), &site.0);
    let mut removed = 0;
    for bundle in std::fs::read_dir(site.0.join("pkg")).unwrap() {
        let bundle = bundle.unwrap().path();
        if !bundle.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&bundle).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("split___changes_route_view") {
                std::fs::remove_file(file).unwrap();
                removed += 1;
            }
        }
    }
    assert!(removed > 0, "the site has a Changes chunk to remove");
    let server = Perfpilot::start_with_site(&site.0, &[]);

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    assert!(
        client.find(Locator::Id("stopped-banner")).await.is_err(),
        "no banner while everything works"
    );
    click(client, Locator::LinkText("Changes")).await;
    let banner = wait_for(client, Locator::Id("stopped-banner")).await;
    let text = banner.text().await.unwrap();
    assert!(text.contains("could not be downloaded"), "{text}");
    assert_eq!(banner.attr("role").await.unwrap().as_deref(), Some("alert"));
    let reload = banner.find(Locator::LinkText("Reload")).await.unwrap();
    assert!(reload
        .attr("href")
        .await
        .unwrap()
        .is_some_and(|href| href.starts_with(&server.url("/"))));
    assert!(
        client.find(Locator::Css(".route-progress")).await.is_err(),
        "no loading bar left running under the banner"
    );
    browser.screenshot("page-code-missing.png").await;

    // The link really reloads: a new document, rendered by the server.
    client
        .execute("window.beforeReload = true; return null;", vec![])
        .await
        .unwrap();
    reload.click().await.unwrap();
    eventually(10, "Reload to load a new page", || async {
        client
            .execute("return window.beforeReload === undefined;", vec![])
            .await
            .is_ok_and(|fresh| fresh == serde_json::Value::Bool(true))
    })
    .await;
    browser.close().await;
}

/// A breach shorter than its target's `for` is visible as pending, with how long it has
/// lasted, instead of the last verdict (memory is always above 1 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_breach_shows_its_countdown_on_the_card() {
    let server = Perfpilot::start(&[]);
    let (status, body) = tests::http_request(
        server.addr,
        "POST",
        "/api/set_target",
        &[],
        "resource=memory&metric=used_pct&value=1&for_secs=300",
    );
    assert_eq!(status, 200, "{body}");
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    let card = "article[data-resource='memory']";
    eventually(90, "the memory card's pending breach", || async {
        let reason = text_of(client, &format!("{card} .card-reason")).await;
        reason.starts_with("breaching for ") && reason.contains(" of 5 m: ")
    })
    .await;
    let badge = text_of(client, &format!("{card} .badge")).await;
    assert_eq!(badge, "Breaching…");
    let first = text_of(client, &format!("{card} .card-reason")).await;
    // It counts up live, over the websocket.
    eventually(10, "the countdown moving", || async {
        text_of(client, &format!("{card} .card-reason")).await != first
    })
    .await;
    browser.screenshot("pending-breach.png").await;
    // The resource page says it too.
    client
        .goto(&server.url("/resource?id=memory&range=5m"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    eventually(10, "the resource page's pending line", || async {
        text_of(client, "#resource-status")
            .await
            .starts_with("Breaching… breaching for ")
    })
    .await;
    browser.close().await;
}
