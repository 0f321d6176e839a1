//! Roles in the real browser: a viewer sees who they are and no controls they may not use;
//! an admin mints an API token in Settings (shown once), automation uses it, and revoking
//! it in the UI locks the automation out.

use fantoccini::Locator;
use tests::{click, eventually_text, http_request, wait_for, Browser, Perfpilot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_their_role_and_no_save_or_restore_controls() {
    // Proxy mode with no trusted proxy on loopback: the browser is an anonymous viewer.
    let server = Perfpilot::start(&["--auth", "proxy", "--trusted-proxies", "192.0.2.1/32"]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client
        .goto(&server.url("/resource?id=cpu&metric=utilization"))
        .await
        .unwrap();
    browser.wait_for_hydration().await;
    let who = eventually_text(client, "#whoami", "the who-am-I chip", |t| !t.is_empty()).await;
    assert!(who.contains("anonymous") && who.contains("viewer"), "{who}");
    let note = eventually_text(
        client,
        "[data-needs-role='editor']",
        "the editor-role note",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(note, "Saving a target needs the editor role.");
    assert!(client.find(Locator::Id("target-save")).await.is_err());

    client.goto(&server.url("/before-after")).await.unwrap();
    browser.wait_for_hydration().await;
    let note = eventually_text(client, "[data-needs-role='editor']", "mark note", |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(note, "Adding a mark needs the editor role.");
    assert!(client.find(Locator::Id("mark-add")).await.is_err());

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
    assert!(client.find(Locator::Id("token-create")).await.is_err());
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
