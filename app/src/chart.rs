//! The resource chart, drawn with plotters on a `<canvas>` in the browser.
//!
//! Server rendering emits an empty canvas (so server and client DOM match); an effect
//! draws after hydration and on every change. Drawing returns the plot's pixel mapping
//! so pointer events can turn a y position back into a target value.

use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

use crate::resource_data::SeriesView;

/// How pixel coordinates map to values, as the last draw laid them out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotMapping {
    pub left: i32,
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
    pub y_min: f64,
    pub y_max: f64,
    pub points: usize,
}

impl PlotMapping {
    pub fn value_at(&self, y_px: f64) -> f64 {
        let span = f64::from((self.bottom - self.top).max(1));
        let share = ((f64::from(self.bottom) - y_px) / span).clamp(0.0, 1.0);
        self.y_min + share * (self.y_max - self.y_min)
    }

    /// Index of the sample under an x position, if inside the plot.
    pub fn index_at(&self, x_px: f64) -> Option<usize> {
        if self.points == 0 || x_px < f64::from(self.left) || x_px > f64::from(self.right) {
            return None;
        }
        let share = (x_px - f64::from(self.left)) / f64::from((self.right - self.left).max(1));
        Some(((share * (self.points - 1) as f64).round() as usize).min(self.points - 1))
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

/// Draws the chart and returns how it mapped values to pixels.
pub fn draw(
    canvas: &HtmlCanvasElement,
    view: &SeriesView,
    candidate: Option<f64>,
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
    let bad = css_color("--bad", RGBColor(185, 28, 28));

    let backend = CanvasBackend::with_canvas_object(canvas.clone())?;
    let root = backend.into_drawing_area();
    root.fill(&surface).ok()?;

    let n = view.means.len();
    let span_secs = (n.max(1) as f64) * view.step_ms as f64 / 1000.0;
    let top = view.chart_top(candidate);
    let unit = view.unit.clone();
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(-span_secs..0.0, 0.0..top)
        .ok()?;
    chart
        .configure_mesh()
        .light_line_style(grid.mix(0.4))
        .bold_line_style(grid)
        .axis_style(grid)
        .label_style(("sans-serif", 12).into_font().color(&text))
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|secs| ago(-*secs))
        .y_label_formatter(&|v| crate::format::reading(*v, &unit))
        .draw()
        .ok()?;

    let x_of = |i: usize| -span_secs + (i as f64 + 0.5) * view.step_ms as f64 / 1000.0;

    if let Some(limit) = candidate.or(view.target.as_ref().map(|t| t.value)) {
        let upper = view
            .target
            .as_ref()
            .is_none_or(|t| t.comparator == engine::model::Comparator::Le);
        let breached = |v: f32| {
            if upper {
                f64::from(v) > limit
            } else {
                f64::from(v) < limit
            }
        };
        let half = view.step_ms as f64 / 2000.0;
        let shade = bad.mix(0.15).filled();
        let mut run: Option<usize> = None;
        let mut rects = Vec::new();
        for i in 0..=n {
            let hit = i < n && view.means[i].is_some_and(breached);
            match (hit, run) {
                (true, None) => run = Some(i),
                (false, Some(start)) => {
                    rects.push(Rectangle::new(
                        [(x_of(start) - half, 0.0), (x_of(i - 1) + half, top)],
                        shade,
                    ));
                    run = None;
                }
                _ => {}
            }
        }
        chart.draw_series(rects).ok()?;
    }

    if !view.highs.is_empty() {
        // Minute tier: the min–max band keeps spikes visible under the mean line.
        let band = accent.mix(0.18).filled();
        let bars = (0..n).filter_map(|i| {
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
        draw_line(&mut chart, &overlay.means, &x_of, color.stroke_width(2))?;
    }
    draw_line(&mut chart, &view.means, &x_of, accent.stroke_width(2))?;

    // Event markers: a dashed vertical line per edit, mark or action in the range.
    let marker = text.mix(0.7);
    let end_ms = view.start_ms + n as i64 * view.step_ms;
    for event in &view.events {
        let x = (event.at_unix_ms - end_ms) as f64 / 1000.0;
        if x < -span_secs {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, top)],
                4,
                3,
                marker.stroke_width(1),
            ))
            .ok()?;
    }

    if let Some(limit) = candidate {
        chart
            .draw_series(LineSeries::new(
                [(-span_secs, limit), (0.0, limit)],
                target_color.stroke_width(2),
            ))
            .ok()?;
    }

    let (xs, ys) = chart.plotting_area().get_pixel_range();
    root.present().ok()?;
    Some(PlotMapping {
        left: xs.start,
        right: xs.end,
        top: ys.start,
        bottom: ys.end,
        y_min: 0.0,
        y_max: top,
        points: n,
    })
}

/// Used when the stylesheet has no `--series-N` (it always should).
const OVERLAY_FALLBACK: [RGBColor; 3] = [
    RGBColor(37, 99, 235),
    RGBColor(147, 51, 234),
    RGBColor(190, 24, 93),
];

type Chart<'a> = ChartContext<
    'a,
    CanvasBackend,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Gaps break the line: each run of present samples is its own polyline.
fn draw_line(
    chart: &mut Chart<'_>,
    values: &[Option<f32>],
    x_of: &impl Fn(usize) -> f64,
    style: ShapeStyle,
) -> Option<()> {
    let mut segment: Vec<(f64, f64)> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => segment.push((x_of(i), f64::from(*v))),
            None if !segment.is_empty() => {
                chart
                    .draw_series(LineSeries::new(std::mem::take(&mut segment), style))
                    .ok()?;
            }
            None => {}
        }
    }
    if !segment.is_empty() {
        chart.draw_series(LineSeries::new(segment, style)).ok()?;
    }
    Some(())
}

/// "now", "30 s", "5 m", "2 h" before the end of the chart.
fn ago(secs: f64) -> String {
    let secs = secs.round() as i64;
    match secs {
        0 => "now".into(),
        s if s < 120 => format!("-{s} s"),
        s if s < 7200 => format!("-{} m", s / 60),
        s if s < 3 * 86_400 => format!("-{} h", s / 3600),
        s => format!("-{} d", s / 86_400),
    }
}
