//! Time-to-breach: when will a metric that trends toward its target's threshold cross it?
//! Pure and clock-free (the caller passes `now`), so the browser computes the same answer.
//!
//! [`time_to_breach`] judges the series in five steps, each there because a plain line fit
//! (Prometheus' `predict_linear`, see [`predict_linear`]) is fooled by something common:
//!
//! 1. **Seasonality.** With two days of history the daily profile is removed, with two
//!    weeks the weekly one ([`Seasonality`]): a morning ramp of CPU or a log file filling
//!    until its nightly rotation is a cycle, not a trend, and a line through it warns every
//!    day.
//! 2. **A robust slope with an interval.** [`theil_sen`] (the median of pairwise slopes,
//!    with Sen's rank interval) over the trend window, 6 h by default: a spike shifts the
//!    median of the pairwise slopes by a few ranks, where it drags a least-squares line.
//! 3. **Significance.** The whole 95 % slope interval must lie on the threshold's side of
//!    zero; anything else — flat, receding, too noisy — is [`TimeToBreach::NotTrending`].
//! 4. **A trend, not a jump or a recovery.** Each half of the window must rise too (a step
//!    — a deploy, a restart, a cache warming — makes the whole window's median slope
//!    positive while both halves are flat), and the latest half hour must be beyond every
//!    earlier half hour of the last week (a weekday morning climbing back from a quiet
//!    weekend, before two weeks of history teach the weekly profile, rises steadily but
//!    only to where the series has already been).
//! 5. **A horizon.** The crossing, and the slow end of its interval too, must fall within
//!    [`ForecastSettings::horizon_secs`] (7 days): a slope that is almost zero extrapolates
//!    to "breaches in 293481462547366 years", and an interval reaching past the horizon is
//!    as consistent with "never" as with the estimate.
//!
//! The estimate and its interval come from the fitted line at `now` (not the last sample,
//! which is noise); the interval combines the slope's interval with the fitted level's
//! (a rank interval for the median), both 95 %, through the window's median time, where
//! the level is known best. In the replay tests the true crossing time falls inside it in
//! more than 90 % of evaluations.
//!
//! Cost: every pairwise slope of at most [`MAX_FIT_POINTS`] points (groups of consecutive
//! samples are averaged down to that, so a 6 h window at 10 s costs what one at 72 s
//! does), a few order statistics by selection (no sort), and linear passes over the
//! history for the seasonal profile. Estimated, not yet benchmarked: under a millisecond
//! per series in release builds.

use serde::{Deserialize, Serialize};

use crate::model::format_duration;

/// The normal quantile of the two-sided 95 % intervals (slope and level).
const Z_95: f64 = 1.96;

/// [`theil_sen`] averages groups of consecutive samples down to at most this many points
/// before pairing them: 300 points are 44,850 pairs. Averaging (rather than dropping
/// samples) keeps the information of white noise, and a spike is diluted by its group.
pub const MAX_FIT_POINTS: usize = 300;

/// The seasonal profile's resolution, and the unit of "where the series has been".
const BUCKET_MS: i64 = 30 * 60 * 1000;
const HALF_BUCKET_MS: i64 = BUCKET_MS / 2;
const DAY_MS: i64 = 86_400_000;
const DAY_SLOTS: usize = 48;
const WEEK_SLOTS: usize = 7 * DAY_SLOTS;

/// "Already breaching" reads the median of the last ten minutes, so one spike past the
/// threshold is not a breach (the target's own evaluation decides about that anyway).
const RECENT_MS: i64 = 10 * 60 * 1000;

/// Fewer samples than this in the trend window: not enough data, whatever their span.
const MIN_POINTS: usize = 6;

/// Each half of the trend window must rise at least this fraction as fast as the whole.
/// A real trend's halves rise like the whole (with noise, and with a seasonal profile's
/// imperfections a third of the way off in our replays); a step's halves are flat.
const HALF_SUPPORT: f64 = 0.25;

/// Median absolute deviation to standard deviation, for normal noise.
const MAD_TO_SD: f64 = 1.4826;

/// A centred moving average missing more than a quarter of its buckets is not used.
const MIN_TREND_COVERAGE: f64 = 0.75;

/// A line fitted by [`theil_sen`], with 95 % intervals for its slope and for its level at
/// `at_ms`, the median time of the fitted points.
///
/// The line pivots on `at_ms` because that is where its level is known best: the band
/// between the slope's bounds, drawn through the pivot, widens with the distance from the
/// data like any honest forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Units of the metric per second.
    pub slope_per_sec: f64,
    pub slope_low: f64,
    pub slope_high: f64,
    /// Where the line is pinned (epoch ms).
    pub at_ms: i64,
    /// The fitted value at `at_ms`.
    pub intercept: f64,
    pub intercept_low: f64,
    pub intercept_high: f64,
}

impl Trend {
    /// The fitted value at `t_ms`.
    pub fn value_at(&self, t_ms: i64) -> f64 {
        self.line_at(t_ms, self.intercept, self.slope_per_sec)
    }

    fn line_at(&self, t_ms: i64, intercept: f64, slope: f64) -> f64 {
        intercept + slope * ((t_ms - self.at_ms) as f64 / 1000.0)
    }
}

/// What the forecast says about one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TimeToBreach {
    /// The fitted trend crosses the threshold in about `eta_secs`, within
    /// `earliest_secs..=latest_secs` (95 % slope and level intervals), all from `now`.
    Breaches {
        eta_secs: u64,
        earliest_secs: u64,
        latest_secs: u64,
    },
    /// The last ten minutes' median, or the fitted level now, is already past the
    /// threshold: a forecast has nothing to add to the target's own status.
    AlreadyBreaching,
    /// Flat, receding, too noisy, a step rather than a trend, a recovery to levels seen
    /// before, or a crossing beyond the horizon: shown as "none".
    NotTrending,
    /// The trend window holds less than the minimum history.
    NotEnoughData { have_secs: u64, need_secs: u64 },
}

/// A predicted crossing as a chart draws it: fitted at `at_ms`, then the seconds from
/// then to the estimate and to its interval's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossing {
    pub at_ms: i64,
    pub eta_secs: u64,
    pub earliest_secs: u64,
    pub latest_secs: u64,
}

/// How far back the trend is read and how far ahead it is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastSettings {
    /// The slope is fitted over this much recent history. Shorter reacts sooner to a new
    /// trend; longer averages more noise and more of whatever the seasonal profile missed.
    pub trend_window_secs: u32,
    /// Less history than this in the trend window: [`TimeToBreach::NotEnoughData`].
    pub min_history_secs: u32,
    /// Crossings later than this (estimate or slow end of the interval) are "none".
    pub horizon_secs: u32,
    /// "New ground" is judged against the half hours of this much history before the
    /// trend window; a week covers the weekly cycle before it can be removed.
    pub range_lookback_secs: u32,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            trend_window_secs: 6 * 3600,
            min_history_secs: 30 * 60,
            horizon_secs: 7 * 86_400,
            range_lookback_secs: 7 * 86_400,
        }
    }
}

/// The Theil–Sen line through `points` (`(epoch ms, value)`, in time order): the median
/// of the slopes between every pair of points, with Sen's 95 % interval for it (the order
/// statistics `(N ∓ z·√(n(n−1)(2n+5)/18)) / 2` of the `N` sorted pairwise slopes, the
/// inversion of Kendall's test) and the median residual as the level at the median time,
/// with the distribution-free interval for a median (ranks `n/2 ∓ z·√n/2`).
///
/// Non-finite values are skipped; more than [`MAX_FIT_POINTS`] points are averaged in
/// groups of consecutive samples first. `None` under three points or when every point
/// shares one timestamp.
pub fn theil_sen(points: &[(i64, f64)]) -> Option<Trend> {
    let finite: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let origin_ms = finite.first()?.0;
    fit(&thin(&finite, origin_ms), origin_ms)
}

/// Groups of consecutive points averaged so that at most [`MAX_FIT_POINTS`] remain, as
/// `(seconds since origin_ms, value)`.
fn thin(points: &[(i64, f64)], origin_ms: i64) -> Vec<(f64, f64)> {
    let group = points.len().div_ceil(MAX_FIT_POINTS).max(1);
    points
        .chunks(group)
        .map(|g| {
            let n = g.len() as f64;
            let t = g
                .iter()
                .map(|&(t, _)| (t - origin_ms) as f64 / 1000.0)
                .sum::<f64>()
                / n;
            let v = g.iter().map(|&(_, v)| v).sum::<f64>() / n;
            (t, v)
        })
        .collect()
}

/// [`theil_sen`] on thinned points.
fn fit(points: &[(f64, f64)], origin_ms: i64) -> Option<Trend> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let mut slopes = pairwise_slopes(points);
    let count = slopes.len();
    if count == 0 {
        return None;
    }
    let c = Z_95 * ((n * (n - 1) * (2 * n + 5)) as f64 / 18.0).sqrt();
    let lo = (((count as f64 - c) / 2.0).floor() - 1.0).max(0.0) as usize;
    let hi = (((count as f64 + c) / 2.0).ceil() as usize).min(count - 1);
    let [slope_low, m1, m2, slope_high] =
        order_stats(&mut slopes, [lo, (count - 1) / 2, count / 2, hi]);
    let slope = (m1 + m2) / 2.0;

    let mut times: Vec<f64> = points.iter().map(|p| p.0).collect();
    let at_ms = origin_ms + (median(&mut times) * 1000.0).round() as i64;
    let pivot = (at_ms - origin_ms) as f64 / 1000.0;
    let mut residuals: Vec<f64> = points
        .iter()
        .map(|&(t, v)| v - slope * (t - pivot))
        .collect();
    let half = Z_95 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).floor() - 1.0).max(0.0) as usize;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    let [intercept_low, r1, r2, intercept_high] =
        order_stats(&mut residuals, [lo, (n - 1) / 2, n / 2, hi]);
    Some(Trend {
        slope_per_sec: slope,
        slope_low,
        slope_high,
        at_ms,
        intercept: (r1 + r2) / 2.0,
        intercept_low,
        intercept_high,
    })
}

/// The slope between every pair of points with distinct times.
fn pairwise_slopes(points: &[(f64, f64)]) -> Vec<f64> {
    let n = points.len();
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for (i, &(ti, vi)) in points.iter().enumerate() {
        for &(tj, vj) in &points[i + 1..] {
            let dt = tj - ti;
            if dt > 0.0 {
                out.push((vj - vi) / dt);
            }
        }
    }
    out
}

/// The median pairwise slope, without an interval; `None` under three points.
fn median_slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let mut slopes = pairwise_slopes(points);
    (!slopes.is_empty()).then(|| median(&mut slopes))
}

/// The values `values` would hold at the ascending `ranks` once sorted. Each selection
/// searches only what the previous one left above it, so four ranks cost about two
/// passes instead of a sort.
fn order_stats<const K: usize>(values: &mut [f64], ranks: [usize; K]) -> [f64; K] {
    debug_assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
    let mut out = [0.0; K];
    let mut from = 0;
    for (slot, &rank) in out.iter_mut().zip(&ranks) {
        let (_, value, _) = values[from..].select_nth_unstable_by(rank - from, f64::total_cmp);
        *slot = *value;
        from = rank;
    }
    out
}

/// The median of a non-empty slice (reorders it).
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let [a, b] = order_stats(values, [(n - 1) / 2, n / 2]);
    (a + b) / 2.0
}

/// A daily or weekly profile: the typical offset from the series' level at each half hour
/// of the day (or of the week), to subtract before fitting a trend and to add back when
/// projecting it.
///
/// Learned by classical decomposition, with medians where that is cheap: 30-minute means
/// of the history; the level as their centred moving average over one period (a 2×P
/// average, exact for a linear trend, so a steady fill leaves no profile); the profile as
/// the median over periods of each slot's deviation from that level, centred on zero.
/// Medians over periods let one unusual day (an incident, a holiday) pass without bending
/// the profile. The profile is interpolated linearly between slot centres: a smooth daily
/// curve stays smooth, and a projection's crossing is not pinned to slot boundaries.
///
/// The daily profile needs two days of history (the moving average costs half a period at
/// each end, so two days give one full day of deviations), the weekly one two weeks. The
/// weekly profile holds each weekday's own daily cycle, so it replaces the daily one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seasonality {
    /// Empty: no profile (not enough history).
    profile: Vec<f64>,
    /// How much days (or weeks) disagree with the profile: the median over slots of the
    /// robust spread of the periods' deviations. Zero with a single period.
    spread: f64,
}

impl Seasonality {
    /// The profile of `points` (`(epoch ms, value)`, in time order; non-finite values are
    /// skipped): weekly from 14 days of span, daily from 2 days, none below. Also none
    /// when more than a quarter of the slots saw no complete period (a gappy history).
    pub fn learn(points: &[(i64, f64)]) -> Seasonality {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Seasonality::default();
        };
        let slots = match last.0 - first.0 {
            span if span >= 14 * DAY_MS => WEEK_SLOTS,
            span if span >= 2 * DAY_MS => DAY_SLOTS,
            _ => return Seasonality::default(),
        };
        let (first_bucket, means) = bucket_means(points);
        let mut by_slot = vec![Vec::new(); slots];
        for (index, deviation) in deviations(&means, slots) {
            let slot = (first_bucket + index as i64).rem_euclid(slots as i64) as usize;
            by_slot[slot].push(deviation);
        }
        if by_slot.iter().filter(|s| s.is_empty()).count() * 4 > slots {
            return Seasonality::default();
        }
        Seasonality::from_slots(by_slot)
    }

    fn from_slots(mut by_slot: Vec<Vec<f64>>) -> Seasonality {
        let mut profile = Vec::with_capacity(by_slot.len());
        let mut spreads = Vec::new();
        for values in &mut by_slot {
            if values.is_empty() {
                profile.push(0.0);
                continue;
            }
            let m = median(values);
            let mut deviations: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
            spreads.push(MAD_TO_SD * median(&mut deviations));
            profile.push(m);
        }
        let mean = profile.iter().sum::<f64>() / profile.len() as f64;
        for p in &mut profile {
            *p -= mean;
        }
        Seasonality {
            profile,
            spread: median(&mut spreads),
        }
    }

    /// The period removed: a day, a week, or `None`.
    pub fn period_secs(&self) -> Option<u32> {
        match self.profile.len() {
            DAY_SLOTS => Some(86_400),
            WEEK_SLOTS => Some(7 * 86_400),
            _ => None,
        }
    }

    /// How much single days (or weeks) disagree with the profile, in the metric's unit.
    pub fn spread(&self) -> f64 {
        self.spread
    }

    /// The profile's offset at `t_ms` (0 without a profile).
    pub fn offset_at(&self, t_ms: i64) -> f64 {
        if self.profile.is_empty() {
            return 0.0;
        }
        let period = self.profile.len() as i64;
        let x = t_ms - HALF_BUCKET_MS;
        let i = x.div_euclid(BUCKET_MS);
        let f = x.rem_euclid(BUCKET_MS) as f64 / BUCKET_MS as f64;
        let a = self.profile[i.rem_euclid(period) as usize];
        let b = self.profile[(i + 1).rem_euclid(period) as usize];
        a * (1.0 - f) + b * f
    }
}

/// 30-minute means of `points` (time-ordered), from the first point's bucket to the
/// last's: the index of the first bucket since the epoch, and each bucket's mean.
fn bucket_means(points: &[(i64, f64)]) -> (i64, Vec<Option<f64>>) {
    let first = points[0].0.div_euclid(BUCKET_MS);
    let len = (points[points.len() - 1].0.div_euclid(BUCKET_MS) - first + 1) as usize;
    let mut sums = vec![(0.0, 0u32); len];
    for &(t, v) in points.iter().filter(|(_, v)| v.is_finite()) {
        let cell = &mut sums[(t.div_euclid(BUCKET_MS) - first) as usize];
        cell.0 += v;
        cell.1 += 1;
    }
    let means = sums
        .into_iter()
        .map(|(sum, n)| (n > 0).then_some(sum / f64::from(n)))
        .collect();
    (first, means)
}

/// Each bucket's deviation from the centred moving average over `period` buckets (ends
/// weighted ½, as the classical 2×P average for an even period), where the average is
/// complete enough: `(bucket index, deviation)`.
fn deviations(means: &[Option<f64>], period: usize) -> Vec<(usize, f64)> {
    let mut sums = Vec::with_capacity(means.len() + 1);
    let mut counts = Vec::with_capacity(means.len() + 1);
    let (mut s, mut c) = (0.0, 0u32);
    sums.push(s);
    counts.push(c);
    for m in means {
        s += m.unwrap_or(0.0);
        c += u32::from(m.is_some());
        sums.push(s);
        counts.push(c);
    }
    let half = period / 2;
    let mut out = Vec::new();
    let centers = means.len().saturating_sub(half);
    for (center, value) in means.iter().enumerate().take(centers).skip(half) {
        let Some(value) = *value else { continue };
        let (lo, hi) = (center - half, center + half);
        let mut weighted = sums[hi] - sums[lo + 1];
        let mut weight = f64::from(counts[hi] - counts[lo + 1]);
        for end in [means[lo], means[hi]].into_iter().flatten() {
            weighted += 0.5 * end;
            weight += 0.5;
        }
        if weight >= MIN_TREND_COVERAGE * period as f64 {
            out.push((center, value - weighted / weight));
        }
    }
    out
}

/// Why a series is [`TimeToBreach::NotTrending`] (kept for tests and debugging; the card
/// shows "none" for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoTrend {
    NoFit,
    Receding,
    NotSignificant,
    Jump,
    WithinRange,
    BeyondHorizon,
    SlowEndBeyondHorizon,
}

/// When `points` (`(epoch ms, value)`; samples after `now_ms` and non-finite values are
/// ignored) will cross `threshold`: going up when `rising_breaches` (a "≤" target: disk
/// use, latency), going down otherwise (a "≥" target: free space, hit ratio).
pub fn time_to_breach(
    points: &[(i64, f64)],
    threshold: f64,
    rising_breaches: bool,
    now_ms: i64,
    settings: &ForecastSettings,
) -> TimeToBreach {
    assess(points, threshold, rising_breaches, now_ms, settings)
        .unwrap_or(TimeToBreach::NotTrending)
}

/// [`time_to_breach`], saying why when the answer is "not trending". Everything below
/// works on values oriented so that breaching is going up (negated for falling breaches).
fn assess(
    points: &[(i64, f64)],
    threshold: f64,
    rising_breaches: bool,
    now_ms: i64,
    settings: &ForecastSettings,
) -> Result<TimeToBreach, NoTrend> {
    if !threshold.is_finite() {
        return Err(NoTrend::NoFit);
    }
    let sign = if rising_breaches { 1.0 } else { -1.0 };
    let goal = sign * threshold;
    let history = oriented_history(points, sign, now_ms);
    if recent_median(&history, now_ms).is_some_and(|level| level >= goal) {
        return Ok(TimeToBreach::AlreadyBreaching);
    }
    let window_start = now_ms - i64::from(settings.trend_window_secs) * 1000;
    let window = &history[history.partition_point(|p| p.0 < window_start)..];
    let have_secs = match (window.first(), window.last()) {
        (Some(first), Some(last)) => ((last.0 - first.0) / 1000) as u64,
        _ => 0,
    };
    if have_secs < u64::from(settings.min_history_secs) || window.len() < MIN_POINTS {
        return Ok(TimeToBreach::NotEnoughData {
            have_secs,
            need_secs: settings.min_history_secs.into(),
        });
    }
    let season = Seasonality::learn(&history);
    let flat: Vec<(i64, f64)> = window
        .iter()
        .map(|&(t, v)| (t, v - season.offset_at(t)))
        .collect();
    let origin_ms = flat[0].0;
    let thinned = thin(&flat, origin_ms);
    let trend = fit(&thinned, origin_ms).ok_or(NoTrend::NoFit)?;
    if trend.value_at(now_ms) + season.offset_at(now_ms) >= goal {
        return Ok(TimeToBreach::AlreadyBreaching);
    }
    check_trend(&trend, &thinned)?;
    let lookback_from = window_start - i64::from(settings.range_lookback_secs) * 1000;
    let past = past_high(&history, &season, lookback_from, window_start);
    check_new_ground(&flat, &season, past)?;
    let horizon_secs = f64::from(settings.horizon_secs);
    project(&trend, &season, goal, now_ms, horizon_secs)
}

/// The finite samples up to `now_ms`, times `sign`, in time order.
fn oriented_history(points: &[(i64, f64)], sign: f64, now_ms: i64) -> Vec<(i64, f64)> {
    let mut history: Vec<(i64, f64)> = points
        .iter()
        .filter(|(t, v)| *t <= now_ms && v.is_finite())
        .map(|&(t, v)| (t, sign * v))
        .collect();
    if !history.is_sorted_by_key(|p| p.0) {
        history.sort_by_key(|p| p.0);
    }
    history
}

/// The median of the last ten minutes before `now_ms`; `None` when the series is silent.
fn recent_median(history: &[(i64, f64)], now_ms: i64) -> Option<f64> {
    let from = history.partition_point(|p| p.0 <= now_ms - RECENT_MS);
    let mut recent: Vec<f64> = history[from..].iter().map(|p| p.1).collect();
    (!recent.is_empty()).then(|| median(&mut recent))
}

/// Steps 3 and 4 of the module's rules: the slope interval excludes zero on the rising
/// side, and each half of the window rises at least [`HALF_SUPPORT`] as fast as the whole.
fn check_trend(trend: &Trend, thinned: &[(f64, f64)]) -> Result<(), NoTrend> {
    if trend.slope_low <= 0.0 {
        return Err(if trend.slope_per_sec > 0.0 {
            NoTrend::NotSignificant
        } else {
            NoTrend::Receding
        });
    }
    let mid = (thinned[0].0 + thinned[thinned.len() - 1].0) / 2.0;
    let split = thinned.partition_point(|p| p.0 < mid);
    for half in [&thinned[..split], &thinned[split..]] {
        if median_slope(half).is_some_and(|s| s < trend.slope_per_sec * HALF_SUPPORT) {
            return Err(NoTrend::Jump);
        }
    }
    Ok(())
}

/// The highest 30-minute mean of the deseasonalised history in `from_ms..to_ms`.
fn past_high(
    history: &[(i64, f64)],
    season: &Seasonality,
    from_ms: i64,
    to_ms: i64,
) -> Option<f64> {
    let start = history.partition_point(|p| p.0 < from_ms);
    let end = history.partition_point(|p| p.0 < to_ms);
    let mut high: Option<f64> = None;
    let mut rest = &history[start..end.max(start)];
    while let Some(&(t, _)) = rest.first() {
        let bucket = t.div_euclid(BUCKET_MS);
        let len = rest.partition_point(|p| p.0.div_euclid(BUCKET_MS) == bucket);
        let mean = rest[..len].iter().map(|p| p.1).sum::<f64>() / len as f64;
        let level = mean - season.offset_at(bucket * BUCKET_MS + HALF_BUCKET_MS);
        high = Some(high.map_or(level, |h| h.max(level)));
        rest = &rest[len..];
    }
    high
}

/// The latest half hour (of the deseasonalised window) must lie beyond `past_high` by more
/// than the profile's day-to-day spread plus two standard errors of its own mean: a rise
/// back to where the series has already been is a recovery, not a trend toward a breach.
fn check_new_ground(
    flat: &[(i64, f64)],
    season: &Seasonality,
    past_high: Option<f64>,
) -> Result<(), NoTrend> {
    let Some(high) = past_high else {
        return Ok(());
    };
    let last_ms = flat[flat.len() - 1].0;
    let lately: Vec<f64> = flat
        .iter()
        .filter(|p| p.0 > last_ms - BUCKET_MS)
        .map(|p| p.1)
        .collect();
    let n = lately.len() as f64;
    let mean = lately.iter().sum::<f64>() / n;
    let variance = if lately.len() > 1 {
        lately.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let margin = season.spread + 2.0 * (variance / n).sqrt();
    if mean > high + margin {
        Ok(())
    } else {
        Err(NoTrend::WithinRange)
    }
}

/// The estimate from the fitted line; the earliest from the steep end of the slope
/// interval through the high end of the level's, the latest from the other two ends.
fn project(
    trend: &Trend,
    season: &Seasonality,
    goal: f64,
    now_ms: i64,
    horizon_secs: f64,
) -> Result<TimeToBreach, NoTrend> {
    let cross = |intercept: f64, slope: f64| {
        crossing_secs(trend, intercept, slope, season, goal, now_ms, horizon_secs)
    };
    let eta = cross(trend.intercept, trend.slope_per_sec).ok_or(NoTrend::BeyondHorizon)?;
    let earliest = cross(trend.intercept_high, trend.slope_high).unwrap_or(eta);
    let latest =
        cross(trend.intercept_low, trend.slope_low).ok_or(NoTrend::SlowEndBeyondHorizon)?;
    Ok(TimeToBreach::Breaches {
        eta_secs: eta.round() as u64,
        earliest_secs: earliest.round() as u64,
        latest_secs: latest.round() as u64,
    })
}

/// Seconds from `now_ms` until the line `(intercept, slope)` through `trend.at_ms`, plus
/// the seasonal profile, first reaches `goal`; `None` beyond the horizon or when the line
/// does not rise. With a profile the sum is linear between the profile's slot centres, so
/// it is walked segment by segment (336 segments for a week) and solved exactly.
fn crossing_secs(
    trend: &Trend,
    intercept: f64,
    slope: f64,
    season: &Seasonality,
    goal: f64,
    now_ms: i64,
    horizon_secs: f64,
) -> Option<f64> {
    if slope <= 0.0 || !slope.is_finite() {
        return None;
    }
    let level = |t_ms: i64| trend.line_at(t_ms, intercept, slope) + season.offset_at(t_ms);
    if season.period_secs().is_none() {
        let secs = ((goal - level(now_ms)) / slope).max(0.0);
        return (secs <= horizon_secs).then_some(secs);
    }
    let end_ms = now_ms + (horizon_secs * 1000.0) as i64;
    let (mut u, mut at_u) = (now_ms, level(now_ms));
    if at_u >= goal {
        return Some(0.0);
    }
    while u < end_ms {
        let v = ((u - HALF_BUCKET_MS).div_euclid(BUCKET_MS) + 1) * BUCKET_MS + HALF_BUCKET_MS;
        let at_v = level(v);
        if at_v >= goal {
            let secs = (u - now_ms) as f64 / 1000.0
                + (goal - at_u) / (at_v - at_u) * ((v - u) as f64 / 1000.0);
            return (secs <= horizon_secs).then_some(secs);
        }
        (u, at_u) = (v, at_v);
    }
    None
}

/// What Prometheus' `predict_linear(v[window], ahead)` returns at `now_ms`: the ordinary
/// least-squares line through the samples in `(now − window, now]` (range selectors are
/// left-open since Prometheus 3), evaluated `ahead_secs` after `now`. `None` under two
/// samples or when they share one timestamp. Kept for comparison: it is what a
/// hand-written disk alert (`predict_linear(…[6h], 24 * 3600) > …`) would have said.
pub fn predict_linear(
    points: &[(i64, f64)],
    now_ms: i64,
    window_secs: u32,
    ahead_secs: f64,
) -> Option<f64> {
    let from_ms = now_ms - i64::from(window_secs) * 1000;
    let samples: Vec<(f64, f64)> = points
        .iter()
        .filter(|(t, v)| *t > from_ms && *t <= now_ms && v.is_finite())
        .map(|&(t, v)| ((t - now_ms) as f64 / 1000.0, v))
        .collect();
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let x_mean = samples.iter().map(|p| p.0).sum::<f64>() / n;
    let y_mean = samples.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx = samples.iter().map(|p| (p.0 - x_mean).powi(2)).sum::<f64>();
    let sxy = samples
        .iter()
        .map(|p| (p.0 - x_mean) * (p.1 - y_mean))
        .sum::<f64>();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some(y_mean - slope * x_mean + slope * ahead_secs)
}

/// `secs` rounded the way a person would say it: to the minute under two hours, to five
/// minutes under a day, to the hour beyond (the estimate is not better than that).
pub fn round_duration(secs: u64) -> u64 {
    let step = match secs {
        s if s < 2 * 3600 => 60,
        s if s < 86_400 => 300,
        _ => 3600,
    };
    (secs + step / 2) / step * step
}

/// "3 h 10 m", "45 m", "31 h", "< 1 m": [`round_duration`] in the product's compact form.
pub fn human_duration(secs: u64) -> String {
    match round_duration(secs) {
        0 => "< 1 m".to_owned(),
        rounded => format_duration(u32::try_from(rounded).unwrap_or(u32::MAX)),
    }
}

/// The card's text, without the threshold: "breaches in ~3 h 10 m (2 h 40 m – 4 h 5 m)",
/// "already breaching", "none", "not enough history (12 m of 30 m)".
pub fn describe(forecast: &TimeToBreach) -> String {
    describe_breach_of(forecast, None)
}

/// [`describe`] naming the threshold, already formatted with its unit (`"80 %"`):
/// "breaches 80 % in ~3 h 10 m (2 h 40 m – 4 h 5 m)", "already past 80 %".
pub fn describe_level(forecast: &TimeToBreach, threshold: &str) -> String {
    describe_breach_of(forecast, Some(threshold))
}

fn describe_breach_of(forecast: &TimeToBreach, threshold: Option<&str>) -> String {
    match (*forecast, threshold) {
        (
            TimeToBreach::Breaches {
                eta_secs,
                earliest_secs,
                latest_secs,
            },
            level,
        ) => {
            let level = level.map(|l| format!("{l} ")).unwrap_or_default();
            let (eta, earliest, latest) = (
                human_duration(eta_secs),
                human_duration(earliest_secs),
                human_duration(latest_secs),
            );
            // A steady series pins the time down: "(40 m – 40 m)" says nothing more.
            if earliest == eta && latest == eta {
                format!("breaches {level}in ~{eta}")
            } else {
                format!("breaches {level}in ~{eta} ({earliest} – {latest})")
            }
        }
        (TimeToBreach::AlreadyBreaching, None) => "already breaching".to_owned(),
        (TimeToBreach::AlreadyBreaching, Some(level)) => format!("already past {level}"),
        (TimeToBreach::NotTrending, _) => "none".to_owned(),
        (
            TimeToBreach::NotEnoughData {
                have_secs,
                need_secs,
            },
            _,
        ) => format!(
            "not enough history ({} of {})",
            human_duration(have_secs),
            human_duration(need_secs)
        ),
    }
}

#[cfg(test)]
mod tests;
