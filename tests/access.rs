//! Roles in the real browser: a viewer sees who they are, and every control they may not
//! use disabled with the reason (the server refuses it too);
//! an admin mints an API token in Settings (shown once), automation uses it, and revoking
//! it in the UI locks the automation out.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use tests::{click, eventually_text, http_request, wait_for, Browser, Perfpilot, Redis, TempDir};

/// The control `id` as a role-gated page shows it: whether it is off (`:disabled` counts a
/// disabled fieldset around it) and the reason beside it; polled up to 15 s, since a panel
/// that waits for its data renders it late. Panics when it never appears.
async fn gated(client: &Client, id: &str) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = client
            .execute(
                "const e = document.getElementById(arguments[0]);
                 if (!e) return null;
                 const gate = e.closest('fieldset.role-gate');
                 const note = gate && gate.querySelector(':scope > .needs-role');
                 return [e.matches(':disabled'), note ? note.textContent : ''];",
                vec![serde_json::json!(id)],
            )
            .await
            .unwrap();
        if let Some([disabled, reason]) = found.as_array().map(Vec::as_slice) {
            return (
                disabled.as_bool().unwrap_or(false),
                reason.as_str().unwrap_or_default().to_owned(),
            );
        }
        assert!(Instant::now() < deadline, "#{id} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_controls_it_cannot_use_disabled_with_the_reason() {
    // A cache to preview invalidations of: counting keys is an editor's first step too.
    let redis = Redis::start(None, &[]);
    let dir = TempDir::new("perfpilot-viewer");
    let config = dir.0.join("perfpilot.toml");
    std::fs::write(
        &config,
        format!(
            "[[redis]]\nname = \"sessions\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
            redis.port
        ),
    )
    .unwrap();
    // Proxy mode with no trusted proxy on loopback: the browser is an anonymous viewer.
    let server = Perfpilot::start(&[
        "--auth",
        "proxy",
        "--trusted-proxies",
        "192.0.2.1/32",
        "--config",
        config.to_str().unwrap(),
    ]);
    let browser = Browser::start().await;
    let client = &browser.client;
    let viewer = |what: &str, role: &str| {
        format!("{what} needs the {role} role — you have the viewer role; ask an admin for access.")
    };

    client
        .goto(&server.url("/resource?id=cpu&metric=utilization"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    let who = eventually_text(client, "#whoami", "the who-am-I chip", |t| !t.is_empty()).await;
    assert!(who.contains("anonymous") && who.contains("viewer"), "{who}");
    assert_eq!(
        gated(client, "target-save").await,
        (true, viewer("Saving a target", "editor"))
    );

    client
        .goto(&server.url("/resource?id=cache%3Asessions&metric=hit_ratio"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    // The Preview button is there, off, with why, instead of a count the server refuses.
    assert_eq!(
        gated(client, "invalidate-preview").await,
        (true, viewer("Invalidating keys", "editor"))
    );
    assert!(gated(client, "invalidate-pattern").await.0);
    let (status, answer) = http_request(
        server.addr,
        "POST",
        "/api/invalidate_keys",
        &[],
        "resource=cache%3Asessions&pattern=session%3A*",
    );
    assert_eq!(status, 403, "the server agrees: {answer}");
    browser.screenshot("viewer-cache.png").await;

    client.goto(&server.url("/before-after")).await.unwrap();
    browser.wait_for_hydration().await;
    assert_eq!(
        gated(client, "mark-add").await,
        (true, viewer("Adding a mark", "editor"))
    );

    client.goto(&server.url("/settings")).await.unwrap();
    browser.wait_for_hydration().await;
    let summary = eventually_text(client, "#access-summary", "access summary", |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        summary.starts_with("You are anonymous with the viewer role."),
        "{summary}"
    );
    for (id, what) in [
        ("token-create", "Managing API tokens"),
        ("database-add", "Adding databases"),
        ("cache-add", "Adding caches"),
        ("fleet-add", "Adding fleets"),
    ] {
        assert_eq!(
            gated(client, id).await,
            (true, viewer(what, "admin")),
            "#{id}"
        );
    }
    // Viewers see what is configured and how it is doing, too.
    eventually_text(
        client,
        "#sources tr[data-source='cache:sessions']",
        "the cache in Sources",
        |t| t.contains("Redis") && t.contains("sessions"),
    )
    .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_mints_a_token_once_and_revoking_it_locks_automation_out() {
    // Default: auth none on loopback, so the local browser is the admin.
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/settings")).await.unwrap();
    browser.wait_for_hydration().await;
    let who = eventually_text(client, "#whoami", "the who-am-I chip", |t| !t.is_empty()).await;
    assert!(who.contains("admin"), "{who}");
    eventually_text(client, "#tokens-empty", "the empty token list", |t| {
        t == "No API tokens yet."
    })
    .await;
    // Only the host is watched: Sources says so, with the host's health.
    eventually_text(
        client,
        "#sources tr[data-source='host']",
        "the host source",
        |t| t.contains("Host") && t.contains("ok"),
    )
    .await;
    eventually_text(client, "#sources-empty", "the empty-state note", |t| {
        t.starts_with("Only the host is watched so far.")
    })
    .await;
    // Every field of every Settings form is a full-size control: at least 40 px tall.
    let heights = client
        .execute(
            "return Array.from(document.querySelectorAll(
                 '.settings-form input:not([type=checkbox]):not([type=radio]), .settings-form select, .settings-form textarea'))
               .filter(e => e.offsetParent !== null)
               .map(e => [e.id, e.getBoundingClientRect().height]);",
            vec![],
        )
        .await
        .unwrap();
    let heights = heights.as_array().cloned().unwrap_or_default();
    assert!(
        heights.len() >= 15,
        "the Settings forms' fields: {heights:?}"
    );
    for field in &heights {
        let px = field[1].as_f64().unwrap_or_default();
        assert!(px >= 39.9, "{} is {px} px tall", field[0]);
    }

    let name = client.find(Locator::Id("token-name")).await.unwrap();
    name.send_keys("ci-deploy").await.unwrap();
    click(client, Locator::Css("#token-role option[value='editor']")).await;
    click(client, Locator::Id("token-create")).await;
    let secret = eventually_text(client, "#token-secret", "the new token", |t| {
        t.starts_with("pp_")
    })
    .await;
    let listed = eventually_text(client, "#tokens", "the token table", |t| {
        t.contains("ci-deploy")
    })
    .await;
    assert!(!listed.contains(&secret), "the list never shows the secret");
    browser.screenshot("settings-tokens.png").await;

    // Automation with the token is an editor.
    let bearer = format!("Bearer {secret}");
    let (status, body) = http_request(
        server.addr,
        "GET",
        "/api/whoami",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"user\":\"token:ci-deploy\"") && body.contains("\"role\":\"editor\""),
        "{body}"
    );
    let (status, body) = http_request(
        server.addr,
        "POST",
        "/api/set_target",
        &[("Authorization", &bearer)],
        "resource=cpu&metric=utilization&value=72",
    );
    assert_eq!(status, 200, "{body}");

    click(client, Locator::Css("#tokens button[data-token]")).await;
    eventually_text(client, "#tokens", "the revoked status", |t| {
        t.contains("revoked")
    })
    .await;
    let (status, body) = http_request(
        server.addr,
        "POST",
        "/api/set_target",
        &[("Authorization", &bearer)],
        "resource=cpu&metric=utilization&value=73",
    );
    assert_eq!(status, 401, "{body}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_settings_are_edited_under_the_chart_and_typos_name_the_field() {
    let server = Perfpilot::start(&["--allow-program", "/bin/true"]);
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&server.url("/resource?id=cpu&metric=utilization"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    click(client, Locator::Css("#resource-settings summary")).await;
    let cooldown = wait_for(client, Locator::Id("setting-cooldown")).await;
    cooldown.send_keys("\u{e009}a\u{e000}abc").await.unwrap();
    click(client, Locator::Id("settings-save")).await;
    let message = eventually_text(client, "#settings-message", "the field error", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(
        message,
        "settings.cooldown_secs: must be a whole number of seconds, got \"abc\""
    );

    cooldown.send_keys("\u{e009}a\u{e000}120").await.unwrap();
    click(
        client,
        Locator::Css("#setting-action option[value='command']"),
    )
    .await;
    client
        .find(Locator::Id("setting-program"))
        .await
        .unwrap()
        .send_keys("/bin/true")
        .await
        .unwrap();
    click(client, Locator::Id("settings-save")).await;
    let saved = eventually_text(client, "#settings-message", "the saved notice", |t| {
        t.starts_with("Saved as change #1")
    })
    .await;
    assert!(saved.contains("cooldown"), "{saved}");

    // After a reload the form shows what was saved.
    client.refresh().await.unwrap();
    browser.wait_for_hydration().await;
    click(client, Locator::Css("#resource-settings summary")).await;
    let value = tests::input_value(client, "#setting-cooldown").await;
    assert_eq!(value, "120");
    let program = tests::input_value(client, "#setting-program").await;
    assert_eq!(program, "/bin/true");
    browser.screenshot("resource-settings.png").await;
    browser.close().await;
}

#[test]
fn tokens_and_their_revocation_survive_a_restart() {
    let data = tests::TempDir::new("perfpilot-tokens");
    let server = Perfpilot::start_with_data(&data.0, &[]);
    let (status, body) = http_request(
        server.addr,
        "POST",
        "/api/create_token",
        &[],
        "name=nightly&role=editor",
    );
    assert_eq!(status, 200, "{body}");
    let minted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let secret = minted["secret"].as_str().unwrap().to_owned();
    let id = minted["info"]["id"].as_str().unwrap().to_owned();
    let (_, body) = http_request(
        server.addr,
        "POST",
        "/api/create_token",
        &[],
        "name=old&role=viewer",
    );
    let old: serde_json::Value = serde_json::from_str(&body).unwrap();
    let old_secret = old["secret"].as_str().unwrap().to_owned();
    let old_id = old["info"]["id"].as_str().unwrap().to_owned();
    let (status, _) = http_request(
        server.addr,
        "POST",
        "/api/revoke_token",
        &[],
        &format!("id={old_id}"),
    );
    assert_eq!(status, 200);
    assert!(server.terminate().success());

    let server = Perfpilot::start_with_data(&data.0, &[]);
    let bearer = format!("Bearer {secret}");
    let (status, body) = http_request(
        server.addr,
        "GET",
        "/api/whoami",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("token:nightly"), "{body}");
    let old_bearer = format!("Bearer {old_secret}");
    let (status, _) = http_request(
        server.addr,
        "GET",
        "/api/whoami",
        &[("Authorization", &old_bearer)],
        "",
    );
    assert_eq!(status, 401, "a revoked token stays revoked after a restart");

    // Creating and revoking tokens is audited with who did it.
    let (status, audit) = server.get("/api/audit?limit=50");
    assert_eq!(status, 200);
    assert!(audit.contains(&id) && audit.contains(&old_id), "{audit}");
}
