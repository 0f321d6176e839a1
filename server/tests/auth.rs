//! Identity, roles and tokens through the real router in-process: the TCP peer is set with
//! `MockConnectInfo`, exactly what `into_make_service_with_connect_info` provides.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use server::config::{Cli, Settings};
use server::state::AppState;
use tower::ServiceExt;

struct Instance {
    state: AppState,
    dir: std::path::PathBuf,
}

impl Instance {
    fn start(name: &str, cli: Cli) -> Instance {
        let dir =
            std::env::temp_dir().join(format!("perfpilot-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cli = Cli {
            site_root: Some(dir.clone()),
            ephemeral: true,
            ..cli
        };
        let settings = Settings::resolve(&cli).unwrap();
        let monitor = server::state::start(&settings).unwrap();
        Instance {
            state: AppState::new(settings, monitor),
            dir,
        }
    }

    /// A request from `peer`, as the TCP connection would report it.
    async fn send(&self, peer: &str, request: Request<Body>) -> (StatusCode, String) {
        let router = server::http::router::app(self.state.clone())
            .layer(MockConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn cpu_target(&self) -> Option<f64> {
        let state = self.state.monitor.store.state();
        let cpu = engine::model::ResourceId::new("cpu").unwrap();
        state.resources.get(&cpu)?.target.as_ref().map(|t| t.value)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn post(path: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn whoami(headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get("/api/whoami");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

const SET_CPU_70: &str = "resource=cpu&metric=utilization&value=70";

fn proxy_mode() -> Cli {
    Cli {
        auth: Some("proxy".into()),
        trusted_proxies: Some("10.0.0.5/32".into()),
        editor_groups: Some("perf-editors".into()),
        admin_groups: Some("perf-admins".into()),
        ..Cli::default()
    }
}

#[tokio::test]
async fn forged_identity_headers_from_an_untrusted_peer_are_ignored() {
    let perf = Instance::start("forged", proxy_mode());
    let initial = perf.cpu_target();
    let forged = [("remote-user", "mallory"), ("remote-groups", "perf-admins")];
    let (status, body) = perf.send("192.0.2.66:5000", whoami(&forged)).await;
    assert_eq!(status, StatusCode::OK);
    let who: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["user"], "anonymous");
    assert_eq!(who["role"], "viewer");
    assert_eq!(who["client_ip"], "192.0.2.66");

    let (status, body) = perf
        .send(
            "192.0.2.66:5000",
            post("/api/set_target", SET_CPU_70, &forged),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("this needs the editor role; you are anonymous (viewer)"),
        "{body}"
    );
    assert_eq!(perf.cpu_target(), initial, "nothing changed");
    assert_eq!(perf.state.monitor.store.stats().change, 0);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_user_the_role_and_the_client() {
    let perf = Instance::start("trusted", proxy_mode());
    let alice = [
        ("remote-user", "alice"),
        ("remote-groups", "staff,perf-editors"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let (_, body) = perf.send("10.0.0.5:4000", whoami(&alice)).await;
    let who: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            &who["user"],
            &who["role"],
            &who["source"],
            &who["client_ip"]
        ),
        (
            &Value::from("alice"),
            &Value::from("editor"),
            &Value::from("proxy"),
            &Value::from("203.0.113.9")
        )
    );
    let (status, body) = perf
        .send("10.0.0.5:4000", post("/api/set_target", SET_CPU_70, &alice))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(perf.cpu_target(), Some(70.0));

    // An editor may not restore (admin only); the refusal says so and changes nothing.
    let (status, body) = perf
        .send(
            "10.0.0.5:4000",
            post("/api/restore_snapshot", "snapshot=20", &alice),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("needs the admin role"), "{body}");
    assert_eq!(perf.state.monitor.store.stats().change, 1);
}

#[tokio::test]
async fn a_viewer_edit_gets_403_and_changes_nothing() {
    // Not loopback and no --allow-anonymous-edit: anonymous users only look.
    let perf = Instance::start(
        "viewer",
        Cli {
            listen: Some("0.0.0.0:3999".parse().unwrap()),
            ..Cli::default()
        },
    );
    let initial = perf.cpu_target();
    for (path, body) in [
        ("/api/set_target", SET_CPU_70),
        ("/api/add_mark", "resource=cpu&label=deploy"),
        ("/api/create_token", "name=x&role=viewer"),
    ] {
        let (status, text) = perf.send("198.51.100.7:1000", post(path, body, &[])).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {text}");
    }
    let push = Request::post("/api/push")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"resource":"custom:x","metrics":{"v":1}}"#.to_owned(),
        ))
        .unwrap();
    let (status, text) = perf.send("198.51.100.7:1000", push).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(perf.cpu_target(), initial);
    assert_eq!(perf.state.monitor.store.stats().change, 0);

    // The same listener with --allow-anonymous-edit lets anonymous users edit.
    let open = Instance::start(
        "viewer-open",
        Cli {
            listen: Some("0.0.0.0:3999".parse().unwrap()),
            allow_anonymous_edit: true,
            ..Cli::default()
        },
    );
    let (status, text) = open
        .send(
            "198.51.100.7:1000",
            post("/api/set_target", SET_CPU_70, &[]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn a_local_request_relayed_by_a_proxy_is_not_the_local_admin() {
    let perf = Instance::start("relayed", Cli::default());
    let (_, body) = perf.send("127.0.0.1:5000", whoami(&[])).await;
    assert!(body.contains("\"role\":\"admin\""), "{body}");
    let relayed = [("x-forwarded-for", "198.51.100.20")];
    let (status, body) = perf
        .send(
            "127.0.0.1:5000",
            post("/api/set_target", SET_CPU_70, &relayed),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn tokens_work_until_revoked_and_are_shown_once() {
    let perf = Instance::start(
        "tokens",
        Cli {
            listen: Some("0.0.0.0:3999".parse().unwrap()),
            auth: Some("proxy".into()),
            trusted_proxies: Some("10.0.0.5".into()),
            admin_groups: Some("perf-admins".into()),
            ..Cli::default()
        },
    );
    let admin = [("remote-user", "root"), ("remote-groups", "perf-admins")];
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/create_token", "name=ci-deploy&role=editor", &admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    let secret = minted["secret"].as_str().unwrap().to_owned();
    let id = minted["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(minted["info"]["created_by"], "root");

    // The list never contains the secret.
    let (_, list) = perf
        .send("10.0.0.5:1", post("/api/tokens", "", &admin))
        .await;
    assert!(
        list.contains("ci-deploy") && !list.contains(&secret),
        "{list}"
    );

    let bearer = format!("Bearer {secret}");
    let with_token = [("authorization", bearer.as_str())];
    let (status, body) = perf
        .send(
            "198.51.100.9:2",
            post("/api/set_target", SET_CPU_70, &with_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(perf.cpu_target(), Some(70.0));

    // An editor token cannot mint tokens.
    let (status, _) = perf
        .send(
            "198.51.100.9:2",
            post("/api/create_token", "name=x&role=viewer", &with_token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/revoke_token", &format!("id={id}"), &admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = perf
        .send(
            "198.51.100.9:2",
            post(
                "/api/set_target",
                "resource=cpu&metric=utilization&value=71",
                &with_token,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A refusal of a JSON route is JSON, whoever makes it (here the identity layer).
    assert_eq!(body, r#"{"error":"the API token is unknown or revoked"}"#);
    assert_eq!(
        perf.cpu_target(),
        Some(70.0),
        "the revoked token changed nothing"
    );

    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/create_token", "name=&role=editor", &admin),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("name: must be 1–64 characters"), "{body}");
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/create_token", "name=x&role=superuser", &admin),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("role: must be viewer, editor or admin"),
        "{body}"
    );
}

#[tokio::test]
async fn editors_tune_evaluation_but_only_admins_change_the_action() {
    let perf = Instance::start("settings", proxy_mode());
    let editor = [("remote-user", "erin"), ("remote-groups", "perf-editors")];
    let admin = [("remote-user", "ada"), ("remote-groups", "perf-admins")];
    let mut settings = perf.state.monitor.store.state().resources
        [&engine::model::ResourceId::new("cpu").unwrap()]
        .settings
        .clone();
    settings.cooldown_secs = 120;
    let form = |s: &engine::model::ResourceSettings| {
        let json = serde_json::to_string(s).unwrap();
        let encoded: String = json
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        format!("resource=cpu&settings={encoded}")
    };
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/set_resource_settings", &form(&settings), &editor),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("cooldown"), "{body}");

    settings.dry_run = false;
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/set_resource_settings", &form(&settings), &editor),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("needs the admin role"), "{body}");
    assert_eq!(perf.state.monitor.store.stats().change, 1);

    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/set_resource_settings", &form(&settings), &admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Bad settings are refused with the engine's rule and change nothing.
    settings.verify_secs = 0;
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post("/api/set_resource_settings", &form(&settings), &admin),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("settings.verify_secs"), "{body}");
    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post(
                "/api/set_resource_settings",
                "resource=cpu&settings=%7B%22windw_secs%22%3A5%7D",
                &admin,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("unknown field `windw_secs`"), "{body}");
    assert_eq!(perf.state.monitor.store.stats().change, 2);
}

fn post_json(path: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn the_json_api_edits_targets_with_the_same_roles_and_rules() {
    let perf = Instance::start("json-api", proxy_mode());
    let editor = [("remote-user", "erin"), ("remote-groups", "perf-editors")];
    let path = "/api/v1/resources/cpu/target";
    let (status, body) = perf
        .send(
            "192.0.2.9:1",
            post_json(path, r#"{"metric":"utilization","value":70}"#, &[]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, body) = perf
        .send(
            "10.0.0.5:1",
            post_json(
                path,
                r#"{"metric":"utilization","value":70,"for_secs":60}"#,
                &editor,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let saved: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(saved["change"], 1);
    assert_eq!(saved["target"]["for_secs"], 60);
    assert_eq!(perf.cpu_target(), Some(70.0));

    for (body, status, needle) in [
        (
            r#"{"metric":"utilization","valu":70}"#,
            StatusCode::BAD_REQUEST,
            "body: unknown field `valu`",
        ),
        (
            r#"{"metric":"utilization","value":"high"}"#,
            StatusCode::BAD_REQUEST,
            "body: invalid type",
        ),
        (
            r#"{"metric":"utilization","value":-5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "target.value",
        ),
        (
            r#"{"metric":"nope","value":5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "target.metric",
        ),
    ] {
        let (got, text) = perf
            .send("10.0.0.5:1", post_json(path, body, &editor))
            .await;
        assert_eq!(got, status, "{body}: {text}");
        assert!(text.contains(needle), "{body}: {text}");
    }
    let (status, _) = perf
        .send(
            "10.0.0.5:1",
            post_json(
                "/api/v1/resources/custom:404/target",
                r#"{"metric":"m","value":1}"#,
                &editor,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        perf.state.monitor.store.stats().change,
        1,
        "refusals used no number"
    );
}
