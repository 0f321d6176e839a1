//! The resource chart, drawn with plotters on a `<canvas>` in the browser.
//!
//! Server rendering emits an empty canvas (so server and client DOM match); an effect
//! draws after hydration and on every change. Drawing returns the plot's pixel mapping
//! so the target's handle can be placed on its line and a dragged position turned back
//! into a value. Ticks are nice steps in one unit (values) and round UTC times (time);
//! colours are the stylesheet's variables, read at every draw, so a redraw after a theme
//! change follows it.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

use crate::resource_data::{target_line_label, time_label, time_ticks, value_axis, SeriesView};

/// How pixel coordinates map to values, as the last draw laid them out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotMapping {
    pub left: i32,
    /// Where the samples end: the plot's right edge, or left of it when a forecast
    /// reaches into the future.
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
    pub y_min: f64,
    pub y_max: f64,
    pub points: usize,
    /// The first sample on the time axis (later than 0 when a short history is drawn
    /// from its first sample, not from the start of the range).
    pub first_point: usize,
    /// A forecast line was drawn.
    pub forecast: bool,
}

impl PlotMapping {
    pub fn value_at(&self, y_px: f64) -> f64 {
        let span = f64::from((self.bottom - self.top).max(1));
        let share = ((f64::from(self.bottom) - y_px) / span).clamp(0.0, 1.0);
        self.y_min + share * (self.y_max - self.y_min)
    }

    /// The y position of `value`, in pixels from the canvas top.
    pub fn y_of(&self, value: f64) -> f64 {
        let span = f64::from((self.bottom - self.top).max(1));
        let range = self.y_max - self.y_min;
        let share = if range > 0.0 {
            ((value - self.y_min) / range).clamp(0.0, 1.0)
        } else {
            0.0
        };
        f64::from(self.bottom) - share * span
    }

    /// Index of the sample under an x position, if inside the plot.
    pub fn index_at(&self, x_px: f64) -> Option<usize> {
        if self.points == 0 || x_px < f64::from(self.left) || x_px > f64::from(self.right) {
            return None;
        }
        let share = (x_px - f64::from(self.left)) / f64::from((self.right - self.left).max(1));
        let first = self.first_point.min(self.points - 1);
        let shown = (self.points - 1 - first) as f64;
        Some((first + (share * shown).round() as usize).min(self.points - 1))
    }
}

/// An f64 axis with its ticks where the page puts them (nice steps, round times), not
/// where plotters would. plotters' own `WithKeyPoints` keeps the f64 axis' formatting
/// marker, which leaves it without the value formatter the mesh asks for; the labels come
/// from the page's formatters anyway.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Ticked {
        Ticked {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    /// Grid lines and labels at the ticks only; no light lines between them.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Theme colours come from the CSS variables, so the chart follows dark mode.
fn css_color(name: &str, fallback: RGBColor) -> RGBColor {
    let value = web_sys::window()
        .and_then(|w| {
            let root = w.document()?.document_element()?;
            w.get_computed_style(&root).ok().flatten()
        })
        .and_then(|style| style.get_property_value(name).ok())
        .unwrap_or_default();
    let hex = value.trim().trim_start_matches('#');
    if hex.len() == 6 {
        if let Ok(n) = u32::from_str_radix(hex, 16) {
            return RGBColor((n >> 16) as u8, (n >> 8) as u8, n as u8);
        }
    }
    fallback
}

/// Draws the chart with its value axis from 0 to `top` and returns how it mapped values
/// to pixels.
#[allow(clippy::too_many_lines)] // 178 lines today; split before it grows
pub fn draw(
    canvas: &HtmlCanvasElement,
    view: &SeriesView,
    candidate: Option<f64>,
    top: f64,
) -> Option<PlotMapping> {
    // Match the drawing buffer to the element's size so pointer offsets are pixels.
    let element: &web_sys::Element = canvas.unchecked_ref();
    let width = element.client_width().max(300) as u32;
    let height = element.client_height().max(200) as u32;
    if canvas.width() != width || canvas.height() != height {
        canvas.set_width(width);
        canvas.set_height(height);
    }

    let surface = css_color("--surface", RGBColor(255, 255, 255));
    let text = css_color("--muted", RGBColor(90, 100, 114));
    let grid = css_color("--border", RGBColor(217, 222, 230));
    let accent = css_color("--accent", RGBColor(15, 118, 110));
    let target_color = css_color("--target", RGBColor(217, 119, 6));
    // Pre-mixed per theme in the stylesheet: a translucent red vanishes on a dark surface.
    let breach = css_color("--chart-breach", RGBColor(253, 224, 224));

    let backend = CanvasBackend::with_canvas_object(canvas.clone())?;
    let root = backend.into_drawing_area();
    root.fill(&surface).ok()?;

    let n = view.means.len();
    let step_secs = view.step_ms as f64 / 1000.0;
    // Day one: on the shortest range, minutes of history would be a sliver at the right
    // edge, so the axis starts at the first sample (showing at least a minute); longer
    // ranges are chosen on purpose and show where the data starts.
    let first_point = if view.range == crate::resource_data::ChartRange::FiveMinutes {
        let leading_gap = view.means.iter().position(Option::is_some).unwrap_or(0);
        let minute = (60_000 / view.step_ms.max(1)).max(1) as usize;
        leading_gap.min(n.saturating_sub(minute))
    } else {
        0
    };
    let span_secs = (n.max(1) - first_point) as f64 * step_secs;
    let end_ms = view.start_ms + n.max(1) as i64 * view.step_ms;
    // A predicted crossing of the saved target gets a stretch of future on the right: to
    // the interval's far end, at most a quarter of the range.
    let crossing = view
        .crossing
        .zip(view.target.as_ref())
        .map(|(c, t)| (c, t.value));
    let future_secs = crossing.map_or(0.0, |(c, _)| {
        let latest = (c.at_ms - end_ms) as f64 / 1000.0 + c.latest_secs as f64;
        latest.clamp(0.0, span_secs * 0.25)
    });
    // About one label per 100 px across and 50 px down.
    let x_max_ticks = ((width as i32 - 100) / 100).clamp(2, 10) as usize;
    let y_max_ticks = ((height as i32 - 40) / 50).clamp(3, 8) as usize;
    let shown_start_ms = end_ms - (span_secs * 1000.0) as i64;
    let (times, time_step) = time_ticks(
        shown_start_ms,
        end_ms + (future_secs * 1000.0) as i64,
        x_max_ticks,
    );
    let x_points: Vec<f64> = times.iter().map(|t| (t - end_ms) as f64 / 1000.0).collect();
    let y_axis = value_axis(&view.unit, top, false, y_max_ticks);
    let y_points: Vec<f64> = y_axis.ticks.iter().map(|(v, _)| *v).collect();
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(
            Ticked::new(-span_secs..future_secs, x_points),
            Ticked::new(0.0..top, y_points),
        )
        .ok()?;

    let x_of = |i: usize| -span_secs + (i as f64 + 0.5) * view.step_ms as f64 / 1000.0;

    // Breaches first, so the grid and the lines stay visible over them.
    if let Some(limit) = candidate.or(view.target.as_ref().map(|t| t.value)) {
        let upper = view.comparator() == engine::model::Comparator::Le;
        let breached = |v: f32| {
            if upper {
                f64::from(v) > limit
            } else {
                f64::from(v) < limit
            }
        };
        let half = view.step_ms as f64 / 2000.0;
        let shade = breach.filled();
        let mut run: Option<usize> = None;
        let mut rects = Vec::new();
        for i in 0..=n {
            let hit = i < n && view.means[i].is_some_and(breached);
            match (hit, run) {
                (true, None) => run = Some(i),
                (false, Some(start)) => {
                    rects.push(Rectangle::new(
                        [
                            ((x_of(start) - half).max(-span_secs), 0.0),
                            ((x_of(i - 1) + half).min(0.0), top),
                        ],
                        shade,
                    ));
                    run = None;
                }
                _ => {}
            }
        }
        chart.draw_series(rects).ok()?;
    }

    chart
        .configure_mesh()
        .bold_line_style(grid)
        .axis_style(grid)
        .label_style(("sans-serif", 12).into_font().color(&text))
        .x_label_formatter(&|secs| time_label(end_ms + (secs * 1000.0).round() as i64, time_step))
        .y_label_formatter(&|v| y_axis.label(*v))
        .draw()
        .ok()?;
    // The time axis is UTC, like every time on the page; said once, in the free corner.
    root.draw_text(
        "UTC",
        &("sans-serif", 11).into_font().color(&text),
        (14, height as i32 - 12 - 16),
    )
    .ok()?;

    draw_anomaly_band(&mut chart, view, (first_point, top), &x_of, &text)?;

    if !view.highs.is_empty() {
        // Minute tier: the min–max band keeps spikes visible under the mean line.
        let band = accent.mix(0.18).filled();
        let bars = (first_point..n).filter_map(|i| {
            let (lo, hi) = (view.lows[i]?, view.highs[i]?);
            let half = view.step_ms as f64 / 2000.0;
            Some(Rectangle::new(
                [
                    (x_of(i) - half, f64::from(lo)),
                    (x_of(i) + half, f64::from(hi)),
                ],
                band,
            ))
        });
        chart.draw_series(bars).ok()?;
    }

    // Overlays first, so the edited metric stays on top.
    for (k, overlay) in view.overlays.iter().enumerate() {
        let color = css_color(&format!("--series-{}", k + 1), OVERLAY_FALLBACK[k % 3]);
        draw_line(
            &mut chart,
            &overlay.means[first_point.min(overlay.means.len())..],
            &|i| x_of(i + first_point),
            color.stroke_width(2),
        )?;
    }
    draw_line(
        &mut chart,
        &view.means[first_point..],
        &|i| x_of(i + first_point),
        accent.stroke_width(2),
    )?;
    // Anomalies over the line, in the page's "bad" colour.
    let bad = css_color("--bad", RGBColor(185, 28, 28));
    for &(start, end) in &view.band.anomalies {
        let (start, end) = (start.max(first_point), end.min(n.saturating_sub(1)));
        if start > end {
            continue;
        }
        let dots = (start..=end).filter_map(|i| {
            view.means[i].map(|v| Circle::new((x_of(i), f64::from(v)), 3, bad.filled()))
        });
        chart.draw_series(dots).ok()?;
    }

    // Event markers: a dashed vertical line per edit, mark or action in the range, with
    // its number in the list under the chart (oldest first) at the top.
    let marker = text.mix(0.7);
    let number_font = ("sans-serif", 11, FontStyle::Bold).into_font().color(&text);
    for (k, event) in view.events_in_order().into_iter().enumerate() {
        let x = (event.at_unix_ms - end_ms) as f64 / 1000.0;
        if x < -span_secs {
            continue;
        }
        let x = x.min(0.0);
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, top)],
                4,
                3,
                marker.stroke_width(1),
            ))
            .ok()?;
        let (px, py) = chart.backend_coord(&(x, top));
        root.draw_text(&(k + 1).to_string(), &number_font, (px + 3, py + 2))
            .ok()?;
    }

    let forecast = crossing.filter(|_| future_secs > 0.0);
    if let Some((crossing, limit)) = forecast {
        draw_forecast(
            &mut chart,
            &root,
            view,
            &crossing,
            limit,
            (end_ms, future_secs),
            (&x_of, &text, &target_color),
        )?;
    }

    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let samples_end = chart.backend_coord(&(0.0, 0.0)).0;
    if let Some(limit) = candidate {
        chart
            .draw_series(LineSeries::new(
                [(-span_secs, limit), (future_secs, limit)],
                target_color.stroke_width(2),
            ))
            .ok()?;
        // "target ≤ 65 %" at the line's left end (the handle holds the right end): above
        // the line, or below it when the line runs along the top of the plot.
        let label = target_line_label(view.comparator(), limit, &view.unit);
        let font = ("sans-serif", 12, FontStyle::Bold)
            .into_font()
            .color(&target_color);
        // Estimated, not measured: plotters measures canvas text through a styled DOM
        // element, which the page's Content-Security-Policy (no inline styles) refuses.
        let (w, h) = (7 * label.chars().count() as i32, 14);
        let (px, py) = chart.backend_coord(&(-span_secs, limit));
        let y = if py - h - 6 < ys.start {
            py + 5
        } else {
            py - h - 5
        };
        root.draw(&Rectangle::new(
            [(px + 4, y - 2), (px + 10 + w, y + h + 2)],
            surface.mix(0.9).filled(),
        ))
        .ok()?;
        root.draw_text(&label, &font, (px + 7, y)).ok()?;
    }

    root.present().ok()?;
    Some(PlotMapping {
        left: xs.start,
        right: samples_end.min(xs.end),
        top: ys.start,
        bottom: ys.end,
        y_min: 0.0,
        y_max: top,
        points: n,
        first_point,
        forecast: forecast.is_some(),
    })
}

/// Used when the stylesheet has no `--series-N` (it always should).
const OVERLAY_FALLBACK: [RGBColor; 3] = [
    RGBColor(37, 99, 235),
    RGBColor(147, 51, 234),
    RGBColor(190, 24, 93),
];

type Chart<'a> = ChartContext<'a, CanvasBackend, Cartesian2d<Ticked, Ticked>>;

/// The anomaly band: where the series usually sits (the median ± k robust σ of the points
/// before each), one shaded polygon per run of judged points.
fn draw_anomaly_band(
    chart: &mut Chart<'_>,
    view: &SeriesView,
    (first_point, top): (usize, f64),
    x_of: &impl Fn(usize) -> f64,
    text: &RGBColor,
) -> Option<()> {
    let band = &view.band;
    let shade = text.mix(0.10).filled();
    let mut run: Vec<(usize, f64, f64)> = Vec::new();
    let end = band.lows.len().min(view.means.len());
    for i in first_point..=end {
        let bounds = (i < end).then(|| band.lows[i].zip(band.highs[i])).flatten();
        match bounds {
            // Kept inside the plot: the axis is fitted to the samples, not the band.
            Some((low, high)) => run.push((i, f64::from(low).max(0.0), f64::from(high).min(top))),
            None if run.len() > 1 => {
                let outline: Vec<(f64, f64)> = run
                    .iter()
                    .map(|&(i, _, high)| (x_of(i), high))
                    .chain(run.iter().rev().map(|&(i, low, _)| (x_of(i), low)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, shade)))
                    .ok()?;
                run.clear();
            }
            None => run.clear(),
        }
    }
    Some(())
}

/// The forecast: a dashed line from the last sample to the target at the predicted
/// crossing (cut at the plot's right edge when the crossing is beyond it), the crossing's
/// interval as a band on the target line, and "forecast" at the line's end.
fn draw_forecast(
    chart: &mut Chart<'_>,
    root: &DrawingArea<CanvasBackend, plotters::coord::Shift>,
    view: &SeriesView,
    crossing: &engine::forecast::Crossing,
    limit: f64,
    (end_ms, future_secs): (i64, f64),
    (x_of, text, color): (&impl Fn(usize) -> f64, &RGBColor, &RGBColor),
) -> Option<()> {
    let (last, value) = view
        .means
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.map(|v| (i, f64::from(v))))?;
    let from = (x_of(last), value);
    // Seconds on the chart's axis (0 at the samples' end) of a time after the fit.
    let since_fit = (crossing.at_ms - end_ms) as f64 / 1000.0;
    let at = |secs: u64| since_fit + secs as f64;
    let eta = at(crossing.eta_secs);
    let beyond = eta > future_secs && eta > from.0;
    let to = if beyond {
        let share = (future_secs - from.0) / (eta - from.0);
        (future_secs, from.1 + (limit - from.1) * share)
    } else {
        (eta, limit)
    };
    chart
        .draw_series(DashedLineSeries::new(
            [from, to],
            6,
            4,
            color.stroke_width(2),
        ))
        .ok()?;
    let (early, late) = (
        at(crossing.earliest_secs).max(0.0),
        at(crossing.latest_secs).min(future_secs),
    );
    if early < late {
        chart
            .draw_series(LineSeries::new(
                [(early, limit), (late, limit)],
                color.mix(0.45).stroke_width(8),
            ))
            .ok()?;
    }
    // Above the line, right-aligned to its end but not left of its start.
    let (px, py) = chart.backend_coord(&to);
    let (start_px, start_py) = chart.backend_coord(&from);
    let font = ("sans-serif", 11).into_font().color(text);
    // A crossing past the chart's edge says when it comes: the line shows only the way.
    let label = if beyond {
        format!(
            "forecast: crosses in ~{} →",
            engine::forecast::human_duration(crossing.eta_secs)
        )
    } else {
        "forecast".to_owned()
    };
    let width = i32::try_from(label.chars().count() * 6 + 4).unwrap_or(i32::MAX);
    // Right-aligned to the line's end, not left of its start, and never past the canvas
    // (a phone's chart is narrower than the label).
    let right = i32::try_from(root.dim_in_pixel().0).unwrap_or(i32::MAX) - 2;
    let x = (px - width).max(start_px + 2).min(right - width).max(2);
    root.draw_text(&label, &font, (x, py.min(start_py) - 16))
        .ok()?;
    Some(())
}

/// Gaps break the line: each run of present samples is its own polyline.
fn draw_line(
    chart: &mut Chart<'_>,
    values: &[Option<f32>],
    x_of: &impl Fn(usize) -> f64,
    style: ShapeStyle,
) -> Option<()> {
    let mut segment: Vec<(f64, f64)> = Vec::new();
    // A lone sample (a push every 10 s on a one-second grid) is a dot, not an invisible
    // line of one point.
    let mut draw = |segment: Vec<(f64, f64)>| -> Option<()> {
        if let [point] = segment[..] {
            chart
                .draw_series(std::iter::once(Circle::new(point, 2, style.filled())))
                .ok()?;
        } else {
            chart.draw_series(LineSeries::new(segment, style)).ok()?;
        }
        Some(())
    };
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => segment.push((x_of(i), f64::from(*v))),
            None if !segment.is_empty() => draw(std::mem::take(&mut segment))?,
            None => {}
        }
    }
    if !segment.is_empty() {
        draw(segment)?;
    }
    Some(())
}
