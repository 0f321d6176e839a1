//! Wire types of the resource detail page and the pure logic behind its readouts, shared
//! by the server (which fills them from history) and the browser (which runs the backtest
//! on them while the user drags the target).

use serde::{Deserialize, Serialize};

use engine::backtest::{backtest, judged_series, Judged, Rule};
use engine::model::{MetricKind, Target};

/// Chart ranges a user can pick; part of the page URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChartRange {
    FiveMinutes,
    OneHour,
    OneDay,
    SevenDays,
    ThirtyDays,
}

impl ChartRange {
    pub const ALL: [ChartRange; 5] = [
        ChartRange::FiveMinutes,
        ChartRange::OneHour,
        ChartRange::OneDay,
        ChartRange::SevenDays,
        ChartRange::ThirtyDays,
    ];

    pub fn parse(s: &str) -> Result<ChartRange, String> {
        match s {
            "5m" => Ok(ChartRange::FiveMinutes),
            "1h" => Ok(ChartRange::OneHour),
            "24h" => Ok(ChartRange::OneDay),
            "7d" => Ok(ChartRange::SevenDays),
            "30d" => Ok(ChartRange::ThirtyDays),
            other => Err(format!(
                "range: must be one of 5m, 1h, 24h, 7d or 30d, got {other:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChartRange::FiveMinutes => "5m",
            ChartRange::OneHour => "1h",
            ChartRange::OneDay => "24h",
            ChartRange::SevenDays => "7d",
            ChartRange::ThirtyDays => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChartRange::FiveMinutes => "5 min",
            ChartRange::OneHour => "1 hour",
            ChartRange::OneDay => "24 hours",
            ChartRange::SevenDays => "7 days",
            ChartRange::ThirtyDays => "30 days",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            ChartRange::FiveMinutes => 5 * 60_000,
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
    /// and the candidate target.
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
        (data_max.max(candidate.unwrap_or(0.0)) * 1.15).max(1.0)
    }

    /// Limits a target value may take for this metric.
    pub fn bounds(&self, chart_top: f64) -> (f64, f64) {
        match self.kind {
            MetricKind::Utilization => (0.0, 100.0),
            _ => (0.0, chart_top.max(1.0)),
        }
    }
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
            "range: must be one of 5m, 1h, 24h, 7d or 30d, got \"2h\""
        );
    }
}
