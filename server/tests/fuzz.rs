//! Arbitrary and near-valid input to every JSON (and form) body the server reads from a
//! client: the live websocket frame the browser parses (`LiveMessage`, deserialized by
//! hand), the push API, and the server functions' bodies. Nothing may panic or answer
//! 5xx; frames the server writes always read back. Bounded case counts keep CI fast.

use std::net::SocketAddr;
use std::sync::LazyLock;

use app::live::{CardTick, LiveMessage, Overview};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use engine::model::OptimizationStatus;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use server::config::{Cli, Settings};
use server::state::AppState;
use tower::ServiceExt;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("tick".to_owned()),
            Just("overview".to_owned()),
            Just("optimized".to_owned()),
            Just("cpu".to_owned()),
            "\\PC{0,24}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("cards".to_owned()),
                        Just("at_unix_ms".to_owned()),
                        "[a-z_]{1,10}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn tick(at: i64, value: Option<f32>) -> LiveMessage {
    LiveMessage::Tick {
        at_unix_ms: at,
        cards: vec![CardTick {
            id: "cpu".into(),
            value,
            status: OptimizationStatus::Optimized,
            reason: "within target".into(),
            top: None,
            evaluated: true,
            pending: false,
        }],
        alerts: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn live_frames_never_panic_the_browser_parser(doc in any_json(), text in "\\PC{0,64}") {
        let _ = serde_json::from_str::<LiveMessage>(&doc.to_string());
        let _ = serde_json::from_str::<LiveMessage>(&text);
        // Tagged first, as the server writes, with arbitrary fields after the tag.
        for tag in ["tick", "overview"] {
            let mut framed = format!("{{\"type\":\"{tag}\"");
            if let Value::Object(map) = &doc {
                for (k, v) in map {
                    framed.push_str(&format!(",{}:{}", Value::from(k.as_str()), v));
                }
            }
            framed.push('}');
            if let Ok(LiveMessage::Tick { at_unix_ms, cards, alerts }) =
                serde_json::from_str::<LiveMessage>(&framed)
            {
                // A parsed tick must also apply without panicking.
                let mut overview = Overview::default();
                overview.apply_tick(at_unix_ms, &cards, alerts);
            }
        }
    }

    #[test]
    fn frames_the_server_writes_always_read_back(
        at in any::<i64>(),
        value in proptest::option::of(-1e30f32..1e30),
    ) {
        let message = tick(at, value);
        let json = serde_json::to_string(&message).unwrap();
        let back: LiveMessage = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, message);
    }
}

/// One runtime and one router for all cases: the bodies below go to server functions
/// and the push route, which render no page.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

static ROUTER: LazyLock<axum::Router> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let dir = std::env::temp_dir().join(format!("perfpilot-fuzz-{}", std::process::id()));
        let settings = Settings::resolve(&Cli {
            site_root: Some(dir),
            // The fuzzer is one client sending fast; limits are tested elsewhere.
            push_rate: Some(100_000),
            push_burst: Some(100_000),
            ephemeral: true,
            ..Cli::default()
        })
        .unwrap();
        let monitor = server::state::start(&settings).unwrap();
        server::http::router::app(AppState::new(settings, monitor))
    })
});

fn post(path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
    let request = Request::post(path)
        // A local admin, so role checks pass and the body is really parsed.
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body))
        .unwrap();
    let router = ROUTER.clone();
    RUNTIME.block_on(async {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

const FUNCTIONS: &[&str] = &[
    "/api/set_target",
    "/api/add_mark",
    "/api/restore_snapshot",
    "/api/snapshot_diff",
    "/api/changes",
    "/api/overview",
];

fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("cpu".to_owned()),
        Just("utilization".to_owned()),
        Just("65".to_owned()),
        Just("-1e309".to_owned()),
        Just("NaN".to_owned()),
        Just("1".to_owned()),
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn server_function_bodies_never_panic_or_answer_5xx(
        function in prop::sample::select(FUNCTIONS),
        fields in prop::collection::vec(
            (
                prop_oneof![
                    Just("resource"), Just("metric"), Just("value"), Just("for_secs"),
                    Just("label"), Just("snapshot"), Just("other"),
                ],
                form_value(),
            ),
            0..6,
        ),
        raw in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let form: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
            .collect::<Vec<_>>()
            .join("&");
        let (status, body) = post(function, "application/x-www-form-urlencoded", form.into_bytes());
        prop_assert!(!status.is_server_error(), "{function}: {status} {body}");
        let (status, body) = post(function, "application/x-www-form-urlencoded", raw.clone());
        prop_assert!(!status.is_server_error(), "{function} raw: {status} {body}");
        let (status, body) = post(function, "application/json", raw);
        prop_assert!(!status.is_server_error(), "{function} json: {status} {body}");
    }

    #[test]
    fn push_bodies_never_panic_or_answer_5xx(doc in any_json(), id in 0u32..50) {
        for body in [
            doc.to_string(),
            json!({"samples": [doc.clone()]}).to_string(),
            json!({"samples": [{"resource": format!("custom:{id}"), "metric": "m", "value": doc}]})
                .to_string(),
        ] {
            let (status, text) = post("/api/push", "application/json", body.into_bytes());
            prop_assert!(!status.is_server_error(), "{status} {text}");
            if status != StatusCode::OK {
                // Refusals are the documented JSON shape.
                let parsed: Value = serde_json::from_str(&text).unwrap();
                prop_assert!(parsed["error"].is_string(), "{text}");
            }
        }
    }
}
