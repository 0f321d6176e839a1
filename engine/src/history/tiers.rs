//! History on disk, the pure part: three tiers (raw samples, per-minute and per-hour
//! min/avg/max) kept as chunks of fixed time spans with implicit timestamps, each
//! compressed losslessly with pco; and the writer that turns samples into the chunks to
//! store. The server stores and reads the bytes (`server::persist::history`); nothing
//! here does I/O, so every rule is tested without a disk.
//!
//! Aggregates are derived from the tier below (a minute from its raw samples, an hour
//! from its minutes), so after a restart the writer continues a half-written minute or
//! hour exactly from what the lower tier already holds on disk.

use std::collections::HashMap;

use crate::series::{SeriesKey, UnixMillis};

/// A history tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Raw,
    Minute,
    Hour,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Raw, Tier::Minute, Tier::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Minute => "minute",
            Tier::Hour => "hour",
        }
    }

    /// The number stored for it.
    pub fn code(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 1,
            Tier::Hour => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Time between two of its points, given the raw collection step.
    pub fn step_ms(self, raw_step_ms: i64) -> i64 {
        match self {
            Tier::Raw => raw_step_ms,
            Tier::Minute => 60_000,
            Tier::Hour => 3_600_000,
        }
    }

    /// The span of one chunk: 10 minutes of raw samples, 6 hours of minutes, 7 days of
    /// hours (aligned, so a minute lies in one raw chunk and an hour in one minute chunk).
    pub fn chunk_ms(self) -> i64 {
        match self {
            Tier::Raw => 600_000,
            Tier::Minute => 6 * 3_600_000,
            Tier::Hour => 7 * 86_400_000,
        }
    }

    fn has_min_max(self) -> bool {
        self != Tier::Raw
    }
}

/// One point read back: a raw sample has `min == mean == max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredPoint {
    pub t: UnixMillis,
    pub min: f32,
    pub mean: f32,
    pub max: f32,
}

/// The values of one series in one tier over `[start_ms, start_ms + tier.chunk_ms())`,
/// one slot per step; `NaN` is a gap (nothing is ever interpolated).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub tier: Tier,
    pub start_ms: UnixMillis,
    pub step_ms: i64,
    pub means: Vec<f32>,
    /// Empty for the raw tier.
    pub mins: Vec<f32>,
    pub maxs: Vec<f32>,
}

/// The first byte of every stored chunk: its format.
const FORMAT: u8 = 1;

impl Chunk {
    pub fn new(tier: Tier, start_ms: UnixMillis, raw_step_ms: i64) -> Chunk {
        Chunk {
            tier,
            start_ms,
            step_ms: tier.step_ms(raw_step_ms),
            means: Vec::new(),
            mins: Vec::new(),
            maxs: Vec::new(),
        }
    }

    fn slots(&self) -> usize {
        (self.tier.chunk_ms() / self.step_ms) as usize
    }

    /// Points held (gaps included).
    pub fn len(&self) -> usize {
        self.means.len()
    }

    pub fn is_empty(&self) -> bool {
        self.means.is_empty()
    }

    /// Values that are not gaps.
    pub fn samples(&self) -> usize {
        self.means.iter().filter(|v| !v.is_nan()).count()
    }

    fn set(&mut self, index: usize, min: f32, mean: f32, max: f32) {
        if self.means.len() <= index {
            self.means.resize(index + 1, f32::NAN);
            if self.tier.has_min_max() {
                self.mins.resize(index + 1, f32::NAN);
                self.maxs.resize(index + 1, f32::NAN);
            }
        }
        self.means[index] = mean;
        if self.tier.has_min_max() {
            self.mins[index] = min;
            self.maxs[index] = max;
        }
    }

    fn index_of(&self, t: UnixMillis) -> Option<usize> {
        let offset = t - self.start_ms;
        (offset >= 0 && offset < self.tier.chunk_ms()).then(|| (offset / self.step_ms) as usize)
    }

    /// The aggregate of the held values in `[from, to)` (gaps skipped); `None` if none.
    fn aggregate(&self, from: UnixMillis, to: UnixMillis) -> Option<(f32, f32, f32)> {
        let first = ((from - self.start_ms).max(0) / self.step_ms) as usize;
        let last = (((to - self.start_ms) / self.step_ms) as usize).min(self.means.len());
        let (mut min, mut max, mut sum, mut count) = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0u32);
        for i in first..last {
            let mean = self.means[i];
            if mean.is_nan() {
                continue;
            }
            let (lo, hi) = if self.tier.has_min_max() {
                (self.mins[i], self.maxs[i])
            } else {
                (mean, mean)
            };
            min = min.min(lo);
            max = max.max(hi);
            sum += f64::from(mean);
            count += 1;
        }
        (count > 0).then(|| (min, (sum / f64::from(count)) as f32, max))
    }

    /// Its points in `[from, to)`, oldest first, gaps left out.
    pub fn points(
        &self,
        from: UnixMillis,
        to: UnixMillis,
    ) -> impl Iterator<Item = StoredPoint> + '_ {
        self.means.iter().enumerate().filter_map(move |(i, &mean)| {
            let t = self.start_ms + i as i64 * self.step_ms;
            if mean.is_nan() || t < from || t >= to {
                return None;
            }
            let (min, max) = if self.tier.has_min_max() {
                (self.mins[i], self.maxs[i])
            } else {
                (mean, mean)
            };
            Some(StoredPoint { t, min, mean, max })
        })
    }

    /// The stored form: a format byte, the point count, then each value column as a pco
    /// stream with its length.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&(self.means.len() as u32).to_le_bytes());
        let columns: &[&Vec<f32>] = if self.tier.has_min_max() {
            &[&self.means, &self.mins, &self.maxs]
        } else {
            &[&self.means]
        };
        for column in columns {
            let bytes = if column.is_empty() {
                Vec::new()
            } else {
                pco::standalone::simple_compress(column, &pco::ChunkConfig::default())
                    .expect("pco compresses any f32 slice")
            };
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads a stored chunk back; a damaged one is an error, never made-up values.
    pub fn decode(
        tier: Tier,
        start_ms: UnixMillis,
        raw_step_ms: i64,
        bytes: &[u8],
    ) -> Result<Chunk, String> {
        let mut chunk = Chunk::new(tier, start_ms, raw_step_ms);
        let (&format, mut rest) = bytes.split_first().ok_or("empty chunk")?;
        if format != FORMAT {
            return Err(format!("unknown chunk format {format}"));
        }
        let take_u32 = |rest: &mut &[u8]| -> Result<usize, String> {
            if rest.len() < 4 {
                return Err("truncated chunk".into());
            }
            let (head, tail) = rest.split_at(4);
            *rest = tail;
            Ok(u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize)
        };
        let n = take_u32(&mut rest)?;
        if n > chunk.slots() {
            return Err(format!(
                "chunk holds {n} points, more than its {} slots",
                chunk.slots()
            ));
        }
        let columns = if tier.has_min_max() { 3 } else { 1 };
        let mut decoded = Vec::with_capacity(columns);
        for _ in 0..columns {
            let len = take_u32(&mut rest)?;
            if rest.len() < len {
                return Err("truncated chunk".into());
            }
            let (column, tail) = rest.split_at(len);
            rest = tail;
            let values: Vec<f32> = if len == 0 {
                Vec::new()
            } else {
                pco::standalone::simple_decompress(column)
                    .map_err(|err| format!("damaged chunk: {err}"))?
            };
            if values.len() != n {
                return Err(format!(
                    "damaged chunk: {} values where {n} were written",
                    values.len()
                ));
            }
            decoded.push(values);
        }
        if !rest.is_empty() {
            return Err("damaged chunk: trailing bytes".into());
        }
        let mut columns = decoded.into_iter();
        chunk.means = columns.next().unwrap_or_default();
        chunk.mins = columns.next().unwrap_or_default();
        chunk.maxs = columns.next().unwrap_or_default();
        Ok(chunk)
    }
}

/// The open chunks of one series.
#[derive(Debug, Default)]
struct Open {
    chunks: [Option<Chunk>; 3],
    dirty: [bool; 3],
    /// The newest sample time appended.
    newest: Option<UnixMillis>,
}

/// What the writer hands over to be stored: a chunk of a series, finished or still open
/// (then written again as it fills).
#[derive(Debug, Clone, PartialEq)]
pub struct ToStore {
    pub key: SeriesKey,
    pub chunk: Chunk,
}

/// Turns samples into tier chunks. Owned by one thread; `load` gives back a chunk already
/// stored (after a restart) so it is continued, not overwritten.
#[derive(Debug)]
pub struct TierWriter {
    raw_step_ms: i64,
    series: HashMap<SeriesKey, Open>,
    /// Samples older than their series' open raw chunk (they stay in memory only).
    pub late: u64,
}

impl TierWriter {
    pub fn new(raw_step_ms: i64) -> TierWriter {
        TierWriter {
            raw_step_ms,
            series: HashMap::new(),
            late: 0,
        }
    }

    pub fn raw_step_ms(&self) -> i64 {
        self.raw_step_ms
    }

    /// Appends one sample (`None`: the series had a gap at `t`). Chunks that a newer one
    /// replaces as the open one are returned, to be stored a last time.
    pub fn append(
        &mut self,
        key: &SeriesKey,
        t: UnixMillis,
        value: Option<f32>,
        load: &mut dyn FnMut(&SeriesKey, Tier, UnixMillis) -> Option<Chunk>,
    ) -> Vec<ToStore> {
        let step = self.raw_step_ms;
        let t = t.div_euclid(step) * step;
        let value = value.filter(|v| v.is_finite());
        let open = self.series.entry(key.clone()).or_default();
        let mut finished = Vec::new();
        // Each tier's chunk containing `t`, opened (or loaded) as needed; a sample older
        // than the open raw chunk is not written (memory still has it).
        for tier in Tier::ALL {
            let start = t.div_euclid(tier.chunk_ms()) * tier.chunk_ms();
            let slot = &mut open.chunks[tier as usize];
            match slot {
                Some(chunk) if chunk.start_ms == start => {}
                Some(chunk) if chunk.start_ms > start => {
                    self.late += 1;
                    return finished;
                }
                _ => {
                    let fresh = load(key, tier, start)
                        .filter(|c| c.tier == tier && c.start_ms == start)
                        .unwrap_or_else(|| Chunk::new(tier, start, step));
                    if let Some(old) = slot.replace(fresh) {
                        finished.push(ToStore {
                            key: key.clone(),
                            chunk: old,
                        });
                    }
                }
            }
        }
        let [raw, minute, hour] = &mut open.chunks;
        let (raw, minute, hour) = (
            raw.as_mut().expect("opened above"),
            minute.as_mut().expect("opened above"),
            hour.as_mut().expect("opened above"),
        );
        let index = raw.index_of(t).expect("t lies in its chunk");
        match value {
            Some(v) => raw.set(index, v, v, v),
            None if raw.means.get(index).is_some_and(|m| !m.is_nan()) => {}
            None => raw.set(index, f32::NAN, f32::NAN, f32::NAN),
        }
        let minute_start = t.div_euclid(60_000) * 60_000;
        if let (Some((lo, mean, hi)), Some(i)) = (
            raw.aggregate(minute_start, minute_start + 60_000),
            minute.index_of(minute_start),
        ) {
            minute.set(i, lo, mean, hi);
        }
        let hour_start = t.div_euclid(3_600_000) * 3_600_000;
        if let (Some((lo, mean, hi)), Some(i)) = (
            minute.aggregate(hour_start, hour_start + 3_600_000),
            hour.index_of(hour_start),
        ) {
            hour.set(i, lo, mean, hi);
        }
        open.dirty = [true; 3];
        open.newest = Some(open.newest.map_or(t, |n| n.max(t)));
        finished
    }

    /// The open chunks changed since they were last handed over (with those the caller
    /// could not store, given back through [`TierWriter::unwritten`]).
    pub fn dirty(&mut self) -> Vec<ToStore> {
        let mut out = Vec::new();
        for (key, open) in &mut self.series {
            for tier in Tier::ALL {
                let i = tier as usize;
                if std::mem::take(&mut open.dirty[i]) {
                    if let Some(chunk) = &open.chunks[i] {
                        out.push(ToStore {
                            key: key.clone(),
                            chunk: chunk.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Chunks that could not be stored: their open versions are handed over again next
    /// time (finished ones the caller keeps and retries itself).
    pub fn unwritten(&mut self, chunks: &[ToStore]) {
        for item in chunks {
            if let Some(open) = self.series.get_mut(&item.key) {
                let i = item.chunk.tier as usize;
                if open.chunks[i]
                    .as_ref()
                    .is_some_and(|c| c.start_ms == item.chunk.start_ms)
                {
                    open.dirty[i] = true;
                }
            }
        }
    }

    /// Series with open chunks.
    pub fn series(&self) -> usize {
        self.series.len()
    }
}

/// Reads `[from, to)` of one tier from `chunks` (any order, possibly overlapping the
/// range only in part), oldest first.
pub fn points_in(chunks: &[Chunk], from: UnixMillis, to: UnixMillis) -> Vec<StoredPoint> {
    let mut sorted: Vec<&Chunk> = chunks.iter().collect();
    sorted.sort_by_key(|c| c.start_ms);
    sorted.iter().flat_map(|c| c.points(from, to)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key() -> SeriesKey {
        SeriesKey::new("cpu", "utilization")
    }

    /// Writes `samples` through a writer whose store is a map, as the server's is a table.
    fn write_all(samples: &[(i64, Option<f32>)]) -> BTreeMap<(Tier, i64), Chunk> {
        let mut stored: BTreeMap<(Tier, i64), Chunk> = BTreeMap::new();
        let mut writer = TierWriter::new(1_000);
        for (n, &(t, v)) in samples.iter().enumerate() {
            let mut load =
                |_: &SeriesKey, tier: Tier, start: i64| stored.get(&(tier, start)).cloned();
            let mut finished = writer.append(&key(), t, v, &mut load);
            // Stored now and then, as the server flushes.
            if n % 37 == 0 || n + 1 == samples.len() {
                finished.extend(writer.dirty());
            }
            for item in finished {
                // Every chunk goes through its stored form.
                let bytes = item.chunk.encode();
                let back =
                    Chunk::decode(item.chunk.tier, item.chunk.start_ms, 1_000, &bytes).unwrap();
                assert_eq!(back.means.len(), item.chunk.means.len());
                stored.insert((item.chunk.tier, item.chunk.start_ms), back);
            }
        }
        stored
    }

    fn tier_points(stored: &BTreeMap<(Tier, i64), Chunk>, tier: Tier) -> Vec<StoredPoint> {
        let chunks: Vec<Chunk> = stored
            .iter()
            .filter(|((t, _), _)| *t == tier)
            .map(|(_, c)| c.clone())
            .collect();
        points_in(&chunks, i64::MIN, i64::MAX)
    }

    #[test]
    fn a_restart_continues_the_stored_chunks_and_keeps_the_gap() {
        let mut stored: BTreeMap<(Tier, i64), Chunk> = BTreeMap::new();
        let run = |samples: std::ops::Range<i64>, stored: &mut BTreeMap<(Tier, i64), Chunk>| {
            let mut writer = TierWriter::new(1_000);
            for s in samples {
                let mut load =
                    |_: &SeriesKey, tier: Tier, start: i64| stored.get(&(tier, start)).cloned();
                writer.append(&key(), s * 1_000, Some(s as f32), &mut load);
            }
            for item in writer.dirty() {
                stored.insert((item.chunk.tier, item.chunk.start_ms), item.chunk);
            }
        };
        run(0..30, &mut stored);
        // Down for 10 s, then back within the same minute and raw chunk.
        run(40..50, &mut stored);
        let raw = tier_points(&stored, Tier::Raw);
        let times: Vec<i64> = raw.iter().map(|p| p.t / 1_000).collect();
        assert_eq!(
            times,
            (0..30).chain(40..50).collect::<Vec<_>>(),
            "both runs, with the gap"
        );
        let minute = tier_points(&stored, Tier::Minute);
        assert_eq!(minute.len(), 1);
        assert_eq!(
            (minute[0].min, minute[0].max),
            (0.0, 49.0),
            "the minute spans both runs"
        );
    }

    #[test]
    fn damaged_chunks_are_refused() {
        let mut chunk = Chunk::new(Tier::Minute, 0, 1_000);
        chunk.set(3, 1.0, 2.0, 3.0);
        let bytes = chunk.encode();
        let back = Chunk::decode(Tier::Minute, 0, 1_000, &bytes).unwrap();
        assert_eq!(back.encode(), bytes, "gaps (NaN) round-trip too");
        assert_eq!(back.points(0, i64::MAX).count(), 1);
        assert!(Chunk::decode(Tier::Minute, 0, 1_000, &bytes[..bytes.len() - 3]).is_err());
        assert!(Chunk::decode(Tier::Minute, 0, 1_000, &[]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(Chunk::decode(Tier::Minute, 0, 1_000, &wrong).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// What goes in comes out of the raw tier exactly; every minute and hour holds the
        /// min and max of its samples and their mean; nothing is invented for a gap.
        #[test]
        fn tiers_match_an_in_memory_oracle(
            values in proptest::collection::vec(proptest::option::weighted(0.8, -1e6f32..1e6), 1..900),
            start in 0i64..10_000,
            stride in 1i64..9,
        ) {
            let samples: Vec<(i64, Option<f32>)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| ((start + i as i64 * stride) * 1_000, *v))
                .collect();
            let stored = write_all(&samples);
            let raw = tier_points(&stored, Tier::Raw);
            let expected: Vec<(i64, f32)> = samples.iter().filter_map(|(t, v)| Some((*t, (*v)?))).collect();
            let got: Vec<(i64, f32)> = raw.iter().map(|p| (p.t, p.mean)).collect();
            prop_assert_eq!(got, expected.clone());
            for (tier, width) in [(Tier::Minute, 60_000i64), (Tier::Hour, 3_600_000)] {
                let mut oracle: BTreeMap<i64, (f32, f32)> = BTreeMap::new();
                for (t, v) in &expected {
                    let b = t.div_euclid(width) * width;
                    let e = oracle.entry(b).or_insert((f32::INFINITY, f32::NEG_INFINITY));
                    e.0 = e.0.min(*v);
                    e.1 = e.1.max(*v);
                }
                let points = tier_points(&stored, tier);
                let got: BTreeMap<i64, (f32, f32)> = points.iter().map(|p| (p.t, (p.min, p.max))).collect();
                prop_assert_eq!(got, oracle);
                for p in &points {
                    prop_assert!(p.min <= p.mean && p.mean <= p.max);
                }
            }
        }
    }
}
