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
            target_state: engine::model::TargetState::WithinTarget,
            judged: value,
            advice: None,
            forecast: None,
            crossing: None,
            anomalies: None,
            optimizer: None,
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

/// Every JSON route with hostile methods, path segments, query strings and bodies, from a
/// seeded generator (the same 1,500 requests every run): never a 5xx, a refusal is always
/// the documented JSON body, no answer takes 5 s, a credential sent in a URL never comes
/// back, and the server is still ready afterwards.
#[test]
#[allow(clippy::too_many_lines)] // 192 lines today; split before it grows
fn every_json_route_refuses_in_json_and_never_fails() {
    const REQUESTS: usize = 1_500;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let segments = [
        "cpu",
        "memory",
        "custom:1",
        "database:app",
        "%c0%ae%c0%ae%2f",
        "%ff",
        "..",
        "%00",
        "a%2Fb",
        "%E2%80%AE",
        "NaN",
        "=cmd",
        "x",
    ];
    let urls = [
        "http://perf:SECRET@127.0.0.1:1",
        "postgresql://perf:SECRET@127.0.0.1:1/app",
        "redis://:SECRET@127.0.0.1:1/0",
        "127.0.0.1:1",
        "not a url",
        "",
        "http://127.0.0.1:1/?token=SECRET",
    ];
    let strings = [
        "",
        "cpu",
        "orders",
        "a/b",
        "\u{202e}gnp.exe",
        "\u{feff}x",
        "%s%n",
        "=cmd",
        "\u{0}\u{0}",
        "NaN",
        "65",
        "utilization",
    ];
    for i in 0..REQUESTS {
        let segment = rng.pick(&segments);
        let (method, path) = match rng.below(16) {
            0 => (
                "GET",
                format!(
                    "/api/audit?q={}&limit={}",
                    percent_encoded(rng.pick(&strings)),
                    percent_encoded(rng.pick(&strings))
                ),
            ),
            1 => (
                "GET",
                format!("/api/v1/report?range={}", rng.pick(&segments)),
            ),
            2 => ("POST", format!("/api/v1/resources/{segment}/target")),
            3 => ("GET", "/api/v1/alerts".to_owned()),
            4 => ("POST", "/api/v1/silences".to_owned()),
            5 => ("DELETE", format!("/api/v1/silences/{segment}")),
            6 => ("POST", format!("/api/v1/alerts/{segment}/ack")),
            7 => ("POST", format!("/api/v1/alert-channels/{segment}/test")),
            8 => ("POST", "/api/v1/databases".to_owned()),
            9 => ("POST", "/api/v1/caches".to_owned()),
            10 => ("POST", "/api/v1/fleets".to_owned()),
            11 => ("POST", format!("/api/v1/resources/{segment}/invalidate")),
            12 => (
                "DELETE",
                format!(
                    "/api/v1/resources/{}",
                    rng.pick(&["%ff", "custom:9", "database:none", "a%2Fb"])
                ),
            ),
            13 => (
                "GET",
                format!(
                    "/api/export/{segment}/{}?range={}",
                    rng.pick(&["utilization.csv", "x", "%c0"]),
                    rng.pick(&segments)
                ),
            ),
            14 => ("POST", "/api/push".to_owned()),
            _ => (
                rng.pick(&["PUT", "PATCH", "GET", "DELETE", "OPTIONS"]),
                format!(
                    "/api/{}",
                    rng.pick(&[
                        "v1/databases",
                        "nosuch",
                        "v1/resources/cpu/target",
                        "v1/silences",
                        "push"
                    ])
                ),
            ),
        };
        let mut body = serde_json::Map::new();
        for _ in 0..rng.below(6) {
            let key = rng.pick(&[
                "name",
                "url",
                "kind",
                "password",
                "password_file",
                "value",
                "metric",
                "comparator",
                "statistic",
                "for_secs",
                "pattern",
                "confirm",
                "comment",
                "resource",
                "minutes",
                "selector",
                "group",
                "level",
                "samples",
            ]);
            let value = match rng.below(5) {
                0 => Value::from(rng.pick(&urls)),
                1 => Value::from(rng.pick(&strings)),
                2 => Value::from(rng.below(200) as i64 - 100),
                3 => Value::Bool(rng.below(2) == 0),
                _ => json!([rng.pick(&strings)]),
            };
            body.insert(key.to_owned(), value);
        }
        let body = match rng.below(8) {
            0 => b"{not json".to_vec(),
            1 => vec![0xff, 0xfe, 0x00],
            _ => Value::Object(body).to_string().into_bytes(),
        };
        let request = Request::builder()
            .method(method)
            .uri(&path)
            .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body))
            .unwrap();
        let router = ROUTER.clone();
        let started = std::time::Instant::now();
        let (status, content_type, text) = RUNTIME.block_on(async {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                content_type,
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        });
        let took = started.elapsed();
        let what = format!("request {i}: {method} {path}: {status} {text:.300}");
        assert!(
            took < std::time::Duration::from_secs(5),
            "{what} took {took:?}"
        );
        assert!(!status.is_server_error(), "{what}");
        assert!(!text.contains("SECRET"), "a credential came back: {what}");
        if status.is_client_error() {
            assert!(
                content_type.starts_with("application/json"),
                "{what} ({content_type})"
            );
            let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}"));
            assert!(parsed["error"].is_string(), "{what}");
        }
    }
    let request = Request::get("/readyz")
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
        .body(Body::empty())
        .unwrap();
    let router = ROUTER.clone();
    let (status, text) = RUNTIME.block_on(async {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    });
    // The fuzz site has no bundle: ready apart from that one reason.
    for problem in ["monitor task", "host source", "database", "changes"] {
        assert!(
            status == StatusCode::OK || !text.contains(problem),
            "{status} {text}"
        );
    }
}

/// Every byte of `text` as `%XX`: any string becomes a valid query value.
fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A small seeded generator: the same requests every run, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
