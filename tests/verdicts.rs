//! Verification verdicts on real services under background CPU load (issue 23).
//!
//! Real changes to a real Redis 7, HAProxy 2.6 and PostgreSQL 15 (Debian's, throwaway
//! instances), measured the way perfpilot's sources measure — the hit ratio from `INFO`
//! counter deltas, client-timed `PING`s, client-timed requests through the balancer,
//! client-timed queries — and judged by `engine::verdict::judge` with the optimizer's rules:
//! `VerdictRules::for_kind` of the metric's kind, and after every change the settle period
//! of the source kind's settle period plus one sample interval (what `settle_for` adds) is sampled
//! and discarded. Each change is judged on the window just before it against the window
//! after its settle period:
//!
//! - a change that helps must be judged *improved* (anything else rolls it back: a false
//!   rollback); for Redis the `PING` guardrail — the robust level (median) of its latest
//!   window above max(3 × its baseline median, baseline + 1 ms) for 3 ticks in a row
//!   (`Sustained::new(3)`) — must not trip either;
//! - a change that hurts must be judged *worse* (improved or no change keeps it: a missed
//!   rollback);
//! - a change that does nothing should be judged *no change* or *inconclusive*; a rank
//!   test at α = 0.05 on a noisy series calls a few no-ops a change by design (harmless:
//!   the no-op is kept or rolled back), so at most one in ten may be.
//!
//! Scenarios, run side by side, each on its own instances:
//!
//! - **Redis `maxmemory`**, allkeys-lru, a cache-aside load (GET; SET on a miss) of 8,000
//!   GETs/s over 5,000 keys of 1 kB: at 4mb about half the keys fit, at 64mb all of them.
//!   Helps: 4mb → 64mb; hurts: 64mb → 4mb; nothing: `CONFIG SET maxmemory 4mb` on a
//!   second instance already at 4mb. Sampled at 10 Hz.
//! - **HAProxy weights**: a 100 ms and a 5 ms backend at weights 10:10 behind roundrobin,
//!   eight paced clients (at most one request per 50 ms each). The metric is the clients'
//!   mean latency over the last 2 s, as HAProxy's own `rtime` averages its last requests.
//!   Helps: slow → 0 over the runtime API; hurts: slow → 10 again; nothing: fast → 10 on
//!   a second balancer. Sampled at 10 Hz.
//! - **PostgreSQL `work_mem`**: `ALTER SYSTEM SET` + `pg_reload_conf()` as the actuator
//!   does, 64kB ↔ 64MB, for a query sorting 100,000 integers (it spills to disk at 64kB).
//!   A probe is a fresh `psql` session timing the query 4 times with `\timing`; the first
//!   (cold catalog caches) is dropped and the sample is the median of the other three.
//!   Helps, hurts and nothing (64kB → 64kB) on one cluster. Sampled at 4 Hz.
//!
//! Trials alternate a change and its reverse so every trial starts from the same state;
//! a trial's baseline is the window just before its change (the previous trial's verify
//! window), as the optimizer's baseline is the history just before it acts.
//!
//! Environment: `PERFPILOT_TRIALS` (trials per kind of change, default 4: about 100 s in
//! the suite, where it runs alone), `PERFPILOT_BUSY` (busy-loop threads in this process as
//! background CPU load, default 0), `PERFPILOT_SCENARIOS` (a comma-separated subset of
//! `redis,haproxy,postgres`; default `redis,haproxy`, PostgreSQL's CPU-bound probe being
//! the noisiest on a shared 2-core machine). The benchmark in BENCHMARKS.md ("Verification verdicts (issue 23)") is this
//! test with `PERFPILOT_SCENARIOS=redis,haproxy,postgres`, `PERFPILOT_TRIALS=50` and
//! `PERFPILOT_BUSY=0` or `4`, run with `--nocapture`: it prints the table and one Markdown
//! row per scenario.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ScopedJoinHandle};
use std::time::{Duration, Instant};

use engine::model::{Comparator, MetricKind};
use engine::verdict::{judge, robust_level, Sustained, Verdict, VerdictRules};
use tests::{BackendMode, Haproxy, Postgres, Redis, TestBackend, PG_BIN};

const SCENARIOS: [&str; 3] = ["redis", "haproxy", "postgres"];

#[test]
fn verdicts_keep_what_helps_and_roll_back_what_hurts_under_load() {
    let trials = env_count("PERFPILOT_TRIALS", 4).max(1);
    let busy_threads = env_count("PERFPILOT_BUSY", 0);
    let names: Vec<String> = match std::env::var("PERFPILOT_SCENARIOS") {
        Ok(list) => list
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
        // PostgreSQL's probe times a CPU-bound sort, the noisiest of the three on a shared
        // 2-core machine: in the benchmark runs, not in every CI run.
        Err(_) => ["redis", "haproxy"].map(str::to_owned).to_vec(),
    };
    for name in &names {
        assert!(
            SCENARIOS.contains(&name.as_str()),
            "PERFPILOT_SCENARIOS: unknown scenario {name:?} (known: {})",
            SCENARIOS.join(", ")
        );
    }

    let busy = Busy::start(busy_threads);
    let load_before = load_average();
    let started = Instant::now();
    let mut tallies: Vec<Tally> = std::thread::scope(|s| {
        let running: Vec<_> = names
            .iter()
            .map(|name| s.spawn(move || scenario(name, trials)))
            .collect();
        running.into_iter().map(joined).collect()
    });
    for tally in &mut tallies {
        tally.no_op_changes_within_bounds();
    }
    let took = started.elapsed();
    let load_after = load_average();
    drop(busy);

    print_summary(
        &tallies,
        trials,
        busy_threads,
        [load_before.as_str(), load_after.as_str()],
        took,
    );
    let failures: Vec<&str> = tallies
        .iter()
        .flat_map(|tally| tally.failures.iter().map(String::as_str))
        .collect();
    let count = failures.len();
    let list = failures.join("\n");
    assert!(
        failures.is_empty(),
        "{count} verdicts were not the expected ones:\n{list}"
    );
}

fn scenario(name: &str, trials: usize) -> Tally {
    match name {
        "redis" => redis_maxmemory(trials),
        "haproxy" => haproxy_weights(trials),
        "postgres" => postgres_work_mem(trials),
        other => panic!("unknown scenario {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// The trial runner: one service, its samplers, and a cycle of changes.
// ---------------------------------------------------------------------------------------

/// What a change is meant to do, and so which verdict is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Helps,
    Hurts,
    Nothing,
}

impl Effect {
    const ALL: [Effect; 3] = [Effect::Helps, Effect::Hurts, Effect::Nothing];

    fn word(self) -> &'static str {
        match self {
            Effect::Helps => "helps",
            Effect::Hurts => "hurts",
            Effect::Nothing => "nothing",
        }
    }
}

/// A sampler: one value per tick, `None` when there is none (a gap).
type Sampler<'a> = Box<dyn FnMut() -> Option<f64> + 'a>;

/// One service under test: how it is measured.
struct Rig<'a> {
    /// The source kind whose settle period applies (`redis`, `haproxy`, `postgres`).
    source: &'static str,
    kind: MetricKind,
    /// The target's direction: `Ge` when higher is better.
    better: Comparator,
    tick: Duration,
    /// Samples per window (baseline and verify).
    window_len: usize,
    /// The judged metric.
    sample: Sampler<'a>,
    /// A guardrail series watched every tick after a change.
    guard: Option<Sampler<'a>>,
}

impl Rig<'_> {
    /// Waits for the next tick and takes one sample of the metric and of the guardrail.
    fn next_sample(&mut self, ticker: &mut Ticker) -> (Option<f64>, Option<f64>) {
        ticker.wait();
        let guard = self.guard.as_mut().and_then(|guard| guard());
        let metric = (self.sample)();
        (metric, guard)
    }
}

/// One change of a trial cycle.
struct Step<'a> {
    effect: Effect,
    change: Box<dyn FnMut() + 'a>,
}

impl<'a> Step<'a> {
    fn new(effect: Effect, change: impl FnMut() + 'a) -> Step<'a> {
        Step {
            effect,
            change: Box::new(change),
        }
    }
}

/// A fixed-rate schedule; a late tick restarts it rather than bursting to catch up.
struct Ticker {
    every: Duration,
    next: Instant,
}

impl Ticker {
    fn new(every: Duration) -> Ticker {
        Ticker {
            every,
            next: Instant::now(),
        }
    }

    fn wait(&mut self) {
        let now = Instant::now();
        if let Some(rest) = self.next.checked_duration_since(now) {
            std::thread::sleep(rest);
            self.next += self.every;
        } else {
            self.next = now + self.every;
        }
    }
}

#[derive(Default)]
struct Window {
    metric: Vec<Option<f64>>,
    guard: Vec<Option<f64>>,
}

impl Window {
    fn push(&mut self, (metric, guard): (Option<f64>, Option<f64>)) {
        self.metric.push(metric);
        self.guard.push(guard);
    }
}

/// The robust guardrail: the median of the latest window over max(3 × the baseline
/// median, baseline + 1 ms), held for 3 consecutive ticks.
struct GuardWatch {
    limit: Option<f64>,
    series: Vec<Option<f64>>,
    window: usize,
    sustained: Sustained,
    /// The level at which it tripped.
    trip: Option<f64>,
}

impl GuardWatch {
    fn new(baseline: &[Option<f64>], window: usize) -> GuardWatch {
        GuardWatch {
            limit: robust_level(baseline).map(|b| (3.0 * b).max(b + 1.0)),
            series: baseline.to_vec(),
            window,
            sustained: Sustained::new(3),
            trip: None,
        }
    }

    /// One tick; a tick without a sample is not observed (it neither confirms nor clears).
    fn observe(&mut self, sample: Option<f64>) {
        let (Some(limit), Some(value)) = (self.limit, sample) else {
            return;
        };
        self.series.push(Some(value));
        let latest = &self.series[self.series.len().saturating_sub(self.window)..];
        let Some(level) = robust_level(latest) else {
            return;
        };
        let tripped = self.sustained.observe(level > limit);
        if tripped && self.trip.is_none() {
            self.trip = Some(level);
        }
    }
}

/// Runs `rounds` of the cycle `steps` on `rig` and judges every change.
fn run(scenario: &'static str, rig: &mut Rig<'_>, steps: &mut [Step<'_>], rounds: usize) -> Tally {
    let settle = connectors::sources::kind_named(rig.source)
        .expect("a configured kind")
        .settle
        .secs;
    let rules = VerdictRules {
        settle_secs: settle,
        ..VerdictRules::for_kind(rig.kind)
    };
    let tick_ms = (rig.tick.as_millis() as u64).max(1);
    // The source's lag plus one sample interval, as `settle_for` counts it.
    let settle_ticks = (u64::from(settle) * 1000).div_ceil(tick_ms) + 1;
    eprintln!(
        "{scenario}: settle {settle} s + one {tick_ms} ms tick after each change, windows of {} samples, α = {}, min change {} % and {}",
        rig.window_len,
        rules.alpha,
        rules.min_effect * 100.0,
        rules.abs_floor
    );
    let mut tally = Tally::new(scenario);
    let mut ticker = Ticker::new(rig.tick);
    // A rate needs two readings: the first tick only primes the counters.
    rig.next_sample(&mut ticker);
    let mut baseline = Window::default();
    for _ in 0..rig.window_len {
        baseline.push(rig.next_sample(&mut ticker));
    }
    for round in 1..=rounds {
        for step in steps.iter_mut() {
            (step.change)();
            let mut guard = GuardWatch::new(&baseline.guard, rig.window_len);
            for _ in 0..settle_ticks {
                let (_, sample) = rig.next_sample(&mut ticker);
                guard.observe(sample);
            }
            let mut verify = Window::default();
            for _ in 0..rig.window_len {
                let sample = rig.next_sample(&mut ticker);
                guard.observe(sample.1);
                verify.push(sample);
            }
            let (verdict, evidence) = judge(
                baseline.metric.as_slice(),
                verify.metric.as_slice(),
                rig.better,
                &rules,
            );
            tally.record(step.effect, round, verdict, guard.trip, &evidence.reason);
            baseline = verify;
        }
    }
    tally
}

// ---------------------------------------------------------------------------------------
// Counting.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Row {
    trials: usize,
    improved: usize,
    no_change: usize,
    worse: usize,
    inconclusive: usize,
    guard_trips: usize,
    correct: usize,
    /// A helping change judged worse or no change, or tripping the guardrail.
    false_rollbacks: usize,
    /// A hurting change judged improved or no change (and no guardrail trip).
    missed_rollbacks: usize,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.trials += other.trials;
        self.improved += other.improved;
        self.no_change += other.no_change;
        self.worse += other.worse;
        self.inconclusive += other.inconclusive;
        self.guard_trips += other.guard_trips;
        self.correct += other.correct;
        self.false_rollbacks += other.false_rollbacks;
        self.missed_rollbacks += other.missed_rollbacks;
    }
}

/// One scenario's counts, a row per [`Effect`], and the wrong verdicts in words.
struct Tally {
    scenario: &'static str,
    rows: [Row; 3],
    failures: Vec<String>,
}

impl Tally {
    fn new(scenario: &'static str) -> Tally {
        Tally {
            scenario,
            rows: [Row::default(); 3],
            failures: Vec::new(),
        }
    }

    fn record(
        &mut self,
        effect: Effect,
        round: usize,
        verdict: Verdict,
        trip: Option<f64>,
        reason: &str,
    ) {
        let row = &mut self.rows[effect as usize];
        row.trials += 1;
        match verdict {
            Verdict::Improved => row.improved += 1,
            Verdict::NoChange => row.no_change += 1,
            Verdict::Worse => row.worse += 1,
            Verdict::Inconclusive => row.inconclusive += 1,
        }
        if trip.is_some() {
            row.guard_trips += 1;
        }
        let correct = match effect {
            Effect::Helps => {
                if trip.is_some() || matches!(verdict, Verdict::Worse | Verdict::NoChange) {
                    row.false_rollbacks += 1;
                }
                verdict == Verdict::Improved && trip.is_none()
            }
            Effect::Hurts => {
                if trip.is_none() && matches!(verdict, Verdict::Improved | Verdict::NoChange) {
                    row.missed_rollbacks += 1;
                }
                verdict == Verdict::Worse
            }
            Effect::Nothing => {
                matches!(verdict, Verdict::NoChange | Verdict::Inconclusive) && trip.is_none()
            }
        };
        if correct {
            row.correct += 1;
        }
        let word = effect.word();
        let note = trip
            .map(|level| format!("; guardrail tripped at a median of {level:.2}"))
            .unwrap_or_default();
        let line = format!("{} {word} #{round}: {reason}{note}", self.scenario);
        if correct {
            eprintln!("  {line}");
        } else if effect == Effect::Nothing {
            // A rank test at α = 0.05 on a noisy, drifting series calls a few no-ops a
            // change by design (a no-op rolled back or kept harms nothing); counted and
            // bounded for the whole scenario (`no_op_changes_within_bounds`), not a failure.
            eprintln!("~ {line}");
        } else {
            eprintln!("✗ {line}");
            self.failures.push(line);
        }
    }

    /// No-ops judged a change, within what the test allows: at most one in ten (and one in
    /// any run under ten).
    fn no_op_changes_within_bounds(&mut self) {
        let nothing = self.rows[Effect::Nothing as usize];
        let changed = nothing.improved + nothing.worse + nothing.guard_trips;
        let allowed = (nothing.trials / 10).max(1);
        if changed > allowed {
            self.failures.push(format!(
                "{}: {changed} of {} no-op changes were judged a change (at most {allowed})",
                self.scenario, nothing.trials
            ));
        }
    }

    fn merge(mut self, other: Tally) -> Tally {
        for (mine, theirs) in self.rows.iter_mut().zip(other.rows.iter()) {
            mine.add(theirs);
        }
        self.failures.extend(other.failures);
        self
    }
}

const WIDTHS: [usize; 11] = [18, 8, 6, 8, 9, 6, 12, 11, 7, 15, 16];

fn table_line(cells: [String; 11]) -> String {
    cells
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(i, (cell, width))| {
            if i < 2 {
                format!("{cell:<width$}")
            } else {
                format!("{cell:>width$}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn per_100(count: usize, trials: usize) -> String {
    if trials == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.0}", count as f64 * 100.0 / trials as f64)
    }
}

fn print_summary(tallies: &[Tally], trials: usize, busy: usize, load: [&str; 2], took: Duration) {
    let [before, after] = load;
    let secs = took.as_secs();
    eprintln!(
        "\nverification verdicts: {trials} trials per change, PERFPILOT_BUSY={busy}, load average {before} before and {after} after, {secs} s"
    );
    eprintln!(
        "{}",
        table_line(
            [
                "scenario",
                "change",
                "trials",
                "improved",
                "no change",
                "worse",
                "inconclusive",
                "guard trips",
                "correct",
                "false rollbacks",
                "missed rollbacks",
            ]
            .map(String::from)
        )
    );
    for tally in tallies {
        for effect in Effect::ALL {
            let row = &tally.rows[effect as usize];
            if row.trials == 0 {
                continue;
            }
            eprintln!(
                "{}",
                table_line([
                    tally.scenario.to_owned(),
                    effect.word().to_owned(),
                    row.trials.to_string(),
                    row.improved.to_string(),
                    row.no_change.to_string(),
                    row.worse.to_string(),
                    row.inconclusive.to_string(),
                    row.guard_trips.to_string(),
                    row.correct.to_string(),
                    row.false_rollbacks.to_string(),
                    row.missed_rollbacks.to_string(),
                ])
            );
        }
    }
    // Rows for the table in BENCHMARKS.md.
    let load_1min = after.split_whitespace().next().unwrap_or("?");
    let minutes = took.as_secs_f64() / 60.0;
    eprintln!();
    for tally in tallies {
        let [helps, hurts, nothing] = tally.rows;
        let changed = nothing.improved + nothing.worse;
        let inconclusive = helps.inconclusive + hurts.inconclusive + nothing.inconclusive;
        eprintln!(
            "| {} | PERFPILOT_BUSY={busy} | {load_1min} | {} ({}/{}) | {} ({}/{}) | {changed}/{} | {inconclusive} | {minutes:.1} min |",
            tally.scenario,
            per_100(helps.false_rollbacks, helps.trials),
            helps.false_rollbacks,
            helps.trials,
            per_100(hurts.missed_rollbacks, hurts.trials),
            hurts.missed_rollbacks,
            hurts.trials,
            nothing.trials,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Background load and the environment.
// ---------------------------------------------------------------------------------------

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {value:?}")),
        Err(_) => default,
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Threads spinning on the CPU until dropped: each adds one to the load average.
struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Busy {
    fn start(threads: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || spin(&stop, i as u64))
            })
            .collect();
        Busy { stop, threads }
    }
}

fn spin(stop: &AtomicBool, seed: u64) {
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = std::hint::black_box(
                x.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A scoped thread's result; its panic, if it panicked, goes on in this thread.
fn joined<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

// ---------------------------------------------------------------------------------------
// Redis maxmemory.
// ---------------------------------------------------------------------------------------

const SMALL_MAXMEMORY: &str = "4mb";
const LARGE_MAXMEMORY: &str = "64mb";
/// The load's key space and value size: ≈ 5.5 MB of data, about half of it fits in 4mb.
const KEYS: u64 = 5_000;
const VALUE_LEN: usize = 1_000;
const GETS_PER_S: usize = 8_000;
const BATCH_MS: u64 = 10;

fn redis_maxmemory(trials: usize) -> Tally {
    const SCENARIO: &str = "redis maxmemory";
    std::thread::scope(|s| {
        let nothing = s.spawn(|| {
            let cache = Cache::start();
            let mut rig = cache.rig();
            let mut steps = [Step::new(Effect::Nothing, || {
                cache.set_maxmemory(SMALL_MAXMEMORY)
            })];
            run(SCENARIO, &mut rig, &mut steps, trials)
        });
        let cache = Cache::start();
        let mut rig = cache.rig();
        let mut steps = [
            Step::new(Effect::Helps, || cache.set_maxmemory(LARGE_MAXMEMORY)),
            Step::new(Effect::Hurts, || cache.set_maxmemory(SMALL_MAXMEMORY)),
        ];
        let pairs = run(SCENARIO, &mut rig, &mut steps, trials);
        pairs.merge(joined(nothing))
    })
}

/// A Redis at the small `maxmemory` with its load running and the cache warm.
struct Cache {
    _load: CacheLoad,
    redis: Redis,
}

impl Cache {
    fn start() -> Cache {
        let redis = Redis::start(
            None,
            &[
                "--maxmemory",
                SMALL_MAXMEMORY,
                "--maxmemory-policy",
                "allkeys-lru",
            ],
        );
        let load = CacheLoad::start(redis.port);
        // Every key is read more than once a second: the cache is full and steady by then.
        std::thread::sleep(Duration::from_secs(3));
        Cache { _load: load, redis }
    }

    fn set_maxmemory(&self, value: &str) {
        let answer = self.redis.cli(&["CONFIG", "SET", "maxmemory", value]);
        assert_eq!(answer, "OK", "CONFIG SET maxmemory {value}");
    }

    /// The hit ratio (%) from `INFO stats` deltas, the guardrail a timed `PING`: each on
    /// its own connection, as the source keeps one.
    fn rig(&self) -> Rig<'static> {
        let mut info = Conn::open(self.redis.port).expect("connect to redis for INFO");
        let mut ping = Conn::open(self.redis.port).expect("connect to redis for PING");
        let mut last = None;
        Rig {
            source: "redis",
            kind: MetricKind::Utilization,
            better: Comparator::Ge,
            tick: Duration::from_millis(100),
            window_len: 20,
            sample: Box::new(move || hit_ratio(&mut info, &mut last)),
            guard: Some(Box::new(move || ping_ms(&mut ping))),
        }
    }
}

fn hit_ratio(conn: &mut Conn, last: &mut Option<(u64, u64)>) -> Option<f64> {
    let text = match conn.call(&["INFO", "stats"]) {
        Ok(Reply::Bulk(Some(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => return None,
    };
    let hits = info_field(&text, "keyspace_hits")?;
    let misses = info_field(&text, "keyspace_misses")?;
    let (hits_before, misses_before) = last.replace((hits, misses))?;
    let hits = hits.saturating_sub(hits_before);
    let misses = misses.saturating_sub(misses_before);
    if hits + misses == 0 {
        return None;
    }
    Some(hits as f64 * 100.0 / (hits + misses) as f64)
}

fn info_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

fn ping_ms(conn: &mut Conn) -> Option<f64> {
    let started = Instant::now();
    match conn.call(&["PING"]) {
        Ok(Reply::Line(line)) if line == "+PONG" => Some(started.elapsed().as_secs_f64() * 1000.0),
        _ => None,
    }
}

/// A cache-aside load until dropped: every `BATCH_MS` a pipelined batch of GETs of random
/// keys, then a pipelined SET of every key that missed.
struct CacheLoad {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CacheLoad {
    fn start(port: u16) -> CacheLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // An error ends the load (the server is going away at the end of the test).
            let _ = cache_load(port, &flag);
        });
        CacheLoad {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CacheLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn cache_load(port: u16, stop: &AtomicBool) -> std::io::Result<()> {
    let mut conn = Conn::open(port)?;
    let value = "v".repeat(VALUE_LEN);
    let per_batch = (GETS_PER_S * BATCH_MS as usize / 1000).max(1);
    let every = Duration::from_millis(BATCH_MS);
    let mut rng = u64::from(port).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut keys: Vec<String> = Vec::with_capacity(per_batch);
    let mut out = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        keys.clear();
        keys.extend((0..per_batch).map(|_| format!("key:{}", next_key(&mut rng))));
        out.clear();
        for key in &keys {
            encode(&mut out, &["GET", key.as_str()]);
        }
        conn.send(&out)?;
        let mut missed: Vec<&str> = Vec::new();
        for key in &keys {
            if matches!(conn.read()?, Reply::Bulk(None)) {
                missed.push(key.as_str());
            }
        }
        if !missed.is_empty() {
            out.clear();
            for &key in &missed {
                encode(&mut out, &["SET", key, value.as_str()]);
            }
            conn.send(&out)?;
            // `+OK`, or an out-of-memory error while evicting: either way the next batch.
            for _ in &missed {
                conn.read()?;
            }
        }
        next += every;
        match next.checked_duration_since(Instant::now()) {
            Some(rest) => std::thread::sleep(rest),
            None if next.elapsed() > Duration::from_millis(100) => next = Instant::now(),
            None => {}
        }
    }
    Ok(())
}

/// xorshift64: uniform keys without a dependency.
fn next_key(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x % KEYS
}

/// A minimal RESP2 client connection: enough for GET, SET, INFO and PING.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A RESP2 reply.
enum Reply {
    /// `+…`, `-…` or `:…`: the whole line, its type character included.
    Line(String),
    /// `$…`: a bulk string, `None` for nil.
    Bulk(Option<Vec<u8>>),
    /// `*…`: an array, read and discarded.
    Array,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn {
            reader,
            writer: stream,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = Vec::new();
        encode(&mut out, args);
        self.send(&out)?;
        self.read()
    }
}

fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut text = String::new();
    if reader.read_line(&mut text)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    let line = text.trim_end();
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a RESP reply: {line:?}"),
        )
    };
    let (Some(kind), Some(rest)) = (line.bytes().next(), line.get(1..)) else {
        return Err(bad());
    };
    match kind {
        b'+' | b'-' | b':' => Ok(Reply::Line(line.to_owned())),
        b'$' => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut data = vec![0u8; len as usize + 2];
            reader.read_exact(&mut data)?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(Some(data)))
        }
        b'*' => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            for _ in 0..len.max(0) {
                read_reply(reader)?;
            }
            Ok(Reply::Array)
        }
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------
// HAProxy weights.
// ---------------------------------------------------------------------------------------

const SLOW_MS: u64 = 100;
const FAST_MS: u64 = 5;
const CLIENTS: usize = 8;
/// Each client sends at most one request per period (paced, so the request rate, and the
/// CPU it costs, hardly depends on the pool's state).
const CLIENT_PERIOD: Duration = Duration::from_millis(50);
/// The metric averages the requests completed within this long (long enough that the
/// slow requests in flight at its edges move the mean by little).
const TRAILING: Duration = Duration::from_secs(2);
/// Completions kept for the metric.
const KEEP: Duration = Duration::from_secs(5);

fn haproxy_weights(trials: usize) -> Tally {
    const SCENARIO: &str = "haproxy weights";
    std::thread::scope(|s| {
        let nothing = s.spawn(|| {
            let pool = Pool::start();
            let mut rig = pool.rig();
            let mut steps = [Step::new(Effect::Nothing, || pool.set_weight("fast", 10))];
            run(SCENARIO, &mut rig, &mut steps, trials)
        });
        let pool = Pool::start();
        let mut rig = pool.rig();
        let mut steps = [
            Step::new(Effect::Helps, || pool.set_weight("slow", 0)),
            Step::new(Effect::Hurts, || pool.set_weight("slow", 10)),
        ];
        let pairs = run(SCENARIO, &mut rig, &mut steps, trials);
        pairs.merge(joined(nothing))
    })
}

/// HAProxy in front of a slow and a fast backend (weights 10:10), with its clients.
/// Fields drop in order: the clients stop before the balancer and the backends go.
struct Pool {
    clients: Clients,
    haproxy: Haproxy,
    _slow: TestBackend,
    _fast: TestBackend,
}

impl Pool {
    fn start() -> Pool {
        let slow = TestBackend::start();
        slow.set(BackendMode::Slow(SLOW_MS));
        let fast = TestBackend::start();
        fast.set(BackendMode::Slow(FAST_MS));
        let haproxy = Haproxy::start(&[("slow", slow.port), ("fast", fast.port)]);
        let clients = Clients::start(haproxy.port);
        // The first trailing window fills.
        std::thread::sleep(TRAILING + Duration::from_millis(500));
        Pool {
            clients,
            haproxy,
            _slow: slow,
            _fast: fast,
        }
    }

    /// `set weight web/<server> <weight>` over the stats socket, read back.
    fn set_weight(&self, server: &str, weight: u32) {
        let answer = self
            .haproxy
            .command(&format!("set weight web/{server} {weight}"));
        assert_eq!(
            self.haproxy.weight(server),
            weight,
            "set weight web/{server} {weight}: {answer:?}"
        );
    }

    /// The clients' mean latency (ms) over the last `TRAILING`, every 100 ms.
    fn rig(&self) -> Rig<'static> {
        let log = self.clients.log.clone();
        Rig {
            source: "haproxy",
            kind: MetricKind::Latency,
            better: Comparator::Le,
            tick: Duration::from_millis(100),
            window_len: 20,
            sample: Box::new(move || trailing_mean_ms(&log)),
            guard: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Completion {
    done: Instant,
    ms: f64,
    ok: bool,
}

type CompletionLog = Arc<Mutex<VecDeque<Completion>>>;

/// `CLIENTS` threads, each sending one `GET /` at a time through the balancer, paced.
struct Clients {
    log: CompletionLog,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(port: u16) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let log: CompletionLog = Arc::default();
        let threads = (0..CLIENTS)
            .map(|i| {
                let (stop, log) = (stop.clone(), log.clone());
                std::thread::spawn(move || client_loop(port, i, &stop, &log))
            })
            .collect();
        Clients { log, stop, threads }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn client_loop(port: u16, index: usize, stop: &AtomicBool, log: &Mutex<VecDeque<Completion>>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Staggered, so the clients do not send in lockstep.
    std::thread::sleep(CLIENT_PERIOD * index as u32 / CLIENTS as u32);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = get_ok(addr);
        let done = Instant::now();
        let took = done - started;
        {
            let mut log = log.lock().unwrap();
            log.push_back(Completion {
                done,
                ms: took.as_secs_f64() * 1000.0,
                ok,
            });
            while log
                .front()
                .is_some_and(|old| done.duration_since(old.done) > KEEP)
            {
                log.pop_front();
            }
        }
        if let Some(rest) = CLIENT_PERIOD.checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
}

/// One `GET /` on a new connection: whether it answered 200.
fn get_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer.get(9..12) == Some(b"200".as_slice()))
    };
    attempt().unwrap_or(false)
}

fn trailing_mean_ms(log: &Mutex<VecDeque<Completion>>) -> Option<f64> {
    let now = Instant::now();
    let log = log.lock().unwrap();
    let (sum, n) = log
        .iter()
        .filter(|c| c.ok && now.duration_since(c.done) <= TRAILING)
        .fold((0.0, 0u32), |(sum, n), c| (sum + c.ms, n + 1));
    if n == 0 {
        None
    } else {
        Some(sum / f64::from(n))
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL work_mem.
// ---------------------------------------------------------------------------------------

const WORK_MEM_SMALL: &str = "64kB";
const WORK_MEM_LARGE: &str = "64MB";
const SORT_ROWS: u32 = 100_000;
const SORT_QUERY: &str = "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY k) FROM sortme";
/// Queries per probe; the first one (cold catalog caches) is not counted.
const PROBE_QUERIES: usize = 4;

fn postgres_work_mem(trials: usize) -> Tally {
    let pg = Postgres::start();
    pg.psql(
        "postgres",
        &format!(
            "CREATE TABLE sortme AS SELECT (random() * 1e9)::int AS k FROM generate_series(1, {SORT_ROWS})"
        ),
    );
    pg.psql("postgres", "VACUUM ANALYZE sortme");
    set_work_mem(&pg, WORK_MEM_SMALL);
    let mut rig = Rig {
        source: "postgres",
        kind: MetricKind::Latency,
        better: Comparator::Le,
        tick: Duration::from_millis(250),
        window_len: 16,
        sample: Box::new(|| sort_probe(&pg)),
        guard: None,
    };
    let mut steps = [
        Step::new(Effect::Helps, || set_work_mem(&pg, WORK_MEM_LARGE)),
        Step::new(Effect::Hurts, || set_work_mem(&pg, WORK_MEM_SMALL)),
        Step::new(Effect::Nothing, || set_work_mem(&pg, WORK_MEM_SMALL)),
    ];
    run("postgres work_mem", &mut rig, &mut steps, trials)
}

/// `ALTER SYSTEM SET work_mem` and a reload, as the settings actuator applies it; returns
/// once a fresh session sees the value (a reload reaches new sessions within moments).
fn set_work_mem(pg: &Postgres, value: &str) {
    pg.psql(
        "postgres",
        &format!("ALTER SYSTEM SET work_mem = '{value}'"),
    );
    pg.psql("postgres", "SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pg.psql("postgres", "SHOW work_mem") != value {
        assert!(Instant::now() < deadline, "work_mem never became {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh `psql` session times the sort `PROBE_QUERIES` times (`\timing`: client-side,
/// round trip included); the median of all but the first, in ms.
fn sort_probe(pg: &Postgres) -> Option<f64> {
    let port = pg.port.to_string();
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/psql"))
        .args(["-X", "-q", "-A", "-t", "-h"])
        .arg(pg.dir.join("sock"))
        .args(["-p", port.as_str(), "-d", "postgres", "-c", "\\timing on"])
        .args(["-c", SORT_QUERY].repeat(PROBE_QUERIES))
        // `Time: 12.345 ms` with a decimal point whatever the locale.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("Time: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    if times.len() < 2 {
        return None;
    }
    robust_level(&times[1..])
}
