//! Long ranges (7 and 30 days) read from the history on disk: the minute tier in
//! 10-minute slots for a week, the hour tier for a month, min and max kept per slot.

use engine::history::tiers::Tier;
use engine::history::{ChartSamples, Grid, Sampled};
use engine::series::{SeriesKey, UnixMillis};

use crate::persist::history::HistoryStore;

/// The stored tier that serves slots `step_ms` wide.
pub fn tier_for(step_ms: i64) -> Tier {
    if step_ms >= 3_600_000 {
        Tier::Hour
    } else if step_ms >= 60_000 {
        Tier::Minute
    } else {
        Tier::Raw
    }
}

/// `keys` over the last `span_ms` ending `now`, one slot per `step_ms`, from `stored`
/// (blocking: call it on the blocking pool). Slots nothing was stored for are gaps.
pub fn chart(
    stored: &HistoryStore,
    keys: &[SeriesKey],
    span_ms: i64,
    step_ms: i64,
    now: UnixMillis,
) -> Result<ChartSamples, String> {
    if !stored.is_enabled() {
        return Err(
            "ranges beyond 24 hours read the history on disk, and this perfpilot runs with --ephemeral (nothing is written)"
                .into(),
        );
    }
    let grid = Grid::ending_at(now, span_ms, step_ms);
    let tier = tier_for(step_ms);
    let mut series = Vec::with_capacity(keys.len());
    for points in stored.read(keys, tier, grid.start_ms, grid.end_ms())? {
        let mut slots: Vec<Option<(f32, f64, u32, f32)>> = vec![None; grid.points];
        for p in points {
            let Ok(i) = usize::try_from((p.t - grid.start_ms).div_euclid(grid.step_ms)) else {
                continue;
            };
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            let (lo, sum, n, hi) = slot.get_or_insert((f32::INFINITY, 0.0, 0, f32::NEG_INFINITY));
            *lo = lo.min(p.min);
            *hi = hi.max(p.max);
            *sum += f64::from(p.mean);
            *n += 1;
        }
        let mut sampled = Sampled {
            means: vec![None; grid.points],
            lows: vec![None; grid.points],
            highs: vec![None; grid.points],
        };
        for (i, slot) in slots.into_iter().enumerate() {
            if let Some((lo, sum, n, hi)) = slot {
                sampled.means[i] = Some((sum / f64::from(n)) as f32);
                sampled.lows[i] = Some(lo);
                sampled.highs[i] = Some(hi);
            }
        }
        series.push(sampled);
    }
    Ok(ChartSamples { grid, series })
}
