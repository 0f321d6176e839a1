//! Metric history: fixed-capacity rings per series, a raw tier and a per-minute
//! min/avg/max tier, and the min/max-preserving downsampling that charts and the backtest
//! read through.
//!
//! It owns every stored sample of the process, so its shape is dictated by two budgets:
//! memory must be flat after construction (rings are allocated once per series, and the
//! number of series is capped), and a raw sample must cost at most 4 bytes (values are
//! `f32` with implicit timestamps: ring start + index × step). A missing sample is `NaN`,
//! an explicit gap; nothing here ever interpolates or writes a zero for a gap.
//!
//! Pure code: no clock, no I/O, no sysinfo/tokio, so the browser (wasm32) can downsample
//! the same way the server does.

use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::push::PushedSample;
use crate::series::{SeriesInfo, SeriesKey, Tick, UnixMillis};

/// Ring sizes, chosen once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryConfig {
    /// Collection step of the raw tier, in ms.
    pub step_ms: i64,
    /// Raw slots per series (3,600 × 1 s = 1 h).
    pub raw_slots: usize,
    /// Width of one aggregate bucket, in ms; a multiple of `step_ms`.
    pub bucket_ms: i64,
    /// Aggregate buckets per series (1,440 × 1 min = 24 h).
    pub buckets: usize,
    /// Upper bound on registered series, so that total memory is bounded too.
    pub max_series: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            step_ms: 1_000,
            raw_slots: 3_600,
            bucket_ms: 60_000,
            buckets: 1_440,
            max_series: 1_024,
        }
    }
}

impl HistoryConfig {
    pub fn validate(&self) -> Result<(), HistoryError> {
        let bad = |why: &str| Err(HistoryError::InvalidConfig(why.to_owned()));
        if self.step_ms <= 0 {
            return bad("step_ms must be positive");
        }
        if self.bucket_ms <= 0 || self.bucket_ms % self.step_ms != 0 {
            return bad("bucket_ms must be a positive multiple of step_ms");
        }
        if self.raw_slots == 0 || self.buckets == 0 {
            return bad("raw_slots and buckets must be at least 1");
        }
        if self.max_series == 0 {
            return bad("max_series must be at least 1");
        }
        Ok(())
    }

    /// Bytes of ring storage one series allocates under this configuration.
    pub fn bytes_per_series(&self) -> usize {
        self.raw_slots * size_of::<f32>() + self.buckets * size_of::<Aggregate>()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("invalid history configuration: {0}")]
    InvalidConfig(String),
    #[error("series limit reached: at most {max} series can be stored")]
    TooManySeries { max: usize },
    #[error("unknown series id {0}")]
    UnknownSeries(u32),
}

/// Index of a series inside one [`History`]; stable for the life of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesId(pub u32);

/// What [`SeriesHistory::append`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at the newest slot (skipped slots before it became gaps).
    Stored,
    /// A late sample filled a gap inside the retained window.
    Filled,
    /// The slot already holds a value: the first value of a slot wins, so that the
    /// aggregates stay exact without keeping per-slot counts.
    Duplicate,
    /// Older than the raw retention; dropped.
    TooOld,
}

/// Which tier a query was answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Raw,
    Aggregate,
}

/// One downsampled bucket. `t` is the bucket start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub t: UnixMillis,
    pub min: f32,
    pub max: f32,
    pub mean: f32,
}

/// The answer to a range query: bucket `i` starts at `origin + i × width`; `None` means
/// every source slot in it was a gap (or outside retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downsampled {
    pub tier: Tier,
    pub origin: UnixMillis,
    pub width: i64,
    pub points: Vec<Option<Point>>,
}

/// min/avg/max of one aggregate bucket; all NaN is a gap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Aggregate {
    min: f32,
    max: f32,
    mean: f32,
}

impl Aggregate {
    const GAP: Aggregate = Aggregate {
        min: f32::NAN,
        max: f32::NAN,
        mean: f32::NAN,
    };
}

/// Running min/max/sum, used for the open aggregate bucket and for query buckets.
#[derive(Debug, Clone, Copy)]
struct Fold {
    min: f32,
    max: f32,
    sum: f64,
    count: u32,
}

impl Fold {
    const EMPTY: Fold = Fold {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        sum: 0.0,
        count: 0,
    };

    fn add(&mut self, min: f32, max: f32, mean: f32) {
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        self.sum += f64::from(mean);
        self.count += 1;
    }

    fn mean(&self) -> f32 {
        (self.sum / f64::from(self.count)) as f32
    }

    fn aggregate(&self) -> Aggregate {
        if self.count == 0 {
            Aggregate::GAP
        } else {
            Aggregate {
                min: self.min,
                max: self.max,
                mean: self.mean(),
            }
        }
    }

    fn point(&self, t: UnixMillis) -> Option<Point> {
        (self.count > 0).then(|| Point {
            t,
            min: self.min,
            max: self.max,
            mean: self.mean(),
        })
    }
}

fn align_down(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

fn align_up(t: i64, step: i64) -> i64 {
    align_down(t.saturating_add(step - 1), step)
}

/// A fixed-capacity ring of slots on a fixed time step; slot times are implicit.
#[derive(Debug, Clone)]
struct Ring<T> {
    slots: Box<[T]>,
    gap: T,
    step: i64,
    /// Time of the newest slot (aligned to `step`); meaningless while `filled == 0`.
    newest: i64,
    /// Index of the newest slot.
    head: usize,
    /// Slots holding a time (value or gap), ≤ capacity.
    filled: usize,
}

impl<T: Copy> Ring<T> {
    fn new(capacity: usize, step: i64, gap: T) -> Self {
        Self {
            slots: vec![gap; capacity].into_boxed_slice(),
            gap,
            step,
            newest: 0,
            head: 0,
            filled: 0,
        }
    }

    fn cap(&self) -> usize {
        self.slots.len()
    }

    fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Time of the oldest held slot.
    fn oldest(&self) -> i64 {
        self.newest - (self.filled as i64 - 1) * self.step
    }

    /// Earliest time this ring can hold given its newest slot.
    fn window_start(&self) -> i64 {
        self.newest - (self.cap() as i64 - 1) * self.step
    }

    fn index_of(&self, t: i64) -> Option<usize> {
        if self.filled == 0 || t > self.newest || t < self.oldest() {
            return None;
        }
        let back = ((self.newest - t) / self.step) as usize;
        Some((self.head + self.cap() - back) % self.cap())
    }

    /// Moves the newest slot forward to `t` (> newest, aligned), leaving gaps in between.
    fn advance(&mut self, t: i64, value: T) {
        let cap = self.cap();
        if self.filled == 0 {
            self.head = 0;
        } else {
            let ahead = (t - self.newest) / self.step;
            if ahead >= cap as i64 {
                self.slots.fill(self.gap);
                self.filled = cap;
            } else {
                let ahead = ahead as usize;
                for _ in 1..ahead {
                    self.head = (self.head + 1) % cap;
                    self.slots[self.head] = self.gap;
                }
                self.head = (self.head + 1) % cap;
                self.filled = (self.filled + ahead - 1).min(cap);
            }
        }
        self.slots[self.head] = value;
        self.newest = t;
        self.filled = (self.filled + 1).min(cap);
    }

    /// Index of the slot for `t` ≤ newest, growing the held span backwards when the ring
    /// has not wrapped yet: slots it never wrote still hold gaps, so a late sample from
    /// before the first one is as valid as any other inside the window.
    fn reach(&mut self, t: i64) -> Option<usize> {
        if self.filled > 0 && t <= self.newest && t >= self.window_start() {
            let span = ((self.newest - t) / self.step) as usize + 1;
            self.filled = self.filled.max(span);
        }
        self.index_of(t)
    }

    /// Writes `value` at `t`: advancing if `t` is newer, overwriting if it is in the window.
    fn put(&mut self, t: i64, value: T) {
        if self.filled == 0 || t > self.newest {
            self.advance(t, value);
        } else if let Some(i) = self.reach(t) {
            self.slots[i] = value;
        }
    }

    /// Held slots with times in `[from, to)`, oldest first.
    fn range(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, T)> + '_ {
        let (lo, hi) = if self.filled == 0 {
            (1, 0)
        } else {
            (
                align_up(from, self.step).max(self.oldest()),
                align_down(to.saturating_sub(1), self.step).min(self.newest),
            )
        };
        let count = if hi >= lo {
            ((hi - lo) / self.step + 1) as usize
        } else {
            0
        };
        let first = if count > 0 {
            self.index_of(lo).unwrap_or(0)
        } else {
            0
        };
        (0..count).map(move |k| {
            let t = lo + k as i64 * self.step;
            (t, self.slots[(first + k) % self.cap()])
        })
    }

    fn bytes(&self) -> usize {
        self.slots.len() * size_of::<T>()
    }
}

/// The rings of one series.
#[derive(Debug, Clone)]
pub struct SeriesHistory {
    raw: Ring<f32>,
    agg: Ring<Aggregate>,
    bucket_ms: i64,
    /// The newest aggregate bucket is still receiving samples; its fold lives here and
    /// its current min/avg/max is mirrored into `agg` on every append.
    open_bucket: i64,
    open: Fold,
}

impl SeriesHistory {
    /// Allocates both rings; nothing grows after this.
    pub fn new(config: &HistoryConfig) -> Self {
        Self {
            raw: Ring::new(config.raw_slots, config.step_ms, f32::NAN),
            agg: Ring::new(config.buckets, config.bucket_ms, Aggregate::GAP),
            bucket_ms: config.bucket_ms,
            open_bucket: i64::MIN,
            open: Fold::EMPTY,
        }
    }

    /// Records `value` (None = gap) for the slot containing `t`. Non-finite values are
    /// stored as gaps.
    pub fn append(&mut self, t: UnixMillis, value: Option<f32>) -> Appended {
        let value = value.filter(|v| v.is_finite());
        let slot = align_down(t, self.raw.step);
        let bucket = align_down(slot, self.bucket_ms);
        if self.raw.is_empty() || slot > self.raw.newest {
            self.raw.advance(slot, value.unwrap_or(f32::NAN));
            if bucket != self.open_bucket {
                self.open_bucket = bucket;
                self.open = Fold::EMPTY;
            }
            if let Some(v) = value {
                self.open.add(v, v, v);
            }
            self.agg.put(bucket, self.open.aggregate());
            return Appended::Stored;
        }
        // Decided before `reach` may grow the span: an unwrapped ring still holds
        // everything ever appended.
        let never_wrapped = self.raw.filled < self.raw.cap();
        let Some(i) = self.raw.reach(slot) else {
            return Appended::TooOld;
        };
        if !self.raw.slots[i].is_nan() {
            return Appended::Duplicate;
        }
        let Some(v) = value else {
            return Appended::Filled;
        };
        self.raw.slots[i] = v;
        if bucket == self.open_bucket {
            self.open.add(v, v, v);
            self.agg.put(bucket, self.open.aggregate());
        } else if never_wrapped || bucket >= self.raw.oldest() {
            // The whole bucket is still in the raw tier, so it can be recomputed exactly.
            // Otherwise its older part is gone and the late sample lives in raw only.
            let mut fold = Fold::EMPTY;
            for (_, x) in self.raw.range(bucket, bucket + self.bucket_ms) {
                if !x.is_nan() {
                    fold.add(x, x, x);
                }
            }
            self.agg.put(bucket, fold.aggregate());
        }
        Appended::Filled
    }

    /// Puts back a per-minute aggregate read from disk (at start-up, before raw samples
    /// are appended): `t` is the bucket's start.
    pub fn restore_bucket(&mut self, t: UnixMillis, min: f32, mean: f32, max: f32) {
        if [min, mean, max].iter().all(|v| v.is_finite()) {
            self.agg
                .put(align_down(t, self.bucket_ms), Aggregate { min, max, mean });
        }
    }

    /// The newest slot's time and value (`None` value = gap).
    pub fn latest(&self) -> Option<(UnixMillis, Option<f32>)> {
        (!self.raw.is_empty()).then(|| {
            let v = self.raw.slots[self.raw.head];
            (self.raw.newest, (!v.is_nan()).then_some(v))
        })
    }

    /// The last `n` raw slots, oldest first, gaps as NaN (fewer if less are held).
    pub fn last_raw(&self, n: usize) -> Vec<f32> {
        let n = n.min(self.raw.filled);
        if n == 0 {
            return Vec::new();
        }
        let cap = self.raw.cap();
        let start = (self.raw.head + cap + 1 - n) % cap;
        (0..n).map(|k| self.raw.slots[(start + k) % cap]).collect()
    }

    /// Downsamples `[from, to)` into at most `max_points` buckets of equal width aligned
    /// to multiples of the width (so buckets do not shift as time advances), keeping each
    /// bucket's min and max so spikes survive. Reads the raw tier unless `from` lies
    /// more than one aggregate bucket before the raw retention, then the aggregate tier
    /// (whose mean is the mean of bucket means). Only the part of the range the chosen
    /// tier retains gets buckets.
    pub fn range(&self, from: UnixMillis, to: UnixMillis, max_points: usize) -> Downsampled {
        let use_raw = self.raw.is_empty() || from > self.raw.window_start() - self.bucket_ms;
        if use_raw {
            let (lo, hi) = self.clamp(
                from,
                to,
                self.raw.window_start(),
                self.raw.newest,
                self.raw.step,
            );
            downsample(
                Tier::Raw,
                self.raw.step,
                lo,
                hi,
                max_points,
                |f, t, sink| {
                    for (ts, v) in self.raw.range(f, t) {
                        if !v.is_nan() {
                            sink(ts, v, v, v);
                        }
                    }
                },
            )
        } else {
            let (lo, hi) = self.clamp(
                from,
                to,
                self.agg.window_start(),
                self.agg.newest,
                self.bucket_ms,
            );
            downsample(
                Tier::Aggregate,
                self.bucket_ms,
                lo,
                hi,
                max_points,
                |f, t, sink| {
                    for (ts, a) in self.agg.range(f, t) {
                        if !a.mean.is_nan() {
                            sink(ts, a.min, a.max, a.mean);
                        }
                    }
                },
            )
        }
    }

    /// Every kept point of `[from, to)`, oldest first, as `(t, min, max, mean)`: minute
    /// aggregates where the raw samples are gone, raw samples where they are kept (a
    /// report reads a whole day this way, its last minutes included).
    pub fn visit(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        mut sink: impl FnMut(i64, f32, f32, f32),
    ) {
        if self.raw.is_empty() {
            return;
        }
        let raw_start = self.raw.window_start();
        // Aggregates that end before the raw samples begin: no point counted twice.
        for (ts, a) in self
            .agg
            .range(from, (raw_start - self.bucket_ms + 1).min(to))
        {
            if !a.mean.is_nan() {
                sink(ts, a.min, a.max, a.mean);
            }
        }
        for (ts, v) in self.raw.range(from.max(raw_start), to) {
            if !v.is_nan() {
                sink(ts, v, v, v);
            }
        }
    }

    fn clamp(&self, from: i64, to: i64, start: i64, newest: i64, step: i64) -> (i64, i64) {
        if self.raw.is_empty() {
            return (from, from);
        }
        (from.max(start), to.min(newest + step))
    }

    /// Bytes allocated by this series: ring capacity × element size, plus the header.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.raw.bytes() + self.agg.bytes()
    }
}

/// Buckets `[from, to)` of a tier with resolution `step`; `visit` feeds every non-gap
/// source entry `(t, min, max, mean)` in a sub-range to the sink.
fn downsample(
    tier: Tier,
    step: i64,
    from: i64,
    to: i64,
    max_points: usize,
    visit: impl FnOnce(i64, i64, &mut dyn FnMut(i64, f32, f32, f32)),
) -> Downsampled {
    let max_points = max_points.max(1) as i64;
    if to <= from {
        return Downsampled {
            tier,
            origin: align_down(from, step),
            width: step,
            points: Vec::new(),
        };
    }
    let sources = (align_up(to, step) - align_down(from, step)) / step;
    let base = ((sources + max_points - 1) / max_points).max(1);
    // Aligning buckets to multiples of the width keeps them still as time advances, but
    // can add a partial bucket at each end: widen a little until it fits, and give up on
    // alignment once the width reaches the whole span (a boundary such as 0 may always
    // fall inside it).
    let buckets_for = |w: i64| (align_up(to, w) - align_down(from, w)) / w;
    let mut k = base;
    let (origin, width, count) = loop {
        let w = k * step;
        let n = buckets_for(w);
        if n <= max_points {
            break (align_down(from, w), w, n);
        }
        if k >= sources {
            let w = base * step;
            let n = (sources + base - 1) / base;
            break (align_down(from, step), w, n);
        }
        k += 1;
    };
    let mut folds = vec![Fold::EMPTY; count as usize];
    visit(from, to, &mut |t, min, max, mean| {
        folds[((t - origin) / width) as usize].add(min, max, mean);
    });
    let points = folds
        .iter()
        .enumerate()
        .map(|(i, f)| f.point(origin + i as i64 * width))
        .collect();
    Downsampled {
        tier,
        origin,
        width,
        points,
    }
}

/// Every stored series of the process, addressed by [`SeriesId`] or [`SeriesKey`].
#[derive(Debug, Clone)]
pub struct History {
    config: HistoryConfig,
    infos: Vec<SeriesInfo>,
    data: Vec<SeriesHistory>,
    by_key: HashMap<SeriesKey, SeriesId>,
    /// Per series list of a source's ticks: its index → history id (`None` where the
    /// series cap refused it). A source shares one list until it discovers something, so a
    /// pointer comparison finds the map; a few recent lists are kept, one or two per
    /// source.
    tick_maps: Vec<TickMap>,
}

/// A source's series list and, per index, its history id (`None` where the series cap
/// refused it).
type TickMap = (Arc<[SeriesInfo]>, Vec<Option<SeriesId>>);

/// How many series lists [`History::append_tick`] keeps index maps for.
const TICK_MAPS: usize = 64;

/// The time grid a chart's series are sampled on: `points` slots of `step_ms` from
/// `start_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub start_ms: UnixMillis,
    pub step_ms: i64,
    pub points: usize,
}

impl Grid {
    /// The grid of `span_ms` whose last slot holds `end_ms`.
    pub fn ending_at(end_ms: UnixMillis, span_ms: i64, step_ms: i64) -> Grid {
        let step_ms = step_ms.max(1);
        let points = (span_ms / step_ms).max(1) as usize;
        let end_aligned = end_ms - end_ms.rem_euclid(step_ms);
        Grid {
            start_ms: end_aligned - (points as i64 - 1) * step_ms,
            step_ms,
            points,
        }
    }

    /// The end of the last slot (exclusive).
    pub fn end_ms(&self) -> UnixMillis {
        self.start_ms + self.points as i64 * self.step_ms
    }
}

/// One series on a [`Grid`]: a slot without data is `None` (a gap, never a made-up value).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sampled {
    pub means: Vec<Option<f32>>,
    pub lows: Vec<Option<f32>>,
    pub highs: Vec<Option<f32>>,
}

/// What a chart asks for: `keys` (the first one decides where the grid ends: at its
/// latest sample, else `now`) over the last `span_ms`, per raw step or (`per_minute`) per
/// aggregate bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRequest {
    pub keys: Vec<SeriesKey>,
    pub span_ms: i64,
    pub per_minute: bool,
}

/// The answer to a [`ChartRequest`]: one [`Sampled`] per key, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSamples {
    pub grid: Grid,
    pub series: Vec<Sampled>,
}

impl History {
    pub fn new(config: HistoryConfig) -> Result<Self, HistoryError> {
        config.validate()?;
        Ok(Self {
            config,
            infos: Vec::new(),
            data: Vec::new(),
            by_key: HashMap::new(),
            tick_maps: Vec::new(),
        })
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Adds a series (allocating its rings) or returns the id it already has.
    pub fn register(&mut self, info: SeriesInfo) -> Result<SeriesId, HistoryError> {
        if let Some(&id) = self.by_key.get(&info.key) {
            return Ok(id);
        }
        if self.infos.len() >= self.config.max_series {
            return Err(HistoryError::TooManySeries {
                max: self.config.max_series,
            });
        }
        let id = SeriesId(self.infos.len() as u32);
        self.by_key.insert(info.key.clone(), id);
        self.infos.push(info);
        self.data.push(SeriesHistory::new(&self.config));
        Ok(id)
    }

    /// Puts back what the disk held of a series at start-up: its minutes (oldest first),
    /// then its raw samples (oldest first). The live samples that follow leave a gap for
    /// the time perfpilot was down.
    pub fn restore(
        &mut self,
        info: SeriesInfo,
        minutes: impl IntoIterator<Item = (UnixMillis, f32, f32, f32)>,
        raw: impl IntoIterator<Item = (UnixMillis, f32)>,
    ) -> Result<SeriesId, HistoryError> {
        let id = self.register(info)?;
        let series = &mut self.data[id.0 as usize];
        for (t, min, mean, max) in minutes {
            series.restore_bucket(t, min, mean, max);
        }
        for (t, v) in raw {
            series.append(t, Some(v));
        }
        Ok(id)
    }

    pub fn id(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.by_key.get(key).copied()
    }

    pub fn series(&self) -> &[SeriesInfo] {
        &self.infos
    }

    pub fn info(&self, id: SeriesId) -> Option<&SeriesInfo> {
        self.infos.get(id.0 as usize)
    }

    pub fn get(&self, id: SeriesId) -> Option<&SeriesHistory> {
        self.data.get(id.0 as usize)
    }

    pub fn append(
        &mut self,
        id: SeriesId,
        t: UnixMillis,
        value: Option<f32>,
    ) -> Result<Appended, HistoryError> {
        let series = self
            .data
            .get_mut(id.0 as usize)
            .ok_or(HistoryError::UnknownSeries(id.0))?;
        Ok(series.append(t, value))
    }

    /// Appends every value of a collector tick, registering series the collector
    /// discovered since the last tick. The index map is rebuilt (by key) only when the
    /// tick carries a different series list than the previous one, e.g. after the
    /// collector grew or was restarted. Returns how many values were dropped because the
    /// series cap refused their series.
    pub fn append_tick(&mut self, tick: &Tick) -> usize {
        let position = self
            .tick_maps
            .iter()
            .position(|(list, _)| Arc::ptr_eq(list, &tick.series));
        let index = match position {
            Some(i) => i,
            None => {
                let map = tick
                    .series
                    .iter()
                    .map(|info| self.register(info.clone()).ok())
                    .collect();
                if self.tick_maps.len() == TICK_MAPS {
                    self.tick_maps.remove(0);
                }
                self.tick_maps.push((Arc::clone(&tick.series), map));
                self.tick_maps.len() - 1
            }
        };
        let map = &self.tick_maps[index].1;
        let mut dropped = 0;
        for (i, value) in tick.values.iter().enumerate() {
            match map.get(i).copied().flatten() {
                Some(id) => {
                    self.data[id.0 as usize].append(tick.at, *value);
                }
                None => dropped += 1,
            }
        }
        dropped
    }

    /// Stores a validated push body all-or-nothing: if its new series would exceed the
    /// series cap, nothing is registered or appended. Returns what happened to each
    /// sample, in order (late, duplicate and too-old samples are reported, not errors).
    pub fn append_pushed(
        &mut self,
        samples: &[PushedSample],
    ) -> Result<Vec<Appended>, HistoryError> {
        let new: HashSet<SeriesKey> = samples
            .iter()
            .map(PushedSample::series_key)
            .filter(|k| !self.by_key.contains_key(k))
            .collect();
        if self.infos.len() + new.len() > self.config.max_series {
            return Err(HistoryError::TooManySeries {
                max: self.config.max_series,
            });
        }
        // Oldest first, so a batch sent newest-first fills slots instead of racing ahead
        // and then having to fill backwards.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.sort_by_key(|&i| samples[i].timestamp);
        let mut outcomes = vec![Appended::TooOld; samples.len()];
        for i in order {
            let sample = &samples[i];
            let id = self.register(sample.series_info())?;
            let value = Some(sample.value as f32);
            outcomes[i] = self.data[id.0 as usize].append(sample.timestamp, value);
        }
        Ok(outcomes)
    }

    pub fn range(
        &self,
        id: SeriesId,
        from: UnixMillis,
        to: UnixMillis,
        max_points: usize,
    ) -> Option<Downsampled> {
        self.get(id).map(|s| s.range(from, to, max_points))
    }

    /// The unit a series was registered with.
    pub fn unit(&self, key: &SeriesKey) -> Option<&str> {
        self.info(self.id(key)?).map(|info| info.unit.as_str())
    }

    /// Samples `request.keys` on one grid for a chart; a series that does not exist yet
    /// is all gaps.
    pub fn chart(&self, request: &ChartRequest, now: UnixMillis) -> ChartSamples {
        let step_ms = if request.per_minute {
            self.config.bucket_ms
        } else {
            self.config.step_ms
        };
        let end = request
            .keys
            .first()
            .and_then(|key| self.get(self.id(key)?)?.latest())
            .map(|(t, _)| t)
            .unwrap_or(now);
        let grid = Grid::ending_at(end, request.span_ms, step_ms);
        let series = request
            .keys
            .iter()
            .map(|key| self.sample(self.id(key), grid))
            .collect();
        ChartSamples { grid, series }
    }

    fn sample(&self, series: Option<SeriesId>, grid: Grid) -> Sampled {
        let mut sampled = Sampled {
            means: vec![None; grid.points],
            lows: vec![None; grid.points],
            highs: vec![None; grid.points],
        };
        let Some(down) =
            series.and_then(|id| self.range(id, grid.start_ms, grid.end_ms(), grid.points))
        else {
            return sampled;
        };
        for (i, point) in down.points.iter().enumerate() {
            let Some(point) = point else { continue };
            let slot =
                (down.origin + i as i64 * down.width - grid.start_ms).div_euclid(grid.step_ms);
            let Some(slot) = usize::try_from(slot).ok().filter(|&s| s < grid.points) else {
                continue;
            };
            sampled.means[slot] = Some(point.mean);
            sampled.lows[slot] = Some(point.min);
            sampled.highs[slot] = Some(point.max);
        }
        sampled
    }

    /// Bytes allocated by all rings (capacity × element size) plus per-series headers
    /// and the key index.
    pub fn memory_bytes(&self) -> usize {
        let rings: usize = self.data.iter().map(SeriesHistory::memory_bytes).sum();
        let infos = self.infos.capacity() * size_of::<SeriesInfo>()
            + self
                .infos
                .iter()
                .map(|i| {
                    2 * (i.key.resource.capacity() + i.key.metric.capacity())
                        + i.resource_name.capacity()
                        + i.unit.capacity()
                })
                .sum::<usize>();
        let index = self.by_key.capacity() * (size_of::<SeriesKey>() + size_of::<SeriesId>());
        size_of::<Self>()
            + rings
            + infos
            + index
            + self
                .tick_maps
                .iter()
                .map(|(_, map)| map.capacity() * size_of::<Option<SeriesId>>())
                .sum::<usize>()
    }
}

#[cfg(feature = "runtime")]
pub mod tiers;

#[cfg(test)]
mod tests;
