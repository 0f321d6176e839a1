//! Wire types of the resource detail page and the pure logic behind its readouts, shared
//! by the server (which fills them from history) and the browser (which runs the backtest
//! on them while the user drags the target).

use serde::{Deserialize, Serialize};

use engine::backtest::{backtest, judged_series, Judged, Rule};
use engine::model::{Comparator, MetricKind, Target};

/// Chart ranges a user can pick; part of the page URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChartRange {
    FiveMinutes,
    FifteenMinutes,
    OneHour,
    OneDay,
    SevenDays,
    ThirtyDays,
}

impl ChartRange {
    pub const ALL: [ChartRange; 6] = [
        ChartRange::FiveMinutes,
        ChartRange::FifteenMinutes,
        ChartRange::OneHour,
        ChartRange::OneDay,
        ChartRange::SevenDays,
        ChartRange::ThirtyDays,
    ];

    pub fn parse(s: &str) -> Result<ChartRange, String> {
        match s {
            "5m" => Ok(ChartRange::FiveMinutes),
            "15m" => Ok(ChartRange::FifteenMinutes),
            "1h" => Ok(ChartRange::OneHour),
            "24h" => Ok(ChartRange::OneDay),
            "7d" => Ok(ChartRange::SevenDays),
            "30d" => Ok(ChartRange::ThirtyDays),
            other => Err(format!(
                "range: must be one of 5m, 15m, 1h, 24h, 7d or 30d, got {other:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChartRange::FiveMinutes => "5m",
            ChartRange::FifteenMinutes => "15m",
            ChartRange::OneHour => "1h",
            ChartRange::OneDay => "24h",
            ChartRange::SevenDays => "7d",
            ChartRange::ThirtyDays => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChartRange::FiveMinutes => "5 min",
            ChartRange::FifteenMinutes => "15 min",
            ChartRange::OneHour => "1 hour",
            ChartRange::OneDay => "24 hours",
            ChartRange::SevenDays => "7 days",
            ChartRange::ThirtyDays => "30 days",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            ChartRange::FiveMinutes => 5 * 60_000,
            ChartRange::FifteenMinutes => 15 * 60_000,
            ChartRange::OneHour => 3_600_000,
            ChartRange::OneDay => 86_400_000,
            ChartRange::SevenDays => 7 * 86_400_000,
            ChartRange::ThirtyDays => 30 * 86_400_000,
        }
    }

    /// For ranges read from the history on disk: the width of one point (10-minute slots
    /// of the minute tier for a week, the hour tier for a month).
    pub fn stored_step_ms(self) -> Option<i64> {
        match self {
            ChartRange::SevenDays => Some(600_000),
            ChartRange::ThirtyDays => Some(3_600_000),
            _ => None,
        }
    }

    /// Whether the range is drawn from the minute tier (each minute's mean with its
    /// min–max band) rather than from raw samples, which live samples extend.
    pub fn per_minute(self) -> bool {
        !matches!(
            self,
            ChartRange::FiveMinutes | ChartRange::FifteenMinutes | ChartRange::OneHour
        )
    }

    /// The range a page opens on when its URL names none, for `data_ms` of history: the
    /// smallest of 5 min, 15 min, 1 h and 24 h that holds all of it, unless the data
    /// would fill less than a quarter of that range; then the range below, showing the
    /// newest part. Three minutes of data open on 5 min, not as a sliver of an hour; two
    /// hours on the last hour, not as a twelfth of a day.
    pub fn fitting(data_ms: i64) -> ChartRange {
        const GROWING: [ChartRange; 4] = [
            ChartRange::FiveMinutes,
            ChartRange::FifteenMinutes,
            ChartRange::OneHour,
            ChartRange::OneDay,
        ];
        let mut fit = ChartRange::FiveMinutes;
        for range in GROWING {
            if data_ms > fit.millis() && data_ms.saturating_mul(4) >= range.millis() {
                fit = range;
            }
        }
        fit
    }
}

/// One metric of one resource over a range, at one point per step. Raw ranges carry only
/// `means` (each sample); the 24 h range comes from the minute tier and also carries each
/// minute's `lows` and `highs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesView {
    pub resource_id: String,
    pub resource_name: String,
    pub metric: String,
    /// Every metric of the resource, for the metric switcher.
    pub metrics: Vec<String>,
    pub unit: String,
    pub kind: MetricKind,
    pub range: ChartRange,
    /// Time of the first point; point `i` is at `start_ms + i * step_ms`.
    pub start_ms: i64,
    pub step_ms: i64,
    pub means: Vec<Option<f32>>,
    pub lows: Vec<Option<f32>>,
    pub highs: Vec<Option<f32>>,
    /// The saved target, when it is on this metric.
    pub target: Option<Target>,
    /// How the live status judges the resource (its window, tolerance band and recovery):
    /// the backtest replays the same rule.
    #[serde(default)]
    pub rule: Rule,
    /// Events on this resource inside the range (target edits, marks, actions), drawn as
    /// markers on the chart.
    #[serde(default)]
    pub events: Vec<ChartEvent>,
    /// Other metrics of the resource drawn on the same axes (`compare=` in the URL).
    #[serde(default)]
    pub overlays: Vec<Overlay>,
    /// Metrics that may be compared with this one: same resource, same unit.
    #[serde(default)]
    pub comparable: Vec<String>,
    /// The target's predicted crossing (the card's, kept current by the live feed), drawn
    /// as the forecast line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing: Option<engine::forecast::Crossing>,
    /// The main series' anomaly band and anomalies, as loaded (`engine::anomaly`).
    #[serde(default, skip_serializing_if = "engine::anomaly::Band::is_empty")]
    pub band: engine::anomaly::Band,
}

/// Most metrics a chart overlays on its own: four lines are still readable.
pub const MAX_OVERLAYS: usize = 3;

/// Another metric sampled on the same grid as the main series (`means[i]` at the same
/// time as the main `means[i]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overlay {
    pub metric: String,
    pub means: Vec<Option<f32>>,
}

/// A marker on the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartEvent {
    pub at_unix_ms: i64,
    /// "target edit (change #3)", "mark: deployed v2.3".
    pub label: String,
}

impl SeriesView {
    /// The anomaly band in words, under the chart; nothing when no point could be judged.
    pub fn anomaly_text(&self) -> Option<String> {
        let band = &self.band;
        let rate = band.rate()?;
        let pattern = match band.period_secs {
            Some(604_800) => " after taking out its weekly pattern",
            Some(_) => " after taking out its daily pattern",
            None => "",
        };
        let how = format!("the shaded band is where it usually sits: the median ± 5 robust σ of the 10 minutes (at least 40 points) before each point{pattern}");
        if let Some(from) = band.muted_from {
            let at = self.start_ms + from as i64 * self.step_ms;
            return Some(format!(
                "Anomalies muted from {} UTC: more than 6 in an hour, so this metric is noisy rather than surprising ({how}).",
                crate::format::utc_time(at)
            ));
        }
        Some(match crate::format::anomaly_rate(&rate, "in this range") {
            None => format!("No anomalies in this range ({how})."),
            Some(text) => format!("{text}, marked red ({how})."),
        })
    }

    /// Appends one live sample to a raw range, keeping its length.
    pub fn push_live(&mut self, at_unix_ms: i64, value: Option<f32>) {
        if !self.highs.is_empty() || self.means.is_empty() {
            return;
        }
        let next = self.start_ms + self.means.len() as i64 * self.step_ms;
        if at_unix_ms < next {
            return;
        }
        // Ticks the page missed (a hidden tab, a reconnect) become gaps, as on the server.
        let missed = ((at_unix_ms - next) / self.step_ms) as usize;
        let pushed = missed.min(self.means.len()) + 1;
        for _ in 1..pushed {
            self.means.push(None);
        }
        self.means.push(value);
        let excess = self.means.len().saturating_sub(self.capacity());
        self.means.drain(..excess);
        // The band covers the points loaded with the page; it slides with them.
        self.band.drain_front(excess);
        // Overlays have no live feed: they keep their place on the grid and end where
        // the page loaded them.
        let len = self.means.len();
        for overlay in &mut self.overlays {
            overlay.means.resize(overlay.means.len() + pushed, None);
            let extra = overlay.means.len().saturating_sub(len);
            overlay.means.drain(..extra);
        }
        self.start_ms = at_unix_ms - (self.means.len() as i64 - 1) * self.step_ms;
    }

    fn capacity(&self) -> usize {
        (self.range.millis() / self.step_ms.max(1)) as usize
    }

    /// The chart's y axis top: utilization is always 0–100; other metrics fit the data
    /// and the candidate target, rounded up to the axis' next tick so the top line is
    /// labelled.
    pub fn chart_top(&self, candidate: Option<f64>) -> f64 {
        if self.kind == MetricKind::Utilization {
            return 100.0;
        }
        let data_max = self
            .highs
            .iter()
            .chain(self.means.iter())
            .chain(self.overlays.iter().flat_map(|o| o.means.iter()))
            .flatten()
            .fold(0.0f64, |m, v| m.max(f64::from(*v)));
        let fitted = (data_max.max(candidate.unwrap_or(0.0)) * 1.15).max(1.0);
        value_axis(&self.unit, fitted, true, 6).top
    }

    /// The comparator a candidate is judged with: the saved target's, else the one a new
    /// target of this metric gets.
    pub fn comparator(&self) -> Comparator {
        self.target.as_ref().map_or_else(
            || default_target(&self.metric, 0.0).comparator,
            |t| t.comparator,
        )
    }

    /// The events oldest first: the chart numbers its markers in this order and the list
    /// under it uses the same numbers.
    pub fn events_in_order(&self) -> Vec<&ChartEvent> {
        let mut events: Vec<&ChartEvent> = self.events.iter().collect();
        events.sort_by_key(|e| e.at_unix_ms);
        events
    }

    /// Limits a target value may take for this metric.
    pub fn bounds(&self, chart_top: f64) -> (f64, f64) {
        match self.kind {
            MetricKind::Utilization => (0.0, 100.0),
            _ => (0.0, chart_top.max(1.0)),
        }
    }
}

/// An axis of values from 0 to `top`: its ticks (value in the series' unit, label).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub top: f64,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// The label of the tick at `value` (empty between ticks).
    pub fn label(&self, value: f64) -> String {
        let tolerance = self.top.abs().max(1e-12) * 1e-9;
        self.ticks
            .iter()
            .find(|(tick, _)| (tick - value).abs() <= tolerance)
            .map(|(_, label)| label.clone())
            .unwrap_or_default()
    }
}

/// A "nice" step, 1, 2 or 5 × 10ⁿ, that cuts `span` into at most `max_parts` parts.
pub fn nice_step(span: f64, max_parts: usize) -> f64 {
    let raw = (span / max_parts.max(1) as f64).abs();
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let exponent = raw.log10().floor() as i32;
    let norm = raw / pow10(exponent);
    // The tolerance keeps 0.3 / 3 (0.09999…) a step of 0.1, not 0.2.
    let nice = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|n| norm <= n * (1.0 + 1e-9))
        .unwrap_or(10.0);
    scaled_by_pow10(nice, exponent)
}

fn pow10(exponent: i32) -> f64 {
    scaled_by_pow10(1.0, exponent)
}

/// `value` × 10^`exponent`, dividing for negative exponents: 5 / 10 is exactly the
/// double nearest 0.5, where 5 × 0.1 may not be.
fn scaled_by_pow10(value: f64, exponent: i32) -> f64 {
    if exponent >= 0 {
        value * 10f64.powi(exponent)
    } else {
        value / 10f64.powi(-exponent)
    }
}

/// Decimals that write every multiple of `step` exactly: 0 for 1, 2, 5, 10…; 1 for 0.5.
fn decimals_for(step: f64) -> usize {
    (-step.log10() - 1e-9).ceil().max(0.0) as usize
}

/// `value` on the grid of `step`, without float noise (3 × 0.1 is 0.3, not
/// 0.30000000000000004), so the number field shows what the handle says.
pub fn snap(value: f64, step: f64) -> f64 {
    if step.is_nan() || step <= 0.0 || !value.is_finite() {
        return value;
    }
    let snapped = (value / step).round() * step;
    let decimals = decimals_for(step);
    format!("{snapped:.decimals$}").parse().unwrap_or(snapped)
}

/// The grid a dragged target snaps to: half percents, else a thousandth of the axis
/// (rounded to a power of ten), so dragged values stay readable.
pub fn drag_step(unit: &str, top: f64) -> f64 {
    if unit == "%" {
        return 0.5;
    }
    pow10(top.max(1e-9).log10().floor() as i32 - 2).max(1e-6)
}

/// One press of an arrow key on the target's handle: half a percent, else a nice two
/// hundredth of the axis; Shift and Page Up/Down move ten of these.
pub fn key_step(unit: &str, lo: f64, hi: f64) -> f64 {
    if unit == "%" {
        return 0.5;
    }
    nice_step(hi - lo, 200)
}

/// How every tick of an axis in `unit` is written: one divisor and one suffix picked from
/// the axis' top, so an axis never mixes ms and s or KiB and MiB.
struct Scale {
    divisor: f64,
    suffix: String,
}

fn scale_for(unit: &str, top: f64) -> Scale {
    let top = top.abs();
    match unit {
        "bytes" | "bytes/s" => {
            const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
            let mut k = 0;
            while k + 1 < UNITS.len() && top >= 1024f64.powi(k as i32 + 1) {
                k += 1;
            }
            let per = if unit == "bytes/s" { "/s" } else { "" };
            Scale {
                divisor: 1024f64.powi(k as i32),
                suffix: format!(" {}{per}", UNITS[k]),
            }
        }
        "ms" if top >= 10_000.0 => Scale {
            divisor: 1000.0,
            suffix: " s".to_owned(),
        },
        "%" | "ms" => Scale {
            divisor: 1.0,
            suffix: format!(" {unit}"),
        },
        _ => {
            let (divisor, prefix) = if top >= 1e10 {
                (1e9, "G")
            } else if top >= 1e7 {
                (1e6, "M")
            } else if top >= 1e4 {
                (1e3, "k")
            } else {
                (1.0, "")
            };
            // "12/s", "12k/s", "12 tasks", "12k tasks", "12k".
            let gap = if unit.is_empty() || unit.starts_with('/') {
                ""
            } else {
                " "
            };
            Scale {
                divisor,
                suffix: format!("{prefix}{gap}{unit}"),
            }
        }
    }
}

/// The value axis from 0 to `top` in `unit` with at most `max_parts` nice steps, labelled
/// in one unit. With `round_top` the top grows to the next tick.
pub fn value_axis(unit: &str, top: f64, round_top: bool, max_parts: usize) -> Axis {
    let scale = scale_for(unit, top);
    let scaled = (top / scale.divisor).max(0.0);
    let step = nice_step(scaled, max_parts);
    let scaled_top = if round_top {
        (scaled / step - 1e-9).ceil().max(1.0) * step
    } else {
        scaled
    };
    let decimals = decimals_for(step);
    let count = (scaled_top / step + 1e-9).floor() as usize;
    let ticks = (0..=count)
        .map(|i| {
            let value = i as f64 * step;
            (
                value * scale.divisor,
                format!("{value:.decimals$}{}", scale.suffix),
            )
        })
        .collect();
    Axis {
        top: scaled_top * scale.divisor,
        ticks,
    }
}

/// Ticks of a time axis from `start_ms` to `end_ms` at round times: the shortest step of
/// 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h, 1, 2, 5, 7, 14 days
/// that gives at most `max_ticks`, at its multiples since the epoch (UTC). Answers the
/// ticks and the step.
pub fn time_ticks(start_ms: i64, end_ms: i64, max_ticks: usize) -> (Vec<i64>, i64) {
    const STEPS_S: [i64; 22] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
        86_400, 172_800, 432_000, 604_800, 1_209_600,
    ];
    let span = (end_ms - start_ms).max(1);
    let max_ticks = max_ticks.max(1) as i64;
    let step = STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|step| span / step <= max_ticks)
        .unwrap_or(STEPS_S[STEPS_S.len() - 1] * 1000);
    let first = start_ms.div_euclid(step) * step;
    let first = if first < start_ms {
        first + step
    } else {
        first
    };
    let ticks = std::iter::successors(Some(first), |t| Some(t + step))
        .take_while(|t| *t <= end_ms)
        .collect();
    (ticks, step)
}

/// A time axis label in UTC: "14:05:30" under a minute's step, "14:05" under a day's,
/// else the date ("4 Mar"); midnight shows its date, so a day boundary is named.
pub fn time_label(at_ms: i64, step_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // "2026-11-26 23:04:05"
    let text = crate::format::utc_time(at_ms);
    let date = || {
        let month: usize = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        let day: u32 = text.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
        format!("{day} {}", MONTHS[month.clamp(1, 12) - 1])
    };
    if step_ms >= 86_400_000 || at_ms.rem_euclid(86_400_000) == 0 {
        date()
    } else if step_ms < 60_000 {
        text.get(11..19).unwrap_or_default().to_owned()
    } else {
        text.get(11..16).unwrap_or_default().to_owned()
    }
}

/// A target value as set, not rounded, with its unit: "72.5 %", "0.004 ms", "12/s";
/// bytes in their binary unit ("1.5 MiB").
pub fn exact_reading(value: f64, unit: &str) -> String {
    let number = {
        let fixed = format!("{value:.6}");
        let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
        match trimmed {
            "-0" | "" => "0".to_owned(),
            other => other.to_owned(),
        }
    };
    match unit {
        "bytes" | "bytes/s" => crate::format::reading(value, unit),
        "" => number,
        u if u.starts_with('/') => format!("{number}{u}"),
        u => format!("{number} {u}"),
    }
}

/// What pointing at point `i` of the chart reads, named as the sample so it is never
/// taken for the target: "Sample at 2025-03-04 05:06:07 UTC: 42.0 % · target edit
/// (change #2)".
pub fn sample_readout(view: &SeriesView, i: usize) -> String {
    let at = view.start_ms + i as i64 * view.step_ms;
    let value = view
        .means
        .get(i)
        .copied()
        .flatten()
        .map(|v| crate::format::reading(f64::from(v), &view.unit))
        .unwrap_or_else(|| "gap (no sample)".into());
    let near: String = view
        .events
        .iter()
        .filter(|e| (e.at_unix_ms - at).abs() <= view.step_ms)
        .map(|e| format!(" · {}", e.label))
        .collect();
    format!(
        "Sample at {} UTC: {value}{near}",
        crate::format::utc_time(at)
    )
}

/// The target line's label on the chart: "target ≤ 65 %".
pub fn target_line_label(comparator: Comparator, value: f64, unit: &str) -> String {
    format!(
        "target {} {}",
        comparator.symbol(),
        exact_reading(value, unit)
    )
}

/// How long a breach must last before it counts (Prometheus `for`): the editor's presets.
pub const FOR_CHOICES: [(u32, &str); 6] = [
    (0, "immediately"),
    (30, "30 s"),
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 hour"),
];

/// The `for` choices for a target saved with `saved` seconds: the presets, plus the saved
/// duration in its place when it is none of them, so the control shows what is saved
/// ("20 s") and saving again keeps it.
pub fn for_choices(saved: u32) -> Vec<(u32, String)> {
    let mut choices: Vec<(u32, String)> = FOR_CHOICES
        .iter()
        .map(|&(secs, label)| (secs, label.to_owned()))
        .collect();
    if !choices.iter().any(|(secs, _)| *secs == saved) {
        choices.push((saved, engine::model::format_duration(saved)));
        choices.sort_by_key(|(secs, _)| *secs);
    }
    choices
}

/// "Would have been breached 3 times, 4.2 % of the last 1 hour" for a candidate value and
/// `for` duration: the candidate replayed over the range with the live status's rule
/// ([`engine::backtest::replay`]: the target's statistic over the resource's window,
/// coverage, tolerance band, `for`, recovery), so it says what the card and the alert
/// would have said.
pub fn backtest_text(view: &SeriesView, candidate: f64, for_secs: u32) -> String {
    let saved = view
        .target
        .clone()
        .unwrap_or_else(|| default_target(&view.metric, 0.0));
    let target = Target {
        value: candidate,
        for_secs,
        ..saved
    };
    let step_secs = (view.step_ms / 1000).max(1) as u32;
    let range = view.range.label();
    // The one choice of what a range is judged on, shared with the report's compliance.
    let Judged { values, how, proxy } = judged_series(
        &view.means,
        &view.lows,
        &view.highs,
        target.statistic,
        target.comparator,
        step_secs,
    );
    // Samples at the live step need no note; slot summaries and coarser samples say how.
    let judged = if proxy || step_secs >= 60 {
        format!(" ({how})")
    } else {
        String::new()
    };
    let result = match backtest(values, step_secs, &target, &view.rule) {
        Ok(result) => result,
        Err(err) => return err.to_string(),
    };
    if result.evaluated_samples == 0 {
        if values.iter().all(Option::is_none) {
            return format!("No data in the last {range} to test this target against.");
        }
        // Samples, but never enough of a window to judge: the status's own words.
        let why = engine::optimizer::not_enough_data(result.best_coverage, view.rule.window_secs);
        return format!(
            "{} in the last {range} to test this target against.",
            capitalized(&why)
        );
    }
    if result.breaches == 0 {
        return format!("Would not have been breached in the last {range}{judged}.");
    }
    let times = if result.breaches == 1 {
        "time"
    } else {
        "times"
    };
    let share = result.breach_fraction * 100.0;
    // The share is of the time that could be judged; say so when that is not all of it
    // (gaps, or the first half window of the range).
    let of = if result.evaluated_samples < values.len() {
        let judged_secs = result.evaluated_samples as i64 * view.step_ms / 1000;
        format!(
            "of the {} judged in the last {range}",
            crate::format::duration(judged_secs)
        )
    } else {
        format!("of the last {range}")
    };
    format!(
        "Would have been breached {} {times}, {share:.1} % {of}{judged}.",
        result.breaches
    )
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What a saved target edit answers (the UI's server function and the JSON API alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSaved {
    pub change: u64,
    pub at_unix_ms: i64,
    pub target: Target,
    /// Set when this change was the Nth and took an auto-save snapshot.
    pub snapshot: Option<u64>,
}

impl TargetSaved {
    /// The answer for the record of a target edit, which always leaves a target.
    pub fn of(record: &engine::changes::ChangeRecord) -> Option<TargetSaved> {
        Some(TargetSaved {
            change: record.change,
            at_unix_ms: record.at_unix_ms,
            target: record.after.as_ref()?.target.clone()?,
            snapshot: record.snapshot.as_ref().map(|s| s.change),
        })
    }
}

/// "Saved as change #21 — auto-saved snapshot #20." for an accepted edit.
pub fn saved_notice(change: u64, snapshot: Option<u64>) -> String {
    match snapshot {
        Some(n) => format!("Saved as change #{change} — auto-saved snapshot #{n}."),
        None => format!("Saved as change #{change}."),
    }
}

/// The target a metric gets when the user sets one where there was none (shared with the
/// server through the engine, so the preview matches what is saved).
pub fn default_target(metric: &str, value: f64) -> Target {
    Target::default_for(metric, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Judged sample by sample (a one-sample window, no band, recovery at once): what the
    /// tests below were written for before the backtest shared the live rule.
    fn per_sample() -> Rule {
        Rule {
            window_secs: 1,
            tolerance_pct: 0.0,
            stabilization_secs: 0,
        }
    }

    fn view(values: Vec<Option<f32>>) -> SeriesView {
        SeriesView {
            rule: per_sample(),
            resource_id: "cpu".into(),
            resource_name: "CPU".into(),
            metric: "utilization".into(),
            metrics: vec!["utilization".into()],
            unit: "%".into(),
            kind: MetricKind::Utilization,
            range: ChartRange::FiveMinutes,
            start_ms: 0,
            step_ms: 1000,
            means: values,
            lows: vec![],
            highs: vec![],
            events: vec![],
            overlays: vec![],
            comparable: vec![],
            crossing: None,
            band: engine::anomaly::Band::default(),
            target: Some(Target {
                metric: "utilization".into(),
                comparator: engine::model::Comparator::Le,
                value: 65.0,
                statistic: engine::model::Statistic::P95,
                for_secs: 0,
            }),
        }
    }

    #[test]
    fn an_at_least_target_breaches_below_its_value() {
        // A cache's hit ratio ≥ target: the low samples are the breaches.
        let mut v = view(vec![Some(95.0), Some(40.0), Some(96.0), Some(97.0)]);
        v.metric = "hit_ratio".into();
        v.target = Some(Target {
            metric: "hit_ratio".into(),
            comparator: engine::model::Comparator::Ge,
            value: 90.0,
            statistic: engine::model::Statistic::Mean,
            for_secs: 0,
        });
        assert_eq!(
            backtest_text(&v, 90.0, 0),
            "Would have been breached 1 time, 25.0 % of the last 5 min."
        );
        assert_eq!(
            backtest_text(&v, 30.0, 0),
            "Would not have been breached in the last 5 min."
        );
    }

    #[test]
    fn backtest_text_counts_separate_breaches() {
        let mut v = view(vec![
            Some(10.0),
            Some(90.0),
            Some(10.0),
            Some(90.0),
            Some(90.0),
        ]);
        assert_eq!(
            backtest_text(&v, 50.0, 0),
            "Would have been breached 2 times, 60.0 % of the last 5 min."
        );
        v.means.insert(0, None);
        assert_eq!(
            backtest_text(&v, 50.0, 0),
            "Would have been breached 2 times, 60.0 % of the 5 s judged in the last 5 min."
        );
        v.means.remove(0);
        assert_eq!(
            backtest_text(&v, 95.0, 0),
            "Would not have been breached in the last 5 min."
        );
        // With `for 1 s` only the second, two-sample breach lasts long enough to fire.
        assert_eq!(
            backtest_text(&v, 50.0, 1),
            "Would have been breached 1 time, 20.0 % of the last 5 min."
        );
        assert_eq!(
            backtest_text(&view(vec![None, None]), 50.0, 0),
            "No data in the last 5 min to test this target against."
        );
    }

    /// The reproduction: 20/80 every second against p95 ≤ 50 for 30 s with the
    /// default rule (60 s window, 10 % band). The live status fires; so does the backtest
    /// (it said "not breached" when it judged each sample against 50).
    #[test]
    fn the_backtest_judges_the_window_statistic_like_the_live_status() {
        let mut v = view(
            (0..300)
                .map(|i| Some(if i % 2 == 0 { 20.0 } else { 80.0 }))
                .collect(),
        );
        v.rule = Rule::default();
        assert_eq!(
            backtest_text(&v, 50.0, 30),
            "Would have been breached 1 time, 88.9 % of the 4 min judged in the last 5 min."
        );
        // 80 is the window's p95: a target above its band is never breached.
        assert_eq!(
            backtest_text(&v, 75.0, 30),
            "Would not have been breached in the last 5 min."
        );
    }

    #[test]
    fn a_range_without_half_a_window_of_data_says_how_much_there_is() {
        let mut v = view(vec![None; 288]);
        v.means.extend([Some(90.0); 12]);
        v.rule = Rule::default();
        assert_eq!(
            backtest_text(&v, 50.0, 0),
            "Not enough data yet (12 of 60 s) in the last 5 min to test this target against."
        );
    }

    #[test]
    fn slot_summaries_are_judged_on_their_worst_value_and_say_so() {
        let mut v = view(vec![Some(50.0); 10]);
        v.range = ChartRange::OneDay;
        v.step_ms = 60_000;
        v.lows = vec![Some(20.0); 10];
        v.highs = vec![Some(80.0); 10];
        v.rule = Rule::default();
        // p95 ≤ 50 (breaches above 55) for 5 m: every minute peaked at 80; the window is one
        // minute, the `for` five of them.
        assert_eq!(
            backtest_text(&v, 50.0, 300),
            "Would have been breached 1 time, 50.0 % of the last 24 hours (judged on minute maxima, an upper bound of p95)."
        );
        // A mean target reads the minute means.
        v.target.as_mut().unwrap().statistic = engine::model::Statistic::Mean;
        assert_eq!(
            backtest_text(&v, 50.0, 300),
            "Would not have been breached in the last 24 hours (judged on minute means)."
        );
    }

    #[test]
    fn live_samples_slide_the_window_and_missed_ticks_become_gaps() {
        let mut v = view(vec![Some(1.0); 300]);
        v.push_live(300_000, Some(2.0));
        assert_eq!(v.means.len(), 300);
        assert_eq!(v.means.last(), Some(&Some(2.0)));
        assert_eq!(v.start_ms, 1000);
        v.push_live(303_000, Some(3.0));
        assert_eq!(&v.means[297..], &[None, None, Some(3.0)]);
        assert_eq!(v.start_ms, 303_000 - 299_000);
        // A stale or repeated tick changes nothing.
        let before = v.clone();
        v.push_live(303_000, Some(9.0));
        assert_eq!(v, before);
    }

    #[test]
    fn overlays_keep_their_place_on_the_grid_as_live_samples_arrive() {
        let mut v = view(vec![Some(1.0); 300]);
        v.overlays.push(Overlay {
            metric: "other".into(),
            means: vec![Some(5.0); 300],
        });
        v.push_live(302_000, Some(2.0));
        assert_eq!(v.overlays[0].means.len(), 300);
        // Three new slots (two missed ticks and this one), none of them known for the overlay.
        assert_eq!(&v.overlays[0].means[296..], &[Some(5.0), None, None, None]);
        assert_eq!(&v.means[297..], &[None, None, Some(2.0)]);
        assert_eq!(v.overlays[0].means[0], Some(5.0));
    }

    #[test]
    fn ranges_parse_and_name_the_allowed_values() {
        for r in ChartRange::ALL {
            assert_eq!(ChartRange::parse(r.as_str()), Ok(r));
        }
        assert_eq!(
            ChartRange::parse("2h").unwrap_err(),
            "range: must be one of 5m, 15m, 1h, 24h, 7d or 30d, got \"2h\""
        );
    }

    #[test]
    fn the_default_range_grows_with_the_data() {
        let min = 60_000;
        assert_eq!(ChartRange::fitting(0), ChartRange::FiveMinutes);
        assert_eq!(ChartRange::fitting(3 * min), ChartRange::FiveMinutes);
        assert_eq!(ChartRange::fitting(5 * min), ChartRange::FiveMinutes);
        assert_eq!(ChartRange::fitting(10 * min), ChartRange::FifteenMinutes);
        assert_eq!(ChartRange::fitting(20 * min), ChartRange::OneHour);
        // Two hours would be a twelfth of a day: the last hour reads better.
        assert_eq!(ChartRange::fitting(120 * min), ChartRange::OneHour);
        assert_eq!(ChartRange::fitting(7 * 60 * min), ChartRange::OneDay);
        assert_eq!(ChartRange::fitting(30 * 1440 * min), ChartRange::OneDay);
        assert!(!ChartRange::FifteenMinutes.per_minute());
        assert!(ChartRange::OneDay.per_minute());
    }

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn value_axes_have_nice_steps_in_one_unit() {
        let pct = value_axis("%", 100.0, false, 6);
        assert_eq!(
            labels(&pct),
            ["0 %", "20 %", "40 %", "60 %", "80 %", "100 %"]
        );
        // 0–8.05 ms grows to 10 ms in steps of 2.
        let ms = value_axis("ms", 8.05, true, 6);
        assert_eq!(ms.top, 10.0);
        assert_eq!(
            labels(&ms),
            ["0 ms", "2 ms", "4 ms", "6 ms", "8 ms", "10 ms"]
        );
        // Past 10 s every tick is in seconds, none in ms.
        let s = value_axis("ms", 14_000.0, true, 6);
        assert_eq!(s.top, 15_000.0);
        assert_eq!(labels(&s), ["0 s", "5 s", "10 s", "15 s"]);
        // Half steps keep one decimal on every tick.
        let small = value_axis("ms", 2.6, true, 6);
        assert_eq!(
            labels(&small),
            ["0.0 ms", "0.5 ms", "1.0 ms", "1.5 ms", "2.0 ms", "2.5 ms", "3.0 ms"]
        );
        let bytes = value_axis("bytes", 3.0 * 1024.0 * 1024.0, true, 6);
        assert_eq!(
            labels(&bytes),
            ["0.0 MiB", "0.5 MiB", "1.0 MiB", "1.5 MiB", "2.0 MiB", "2.5 MiB", "3.0 MiB"]
        );
        assert_eq!(
            labels(&value_axis("/s", 45_000.0, true, 5)).last(),
            Some(&"50k/s")
        );
        assert_eq!(labels(&value_axis("", 7.0, true, 6)).last(), Some(&"8"));
        assert_eq!(pct.label(40.0), "40 %");
        assert_eq!(pct.label(41.0), "");
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 6), 20.0);
        assert_eq!(nice_step(0.3, 3), 0.1);
        assert_eq!(nice_step(7.0, 6), 2.0);
        assert_eq!(nice_step(40.0, 6), 10.0);
        assert_eq!(nice_step(0.0, 6), 1.0);
    }

    #[test]
    fn time_ticks_fall_on_round_times() {
        // 14:03:17 to 14:08:17 UTC on 2025-03-04, five minutes: a tick every minute.
        let start = 1_741_097_000_000 - 3_000;
        let (ticks, step) = time_ticks(start, start + 300_000, 8);
        assert_eq!(step, 60_000);
        assert!(ticks.iter().all(|t| t % 60_000 == 0), "{ticks:?}");
        assert_eq!(ticks.len(), 5);
        assert!(ticks[0] >= start && *ticks.last().unwrap() <= start + 300_000);
        // A phone's narrow chart gets fewer, wider steps.
        let (_, narrow) = time_ticks(start, start + 300_000, 3);
        assert_eq!(narrow, 120_000);
        let (_, day) = time_ticks(start, start + 86_400_000, 8);
        assert_eq!(day, 3 * 3_600_000);
        let (_, month) = time_ticks(start, start + 30 * 86_400_000, 7);
        assert_eq!(month, 5 * 86_400_000);
    }

    #[test]
    fn time_labels_name_the_clock_then_the_date() {
        let at = 1_741_064_767_000; // 2025-03-04 05:06:07 UTC
        assert_eq!(time_label(at, 10_000), "05:06:07");
        assert_eq!(time_label(at - 7_000, 300_000), "05:06");
        assert_eq!(time_label(at, 86_400_000), "4 Mar");
        let midnight = at - at.rem_euclid(86_400_000);
        assert_eq!(time_label(midnight, 3_600_000), "4 Mar");
    }

    #[test]
    fn dragged_and_stepped_values_have_no_float_noise() {
        assert_eq!(snap(0.1 + 0.2, 0.1), 0.3);
        assert_eq!(snap(65.26, 0.5), 65.5);
        assert_eq!(snap(123.456, 1.0), 123.0);
        assert_eq!(drag_step("%", 100.0), 0.5);
        assert_eq!(drag_step("ms", 120.0), 1.0);
        assert_eq!(key_step("ms", 0.0, 120.0), 1.0);
        assert_eq!(exact_reading(72.5, "%"), "72.5 %");
        assert_eq!(exact_reading(65.0, "%"), "65 %");
        assert_eq!(exact_reading(0.004, "ms"), "0.004 ms");
        assert_eq!(exact_reading(12.0, "/s"), "12/s");
        assert_eq!(exact_reading(3.0, ""), "3");
        assert_eq!(
            target_line_label(Comparator::Le, 65.0, "%"),
            "target ≤ 65 %"
        );
    }

    #[test]
    fn the_for_control_offers_a_saved_duration_that_is_no_preset() {
        let presets: Vec<u32> = FOR_CHOICES.iter().map(|(s, _)| *s).collect();
        let with_20 = for_choices(20);
        assert_eq!(
            with_20.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [0, 20, 30, 60, 300, 900, 3600]
        );
        assert_eq!(with_20[1], (20, "20 s".to_owned()));
        assert_eq!(for_choices(90)[3], (90, "1 m 30 s".to_owned()));
        // A preset is not listed twice.
        assert_eq!(
            for_choices(300).iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            presets
        );
    }

    #[test]
    fn events_are_numbered_oldest_first() {
        let mut v = view(vec![Some(1.0); 3]);
        v.events = vec![
            ChartEvent {
                at_unix_ms: 2000,
                label: "b".into(),
            },
            ChartEvent {
                at_unix_ms: 1000,
                label: "a".into(),
            },
        ];
        let order: Vec<&str> = v
            .events_in_order()
            .iter()
            .map(|e| e.label.as_str())
            .collect();
        assert_eq!(order, ["a", "b"]);
        assert_eq!(
            sample_readout(&v, 1),
            "Sample at 1970-01-01 00:00:01 UTC: 1.0 % · b · a"
        );
    }
}
