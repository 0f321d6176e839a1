//! Charts drawn on the server with plotters' SVG backend, for exports
//! (`GET /api/export/{resource}/{metric}.svg`) and performance reports. Text is emitted as
//! `<text>` elements (no font is rasterised), so the crate needs no font features.
//!
//! This module depends on no other module of the server: the HTTP export and the report
//! both call it.

use engine::history::{Downsampled, Point};
use engine::model::{Comparator, Resource};
use plotters::prelude::*;

/// Buckets in a chart: about one per two horizontal pixels.
pub(crate) const SVG_POINTS: usize = 480;
/// A chart whose data spans less than this share of its period is drawn over the data's
/// own extent (and says so): five minutes of data in a 24 h chart would be a dot.
pub(crate) const FULL_SHARE: f64 = 0.9;
const SVG_SIZE: (u32, u32) = (960, 360);

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
        let at = engine::model::utc_time;
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
/// in the report's.
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
}
