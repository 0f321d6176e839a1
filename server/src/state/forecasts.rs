//! Each target's time-to-breach as the monitor task refits it: the day in memory joined to
//! the two weeks before it from the history on disk, so the daily profile (two days) and
//! the weekly one (two weeks) can be removed and "new ground" is judged against the last
//! week, as `engine::forecast` expects. Reading disk never blocks the tick: a series' older
//! points are fetched on the blocking pool and kept for an hour; until they arrive (or
//! without history on disk, `--ephemeral`) the fit reads the day in memory alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use engine::series::{SeriesKey, UnixMillis};
use engine::sync::lock;

use super::Monitor;

/// How far back the history on disk is read: two weeks teach the weekly profile.
const OLDER_SPAN_MS: i64 = 14 * 86_400_000;
/// Read as 10-minute means: finer than the 30-minute slots of the seasonal profile.
const OLDER_STEP_MS: i64 = 600_000;
/// Older points change only at their recent end, which the day in memory covers.
const OLDER_REFRESH_MS: i64 = 3_600_000;

/// Each series' points from disk, older than the day in memory.
#[derive(Clone, Default)]
pub(super) struct OlderPoints {
    by_series: Arc<Mutex<HashMap<SeriesKey, Older>>>,
}

#[derive(Default)]
struct Older {
    fetched_ms: Option<i64>,
    /// Last asked for: a chart's series is kept for an hour after its page was open.
    used_ms: i64,
    fetching: bool,
    points: Arc<Vec<(i64, f64)>>,
    /// The daily or weekly pattern of `points`, learned once per read.
    seasonality: Arc<engine::forecast::Seasonality>,
}

impl OlderPoints {
    /// The older points of `key` as last read (none yet on a first call); reads them again
    /// in the background when they are missing or an hour old.
    pub(super) fn of(
        &self,
        key: &SeriesKey,
        monitor: &Monitor,
        now: UnixMillis,
    ) -> Arc<Vec<(i64, f64)>> {
        self.read(key, monitor, now, |entry| entry.points.clone())
    }

    /// The daily or weekly pattern of `key` learned from its older points (none until they
    /// are read, or with less than two days of history); read like [`OlderPoints::of`].
    pub(super) fn seasonality(
        &self,
        key: &SeriesKey,
        monitor: &Monitor,
        now: UnixMillis,
    ) -> Arc<engine::forecast::Seasonality> {
        self.read(key, monitor, now, |entry| entry.seasonality.clone())
    }

    fn read<T>(
        &self,
        key: &SeriesKey,
        monitor: &Monitor,
        now: UnixMillis,
        answer: impl FnOnce(&Older) -> T,
    ) -> T {
        let mut cache = lock(&self.by_series);
        let entry = cache.entry(key.clone()).or_default();
        entry.used_ms = now;
        let stale = entry
            .fetched_ms
            .is_none_or(|at| now - at >= OLDER_REFRESH_MS);
        if stale && !entry.fetching {
            entry.fetching = true;
            let (this, monitor, key) = (self.clone(), monitor.clone(), key.clone());
            tokio::task::spawn_blocking(move || {
                // Without history on disk the answer is "nothing older", kept like any.
                let points = monitor
                    .stored_chart(
                        std::slice::from_ref(&key),
                        OLDER_SPAN_MS,
                        OLDER_STEP_MS,
                        now,
                    )
                    .map(|chart| slot_points(&chart))
                    .unwrap_or_default();
                let seasonality = engine::forecast::Seasonality::learn(&points);
                let mut cache = lock(&this.by_series);
                let entry = cache.entry(key).or_default();
                *entry = Older {
                    fetched_ms: Some(now),
                    used_ms: entry.used_ms,
                    fetching: false,
                    points: Arc::new(points),
                    seasonality: Arc::new(seasonality),
                };
            });
        }
        answer(entry)
    }

    /// Forgets the series `keep` says nothing reads any more, once no page has asked for
    /// them for an hour.
    pub(super) fn retain(&self, now: UnixMillis, keep: impl Fn(&SeriesKey) -> bool) {
        lock(&self.by_series)
            .retain(|key, older| keep(key) || now - older.used_ms < OLDER_REFRESH_MS);
    }
}

/// The first series of `chart` as `(slot middle, mean)` points, slots without data left out.
fn slot_points(chart: &engine::history::ChartSamples) -> Vec<(i64, f64)> {
    let grid = chart.grid;
    chart
        .series
        .first()
        .map(|series| {
            series
                .means
                .iter()
                .enumerate()
                .filter_map(|(i, mean)| {
                    let t = grid.start_ms + i as i64 * grid.step_ms + grid.step_ms / 2;
                    mean.map(|m| (t, f64::from(m)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `older` up to where `recent` begins, then `recent`: one series in time order, each
/// instant read from the finest source that has it.
pub(super) fn joined(older: &[(i64, f64)], recent: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    let Some(&(first_recent, _)) = recent.first() else {
        return older.to_vec();
    };
    let mut points: Vec<(i64, f64)> = older
        .iter()
        .copied()
        .take_while(|(t, _)| *t < first_recent)
        .collect();
    points.extend(recent);
    points
}

/// The time-to-breach of `target` from `older` points and the day in memory: its words and
/// the predicted crossing, when there is one.
pub(super) fn forecast(
    series: &engine::history::SeriesHistory,
    older: &[(i64, f64)],
    target: &engine::model::Target,
    kind: engine::model::MetricKind,
    at: UnixMillis,
) -> (Option<String>, Option<engine::forecast::Crossing>) {
    use engine::forecast::{describe_level, time_to_breach, ForecastSettings, TimeToBreach};
    let settings = ForecastSettings::default();
    let from = at - i64::from(settings.range_lookback_secs) * 1000;
    let mut recent = Vec::new();
    series.visit(from, at + 1, |t, _, _, mean| {
        recent.push((t, f64::from(mean)))
    });
    let points = joined(older, recent);
    // "≤ target" breaches going up, "≥ target" going down.
    let rising = target.comparator == engine::model::Comparator::Le;
    let answer = time_to_breach(&points, target.value, rising, at, &settings);
    match answer {
        TimeToBreach::Breaches {
            eta_secs,
            earliest_secs,
            latest_secs,
        } => (
            Some(describe_level(
                &answer,
                &engine::model::format_value(target.value, kind),
            )),
            Some(engine::forecast::Crossing {
                at_ms: at,
                eta_secs,
                earliest_secs,
                latest_secs,
            }),
        ),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_points_stop_where_the_day_in_memory_begins() {
        let older = [(0, 1.0), (600, 2.0), (1200, 3.0), (1800, 4.0)];
        let recent = vec![(1500, 10.0), (1501, 11.0)];
        assert_eq!(
            joined(&older, recent),
            [
                (0, 1.0),
                (600, 2.0),
                (1200, 3.0),
                (1500, 10.0),
                (1501, 11.0)
            ]
        );
        assert_eq!(joined(&older, Vec::new()), older);
        assert_eq!(joined(&[], vec![(5, 1.0)]), [(5, 1.0)]);
    }

    #[test]
    fn slots_become_points_at_their_middles_without_the_empty_ones() {
        let chart = engine::history::ChartSamples {
            grid: engine::history::Grid::ending_at(3 * 600_000, 3 * 600_000, 600_000),
            series: vec![engine::history::Sampled {
                means: vec![Some(1.0), None, Some(3.0)],
                lows: Vec::new(),
                highs: Vec::new(),
            }],
        };
        assert_eq!(
            slot_points(&chart),
            [
                (chart.grid.start_ms + 300_000, 1.0),
                (chart.grid.start_ms + 1_500_000, 3.0)
            ]
        );
    }
}
