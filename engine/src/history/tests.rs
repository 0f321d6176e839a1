use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::model::{MetricKind, ResourceType};

fn small(raw_slots: usize, bucket_steps: i64, buckets: usize) -> HistoryConfig {
    HistoryConfig {
        step_ms: 1_000,
        raw_slots,
        bucket_ms: 1_000 * bucket_steps,
        buckets,
        max_series: 4,
    }
}

fn info(resource: &str, metric: &str) -> SeriesInfo {
    SeriesInfo::new(
        SeriesKey::new(resource, metric),
        ResourceType::Cpu,
        resource,
        Some(MetricKind::Utilization),
        "%",
    )
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn wraps_around_keeping_the_newest_slots() {
    let mut s = SeriesHistory::new(&small(5, 60, 2));
    for i in 0..12 {
        assert_eq!(s.append(i * 1_000, Some(i as f32)), Appended::Stored);
    }
    assert_eq!(s.last_raw(5), vec![7.0, 8.0, 9.0, 10.0, 11.0]);
    assert_eq!(s.last_raw(2), vec![10.0, 11.0]);
    assert_eq!(s.last_raw(100).len(), 5);
    assert_eq!(s.latest(), Some((11_000, Some(11.0))));
    let r = s.range(0, 12_000, 100);
    assert_eq!(r.tier, Tier::Raw);
    let got: Vec<f32> = r.points.iter().flatten().map(|p| p.max).collect();
    assert_eq!(got, vec![7.0, 8.0, 9.0, 10.0, 11.0]);
}

#[test]
fn skipped_ticks_become_gaps_not_zeros() {
    let mut s = SeriesHistory::new(&small(10, 60, 2));
    s.append(0, Some(1.0));
    s.append(3_500, Some(4.0)); // lands in slot 3000; 1000 and 2000 were skipped
    s.append(4_000, None);
    let raw = s.last_raw(10);
    assert_eq!(raw.len(), 5);
    assert_eq!(raw[0], 1.0);
    assert!(raw[1].is_nan() && raw[2].is_nan() && raw[4].is_nan());
    assert_eq!(raw[3], 4.0);
    assert_eq!(s.latest(), Some((4_000, None)));
    let r = s.range(0, 5_000, 10);
    assert_eq!(r.width, 1_000);
    assert_eq!(
        r.points.iter().map(Option::is_some).collect::<Vec<_>>(),
        vec![true, false, false, true, false]
    );
}

#[test]
fn a_jump_longer_than_the_ring_leaves_only_gaps_behind() {
    let mut s = SeriesHistory::new(&small(4, 2, 3));
    s.append(0, Some(1.0));
    s.append(1_000, Some(2.0));
    s.append(1_000_000, Some(3.0));
    let raw = s.last_raw(4);
    assert!(raw[..3].iter().all(|v| v.is_nan()));
    assert_eq!(raw[3], 3.0);
    // The old samples are gone from both tiers.
    assert!(s.range(0, 10_000, 10).points.iter().all(Option::is_none));
}

#[test]
fn non_finite_values_are_gaps() {
    let mut s = SeriesHistory::new(&small(4, 2, 3));
    s.append(0, Some(f32::INFINITY));
    s.append(1_000, Some(f32::NAN));
    assert!(s.last_raw(2).iter().all(|v| v.is_nan()));
}

#[test]
fn late_samples_fill_gaps_once_and_old_ones_are_dropped() {
    let mut s = SeriesHistory::new(&small(5, 2, 10));
    s.append(0, Some(1.0));
    s.append(4_000, Some(5.0));
    assert_eq!(s.append(2_000, Some(3.0)), Appended::Filled);
    assert_eq!(s.append(2_000, Some(9.0)), Appended::Duplicate);
    assert_eq!(s.append(4_000, Some(9.0)), Appended::Duplicate);
    assert_eq!(s.append(-1_000, Some(9.0)), Appended::TooOld);
    // Before the first sample but inside the window of a ring that has not wrapped.
    let mut young = SeriesHistory::new(&small(5, 2, 10));
    young.append(10_000, Some(1.0));
    assert_eq!(young.append(7_000, Some(7.0)), Appended::Filled);
    assert_eq!(young.append(5_000, Some(7.0)), Appended::TooOld);
    assert_eq!(
        bits(&young.last_raw(5)),
        bits(&[7.0, f32::NAN, f32::NAN, 1.0])
    );
    let agg = young.range(-100_000, 12_000, 100);
    assert_eq!(agg.tier, Tier::Aggregate);
    let filled: Vec<(i64, f32)> = agg.points.iter().flatten().map(|p| (p.t, p.mean)).collect();
    assert_eq!(filled, vec![(6_000, 7.0), (10_000, 1.0)]);
    assert_eq!(
        bits(&s.last_raw(5)),
        bits(&[1.0, f32::NAN, 3.0, f32::NAN, 5.0])
    );
    // The closed bucket [2000, 4000) was recomputed from raw.
    s.append(10_000, Some(0.0)); // push everything into the aggregate-only zone
    let agg = s.range(-100_000, 12_000, 100);
    assert_eq!(agg.tier, Tier::Aggregate);
    let p = agg.points.iter().flatten().find(|p| p.t == 2_000).unwrap();
    assert_eq!((p.min, p.max, p.mean), (3.0, 3.0, 3.0));
}

#[test]
fn aggregate_tier_keeps_min_mean_max_per_bucket() {
    let mut s = SeriesHistory::new(&small(60, 60, 24));
    for i in 0..180 {
        s.append(i * 1_000, Some(i as f32 % 60.0));
    }
    // A range far beyond the 60 s raw retention falls back to the minute tier.
    let r = s.range(0, 180_000, 10);
    assert_eq!(r.tier, Tier::Aggregate);
    assert_eq!(r.width, 60_000);
    let pts: Vec<Point> = r.points.iter().flatten().copied().collect();
    assert_eq!(pts.len(), 3);
    for p in pts {
        assert_eq!((p.min, p.max, p.mean), (0.0, 59.0, 29.5));
    }
}

#[test]
fn downsampling_keeps_a_single_spike() {
    let mut s = SeriesHistory::new(&HistoryConfig::default());
    for i in 0..3_600 {
        let v = if i == 1_234 { 99.0 } else { 10.0 };
        s.append(1_700_000_000_000 + i * 1_000, Some(v));
    }
    let r = s.range(1_700_000_000_000, 1_700_003_600_000, 100);
    assert_eq!(r.tier, Tier::Raw);
    assert!(r.points.len() <= 100);
    let maxes: Vec<f32> = r.points.iter().flatten().map(|p| p.max).collect();
    assert_eq!(maxes.iter().filter(|&&m| m == 99.0).count(), 1);
    assert!(r.points.iter().flatten().all(|p| p.min == 10.0));
}

#[test]
fn memory_is_flat_and_four_bytes_per_raw_sample() {
    let config = HistoryConfig::default();
    let mut s = SeriesHistory::new(&config);
    let before = s.memory_bytes();
    for i in 0..200_000 {
        s.append(i * 1_000, Some(1.0));
    }
    assert_eq!(s.memory_bytes(), before);
    assert_eq!(s.raw.bytes() / config.raw_slots, 4);
    assert_eq!(s.raw.bytes() + s.agg.bytes(), config.bytes_per_series());
}

#[test]
fn history_registers_once_and_caps_series() {
    let mut h = History::new(small(10, 2, 5)).unwrap();
    let a = h.register(info("cpu", "utilization")).unwrap();
    assert_eq!(h.register(info("cpu", "utilization")).unwrap(), a);
    for i in 0..3 {
        h.register(info(&format!("cpu:core{i}"), "utilization"))
            .unwrap();
    }
    assert_eq!(
        h.register(info("memory", "used_pct")),
        Err(HistoryError::TooManySeries { max: 4 })
    );
    assert_eq!(
        h.append(SeriesId(99), 0, Some(1.0)),
        Err(HistoryError::UnknownSeries(99))
    );
    assert_eq!(h.append(a, 0, Some(1.0)), Ok(Appended::Stored));
    assert_eq!(h.get(a).unwrap().last_raw(1), vec![1.0]);
}

#[test]
fn history_appends_ticks_and_learns_new_series() {
    let mut h = History::new(small(10, 2, 5)).unwrap();
    let series: Arc<[SeriesInfo]> = vec![info("cpu", "utilization")].into();
    let tick = Tick {
        at: 0,
        series,
        values: vec![Some(5.0)],
        top_processes: None,
    };
    assert_eq!(h.append_tick(&tick), 0);
    let grown: Arc<[SeriesInfo]> =
        vec![info("cpu", "utilization"), info("disk:/", "used_pct")].into();
    let tick = Tick {
        at: 1_000,
        series: grown,
        values: vec![Some(6.0), None],
        top_processes: None,
    };
    assert_eq!(h.append_tick(&tick), 0);
    let cpu = h.id(&SeriesKey::new("cpu", "utilization")).unwrap();
    let disk = h.id(&SeriesKey::new("disk:/", "used_pct")).unwrap();
    assert_eq!(h.get(cpu).unwrap().last_raw(2), vec![5.0, 6.0]);
    assert_eq!(h.get(disk).unwrap().latest(), Some((1_000, None)));
    // A restarted collector may list the same series in another order.
    let reordered: Arc<[SeriesInfo]> =
        vec![info("disk:/", "used_pct"), info("cpu", "utilization")].into();
    let tick = Tick {
        at: 2_000,
        series: reordered,
        values: vec![Some(40.0), Some(7.0)],
        top_processes: None,
    };
    assert_eq!(h.append_tick(&tick), 0);
    assert_eq!(h.get(cpu).unwrap().last_raw(3), vec![5.0, 6.0, 7.0]);
    assert_eq!(h.get(disk).unwrap().latest(), Some((2_000, Some(40.0))));
    assert!(h.memory_bytes() >= 2 * h.config().bytes_per_series());
}

#[test]
fn pushes_are_stored_all_or_nothing() {
    use crate::push::parse_push;
    let now = 1_700_000_000_000;
    let mut h = History::new(small(10, 2, 5)).unwrap();
    h.register(info("cpu", "utilization")).unwrap();
    h.register(info("memory", "used_pct")).unwrap();
    let ok = parse_push(
        br#"{"samples":[
            {"resource":"custom:1","metric":"queue","value":3},
            {"resource":"custom:1","metric":"queue","value":4,"timestamp":1699999999000},
            {"resource":"custom:2","metric":"lag","value":0.5}
        ]}"#,
        now,
    )
    .unwrap();
    // Applied oldest first: the sample stamped a second earlier is stored, not "late".
    assert_eq!(
        h.append_pushed(&ok).unwrap(),
        vec![Appended::Stored, Appended::Stored, Appended::Stored]
    );
    let queue = h.id(&SeriesKey::new("custom:1", "queue")).unwrap();
    assert_eq!(h.get(queue).unwrap().last_raw(2), vec![4.0, 3.0]);
    assert_eq!(
        h.info(queue).unwrap().resource_type,
        ResourceType::Custom(1)
    );
    // Two more new series would exceed the cap of 4: nothing of this body is stored.
    let too_many = parse_push(
        br#"{"samples":[
            {"resource":"custom:1","metric":"queue","value":9,"timestamp":1700000001000},
            {"resource":"custom:3","metric":"a","value":1},
            {"resource":"custom:4","metric":"b","value":1}
        ]}"#,
        now,
    )
    .unwrap();
    assert_eq!(
        h.append_pushed(&too_many),
        Err(HistoryError::TooManySeries { max: 4 })
    );
    assert_eq!(h.series().len(), 4);
    assert_eq!(h.get(queue).unwrap().latest(), Some((now, Some(3.0))));
}

#[test]
fn invalid_configs_are_refused() {
    let mut c = HistoryConfig {
        bucket_ms: 1_500,
        ..HistoryConfig::default()
    };
    assert!(History::new(c).is_err());
    c.bucket_ms = 60_000;
    c.raw_slots = 0;
    assert!(History::new(c).is_err());
}

/// The brute-force model: every accepted sample by slot, with the same acceptance rules
/// (first value of a slot wins, late samples only inside raw retention).
#[derive(Default)]
struct Oracle {
    values: BTreeMap<i64, f32>,
    /// Earliest slot the ring has held (value or gap).
    first: Option<i64>,
    newest: i64,
}

impl Oracle {
    fn append(&mut self, cap: usize, t: i64, v: Option<f32>) {
        let slot = t.div_euclid(1_000) * 1_000;
        match self.first {
            None => {
                self.first = Some(slot);
                self.newest = slot;
            }
            Some(_) if slot > self.newest => self.newest = slot,
            Some(first) => {
                if slot < self.newest - (cap as i64 - 1) * 1_000 {
                    return;
                }
                self.first = Some(first.min(slot));
                if self.values.contains_key(&slot) {
                    return;
                }
            }
        }
        if let Some(v) = v {
            self.values.entry(slot).or_insert(v);
        }
    }
}

fn ops() -> impl Strategy<Value = Vec<(i64, Option<f32>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                6 => 1i64..=1,
                2 => 2i64..=4,
                1 => -6i64..=0,
                1 => 5i64..=40,
            ],
            prop::option::weighted(0.8, -1_000.0f32..1_000.0),
        ),
        1..120,
    )
}

proptest! {
    #[test]
    fn raw_tier_matches_brute_force(
        cap in 1usize..20,
        ops in ops(),
        q_from in -10i64..200,
        q_len in 0i64..60,
        max_points in 1usize..12,
        offset_ms in 0i64..1_000,
    ) {
        let config = small(cap, 3, 50);
        let mut s = SeriesHistory::new(&config);
        let mut oracle = Oracle::default();
        let mut t = 0i64;
        for (dt, v) in ops {
            t += dt * 1_000;
            let at = t + offset_ms;
            s.append(at, v);
            oracle.append(cap, at, v);
        }
        let newest = oracle.newest;
        let window = newest - (cap as i64 - 1) * 1_000;
        let filled = ((newest - oracle.first.unwrap()) / 1_000 + 1).min(cap as i64);

        // last_raw against the model.
        let expect: Vec<f32> = (0..filled)
            .rev()
            .map(|k| oracle.values.get(&(newest - k * 1_000)).copied().unwrap_or(f32::NAN))
            .collect();
        prop_assert_eq!(bits(&s.last_raw(cap)), bits(&expect));

        // Queries that stay on the raw tier.
        let from = window - 2_000 + q_from * 100;
        let to = from + q_len * 1_000;
        let r = s.range(from, to, max_points);
        prop_assert!(from <= window - config.bucket_ms || r.tier == Tier::Raw);
        if r.tier == Tier::Raw {
            prop_assert!(r.points.len() <= max_points);
            prop_assert!(r.width % 1_000 == 0 && r.width > 0);
            prop_assert_eq!(r.origin % 1_000, 0);
            let lo = from.max(window);
            let hi = to.min(newest + 1_000);
            for (i, p) in r.points.iter().enumerate() {
                let b0 = r.origin + i as i64 * r.width;
                let inside: Vec<f32> = oracle
                    .values
                    .range(b0.max(lo)..(b0 + r.width).min(hi).max(b0.max(lo)))
                    .map(|(_, v)| *v)
                    .collect();
                match p {
                    None => prop_assert!(inside.is_empty(), "bucket {} lost {:?}", b0, inside),
                    Some(p) => {
                        prop_assert_eq!(p.t, b0);
                        let min = inside.iter().copied().fold(f32::INFINITY, f32::min);
                        let max = inside.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mean = inside.iter().map(|&v| f64::from(v)).sum::<f64>() / inside.len() as f64;
                        prop_assert_eq!(p.min, min);
                        prop_assert_eq!(p.max, max);
                        prop_assert!((f64::from(p.mean) - mean).abs() < 1e-3);
                    }
                }
            }
            // Every retained sample in range is inside some returned bucket.
            let covered = r.points.len() as i64 * r.width;
            for (&ts, _) in oracle.values.range(lo..hi.max(lo)) {
                prop_assert!(ts >= r.origin && ts < r.origin + covered);
            }
        }
    }

    #[test]
    fn aggregate_tier_matches_brute_force(
        raw_cap in 1usize..10,
        bucket_steps in 1i64..6,
        buckets in 1usize..12,
        steps in prop::collection::vec((1i64..4, prop::option::weighted(0.8, -100.0f32..100.0)), 1..150),
        max_points in 1usize..8,
    ) {
        let config = small(raw_cap, bucket_steps, buckets);
        let bucket_ms = config.bucket_ms;
        let mut s = SeriesHistory::new(&config);
        let mut all: BTreeMap<i64, f32> = BTreeMap::new();
        let mut t = 0;
        for (dt, v) in steps {
            t += dt * 1_000;
            s.append(t, v);
            if let Some(v) = v { all.insert(t, v); }
        }
        // Per-bucket min/mean/max of every sample ever appended, as the model of the tier.
        let mut per_bucket: BTreeMap<i64, (f32, f32, f32)> = BTreeMap::new();
        let newest_bucket = t.div_euclid(bucket_ms) * bucket_ms;
        let window = newest_bucket - (buckets as i64 - 1) * bucket_ms;
        for b in (window..=newest_bucket).step_by(bucket_ms as usize) {
            let xs: Vec<f32> = all.range(b..b + bucket_ms).map(|(_, v)| *v).collect();
            if !xs.is_empty() {
                let mean = (xs.iter().map(|&v| f64::from(v)).sum::<f64>() / xs.len() as f64) as f32;
                per_bucket.insert(b, (
                    xs.iter().copied().fold(f32::INFINITY, f32::min),
                    mean,
                    xs.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                ));
            }
        }
        let from = -1_000_000;
        let r = s.range(from, t + 1_000, max_points);
        let raw_window = t - (raw_cap as i64 - 1) * 1_000;
        prop_assert!(raw_window - bucket_ms >= from);
        prop_assert_eq!(r.tier, Tier::Aggregate);
        prop_assert!(r.points.len() <= max_points);
        prop_assert_eq!(r.width % bucket_ms, 0);
        for (i, p) in r.points.iter().enumerate() {
            let b0 = r.origin + i as i64 * r.width;
            let inside: Vec<(f32, f32, f32)> = per_bucket.range(b0..b0 + r.width).map(|(_, v)| *v).collect();
            match p {
                None => prop_assert!(inside.is_empty()),
                Some(p) => {
                    prop_assert_eq!(p.min, inside.iter().map(|x| x.0).fold(f32::INFINITY, f32::min));
                    prop_assert_eq!(p.max, inside.iter().map(|x| x.2).fold(f32::NEG_INFINITY, f32::max));
                    let mean = inside.iter().map(|x| f64::from(x.1)).sum::<f64>() / inside.len() as f64;
                    prop_assert!((f64::from(p.mean) - mean).abs() < 1e-3);
                }
            }
        }
        let covered = r.points.len() as i64 * r.width;
        for &b in per_bucket.keys() {
            prop_assert!(b >= r.origin && b < r.origin + covered);
        }
    }
}
