//! The Grafana dashboard in `docs/grafana/perfpilot.json`, checked against a real
//! Prometheus (Debian's `prometheus`, a throwaway instance on a free port with its own
//! config and data directory) scraping a real perfpilot every second: every panel's
//! PromQL parses and returns data, and the dashboard's variables find their values.
//!
//! Also perfpilot's own dashboard, the Overview, in Chromium: its summary counts, the
//! worst-first order, each card's kind, and the big number of every card being the very
//! statistic its status judged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::model::TargetState;
use tests::{
    body_json, eventually_text, free_port, http_get, http_post_json, http_request, text_of,
    urlencode, Browser, Perfpilot, TempDir,
};

/// A Prometheus that dies with the test.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &std::path::Path, scrape: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: perfpilot\n    static_configs:\n      - targets: ['{scrape}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus (scripts/setup.sh --test installs the Debian package)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "Prometheus did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { child, addr }
    }

    /// The `data` of a successful API answer; `None` while Prometheus is not up.
    fn api(&self, path: &str) -> Option<serde_json::Value> {
        let (status, response) = http_get(self.addr, path);
        let body = response.split_once("\r\n\r\n")?.1;
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        if status != 200 || json["status"] != "success" {
            return None;
        }
        Some(json["data"].clone())
    }

    fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let (status, response) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", urlencode(expr)),
        );
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: serde_json::Value =
            serde_json::from_str(body).map_err(|err| format!("{status}: {err}: {body:.300}"))?;
        if json["status"] != "success" {
            return Err(format!("{status}: {}", json["error"]));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

#[test]
fn every_dashboard_panel_queries_a_real_prometheus_scraping_perfpilot() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/perfpilot.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _server = Perfpilot::start(&["--metrics-listen", &metrics.to_string()]);
    let dir = TempDir::new("perfpilot-prometheus");
    let prometheus = Prometheus::start(&dir.0, metrics);

    // Scraped a few times, so rates over the window have two samples at least.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scraped = prometheus
            .query("count_over_time(perfpilot_changes_total{job=\"perfpilot\"}[1m])")
            .ok()
            .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok());
        if scraped.is_some_and(|n| n >= 4.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped perfpilot 4 times: {scraped:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let substitute = |expr: &str| {
        expr.replace("$job", "perfpilot")
            .replace("$resource", ".*")
            .replace("$__rate_interval", "1m")
    };
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = substitute(target["expr"].as_str().unwrap());
            let result = prometheus
                .query(&expr)
                .unwrap_or_else(|err| panic!("panel {:?}: {expr}: {err}", panel["title"]));
            assert!(
                !result.is_empty(),
                "panel {:?} returns no data: {expr}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} queries");

    // The variables: the job and the resources perfpilot watches.
    let jobs = prometheus
        .api(&format!(
            "/api/v1/label/job/values?match[]={}",
            urlencode("perfpilot_changes_total")
        ))
        .unwrap();
    assert_eq!(jobs, serde_json::json!(["perfpilot"]));
    let resources = prometheus
        .api(&format!(
            "/api/v1/label/resource/values?match[]={}",
            urlencode("perfpilot_resource_value{job=\"perfpilot\"}")
        ))
        .unwrap();
    assert!(
        resources.as_array().unwrap().iter().any(|r| r == "cpu"),
        "{resources}"
    );
}

/// The Overview test's pushed metrics: resource, high and low value, the target's `for`
/// (`latency ≤ 50`-style: `depth ≤ 50`) and the target state that makes. Each metric
/// alternates between its high and low value every second, so over a 10 s window its p95
/// is exactly the high value (at least two of the window's samples are high whatever the
/// phase, and p95 interpolates between the two largest) while its live sample moves: a
/// card showing the live sample instead of the judged statistic is caught within two
/// seconds. Values are exact in f32, as history stores them.
const PUSHED: [(&str, f64, f64, u32, TargetState); 3] = [
    ("custom:61", 120.5, 20.25, 0, TargetState::Breaching),
    ("custom:62", 90.5, 10.25, 3600, TargetState::Pending),
    ("custom:63", 30.75, 5.5, 0, TargetState::WithinTarget),
];

/// One sample of every pushed metric at `t` (unix ms).
fn pushed_at(t: i64) -> Vec<String> {
    PUSHED
        .iter()
        .map(|(id, high, low, _, _)| {
            let v = if (t / 1000) % 2 == 0 { high } else { low };
            format!(r#"{{"resource":"{id}","metric":"depth","value":{v},"timestamp":{t}}}"#)
        })
        .collect()
}

fn push(server: &Perfpilot, samples: &[String]) -> (u16, String) {
    http_post_json(
        server.addr,
        "/api/push",
        &format!(r#"{{"samples":[{}]}}"#, samples.join(",")),
    )
}

/// `resource` judged over `window_secs`, against `depth ≤ 50` breaching after `for_secs`.
fn set_target(server: &Perfpilot, resource: &str, window_secs: u32, for_secs: u32) {
    tests::set_window(server, resource, window_secs);
    tests::set_target(server, resource, "depth", 50.0, for_secs);
}

/// Whether the page's `shown` number ("120.50 /s", "72.1 %") is `value` at the precision
/// shown.
fn shows(shown: &str, value: f64) -> bool {
    let number: String = shown
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
    !number.is_empty() && format!("{value:.decimals$}") == number
}

/// The overview's cards as the JSON API (`POST /api/overview`) answers them.
fn api_cards(server: &Perfpilot) -> Vec<serde_json::Value> {
    let (status, body) = http_request(server.addr, "POST", "/api/overview", &[], "");
    assert_eq!(status, 200, "{body:.500}");
    body_json(&body)["cards"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The summary strip's counts the API's cards call for, by the strip's ids.
fn expected_counts(cards: &[serde_json::Value]) -> BTreeMap<String, u64> {
    let count =
        |is: &dyn Fn(&serde_json::Value) -> bool| cards.iter().filter(|&c| is(c)).count() as u64;
    let state = |c: &serde_json::Value, s: &str| c["target_state"] == s;
    let phase = |c: &serde_json::Value| c["optimizer"]["phase"].as_str().unwrap_or("").to_owned();
    [
        (
            "summary-breaching",
            count(&|c: &serde_json::Value| state(c, "breaching")),
        ),
        (
            "summary-pending",
            count(&|c: &serde_json::Value| state(c, "pending")),
        ),
        (
            "summary-acting",
            count(&|c: &serde_json::Value| matches!(phase(c).as_str(), "acting" | "verifying")),
        ),
        (
            "summary-attention",
            count(&|c: &serde_json::Value| phase(c) == "needs_attention"),
        ),
        (
            "summary-no-data",
            count(&|c: &serde_json::Value| state(c, "no_data")),
        ),
        (
            "summary-within",
            count(&|c: &serde_json::Value| state(c, "within_target")),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 164 lines today; split before it grows
async fn the_overview_counts_orders_and_judges_cards_as_their_status_does() {
    let server = Perfpilot::start(&["--push-create-resources"]);
    // A minute of history at once (it creates the resources), then a sample a second.
    let now = tests::now_ms();
    let second = now - now % 1000;
    let backfill: Vec<String> = (1..=60)
        .rev()
        .flat_map(|k| pushed_at(second - k * 1000))
        .collect();
    let (status, body) = push(&server, &backfill);
    assert_eq!(status, 200, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (stop, server_addr) = (stop.clone(), server.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let body = format!(
                    r#"{{"samples":[{}]}}"#,
                    pushed_at(tests::now_ms()).join(",")
                );
                let _ =
                    std::panic::catch_unwind(|| http_post_json(server_addr, "/api/push", &body));
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    for (id, _, _, for_secs, _) in PUSHED {
        set_target(&server, id, 10, for_secs);
    }
    // The API's status: each target's state, judged on the hand-computed p95.
    for (id, high, _, _, state) in PUSHED {
        server.card(id, 60, &format!("{id} {}", state.as_str()), |c| {
            c["target_state"] == state.as_str() && c["judged"].as_f64() == Some(high)
        });
    }
    let breaching = server.card("custom:61", 5, "the advice", |c| c["advice"].is_string());
    assert!(
        breaching["judged_label"] == "p95 over 10 s",
        "what the big number is: {breaching}"
    );

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    let card = |id: &str, part: &str| format!("article.card[data-resource='{id}'] {part}");

    // Each card's state in words, its kind beside its name.
    for (id, _, _, _, state) in PUSHED {
        eventually_text(client, &card(id, ".badge-word"), "the state's word", |t| {
            t == state.label()
        })
        .await;
        assert_eq!(
            text_of(client, &card(id, ".card-kind")).await,
            "Custom metric"
        );
    }
    assert_eq!(text_of(client, &card("cpu", ".card-kind")).await, "Host");
    // Breaching and pending differ in class and glyph, not only in colour.
    let badge_class = |id: &'static str| async move {
        client
            .find(fantoccini::Locator::Css(&card(id, ".badge")))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    let (breach_class, pending_class) = (
        badge_class("custom:61").await,
        badge_class("custom:62").await,
    );
    assert!(
        breach_class.split(' ').any(|c| c == "badge-breaching"),
        "{breach_class}"
    );
    assert!(
        pending_class.split(' ').any(|c| c == "badge-pending"),
        "{pending_class}"
    );
    let breach_glyph = text_of(client, &card("custom:61", ".badge-glyph")).await;
    let pending_glyph = text_of(client, &card("custom:62", ".badge-glyph")).await;
    assert!(
        !breach_glyph.is_empty() && !pending_glyph.is_empty() && breach_glyph != pending_glyph,
        "glyphs: {breach_glyph:?} and {pending_glyph:?}"
    );
    // The next step of a breach: its recommendation.
    let next = text_of(client, &card("custom:61", ".card-next")).await;
    assert!(next.starts_with("Next: "), "{next}");

    // The big number is the judged statistic, read against the API's over both phases of
    // the alternation (the live sample beside it is half the time the low value).
    for _ in 0..8 {
        for (id, ..) in PUSHED {
            let api = api_cards(&server);
            let judged = api
                .iter()
                .find(|c| c["id"] == id)
                .and_then(|c| c["judged"].as_f64())
                .unwrap_or_else(|| panic!("{id} has a judged value: {api:?}"));
            let shown = text_of(client, &card(id, ".value")).await;
            assert!(
                shows(&shown, judged),
                "{id}: the card shows {shown:?}, the status judged {judged}"
            );
            let now = text_of(client, &card(id, ".card-now")).await;
            assert!(now.starts_with("now "), "{id}: {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The summary counts what the API says, read until a moment when the host's own
    // cards held still between the two reads.
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let expected = expected_counts(&api_cards(&server));
        let shown = client
            .execute(
                "return [...document.querySelectorAll('#summary .summary-item')]
                   .map(a => [a.id, Number(a.querySelector('.summary-count').textContent)]);",
                vec![],
            )
            .await
            .unwrap();
        let shown: BTreeMap<String, u64> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_u64().unwrap(),
                )
            })
            .collect();
        if shown == expected {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the summary shows {shown:?}, the API's states make {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for key in ["summary-breaching", "summary-pending", "summary-within"] {
        assert!(counts[key] >= 1, "{key}: {counts:?}");
    }

    // Worst first: inside each group by state, groups by their worst card; the pushed
    // three in the custom group in the order breaching, pending, within target.
    let groups = client
        .execute(
            "return [...document.querySelectorAll('.card-group')].map(g => [g.dataset.group,
               [...g.querySelectorAll('article.card')].map(c => [c.dataset.resource, c.dataset.state])]);",
            vec![],
        )
        .await
        .unwrap();
    let rank = |state: &serde_json::Value| {
        serde_json::from_value::<TargetState>(state.clone())
            .unwrap_or_else(|err| panic!("{state}: {err}"))
            .rank()
    };
    let mut worst_of_groups = Vec::new();
    for group in groups.as_array().unwrap() {
        let cards = group[1].as_array().unwrap();
        let ranks: Vec<u8> = cards.iter().map(|c| rank(&c[1])).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{group}");
        worst_of_groups.push(ranks[0]);
        if group[0] == "custom" {
            let ids: Vec<&str> = cards.iter().map(|c| c[0].as_str().unwrap()).collect();
            assert_eq!(ids, ["custom:61", "custom:62", "custom:63"], "{group}");
        }
    }
    assert!(worst_of_groups.windows(2).all(|w| w[0] <= w[1]), "{groups}");
    browser.screenshot("overview-states.png").await;

    browser.close().await;
    stop.store(true, Ordering::Relaxed);
    let _ = pusher.join();
}

/// A queue that has grown steadily for fifty minutes says on its card when it will cross
/// its target, with the interval, in the API and on the page; a flat one says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_says_when_a_rising_metric_will_cross_its_target() {
    let server = Perfpilot::start(&["--push-create-resources"]);
    // Fifty minutes: "custom:71" rises one a minute to 60 now, "custom:72" stays near 20;
    // both with a small deterministic wobble.
    let times = tests::recent_times(50);
    let now = *times.last().unwrap();
    let wobble = |t: i64| ((t / 1000) % 7) as f64 * 0.5;
    tests::push_series(&server, "custom:71", "depth", &times, |t| {
        60.0 - (now - t) as f64 / 60_000.0 + wobble(t)
    });
    tests::push_series(&server, "custom:72", "depth", &times, |t| 20.0 + wobble(t));
    for id in ["custom:71", "custom:72"] {
        tests::set_target(&server, id, "depth", 100.0, 0);
    }

    // 40 minutes to go at one a minute: said with an interval around it.
    let card = server.card("custom:71", 20, "the time to breach", |c| {
        c["forecast"].is_string()
    });
    let forecast = card["forecast"].as_str().unwrap();
    assert!(forecast.starts_with("breaches 100 in ~"), "{forecast}");
    let minutes: Vec<u64> = forecast
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // "breaches 100 in ~40 m (37 m – 43 m)": the estimate, then the interval around it
    // (left out when it rounds to the estimate itself).
    assert!(
        (35..=45).contains(&minutes[1]) && matches!(minutes.len(), 2 | 4),
        "{forecast}"
    );
    if let [_, eta, earliest, latest] = minutes[..] {
        assert!(earliest <= eta && eta <= latest, "{forecast}");
    }
    let flat = server.card("custom:72", 20, "the flat card judged", |c| {
        c["target_state"] == "within_target"
    });
    assert!(flat.get("forecast").is_none(), "{flat}");

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    let shown = eventually_text(
        client,
        "article.card[data-resource='custom:71'] .card-forecast",
        "the trend on the card",
        |t| t.starts_with("Trend: breaches 100 in ~"),
    )
    .await;
    assert!(shown.ends_with(')'), "{shown}");
    let flat_lines = client
        .find_all(fantoccini::Locator::Css(
            "article.card[data-resource='custom:72'] .card-forecast",
        ))
        .await
        .unwrap();
    assert!(flat_lines.is_empty(), "a flat metric has no trend line");
    the_resource_page_shows_the_trend(&browser, &server).await;
    browser.emulate_viewport(1280, 800, false).await;
    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    // To look at: the card at a desktop's and a phone's width, light and dark.
    browser
        .screenshots_of(
            "article.card[data-resource='custom:71']",
            "overview-forecast",
        )
        .await;
    browser.close().await;
}

/// The trend of `custom:71` on its resource page: the status line's words, and the
/// chart's forecast line (screenshots at a desktop's and a phone's width, both themes).
async fn the_resource_page_shows_the_trend(browser: &Browser, server: &Perfpilot) {
    let client = &browser.client;
    // The resource page's status line says the same.
    client
        .goto(&server.url("/resource?id=custom%3A71&metric=depth"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    let on_page = eventually_text(
        client,
        "#resource-status .resource-forecast",
        "the trend on the resource page",
        |t| !t.is_empty(),
    )
    .await;
    assert!(on_page.contains("Trend: breaches 100 in ~"), "{on_page}");
    // The chart draws it: a dashed line to the target on a stretch of future.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let drawn = client
            .find(fantoccini::Locator::Id("chart"))
            .await
            .unwrap()
            .attr("data-forecast")
            .await
            .unwrap();
        if drawn.as_deref() == Some("drawn") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chart draws no forecast line"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshots_of("#chart", "resource-forecast").await;
}

/// "What changed" (issue 28): when an alert fires, the Alerts page lists the series whose
/// level moved the most around its start — the stepped one, not the flat one — each a
/// link to its chart; the same from `/api/what_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_says_what_changed_around_it() {
    let server = Perfpilot::start(&["--push-create-resources"]);
    // Forty minutes: "custom:91" steps from about 20 to about 80 four minutes ago;
    // "custom:92" stays near 20.
    tests::push_a_step_and_a_flat_series(&server, "custom:91", "custom:92", "depth");
    tests::set_target(&server, "custom:91", "depth", 50.0, 0);
    let started = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, view) = server.get("/api/alerts");
            let view = body_json(&view);
            if let Some(at) = view["firing"][0]["started_ms"].as_i64() {
                break at;
            }
            assert!(Instant::now() < deadline, "no alert fired: {view}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (status, moved) = server.get(&format!("/api/what_changed?at={started}"));
    assert_eq!(status, 200, "{moved}");
    let moved = body_json(&moved);
    assert_eq!(moved[0]["resource"], "custom:91", "{moved}");
    let shift = &moved[0]["shift"];
    assert!(
        (shift["before"].as_f64().unwrap() - 20.8).abs() < 1.0
            && (shift["after"].as_f64().unwrap() - 80.8).abs() < 1.0,
        "{moved}"
    );
    assert!(
        moved
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["resource"] != "custom:92"),
        "the flat series did not change: {moved}"
    );

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/alerts")).await.unwrap();
    browser.wait_for_hydration().await;
    let listed = eventually_text(
        client,
        "#what-changed li[data-resource='custom:91']",
        "the stepped series under What changed",
        |t| !t.is_empty(),
    )
    .await;
    assert!(listed.contains(" → ") && listed.contains("σ"), "{listed}");
    browser
        .screenshots_of("#what-changed", "alerts-what-changed")
        .await;
    browser.close().await;
}
