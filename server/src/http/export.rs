//! Exports of one series: `GET /api/export/{resource}/{metric}.csv?range=…` and
//! `….svg?range=…` (`range` is `5m`, `15m`, `1h`, `24h`, `7d` or `30d`; default `1h`; the
//! last two are read from the history on disk).
//!
//! Resource ids contain `:` and `/` (`disk:/`, `net:eth0`, `custom:42`): the id is one
//! path segment, so a `/` in it must be percent-encoded (`disk%3A%2F`); encoding `:` too
//! is allowed and decoded. Both exports read [`History::range`], which keeps each
//! bucket's min and max, so a spike survives downsampling into the file. Gaps stay gaps:
//! empty CSV fields, breaks in the chart.
//!
//! The SVG is drawn on the server by [`crate::svg`].
//!
//! [`History::range`]: engine::history::History::range

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use engine::history::{Downsampled, Point};
use engine::series::SeriesKey;

use super::error::ApiError;
use crate::state::AppState;
use app::error::AppError;

/// Buckets in a CSV: enough for every raw second of `1h` and every minute of `24h`.
const CSV_POINTS: usize = 3_600;

/// The accepted `range` values and their length in milliseconds.
const RANGES: [(&str, i64); 6] = [
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/api/export/{resource}/{file}", get(export))
        .with_state(app)
}

enum Format {
    Csv,
    Svg,
}

fn refuse(status: StatusCode, field: &str, message: String) -> Response {
    ApiError::from(AppError::new(status.as_u16(), message).with_field(field)).into_response()
}

#[allow(clippy::too_many_lines)] // 151 lines today; split before it grows
async fn export(
    State(app): State<AppState>,
    Path((resource_id, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (metric, format) = match file.rsplit_once('.') {
        Some((metric, "csv")) => (metric, Format::Csv),
        Some((metric, "svg")) => (metric, Format::Svg),
        _ => {
            return refuse(
                StatusCode::NOT_FOUND,
                "format",
                format!("`{file}` is not an export: use {{metric}}.csv or {{metric}}.svg"),
            )
        }
    };
    let range = query.get("range").map_or("1h", String::as_str);
    let Some(&(range, span_ms)) = RANGES.iter().find(|(name, _)| *name == range) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "range",
            format!(
                "range must be one of {}, got `{range}`",
                RANGES.map(|(name, _)| name).join(", ")
            ),
        );
    };
    let state = app.monitor.store.state();
    let Some(resource) = state.resources.get(resource_id.as_str()) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "resource",
            format!(
                "resource `{resource_id}` does not exist (ids with `/` must be percent-encoded in the path, e.g. disk%3A%2F for disk:/)"
            ),
        );
    };
    if resource.metric(metric).is_none() {
        let known: Vec<&str> = resource.metrics.iter().map(|m| m.name.as_str()).collect();
        return refuse(
            StatusCode::NOT_FOUND,
            "metric",
            format!(
                "resource `{resource_id}` has no metric `{metric}` (it has: {})",
                known.join(", ")
            ),
        );
    }

    let to = engine::time::unix_now_ms() + 1;
    let from = to - span_ms;
    let max_points = match format {
        Format::Csv => CSV_POINTS,
        Format::Svg => crate::svg::SVG_POINTS,
    };
    let key = SeriesKey::new(resource.id.as_str(), metric);
    let stored = if span_ms > 86_400_000 {
        let step_ms = if span_ms > 7 * 86_400_000 {
            3_600_000
        } else {
            600_000
        };
        let monitor = app.monitor.clone();
        let keys = vec![key.clone()];
        let read = tokio::task::spawn_blocking(move || {
            monitor.stored_chart(&keys, span_ms, step_ms, to - 1)
        })
        .await;
        match read {
            Ok(Ok(chart)) => Some(chart),
            Ok(Err(why)) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "range", why),
            Err(err) => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "range",
                    format!("history read failed: {err}"),
                )
            }
        }
    } else {
        None
    };
    let (series, unit) = {
        let history = app.monitor.history();
        let unit = history.unit(&key).map(str::to_owned).unwrap_or_default();
        if let Some(chart) = stored {
            let sampled = chart.series.into_iter().next().unwrap_or_default();
            let points = (0..chart.grid.points)
                .map(|i| {
                    Some(engine::history::Point {
                        t: chart.grid.start_ms + i as i64 * chart.grid.step_ms,
                        min: sampled.lows[i]?,
                        max: sampled.highs[i]?,
                        mean: sampled.means[i]?,
                    })
                })
                .collect();
            (
                Some(Downsampled {
                    tier: engine::history::Tier::Aggregate,
                    origin: chart.grid.start_ms,
                    width: chart.grid.step_ms,
                    points,
                }),
                unit,
            )
        } else {
            match history.id(&key) {
                Some(id) => (
                    history.range(id, from, to, max_points),
                    history.info(id).map(|i| i.unit.clone()).unwrap_or_default(),
                ),
                // Configured but never sampled: an empty export, not an error.
                None => (None, String::new()),
            }
        }
    };
    let series = series.unwrap_or(Downsampled {
        tier: engine::history::Tier::Raw,
        origin: from,
        width: span_ms,
        points: Vec::new(),
    });
    let unit = if unit.is_empty() {
        resource
            .metric(metric)
            .map(|m| m.kind.unit().to_owned())
            .unwrap_or_default()
    } else {
        unit
    };

    let stem = format!("perfpilot-{}-{metric}-{range}", file_safe(&resource_id));
    match format {
        Format::Csv => {
            let body = csv(&series);
            attach(body, "text/csv; charset=utf-8", &stem, "csv", "attachment")
        }
        Format::Svg => match crate::svg::svg(resource, metric, &unit, &series, from, to) {
            Ok(body) => {
                let mut response = attach(body, "image/svg+xml", &stem, "svg", "inline");
                // Opened directly, an SVG is a document: it must not run anything.
                response.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
                );
                response
            }
            Err(err) => {
                tracing::error!(%err, "Cannot draw an SVG export");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "chart",
                    format!("cannot draw the chart: {err}"),
                )
            }
        },
    }
}

fn attach(body: String, content_type: &'static str, stem: &str, ext: &str, how: &str) -> Response {
    let disposition = format!("{how}; filename=\"{stem}.{ext}\"");
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A file name part: ids like `disk:/` become `disk__`.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `timestamp_ms,iso_time,min,mean,max`, one row per bucket; a gap has empty values.
pub fn csv(series: &Downsampled) -> String {
    let mut out = String::with_capacity(40 + series.points.len() * 64);
    out.push_str("timestamp_ms,iso_time,min,mean,max\n");
    for (i, point) in series.points.iter().enumerate() {
        let t = series.origin + i as i64 * series.width;
        let _ = write!(out, "{t},{},", iso_time(t));
        if let Some(Point { min, mean, max, .. }) = point {
            let _ = write!(out, "{min},{mean},{max}");
        } else {
            out.push_str(",,");
        }
        out.push('\n');
    }
    out
}

/// `2023-11-14T22:13:20.000Z` (UTC, millisecond precision), from the UI's one calendar
/// implementation so a CSV and the page never disagree.
pub fn iso_time(unix_ms: i64) -> String {
    let seconds = app::format::utc_iso(unix_ms);
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        unix_ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_matches_known_dates() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn csv_leaves_gaps_empty() {
        let p = Point {
            t: 0,
            min: 1.0,
            max: 3.0,
            mean: 2.0,
        };
        let series = Downsampled {
            tier: engine::history::Tier::Raw,
            origin: 1_700_000_000_000,
            width: 1000,
            points: vec![Some(p), None],
        };
        assert_eq!(
            csv(&series),
            "timestamp_ms,iso_time,min,mean,max\n\
             1700000000000,2023-11-14T22:13:20.000Z,1,2,3\n\
             1700000001000,2023-11-14T22:13:21.000Z,,,\n"
        );
    }

    #[test]
    fn file_names_have_no_path_characters() {
        assert_eq!(file_safe("disk:/"), "disk__");
        assert_eq!(file_safe("custom:42"), "custom_42");
    }
}
