//! `GET /api/export/{resource}/{metric}.{csv,svg}` in-process: the CSV's rows and gaps,
//! the SVG's title, target line and headers, percent-encoded ids, and the 404/400
//! answers for unknown resources, metrics, formats and ranges.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use engine::changes::Mutation;
use engine::model::{
    Comparator, Metric, MetricKind, Resource, ResourceId, ResourceType, Statistic, Target,
};
use engine::series::{SeriesInfo, SeriesKey};
use http_body_util::BodyExt;
use server::config::{Cli, Settings};
use server::state::AppState;
use tower::ServiceExt;

struct Server {
    router: axum::Router,
    site: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.site);
    }
}

/// A server with `disk:/bench` (metric `latency_ms`, target ≤ 80) holding five samples
/// 10–6 s ago, one of them a gap.
fn server(name: &str) -> Server {
    let site = std::env::temp_dir().join(format!("perfpilot-export-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&site).unwrap();
    let cli = Cli {
        site_root: Some(site.clone()),
        ephemeral: true,
        ..Cli::default()
    };
    let settings = Settings::resolve(&cli).unwrap();
    let monitor = server::state::start(&settings).unwrap();
    let router = server::http::router::app(AppState::new(settings, monitor.clone()));

    let mut resource = Resource::new(
        ResourceId::new("disk:/bench").unwrap(),
        ResourceType::Disk,
        "Bench <disk>",
    );
    resource.metrics = vec![Metric::new("latency_ms", MetricKind::Latency)];
    resource.target = Some(Target {
        metric: "latency_ms".into(),
        comparator: Comparator::Le,
        value: 80.0,
        statistic: Statistic::P95,
        for_secs: 0,
    });
    monitor
        .store
        .apply(Mutation::AddResource { resource })
        .unwrap();
    {
        let mut history = monitor.history.write().unwrap();
        let id = history
            .register(SeriesInfo::new(
                SeriesKey::new("disk:/bench", "latency_ms"),
                ResourceType::Disk,
                "Bench <disk>",
                Some(MetricKind::Latency),
                "ms",
            ))
            .unwrap();
        let now = engine::time::unix_now_ms() / 1000 * 1000;
        for (i, value) in [Some(10.0), Some(12.5), None, Some(95.0), Some(20.0)]
            .into_iter()
            .enumerate()
        {
            history
                .append(id, now - 10_000 + i as i64 * 1000, value)
                .unwrap();
        }
    }
    Server { router, site }
}

async fn get(server: &Server, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn csv_has_a_row_per_second_with_empty_fields_for_gaps() {
    let server = server("csv");
    let (status, headers, body) = get(
        &server,
        "/api/export/disk%3A%2Fbench/latency_ms.csv?range=5m",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"perfpilot-disk__bench-latency_ms-5m.csv\""
    );
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("timestamp_ms,iso_time,min,mean,max"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 5), "{body}");
    let values: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    // The five samples, in order, with the gap as an empty field, at one-second steps.
    let start = values
        .iter()
        .position(|v| *v == "10")
        .expect("first sample");
    assert_eq!(&values[start..start + 5], ["10", "12.5", "", "95", "20"]);
    let t0: i64 = rows[start][0].parse().unwrap();
    let t1: i64 = rows[start + 1][0].parse().unwrap();
    assert_eq!(t1 - t0, 1000);
    assert_eq!(rows[start][1], server::http::export::iso_time(t0));
    assert_eq!(rows[start + 2][2..], ["", "", ""]);
}

#[tokio::test]
async fn svg_draws_title_target_and_axes() {
    let server = server("svg");
    let (status, headers, body) = get(
        &server,
        "/api/export/disk%3A%2Fbench/latency_ms.svg?range=1h",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(body.starts_with("<svg"), "{}", &body[..body.len().min(200)]);
    // The resource name is escaped, not injected as markup.
    assert!(
        body.contains("Bench &lt;disk&gt; — latency"),
        "title missing"
    );
    assert!(!body.contains("latency_ms"), "the metric is named in words");
    assert!(body.contains("target ≤ 80"), "target legend missing");
    assert!(body.contains("latency (ms)"), "axis label missing");
    assert!(body.contains("time (UTC)"), "axis label missing");
    assert!(body.contains("<polyline"), "no series line drawn");
}

#[tokio::test]
async fn colon_may_stay_unencoded_and_every_range_answers() {
    let server = server("raw-colon");
    for range in ["5m", "1h", "24h"] {
        let path = format!("/api/export/disk:%2Fbench/latency_ms.csv?range={range}");
        let (status, headers, body) = get(&server, &path).await;
        assert_eq!(status, StatusCode::OK, "{range}: {body}");
        assert!(headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .ends_with(&format!("-{range}.csv\"")));
        assert!(body.starts_with("timestamp_ms,iso_time,min,mean,max\n"));
    }
    // Without `range` the last hour is exported.
    let (status, headers, _) = get(&server, "/api/export/disk:%2Fbench/latency_ms.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .ends_with("-1h.csv\""));
}

#[tokio::test]
async fn unknown_resource_is_404_with_an_encoding_hint() {
    let server = server("unknown-resource");
    let (status, _, body) = get(&server, "/api/export/custom%3A404/value.csv").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["field"], "resource");
    let message = json["error"].as_str().unwrap();
    assert!(message.contains("`custom:404` does not exist"), "{message}");
    assert!(message.contains("disk%3A%2F"), "{message}");
}

#[tokio::test]
async fn unknown_metric_is_404_listing_the_metrics() {
    let server = server("unknown-metric");
    let (status, _, body) = get(&server, "/api/export/disk%3A%2Fbench/iops.svg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["field"], "metric");
    assert_eq!(
        json["error"],
        "resource `disk:/bench` has no metric `iops` (it has: latency_ms)"
    );
}

#[tokio::test]
async fn bad_range_is_400_naming_the_allowed_ones() {
    let server = server("bad-range");
    let (status, _, body) = get(
        &server,
        "/api/export/disk%3A%2Fbench/latency_ms.csv?range=2h",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["field"], "range");
    assert_eq!(
        json["error"],
        "range must be one of 5m, 15m, 1h, 24h, 7d, 30d, got `2h`"
    );
}

#[tokio::test]
async fn unknown_format_is_404_naming_the_formats() {
    let server = server("bad-format");
    let (status, _, body) = get(&server, "/api/export/disk%3A%2Fbench/latency_ms.png").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("use {metric}.csv or {metric}.svg"), "{body}");
}
