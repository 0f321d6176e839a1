//! "Would this target have fired?": replays a target over a recorded series with the one
//! evaluator the live status uses.
//!
//! [`replay`] walks the series step by step; at each step it judges the trailing window
//! with [`Analyzer::observe`] and feeds that observation to a [`Tracker`] — the code the
//! monitor runs for the resource every tick — so its breach episodes are, by
//! construction, what the live status would have done: the target's statistic over the
//! evaluation window, at least [`crate::optimizer::MIN_COVERAGE`] of the window holding
//! samples (a thinner window decides nothing and holds every timer, like a gap), the
//! tolerance band, the target's `for`, and recovery only after `stabilization_secs`
//! within target. An episode is the time the status spends breached ("Not optimized"
//! after a confirmed breach). The alert fires where an episode starts: it reads the same
//! observation with the same `for` (see the property test below); it may resolve before
//! the status recovers (its resolve margin and `keep_firing_for` are the `[alerts]`
//! policy's), and fire again inside one episode.
//!
//! Pure and wasm-safe so the browser can answer while the user drags a target on the
//! chart. On summaries (a range's minute or hour slots) [`judged_series`] picks one value
//! per slot and says what it judged on — for the resource page's backtest and a report's
//! compliance alike; the window is then counted in slots.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::{
    Comparator, MetricKind, OptimizationStatus, ResourceSettings, Statistic, Target,
};
use crate::optimizer::{Analyzer, Condition, Tracker};
use crate::stats::SampleValue;

/// What a target is judged with besides itself: the resource's evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    /// The window the target's statistic is computed over.
    pub window_secs: u32,
    /// The dead-band past the target, in % of its value ([`Target::breach_level`]).
    pub tolerance_pct: f64,
    /// How long a breached target must be met again before it counts as recovered.
    pub stabilization_secs: u32,
}

impl Default for Rule {
    fn default() -> Self {
        Rule::of(&ResourceSettings::default())
    }
}

impl Rule {
    /// The rule of a resource (or a fleet: its resource's settings).
    pub fn of(settings: &ResourceSettings) -> Rule {
        Rule {
            window_secs: settings.window_secs,
            tolerance_pct: settings.tolerance_pct,
            stabilization_secs: settings.stabilization_secs,
        }
    }

    /// The settings [`Analyzer`] and [`Tracker`] read, for a series sampled every
    /// `step_secs`: the window is `max(1, window_secs / step_secs)` steps.
    pub fn settings(&self, step_secs: u32) -> ResourceSettings {
        ResourceSettings {
            step_secs: step_secs.max(1),
            window_secs: self.window_secs,
            tolerance_pct: self.tolerance_pct,
            stabilization_secs: self.stabilization_secs,
            ..ResourceSettings::default()
        }
    }

    /// Steps in the window for a series sampled every `step_secs` (at least one).
    pub fn window_steps(&self, step_secs: u32) -> usize {
        self.settings(step_secs).window_samples()
    }
}

/// One breach episode: from the step at which the status fired (a breach confirmed for
/// the target's `for`) to the one at which it recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// Index of the step at which it fired.
    pub start: usize,
    /// Index of the step at which it recovered (not firing any more); `None` when it was
    /// still going on at the end of the series.
    pub end: Option<usize>,
}

impl Episode {
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }
}

/// What [`replay`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// Breach episodes, oldest first.
    pub episodes: Vec<Episode>,
    /// Judged steps during which an episode was going on.
    pub firing_steps: usize,
    /// Steps whose window held enough data to judge.
    pub evaluated_steps: usize,
    /// Steps whose window held too little data: nothing was decided there.
    pub no_data_steps: usize,
    /// The largest share of any window that held samples, 0–1 (for "not enough data yet
    /// (N of M s)" when no step could be judged).
    pub best_coverage: f64,
}

impl Replay {
    pub fn summary(&self) -> BacktestResult {
        BacktestResult {
            breaches: u32::try_from(self.episodes.len()).unwrap_or(u32::MAX),
            breach_fraction: if self.evaluated_steps == 0 {
                0.0
            } else {
                self.firing_steps as f64 / self.evaluated_steps as f64
            },
            firing_samples: self.firing_steps,
            evaluated_samples: self.evaluated_steps,
            no_data_samples: self.no_data_steps,
            open_at_end: self.episodes.last().is_some_and(Episode::is_open),
            best_coverage: self.best_coverage,
        }
    }
}

/// A replay in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    /// Number of separate breach episodes (the status fired, then recovered or not).
    pub breaches: u32,
    /// Share of the judged steps during which it was firing, 0–1.
    pub breach_fraction: f64,
    /// Judged steps during which it was firing.
    pub firing_samples: usize,
    /// Steps whose window held enough data to judge.
    pub evaluated_samples: usize,
    /// Steps whose window held too little data to judge.
    pub no_data_samples: usize,
    /// The last episode was still going on at the end of the series.
    pub open_at_end: bool,
    /// The largest share of any window that held samples, 0–1.
    pub best_coverage: f64,
}

/// The kind only words the tracker's reasons, which a replay does not keep.
const REPLAY_KIND: MetricKind = MetricKind::Utilization;

/// Replays `target` with `rule` over `samples` (oldest first, one every `step_secs`): at
/// step `i` the window is the `rule.window_steps(step_secs)` samples ending at `i`, judged
/// by [`Analyzer::observe`] and fed to one [`Tracker`] at `i × step_secs` — what the
/// monitor does once per tick. Before the first step nothing is known (a fresh tracker,
/// as after a target edit).
pub fn replay<S: SampleValue>(
    samples: &[S],
    step_secs: u32,
    target: &Target,
    rule: &Rule,
) -> Result<Replay, EngineError> {
    if step_secs == 0 {
        return Err(EngineError::invalid(
            "step_secs",
            "the sample interval must be at least 1 s, got 0",
        ));
    }
    let settings = rule.settings(step_secs);
    let n = settings.window_samples();
    let step_ms = i64::from(step_secs) * 1000;
    let mut analyzer = Analyzer::new();
    let mut tracker = Tracker::new(0);
    let mut out = Replay {
        episodes: Vec::new(),
        firing_steps: 0,
        evaluated_steps: 0,
        no_data_steps: 0,
        best_coverage: 0.0,
    };
    for i in 0..samples.len() {
        let window = &samples[(i + 1).saturating_sub(n)..=i];
        let obs = analyzer.observe(window, target, &settings);
        out.best_coverage = out.best_coverage.max(obs.coverage);
        let now_ms = i as i64 * step_ms;
        if let Some(t) = tracker.observe(now_ms, &obs, target, REPLAY_KIND, &settings) {
            match t.to {
                // Only a confirmed breach moves a tracker to NotOptimized.
                OptimizationStatus::NotOptimized => out.episodes.push(Episode {
                    start: i,
                    end: None,
                }),
                // A recovery ends the open episode; a first verdict has none to end.
                OptimizationStatus::Optimized => {
                    if let Some(open) = out.episodes.last_mut().filter(|e| e.is_open()) {
                        open.end = Some(i);
                    }
                }
                OptimizationStatus::Optimizing | OptimizationStatus::Failed => {}
            }
        }
        if obs.condition == Condition::NoData {
            out.no_data_steps += 1;
        } else {
            out.evaluated_steps += 1;
            if out.episodes.last().is_some_and(Episode::is_open) {
                out.firing_steps += 1;
            }
        }
    }
    Ok(out)
}

/// [`replay`] in numbers.
pub fn backtest<S: SampleValue>(
    values: &[S],
    step_secs: u32,
    target: &Target,
    rule: &Rule,
) -> Result<BacktestResult, EngineError> {
    Ok(replay(values, step_secs, target, rule)?.summary())
}

/// What a replay over a range judges: see [`judged_series`].
#[derive(Debug, Clone, PartialEq)]
pub struct Judged<'a> {
    /// One value per step, oldest first: what [`replay`] is handed.
    pub values: &'a [Option<f32>],
    /// How, in words: "judged every second", "judged on minute maxima, an upper bound of
    /// p95", "judged on hourly means".
    pub how: String,
    /// The values stand in for a window statistic a slot summary cannot give back (slot
    /// means, maxima or minima), rather than being the samples themselves.
    pub proxy: bool,
}

/// The values a backtest — the resource page's, and a report's compliance — replays over
/// a range sampled every `step_secs`, and how it is judged. Samples (no `highs`, or not one
/// per step) are replayed as they are. A range of slot summaries (a minute, 10 minutes or
/// an hour each) cannot give a window's statistic back: a mean target is judged on the
/// slot means, a p95 or max target on each slot's worst value (its maximum for "at most",
/// its minimum for "at least": without `lows`, the means), which bounds the statistic
/// from the breaching side. The window is then counted in slots (at least one, see
/// [`Rule::window_steps`]). One choice for every caller, so a report and the page never
/// judge the same data differently.
pub fn judged_series<'a>(
    means: &'a [Option<f32>],
    lows: &'a [Option<f32>],
    highs: &'a [Option<f32>],
    statistic: Statistic,
    comparator: Comparator,
    step_secs: u32,
) -> Judged<'a> {
    let step_secs = step_secs.max(1);
    let summaries = !highs.is_empty() && highs.len() == means.len();
    if !summaries {
        let every = if step_secs == 1 {
            "second".to_owned()
        } else {
            span_words(step_secs)
        };
        return Judged {
            values: means,
            how: format!("judged every {every}"),
            proxy: false,
        };
    }
    let slot = match step_secs {
        60 => "minute".to_owned(),
        600 => "10-minute".to_owned(),
        3600 => "hourly".to_owned(),
        secs => span_words(secs),
    };
    let stat = statistic.as_str();
    let (values, how) = match (statistic, comparator) {
        (Statistic::Mean, _) => (means, format!("judged on {slot} means")),
        (Statistic::Max, Comparator::Le) => (highs, format!("judged on {slot} maxima")),
        (_, Comparator::Le) => (
            highs,
            format!("judged on {slot} maxima, an upper bound of {stat}"),
        ),
        (_, Comparator::Ge) if lows.len() == means.len() => (
            lows,
            format!("judged on {slot} minima, a lower bound of {stat}"),
        ),
        (_, Comparator::Ge) => (means, format!("judged on {slot} means")),
    };
    Judged {
        values,
        how,
        proxy: true,
    }
}

/// A step in words, as the pages write durations ("60 s", "2 min", "1 h", "1 h 30 min").
fn span_words(secs: u32) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s % 3600 / 60 == 0 => format!("{} h", s / 3600),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, AlertChange, AlertPhase, AlertPolicy};
    use crate::history::{HistoryConfig, SeriesHistory};
    use crate::model::{Comparator, Statistic};
    use crate::optimizer::not_enough_data;
    use proptest::prelude::*;

    fn target(value: f64, comparator: Comparator, for_secs: u32) -> Target {
        Target {
            metric: "m".into(),
            comparator,
            value,
            statistic: Statistic::Mean,
            for_secs,
        }
    }

    /// The evaluator's per-sample special case: a one-sample window, no tolerance band,
    /// recovery on the first sample within target.
    fn per_sample() -> Rule {
        Rule {
            window_secs: 1,
            tolerance_pct: 0.0,
            stabilization_secs: 0,
        }
    }

    #[test]
    fn counts_episodes_that_last_for_the_for_duration() {
        let t = target(65.0, Comparator::Le, 20);
        // step 10 s: a run needs 3 samples (0 s, 10 s, 20 s) to fire.
        let v = [
            70.0, 70.0, 50.0, 70.0, 70.0, 70.0, 70.0, 50.0, 70.0, 70.0, 70.0,
        ];
        let r = backtest(&v, 10, &t, &per_sample()).unwrap();
        assert_eq!(r.breaches, 2);
        assert_eq!(r.firing_samples, 3);
        assert_eq!(r.evaluated_samples, 11);
        assert!((r.breach_fraction - 3.0 / 11.0).abs() < 1e-12);
        assert!(r.open_at_end);
    }

    #[test]
    fn gaps_hold_the_timers_and_are_not_evaluated() {
        // A gap neither confirms nor denies, as for the live status: the run that began
        // at 0 s has lasted its `for` by 20 s although 10 s was a gap.
        let t = target(65.0, Comparator::Le, 10);
        let v = [
            Some(70.0),
            None,
            Some(70.0),
            Some(f64::NAN),
            Some(70.0),
            Some(70.0),
        ];
        let r = replay(&v, 10, &t, &per_sample()).unwrap();
        assert_eq!(
            r.episodes,
            [Episode {
                start: 2,
                end: None
            }]
        );
        assert_eq!(
            (r.firing_steps, r.evaluated_steps, r.no_data_steps),
            (3, 4, 2)
        );
    }

    #[test]
    fn for_zero_fires_on_the_first_breaching_sample_and_ge_breaches_below() {
        let t = target(100.0, Comparator::Ge, 0);
        let r = replay(&[150.0f32, 90.0, 120.0, 80.0, 70.0], 1, &t, &per_sample()).unwrap();
        assert_eq!(
            r.episodes,
            [
                Episode {
                    start: 1,
                    end: Some(2)
                },
                Episode {
                    start: 3,
                    end: None
                }
            ]
        );
        assert_eq!(r.firing_steps, 3);
        let empty = backtest::<f64>(&[], 1, &t, &per_sample()).unwrap();
        assert_eq!((empty.breaches, empty.breach_fraction), (0, 0.0));
        assert_eq!(
            backtest(&[1.0], 0, &t, &per_sample())
                .unwrap_err()
                .to_string(),
            "step_secs: the sample interval must be at least 1 s, got 0"
        );
    }

    /// The reproduction: `load` alternating 20/80 every second against p95 ≤ 50
    /// for 30 s over a 60 s window. The live status fires (the window's p95 is 80); the
    /// old per-sample backtest never did (every other sample is met, so no run of 31
    /// breaching samples exists).
    #[test]
    fn an_alternating_series_breaches_its_p95_as_the_live_status_says() {
        let t = Target {
            statistic: Statistic::P95,
            ..target(50.0, Comparator::Le, 30)
        };
        let rule = Rule {
            window_secs: 60,
            tolerance_pct: 10.0,
            stabilization_secs: 60,
        };
        let v: Vec<f32> = (0..300)
            .map(|i| if i % 2 == 0 { 20.0 } else { 80.0 })
            .collect();
        let r = replay(&v, 1, &t, &rule).unwrap();
        // Half a window of samples (30 s) before the first judgement, then 30 s of `for`.
        assert_eq!(
            r.episodes,
            [Episode {
                start: 59,
                end: None
            }]
        );
        assert_eq!(
            (r.no_data_steps, r.evaluated_steps, r.firing_steps),
            (29, 271, 241)
        );
        let old = old_per_sample_breaches(&v, 1, &t);
        assert_eq!(old, 0, "the per-sample reading missed it");
        // The live path, as the monitor runs it, agrees.
        let live = live_path(
            &v.iter().map(|x| Some(*x)).collect::<Vec<_>>(),
            1,
            &t,
            &rule.settings(1),
            &AlertPolicy::default(),
        );
        assert_eq!(live.episodes, r.episodes);
        assert_eq!(live.alert_fired, [59]);
    }

    #[test]
    fn a_window_too_thin_to_judge_is_not_enough_data() {
        let t = target(50.0, Comparator::Le, 0);
        // 20 samples of a 60 s window, then nothing: never half the window.
        let mut v = vec![Some(90.0f32); 20];
        v.extend([None; 40]);
        let r = replay(&v, 1, &t, &Rule::default()).unwrap();
        assert_eq!((r.evaluated_steps, r.no_data_steps), (0, 60));
        assert!(r.episodes.is_empty());
        assert_eq!(
            not_enough_data(r.best_coverage, 60),
            "not enough data yet (20 of 60 s)"
        );
    }

    #[test]
    fn the_tolerance_band_is_part_of_the_target_as_shown() {
        let t = Target {
            statistic: Statistic::P95,
            ..target(65.0, Comparator::Le, 300)
        };
        let kind = MetricKind::Utilization;
        assert_eq!(t.breach_level(10.0), 71.5);
        assert_eq!(
            t.threshold_text(kind, 10.0),
            "≤ 65 % (breaches above 71.5 %)"
        );
        assert_eq!(t.threshold_text(kind, 0.0), "≤ 65 %");
        assert_eq!(
            t.describe_with_band(kind, 10.0),
            "p95 m ≤ 65 % (breaches above 71.5 %) for 5 m"
        );
        let ge = target(90.0, Comparator::Ge, 0);
        assert_eq!(
            ge.threshold_text(kind, 10.0),
            "≥ 90 % (breaches below 81 %)"
        );
        // Exactly at the band's edge is inside it; past it breaches.
        assert!(!t.is_breached(71.5, 10.0) && t.is_breached(71.6, 10.0));
        // A steady 70 % host against "≤ 65 %": past the target, inside the band.
        let r = replay(&[70.0; 120], 1, &t, &Rule::default()).unwrap();
        assert!(r.episodes.is_empty());
    }

    #[test]
    fn a_target_of_a_hundredth_of_a_millisecond_is_judged_as_written() {
        // Readings are stored as f32: judge what the history holds.
        let t = target(0.01, Comparator::Le, 0);
        assert_eq!(
            t.threshold_text(MetricKind::Latency, 10.0),
            "≤ 0.01 ms (breaches above 0.011 ms)"
        );
        let breaching = replay(&[0.02f32; 120], 1, &t, &Rule::default()).unwrap();
        assert_eq!(breaching.episodes.len(), 1, "0.02 ms breaches ≤ 0.01 ms");
        let meeting = replay(&[0.009f32; 120], 1, &t, &Rule::default()).unwrap();
        assert!(meeting.evaluated_steps > 0);
        assert!(meeting.episodes.is_empty(), "0.009 ms meets ≤ 0.01 ms");
        assert_eq!(meeting.firing_steps, 0);
    }

    /// The one choice of what a range is judged on, in the words every surface prints.
    #[test]
    fn judged_series_reads_samples_as_they_are_and_summaries_on_their_worst_side() {
        let means = [Some(50.0f32); 3];
        let lows = [Some(20.0f32); 3];
        let highs = [Some(80.0f32); 3];
        let j = judged_series(&means, &[], &[], Statistic::P95, Comparator::Le, 1);
        assert_eq!((j.how.as_str(), j.proxy), ("judged every second", false));
        assert_eq!(j.values, &means[..]);
        let j = judged_series(&means, &[], &[], Statistic::P95, Comparator::Le, 60);
        assert_eq!(j.how, "judged every 60 s");
        let j = judged_series(&means, &lows, &highs, Statistic::P95, Comparator::Le, 60);
        assert_eq!(j.how, "judged on minute maxima, an upper bound of p95");
        assert_eq!((j.values, j.proxy), (&highs[..], true));
        let j = judged_series(&means, &lows, &highs, Statistic::P95, Comparator::Ge, 3600);
        assert_eq!(j.how, "judged on hourly minima, a lower bound of p95");
        assert_eq!(j.values, &lows[..]);
        let j = judged_series(&means, &lows, &highs, Statistic::Max, Comparator::Le, 600);
        assert_eq!(j.how, "judged on 10-minute maxima");
        let j = judged_series(&means, &lows, &highs, Statistic::Mean, Comparator::Le, 120);
        assert_eq!(
            (j.how.as_str(), j.values),
            ("judged on 2 min means", &means[..])
        );
    }

    /// What the backtest did before it shared the live evaluator: each sample against the
    /// target value, a run of `ceil(for / step) + 1` breaching samples fires, a met sample
    /// or a gap ends the run. Kept to show what it missed.
    fn old_per_sample_breaches(values: &[f32], step: u32, t: &Target) -> u32 {
        let need = (t.for_secs as usize).div_ceil(step as usize);
        let (mut run, mut episodes) = (0usize, 0u32);
        for v in values {
            if t.is_met(f64::from(*v)) {
                run = 0;
            } else {
                run += 1;
                if run == need + 1 {
                    episodes += 1;
                }
            }
        }
        episodes
    }

    /// Independent formulation of the per-sample special case: a sample fires when it
    /// breaches and the breaching run it belongs to (gaps skipped: they hold the timers)
    /// began at least `for` before it; an episode starts at a firing sample whose previous
    /// sample with data did not fire.
    fn oracle(values: &[Option<f64>], step: u32, t: &Target) -> (u32, usize, usize) {
        let mut firing = vec![false; values.len()];
        let mut run_start: Option<usize> = None;
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            if t.is_met(*v) {
                run_start = None;
            } else {
                let b = *run_start.get_or_insert(i);
                firing[i] = (i - b) as u64 * u64::from(step) >= u64::from(t.for_secs);
            }
        }
        let mut episodes = 0u32;
        let mut previous = false;
        for (i, v) in values.iter().enumerate() {
            if v.is_none() {
                continue;
            }
            if firing[i] && !previous {
                episodes += 1;
            }
            previous = firing[i];
        }
        (
            episodes,
            firing.iter().filter(|f| **f).count(),
            values.iter().flatten().count(),
        )
    }

    /// What the monitor does for one resource, once per sample: the sample goes into the
    /// history's ring, the tick reads the last `window_samples()` raw slots, the analyzer
    /// judges them, the alert then the tracker observe the judgement.
    struct Live {
        episodes: Vec<Episode>,
        firing: usize,
        evaluated: usize,
        no_data: usize,
        /// Steps at which the alert fired.
        alert_fired: Vec<usize>,
        /// Steps after which the alert was firing.
        alert_firing: Vec<bool>,
    }

    fn live_path(
        values: &[Option<f32>],
        step_secs: u32,
        t: &Target,
        settings: &ResourceSettings,
        policy: &AlertPolicy,
    ) -> Live {
        let step_ms = i64::from(step_secs) * 1000;
        let mut ring = SeriesHistory::new(&HistoryConfig {
            step_ms,
            raw_slots: 4096,
            bucket_ms: step_ms * 60,
            buckets: 8,
            max_series: 1,
        });
        let mut analyzer = Analyzer::new();
        let mut tracker = Tracker::new(0);
        let mut alert = Alert::new();
        let mut live = Live {
            episodes: Vec::new(),
            firing: 0,
            evaluated: 0,
            no_data: 0,
            alert_fired: Vec::new(),
            alert_firing: Vec::new(),
        };
        let kind = MetricKind::Latency;
        for (i, v) in values.iter().enumerate() {
            let at = i as i64 * step_ms;
            ring.append(at, *v);
            let samples = ring.last_raw(settings.window_samples());
            let observation = analyzer.observe(&samples, t, settings);
            let change = alert.observe(
                at,
                observation.observed,
                observation.condition,
                t,
                kind,
                policy,
            );
            if let Some(AlertChange::Fired { .. }) = change {
                live.alert_fired.push(i);
            }
            live.alert_firing.push(alert.phase() == AlertPhase::Firing);
            let was_evaluated = tracker.report().evaluated;
            if let Some(transition) = tracker.observe(at, &observation, t, kind, settings) {
                if transition.to == OptimizationStatus::NotOptimized {
                    live.episodes.push(Episode {
                        start: i,
                        end: None,
                    });
                } else if transition.to == OptimizationStatus::Optimized && was_evaluated {
                    let open = live
                        .episodes
                        .last_mut()
                        .expect("a recovery ends an episode");
                    assert!(open.is_open());
                    open.end = Some(i);
                }
            }
            if observation.condition == Condition::NoData {
                live.no_data += 1;
            } else {
                live.evaluated += 1;
                let report = tracker.report();
                if report.evaluated && report.status == OptimizationStatus::NotOptimized {
                    live.firing += 1;
                }
            }
        }
        live
    }

    /// Runs of one value (or a gap), so series cross their targets now and then.
    fn runs() -> impl Strategy<Value = Vec<Option<f32>>> {
        prop::collection::vec(
            (prop::option::weighted(0.85, 20.0f32..80.0), 1usize..40),
            1..30,
        )
        .prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(v, n)| std::iter::repeat_n(v, n))
                .collect::<Vec<Option<f32>>>()
        })
    }

    fn statistic() -> impl Strategy<Value = Statistic> {
        prop_oneof![
            Just(Statistic::Mean),
            Just(Statistic::P95),
            Just(Statistic::Max)
        ]
    }

    proptest! {
        #[test]
        fn the_per_sample_case_matches_a_brute_force_oracle(
            values in prop::collection::vec(prop::option::weighted(0.9, 0.0f64..100.0), 0..300),
            step in 1u32..30,
            for_secs in 0u32..200,
            value in 0.0f64..100.0,
            ge in any::<bool>(),
        ) {
            let t = target(value, if ge { Comparator::Ge } else { Comparator::Le }, for_secs);
            let r = backtest(&values, step, &t, &per_sample()).unwrap();
            let (breaches, firing, evaluated) = oracle(&values, step, &t);
            prop_assert_eq!(r.breaches, breaches);
            prop_assert_eq!(r.firing_samples, firing);
            prop_assert_eq!(r.evaluated_samples, evaluated);
            prop_assert!((0.0..=1.0).contains(&r.breach_fraction));
        }

        // The backtest is the live status replayed: the same fire and recover steps, the
        // same judged and firing steps, as the monitor's own path (history ring, last
        // window, analyzer, tracker, one tick per sample). And the alert fires where an
        // episode starts or inside one, and is firing after every episode's first step.
        #[test]
        fn replay_is_the_live_path(
            values in runs(),
            step in 1u32..5,
            stat in statistic(),
            ge in any::<bool>(),
            value in 30.0f64..70.0,
            for_secs in 0u32..120,
            window_secs in 1u32..120,
            tolerance_pct in 0.0f64..20.0,
            stabilization_secs in 0u32..120,
            resolve_margin_pct in 0.0f64..15.0,
            keep_firing_for_secs in 0u32..30,
        ) {
            let t = Target {
                statistic: stat,
                ..target(value, if ge { Comparator::Ge } else { Comparator::Le }, for_secs)
            };
            let settings = ResourceSettings {
                step_secs: step,
                window_secs,
                tolerance_pct,
                stabilization_secs,
                ..ResourceSettings::default()
            };
            let policy = AlertPolicy { resolve_margin_pct, keep_firing_for_secs, ..AlertPolicy::default() };
            let live = live_path(&values, step, &t, &settings, &policy);
            let r = replay(&values, step, &t, &Rule::of(&settings)).unwrap();
            prop_assert_eq!(&r.episodes, &live.episodes);
            prop_assert_eq!(r.firing_steps, live.firing);
            prop_assert_eq!(r.evaluated_steps, live.evaluated);
            prop_assert_eq!(r.no_data_steps, live.no_data);
            for e in &r.episodes {
                prop_assert!(live.alert_firing[e.start], "alert not firing at {:?}", e);
            }
            for &fired in &live.alert_fired {
                let inside = r.episodes.iter().any(|e| {
                    e.start <= fired && e.end.is_none_or(|end| fired < end)
                });
                prop_assert!(inside, "alert fired at {} outside {:?}", fired, r.episodes);
            }
        }
    }
}
