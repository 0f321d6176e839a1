//! What a report contains, read from the monitor: history (memory for the last day, the
//! disk beyond) replayed against each target, before/afters, alert episodes, top
//! processes and queries ([`gather`]), and the audit filter of its optimizer actions.

use app::audit::{AuditFilter, AuditKind, AuditRecord};
use app::proof::ComparisonRow;
use app::resource_data::ChartRange;
use engine::backtest::{judged_series, replay, Rule};
use engine::history::tiers::StoredPoint;
use engine::history::{Downsampled, Grid, HistoryConfig, Point, SeriesHistory, Tier};
use engine::model::{Resource, Target};
use engine::series::SeriesKey;

use super::period::Period;
use crate::persist::alerts::Episode;
use crate::state::Monitor;

/// Slots per chart and per compliance computation.
pub(super) const SLOTS: i64 = 288;

/// One resource over the period.
#[derive(Debug, Clone)]
pub struct ResourceReport {
    pub id: String,
    pub name: String,
    pub resource_type: String,
    pub metric: Option<String>,
    pub unit: String,
    /// The target as the status shows it, with its tolerance band.
    pub target: Option<String>,
    /// Share of the judged time during which the target was not breached, %: the live
    /// status's rule replayed over the period (see [`Compliance`]).
    pub compliance_pct: Option<f64>,
    /// The replay behind `compliance_pct`: its breaches, judged and not-enough-data time,
    /// and how it was judged.
    pub compliance: Option<Compliance>,
    /// Slots with data / all slots.
    pub slots_with_data: usize,
    pub slots: usize,
    pub mean: Option<f64>,
    pub worst: Option<f64>,
    /// Alert episodes that overlap the period, and how long they fired inside it.
    pub alerts: usize,
    pub firing_ms: i64,
    /// The target metric over the period, one value per slot: the Mean, Worst and Data
    /// columns (compliance replays finer data, see [`Compliance`]).
    pub series: Option<Downsampled>,
    /// The target metric as its chart draws it when the data covers less than most of the
    /// period (a new install, a resource added lately): the data's own extent at up to the
    /// chart's resolution, since five minutes of a 24 h report are one slot. `None` when
    /// the data covers the period: the chart draws `series`.
    pub chart: Option<Downsampled>,
}

/// A target replayed over the period with the live status's rule
/// ([`engine::backtest::replay`]: the target's statistic over the resource's window,
/// coverage, tolerance band, `for`, recovery), so the report says what the status, the
/// alert and the resource page's backtest said of the same data.
#[derive(Debug, Clone, PartialEq)]
pub struct Compliance {
    /// Share of the judged time during which the replay was not firing, %; `None` when
    /// no step had enough data to judge.
    pub pct: Option<f64>,
    /// Breach episodes: the status fired (then recovered, or not by the period's end).
    pub breaches: usize,
    /// Time whose window held enough data to judge.
    pub judged_ms: i64,
    /// Time whose window held too little ("not enough data"): excluded from `pct`.
    pub no_data_ms: i64,
    /// How, in the backtest's words: "judged every second", "judged on minute maxima, an
    /// upper bound of p95".
    pub judged_on: String,
}

/// One series as a replay reads it, a value per step from its first step with data:
/// samples (`highs` empty), or slot summaries.
#[derive(Debug, Clone, PartialEq, Default)]
struct Steps {
    step_ms: i64,
    means: Vec<Option<f32>>,
    lows: Vec<Option<f32>>,
    highs: Vec<Option<f32>>,
}

impl Steps {
    /// From a range's buckets; `samples` when they are the samples themselves.
    fn of(down: &Downsampled, samples: bool) -> Steps {
        let Some(first) = down.points.iter().position(Option::is_some) else {
            return Steps::default();
        };
        let points = &down.points[first..];
        let means = points.iter().map(|p| p.as_ref().map(|p| p.mean)).collect();
        let (lows, highs) = if samples {
            (Vec::new(), Vec::new())
        } else {
            (
                points.iter().map(|p| p.as_ref().map(|p| p.min)).collect(),
                points.iter().map(|p| p.as_ref().map(|p| p.max)).collect(),
            )
        };
        Steps {
            step_ms: down.width,
            means,
            lows,
            highs,
        }
    }
}

/// A target's compliance over `steps` with `rule` (the resource's own): `None` without
/// data. What a step is judged on — the samples, or a slot summary standing in for the
/// window's statistic — is [`judged_series`]'s choice, the one the resource page's
/// backtest makes.
fn replayed(target: &Target, rule: &Rule, steps: &Steps) -> Option<Compliance> {
    if steps.means.iter().all(Option::is_none) {
        return None;
    }
    let step_secs = u32::try_from(steps.step_ms / 1000)
        .unwrap_or(u32::MAX)
        .max(1);
    let judged = judged_series(
        &steps.means,
        &steps.lows,
        &steps.highs,
        target.statistic,
        target.comparator,
        step_secs,
    );
    let run = replay(judged.values, step_secs, target, rule).ok()?;
    let evaluated = run.evaluated_steps;
    Some(Compliance {
        pct: (evaluated > 0)
            .then(|| (evaluated - run.firing_steps) as f64 * 100.0 / evaluated as f64),
        breaches: run.episodes.len(),
        judged_ms: evaluated as i64 * steps.step_ms,
        no_data_ms: run.no_data_steps as i64 * steps.step_ms,
        judged_on: judged.how,
    })
}

/// A series from memory as the replay reads it: over the data's extent inside the period,
/// from the finest tier that holds all of it ([`SeriesHistory::range`], which the
/// resource page's chart reads too: the raw samples while they are kept — the 5-minute
/// and 1-hour views, a new install's first hour — else the minute summaries, the 24-hour
/// view).
fn memory_steps(data: &SeriesHistory, period: Period, raw_step_ms: i64) -> Steps {
    let mut first: Option<i64> = None;
    data.visit(period.from_ms, period.to_ms, |t, _, _, _| {
        first.get_or_insert(t);
    });
    let Some(first) = first else {
        return Steps::default();
    };
    // Room for one point per raw step: the raw tier is then read at its own resolution.
    let max_points = usize::try_from((period.to_ms - first) / raw_step_ms.max(1)).unwrap_or(0) + 2;
    let down = data.range(first, period.to_ms, max_points);
    Steps::of(&down, down.tier == Tier::Raw)
}

/// The width of the steps a period read from disk is replayed on: the resource page's
/// view of a range that long (raw samples up to an hour, minutes up to a day, 10-minute
/// slots up to 7 days, hours beyond), so a report of the last 24 h, 7 or 30 days judges
/// what that range's backtest judges.
fn stored_step_ms(span_ms: i64, config: &HistoryConfig) -> i64 {
    if span_ms <= ChartRange::OneHour.millis() {
        config.step_ms
    } else if span_ms <= ChartRange::OneDay.millis() {
        config.bucket_ms
    } else if span_ms <= ChartRange::SevenDays.millis() {
        ChartRange::SevenDays.stored_step_ms().unwrap_or(600_000)
    } else {
        ChartRange::ThirtyDays.stored_step_ms().unwrap_or(3_600_000)
    }
}

/// Points read from disk (one tier) as the replay reads them: slots `step_ms` wide from
/// the period's start (min, mean of means, max, as [`Monitor::stored_chart`] folds them),
/// or the samples themselves from the raw tier.
fn stored_steps(points: &[StoredPoint], period: Period, step_ms: i64, samples: bool) -> Steps {
    let step_ms = step_ms.max(1);
    let start_ms = period.from_ms - period.from_ms.rem_euclid(step_ms);
    let grid = Grid {
        start_ms,
        step_ms,
        points: usize::try_from((period.to_ms - start_ms + step_ms - 1) / step_ms)
            .unwrap_or(0)
            .max(1),
    };
    let mut folds = vec![None; grid.points];
    for p in points {
        fold(&mut folds, grid, p.t, p.min, p.max, p.mean);
    }
    Steps::of(&downsampled(grid, folds), samples)
}

#[derive(Debug, Clone)]
pub struct ReportData {
    pub period: Period,
    pub generated_ms: i64,
    /// What compliance is (each resource's [`Compliance::judged_on`] says how it was
    /// judged).
    pub judged_on: String,
    pub resources: Vec<ResourceReport>,
    pub comparisons: Vec<ComparisonRow>,
    pub alerts: Vec<Episode>,
    pub actions: Vec<AuditRecord>,
    pub top_processes: Vec<String>,
    pub top_queries: Vec<(String, Vec<engine::database::QueryStat>)>,
    /// What the report could not read, in words.
    pub notes: Vec<String>,
}

impl ReportData {
    /// Overall compliance: the mean over resources with a target and data.
    pub fn compliance_pct(&self) -> Option<f64> {
        let values: Vec<f64> = self
            .resources
            .iter()
            .filter_map(|r| r.compliance_pct)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// One line for a scheduled delivery.
    pub fn summary(&self) -> String {
        let rollbacks = self
            .actions
            .iter()
            .filter(|a| a.what.contains("rolled back"))
            .count();
        format!(
            "Performance report {}: {} resources, target compliance {}, {} alerts, {} optimizer actions ({} rolled back), {} before/afters",
            self.period.describe(),
            self.resources.len(),
            self.compliance_pct()
                .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1} %")),
            self.alerts.len(),
            self.actions.len(),
            rollbacks,
            self.comparisons.len()
        )
    }
}

/// Reads everything the report shows (blocking: history on disk; call it on the blocking
/// pool).
#[allow(clippy::too_many_lines)] // 207 lines today; split before it grows
pub fn gather(monitor: &Monitor, period: Period, actions: Vec<AuditRecord>) -> ReportData {
    let now = engine::time::unix_now_ms();
    let state = monitor.store.state();
    let step_ms = (period.span_ms() / SLOTS).max(1000);
    // The status's own rule, so the report agrees with the status, the alert and the
    // backtest on the same data.
    let judged_on = "the share of the judged time each target was not breached, its status replayed over the period (its statistic over the resource's window, tolerance band, `for` and recovery; how each was judged is under its target)".to_owned();
    let history_config = *monitor.history().config();
    let alerts = monitor.alerting.episodes(period.from_ms, period.to_ms);
    let mut notes = Vec::new();
    // Memory keeps a day of minutes (and the latest raw samples), the disk everything older.
    let in_memory = period.from_ms >= now - 86_400_000 - 60_000;
    let resources: Vec<&Resource> = state.resources.values().map(|r| &**r).collect();
    let keys: Vec<Option<SeriesKey>> = resources
        .iter()
        .map(|r| {
            r.target
                .as_ref()
                .map(|t| SeriesKey::new(r.id.as_str(), t.metric.as_str()))
        })
        .collect();
    let grid = Grid {
        start_ms: period.from_ms,
        step_ms,
        points: (period.span_ms() / step_ms).max(1) as usize,
    };
    let mut series: Vec<Option<Downsampled>> = vec![None; resources.len()];
    let mut charts: Vec<Option<Downsampled>> = vec![None; resources.len()];
    // What each target's compliance replays.
    let mut judged: Vec<Steps> = vec![Steps::default(); resources.len()];
    if in_memory {
        let history = monitor.history();
        for (((slot, chart), steps), key) in series
            .iter_mut()
            .zip(charts.iter_mut())
            .zip(judged.iter_mut())
            .zip(&keys)
        {
            let Some(data) = key.as_ref().and_then(|k| history.get(history.id(k)?)) else {
                continue;
            };
            let (slots, drawn) = from_memory(data, period, grid);
            *slot = Some(slots);
            *chart = drawn;
            *steps = memory_steps(data, period, history_config.step_ms);
        }
    } else if monitor.stored.is_enabled() {
        let wanted: Vec<SeriesKey> = keys.iter().flatten().cloned().collect();
        let tier = crate::state::stored::tier_for(step_ms);
        // The replay's tier, read again only when it is not the slots' one.
        let judged_step_ms = stored_step_ms(period.span_ms(), &history_config);
        let judged_tier = crate::state::stored::tier_for(judged_step_ms);
        let judged_samples = judged_tier == engine::history::tiers::Tier::Raw;
        let read = |tier| {
            monitor
                .stored
                .read(&wanted, tier, grid.start_ms, grid.end_ms())
        };
        let both = read(tier).and_then(|all| {
            let other = if judged_tier == tier {
                None
            } else {
                Some(read(judged_tier)?)
            };
            Ok((all, other))
        });
        match both {
            Ok((all, other)) => {
                let mut read = all.into_iter();
                let mut other = other.map(Vec::into_iter);
                for (((slot, chart), steps), key) in series
                    .iter_mut()
                    .zip(charts.iter_mut())
                    .zip(judged.iter_mut())
                    .zip(&keys)
                {
                    if key.is_none() {
                        continue;
                    }
                    let Some(points) = read.next() else { break };
                    let replayed_points = other.as_mut().and_then(Iterator::next);
                    *steps = stored_steps(
                        replayed_points.as_deref().unwrap_or(points.as_slice()),
                        period,
                        judged_step_ms,
                        judged_samples,
                    );
                    let mut folds = vec![None; grid.points];
                    for p in &points {
                        fold(&mut folds, grid, p.t, p.min, p.max, p.mean);
                    }
                    *slot = Some(downsampled(grid, folds));
                    let points: Vec<(i64, f32, f32, f32)> =
                        points.iter().map(|p| (p.t, p.min, p.max, p.mean)).collect();
                    *chart = regrid(&points, period);
                }
            }
            Err(why) => notes.push(format!("history on disk could not be read: {why}")),
        }
    } else {
        notes.push(
            "this perfpilot runs with --ephemeral: only the last 24 hours are kept, in memory"
                .into(),
        );
    }
    let units: Vec<String> = resources.iter().map(|r| monitor.unit_of(r)).collect();
    let mut reports = Vec::with_capacity(resources.len());
    for ((((resource, series), chart), steps), unit) in resources
        .iter()
        .zip(series)
        .zip(charts)
        .zip(judged)
        .zip(units)
    {
        let target = resource.target.as_ref();
        let kind = resource.target_kind();
        let points: Vec<Point> = series
            .as_ref()
            .map(|s| s.points.iter().flatten().copied().collect())
            .unwrap_or_default();
        let slots = series.as_ref().map_or(0, |s| s.points.len());
        let rule = Rule::of(&resource.settings);
        let compliance = target.and_then(|t| replayed(t, &rule, &steps));
        let compliance_pct = compliance.as_ref().and_then(|c| c.pct);
        let mean = (!points.is_empty())
            .then(|| points.iter().map(|p| f64::from(p.mean)).sum::<f64>() / points.len() as f64);
        let worst = target.and_then(|t| worst(t, &points));
        let (count, firing_ms) = alerts
            .iter()
            .filter(|e| e.resource == resource.id.as_str())
            .fold((0, 0), |(n, ms), e| {
                let start = e.started_ms.max(period.from_ms);
                let end = e.ended_ms.unwrap_or(now).min(period.to_ms);
                (n + 1, ms + (end - start).max(0))
            });
        reports.push(ResourceReport {
            id: resource.id.to_string(),
            name: resource.name.clone(),
            resource_type: resource.resource_type.to_string(),
            metric: target.map(|t| t.metric.clone()),
            unit: if unit.is_empty() {
                kind.map(|k| k.unit().to_owned()).unwrap_or_default()
            } else {
                unit
            },
            target: target
                .zip(kind)
                .map(|(t, k)| t.describe_with_band(k, rule.tolerance_pct)),
            compliance_pct,
            compliance,
            slots_with_data: points.len(),
            slots,
            mean,
            worst,
            alerts: count,
            firing_ms,
            series,
            chart,
        });
    }
    // Worst first: what the reader should look at.
    reports.sort_by(|a, b| {
        a.compliance_pct
            .unwrap_or(101.0)
            .total_cmp(&b.compliance_pct.unwrap_or(101.0))
            .then_with(|| a.id.cmp(&b.id))
    });
    let comparisons = monitor
        .comparisons()
        .into_iter()
        .filter(|c| !c.pending && c.at_unix_ms >= period.from_ms && c.at_unix_ms < period.to_ms)
        .collect();
    let top_processes = monitor
        .top()
        .map(|top| {
            let cpu = top
                .by_cpu
                .iter()
                .take(5)
                .map(|p| format!("CPU: {} (pid {}) {:.1} %", p.name, p.pid, p.cpu_pct));
            let memory = top.by_memory.iter().take(5).map(|p| {
                format!(
                    "memory: {} (pid {}) {:.1} MiB",
                    p.name,
                    p.pid,
                    p.rss_bytes as f64 / 1_048_576.0
                )
            });
            cpu.chain(memory).collect()
        })
        .unwrap_or_default();
    let top_queries = state
        .resources
        .values()
        .filter(|r| r.resource_type == engine::model::ResourceType::Database)
        .filter_map(|r| {
            let details = monitor.configured.source_details(r.id.as_str())?;
            let top: engine::database::TopQueries =
                serde_json::from_value((*details).clone()).ok()?;
            (!top.top.is_empty()).then(|| (r.id.to_string(), top.top.into_iter().take(5).collect()))
        })
        .collect();
    ReportData {
        period,
        generated_ms: now,
        judged_on,
        resources: reports,
        comparisons,
        alerts,
        actions,
        top_processes,
        top_queries,
        notes,
    }
}

type Fold = Option<(f32, f64, u32, f32)>;

/// The data's first and last time when they span less than most of the period (see
/// [`crate::svg::FULL_SHARE`]): its chart is drawn over them instead.
fn short_extent(first: i64, last: i64, period: Period) -> bool {
    ((last - first) as f64) < period.span_ms() as f64 * crate::svg::FULL_SHARE
}

/// One series from memory: the period's slots, and the chart over the data's own extent
/// when that is short (from the raw samples while they are kept, else the minutes, at up
/// to the chart's resolution: [`SeriesHistory::range`], what exports read).
pub(super) fn from_memory(
    data: &SeriesHistory,
    period: Period,
    grid: Grid,
) -> (Downsampled, Option<Downsampled>) {
    let mut folds = vec![None; grid.points];
    let mut extent: Option<(i64, i64)> = None;
    data.visit(period.from_ms, period.to_ms, |t, min, max, mean| {
        fold(&mut folds, grid, t, min, max, mean);
        extent = Some(extent.map_or((t, t), |(first, last)| (first.min(t), last.max(t))));
    });
    let chart = extent
        .filter(|&(first, last)| short_extent(first, last, period))
        .map(|(first, last)| {
            data.range(first, (last + 1).min(period.to_ms), crate::svg::SVG_POINTS)
        });
    (downsampled(grid, folds), chart)
}

/// Points read from disk (`(t, min, max, mean)`, one tier) on a grid over their own extent
/// when that is short: buckets a whole number of the tier's steps wide (the smallest
/// distance between two points), at most the chart's resolution.
fn regrid(points: &[(i64, f32, f32, f32)], period: Period) -> Option<Downsampled> {
    let first = points.iter().map(|p| p.0).min()?;
    let last = points.iter().map(|p| p.0).max()?;
    if !short_extent(first, last, period) {
        return None;
    }
    let mut times: Vec<i64> = points.iter().map(|p| p.0).collect();
    times.sort_unstable();
    let resolution = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(1000);
    let max_points = crate::svg::SVG_POINTS as i64;
    let wanted = (last - first + resolution + max_points - 1) / max_points;
    let step = ((wanted.max(resolution) + resolution - 1) / resolution) * resolution;
    let grid = Grid {
        start_ms: first,
        step_ms: step,
        points: ((last - first) / step + 1) as usize,
    };
    let mut folds = vec![None; grid.points];
    for &(t, min, max, mean) in points {
        fold(&mut folds, grid, t, min, max, mean);
    }
    Some(downsampled(grid, folds))
}

/// Adds one point to its grid slot: (min, sum of means, count, max).
fn fold(folds: &mut [Fold], grid: Grid, t: i64, min: f32, max: f32, mean: f32) {
    let Ok(i) = usize::try_from((t - grid.start_ms).div_euclid(grid.step_ms)) else {
        return;
    };
    if let Some(slot) = folds.get_mut(i) {
        let (lo, sum, n, hi) = slot.get_or_insert((f32::INFINITY, 0.0, 0, f32::NEG_INFINITY));
        *lo = lo.min(min);
        *hi = hi.max(max);
        *sum += f64::from(mean);
        *n += 1;
    }
}

fn downsampled(grid: Grid, folds: Vec<Fold>) -> Downsampled {
    Downsampled {
        tier: Tier::Aggregate,
        origin: grid.start_ms,
        width: grid.step_ms,
        points: folds
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                slot.map(|(min, sum, n, max)| Point {
                    t: grid.start_ms + i as i64 * grid.step_ms,
                    min,
                    mean: (sum / f64::from(n)) as f32,
                    max,
                })
            })
            .collect(),
    }
}

/// The audit filter of the period's optimizer actions.
pub fn actions_filter(period: Period) -> AuditFilter {
    AuditFilter {
        kind: Some(AuditKind::Action),
        since: Some(period.from_ms),
        until: Some(period.to_ms),
        limit: app::audit::MAX_LIMIT,
        ..AuditFilter::default()
    }
}

/// A slot's worst value in the target's direction: its max for "at most", its min for
/// "at least" (the Worst column).
fn worst_in(target: &Target, p: &Point) -> f64 {
    match target.comparator {
        engine::model::Comparator::Le => f64::from(p.max),
        engine::model::Comparator::Ge => f64::from(p.min),
    }
}

/// The worst value of the period in the target's direction.
fn worst(target: &Target, points: &[Point]) -> Option<f64> {
    let values = points.iter().map(|p| worst_in(target, p));
    match target.comparator {
        engine::model::Comparator::Le => values.reduce(f64::max),
        engine::model::Comparator::Ge => values.reduce(f64::min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::replay_words;
    use crate::report::tests::T0;

    #[test]
    fn worst_follows_the_target_direction() {
        let point = |min: f32, mean: f32, max: f32| Point {
            t: 0,
            min,
            mean,
            max,
        };
        let le = Target::default_for("utilization", 65.0);
        let points = [
            point(40.0, 50.0, 60.0),
            point(40.0, 55.0, 70.0),
            point(55.0, 60.0, 64.0),
            point(70.0, 75.0, 80.0),
        ];
        assert_eq!(worst(&le, &points), Some(80.0));
        let ge = Target {
            comparator: engine::model::Comparator::Ge,
            ..le.clone()
        };
        assert_eq!(worst(&ge, &points), Some(40.0));
        assert_eq!(worst(&le, &[]), None);
    }

    /// What compliance was before it replayed the status's rule: the share of the report's
    /// slots whose worst value met the target as written (no band, no window statistic,
    /// no `for`). Kept to show where the two differ.
    fn old_slot_rule(target: &Target, slots: &Downsampled) -> Option<f64> {
        let points: Vec<Point> = slots.points.iter().flatten().copied().collect();
        if points.is_empty() {
            return None;
        }
        let met = points
            .iter()
            .filter(|p| target.is_met(worst_in(target, p)))
            .count();
        Some(met as f64 * 100.0 / points.len() as f64)
    }

    /// Five minutes of 1 s samples in a 24 h report, and the report's own 5 m slots.
    fn five_minutes_of(value: impl Fn(i64) -> f32) -> (SeriesHistory, Period, Downsampled) {
        let mut data = SeriesHistory::new(&engine::history::HistoryConfig::default());
        for i in 0..300 {
            data.append(T0 + i * 1000, Some(value(i)));
        }
        let period = Period::last(86_400_000, T0 + 300_000);
        let grid = Grid {
            start_ms: period.from_ms,
            step_ms: period.span_ms() / SLOTS,
            points: SLOTS as usize,
        };
        let (slots, _) = from_memory(&data, period, grid);
        (data, period, slots)
    }

    /// The series: `load` alternating 20/80 every second against p95 ≤ 50 for 30 s
    /// (60 s window, 10 % band). The window's p95 is 80: the status fires once its first
    /// judged window (30 s of samples) has breached for 30 s, and stays firing. Judged on
    /// the samples themselves (all five minutes are still raw in memory), as the alert.
    #[test]
    fn compliance_is_the_share_of_judged_time_the_replayed_status_was_not_firing() {
        let target = Target {
            for_secs: 30,
            ..Target::default_for("load", 50.0)
        };
        let rule = Rule {
            window_secs: 60,
            tolerance_pct: 10.0,
            stabilization_secs: 60,
        };
        let (data, period, slots) = five_minutes_of(|i| if i % 2 == 0 { 20.0 } else { 80.0 });
        let steps = memory_steps(&data, period, 1000);
        assert_eq!((steps.step_ms, steps.means.len()), (1000, 300));
        assert!(steps.highs.is_empty(), "samples, not summaries");
        let c = replayed(&target, &rule, &steps).expect("data");
        // 29 s before a window is half full, 271 s judged, firing from 59 s to the end.
        assert_eq!(c.breaches, 1);
        assert_eq!((c.judged_ms, c.no_data_ms), (271_000, 29_000));
        assert_eq!(c.pct, Some(30.0 * 100.0 / 271.0));
        assert_eq!(c.judged_on, "judged every second");
        assert_eq!(replay_words(&c), "1 breach in 4 m 31 s judged");
        // The old per-slot rule breaches too: the one 5 m slot peaked at 80.
        assert_eq!(old_slot_rule(&target, &slots), Some(0.0));
    }

    /// Where the two rules differ: a steady 52 % against "≤ 50 %" is past its target but
    /// inside its tolerance band (breaches above 55 %). The status holds there, the alert
    /// stays quiet, and so compliance is 100 %; the old per-slot rule said 0 %.
    #[test]
    fn a_value_within_the_tolerance_band_is_compliant_as_the_status_says() {
        let target = Target::default_for("utilization", 50.0);
        let rule = Rule::default();
        assert_eq!(target.breach_level(rule.tolerance_pct), 55.0);
        let (data, period, slots) = five_minutes_of(|_| 52.0);
        let c = replayed(&target, &rule, &memory_steps(&data, period, 1000)).expect("data");
        assert_eq!(c.pct, Some(100.0));
        assert_eq!(c.breaches, 0);
        assert_eq!(replay_words(&c), "no breach in 4 m 31 s judged");
        // The live evaluator on any of its windows: within the band, not breached.
        let observed =
            engine::optimizer::Analyzer::new().observe(&[52.0f32; 60], &target, &rule.settings(1));
        assert_eq!(observed.condition, engine::optimizer::Condition::DeadBand);
        assert_eq!(old_slot_rule(&target, &slots), Some(0.0));
    }

    /// Two hours in memory: the raw samples no longer hold the period's data, so the
    /// replay reads the minute summaries, as the 24-hour backtest does, and says so in the
    /// backtest's words. A 60 s window is one minute; the `for` of 30 s fires at the second.
    #[test]
    fn a_day_in_memory_is_judged_on_minute_summaries_like_its_backtest() {
        let target = Target {
            for_secs: 30,
            ..Target::default_for("load", 50.0)
        };
        let mut data = SeriesHistory::new(&engine::history::HistoryConfig::default());
        for i in 0..7200 {
            data.append(T0 + i * 1000, Some(if i % 2 == 0 { 20.0 } else { 80.0 }));
        }
        let period = Period::last(86_400_000, T0 + 7_200_000);
        let steps = memory_steps(&data, period, 1000);
        // T0 is 20 s into a minute: 121 minutes hold the two hours.
        assert_eq!((steps.step_ms, steps.highs.len()), (60_000, 121));
        let c = replayed(&target, &Rule::default(), &steps).expect("data");
        assert_eq!(
            c.judged_on,
            "judged on minute maxima, an upper bound of p95"
        );
        assert_eq!(
            (c.breaches, c.judged_ms, c.no_data_ms),
            (1, 121 * 60_000, 0)
        );
        assert_eq!(c.pct, Some(100.0 / 121.0));
        // A mean target reads the minute means (50): met.
        let mean = Target {
            statistic: engine::model::Statistic::Mean,
            ..target
        };
        let c = replayed(&mean, &Rule::default(), &steps).expect("data");
        assert_eq!(c.judged_on, "judged on minute means");
        assert_eq!((c.pct, c.breaches), (Some(100.0), 0));
    }

    /// From disk, a week is replayed on 10-minute slots (the 7-day view's), raw samples up
    /// to an hour.
    #[test]
    fn stored_periods_are_replayed_on_their_ranges_slots() {
        let config = engine::history::HistoryConfig::default();
        assert_eq!(stored_step_ms(3_600_000, &config), 1000);
        assert_eq!(stored_step_ms(86_400_000, &config), 60_000);
        assert_eq!(stored_step_ms(7 * 86_400_000, &config), 600_000);
        assert_eq!(stored_step_ms(30 * 86_400_000, &config), 3_600_000);
        let period = Period::last(7 * 86_400_000, T0);
        // Two days of minutes from a 10-minute boundary, the last of each ten peaking.
        let start = (T0 - 2 * 86_400_000) / 600_000 * 600_000;
        let points: Vec<StoredPoint> = (0..2 * 1440)
            .map(|i| StoredPoint {
                t: start + i * 60_000,
                min: 10.0,
                mean: 20.0,
                max: if i % 10 == 9 { 90.0 } else { 30.0 },
            })
            .collect();
        let steps = stored_steps(&points, period, 600_000, false);
        // From the first slot with data: 288 of them, then the period's last slot, after the
        // data, a gap.
        assert_eq!((steps.step_ms, steps.means.len()), (600_000, 289));
        assert_eq!(steps.means.last(), Some(&None));
        assert_eq!(steps.means[0], Some(20.0));
        assert!(steps.highs.iter().flatten().all(|&h| h == 90.0));
        let c =
            replayed(&Target::default_for("load", 50.0), &Rule::default(), &steps).expect("data");
        assert_eq!(
            c.judged_on,
            "judged on 10-minute maxima, an upper bound of p95"
        );
        assert_eq!((c.breaches, c.no_data_ms), (1, 600_000));
    }

    /// From disk: a week's report of a resource added two days ago is drawn over the two
    /// days, at minute resolution (a whole number of the tier's steps per bucket).
    #[test]
    fn stored_points_are_regridded_over_their_extent() {
        let period = Period::last(7 * 86_400_000, T0);
        let points: Vec<(i64, f32, f32, f32)> = (0..2 * 1440)
            .map(|i| (T0 - 2 * 86_400_000 + i * 60_000, 1.0, 3.0, 2.0))
            .collect();
        let chart = regrid(&points, period).expect("short of the period");
        assert_eq!(chart.width % 60_000, 0);
        assert!(chart.points.len() <= crate::svg::SVG_POINTS + 1);
        assert!(chart.points.iter().all(Option::is_some), "no made-up gaps");
        // Data over the whole period keeps the period's slots.
        let full: Vec<(i64, f32, f32, f32)> = (0..7 * 24)
            .map(|i| (period.from_ms + i * 3_600_000, 1.0, 3.0, 2.0))
            .collect();
        assert_eq!(regrid(&full, period), None);
    }
}
