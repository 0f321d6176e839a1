//! Cache resources against a real Redis 7 and memcached 1.6 (Debian's, throwaway instances
//! this binary starts once): caches from the configuration file are watched at 1 Hz and
//! their hit ratio follows a real GET load; the "at least" target (hit ratio ≥ 90 %)
//! breaches when the ratio is low and not when it is high; adding one connects first and
//! refuses with the reason; a flush and a restart are cold starts on the chart; keys are
//! invalidated by pattern after a preview; a memory change that does not help is rolled
//! back and `CONFIG GET` proves it; the password appears in no answer, page, log, audit
//! entry, snapshot, metric or database file.

use std::time::{Duration, Instant};

use tests::{
    body_json, click, eventually_text, http_post_json, http_request, urlencode, wait_for,
    webhook_receiver, Browser, Memcached, Perfpilot, Redis, TempDir,
};

const PASSWORD: &str = "redis-secret-Hx41pQ";

/// Sets the hit-ratio target of `resource` (taking effect at once: `for` 0).
fn set_hit_ratio_target(server: &Perfpilot, resource: &str, value: f64) {
    let form = format!(
        "resource={}&metric=hit_ratio&value={value}&for_secs=0",
        urlencode(resource)
    );
    let (status, answer) = http_request(server.addr, "POST", "/api/set_target", &[], &form);
    assert_eq!(status, 200, "{answer}");
}

/// Polls `metric` until `check` accepts it.
fn metric_until(
    server: &Perfpilot,
    id: &str,
    name: &str,
    secs: u64,
    check: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = server.metric(id, name);
        if let Some(v) = value.filter(|v| check(*v)) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{id} {name} never passed the check; last {value:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls the audit log (`query`) until an entry contains `text`; returns the log.
fn audit_until(server: &Perfpilot, query: &str, text: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, audit) = server.get(&format!("/api/audit?{query}"));
        if audit.contains(text) {
            return audit;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the audit log: {audit:.3000}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[allow(clippy::too_many_lines)] // 636 lines today; split before it grows
fn caches_are_watched_tuned_with_rollback_invalidated_and_marked_cold() {
    let redis = Redis::start(Some(PASSWORD), &[]);
    let memcached = Memcached::start();
    let dir = TempDir::new("perfpilot-cache");
    let password_file = dir.0.join("redis.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    // The warm-up: an allow-listed program that marks the cache as warmed.
    let warm = dir.0.join("warm.sh");
    std::fs::write(
        &warm,
        format!(
            "#!/bin/sh\nREDISCLI_AUTH=\"$(head -n1 {})\" exec redis-cli -p {} SET warm:done 1\n",
            password_file.display(),
            redis.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&warm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The application that owns memcached's keys gets invalidations on this hook.
    let (hook_port, hooked) = webhook_receiver();
    // Three levels of one cache: the application's in-process L1 (pushed as custom:7),
    // memcached, then Redis.
    let config = dir.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[[redis]]\nname = \"sessions\"\nurl = \"redis://127.0.0.1:{}/0\"\npassword_file = \"{}\"\ngroup = \"shop\"\nlevel = 3\nwarm_command = [\"{}\"]\n\n\
             [[memcached]]\nname = \"fragments\"\naddress = \"127.0.0.1:{}\"\ngroup = \"shop\"\nlevel = 2\ninvalidate_url = \"http://127.0.0.1:{hook_port}/invalidate\"\n\n\
             [[cache_level]]\ngroup = \"shop\"\nresource = \"custom:7\"\nlevel = 1\n",
            redis.port,
            password_file.display(),
            warm.display(),
            memcached.port
        ),
    )
    .unwrap();
    let log = dir.0.join("perfpilot.log");
    let data = dir.0.join("data");
    let server = Perfpilot::start_logged(
        &log,
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--metrics-on-main-listener",
            "--allow-program",
            warm.to_str().unwrap(),
            "--push-create-resources",
        ],
    );

    // Watched, with the "at least" target: half the GETs miss, so the hit ratio is about
    // 50 % and the card breaches; memcached's level answers 80 %.
    let redis_load = redis.load(400, 50);
    let memcached_load = memcached.load(400, 80);
    let sessions = server.card("cache:sessions", 30, "the cache's first hit ratio", |c| {
        c["value"].is_number()
    });
    assert_eq!(sessions["resource_type"], "cache");
    assert_eq!(sessions["metric"], "hit_ratio");
    assert!(
        sessions["target"]["text"]
            .as_str()
            .unwrap()
            .contains("≥ 90 %"),
        "{sessions}"
    );
    let ratio = metric_until(&server, "cache:sessions", "hit_ratio", 20, |v| {
        (40.0..=60.0).contains(&v)
    });
    assert!(server.metric("cache:sessions", "ops_per_s").unwrap() > 100.0);
    assert!(server.metric("cache:sessions", "latency_p99").is_some());
    assert!(server.metric("cache:sessions", "keys").unwrap() >= 1.0);
    metric_until(&server, "cache:fragments", "hit_ratio", 20, |v| {
        (70.0..=90.0).contains(&v)
    });
    metric_until(&server, "cache:fragments", "memory_pct", 10, |v| v > 0.0);
    // Settings lists every source it reads: kind, name, health in words and a link to its
    // page; the Redis password (kept in a file) is nowhere in it.
    let (status, settings_page) = server.get("/settings");
    assert_eq!(status, 200, "{settings_page:.2000}");
    for (id, kind, href) in [
        ("host", "Host", "/resource?id="),
        ("cache:sessions", "Redis", "/resource?id=cache%3Asessions"),
        (
            "cache:fragments",
            "memcached",
            "/resource?id=cache%3Afragments",
        ),
        ("push", "Pushed metrics", ""),
    ] {
        let row = settings_page
            .split(&format!("data-source=\"{id}\""))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("no {id} row in Settings: {settings_page:.4000}"));
        assert!(row.contains(kind) && row.contains(href), "{id}: {row}");
        if id != "push" {
            assert!(row.contains("source-ok"), "{id} is read now: {row}");
        }
    }
    assert!(
        !settings_page.contains("sources-empty"),
        "configured caches are no empty list"
    );
    let (_, sources) = server.get("/api/sources");
    assert!(sources.contains("cache:sessions"), "{sources}");
    for answer in [&settings_page, &sources] {
        assert!(
            !answer.contains(PASSWORD),
            "the password leaked into Settings"
        );
    }
    // A low ratio breaches an "at least" target (a lower-is-better reading of it would
    // call 50 % fine).
    set_hit_ratio_target(&server, "cache:sessions", 90.0);
    let (status, body) = server.get("/api/resource_settings?resource=cache%3Asessions");
    assert_eq!(status, 200, "{body}");
    let mut quick = body_json(&body);
    quick["window_secs"] = 2.into();
    quick["baseline_secs"] = 2.into();
    quick["verify_secs"] = 3.into();
    quick["cooldown_secs"] = 600.into();
    let save_settings = |resource: &str, settings: &serde_json::Value| {
        let form = format!(
            "resource={}&settings={}",
            urlencode(resource),
            urlencode(&settings.to_string())
        );
        http_request(
            server.addr,
            "POST",
            "/api/set_resource_settings",
            &[],
            &form,
        )
    };
    let (status, answer) = save_settings("cache:sessions", &quick);
    assert_eq!(status, 200, "{answer}");
    let breached = server.card("cache:sessions", 20, "the breach", |c| {
        c["status"] == "not_optimized" && c["evaluated"] == true
    });
    assert!(
        breached["reason"]
            .as_str()
            .unwrap_or_default()
            .contains('<'),
        "the reason says the ratio is below: {breached} (ratio {ratio})"
    );
    // …and a target it meets is met.
    set_hit_ratio_target(&server, "cache:sessions", 30.0);
    server.card("cache:sessions", 20, "the target met", |c| {
        c["status"] == "optimized"
    });

    // Adding one over the API connects first and refuses with the reason.
    let add =
        |body: serde_json::Value| http_post_json(server.addr, "/api/v1/caches", &body.to_string());
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let (status, answer) =
        add(serde_json::json!({"kind": "redis", "name": "x", "url": url, "password": "wrong-one"}));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("authentication failed"), "{answer}");
    let (status, answer) = add(serde_json::json!({"kind": "redis", "name": "x", "url": url}));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("authentication required"), "{answer}");
    let closed = tests::free_port();
    let (status, answer) = add(
        serde_json::json!({"kind": "redis", "name": "x", "url": format!("redis://127.0.0.1:{closed}")}),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("connection refused"), "{answer}");
    let (status, answer) = add(
        serde_json::json!({"kind": "redis", "name": "x", "url": format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port)}),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("must not contain a password"), "{answer}");
    assert!(!answer.contains(PASSWORD), "the refusal does not echo it");
    let (status, answer) = add(
        serde_json::json!({"kind": "memcached", "name": "x", "url": format!("127.0.0.1:{}", memcached.port), "password": "p"}),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("no authentication"), "{answer}");
    let (status, answer) = add(serde_json::json!({"kind": "valkey", "name": "x", "url": url}));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"field\":\"kind\""), "{answer}");
    // Names and groups follow the one rule of names, before anything connects.
    for (name, group) in [
        ("a/b", "shop"),
        ("\u{202e}x", "shop"),
        ("cpu", "shop"),
        ("y", "Shop\u{feff}"),
    ] {
        let (status, answer) = add(
            serde_json::json!({"kind": "redis", "name": name, "url": url, "password": PASSWORD, "group": group}),
        );
        assert_eq!(status, 422, "{name:?} {group:?}: {answer}");
        let field = if name == "y" { "group" } else { "name" };
        assert!(
            answer.contains(&format!("\"field\":\"{field}\"")),
            "{answer}"
        );
        assert!(
            !answer.contains('\u{202e}') && !answer.contains('\u{feff}'),
            "{answer}"
        );
    }
    // Managed Redis often renames CONFIG away: added, with tuning unavailable and why.
    let managed = Redis::start(None, &["--rename-command", "CONFIG", ""]);
    let (status, answer) = add(
        serde_json::json!({"kind": "redis", "name": "managed", "url": format!("redis://127.0.0.1:{}", managed.port)}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("CONFIG is disabled or renamed"), "{answer}");

    // TLS: a rediss:// server whose CA is not trusted is refused with why; with its CA
    // it is watched.
    let tls = Redis::start_tls();
    let tls_url = format!("rediss://127.0.0.1:{}", tls.port);
    let (status, answer) = add(serde_json::json!({"kind": "redis", "name": "tls", "url": tls_url}));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("not signed by a trusted CA"), "{answer}");
    let (status, answer) = add(
        serde_json::json!({"kind": "redis", "name": "tls", "url": tls_url, "tls_ca_file": tls.ca_file.as_ref().unwrap()}),
    );
    assert_eq!(status, 200, "{answer}");
    metric_until(&server, "cache:tls", "latency", 20, |v| v >= 0.0);

    // A flush of a full keyspace and a restart are cold starts: marks on the chart, with
    // their before/after.
    let fill: String = (0..300).map(|i| format!("SET sess:{i} v\n")).collect();
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .env("REDISCLI_AUTH", PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(cli.stdin.as_mut().unwrap(), fill.as_bytes()).unwrap();
    drop(cli.stdin.take());
    cli.wait().unwrap();
    metric_until(&server, "cache:sessions", "keys", 10, |v| v >= 300.0);

    // The L1 pushes its hit ratio; the group combines the three levels:
    // 1 − (1 − 0.6)(1 − 0.8)(1 − 0.5) = 96 %.
    let push_l1 = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let body = format!(
            r#"{{"samples":[{{"resource":"custom:7","metric":"hit_ratio","value":60,"timestamp":{now}}}]}}"#
        );
        let (status, answer) = http_post_json(server.addr, "/api/push", &body);
        assert_eq!(status, 200, "{answer}");
    };
    push_l1();
    let deadline = Instant::now() + Duration::from_secs(20);
    let group = loop {
        let (_, body) = server.get("/api/cache_group?resource=cache%3Asessions");
        let group = body_json(&body);
        let ready = group["levels"].as_array().is_some_and(|levels| {
            levels.len() == 3 && levels.iter().all(|l| l["hit_ratio"].is_number())
        });
        if ready {
            break group;
        }
        assert!(Instant::now() < deadline, "no group of 3 levels: {body}");
        push_l1();
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        group["levels"][0]["resource"], "custom:7",
        "L1 first: {group}"
    );
    assert_eq!(group["levels"][2]["resource"], "cache:sessions", "{group}");
    let combined = group["combined_hit_ratio"].as_f64().unwrap();
    assert!((93.0..=99.0).contains(&combined), "{group}");

    // memcached cannot list its keys: the pattern goes to the application's hook.
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/resources/cache%3Afragments/invalidate",
        r#"{"pattern": "frag:*"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("cannot count its keys"), "{answer}");
    assert!(hooked.lock().unwrap().is_empty(), "a preview calls nothing");
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/resources/cache%3Afragments/invalidate",
        r#"{"pattern": "frag:*", "confirm": true}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("answered HTTP 200"), "{answer}");
    {
        let hooked = hooked.lock().unwrap();
        assert_eq!(hooked.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&hooked[0].1).unwrap();
        assert_eq!(body["pattern"], "frag:*");
        assert_eq!(body["resource"], "cache:fragments");
    }
    audit_until(&server, "kind=mark", "Handed frag:* to the application", 5);

    // Invalidation by pattern in the browser: a preview counts, a confirmation unlinks;
    // a flush-everything pattern is refused.
    let (status, answer) = http_post_json(
        server.addr,
        "/api/v1/resources/cache%3Asessions/invalidate",
        r#"{"pattern": "*"}"#,
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("never flushes"), "{answer}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use fantoccini::Locator;
        let browser = Browser::start().await;
        let client = &browser.client;
        // An admin adds memcached's twin from the Settings page.
        client.goto(&server.url("/settings")).await.unwrap();
        browser.wait_for_hydration().await;
        // A choice made before the form hydrated is lost: choose until the form follows
        // it (the address field's placeholder turns to memcached's).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            client
                .find(Locator::Id("cache-kind"))
                .await
                .unwrap()
                .select_by_value("memcached")
                .await
                .unwrap();
            let placeholder = client
                .find(Locator::Id("cache-url"))
                .await
                .unwrap()
                .attr("placeholder")
                .await
                .unwrap()
                .unwrap_or_default();
            if placeholder == "cache.internal:11211" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the form never followed the memcached choice: {placeholder}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for (id, value) in [
            ("cache-name", "browser".to_owned()),
            ("cache-url", format!("127.0.0.1:{}", memcached.port)),
        ] {
            client
                .find(Locator::Id(id))
                .await
                .unwrap()
                .send_keys(&value)
                .await
                .unwrap();
        }
        click(client, Locator::Id("cache-add")).await;
        let added = eventually_text(client, "#cache-message", "the confirmation", |t| {
            t.starts_with("Added") || t.contains("cannot")
        })
        .await;
        assert!(added.starts_with("Added cache:browser"), "{added}");
        assert!(added.contains("memcached 1.6"), "{added}");
        browser.screenshot("cache-added.png").await;

        client
            .goto(&server.url("/resource?id=cache%3Asessions&range=5m"))
            .await
            .unwrap();
        browser.wait_for_hydration().await;
        wait_for(client, Locator::Css("canvas")).await;
        let server_line = eventually_text(client, "#cache-server", "the report", |t| {
            t.contains("Redis 7")
        })
        .await;
        assert!(server_line.contains("keys"), "{server_line}");
        let combined = eventually_text(client, "#cache-group-combined", "the group", |t| {
            t.contains("levels")
        })
        .await;
        push_l1();
        assert!(combined.contains("3 levels"), "{combined}");
        let commands = wait_for(client, Locator::Id("cache-commands")).await;
        assert!(commands.text().await.unwrap().contains("get"));
        // The invalidation panel hydrates after its data arrives; a preview asked before
        // that is lost (a CI run saw it), so ask again until the count shows.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A submit before the panel hydrated does nothing (its form is method=dialog).
            // Typing while a preview is still counting would forget it (an input clears
            // what was previewed), so a slow count under load would never show: retry
            // only when nothing is counting.
            let counting = match client.find(Locator::Id("invalidate-preview")).await {
                Ok(button) => button.text().await.unwrap_or_default() == "Counting…",
                Err(_) => false,
            };
            if !counting {
                if let Ok(pattern) = client.find(Locator::Id("invalidate-pattern")).await {
                    let _ = pattern.clear().await;
                    let _ = pattern.send_keys("sess:1*").await;
                }
                if let Ok(button) = client.find(Locator::Id("invalidate-preview")).await {
                    let _ = button.click().await;
                }
            }
            let shown = client
                .wait()
                .at_most(Duration::from_secs(6))
                .for_element(Locator::Id("invalidate-count"))
                .await
                .is_ok();
            if shown {
                break;
            }
            if Instant::now() >= deadline {
                browser.screenshot("cache-preview-never-counted.png").await;
                let panel = match client.find(Locator::Id("invalidate")).await {
                    Ok(panel) => panel.html(false).await.unwrap_or_default(),
                    Err(_) => "no #invalidate panel".to_owned(),
                };
                panic!("the preview never showed a count; the panel: {panel:.2000}");
            }
        }
        // sess:1, sess:10–19, sess:100–199.
        let count = eventually_text(client, "#invalidate-count", "the preview", |t| {
            t.contains("match")
        })
        .await;
        assert_eq!(count, "111 keys match sess:1*.");
        click(client, Locator::Id("invalidate-confirm")).await;
        let done = eventually_text(client, "#invalidate-message", "the invalidation", |t| {
            t.contains("Invalidated") || t.contains("cannot")
        })
        .await;
        assert!(done.starts_with("Invalidated 111 keys"), "{done}");
        client
            .execute(
                "document.getElementById('cache-title').scrollIntoView()",
                vec![],
            )
            .await
            .unwrap();
        browser.screenshot("cache-resource.png").await;
        browser.close().await;
    });
    assert_eq!(
        redis.cli(&["EVAL", "return #redis.call('KEYS', 'sess:1*')", "0"]),
        "0"
    );
    assert_eq!(redis.cli(&["EXISTS", "sess:2"]), "1", "other keys stay");
    audit_until(
        &server,
        "kind=mark",
        "Invalidated 111 keys matching sess:1*",
        5,
    );

    redis.cli(&["FLUSHALL"]);
    audit_until(&server, "kind=mark", "cold cache: keyspace emptied", 15);
    redis.kill();
    server.card("cache:sessions", 30, "the reason on the card", |c| {
        c["reason"]
            .as_str()
            .is_some_and(|r| r.contains("connection refused"))
    });
    redis.restart();
    let audit = audit_until(&server, "kind=mark", "cold cache: restarted", 90);
    assert!(
        audit.contains("\"perfpilot\""),
        "marked by perfpilot: {audit:.2000}"
    );
    let (_, comparisons) = server.get("/api/comparisons");
    assert!(
        comparisons.contains("cold cache: restarted"),
        "in the before/after list: {comparisons:.2000}"
    );
    // The configured warm-up ran after the cold start, is audited, and its own
    // before/after measures what it brought back.
    audit_until(
        &server,
        "kind=action&limit=50",
        "cache:sessions: warm-up command succeeded",
        30,
    );
    audit_until(&server, "kind=mark", "warm-up (command) done", 10);
    assert_eq!(redis.cli(&["GET", "warm:done"]), "1", "the program ran");
    server.card("cache:sessions", 60, "recovery after the restart", |c| {
        c["value"].is_number()
    });

    // Tuning through the actuator lifecycle: maxmemory set above the bound is refused at
    // capture; one within it that does not lift the hit ratio over an impossible target
    // is rolled back, and CONFIG GET shows the old value again.
    assert_eq!(redis.cli(&["CONFIG", "GET", "maxmemory"]), "maxmemory\n0");
    let mut tune = quick.clone();
    tune["dry_run"] = false.into();
    tune["action"] =
        serde_json::json!({"kind": "cache_setting", "parameter": "maxmemory", "value": "lots"});
    let (status, answer) = save_settings("cache:sessions", &tune);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("must be a size"), "{answer}");
    tune["action"] =
        serde_json::json!({"kind": "cache_setting", "parameter": "maxmemory", "value": "64mb"});
    let (status, answer) = save_settings("cache:sessions", &tune);
    assert_eq!(status, 200, "{answer}");
    // Redis' own view of the change, polled: when maxmemory really changed, and back.
    let (watching, seen) = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, String)>::new()));
        let (port, password) = (redis.port, redis.password.clone());
        let (stop_in, seen_in) = (stop.clone(), seen.clone());
        let poller = std::thread::spawn(move || {
            let mut last = String::new();
            while !stop_in.load(std::sync::atomic::Ordering::Relaxed) {
                let mut command = std::process::Command::new("redis-cli");
                command.args(["-p", &port.to_string(), "CONFIG", "GET", "maxmemory"]);
                if let Some(password) = &password {
                    command.env("REDISCLI_AUTH", password);
                }
                let asked = tests::now_ms();
                if let Ok(out) = command.output() {
                    let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    if value != last {
                        seen_in.lock().unwrap().push((asked, value.clone()));
                        last = value;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ((stop, poller), seen)
    };
    set_hit_ratio_target(&server, "cache:sessions", 99.9);
    let audit = audit_until(
        &server,
        "kind=action&limit=20",
        "cache:sessions: Set Redis maxmemory to 64 MB — rolled back",
        60,
    );
    // The poller's next look shows the value restored (the rollback read it back already).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .skip(1)
        .any(|(_, v)| v.ends_with("\n0"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    watching.0.store(true, std::sync::atomic::Ordering::Relaxed);
    watching.1.join().unwrap();
    // Each step is its own audit entry, at the time it happened: within a second of when
    // Redis itself showed the change and the change undone.
    let seen = seen.lock().unwrap().clone();
    let changed_at = |value: &str| {
        seen.iter()
            .find(|(_, v)| v.ends_with(value))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("Redis never showed maxmemory {value}: {seen:?}"))
    };
    let applied_at = changed_at("67108864");
    let restored_at = seen
        .iter()
        .filter(|(at, v)| *at > applied_at && v.ends_with("\n0"))
        .map(|(at, _)| *at)
        .next()
        .unwrap_or_else(|| panic!("Redis never showed maxmemory 0 again: {seen:?}"));
    let steps = body_json(&audit)["entries"].clone();
    let step_at = |step: &str| {
        steps
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["what"].as_str().is_some_and(|w| {
                    w.starts_with(&format!(
                        "cache:sessions: Set Redis maxmemory to 64 MB — step {step} "
                    ))
                })
            })
            .and_then(|e| e["at_unix_ms"].as_i64())
            .unwrap_or_else(|| panic!("no {step} step entry: {steps:#}"))
    };
    for (step, seen_at) in [("apply", applied_at), ("roll_back", restored_at)] {
        let audited = step_at(step);
        assert!(
            (audited - seen_at).abs() <= 1_000,
            "the {step} step is audited at {audited}, Redis showed it at {seen_at}"
        );
    }
    assert!(
        audit.contains("cache:sessions: verified "),
        "the verdict has its own entry: {audit:.3000}"
    );
    assert!(
        audit.contains("cache:sessions: Set Redis maxmemory to 64 MB — succeeded"),
        "{audit:.3000}"
    );
    assert!(
        audit.contains("maxmemory = 67108864 read back"),
        "the read-back: {audit:.3000}"
    );
    assert!(
        audit.contains("CONFIG SET maxmemory 0"),
        "the rollback: {audit:.3000}"
    );
    assert_eq!(
        redis.cli(&["CONFIG", "GET", "maxmemory"]),
        "maxmemory\n0",
        "the captured value is back"
    );
    let mut recommend = quick.clone();
    recommend["action"] = serde_json::json!({"kind": "recommend"});
    let (status, answer) = save_settings("cache:sessions", &recommend);
    assert_eq!(status, 200, "{answer}");

    // memcached's limit goes through the same lifecycle.
    let (_, body) = server.get("/api/resource_settings?resource=cache%3Afragments");
    let mut settings = body_json(&body);
    for (k, v) in [
        ("window_secs", 2),
        ("baseline_secs", 2),
        ("verify_secs", 3),
        ("cooldown_secs", 600),
    ] {
        settings[k] = v.into();
    }
    settings["dry_run"] = false.into();
    settings["action"] = serde_json::json!({"kind": "cache_setting", "parameter": "cache_memlimit", "value": "32mb"});
    let (status, answer) = save_settings("cache:fragments", &settings);
    assert_eq!(status, 200, "{answer}");
    set_hit_ratio_target(&server, "cache:fragments", 99.9);
    let audit = audit_until(
        &server,
        "kind=action&limit=20",
        "cache:fragments: Set memcached cache_memlimit to 32 MB — rolled back",
        60,
    );
    assert!(
        audit.contains("cache_memlimit = 33554432 read back"),
        "{audit:.3000}"
    );
    assert!(
        audit.contains("cache_memlimit 67108864"),
        "the rollback: {audit:.3000}"
    );
    metric_until(&server, "cache:fragments", "memory_pct", 10, |v| v > 0.0);
    drop(memcached_load);
    drop(redis_load);

    // Removing one is a counted change; its card goes.
    let (status, answer) = http_request(
        server.addr,
        "DELETE",
        "/api/v1/resources/cache%3Amanaged",
        &[],
        "",
    );
    assert_eq!(status, 200, "{answer}");

    // The password is nowhere perfpilot writes or answers.
    let (_, snapshots) = server.get("/api/snapshots");
    let (_, audit) = server.get("/api/audit?limit=500");
    let (_, metrics) = server.get("/metrics");
    let (_, overview) = http_request(server.addr, "POST", "/api/overview", &[], "");
    let (_, page) = server.get("/resource?id=cache%3Asessions");
    let (_, settings_page) = server.get("/settings");
    let (_, details) = server.get("/api/cache_report?resource=cache%3Asessions");
    drop(server);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut files = String::new();
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        if entry.path().is_file() {
            files.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).unwrap(),
            ));
        }
    }
    for (what, text) in [
        ("snapshots", &snapshots),
        ("audit", &audit),
        ("metrics", &metrics),
        ("overview", &overview),
        ("resource page", &page),
        ("settings page", &settings_page),
        ("cache report", &details),
        ("log", &log_text),
        ("database files", &files),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password leaked into the {what}"
        );
    }
}
