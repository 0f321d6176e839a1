//! Anomaly bands: where a series usually sits, and the moments it left. Each point is
//! judged against the points just before it: their median ± `k` robust standard deviations
//! (MAD × 1.4826, floored at 1 % of the level so a flat line's wobble is not news). A point
//! outside is anomalous; a run of them is one anomaly. A series with more than
//! `mute_per_hour` anomalies in an hour is noisy rather than surprising, so it is muted from
//! then on (Netdata suppresses noisy dimensions the same way) and says so. Pure and
//! clock-free, over a chart's evenly spaced values.

use serde::{Deserialize, Serialize};

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
}

impl Band {
    pub fn is_empty(&self) -> bool {
        self.lows.is_empty()
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
    // Reused for every point: the window's values and their deviations.
    let (mut before, mut deviations) = (Vec::with_capacity(window), Vec::with_capacity(window));
    for (i, value) in values.iter().enumerate() {
        before.clear();
        before.extend(
            values[i.saturating_sub(window)..i]
                .iter()
                .flatten()
                .map(|v| f64::from(*v)),
        );
        let outside = match (value, bounds(&mut before, &mut deviations, settings)) {
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

/// The band from the points before one: median ± k robust standard deviations.
fn bounds(
    before: &mut [f64],
    deviations: &mut Vec<f64>,
    settings: &BandSettings,
) -> Option<(f64, f64)> {
    if before.len() < settings.min_points {
        return None;
    }
    let level = median(before);
    deviations.clear();
    deviations.extend(before.iter().map(|v| (v - level).abs()));
    let spread = (1.4826 * median(deviations)).max((level.abs() * 0.01).max(0.01));
    Some((level - settings.k * spread, level + settings.k * spread))
}

fn median(values: &mut [f64]) -> f64 {
    crate::stats::percentile_in_place(values, 50.0).unwrap_or_default()
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
