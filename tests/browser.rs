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
        .find(Locator::Css(
            "article.card[data-resource^='disk:'] .badge .badge-word",
        ))
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
    let badge = text_of(client, &format!("{card} .badge .badge-word")).await;
    assert_eq!(badge, "Pending");
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
            .contains("Pending: breaching for ")
    })
    .await;
    browser.close().await;
}

/// Pushes the tour's custom metrics twice a second until dropped: `custom:1`'s queue depth
/// (no unit; 42 against a target of 10, so it fires) and `custom:2`'s latency (80 against
/// 50 for 10 minutes, so it stays pending).
struct TourPusher(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl TourPusher {
    fn start(addr: std::net::SocketAddr) -> TourPusher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let now = tests::now_ms();
                let body = format!(
                    r#"{{"samples":[{{"resource":"custom:1","metric":"queue_depth","value":42,"timestamp":{now}}},{{"resource":"custom:2","metric":"latency","value":80,"timestamp":{now}}}]}}"#
                );
                let _ =
                    std::panic::catch_unwind(|| tests::http_post_json(addr, "/api/push", &body));
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        });
        TourPusher(stop)
    }
}

impl Drop for TourPusher {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Judges `resource` over its last second and sets its target, as an editor would.
fn tour_target(server: &Perfpilot, resource: &str, metric: &str, value: f64, for_secs: u32) {
    tests::set_window(server, resource, 1);
    tests::set_target(server, resource, metric, value, for_secs);
}

/// Every visible table's misplaced cells, in words. Not stacked (rows are table rows):
/// each body cell must be a table cell lying within its column's header, ± 2 px (a cell
/// made `inline-block` leaves its column, and the values slide under the wrong headers).
/// Stacked (a phone): each cell must lie within the table. Either way no cell's content
/// may stick out of the cell, and the table must fit the box that holds it: the
/// `.table-wrap`/`.table-scroll` wrappers are safety nets, not a layout, so a table that
/// scrolls inside one (columns cut off at the right) counts as well.
const TABLE_CHECK: &str = r#"
const tol = 2, out = [];
const shown = e => e.getClientRects().length > 0 && e.getBoundingClientRect().width > 0;
const named = t => 'table' + (t.id ? '#' + t.id : '.' + [...t.classList].join('.'));
const px = v => Math.round(v);
const text = c => c.innerText.trim().replace(/\s+/g, ' ').slice(0, 40);
for (const t of document.querySelectorAll('table')) {
  if (!shown(t)) continue;
  const box = t.getBoundingClientRect();
  for (let a = t.parentElement; a && a !== document.body; a = a.parentElement) {
    if (getComputedStyle(a).overflowX === 'visible') continue;
    if (a.scrollWidth > a.clientWidth + tol) {
      out.push(named(t) + ' is ' + (a.scrollWidth - a.clientWidth) + ' px wider than its box ('
        + a.tagName.toLowerCase() + '.' + [...a.classList].join('.') + ', ' + a.clientWidth + ' px): columns are cut off');
    }
    break;
  }
  const rows = [...t.tBodies].flatMap(b => [...b.rows]).filter(shown);
  if (rows.length === 0) continue;
  const stacked = getComputedStyle(rows[0]).display !== 'table-row';
  const head = t.tHead && t.tHead.rows.length ? t.tHead.rows[t.tHead.rows.length - 1] : null;
  const columns = [];
  if (head) for (const th of head.cells) for (let k = 0; k < th.colSpan; k++) columns.push(th);
  rows.forEach((row, i) => {
    let col = 0;
    for (const c of row.cells) {
      const first = columns[col], last = columns[col + c.colSpan - 1];
      col += c.colSpan;
      if (!shown(c)) continue;
      const r = c.getBoundingClientRect();
      const where = named(t) + ' row ' + (i + 1) + ' "' + text(c) + '": ';
      if (r.left < box.left - tol || r.right > box.right + tol) {
        out.push(where + 'outside the table (cell ' + px(r.left) + '–' + px(r.right) + ', table ' + px(box.left) + '–' + px(box.right) + ')');
      }
      if (c.scrollWidth > c.clientWidth + tol) {
        out.push(where + 'its content is ' + (c.scrollWidth - c.clientWidth) + ' px wider than the cell');
      }
      if (stacked) continue;
      const display = getComputedStyle(c).display;
      if (display !== 'table-cell') {
        out.push(where + 'is display: ' + display + ', not a table cell, so it leaves its column');
        continue;
      }
      if (!first || !last || !shown(first) || !shown(last)) continue;
      const left = first.getBoundingClientRect().left, right = last.getBoundingClientRect().right;
      if (r.left < left - tol || r.right > right + tol) {
        out.push(where + 'not under its header "' + text(first) + '" (cell ' + px(r.left) + '–' + px(r.right) + ', header ' + px(left) + '–' + px(right) + ')');
      }
    }
  });
}
return out;
"#;

/// Polls `check` every 200 ms for up to `secs` seconds; whether it held.
async fn settles<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The page shows `ready` and no loading placeholder is left.
async fn page_ready(client: &fantoccini::Client, ready: &str) -> bool {
    client
        .execute(
            "return document.querySelector(arguments[0]) !== null && document.querySelector('.loading') === null;",
            vec![serde_json::json!(ready)],
        )
        .await
        .is_ok_and(|v| v == serde_json::Value::Bool(true))
}

/// The emulated system theme reached the page: the media query, and on the app's pages
/// (they carry the base meta tag) the palette's `data-theme`.
async fn theme_applied(client: &fantoccini::Client, dark: bool) -> bool {
    client
        .execute(
            "const dark = matchMedia('(prefers-color-scheme: dark)').matches;
             const app = document.querySelector('meta[name=\"perfpilot-base\"]') !== null;
             return dark === arguments[0]
               && (!app || (document.documentElement.getAttribute('data-theme') === 'dark') === arguments[0]);",
            vec![serde_json::json!(dark)],
        )
        .await
        .is_ok_and(|v| v == serde_json::Value::Bool(true))
}

/// Standard base64 (a DevTools screenshot's PNG).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (value(*c) << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// A phone (`mobile`: its viewport tag counts, scrollbars overlay) or a desktop window of
/// `width` × `height` CSS pixels.
/// The whole page, not only the viewport (the tables are below the fold on a phone), into
/// `target/e2e/<name>`.
async fn full_page_screenshot(browser: &Browser, name: &str, width: u32) {
    let height = browser
        .client
        .execute(
            "return Math.ceil(document.documentElement.scrollHeight);",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(800.0)
        .clamp(100.0, 16_000.0);
    let shot = browser
        .cdp(
            "Page.captureScreenshot",
            serde_json::json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 }
            }),
        )
        .await;
    let png = base64_decode(shot["data"].as_str().expect("a screenshot's data"));
    std::fs::write(tests::artefact_dir().join(name), png).expect("write the screenshot");
}

/// The tour of a day-one setup — PostgreSQL, Redis, HAProxy in front of two backends, a
/// Prometheus fleet, a webhook alert channel and pushed metrics, one firing and one
/// pending — every page at a phone's 390 × 844 (mobile emulation, so the viewport tag
/// counts) and a desktop's 1280 × 800, light and dark: no page wider than its viewport,
/// no table cell outside its column or its table. Every failure is collected, so one run
/// names them all; each page, width and theme is screenshotted whole as
/// `target/e2e/tour-<width>-<theme>-<page>.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 212 lines today; split before it grows
async fn every_page_fits_phones_and_desktops_in_both_themes() {
    use tests::fleet_support::{FleetSim, NodeExporter, Prometheus};
    use tests::urlencode;

    const PASSWORD: &str = "tour-pg-Vx8qL3";
    let pg = tests::Postgres::start();
    pg.psql(
        "postgres",
        &format!("CREATE ROLE perf LOGIN PASSWORD '{PASSWORD}'; GRANT pg_monitor TO perf"),
    );
    let redis = tests::Redis::start(None, &[]);
    let _cache_load = redis.load(20, 80);
    let backends = [tests::TestBackend::start(), tests::TestBackend::start()];
    let haproxy =
        tests::Haproxy::start(&[("web-1", backends[0].port), ("web-2", backends[1].port)]);
    let dir = TempDir::new("perfpilot-tour");
    let sim = FleetSim::start(24);
    let node = NodeExporter::start();
    // The simulated hosts keep their own `instance`; the real node_exporter is one host of
    // group env=prod, role=web, named by its address as on day one.
    let scrape_configs = format!(
        "  - job_name: fleet\n    honor_labels: true\n    static_configs:\n      - targets: ['{sim}']\n  - job_name: node\n    static_configs:\n      - targets: ['{node}']\n        labels: {{env: prod, role: web}}\n",
        sim = sim.addr,
        node = node.addr
    );
    let prometheus = Prometheus::start(&dir.0, "1s", &scrape_configs);
    prometheus.wait_series("node_uname_info", 25, std::time::Duration::from_secs(30));
    let receiver = tests::Receiver::start();
    let password_file = dir.0.join("pg.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let config = dir.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[postgres]]
name = "main"
url = "postgresql://perf@127.0.0.1:{pg}/postgres"
password_file = "{password}"

[[redis]]
name = "sessions"
url = "redis://127.0.0.1:{redis}/0"

[[haproxy]]
name = "web"
socket = "{socket}"
backend = "web"
check = {{ path = "/health", interval_ms = 500, timeout_ms = 300, rise = 2, fall = 2 }}

[[prometheus]]
name = "prod"
url = "{prometheus}"
selector = "node_uname_info"
group_by = ["env", "role"]

[[alert_channel]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:{receiver}/hook"
"#,
            pg = pg.port,
            password = password_file.display(),
            redis = redis.port,
            socket = haproxy.socket.display(),
            prometheus = prometheus.url(),
            receiver = receiver.port,
        ),
    )
    .unwrap();
    let server = Perfpilot::start(&[
        "--config",
        config.to_str().unwrap(),
        "--push-create-resources",
        "--autosave-every",
        "5",
    ]);
    let _pusher = TourPusher::start(server.addr);

    // Day one, a few minutes in: every source has reported, an alert fired and was
    // delivered, another is pending under a silence, a deploy was marked, a token minted.
    for id in [
        "database:main",
        "cache:sessions",
        "lb:web",
        "custom:1",
        "custom:2",
    ] {
        server.card(id, 60, &format!("{id}'s first value"), |c| {
            c["value"].is_number()
        });
    }
    tour_target(&server, "custom:1", "queue_depth", 10.0, 1);
    tour_target(&server, "custom:2", "latency", 50.0, 600);
    receiver.wait_for("/hook", 60, "the queue depth's alert delivered", |r| {
        !r.is_empty()
    });
    let (status, answer) = tests::http_post_json(
        server.addr,
        "/api/v1/silences",
        r#"{"matcher":"custom:2","duration":"1h","comment":"planned maintenance of the payment queue"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = tests::http_post_form(
        server.addr,
        "/api/add_mark",
        "resource=cpu&label=deployed%20v2.3",
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = tests::http_request(
        server.addr,
        "POST",
        "/api/create_token",
        &[],
        "name=ci-deploy&role=editor",
    );
    assert_eq!(status, 200, "{answer}");
    let instance = node.addr.to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let group = loop {
        let (_, response) = server.get("/api/fleet?id=fleet%3Aprod");
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let fleet: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let view = &fleet["view"]["Ok"];
        let has_node = view["hosts"]
            .as_array()
            .is_some_and(|hosts| hosts.iter().any(|h| h["instance"] == instance.as_str()));
        if let (true, Some(key)) = (has_node, view["groups"][0]["key"].as_str()) {
            break key.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet lists the node exporter's host: {body:.600}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };

    let resource = |id: &str| format!("/resource?id={}", urlencode(id));
    let scope = |level: &str, key: &str| {
        format!(
            "/fleet/target?id=fleet%3Aprod&scope={level}&key={}&metric=cpu",
            urlencode(key)
        )
    };
    // Every page of app::PAGES, each kind of resource page, both fleet levels with a page
    // of their own, the rendered report and the 404 page, each with what shows its data.
    let pages: Vec<(&str, String, &str)> = vec![
        ("overview", "/".into(), "[data-resource='custom:1']"),
        ("cpu", resource("cpu"), "#resource-status"),
        ("database", resource("database:main"), "#queries-title"),
        ("cache", resource("cache:sessions"), "#cache-server"),
        ("lb", resource("lb:web"), "#lb-backends"),
        ("custom", resource("custom:1"), "#resource-status"),
        ("fleet-resource", resource("fleet:prod"), "#fleet-link"),
        ("fleet", "/fleet?id=fleet%3Aprod".into(), "#fleet-hosts"),
        ("fleet-group", scope("group", &group), "#target-heading"),
        ("fleet-host", scope("host", &instance), "#host-metrics"),
        ("alerts", "/alerts".into(), "#alerts-firing"),
        ("audit", "/audit".into(), "#audit"),
        ("before-after", "/before-after".into(), ".proof-table"),
        ("changes", "/changes".into(), "#snapshots"),
        ("settings", "/settings".into(), "#tokens"),
        ("reports", "/reports".into(), "#report-form"),
        ("report", "/api/v1/report?period=24h".into(), "#compliance"),
        ("not-found", "/no/such/page".into(), "h1"),
    ];

    let browser = Browser::start().await;
    let client = &browser.client;
    let mut failures: Vec<String> = Vec::new();
    for (width, height, phone) in [(390u32, 844u32, true), (1280, 800, false)] {
        browser.emulate_viewport(width, height, phone).await;
        for (name, path, ready) in &pages {
            client.goto(&server.url(path)).await.unwrap();
            // The report is a document of its own, with no script to hydrate.
            if !path.starts_with("/api/") {
                browser.wait_for_hydration().await;
            }
            if !settles(30, || page_ready(client, ready)).await {
                failures.push(format!(
                    "{path} at {width} px: {ready} never showed, or a loading placeholder stayed"
                ));
            }
            for theme in ["light", "dark"] {
                browser.emulate_color_scheme(theme).await;
                let at = format!("{path} at {width} px, {theme}");
                if !settles(10, || theme_applied(client, theme == "dark")).await {
                    failures.push(format!("{at}: the page did not turn {theme}"));
                }
                let (overflow, culprits) = tests::horizontal_overflow(client).await;
                if overflow != 0 {
                    failures.push(format!(
                        "{at}: the page is {overflow} px wider than the viewport; sticking out: {culprits}"
                    ));
                }
                if phone {
                    let laid_out = client
                        .execute("return document.documentElement.clientWidth;", vec![])
                        .await
                        .ok()
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0);
                    if laid_out != u64::from(width) {
                        failures.push(format!(
                            "{at}: laid out {laid_out} px wide, not the phone's {width} (no viewport tag?)"
                        ));
                    }
                }
                let offenders = client
                    .execute(TABLE_CHECK, vec![])
                    .await
                    .expect("check the tables");
                for offender in offenders.as_array().into_iter().flatten() {
                    failures.push(format!("{at}: {}", offender.as_str().unwrap_or_default()));
                }
                full_page_screenshot(&browser, &format!("tour-{width}-{theme}-{name}.png"), width)
                    .await;
                // Capturing beyond the viewport resizes it for a moment: back to the
                // emulated one before the next measurement.
                browser.emulate_viewport(width, height, phone).await;
            }
        }
    }
    browser.close().await;
    assert!(
        failures.is_empty(),
        "{} problems on the tour (screenshots in target/e2e/tour-*.png):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A first visit over a slow link (issue 27): Chromium throttled to a 50 ms round trip
/// per request and 10 Mbit/s, its cache off; the time from navigation to the page being
/// interactive (`body[data-hydrated]`, recorded in the page by a mutation observer, so
/// WebDriver's polling adds nothing), with the requests and bytes it took. Three visits
/// each of the Overview and a resource page; printed and kept in
/// `target/e2e/first-visit-slow-link.json` for BENCHMARKS.md. A measurement, not a limit:
/// these machines are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md: run with -- --ignored first_visits"]
async fn first_visits_over_a_slow_link_are_timed() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;
    browser.cdp("Network.enable", serde_json::json!({})).await;
    browser
        .cdp(
            "Network.setCacheDisabled",
            serde_json::json!({ "cacheDisabled": true }),
        )
        .await;
    browser
        .cdp(
            "Network.emulateNetworkConditions",
            serde_json::json!({
                "offline": false,
                "latency": 50,
                "downloadThroughput": 1_250_000,
                "uploadThroughput": 1_250_000,
            }),
        )
        .await;
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({ "source": "new MutationObserver((_, seen) => { \
                if (document.body && document.body.dataset.hydrated === 'true') { \
                  window.__interactiveAt = performance.now(); seen.disconnect(); } \
              }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });" }),
        )
        .await;
    let mut measured = serde_json::Map::new();
    for (page, path) in [("overview", "/"), ("resource", "/resource?id=cpu")] {
        let mut visits = Vec::new();
        for _ in 0..3 {
            client.goto("about:blank").await.unwrap();
            client.goto(&server.url(path)).await.unwrap();
            browser.wait_for_hydration().await;
            let visit = client
                .execute(
                    "const entries = performance.getEntriesByType('resource'); \
                     const page = performance.getEntriesByType('navigation')[0]; \
                     return { interactive_ms: Math.round(window.__interactiveAt), \
                       requests: entries.length + 1, \
                       transferred_bytes: entries.reduce((sum, e) => sum + e.transferSize, page.transferSize) };",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                visit["interactive_ms"].as_u64().is_some_and(|ms| ms > 0),
                "{visit}"
            );
            visits.push(visit);
        }
        println!("first visit of {page} at 50 ms latency and 10 Mbit/s: {visits:?}");
        measured.insert(page.to_owned(), serde_json::Value::Array(visits));
    }
    let out = tests::artefact_dir().join("first-visit-slow-link.json");
    std::fs::write(&out, serde_json::Value::Object(measured).to_string()).unwrap();
    browser.close().await;
}
