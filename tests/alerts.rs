//! Alerts end to end: a real perfpilot, a real Alertmanager 0.25 (Debian's), and local
//! HTTP receivers standing in for a webhook endpoint and a Slack-compatible one. A pushed
//! custom metric is driven through exact values, so every threshold is crossed on purpose.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tests::{body_json, http_post_json, http_request, Alertmanager, Perfpilot, Receiver, TempDir};

const SECRET: &str = "alert-signing-secret-0123";
const SLACK_TOKEN: &str = "T0000/B0000/XXXXslackTOKEN";

/// Pushes `value` for `custom:<id>` every 250 ms until dropped.
struct Pusher {
    value: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Pusher {
    fn start(server: &Perfpilot, id: u32, value: f32) -> Pusher {
        let pusher = Pusher {
            value: Arc::new(AtomicU32::new(value.to_bits())),
            stop: Arc::default(),
        };
        let (shared, stop, addr) = (pusher.value.clone(), pusher.stop.clone(), server.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                let v = f32::from_bits(shared.load(Ordering::Relaxed));
                let body = format!(
                    r#"{{"samples":[{{"resource":"custom:{id}","metric":"latency","value":{v},"timestamp":{now}}}]}}"#
                );
                let _ = std::panic::catch_unwind(|| http_post_json(addr, "/api/push", &body));
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        pusher
    }

    fn set(&self, value: f32) {
        self.value.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `latency ≤ 50` judged on the last second, breaching after `for_secs`.
fn set_quick_target(server: &Perfpilot, id: u32, for_secs: u32) {
    let resource = format!("custom:{id}");
    server.card(&resource, 20, "the pushed resource", |_| true);
    tests::set_window(server, &resource, 1);
    tests::set_target(server, &resource, "latency", 50.0, for_secs);
}

fn config(dir: &TempDir, channels: &str) -> String {
    let path = dir.0.join("perfpilot.toml");
    std::fs::write(
        &path,
        format!(
            "[actions.secrets]\nhook = \"{SECRET}\"\n\n[alerts]\nresolve_margin_pct = 10\n\n{channels}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn alerts(server: &Perfpilot) -> serde_json::Value {
    let (status, body) = server.get("/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    body_json(&body)
}

fn keys(requests: &[tests::Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap_or_default().to_owned())
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)] // 202 lines today; split before it grows
fn alerts_fire_and_resolve_on_every_channel_without_flapping() {
    let rx = Receiver::start();
    let am = Alertmanager::start(&format!("http://127.0.0.1:{}/am", rx.port));
    let dir = TempDir::new("perfpilot-alerts");
    let config = config(
        &dir,
        &format!(
            r#"
[[alert_channel]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{rx}/hook"
secret = "hook"

[[alert_channel]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:{rx}/services/{SLACK_TOKEN}"
resources = ["custom:*"]

[[alert_channel]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:{am}"

[[alert_channel]]
name = "elsewhere"
kind = "webhook"
url = "http://127.0.0.1:{rx}/elsewhere"
types = ["cpu"]

[[alert_channel]]
name = "typed"
kind = "webhook"
url = "http://127.0.0.1:{rx}/typed"
types = ["custom"]
"#,
            rx = rx.port,
            am = am.port
        ),
    );
    let log = dir.0.join("perfpilot.log");
    let data = dir.0.join("data");
    let port = tests::free_port();
    let public = format!("http://127.0.0.1:{port}/");
    let server = Perfpilot::start_logged_on(
        port,
        &log,
        &[
            "--config",
            &config,
            "--data-dir",
            data.to_str().unwrap(),
            "--push-create-resources",
            "--public-url",
            &public,
            "--metrics-on-main-listener",
        ],
    );
    let pusher = Pusher::start(&server, 1, 30.0);
    set_quick_target(&server, 1, 2);

    // Wobbling inside the band (breach above 55, clear at 45 or below) for 8 s: nothing.
    for i in 0..32 {
        pusher.set(if i % 2 == 0 { 46.0 } else { 54.0 });
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        rx.on("/").is_empty(),
        "a wobble inside the band notified: {:?}",
        rx.on("/")
    );
    assert_eq!(alerts(&server)["firing"], serde_json::json!([]));

    // A real breach: pending for 2 s, then firing on every channel that routes it.
    pusher.set(90.0);
    let hook = rx.wait_for("/hook", 20, "the firing webhook", |r| !r.is_empty());
    let firing = hook[0].json();
    assert_eq!(firing["kind"], "firing", "{firing}");
    assert_eq!(firing["resource"], "custom:1");
    assert_eq!(firing["channel"], "hook");
    assert!(
        firing["summary"].as_str().unwrap().contains("> target 50"),
        "{firing}"
    );
    let link = format!("{public}resource?id=custom%3A1");
    assert_eq!(firing["url"], link.as_str());
    // The type is the type's word, the id stays `resource`; an ungrouped resource is a
    // group of one.
    assert_eq!(firing["resource_type"], "custom", "{firing}");
    assert_eq!(firing["group"], "custom:1", "{firing}");
    let signature = hook[0].header("X-Perfpilot-Signature").unwrap();
    let expected = connectors::actuators::webhook::sign(SECRET.as_bytes(), hook[0].body.as_bytes());
    assert_eq!(
        signature,
        format!("sha256={expected}"),
        "signed like action webhooks"
    );
    assert_eq!(hook[0].header("Idempotency-Key"), firing["key"].as_str());
    let chat = rx.wait_for("/services/", 10, "the Slack message", |r| !r.is_empty());
    let text = chat[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("*FIRING*") && text.contains("custom:1"),
        "{text}"
    );
    // Alertmanager holds it, with perfpilot's labels and the link back…
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let held = am.alerts();
        if held.as_array().is_some_and(|a| !a.is_empty()) {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never got the alert"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        held[0]["labels"]["alertname"], "PerfpilotTargetBreached",
        "{held}"
    );
    assert_eq!(held[0]["labels"]["resource"], "custom:1");
    assert_eq!(held[0]["labels"]["resource_type"], "custom", "{held}");
    assert_eq!(held[0]["labels"]["group"], "custom:1", "{held}");
    assert_eq!(held[0]["status"]["state"], "active");
    assert_eq!(held[0]["generatorURL"], link.as_str());
    // …and forwarded it as firing.
    rx.wait_for("/am", 10, "Alertmanager's firing notification", |r| {
        r.iter().any(|r| r.json()["status"] == "firing")
    });
    let view = alerts(&server);
    assert_eq!(view["firing"][0]["resource"], "custom:1", "{view}");
    assert!(
        rx.on("/elsewhere").is_empty(),
        "a channel for cpu only got a custom alert"
    );
    // A channel for type `custom` gets every custom resource's alerts.
    let typed = rx.wait_for("/typed", 10, "the channel for type custom", |r| {
        !r.is_empty()
    });
    let typed = typed[0].json();
    assert_eq!(typed["kind"], "firing", "{typed}");
    assert_eq!(typed["resource"], "custom:1", "{typed}");
    assert_eq!(typed["resource_type"], "custom", "{typed}");

    // Back under the target but not past the margin (47 > 45): still firing.
    pusher.set(47.0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rx.on("/hook").len(),
        1,
        "no resolve inside the margin: {:?}",
        keys(&rx.on("/hook"))
    );
    assert_eq!(alerts(&server)["firing"][0]["resource"], "custom:1");

    // Recovered: "resolved" everywhere, at once.
    pusher.set(30.0);
    let hook = rx.wait_for("/hook", 15, "the resolved webhook", |r| r.len() >= 2);
    let resolved = hook[1].json();
    assert_eq!(resolved["kind"], "resolved", "{resolved}");
    assert_eq!(
        resolved["started_ms"], firing["started_ms"],
        "the same episode"
    );
    assert!(
        resolved["summary"]
            .as_str()
            .unwrap()
            .starts_with("resolved: "),
        "{resolved}"
    );
    rx.wait_for("/services/", 10, "the Slack resolution", |r| {
        r.iter().any(|r| {
            r.json()["text"]
                .as_str()
                .unwrap_or_default()
                .contains("*RESOLVED*")
        })
    });
    rx.wait_for("/am", 15, "Alertmanager's resolved notification", |r| {
        r.iter().any(|r| r.json()["status"] == "resolved")
    });
    let view = alerts(&server);
    assert_eq!(view["firing"], serde_json::json!([]), "{view}");
    assert_eq!(view["history"][0]["resource"], "custom:1", "{view}");
    assert!(view["history"][0]["ended_ms"].is_number(), "{view}");

    // Each notification once, in order.
    let hook_keys = keys(&rx.on("/hook"));
    let unique: std::collections::BTreeSet<_> = hook_keys.iter().collect();
    assert_eq!(unique.len(), hook_keys.len(), "a key twice: {hook_keys:?}");
    assert!(
        hook_keys[0].ends_with("/hook/firing/0") && hook_keys[1].ends_with("/hook/resolved"),
        "{hook_keys:?}"
    );

    // The signing secret and the Slack URL's token are nowhere to be read.
    let (_, page) = server.get("/alerts");
    let (_, api) = server.get("/api/v1/alerts");
    let (_, audit) = server.get("/api/audit");
    let (_, metrics) = server.get("/metrics");
    drop(pusher);
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    for (what, text) in [
        ("page", &page),
        ("api", &api),
        ("audit", &audit),
        ("metrics", &metrics),
        ("log", &logged),
    ] {
        for secret in [SECRET, SLACK_TOKEN, "slackTOKEN"] {
            assert!(
                !text.contains(secret),
                "the {what} shows a secret ({secret})"
            );
        }
    }
    assert!(
        api.contains("http://127.0.0.1:") && api.contains("/…"),
        "channels are listed by host: {api:.600}"
    );
}

/// `HH:MM-HH:MM` quiet hours (UTC) from this minute for ten minutes, and when they end
/// (unix ms). The test never reaches their end: that they release what they held is the
/// unit test `quiet_hours_hold_a_notification_to_their_end_without_piling_up_repeats` in
/// server/src/state/alerting/tests.rs.
fn quiet_hours_from_now() -> (String, i64) {
    let minute = tests::now_ms() / 60_000;
    // Ends 9–10 minutes from now: long after the checks, even on a slow machine.
    let end = minute + 10;
    let hhmm = |m: i64| format!("{:02}:{:02}", m % 1440 / 60, m % 60);
    (format!("{}-{}", hhmm(minute), hhmm(end)), end * 60_000)
}

/// Silences, acknowledgements, repeats, quiet hours and a failing channel on the real
/// binary, with no wait longer than a repeat interval. What takes minutes of wall time (a
/// silence running out, quiet hours ending, no repeats after an acknowledgement) is tested
/// in server/src/state/alerting/tests.rs, on a clock moved by hand.
#[test]
#[allow(clippy::too_many_lines)] // 194 lines today; split before it grows
fn silences_acknowledgements_repeats_quiet_hours_and_failed_deliveries() {
    let rx = Receiver::start();
    let broken = Receiver::start();
    broken.set_status(404);
    let (quiet, release_ms) = quiet_hours_from_now();
    let dir = TempDir::new("perfpilot-alert-routing");
    let config = config(
        &dir,
        &format!(
            r#"
[[alert_channel]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{rx}/hook"
repeat_interval_secs = 10

[[alert_channel]]
name = "night"
kind = "webhook"
url = "http://127.0.0.1:{rx}/night"
quiet_hours = "{quiet}"
repeat_interval_secs = 10

[[alert_channel]]
name = "broken"
kind = "webhook"
url = "http://127.0.0.1:{broken}/gone"
"#,
            rx = rx.port,
            broken = broken.port
        ),
    );
    let server = Perfpilot::start(&["--config", &config, "--push-create-resources"]);
    let pusher = Pusher::start(&server, 2, 30.0);
    set_quick_target(&server, 2, 1);

    // Bad input names the field and the rule; nothing is created.
    let silence = |body: &str| http_post_json(server.addr, "/api/v1/silences", body);
    let (status, answer) = silence(r#"{"matcher":"custom:*","duration":"soon","comment":"x"}"#);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"field\":\"duration\""), "{answer}");
    let (status, answer) = silence(r#"{"matcher":"custom:*","duration":"1h","comment":"  "}"#);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"field\":\"comment\""), "{answer}");
    let (status, answer) = silence(r#"{"matcher":"custom:*","for":"1h","comment":"x"}"#);
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/alerts/custom%3A2/ack",
        r#"{"comment":"x"}"#,
    );
    assert_eq!(status, 404, "nothing fires yet: {answer}");
    let (status, answer) = http_post_json(server.addr, "/api/v1/alert-channels/nope/test", "");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(alerts(&server)["silences"], serde_json::json!([]));

    // "Send test" answers what the receiver said, and the broken channel why it failed.
    let (status, answer) = http_post_json(server.addr, "/api/v1/alert-channels/hook/test", "");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("HTTP 200"), "{answer}");
    assert_eq!(rx.on("/hook")[0].json()["kind"], "test");
    let (status, answer) = http_post_json(server.addr, "/api/v1/alert-channels/broken/test", "");
    assert_eq!(status, 502, "{answer}");
    assert!(answer.contains("HTTP 404"), "{answer}");

    // Silenced (for an hour: it is ended by hand below, never runs out here): firing, shown
    // as silenced, and nobody is told…
    let (status, answer) =
        silence(r#"{"matcher":"custom:*","duration":"1h","comment":"load test in progress"}"#);
    assert_eq!(status, 200, "{answer}");
    let silence_id = body_json(&answer)["id"].as_i64().unwrap();
    pusher.set(90.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let view = loop {
        let view = alerts(&server);
        if view["firing"].as_array().is_some_and(|f| !f.is_empty()) {
            break view;
        }
        assert!(Instant::now() < deadline, "never fired: {view}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(view["firing"][0]["silenced_by"], silence_id, "{view}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rx.on("/hook").len(),
        1,
        "only the test so far: {:?}",
        keys(&rx.on("/hook"))
    );

    // …until the silence ends (by hand here; one that runs out is the unit test
    // `a_silence_holds_notifications_back_until_it_ends_then_they_go_at_once` in
    // server/src/state/alerting/tests.rs): what it held back is sent then.
    let (status, answer) = http_request(
        server.addr,
        "DELETE",
        &format!("/api/v1/silences/{silence_id}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{answer}");
    let hook = rx.wait_for("/hook", 15, "the firing after the silence", |r| {
        r.len() >= 2
    });
    let firing = hook[1].json();
    assert_eq!(firing["kind"], "firing");
    // Without --public-url the link is on the listen address; the type is its word; an
    // ungrouped resource is a group of one.
    assert_eq!(
        firing["url"],
        format!("http://{}/resource?id=custom%3A2", server.addr),
        "{firing}"
    );
    assert_eq!(firing["resource_type"], "custom", "{firing}");
    assert_eq!(firing["group"], "custom:2", "{firing}");
    let view = alerts(&server);
    assert_eq!(
        view["firing"][0]["silenced_by"],
        serde_json::Value::Null,
        "{view}"
    );
    assert_eq!(view["silences"][0]["active"], false, "{view}");
    assert_eq!(view["silences"][0]["expired_by"], "anonymous", "{view}");

    // Not acknowledged: it repeats (every 10 s on this channel)…
    let hook = rx.wait_for("/hook", 20, "a repeat", |r| r.len() >= 3);
    assert!(
        keys(&hook)[2].ends_with("/hook/firing/1"),
        "{:?}",
        keys(&hook)
    );
    // …acknowledged: it stops (the unit test
    // `an_alert_repeats_every_interval_until_it_is_acknowledged`). An acknowledgement names
    // the episode the person saw: one that is not the firing one is refused.
    let started_ms = alerts(&server)["firing"][0]["started_ms"].as_i64().unwrap();
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/alerts/custom%3A2/ack",
        &format!(
            r#"{{"comment":"old news","started_ms":{}}}"#,
            started_ms - 1
        ),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("fired again"), "{answer}");
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/alerts/custom%3A2/ack",
        &format!(r#"{{"comment":"looking into it","started_ms":{started_ms}}}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let acked = alerts(&server);
    assert_eq!(acked["firing"][0]["acked_by"], "anonymous", "{acked}");

    // The broken channel's delivery failed for good, with the receiver's answer.
    let view = alerts(&server);
    let broken_channel = view["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "broken")
        .unwrap()
        .clone();
    assert!(
        broken_channel["failed"].as_u64().unwrap() >= 1,
        "{broken_channel}"
    );
    assert!(
        broken_channel["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 404"),
        "{broken_channel}"
    );

    // Quiet hours: held, and shown as held until their end. The release itself is the unit
    // test `quiet_hours_hold_a_notification_to_their_end_without_piling_up_repeats`.
    let night: Vec<_> = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == "night")
        .cloned()
        .collect();
    // One per episode (a loaded machine can make the pushed value late, the alert resolve
    // and fire again): no repeats piled up behind a held one though its interval passed.
    let episodes = view["history"].as_array().map_or(0, Vec::len);
    assert!(
        !night.is_empty() && night.len() <= episodes,
        "{} held for {episodes} episodes: {view}",
        night.len()
    );
    assert_eq!(
        night[0]["due_ms"], release_ms,
        "held until the end of the quiet hours"
    );
    assert!(
        tests::now_ms() < release_ms,
        "the test outlasted its quiet hours"
    );
    assert_eq!(night[0]["state"], "pending", "{view}");
    assert!(rx.on("/night").is_empty(), "sent during quiet hours");

    // An ended silence cannot be ended again; an id that is no silence is refused.
    for id in [silence_id.to_string(), "999".into(), "x".into()] {
        let (status, answer) = http_request(
            server.addr,
            "DELETE",
            &format!("/api/v1/silences/{id}"),
            &[],
            "",
        );
        assert!(status == 404 || status == 400, "{id}: {status} {answer}");
    }

    // Audited: the silence, its end, the acknowledgement and the test sends.
    let (_, audit) = server.get("/api/audit");
    for kind in [
        "\"silence\"",
        "\"unsilence\"",
        "\"acknowledge\"",
        "\"channel_test\"",
        "sent a test notification to broken",
    ] {
        assert!(audit.contains(kind), "{kind} not audited: {audit:.2000}");
    }
}

#[test]
fn deliveries_survive_kill_9_and_are_sent_once() {
    let rx = Receiver::start();
    rx.set_status(503);
    let dir = TempDir::new("perfpilot-alert-durable");
    let config = config(
        &dir,
        &format!(
            "[[alert_channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n",
            rx.port
        ),
    );
    let data = dir.0.join("data");
    let port = tests::free_port();
    let args = ["--config", config.as_str(), "--push-create-resources"];
    let server = Perfpilot::start_with_data_on(port, &data, &args);
    let pusher = Pusher::start(&server, 3, 30.0);
    set_quick_target(&server, 3, 1);
    pusher.set(90.0);
    // The receiver is down: the firing notification is retried, with the reason shown.
    rx.wait_for("/hook", 20, "a first attempt", |r| r.len() >= 2);
    let view = alerts(&server);
    let delivery = &view["deliveries"][0];
    assert_eq!(delivery["state"], "pending", "{view}");
    assert!(
        delivery["detail"].as_str().unwrap().contains("HTTP 503"),
        "{view}"
    );
    let started_ms = view["firing"][0]["started_ms"].clone();

    // kill -9 while it waits; the receiver comes back; perfpilot comes back.
    server.kill_9();
    rx.set_status(200);
    let server = Perfpilot::start_with_data_on(port, &data, &args);
    let hook = rx.wait_for("/hook", 20, "the delivery after the restart", |r| {
        r.iter().any(|r| r.status == 200)
    });
    let firing = hook.iter().find(|r| r.status == 200).unwrap().json();
    assert_eq!(firing["kind"], "firing");
    assert_eq!(
        firing["started_ms"], started_ms,
        "the same alert after the restart"
    );

    // Killed again while firing: it resolves after the restart as the same episode.
    server.kill_9();
    let server = Perfpilot::start_with_data_on(port, &data, &args);
    pusher.set(30.0);
    let hook = rx.wait_for("/hook", 20, "the resolution", |r| {
        r.iter()
            .any(|r| r.status == 200 && r.json()["kind"] == "resolved")
    });
    let resolved = hook
        .iter()
        .find(|r| r.status == 200 && r.json()["kind"] == "resolved")
        .unwrap()
        .json();
    assert_eq!(resolved["started_ms"], started_ms);

    // Exactly once per key among accepted deliveries; retries carry the same key.
    std::thread::sleep(Duration::from_secs(2));
    let accepted: Vec<String> = keys(
        &rx.on("/hook")
            .into_iter()
            .filter(|r| r.status == 200)
            .collect::<Vec<_>>(),
    );
    let unique: std::collections::BTreeSet<_> = accepted.iter().collect();
    assert_eq!(unique.len(), accepted.len(), "sent twice: {accepted:?}");
    assert_eq!(accepted.len(), 2, "firing and resolved: {accepted:?}");
    let all_keys: std::collections::BTreeSet<_> = keys(&rx.on("/hook")).into_iter().collect();
    assert_eq!(all_keys.len(), 2, "retries reuse their key: {all_keys:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_follows_an_alert_live_and_silences_it() {
    use fantoccini::Locator;
    use tests::{click, eventually_text, text_of, Browser};

    let rx = Receiver::start();
    let dir = TempDir::new("perfpilot-alerts-page");
    let config = config(
        &dir,
        &format!(
            "[[alert_channel]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{}/services/{SLACK_TOKEN}\"\n",
            rx.port
        ),
    );
    let server = Perfpilot::start(&["--config", &config, "--push-create-resources"]);
    let pusher = Pusher::start(&server, 4, 30.0);
    set_quick_target(&server, 4, 6);

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/alerts")).await.unwrap();
    browser.wait_for_hydration().await;
    text_of(client, "#alerts-firing-empty").await;
    let channel = text_of(client, "#alert-channels tr[data-channel='ops']").await;
    assert!(
        channel.contains("http://127.0.0.1:") && !channel.contains("TOKEN"),
        "{channel}"
    );

    // Pending, live, with how long it has breached; then firing, with the nav badge.
    pusher.set(90.0);
    let pending = eventually_text(
        client,
        "#alerts-pending tr[data-resource='custom:4']",
        "a pending row",
        |t| t.contains("breaching for"),
    )
    .await;
    assert!(pending.contains("of 6 s"), "{pending}");
    browser.screenshot("alerts-pending.png").await;
    let firing = eventually_text(
        client,
        "#alerts-firing tr[data-resource='custom:4']",
        "the firing row",
        |t| t.contains("notifying"),
    )
    .await;
    assert!(firing.contains("> target 50"), "{firing}");
    eventually_text(client, "#nav-firing", "the nav badge", |t| t == "1").await;
    rx.wait_for("/services/", 10, "the Slack message", |r| !r.is_empty());

    // A silence from the form; the firing row says so.
    // Buttons are scrolled to the middle first: the sticky top bar would take a click on
    // one scrolled to the top.
    let press = |css: &'static str| async move {
        client
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
                vec![css.into()],
            )
            .await
            .unwrap();
        click(client, Locator::Css(css)).await;
    };
    let set = |css: &'static str, text: &'static str| async move {
        let input = client.find(Locator::Css(css)).await.unwrap();
        input
            .send_keys(&format!("\u{e009}a\u{e000}{text}"))
            .await
            .unwrap();
    };
    set("#silence-matcher", "custom:*").await;
    set("#silence-duration", "1h").await;
    set("#silence-comment", "deploying v2.4").await;
    press("#silence-create").await;
    let message = text_of(client, "#silence-message").await;
    assert!(
        message.starts_with("Silence #") && message.ends_with("created."),
        "{message}"
    );
    eventually_text(
        client,
        "#alerts-firing tr[data-resource='custom:4'] .alert-state",
        "silenced",
        |t| t.starts_with("silenced (#"),
    )
    .await;
    let row = text_of(client, "#silences tbody tr").await;
    assert!(
        row.contains("custom:*") && row.contains("deploying v2.4") && row.contains("active"),
        "{row}"
    );

    // Acknowledged, then the silence ended by hand.
    press("#alerts-firing .alert-ack").await;
    press("#silences .silence-end").await;
    eventually_text(
        client,
        "#silences tbody tr .silence-state",
        "the ended silence",
        |t| t == "ended by anonymous",
    )
    .await;
    eventually_text(
        client,
        "#alerts-firing tr[data-resource='custom:4'] .alert-state",
        "acknowledged",
        |t| t == "acknowledged by anonymous",
    )
    .await;

    let (_, audit) = server.get("/api/audit");
    assert!(
        audit.contains("\"unsilence\"") && audit.contains("ended the silence of \\\"custom:*\\\""),
        "{audit:.2000}"
    );

    // "Send test" says what the receiver answered.
    press("#alert-channels .channel-test").await;
    let result = text_of(client, "#channel-test-result").await;
    assert!(
        result.starts_with("ops: delivered") && result.contains("HTTP 200"),
        "{result}"
    );
    browser.screenshot("alerts.png").await;

    // Recovered: gone from firing, in the history.
    pusher.set(30.0);
    text_of(client, "#alerts-firing-empty").await;
    let history = text_of(client, "#alert-history tr[data-resource='custom:4']").await;
    assert!(history.contains("resolved: "), "{history}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // 124 lines today; split before it grows
async fn reports_cover_the_period_and_go_out_on_schedule() {
    let rx = Receiver::start();
    let dir = TempDir::new("perfpilot-report");
    let config = config(
        &dir,
        &format!(
            "[[alert_channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n\n[report]\nevery = \"1m\"\nchannels = [\"hook\"]\n",
            rx.port
        ),
    );
    let server = Perfpilot::start(&["--config", &config, "--push-create-resources"]);
    let pusher = Pusher::start(&server, 5, 30.0);
    set_quick_target(&server, 5, 1);
    pusher.set(90.0);
    rx.wait_for("/hook", 20, "the firing", |r| {
        r.iter().any(|r| r.json()["kind"] == "firing")
    });
    pusher.set(20.0);
    rx.wait_for("/hook", 20, "the resolution", |r| {
        r.iter().any(|r| r.json()["kind"] == "resolved")
    });

    // Bad periods are refused naming the field.
    for (query, field) in [
        ("period=2w", "period"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("format=pdf", "format"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/report?{query}"));
        assert_eq!(status, 400, "{query}: {body:.300}");
        assert!(
            body.contains(&format!("\"field\":\"{field}\"")),
            "{query}: {body:.600}"
        );
    }

    // The HTML report: one document, the resource's compliance, its alert, its chart.
    let (status, response) = server.get("/api/v1/report?period=24h");
    assert_eq!(status, 200, "{response:.500}");
    assert!(
        response.contains("content-type: text/html"),
        "{response:.400}"
    );
    assert!(
        response.contains("content-security-policy: default-src 'none'"),
        "{response:.600}"
    );
    let html = response.split_once("\r\n\r\n").unwrap().1;
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("Performance report"));
    assert!(!html.contains("<script"), "self-contained and inert");
    let row_start = html
        .find("<tr data-resource=\"custom:5\">")
        .expect("a compliance row");
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    assert!(row.contains("p95 latency ≤ 50"), "{row}");
    let compliance: f64 = row
        .split("<td class=\"num")
        .nth(1)
        .and_then(|cell| cell.split('>').nth(1))
        .and_then(|text| {
            text.trim_end_matches("</td")
                .trim_end_matches(" %")
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("a compliance number in {row}"));
    assert!(
        (0.0..100.0).contains(&compliance),
        "it breached, so below 100 %: {row}"
    );
    assert!(
        html.contains("<figure data-resource=\"custom:5\"><svg"),
        "an inline chart"
    );
    let alerts = &html[html.find("id=\"alerts\"").unwrap()..];
    assert!(
        alerts.contains("custom:5") && alerts.contains("resolved: "),
        "{alerts:.800}"
    );

    // The same numbers as CSV.
    let (status, response) = server.get("/api/v1/report?period=24h&format=csv");
    assert_eq!(status, 200);
    assert!(
        response.contains("content-disposition: attachment; filename=\"perfpilot-report-"),
        "{response:.500}"
    );
    let csv = response.split_once("\r\n\r\n").unwrap().1;
    assert!(
        csv.starts_with("table,resource,name,value,unit,detail\n"),
        "{csv:.200}"
    );
    let line = csv
        .lines()
        .find(|l| l.starts_with("compliance,custom:5,compliance_pct,"))
        .unwrap_or_else(|| panic!("{csv:.1500}"));
    let value: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
    assert!(
        (value - compliance).abs() < 0.06,
        "HTML {compliance} vs CSV {line}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("alert,custom:5,lasted_s,")),
        "{csv:.1500}"
    );

    // Downloaded and opened in a browser, as a person would.
    let browser = tests::Browser::start().await;
    browser
        .client
        .goto(&server.url("/api/v1/report?period=24h"))
        .await
        .unwrap();
    let title = browser.client.title().await.unwrap();
    assert!(title.starts_with("perfpilot report"), "{title}");
    browser.screenshot("report.png").await;
    browser.close().await;

    // Every minute (this configuration) the report of the minute that ended goes out; the
    // first at start-up, which catches up the send time that just passed, so this does not
    // wait for the next one. When reports are due (once per send time, caught up for ten
    // minutes, then skipped) is the unit test in server/src/report.rs.
    let hook = rx.wait_for("/hook", 75, "a scheduled report", |r| {
        r.iter().any(|r| r.json()["kind"] == "report")
    });
    let report = hook
        .iter()
        .find(|r| r.json()["kind"] == "report")
        .unwrap()
        .json();
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Performance report ") && summary.contains("target compliance"),
        "{summary}"
    );
    drop(pusher);
}

/// BENCHMARKS.md "Alert latency": time from a breach having lasted its `for` to the
/// firing notification at the receiver, and from recovery to "resolved", over 50 trials.
/// A measurement, not a limit: run it by hand.
/// `cargo test -p tests --test alerts -- --ignored --nocapture alert_latency`
#[test]
#[ignore]
fn alert_latency() {
    let rx = Receiver::start();
    let dir = TempDir::new("perfpilot-alert-latency");
    let config = config(
        &dir,
        &format!(
            "[[alert_channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n",
            rx.port
        ),
    );
    let server = Perfpilot::start(&["--config", &config, "--push-create-resources"]);
    let push = |value: f32| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let body = format!(
            r#"{{"samples":[{{"resource":"custom:9","metric":"latency","value":{value},"timestamp":{now}}}]}}"#
        );
        http_post_json(server.addr, "/api/push", &body);
    };
    let pusher = Pusher::start(&server, 9, 30.0);
    let for_secs = 2;
    set_quick_target(&server, 9, for_secs);
    std::thread::sleep(Duration::from_secs(3));
    let (mut fire, mut resolve) = (Vec::new(), Vec::new());
    // The notification path alone: the alert's decision (its time in the body) → received.
    let (mut fire_path, mut resolve_path) = (Vec::new(), Vec::new());
    for trial in 0..50 {
        let seen = rx.on("/hook").len();
        pusher.set(90.0);
        push(90.0);
        let breached = Instant::now();
        let got = rx.wait_for("/hook", 30, "firing", |r| r.len() > seen);
        let at = got[seen].at;
        fire.push(at.duration_since(breached).as_secs_f64() - f64::from(for_secs));
        let decided = got[seen].json()["started_ms"].as_i64().unwrap();
        fire_path.push((got[seen].received_ms - decided) as f64 / 1000.0);
        pusher.set(20.0);
        push(20.0);
        let recovered = Instant::now();
        let got = rx.wait_for("/hook", 30, "resolved", |r| r.len() > seen + 1);
        resolve.push(got[seen + 1].at.duration_since(recovered).as_secs_f64());
        assert_eq!(got[seen + 1].json()["kind"], "resolved", "trial {trial}");
        let decided = got[seen + 1].json()["ended_ms"].as_i64().unwrap();
        resolve_path.push((got[seen + 1].received_ms - decided) as f64 / 1000.0);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "alert latency over {} trials: breach-for-duration → firing received p50 {:.3} s p99 {:.3} s; recovery → resolved received p50 {:.3} s p99 {:.3} s",
        fire.len(),
        pct(&mut fire, 0.5),
        pct(&mut fire, 0.99),
        pct(&mut resolve, 0.5),
        pct(&mut resolve, 0.99)
    );
    println!(
        "notification path (decision → received): firing p50 {:.3} s p99 {:.3} s; resolved p50 {:.3} s p99 {:.3} s",
        pct(&mut fire_path, 0.5),
        pct(&mut fire_path, 0.99),
        pct(&mut resolve_path, 0.5),
        pct(&mut resolve_path, 0.99)
    );
}

#[test]
fn email_channels_send_through_smtp() {
    let sink = tests::SmtpSink::start();
    let dir = TempDir::new("perfpilot-alert-email");
    let config = config(
        &dir,
        &format!(
            "[[alert_channel]]\nname = \"mail\"\nkind = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"perfpilot <perfpilot@example.test>\"\nto = [\"ops@example.test\", \"oncall@example.test\"]\n",
            sink.port
        ),
    );
    let server = Perfpilot::start(&["--config", &config, "--push-create-resources"]);
    let (status, answer) = http_post_json(server.addr, "/api/v1/alert-channels/mail/test", "");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("SMTP 250"), "{answer}");
    let test = &sink.mails.lock().unwrap()[0].clone();
    assert_eq!(test.from, "<perfpilot@example.test>");
    assert_eq!(test.to, ["<ops@example.test>", "<oncall@example.test>"]);
    assert!(
        test.data.contains("Subject: [perfpilot] TEST perfpilot"),
        "{}",
        test.data
    );

    let pusher = Pusher::start(&server, 6, 30.0);
    set_quick_target(&server, 6, 1);
    pusher.set(90.0);
    let mails = sink.wait_for(20, "the firing mail", |m| m.len() >= 2);
    let firing = &mails[1].data;
    assert!(
        firing.contains("Subject: [perfpilot] FIRING custom:6: p95 90"),
        "{firing}"
    );
    assert!(
        firing.contains("Message-ID: <") && firing.contains("@perfpilot>"),
        "{firing}"
    );
    assert!(firing.contains("Target:   p95 latency"), "{firing}");
    pusher.set(20.0);
    let mails = sink.wait_for(20, "the resolved mail", |m| m.len() >= 3);
    assert!(
        mails[2]
            .data
            .contains("Subject: [perfpilot] RESOLVED custom:6: resolved: "),
        "{}",
        mails[2].data
    );

    // A bad address is refused at start-up, naming the field.
    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "[[alert_channel]]\nname = \"mail\"\nkind = \"email\"\nurl = \"smtp://127.0.0.1:25\"\nfrom = \"perfpilot\"\nto = [\"ops@example.test\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(tests::perfpilot_bin())
        .args(["--config", bad.to_str().unwrap(), "--ephemeral"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "alert_channel: entry 1 (\"mail\"): from: \"perfpilot\" is not an email address"
        ),
        "{stderr}"
    );
}

/// A forecast alert (issue 28): a metric rising toward its target is told once, as
/// "forecast", to the channel that asked for forecasts and to no other; the Alerts page
/// and its API list it while the trend holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rising_metric_sends_one_forecast_to_the_channels_that_asked() {
    let hooks = Receiver::start();
    let dir = TempDir::new("perfpilot-forecast-alerts");
    let path = dir.0.join("perfpilot.toml");
    std::fs::write(
        &path,
        format!(
            "[alerts]\nforecast_for_secs = 0\nforecast_horizon_secs = 7200\n\n\
             [[alert_channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/ops\"\nnotify_forecasts = true\n\n\
             [[alert_channel]]\nname = \"pager\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/pager\"\n",
            port = hooks.port
        ),
    )
    .unwrap();
    let server = Perfpilot::start(&[
        "--config",
        path.to_str().unwrap(),
        "--push-create-resources",
    ]);
    // Fifty minutes of "custom:61" rising one a minute to 60 now: it crosses 100 in about
    // 40 minutes.
    let times = tests::recent_times(50);
    let now = *times.last().unwrap();
    // "custom:62" rises the same way under a silence: its forecast is held back, as its
    // alert would be.
    for id in ["custom:61", "custom:62"] {
        tests::push_series(&server, id, "depth", &times, |t| {
            60.0 - (now - t) as f64 / 60_000.0 + ((t / 1000) % 7) as f64 * 0.5
        });
    }
    let (status, body) = http_post_json(
        server.addr,
        "/api/v1/silences",
        r#"{"matcher": "custom:62", "duration": "1h", "comment": "maintenance"}"#,
    );
    assert_eq!(status, 200, "{body}");
    for id in ["custom:62", "custom:61"] {
        tests::set_target(&server, id, "depth", 100.0, 0);
    }

    let told = hooks.wait_for("/ops", 20, "the forecast on the channel that asked", |r| {
        !r.is_empty()
    });
    let body = told[0].json();
    assert_eq!(body["kind"], "forecast", "{body}");
    assert_eq!(body["resource"], "custom:61", "{body}");
    let summary = body["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("breaches 100 in ~"), "{body}");
    let view = alerts(&server);
    assert_eq!(view["forecasts"][0]["resource"], "custom:61", "{view}");
    assert_eq!(view["firing"], serde_json::json!([]), "{view}");
    // Refits go on; the forecast is told once, and never to the channel that did not ask.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let told = hooks.on("/ops");
    assert_eq!(
        told.len(),
        1,
        "only the unsilenced forecast: {:?}",
        told.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(hooks.on("/pager").is_empty(), "{:?}", hooks.on("/pager"));

    let browser = tests::Browser::start().await;
    let client = &browser.client;
    client.goto(&server.url("/alerts")).await.unwrap();
    browser.wait_for_hydration().await;
    let row = tests::eventually_text(
        client,
        "#alerts-forecasts tr[data-resource='custom:61']",
        "the forecast on the Alerts page",
        |t| !t.is_empty(),
    )
    .await;
    assert!(row.contains("breaches 100 in ~"), "{row}");
    browser
        .screenshots_of("#alerts-forecasts", "alerts-forecast")
        .await;
    browser.close().await;
}
