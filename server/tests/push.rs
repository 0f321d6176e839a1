//! `POST /api/push` in-process (`oneshot`): an accepted push reaches history and the
//! overview; every refused one gets the right status and message and changes nothing —
//! neither the change counter nor the history.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
use axum::http::{header, Request, StatusCode};
use engine::changes::Mutation;
use engine::model::{Metric, MetricKind, Resource, ResourceId, ResourceType};
use engine::series::SeriesKey;
use http_body_util::BodyExt;
use serde_json::Value;
use server::config::{Cli, Settings};
use server::state::AppState;
use server::state::Monitor;
use tower::ServiceExt;

struct Server {
    router: axum::Router,
    monitor: Monitor,
    site: std::path::PathBuf,
}

impl Server {
    fn start(name: &str, cli: Cli) -> Server {
        // An empty site: the API does not need the browser bundle.
        let site =
            std::env::temp_dir().join(format!("perfpilot-push-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&site).unwrap();
        let cli = Cli {
            site_root: Some(site.clone()),
            ephemeral: true,
            ..cli
        };
        let settings = Settings::resolve(&cli).unwrap();
        let monitor = server::state::start(&settings).unwrap();
        let router = server::http::router::app(AppState::new(settings, monitor.clone()))
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        Server {
            router,
            monitor,
            site,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
        (status, headers, body)
    }

    async fn push(&self, body: impl Into<String>) -> (StatusCode, Value) {
        let (status, _, body) = self.send(push_request(body)).await;
        (status, body)
    }

    /// Change counter and the custom series in history: what a refused push must not move.
    fn fingerprint(&self) -> (u64, Vec<String>) {
        let history = self.monitor.history.read().unwrap();
        let custom = history
            .series()
            .iter()
            .filter(|s| s.key.resource.starts_with("custom:"))
            .map(|s| format!("{}/{}", s.key.resource, s.key.metric))
            .collect();
        (self.monitor.store.stats().change, custom)
    }

    fn latest(&self, resource: &str, metric: &str) -> Option<f32> {
        let history = self.monitor.history.read().unwrap();
        let id = history.id(&SeriesKey::new(resource, metric))?;
        history.get(id)?.latest()?.1
    }

    fn add_custom(&self, id: u32, metrics: &[&str]) {
        let mut resource = Resource::new(
            ResourceId::new(&format!("custom:{id}")).unwrap(),
            ResourceType::Custom(id),
            &format!("Custom {id}"),
        );
        resource.metrics = metrics
            .iter()
            .map(|m| Metric::new(m, MetricKind::Throughput))
            .collect();
        resource.target = None;
        self.monitor
            .store
            .apply(Mutation::AddResource { resource })
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.site);
    }
}

fn push_request(body: impl Into<String>) -> Request<Body> {
    Request::post("/api/push")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into()))
        .unwrap()
}

fn creating() -> Cli {
    Cli {
        push_create_resources: true,
        ..Cli::default()
    }
}

fn first_error(body: &Value) -> (&str, &str, &str) {
    let e = &body["errors"][0];
    (
        e["field"].as_str().unwrap(),
        e["rule"].as_str().unwrap(),
        e["message"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn accepted_push_creates_the_resource_and_shows_in_history_and_overview() {
    let server = Server::start("accepted", creating());
    let before = server.monitor.store.stats().change;
    let (status, body) = server
        .push(r#"{"samples":[{"resource":"custom:42","metric":"queue_depth","value":3.5}]}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["stored"], 1);
    assert_eq!(body["created"], serde_json::json!(["custom:42"]));
    // Creating the resource is one counted change.
    assert_eq!(server.monitor.store.stats().change, before + 1);
    assert_eq!(server.latest("custom:42", "queue_depth"), Some(3.5));
    let overview = server.monitor.overview();
    let card = overview
        .cards
        .iter()
        .find(|c| c.id == "custom:42")
        .expect("a card for the new resource");
    assert_eq!(card.metric, "queue_depth");
    assert_eq!(card.value, Some(3.5));

    // A push names no unit, so a queue depth is a plain number: never shown as a rate
    // ("/s"), in its chart's data or in its target as the resource page states it.
    let created = server
        .monitor
        .store
        .state()
        .resources
        .get("custom:42")
        .cloned()
        .expect("the created resource");
    assert_eq!(
        created.metric("queue_depth").map(|m| m.kind),
        Some(MetricKind::Number)
    );
    let target = Request::post("/api/v1/resources/custom%3A42/target")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"metric":"queue_depth","value":10,"for_secs":0}"#,
        ))
        .unwrap();
    let (status, _, answer) = server.send(target).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let series = Request::get("/api/series?resource=custom%3A42&metric=queue_depth&range=5m")
        .body(Body::empty())
        .unwrap();
    let (status, _, series) = server.send(series).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series["unit"], "", "{series}");
    assert_eq!(series["kind"], "number", "{series}");
    let kind: MetricKind = serde_json::from_value(series["kind"].clone()).unwrap();
    let saved: engine::model::Target = serde_json::from_value(series["target"].clone()).unwrap();
    let shown = saved.describe_with_band(kind, 10.0);
    assert_eq!(shown, "p95 queue depth ≤ 10 (breaches above 11)");
    assert!(!shown.contains("/s"), "{shown}");

    // A second push to the now-known resource is data, not a change.
    let changes_before_second_push = server.monitor.store.stats().change;
    let (status, body) = server
        .push(r#"{"resource":"custom:42","metric":"queue_depth","value":4}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], serde_json::json!([]));
    assert_eq!(
        server.monitor.store.stats().change,
        changes_before_second_push
    );
}

#[tokio::test]
async fn known_resource_accepts_pushes_without_the_create_flag() {
    let server = Server::start("known", Cli::default());
    server.add_custom(7, &["depth"]);
    let before = server.fingerprint();
    let now = engine::time::unix_now_ms();
    let body = format!(
        r#"{{"samples":[{{"resource":"custom:7","metric":"depth","value":1,"timestamp":{}}},{{"resource":"custom:7","metric":"depth","value":2,"timestamp":{now}}}]}}"#,
        now - 2_000
    );
    let (status, body) = server.push(body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(server.latest("custom:7", "depth"), Some(2.0));
    assert_eq!(
        server.fingerprint().0,
        before.0,
        "pushing data is not a change"
    );
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_body() {
    // One rule for every JSON route: a body that cannot be read as JSON is malformed (400,
    // as the target API answers); one that breaks a rule is 422.
    let server = Server::start("malformed", creating());
    let before = server.fingerprint();
    let (status, body) = server.push(r#"{"samples":[{"resource":"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "body");
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("body", "invalid_json"));
    assert!(message.starts_with("body: is not valid JSON"), "{message}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("nothing was stored"));
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn nan_and_out_of_range_values_are_refused() {
    let server = Server::start("nan", creating());
    let before = server.fingerprint();
    // JSON has no NaN literal: a client that prints one sends invalid JSON.
    let (status, body) = server
        .push(r#"{"resource":"custom:1","metric":"m","value":NaN}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_error(&body).1, "invalid_json");
    // A finite f64 that does not fit the f32 history is refused too, naming the sample.
    let (status, body) = server
        .push(r#"{"samples":[{"resource":"custom:1","metric":"m","value":1},{"resource":"custom:1","metric":"m","value":1e39}]}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("samples[1].value", "not_finite"));
    assert_eq!(
        message,
        "samples[1].value: must be a finite number (within ±3.4e38)"
    );
    assert_eq!(
        server.fingerprint(),
        before,
        "the good sample was not stored either"
    );
}

#[tokio::test]
async fn non_custom_resource_ids_are_refused() {
    let server = Server::start("bad-id", creating());
    let before = server.fingerprint();
    let (status, body) = server
        .push(r#"{"resource":"cpu","metric":"utilization","value":50}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("resource", "not_custom_resource"));
    assert!(message.contains("custom:<id>"), "{message}");
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn too_many_samples_are_refused() {
    let server = Server::start("too-many", creating());
    let before = server.fingerprint();
    let one = r#"{"resource":"custom:1","metric":"m","value":1}"#;
    let body = format!(r#"{{"samples":[{}]}}"#, vec![one; 1001].join(","));
    assert!(body.len() < server::http::push::MAX_PUSH_BODY);
    let (status, body) = server.push(body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("samples", "too_many"));
    assert_eq!(
        message,
        "samples: must contain at most 1000 samples (got 1001)"
    );
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn oversized_body_is_413_naming_the_limit() {
    let server = Server::start("oversized", creating());
    let before = server.fingerprint();
    let padding = " ".repeat(server::http::push::MAX_PUSH_BODY);
    let (status, body) = server
        .push(format!(
            r#"{{"resource":"custom:1","metric":"m","value":1}}{padding}"#
        ))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("body", "too_large"));
    assert!(message.contains("65536 bytes"), "{message}");
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn unknown_resource_without_the_flag_is_404_naming_it_and_the_flag() {
    let server = Server::start("unknown", Cli::default());
    server.add_custom(1, &["m"]);
    let before = server.fingerprint();
    // The known resource's sample is valid, but the batch is refused as a whole.
    let (status, body) = server
        .push(r#"{"samples":[{"resource":"custom:1","metric":"m","value":1},{"resource":"custom:99","metric":"m","value":1}]}"#)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("samples[1].resource", "unknown_resource"));
    assert!(message.contains("`custom:99` does not exist"), "{message}");
    assert!(message.contains("--push-create-resources"), "{message}");
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn unknown_metric_of_a_known_resource_is_404_listing_its_metrics() {
    let server = Server::start("unknown-metric", creating());
    server.add_custom(3, &["depth", "age"]);
    let before = server.fingerprint();
    let (status, body) = server
        .push(r#"{"resource":"custom:3","metric":"size","value":1}"#)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("samples[0].metric", "unknown_metric"));
    assert!(
        message.contains("has no metric `size` (it has: depth, age)"),
        "{message}"
    );
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn rate_limit_is_per_client_ip_with_retry_after() {
    let server = Server::start(
        "rate",
        Cli {
            push_rate: Some(1),
            push_burst: Some(1),
            ..creating()
        },
    );
    let (status, body) = server
        .push(r#"{"resource":"custom:1","metric":"m","value":1}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One token per second: keep pushing until refused. Each attempt would create a new
    // resource, so the refused one must leave no trace.
    let mut refused = None;
    for attempt in 100..150 {
        let request = push_request(format!(
            r#"{{"resource":"custom:{attempt}","metric":"m","value":1}}"#
        ));
        let before = server.fingerprint();
        let (status, headers, body) = server.send(request).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(server.fingerprint(), before, "a refused push changed state");
            refused = Some((attempt, headers, body));
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (attempt, headers, body) =
        refused.expect("50 pushes within their seconds were never limited");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One token per second at most one second away.
    assert_eq!(retry, 1);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("request", "rate_limited"));
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("at most 1 requests/s"), "{message}");
    assert!(server
        .monitor
        .store
        .state()
        .resources
        .get(format!("custom:{attempt}").as_str())
        .is_none());

    // Another client address has its own bucket.
    let mut request = push_request(r#"{"resource":"custom:1","metric":"m","value":2}"#);
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 2], 40000))));
    let (status, _, body) = server.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn one_push_may_not_create_more_than_the_cap_of_resources() {
    let server = Server::start("create-cap", creating());
    let before = server.fingerprint();
    let cap = server::http::push::MAX_CREATED_PER_PUSH;
    let samples: Vec<String> = (0..=cap)
        .map(|i| {
            format!(
                r#"{{"resource":"custom:{}","metric":"m","value":1}}"#,
                500 + i
            )
        })
        .collect();
    let (status, body) = server
        .push(format!(r#"{{"samples":[{}]}}"#, samples.join(",")))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, rule, message) = first_error(&body);
    assert_eq!((field, rule), ("samples", "too_many_new_resources"));
    assert!(
        message.contains(&format!(
            "at most {cap} new resources per push, got {}",
            cap + 1
        )),
        "{message}"
    );
    assert_eq!(server.fingerprint(), before);
}

#[tokio::test]
async fn live_ticks_carry_the_fresh_pushed_value_instead_of_a_gap() {
    let server = Server::start("live", creating());
    let mut frames = server.monitor.hub.subscribe();
    let (status, body) = server
        .push(r#"{"samples":[{"resource":"custom:7","metric":"queue_depth","value":12}]}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Skip the overview frame the change broadcasts; the next tick frame is the check.
    let tick = loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), frames.recv())
            .await
            .expect("a live frame within 10 s")
            .expect("the hub is open");
        let message: Value = serde_json::from_str(frame.as_str()).unwrap();
        if message["type"] == "tick" {
            break message;
        }
    };
    let card = tick["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "custom:7")
        .expect("the custom card is in the tick");
    assert_eq!(card["value"], 12.0);
}
