//! Performance reports: one period (the last 24 h, 7 days, or any `from`–`to`) as a
//! self-contained HTML page (inline SVG charts drawn by plotters, inline CSS, print
//! friendly, so the browser's "Save as PDF" gives a clean document) and as one CSV of the
//! same numbers.
//!
//! Everything comes from what really happened: history (memory for the last day, the disk
//! beyond), the before/afters that completed in the period, alert episodes, audited
//! optimizer actions. [`gather`] reads; [`html`] and [`csv`] only format, so the same
//! numbers are in both.

use std::fmt::Write as _;

use app::audit::{AuditFilter, AuditKind, AuditRecord};
use app::proof::ComparisonRow;
use app::resource_data::ChartRange;
use engine::backtest::{judged_series, replay, Rule};
use engine::history::tiers::StoredPoint;
use engine::history::{Downsampled, Grid, HistoryConfig, Point, SeriesHistory, Tier};
use engine::model::{format_duration, Resource, Target};
use engine::series::SeriesKey;

use crate::persist::alerts::Episode;
use crate::state::Monitor;

/// The longest period a report covers.
pub const MAX_PERIOD_MS: i64 = crate::state::alerting::MAX_REPORT_PERIOD_MS;
/// Slots per chart and per compliance computation.
const SLOTS: i64 = 288;

/// A period, `[from, to)` in unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Period {
    pub fn last(span_ms: i64, now_ms: i64) -> Period {
        Period {
            from_ms: now_ms - span_ms,
            to_ms: now_ms,
        }
    }

    /// From the query: `period=24h|7d`, or `from`/`to` (unix ms or `2026-11-30T08:00:00Z`).
    /// Errors name the field and the rule.
    pub fn from_query(
        period: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
    ) -> Result<Period, (&'static str, String)> {
        let time = |field: &'static str, text: &str| {
            parse_time(text).ok_or((
                field,
                format!("must be unix milliseconds or a UTC time like 2026-11-30T08:00:00Z, got {text:?}"),
            ))
        };
        let period = match (period, from, to) {
            (Some(p), None, None) => {
                let span = match p {
                    "24h" | "1d" => 86_400_000,
                    "7d" => 7 * 86_400_000,
                    "30d" => 30 * 86_400_000,
                    _ => return Err(("period", format!("must be 24h, 7d or 30d, got {p:?}"))),
                };
                Period::last(span, now_ms)
            }
            (None, None, None) => Period::last(86_400_000, now_ms),
            (None, Some(from), to) => Period {
                from_ms: time("from", from)?,
                to_ms: match to {
                    Some(to) => time("to", to)?,
                    None => now_ms,
                },
            },
            (None, None, Some(_)) => return Err(("from", "is needed with to".into())),
            (Some(_), _, _) => {
                return Err(("period", "give either period or from/to, not both".into()))
            }
        };
        if period.from_ms > now_ms {
            return Err(("from", "must not be in the future".into()));
        }
        if period.to_ms <= period.from_ms {
            return Err(("to", "must be after from".into()));
        }
        // Checked: unix ms near i64's ends would overflow a plain subtraction.
        match period.to_ms.checked_sub(period.from_ms) {
            Some(span) if span <= MAX_PERIOD_MS => Ok(period),
            _ => Err(("from", "a report covers at most 31 days".into())),
        }
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }

    /// "2026-11-29 08:00 – 2026-11-30 08:00 UTC"
    pub fn describe(&self) -> String {
        format!(
            "{} – {} UTC",
            &app::format::utc_time(self.from_ms)[..16],
            &app::format::utc_time(self.to_ms)[..16]
        )
    }
}

/// Unix ms, or `YYYY-MM-DDTHH:MM[:SS]Z` (also with a space, without the `Z`).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    // Years 1970–9999 only: anything else is a typo, and bounds keep the arithmetic exact.
    const LAST_MS: i64 = 253_402_300_800_000; // 10000-01-01T00:00:00Z
    if let Ok(ms) = text.parse::<i64>() {
        return (0..LAST_MS).contains(&ms).then_some(ms);
    }
    let text = text.trim_end_matches('Z').replace(' ', "T");
    let (date, time) = text.split_once('T').unwrap_or((&text, "00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm) = (t.next()??, t.next()??);
    let ss = t.next().flatten().unwrap_or(0);
    if d.next().is_some()
        || !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

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
fn from_memory(
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

/// Text for HTML content and attribute values: markup characters escaped, and what a
/// reader could not see (control and invisible formatting characters, refused where
/// people type text but possible in older records or a monitored system's names) shown
/// as "�".
fn esc(text: &str) -> String {
    engine::text::visible(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A before/after's change as the page shows it, with its direction in words ("−92.1 %,
/// better"), and the class of its cell (`""`, `" good"` or `" bad"`).
fn comparison_change(c: &ComparisonRow) -> (String, &'static str) {
    let text = if c.change_text.is_empty() {
        "–".to_owned()
    } else {
        c.change_text.clone()
    };
    let (_, word) = app::proof::direction_label(&c.direction);
    let class = match c.direction.as_str() {
        app::proof::BETTER => " good",
        app::proof::WORSE => " bad",
        _ => "",
    };
    if word.is_empty() {
        (text, class)
    } else {
        (format!("{text}, {word}"), class)
    }
}

/// What became of a before/after, in words, and the class of its cell: an action kept or
/// rolled back (and why, with the verdict); a threshold change is not an improvement; a
/// mark says whether the target was met after it.
fn comparison_outcome(c: &ComparisonRow) -> (String, &'static str) {
    use app::proof::{KIND_ACTION, KIND_THRESHOLD, OUTCOME_KEPT};
    let met_after = match c.target_met {
        Some(true) => "target met after",
        Some(false) => "target missed after",
        None => "not measured",
    };
    if c.kind == KIND_ACTION {
        let verdict = c
            .verdict
            .as_deref()
            .map(|v| format!(" (verdict: {v})"))
            .unwrap_or_default();
        let why = c.outcome_why.as_deref().filter(|w| !w.is_empty());
        match c.outcome.as_deref() {
            Some(OUTCOME_KEPT) => (format!("kept{verdict}"), "good"),
            Some(outcome) => match why {
                Some(why) => (format!("{outcome}: {why}{verdict}"), "bad"),
                None => (format!("{outcome}{verdict}"), "bad"),
            },
            None => (why.unwrap_or("no verdict recorded").to_owned(), "muted"),
        }
    } else if c.kind == KIND_THRESHOLD {
        (format!("threshold change; {met_after}"), "")
    } else {
        let class = match c.target_met {
            Some(true) => "good",
            Some(false) => "bad",
            None => "",
        };
        (met_after.to_owned(), class)
    }
}

/// "1 breach in 23 h 59 m judged", or why nothing was judged.
fn replay_words(c: &Compliance) -> String {
    if c.judged_ms <= 0 {
        return "not enough data to judge".to_owned();
    }
    let breaches = match c.breaches {
        0 => "no breach".to_owned(),
        1 => "1 breach".to_owned(),
        n => format!("{n} breaches"),
    };
    format!("{breaches} in {} judged", duration_ms(c.judged_ms))
}

fn duration_ms(ms: i64) -> String {
    format_duration(u32::try_from(ms / 1000).unwrap_or(u32::MAX))
}

fn number(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(
        || "–".to_owned(),
        |v| {
            // The cards' rule: one decimal from 1 up, a small value keeps its digits.
            let v = engine::model::format_number(v);
            if unit.is_empty() {
                v
            } else {
                format!("{v} {unit}")
            }
        },
    )
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:2rem auto;max-width:1000px;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
.muted{color:#57606a}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .45rem;border-bottom:1px solid #d0d7de;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}.bad{color:#b91c1c;font-weight:600}.good{color:#15803d}
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.75rem;margin:1rem 0}
.summary div{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .75rem}.summary b{display:block;font-size:1.3rem}
figure{margin:1rem 0;break-inside:avoid}figure svg{width:100%;height:auto}code{font-size:.85em;white-space:pre-wrap;word-break:break-word}
td,th,li,p{overflow-wrap:anywhere}
@media screen and (max-width:600px){body{margin:1rem auto}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block}
table.stack thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
table.stack tr{border-bottom:2px solid #d0d7de;padding:.3rem 0}
table.stack td{border:0;padding:.15rem .25rem;text-align:left;white-space:normal}
table.stack td[data-label]::before{content:attr(data-label);display:inline-block;min-width:7rem;margin-right:.5rem;font-size:.75rem;font-weight:600;text-transform:uppercase;letter-spacing:.03em;color:#57606a}}
@media print{@page{margin:12mm}body{margin:0;padding:0;max-width:none;font-size:10.5px}h2,h3{break-after:avoid}
thead{display:table-header-group}tr,figure,.summary div{break-inside:avoid}figure svg{max-width:100%}a{color:inherit;text-decoration:none}}
";

/// The report as one self-contained HTML document.
#[allow(clippy::too_many_lines)] // 208 lines today; split before it grows
pub fn html(data: &ReportData, resources: &std::collections::HashMap<String, Resource>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let period = data.period.describe();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>perfpilot report {p}</title><style>{STYLE}</style></head><body>\
         <h1>Performance report</h1><p class=\"muted\">{p} · generated {g} UTC by perfpilot · compliance: {j}</p>",
        p = esc(&period),
        g = esc(&app::format::utc_time(data.generated_ms)),
        j = esc(&data.judged_on)
    );
    for note in &data.notes {
        let _ = write!(out, "<p class=\"bad\">{}</p>", esc(note));
    }
    let rollbacks = data
        .actions
        .iter()
        .filter(|a| a.what.contains("rolled back"))
        .count();
    let _ = write!(
        out,
        "<div class=\"summary\"><div><b>{}</b>resources</div><div><b>{}</b>target compliance</div><div><b>{}</b>alerts</div><div><b>{}</b>optimizer actions</div><div><b>{}</b>rollbacks</div><div><b>{}</b>before/afters</div></div>",
        data.resources.len(),
        data.compliance_pct().map_or_else(|| "n/a".into(), |c| format!("{c:.1} %")),
        data.alerts.len(),
        data.actions.len(),
        rollbacks,
        data.comparisons.len()
    );

    out.push_str("<h2 id=\"before-after\">Before / after</h2>");
    if data.comparisons.is_empty() {
        out.push_str("<p class=\"muted\">No change, action or mark completed its before/after in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>When</th><th>Resource</th><th>Event</th><th>Target</th><th class=\"num\">Before</th><th class=\"num\">After</th><th class=\"num\">Change</th><th>Outcome</th></tr></thead><tbody>");
        for c in &data.comparisons {
            let (change, change_class) = comparison_change(c);
            let (outcome, outcome_class) = comparison_outcome(c);
            let event = match &c.applied {
                Some(applied) => format!("{} ({applied})", c.event),
                None => c.event.clone(),
            };
            let _ = write!(
                out,
                "<tr data-kind=\"{}\"><td data-label=\"When\">{}</td><td data-label=\"Resource\">{}</td><td data-label=\"Event\">{}</td><td data-label=\"Target\">{}</td><td class=\"num\" data-label=\"Before\">{}</td><td class=\"num\" data-label=\"After\">{}</td><td class=\"num{change_class}\" data-label=\"Change\">{}</td><td class=\"{outcome_class}\" data-label=\"Outcome\">{}</td></tr>",
                esc(&c.kind),
                esc(&app::format::utc_time(c.at_unix_ms)),
                esc(&c.resource_name),
                esc(&event),
                esc(&c.target),
                esc(c.before.as_deref().unwrap_or("–")),
                esc(c.after.as_deref().unwrap_or("–")),
                esc(&change),
                esc(&outcome),
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"compliance\">Target compliance</h2><table class=\"stack\"><thead><tr><th>Resource</th><th>Target</th><th class=\"num\">Compliance</th><th class=\"num\">Mean</th><th class=\"num\">Worst</th><th class=\"num\">Alerts</th><th class=\"num\" title=\"How long the target was breaching (its alert firing)\">Breaching</th><th class=\"num\">Data</th></tr></thead><tbody>");
    for r in &data.resources {
        let bad = r.compliance_pct.is_some_and(|c| c < 95.0);
        // How it was judged and what the replay found, under the target.
        let judged = r
            .compliance
            .as_ref()
            .map(|c| {
                format!(
                    "<br><span class=\"muted\">{}</span>",
                    esc(&format!("{}: {}", c.judged_on, replay_words(c)))
                )
            })
            .unwrap_or_default();
        let mut data_cell = if r.slots == 0 {
            "none".to_owned()
        } else {
            format!("{:.0} %", r.slots_with_data as f64 * 100.0 / r.slots as f64)
        };
        if let Some(c) = r.compliance.as_ref().filter(|c| c.no_data_ms >= 1000) {
            let _ = write!(data_cell, ", {} not enough data", duration_ms(c.no_data_ms));
        }
        let _ = write!(
            out,
            "<tr data-resource=\"{}\"><td data-label=\"Resource\">{} <span class=\"muted\">{}</span></td><td data-label=\"Target\">{}{judged}</td><td class=\"num{}\" data-label=\"Compliance\">{}</td><td class=\"num\" data-label=\"Mean\">{}</td><td class=\"num\" data-label=\"Worst\">{}</td><td class=\"num\" data-label=\"Alerts\">{}</td><td class=\"num\" data-label=\"Breaching\">{}</td><td class=\"num\" data-label=\"Data\">{}</td></tr>",
            esc(&r.id),
            esc(&r.name),
            esc(&r.id),
            esc(r.target.as_deref().unwrap_or("no target")),
            if bad { " bad" } else { "" },
            r.compliance_pct.map_or_else(|| "–".into(), |c| format!("{c:.1} %")),
            esc(&number(r.mean, &r.unit)),
            esc(&number(r.worst, &r.unit)),
            r.alerts,
            if r.firing_ms > 0 { format_duration((r.firing_ms / 1000) as u32) } else { "–".into() },
            esc(&data_cell)
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2 id=\"charts\">Charts</h2>");
    let mut charts = 0;
    // A metric with no sample in the period still gets its chart, saying so.
    let nothing = Downsampled {
        tier: Tier::Aggregate,
        origin: data.period.from_ms,
        width: data.period.span_ms().max(1),
        points: Vec::new(),
    };
    for r in &data.resources {
        let (Some(metric), Some(resource)) = (&r.metric, resources.get(&r.id)) else {
            continue;
        };
        // Over the data's own extent when it covers less than most of the period.
        let drawn = r.chart.as_ref().or(r.series.as_ref()).unwrap_or(&nothing);
        match crate::svg::svg_in(
            resource,
            metric,
            &r.unit,
            drawn,
            data.period.from_ms,
            data.period.to_ms,
            "no data in this period",
        ) {
            Ok(svg) => {
                if drawn.points.iter().any(Option::is_some) {
                    charts += 1;
                }
                let svg = svg.trim_start_matches(|c| c != '<');
                let svg = match svg.find("<svg") {
                    Some(i) => &svg[i..],
                    None => svg,
                };
                let _ = write!(
                    out,
                    "<figure data-resource=\"{}\">{svg}</figure>",
                    esc(&r.id)
                );
            }
            Err(err) => {
                let _ = write!(
                    out,
                    "<p class=\"bad\">{}: the chart could not be drawn: {}</p>",
                    esc(&r.id),
                    esc(&err.to_string())
                );
            }
        }
    }
    if charts == 0 {
        out.push_str("<p class=\"muted\">No target metric has data in this period.</p>");
    }

    out.push_str("<h2 id=\"alerts\">Alerts</h2>");
    if data.alerts.is_empty() {
        out.push_str("<p class=\"muted\">No alert fired in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>Resource</th><th>Fired</th><th>Why</th><th>Resolved</th></tr></thead><tbody>");
        for e in &data.alerts {
            let _ = write!(
                out,
                "<tr><td data-label=\"Resource\">{}</td><td data-label=\"Fired\">{}</td><td data-label=\"Why\">{}</td><td data-label=\"Resolved\">{}</td></tr>",
                esc(&e.resource),
                esc(&app::format::utc_time(e.started_ms)),
                esc(&e.summary),
                match (e.ended_ms, &e.end_summary) {
                    (Some(at), Some(why)) => esc(&format!("{} — {why}", app::format::utc_time(at))),
                    (Some(at), None) => esc(&app::format::utc_time(at)),
                    (None, _) => "still breaching".into(),
                }
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"actions\">Optimizer actions</h2>");
    if data.actions.is_empty() {
        out.push_str("<p class=\"muted\">The optimizer took no action in this period.</p>");
    } else {
        out.push_str("<table class=\"stack\"><thead><tr><th>When</th><th>Resource</th><th>What happened</th></tr></thead><tbody>");
        for a in &data.actions {
            let _ = write!(
                out,
                "<tr><td data-label=\"When\">{}</td><td data-label=\"Resource\">{}</td><td data-label=\"What happened\">{}</td></tr>",
                esc(&app::format::utc_time(a.at_unix_ms)),
                esc(a.resource.as_deref().unwrap_or("")),
                esc(&a.what)
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2 id=\"top\">Top processes and queries <span class=\"muted\">(at report time)</span></h2>");
    if data.top_processes.is_empty() && data.top_queries.is_empty() {
        out.push_str("<p class=\"muted\">No process scan or query statistics yet.</p>");
    }
    if !data.top_processes.is_empty() {
        out.push_str("<ul>");
        for p in &data.top_processes {
            let _ = write!(out, "<li>{}</li>", esc(p));
        }
        out.push_str("</ul>");
    }
    for (resource, queries) in &data.top_queries {
        let _ = write!(out, "<h3>{}</h3><table class=\"stack\"><thead><tr><th>Query</th><th class=\"num\">Calls/s</th><th class=\"num\">Mean</th><th class=\"num\">Share</th></tr></thead><tbody>", esc(resource));
        for q in queries {
            let _ = write!(
                out,
                "<tr><td data-label=\"Query\"><code>{}</code></td><td class=\"num\" data-label=\"Calls/s\">{:.1}</td><td class=\"num\" data-label=\"Mean\">{:.2} ms</td><td class=\"num\" data-label=\"Share\">{:.1} %</td></tr>",
                esc(&q.query),
                q.calls_per_s,
                q.mean_ms,
                q.share_pct
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</body></html>");
    out
}

/// One CSV field (RFC 4180 quoting, OWASP's CSV-injection rule): invisible characters
/// shown as "�" (see [`esc`]), a field starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return prefixed with `'` so a spreadsheet shows it rather than running it,
/// and a field with `,`, `"` or a line break quoted, its quotes doubled.
fn csv_field(text: &str) -> String {
    let text = engine::text::visible(text);
    // A spreadsheet runs a cell starting with one of these as a formula; a resource name
    // or a summary comes from configuration or the monitored system, so it is defused.
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.into_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The same numbers as one CSV: `table,resource,name,value,unit,detail`, where `table` is
/// `compliance`, `before_after`, `alert` or `action`.
pub fn csv(data: &ReportData) -> String {
    let mut out = String::from("table,resource,name,value,unit,detail\n");
    let mut row =
        |table: &str, resource: &str, name: &str, value: String, unit: &str, detail: &str| {
            let _ = writeln!(
                out,
                "{table},{},{},{value},{},{}",
                csv_field(resource),
                csv_field(name),
                csv_field(unit),
                csv_field(detail)
            );
        };
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    for r in &data.resources {
        let target = r.target.as_deref().unwrap_or("");
        row(
            "compliance",
            &r.id,
            "compliance_pct",
            opt(r.compliance_pct),
            "%",
            target,
        );
        // What the replay behind the compliance found, and how it judged.
        let found = r.compliance.as_ref();
        let judged_on = found.map_or("", |c| c.judged_on.as_str());
        let count = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
        row(
            "compliance",
            &r.id,
            "breaches",
            count(found.map(|c| c.breaches as i64)),
            "",
            judged_on,
        );
        row(
            "compliance",
            &r.id,
            "judged_s",
            count(found.map(|c| c.judged_ms / 1000)),
            "s",
            judged_on,
        );
        row(
            "compliance",
            &r.id,
            "not_enough_data_s",
            count(found.map(|c| c.no_data_ms / 1000)),
            "s",
            judged_on,
        );
        row("compliance", &r.id, "mean", opt(r.mean), &r.unit, target);
        row("compliance", &r.id, "worst", opt(r.worst), &r.unit, target);
        row(
            "compliance",
            &r.id,
            "alerts",
            r.alerts.to_string(),
            "",
            target,
        );
        row(
            "compliance",
            &r.id,
            "firing_s",
            (r.firing_ms / 1000).to_string(),
            "s",
            target,
        );
    }
    for c in &data.comparisons {
        let detail = format!(
            "{} at {}: {} → {}, {} ({}); {}",
            c.event,
            app::format::utc_iso(c.at_unix_ms),
            c.before.as_deref().unwrap_or("–"),
            c.after.as_deref().unwrap_or("–"),
            comparison_change(c).0,
            c.target,
            comparison_outcome(c).0,
        );
        // A target edit moved the threshold, not the system: no improvement to report.
        let (name, unit) = if c.kind == app::proof::KIND_THRESHOLD {
            ("threshold_change", "")
        } else {
            ("improvement_pct", "%")
        };
        row(
            "before_after",
            &c.resource_id,
            name,
            opt(c.improvement_pct),
            unit,
            &detail,
        );
    }
    for e in &data.alerts {
        let lasted = e
            .ended_ms
            .map(|end| ((end - e.started_ms) / 1000).to_string())
            .unwrap_or_default();
        let detail = format!("{} at {}", e.summary, app::format::utc_iso(e.started_ms));
        row("alert", &e.resource, "lasted_s", lasted, "s", &detail);
    }
    for a in &data.actions {
        let detail = format!("{} at {}", a.what, app::format::utc_iso(a.at_unix_ms));
        row(
            "action",
            a.resource.as_deref().unwrap_or(""),
            "action",
            String::new(),
            "",
            &detail,
        );
    }
    out
}

/// Sends the scheduled reports (`[report]`) until the runtime stops: at each send time,
/// the report of the period that just ended goes to the configured channels (a summary
/// line and a link to the full report). A send time missed by more than 10 minutes
/// (perfpilot was down) is skipped rather than sent late.
pub async fn run_schedule(monitor: Monitor, schedule: crate::config::ReportSchedule) {
    // The send time already handled: the loop wakes more than once per period.
    let mut handled = i64::MIN;
    loop {
        let now = engine::time::unix_now_ms();
        if let Some(period) = scheduled_period(&schedule, now, handled) {
            handled = period.to_ms;
            match send_scheduled(&monitor, &schedule, period).await {
                Ok(()) => {}
                Err(err) => tracing::warn!(%err, "The scheduled report could not be made"),
            }
        }
        let next = schedule.due_at_or_before(now) + schedule.every_ms;
        let wait = (next - engine::time::unix_now_ms()).clamp(1000, 60_000);
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}

/// The period whose report goes out at `now_ms`: the one that ended at the latest send
/// time, unless that send time is `handled` already or was missed by more than 10 minutes.
/// At start-up (nothing handled) the latest send time is caught up within those minutes.
fn scheduled_period(
    schedule: &crate::config::ReportSchedule,
    now_ms: i64,
    handled: i64,
) -> Option<Period> {
    const GRACE_MS: i64 = 600_000;
    let due = schedule.due_at_or_before(now_ms);
    if due == handled || now_ms - due > GRACE_MS {
        return None;
    }
    Some(Period {
        from_ms: due - schedule.every_ms,
        to_ms: due,
    })
}

async fn send_scheduled(
    monitor: &Monitor,
    schedule: &crate::config::ReportSchedule,
    period: Period,
) -> Result<(), String> {
    let actions = monitor
        .persist
        .query_audit(actions_filter(period))
        .await
        .map_err(|err| err.to_string())?;
    let reader = monitor.clone();
    let summary = tokio::task::spawn_blocking(move || gather(&reader, period, actions).summary())
        .await
        .map_err(|err| err.to_string())?;
    let url = monitor.alerting.public_url().map(|base| {
        format!(
            "{base}api/v1/report?from={}&to={}",
            period.from_ms, period.to_ms
        )
    });
    monitor
        .alerting
        .report(&schedule.channels, period.to_ms, &summary, url);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_report_goes_out_once_per_send_time_and_is_caught_up_for_ten_minutes() {
        // 2026-01-01 00:00 UTC, a send time of both schedules.
        let t = 1_767_225_600_000;
        let every_minute = crate::config::ReportSchedule {
            every_ms: 60_000,
            offset_ms: 0,
            channels: vec!["hook".into()],
        };
        let minute_before = Some(Period {
            from_ms: t - 60_000,
            to_ms: t,
        });
        assert_eq!(scheduled_period(&every_minute, t, i64::MIN), minute_before);
        // At start-up, the send time that just passed is caught up.
        assert_eq!(
            scheduled_period(&every_minute, t + 5_000, i64::MIN),
            minute_before
        );
        // Once per send time, however often the loop wakes.
        assert_eq!(scheduled_period(&every_minute, t + 59_999, t), None);
        assert_eq!(
            scheduled_period(&every_minute, t + 60_000, t),
            Some(Period {
                from_ms: t,
                to_ms: t + 60_000,
            })
        );
        // Missed by more than 10 minutes (perfpilot was down): skipped, not sent late.
        let daily = crate::config::ReportSchedule {
            every_ms: 86_400_000,
            offset_ms: 0,
            channels: vec!["hook".into()],
        };
        let yesterday = Some(Period {
            from_ms: t - 86_400_000,
            to_ms: t,
        });
        assert_eq!(scheduled_period(&daily, t + 600_000, i64::MIN), yesterday);
        assert_eq!(scheduled_period(&daily, t + 600_001, i64::MIN), None);
    }

    #[test]
    fn periods_from_the_query_name_the_field() {
        let now = 1_764_489_600_000; // 2025-11-30T08:00:00Z
        assert_eq!(
            Period::from_query(None, None, None, now),
            Ok(Period::last(86_400_000, now))
        );
        assert_eq!(
            Period::from_query(Some("7d"), None, None, now)
                .unwrap()
                .span_ms(),
            7 * 86_400_000
        );
        let p = Period::from_query(
            None,
            Some("2025-11-29T08:00:00Z"),
            Some("2025-11-30 08:00"),
            now,
        )
        .unwrap();
        assert_eq!((p.from_ms, p.to_ms), (now - 86_400_000, now));
        assert_eq!(p.describe(), "2025-11-29 08:00 – 2025-11-30 08:00 UTC");
        let field = |p, f, t| Period::from_query(p, f, t, now).unwrap_err().0;
        assert_eq!(field(Some("2w"), None, None), "period");
        assert_eq!(field(None, Some("yesterday"), None), "from");
        assert_eq!(
            field(
                None,
                Some("2025-11-30T07:00:00Z"),
                Some("2025-11-30T06:00:00Z")
            ),
            "to"
        );
        assert_eq!(field(None, Some("2025-11-30T09:00:00Z"), None), "from");
        assert_eq!(
            field(None, Some("0"), Some("9223372036854775807")),
            "to",
            "past year 9999"
        );
        assert_eq!(field(None, Some("-9223372036854775808"), None), "from");
        assert_eq!(field(None, Some("2025-01-01T00:00:00Z"), None), "from");
        assert_eq!(field(None, None, Some("1")), "from");
    }

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(parse_time("0"), Some(0));
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some(86_400_000));
        assert_eq!(parse_time("2000-03-01T12:30"), Some(951_913_800_000));
        assert_eq!(parse_time("2000-13-01T00:00"), None);
        assert_eq!(parse_time("soon"), None);
    }

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

    const T0: i64 = 1_700_000_000_000;

    fn data_with(resources: Vec<ResourceReport>, alerts: Vec<Episode>) -> ReportData {
        ReportData {
            period: Period::last(86_400_000, T0 + 300_000),
            generated_ms: T0 + 300_000,
            judged_on: "the share of the judged time each target was not breached".into(),
            resources,
            comparisons: Vec::new(),
            alerts,
            actions: Vec::new(),
            top_processes: Vec::new(),
            top_queries: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn resource_report(
        id: &str,
        series: Downsampled,
        chart: Option<Downsampled>,
    ) -> ResourceReport {
        ResourceReport {
            id: id.into(),
            name: id.into(),
            resource_type: id.into(),
            metric: Some("utilization".into()),
            unit: "%".into(),
            target: Some("p95 utilization ≤ 65 %".into()),
            compliance_pct: None,
            compliance: None,
            slots_with_data: series.points.iter().flatten().count(),
            slots: series.points.len(),
            mean: None,
            worst: None,
            alerts: 0,
            firing_ms: 0,
            series: Some(series),
            chart,
        }
    }

    /// The figure of one resource in a report.
    fn figure<'a>(html: &'a str, id: &str) -> &'a str {
        let start = html
            .find(&format!("<figure data-resource=\"{id}\">"))
            .unwrap_or_else(|| panic!("a chart of {id}"));
        &html[start..start + html[start..].find("</figure>").unwrap()]
    }

    /// A new install: five minutes of 1 s samples in a 24 h report. They are one or two
    /// slots of the period's 5 m grid (the Mean and Worst columns', and what the chart
    /// used to draw: a line of one point, nothing), but the chart is drawn from the
    /// samples over their own five minutes, across the whole plot.
    #[test]
    fn five_minutes_of_a_new_install_are_charted_over_their_own_extent() {
        let mut data = SeriesHistory::new(&engine::history::HistoryConfig::default());
        for i in 0..300 {
            data.append(T0 + i * 1000, Some(40.0 + (i % 7) as f32));
        }
        let period = Period::last(86_400_000, T0 + 300_000);
        let grid = Grid {
            start_ms: period.from_ms,
            step_ms: period.span_ms() / SLOTS,
            points: SLOTS as usize,
        };
        let (slots, chart) = from_memory(&data, period, grid);
        assert!(slots.points.iter().flatten().count() <= 2, "{slots:?}");
        let chart = chart.expect("a chart over the data's own extent");
        assert_eq!(chart.points.iter().flatten().count(), 300);

        let nothing = Downsampled {
            tier: Tier::Aggregate,
            origin: grid.start_ms,
            width: grid.step_ms,
            points: vec![None; grid.points],
        };
        let report = data_with(
            vec![
                resource_report("cpu", slots, Some(chart)),
                resource_report("memory", nothing, None),
            ],
            Vec::new(),
        );
        let resources: std::collections::HashMap<String, Resource> = [
            ("cpu", engine::model::ResourceType::Cpu),
            ("memory", engine::model::ResourceType::Memory),
        ]
        .into_iter()
        .map(|(id, t)| {
            let resource = Resource::new(engine::model::ResourceId::new(id).unwrap(), t, id);
            (id.to_owned(), resource)
        })
        .collect();
        let html = html(&report, &resources);

        let cpu = figure(&html, "cpu");
        let lines: Vec<_> = crate::svg::polylines(cpu)
            .into_iter()
            .filter(|(stroke, _)| stroke == crate::svg::MEAN_STROKE)
            .collect();
        assert_eq!(lines.len(), 1, "{cpu}");
        let xs = || lines[0].1.iter().map(|p| p.0);
        assert!(lines[0].1.len() >= 250, "{} points", lines[0].1.len());
        assert!(
            xs().max().unwrap() - xs().min().unwrap() > 800,
            "the line spans the plot: {cpu}"
        );
        assert!(cpu.contains("the data covers only"), "labelled: {cpu}");

        let memory = figure(&html, "memory");
        assert!(memory.contains("no data in this period"), "{memory}");
        assert!(!memory.contains("<circle"));
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

    #[test]
    fn html_escapes_markup_and_shows_invisible_characters() {
        assert_eq!(
            esc("<b onclick='x'>\"&\""),
            "&lt;b onclick=&#39;x&#39;&gt;&quot;&amp;&quot;"
        );
        assert_eq!(esc("a\0b\u{202E}c"), "a\u{FFFD}b\u{FFFD}c");
    }

    #[test]
    fn the_csv_defuses_formulas_and_control_characters() {
        // NUL and other control characters are refused where people type text
        // (`engine::text`); what reached a record before is shown, never written raw.
        assert_eq!(csv_field("a\0b"), "a\u{FFFD}b");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("@SUM(1)"), "'@SUM(1)");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("\t=1"), "'\t=1");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let data = data_with(
            Vec::new(),
            vec![Episode {
                resource: "custom:1".into(),
                started_ms: T0,
                ended_ms: Some(T0 + 60_000),
                summary: "=HYPERLINK(\"http://evil\",\"x\")\0, then more".into(),
                end_summary: None,
            }],
        );
        let csv = csv(&data);
        let line = csv.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "alert,custom:1,lasted_s,60,s,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\u{FFFD}, then more at 2023-11-14T22:13:20Z\""
        );
        assert!(!csv.contains('\0'));
    }

    fn comparison(kind: &str, event: &str) -> ComparisonRow {
        ComparisonRow {
            resource_id: "cache:main".into(),
            resource_name: "main".into(),
            event: event.into(),
            at_unix_ms: T0,
            ready_at_unix_ms: T0 + 60_000,
            pending: false,
            before: Some("58.5 %".into()),
            after: Some("97 %".into()),
            target: "mean hit_ratio ≥ 90 %".into(),
            improvement_pct: Some(65.8),
            target_met: Some(true),
            reason: String::new(),
            unit: "%".into(),
            target_value: 90.0,
            before_series: Vec::new(),
            after_series: Vec::new(),
            kind: kind.into(),
            applied: None,
            outcome: None,
            outcome_why: None,
            verdict: None,
            evidence: None,
            direction: String::new(),
            change_text: String::new(),
        }
    }

    /// The report says what the page says: a rolled-back action is rolled back (not
    /// "met"), a target edit is a threshold change (not an improvement).
    #[test]
    fn before_afters_report_rollbacks_and_threshold_changes_honestly() {
        let mut data = data_with(Vec::new(), Vec::new());
        data.comparisons = vec![
            ComparisonRow {
                applied: Some("maxmemory 3mb → 64mb".into()),
                outcome: Some("rolled back".into()),
                outcome_why: Some("the hit ratio did not change".into()),
                verdict: Some("no change".into()),
                direction: "same".into(),
                change_text: "+38.5 points (+65.8 %)".into(),
                ..comparison("action", "action redis maxmemory")
            },
            ComparisonRow {
                improvement_pct: None,
                change_text: "threshold 80 → 90 %".into(),
                ..comparison("threshold", "target edit (change #3)")
            },
        ];
        let html = html(&data, &std::collections::HashMap::new());
        assert!(!html.contains(">Improvement<"), "no improvement column");
        assert!(
            html.contains("rolled back: the hit ratio did not change (verdict: no change)"),
            "{html}"
        );
        assert!(html.contains("+38.5 points (+65.8 %), no change"), "{html}");
        assert!(
            html.contains("action redis maxmemory (maxmemory 3mb → 64mb)"),
            "{html}"
        );
        assert!(html.contains("threshold 80 → 90 %"), "{html}");
        assert!(
            html.contains("threshold change; target met after"),
            "{html}"
        );
        let csv = csv(&data);
        assert!(
            csv.contains("before_after,cache:main,threshold_change,,,"),
            "{csv}"
        );
        assert!(
            csv.contains("before_after,cache:main,improvement_pct,65.800,%,"),
            "{csv}"
        );
        assert!(
            csv.contains("rolled back: the hit ratio did not change"),
            "{csv}"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1+2,3"), "\"'-1+2,3\"");
        assert_eq!(csv_field("cpu"), "cpu");
    }
}
