//! Anomaly bands: where a series usually sits, and the moments it left. Each point is
//! judged against the points just before it: their median ± `k` robust standard deviations
//! (MAD × 1.4826, floored at 1 % of the level so a flat line's wobble is not news). A point
//! outside is anomalous; a run of them is one anomaly. A series with more than
//! `mute_per_hour` anomalies in an hour is noisy rather than surprising, so it is muted from
//! then on (Netdata suppresses noisy dimensions the same way) and says so. Pure and
//! clock-free, over a chart's evenly spaced values.

use serde::{Deserialize, Serialize};

use crate::forecast::Seasonality;

/// How wide the band is and how a noisy series is muted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandSettings {
    /// The points before each one it is judged against, as time.
    pub window_secs: u32,
    /// Band half-width in robust standard deviations.
    pub k: f64,
    /// Fewer points before one than this: it is not judged (the band has a gap).
    pub min_points: usize,
    /// More anomalies than this in an hour mute the series.
    pub mute_per_hour: usize,
    /// Runs of anomalous points this close are one anomaly (a burst of wild values has a
    /// few ordinary ones among them).
    pub merge_gap_secs: u32,
}

impl Default for BandSettings {
    fn default() -> Self {
        BandSettings {
            window_secs: 600,
            k: 5.0,
            min_points: 20,
            mute_per_hour: 6,
            merge_gap_secs: 30,
        }
    }
}

/// A series' band and its anomalies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// One per value: the band's bounds where the point could be judged.
    pub lows: Vec<Option<f32>>,
    pub highs: Vec<Option<f32>>,
    /// Each anomaly's first and last index (runs of points outside the band).
    pub anomalies: Vec<(usize, usize)>,
    /// The series was muted (too many anomalies in an hour) from this index on.
    pub muted_from: Option<usize>,
    /// The daily or weekly pattern taken out before judging ([`seasonal_band`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_secs: Option<u32>,
}

/// How often a series left its band, what the overview's cards and the chart's caption
/// both say ("2 anomalies, 0.4 % of the time").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub count: u32,
    /// The share of the judged points that were anomalous, 0–1.
    pub share: f32,
    /// Muted for too many anomalies: the count stops there.
    pub muted: bool,
}

impl Band {
    pub fn is_empty(&self) -> bool {
        self.lows.is_empty()
    }

    /// How often the series left the band; `None` when no point could be judged.
    pub fn rate(&self) -> Option<Rate> {
        let judged = self.lows.iter().flatten().count();
        if judged == 0 {
            return None;
        }
        let anomalous: usize = self
            .anomalies
            .iter()
            .map(|(start, end)| end - start + 1)
            .sum();
        Some(Rate {
            count: u32::try_from(self.anomalies.len()).unwrap_or(u32::MAX),
            share: (anomalous as f64 / judged as f64) as f32,
            muted: self.muted_from.is_some(),
        })
    }

    /// Drops the first `n` points (a live chart sliding forward), keeping the rest aligned.
    pub fn drain_front(&mut self, n: usize) {
        let n = n.min(self.lows.len());
        self.lows.drain(..n);
        self.highs.drain(..n);
        self.anomalies.retain(|(_, end)| *end >= n);
        for (start, end) in &mut self.anomalies {
            *start = start.saturating_sub(n);
            *end -= n;
        }
        self.muted_from = self.muted_from.map(|m| m.saturating_sub(n));
    }
}

/// The band of `values` (oldest first, one every `step_secs`; `None` is a gap).
pub fn band(values: &[Option<f32>], step_secs: u32, settings: &BandSettings) -> Band {
    let step_secs = step_secs.max(1);
    // Coarse steps (a day's minutes, a month's hours) still judge against enough points.
    let window = ((settings.window_secs / step_secs) as usize).max(2 * settings.min_points);
    let per_hour = (3600 / step_secs).max(1) as usize;
    let merge_gap = (settings.merge_gap_secs / step_secs) as usize;
    let mut found = Band {
        lows: vec![None; values.len()],
        highs: vec![None; values.len()],
        ..Band::default()
    };
    let mut open: Option<usize> = None;
    // The points before the one judged, kept sorted as the window slides: each step
    // inserts one and removes one instead of selecting medians from scratch.
    let mut before = SortedWindow::with_capacity(window);
    for (i, value) in values.iter().enumerate() {
        if let Some(entering) = i.checked_sub(1).and_then(|j| values[j]) {
            before.insert(f64::from(entering));
        }
        if let Some(leaving) = i.checked_sub(window + 1).and_then(|j| values[j]) {
            before.remove(f64::from(leaving));
        }
        let outside = match (value, before.bounds(settings)) {
            (Some(v), Some((low, high))) => {
                found.lows[i] = Some(low as f32);
                found.highs[i] = Some(high as f32);
                let v = f64::from(*v);
                v < low || v > high
            }
            _ => false,
        };
        match (outside, open) {
            (true, None) => {
                // Close to the last anomaly: the same one goes on.
                let continues = found
                    .anomalies
                    .last()
                    .is_some_and(|(_, end)| i - end <= merge_gap + 1);
                open = Some(if continues {
                    found.anomalies.pop().map_or(i, |(start, _)| start)
                } else {
                    i
                });
            }
            (false, Some(start)) => {
                found.anomalies.push((start, i - 1));
                open = None;
            }
            _ => {}
        }
        if found.muted_from.is_none() {
            let recent = found
                .anomalies
                .iter()
                .filter(|(start, _)| i - start < per_hour)
                .count();
            if recent > settings.mute_per_hour {
                found.muted_from = Some(i);
            }
        }
    }
    if let Some(start) = open {
        found.anomalies.push((start, values.len() - 1));
    }
    if let Some(muted) = found.muted_from {
        found.anomalies.retain(|(start, _)| *start < muted);
    }
    found
}

/// The band of a chart's `values` with the series' daily or weekly pattern taken out
/// first (point `i` is the slot starting at `start_ms + i × step_ms`): a workload that
/// rises every morning is where it usually is at that hour, not an anomaly. The bounds are
/// put back on the pattern, so they follow it on the chart. Without a pattern (less than
/// two days of history) this is [`band`].
pub fn seasonal_band(
    values: &[Option<f32>],
    start_ms: i64,
    step_ms: i64,
    seasonality: &Seasonality,
    settings: &BandSettings,
) -> Band {
    let step_secs = u32::try_from((step_ms / 1000).max(1)).unwrap_or(u32::MAX);
    if seasonality.period_secs().is_none() {
        return band(values, step_secs, settings);
    }
    let offset = |i: usize| seasonality.offset_at(start_ms + i as i64 * step_ms + step_ms / 2);
    let residuals: Vec<Option<f32>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| v.map(|v| (f64::from(v) - offset(i)) as f32))
        .collect();
    let mut found = band(&residuals, step_secs, settings);
    found.period_secs = seasonality.period_secs();
    for (i, (low, high)) in found.lows.iter_mut().zip(&mut found.highs).enumerate() {
        let back = |bound: &mut Option<f32>| {
            *bound = bound.map(|b| (f64::from(b) + offset(i)) as f32);
        };
        back(low);
        back(high);
    }
    found
}

/// The points a value is judged against, ascending.
struct SortedWindow {
    sorted: Vec<f64>,
}

impl SortedWindow {
    fn with_capacity(capacity: usize) -> SortedWindow {
        SortedWindow {
            sorted: Vec::with_capacity(capacity + 1),
        }
    }

    fn insert(&mut self, value: f64) {
        let at = self.sorted.partition_point(|x| x.total_cmp(&value).is_lt());
        self.sorted.insert(at, value);
    }

    fn remove(&mut self, value: f64) {
        let at = self.sorted.partition_point(|x| x.total_cmp(&value).is_lt());
        if self
            .sorted
            .get(at)
            .is_some_and(|x| x.total_cmp(&value).is_eq())
        {
            self.sorted.remove(at);
        }
    }

    /// The band: median ± k robust standard deviations (MAD × 1.4826, floored at 1 % of
    /// the level). Same numbers as selecting the median of the deviations, in O(log n):
    /// the deviations are two ascending runs, below and above the median.
    fn bounds(&self, settings: &BandSettings) -> Option<(f64, f64)> {
        let n = self.sorted.len();
        if n < settings.min_points.max(1) {
            return None;
        }
        let level = crate::stats::quantile_sorted(&self.sorted, 0.5)?;
        let split = self.sorted.partition_point(|x| *x < level);
        let below = |t: usize| (self.sorted[split - 1 - t] - level).abs();
        let above = |t: usize| (self.sorted[split + t] - level).abs();
        let mad = median_of_two_runs(below, split, above, n - split);
        let spread = (1.4826 * mad).max((level.abs() * 0.01).max(0.01));
        Some((level - settings.k * spread, level + settings.k * spread))
    }
}

/// The median (interpolated for an even count, as `stats::percentile_in_place`) of the
/// union of two ascending runs `a` (`a_len` long) and `b`.
fn median_of_two_runs(
    a: impl Fn(usize) -> f64,
    a_len: usize,
    b: impl Fn(usize) -> f64,
    b_len: usize,
) -> f64 {
    let n = a_len + b_len;
    let rank = 0.5 * (n - 1) as f64;
    let k = rank.floor() as usize;
    let frac = rank - k as f64;
    // Take `i` from `a` and `k + 1 - i` from `b`: the smallest `i` whose next `a` is not
    // below the last `b` taken splits off the k + 1 smallest.
    let (mut lo, mut hi) = ((k + 1).saturating_sub(b_len), (k + 1).min(a_len));
    while lo < hi {
        let i = lo + (hi - lo) / 2;
        if b(k - i) > a(i) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let (i, j) = (lo, k + 1 - lo);
    let kth = match (i.checked_sub(1).map(&a), j.checked_sub(1).map(&b)) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return 0.0,
    };
    if frac == 0.0 {
        return kth;
    }
    let next = match ((i < a_len).then(|| a(i)), (j < b_len).then(|| b(j))) {
        (Some(x), Some(y)) => x.min(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return kth,
    };
    kth + (next - kth) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Gaussian noise (Box–Muller) around 50 with σ = 2, every second for `n` seconds.
    fn noisy(n: usize, seed: u64) -> Vec<Option<f32>> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|_| {
                let (u, v) = (rng.next_f64().max(1e-12), rng.next_f64());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                Some((50.0 + 2.0 * z) as f32)
            })
            .collect()
    }

    /// The band's bounds as first written: each point's window copied and its medians
    /// selected from scratch. The sliding window must give the same numbers.
    fn bounds_from_scratch(before: &[Option<f32>], settings: &BandSettings) -> Option<(f64, f64)> {
        let mut values: Vec<f64> = before.iter().flatten().map(|v| f64::from(*v)).collect();
        if values.len() < settings.min_points {
            return None;
        }
        let level = crate::stats::percentile_in_place(&mut values, 50.0)?;
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - level).abs()).collect();
        let mad = crate::stats::percentile_in_place(&mut deviations, 50.0)?;
        let spread = (1.4826 * mad).max((level.abs() * 0.01).max(0.01));
        Some((level - settings.k * spread, level + settings.k * spread))
    }

    #[test]
    fn the_sliding_window_gives_the_bounds_selected_from_scratch() {
        let settings = BandSettings {
            window_secs: 37,
            min_points: 5,
            ..BandSettings::default()
        };
        let mut rng = Rng(42);
        // Noise, ties (rounded values), gaps and steps: every shape the window meets.
        let values: Vec<Option<f32>> = (0..3_000)
            .map(|i| {
                let r = rng.next_f64();
                if r < 0.05 {
                    None
                } else if i % 400 < 100 {
                    Some((r * 10.0).round() as f32)
                } else {
                    Some((r * 100.0 + f64::from(i / 700) * 50.0) as f32)
                }
            })
            .collect();
        let found = band(&values, 1, &settings);
        let window = 37usize.max(2 * settings.min_points);
        for i in 0..values.len() {
            let expected = values[i].and(bounds_from_scratch(
                &values[i.saturating_sub(window)..i],
                &settings,
            ));
            let got = found.lows[i].zip(found.highs[i]);
            assert_eq!(
                got,
                expected.map(|(low, high)| (low as f32, high as f32)),
                "point {i}"
            );
        }
        // Every window length, odd and even, on a small set.
        for n in 1..40 {
            let mut w = SortedWindow::with_capacity(n);
            let raw: Vec<f64> = (0..n).map(|_| (rng.next_f64() * 8.0).floor()).collect();
            for v in &raw {
                w.insert(*v);
            }
            let plain = BandSettings {
                min_points: 1,
                ..settings
            };
            let as_options: Vec<Option<f32>> = raw.iter().map(|v| Some(*v as f32)).collect();
            assert_eq!(
                w.bounds(&plain),
                bounds_from_scratch(&as_options, &plain),
                "n {n}"
            );
        }
    }

    #[test]
    fn a_flat_series_and_pure_noise_have_no_anomalies() {
        let settings = BandSettings::default();
        let flat = vec![Some(20.0f32); 3600];
        assert!(band(&flat, 1, &settings).anomalies.is_empty());
        for seed in 1..=5 {
            let found = band(&noisy(3600, seed), 1, &settings);
            assert!(
                found.anomalies.is_empty(),
                "seed {seed}: {:?}",
                found.anomalies
            );
            assert_eq!(found.muted_from, None);
        }
    }

    #[test]
    fn injected_spikes_shifts_and_variance_changes_are_found_precisely() {
        let settings = BandSettings::default();
        let (mut true_positives, mut injected) = (0, 0);
        let (mut reported, mut reported_true) = (0, 0);
        for seed in 1..=5 {
            let mut values = noisy(4 * 3600, seed);
            // Per hour: two spikes of 3 s at +12σ, one level shift of +15σ for five
            // minutes, one burst of noise ±60 (30σ) for 20 s.
            let mut events = Vec::new();
            for hour in 0..4usize {
                let base = hour * 3600;
                // Ten minutes after a shift's return the window holds both levels and is
                // wide: the second spike comes after the window is clean again.
                for at in [base + 900, base + 2700] {
                    for v in &mut values[at..at + 3] {
                        *v = v.map(|v| v + 24.0);
                    }
                    events.push(at);
                }
                let shift = base + 1500;
                for v in &mut values[shift..base + 1800] {
                    *v = v.map(|v| v + 30.0);
                }
                events.push(shift);
                let burst = base + 3000;
                let mut rng = Rng(seed * 100 + hour as u64);
                for v in &mut values[burst..burst + 20] {
                    *v = v.map(|v| v + rng.noise(60.0) as f32);
                }
                events.push(burst);
            }
            let found = band(&values, 1, &settings);
            assert_eq!(found.muted_from, None, "seed {seed}");
            let near = |event: usize, (start, _): &(usize, usize)| start.abs_diff(event) <= 20;
            injected += events.len();
            true_positives += events
                .iter()
                .filter(|&&e| found.anomalies.iter().any(|a| near(e, a)))
                .count();
            // A shift's return to the old level 300 s later is a change too: not false.
            let returns: Vec<usize> = (0..4).map(|h| h * 3600 + 1800).collect();
            let counted: Vec<&(usize, usize)> = found
                .anomalies
                .iter()
                .filter(|a| !returns.iter().any(|&r| near(r, a)))
                .collect();
            reported += counted.len();
            reported_true += counted
                .iter()
                .filter(|a| events.iter().any(|&e| near(e, a)))
                .count();
        }
        let recall = true_positives as f64 / injected as f64;
        let precision = reported_true as f64 / reported as f64;
        assert!(
            recall >= 0.9,
            "recall {recall:.2} ({true_positives} of {injected})"
        );
        assert!(
            precision >= 0.9,
            "precision {precision:.2} ({reported_true} of {reported})"
        );
    }

    #[test]
    fn a_workload_that_rises_every_morning_is_usual_once_its_days_are_learned() {
        const DAY: i64 = 86_400_000;
        const MINUTE: i64 = 60_000;
        // Memory (MB) without noise: 4,000 at night, climbing 600 within half an hour
        // from 09:00, back down at 18:00. Three days teach the profile; the fourth is
        // charted at one point a minute, like the 1-day range.
        let level = |t: i64| {
            let minute = t.rem_euclid(DAY) / MINUTE;
            let ramp = |from: i64| ((minute - from) as f64 / 30.0).clamp(0.0, 1.0);
            4_000.0 + 600.0 * (ramp(9 * 60) - ramp(18 * 60))
        };
        let start = 1_000 * DAY;
        let learned: Vec<(i64, f64)> = (0..3 * 144)
            .map(|i| {
                let t = start + i * 10 * MINUTE + 5 * MINUTE;
                (
                    t,
                    (0..10)
                        .map(|m| level(t - 5 * MINUTE + m * MINUTE))
                        .sum::<f64>()
                        / 10.0,
                )
            })
            .collect();
        let seasonality = Seasonality::learn(&learned);
        assert_eq!(seasonality.period_secs(), Some(86_400));
        let day_start = start + 3 * DAY;
        let values: Vec<Option<f32>> = (0..1_440)
            .map(|i| Some(level(day_start + i * MINUTE) as f32))
            .collect();
        let settings = BandSettings::default();
        let plain = band(&values, 60, &settings);
        assert!(
            !plain.anomalies.is_empty(),
            "the ramps flag without the profile"
        );
        let seasonal = seasonal_band(&values, day_start, MINUTE, &seasonality, &settings);
        assert_eq!(seasonal.anomalies, [], "{:?}", seasonal.anomalies);
        // The bounds follow the day: the band around noon sits above the night's.
        let (night, noon) = (
            seasonal.highs[3 * 60].unwrap(),
            seasonal.highs[12 * 60].unwrap(),
        );
        assert!(noon > night + 300.0, "night {night}, noon {noon}");
        // A real surprise on that day is still one.
        let mut surprised = values.clone();
        for v in &mut surprised[14 * 60..14 * 60 + 5] {
            *v = Some(7_000.0);
        }
        let found = seasonal_band(&surprised, day_start, MINUTE, &seasonality, &settings);
        assert_eq!(found.anomalies, [(14 * 60, 14 * 60 + 4)]);
    }

    #[test]
    fn a_series_that_keeps_jumping_is_muted_and_says_since_when() {
        let settings = BandSettings::default();
        let mut values = vec![Some(10.0f32); 3600];
        // A jump every five minutes: twelve in the hour, more than the six allowed.
        for k in 1..12 {
            values[k * 300] = Some(90.0);
        }
        let found = band(&values, 1, &settings);
        let muted = found.muted_from.expect("muted");
        assert_eq!(muted, 7 * 300 + 1, "{found:?}");
        assert_eq!(found.anomalies.len(), 7);
        assert!(found.anomalies.iter().all(|(start, _)| *start < muted));
    }
}
