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
//! The SVG is drawn on the server with plotters' SVG backend. Text is emitted as
//! `<text>` elements (no font is rasterised), so the crate needs no font features.
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
use engine::model::{Comparator, Resource};
use engine::series::SeriesKey;
use plotters::prelude::*;

use super::error::ApiError;
use crate::state::AppState;
use app::error::AppError;

/// Buckets in a CSV: enough for every raw second of `1h` and every minute of `24h`.
const CSV_POINTS: usize = 3_600;
/// Buckets in a chart: about one per two horizontal pixels.
pub(crate) const SVG_POINTS: usize = 480;
/// A chart whose data spans less than this share of its period is drawn over the data's
/// own extent (and says so): five minutes of data in a 24 h chart would be a dot.
pub(crate) const FULL_SHARE: f64 = 0.9;
const SVG_SIZE: (u32, u32) = (960, 360);

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
        Format::Svg => SVG_POINTS,
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
        Format::Svg => match svg(resource, metric, &unit, &series, from, to) {
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

/// Contiguous runs of non-gap points as `(t, point)`, so lines break at gaps.
fn runs(series: &Downsampled) -> Vec<Vec<(i64, Point)>> {
    let mut runs: Vec<Vec<(i64, Point)>> = vec![Vec::new()];
    for (i, point) in series.points.iter().enumerate() {
        let t = series.origin + i as i64 * series.width + series.width / 2;
        match point {
            Some(p) => runs.last_mut().expect("never empty").push((t, *p)),
            None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The first bucket's start and the last bucket's end among the buckets with data.
fn data_extent(series: &Downsampled) -> Option<(i64, i64)> {
    let start = |i: usize| series.origin + i as i64 * series.width;
    let first = series.points.iter().position(Option::is_some)?;
    let last = series.points.iter().rposition(Option::is_some)?;
    Some((start(first), start(last) + series.width.max(1)))
}

/// The chart: min–max band, mean line, the target as a dashed line when it is on this
/// metric, time and value axes, and the title "<resource name> — <metric>".
pub fn svg(
    resource: &Resource,
    metric: &str,
    unit: &str,
    series: &Downsampled,
    from: i64,
    to: i64,
) -> DrawResult<String> {
    svg_in(
        resource,
        metric,
        unit,
        series,
        from,
        to,
        "no samples in this range",
    )
}

/// [`svg`] over `from`–`to`, saying `empty` when the series has no sample. Data that
/// spans less than [`FULL_SHARE`] of the period is drawn over its own extent, and the
/// time axis says so; a sample with no neighbour (a run of one bucket) is a dot, since a
/// line of one point draws nothing.
#[allow(clippy::too_many_lines)] // 136 lines today; split before it grows
pub fn svg_in(
    resource: &Resource,
    metric: &str,
    unit: &str,
    series: &Downsampled,
    from: i64,
    to: i64,
    empty: &str,
) -> DrawResult<String> {
    let runs = runs(series);
    let (from, to, partial) = match data_extent(series) {
        Some((first, last)) if ((last - first) as f64) < (to - from) as f64 * FULL_SHARE => {
            (first, last.max(first + 1), true)
        }
        _ => (from, to, false),
    };
    let target = resource.target.as_ref().filter(|t| t.metric == metric);
    let values = runs
        .iter()
        .flatten()
        .flat_map(|(_, p)| [f64::from(p.min), f64::from(p.max)])
        .chain(target.map(|t| t.value));
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-6);
    let (lo, hi) = (
        if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        },
        hi + pad,
    );

    let label = engine::model::metric_label(metric);
    let title = format!("{} — {label}", resource.name);
    let y_desc = if unit.is_empty() {
        label
    } else {
        format!("{label} ({unit})")
    };
    let x_desc = if partial {
        let at = |t: i64| iso_time(t)[..19].replace('T', " ");
        format!(
            "time (UTC) · the data covers only {} – {} of this period",
            at(from),
            at(to)
        )
    } else {
        "time (UTC)".to_owned()
    };
    // Ticks at round UTC times, as on the resource page's chart.
    let (ticks, tick_step) = app::resource_data::time_ticks(from, to, 8);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SVG_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((from..to).with_key_points(ticks), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_labels(6)
            .x_label_formatter(&|t| app::resource_data::time_label(*t, tick_step))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let band = RGBColor(70, 130, 180);
        for run in &runs {
            if let [(t, p)] = run.as_slice() {
                // One bucket alone: a dot at its mean, and its min–max as a whisker.
                if p.min != p.max {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(*t, f64::from(p.min)), (*t, f64::from(p.max))],
                        band.mix(0.5).stroke_width(2),
                    )))?;
                }
                chart.draw_series(std::iter::once(Circle::new(
                    (*t, f64::from(p.mean)),
                    4,
                    band.filled(),
                )))?;
                continue;
            }
            if run.iter().any(|(_, p)| p.min != p.max) {
                let outline: Vec<(i64, f64)> = run
                    .iter()
                    .map(|(t, p)| (*t, f64::from(p.max)))
                    .chain(run.iter().rev().map(|(t, p)| (*t, f64::from(p.min))))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    band.mix(0.25).filled(),
                )))?;
            }
            chart.draw_series(LineSeries::new(
                run.iter().map(|(t, p)| (*t, f64::from(p.mean))),
                band.stroke_width(2),
            ))?;
        }
        if let Some(target) = target {
            let colour = RGBColor(200, 60, 40);
            let label = format!(
                "target {} {}",
                if target.comparator == Comparator::Le {
                    "≤"
                } else {
                    "≥"
                },
                target.value
            );
            chart
                .draw_series(DashedLineSeries::new(
                    [(from, target.value), (to, target.value)],
                    8,
                    5,
                    colour.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }
        if runs.is_empty() {
            // About 8 px per character at 16 px: roughly centred.
            let half_width = 4 * empty.chars().count().min(100) as i32;
            root.draw(&Text::new(
                empty,
                (
                    (SVG_SIZE.0 / 2) as i32 - half_width,
                    (SVG_SIZE.1 / 2) as i32,
                ),
                ("sans-serif", 16).into_font().color(&BLACK.mix(0.6)),
            ))?;
        }
        root.present()?;
    }
    Ok(out)
}

/// Every `<polyline>` of a chart as (stroke colour, points in pixels), for tests here and
/// in [`crate::report`].
#[cfg(test)]
pub(crate) fn polylines(svg: &str) -> Vec<(String, Vec<(i64, i64)>)> {
    svg.split("<polyline")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find("/>").expect("a closed tag")];
            let attr = |name: &str| {
                let key = format!(" {name}=\"");
                let start = tag.find(key.as_str()).expect("the attribute") + key.len();
                tag[start..start + tag[start..].find('"').expect("its end")].to_owned()
            };
            let points = attr("points")
                .split_whitespace()
                .map(|xy| {
                    let (x, y) = xy.split_once(',').expect("x,y");
                    (x.parse().expect("x"), y.parse().expect("y"))
                })
                .collect();
            (attr("stroke"), points)
        })
        .collect()
}

/// The mean line's colour in [`svg`].
#[cfg(test)]
pub(crate) const MEAN_STROKE: &str = "#4682B4";

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::{ResourceId, ResourceType};

    const NOW: i64 = 1_700_000_000_000;
    const DAY: i64 = 86_400_000;

    fn cpu() -> Resource {
        Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU")
    }

    fn sample(t: i64, v: f32) -> Option<Point> {
        Some(Point {
            t,
            min: v,
            max: v,
            mean: v,
        })
    }

    #[test]
    fn a_single_sample_is_a_dot_not_a_line_of_one_point() {
        let series = Downsampled {
            tier: engine::history::Tier::Raw,
            origin: NOW,
            width: 1000,
            points: vec![sample(NOW, 42.0)],
        };
        let chart = svg(
            &cpu(),
            "utilization",
            "%",
            &series,
            NOW + 1000 - DAY,
            NOW + 1000,
        )
        .unwrap();
        assert!(chart.contains("<circle"), "{chart}");
        for (stroke, points) in polylines(&chart) {
            assert!(
                stroke != MEAN_STROKE || points.len() >= 2,
                "a mean line of {} point draws nothing: {chart}",
                points.len()
            );
        }
        // A sample between gaps is a dot too.
        let series = Downsampled {
            points: vec![
                sample(NOW, 1.0),
                sample(NOW + 1000, 2.0),
                None,
                sample(NOW + 3000, 3.0),
            ],
            ..series
        };
        let chart = svg(&cpu(), "utilization", "%", &series, NOW - 1000, NOW + 4000).unwrap();
        assert_eq!(chart.matches("<circle").count(), 1, "{chart}");
    }

    #[test]
    fn five_minutes_of_a_day_are_drawn_across_the_chart() {
        let series = Downsampled {
            tier: engine::history::Tier::Raw,
            origin: NOW,
            width: 1000,
            points: (0..300)
                .map(|i| sample(NOW + i * 1000, 40.0 + (i % 7) as f32))
                .collect(),
        };
        let chart = svg(
            &cpu(),
            "utilization",
            "%",
            &series,
            NOW + 300_000 - DAY,
            NOW + 300_000,
        )
        .unwrap();
        let lines: Vec<_> = polylines(&chart)
            .into_iter()
            .filter(|(stroke, _)| stroke == MEAN_STROKE)
            .collect();
        assert_eq!(lines.len(), 1, "{chart}");
        let points = &lines[0].1;
        assert_eq!(points.len(), 300);
        let xs = || points.iter().map(|p| p.0);
        let drawn = xs().max().unwrap() - xs().min().unwrap();
        // The plot is 960 px less margins and the value labels: about 870 px.
        assert!(drawn > 800, "the line spans {drawn} px of the chart");
        assert!(
            chart.contains("the data covers only 2023-11-14 22:13:20 – 2023-11-14 22:18:20"),
            "{chart}"
        );
        // Data over the whole period is drawn over the period, without the note.
        let chart = svg(&cpu(), "utilization", "%", &series, NOW, NOW + 300_000).unwrap();
        assert!(!chart.contains("the data covers only"));
    }

    #[test]
    fn an_empty_series_says_so() {
        let series = Downsampled {
            tier: engine::history::Tier::Raw,
            origin: NOW,
            width: 1000,
            points: vec![None; 10],
        };
        let chart = svg_in(
            &cpu(),
            "utilization",
            "%",
            &series,
            NOW - DAY,
            NOW,
            "no data in this period",
        )
        .unwrap();
        assert!(chart.contains("no data in this period"), "{chart}");
        assert!(!chart.contains("<circle"));
    }

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
