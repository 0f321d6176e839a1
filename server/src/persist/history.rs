//! History on disk: `<data-dir>/history.db`, a SQLite file of its own (so history I/O
//! never delays a configuration change's commit), holding the tiers of
//! `engine::history::tiers` as compressed chunks, one row per series, tier and chunk.
//!
//! Shape, and why:
//! - One thread owns the writing connection and the [`TierWriter`]. The monitor hands it
//!   every tick (an `Arc`, no copy) and every stored push through a bounded channel it
//!   never waits on: if the writer falls behind, samples are dropped from disk (counted,
//!   memory still has them), never from the live path.
//! - Open chunks are written every [`FLUSH`] (15 s) in one transaction, so a `kill -9`
//!   loses at most that much. WAL with `synchronous = NORMAL`: a commit survives the
//!   process dying (the WAL is replayed, a torn tail is dropped by SQLite's checksums);
//!   history is not worth an fsync per flush.
//! - A failed write (disk full, read-only directory) keeps the chunks in memory and
//!   retries at the next flush; meanwhile [`HistoryStore::problem`] says why, for
//!   `/readyz` and the page banner. Live data never depends on the disk.
//! - Retention per tier and a size cap (oldest chunks first) are applied at start-up and
//!   hourly; `auto_vacuum = INCREMENTAL` gives the space back.
//! - Readers open their own read-only connections (WAL lets them run beside the writer).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::history::tiers::{Chunk, StoredPoint, Tier, TierWriter, ToStore};
use engine::series::{SeriesInfo, SeriesKey, Tick, UnixMillis};
use engine::sync::lock;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub const FILE: &str = "history.db";
/// How often open chunks are written: the most a `kill -9` loses.
pub const FLUSH: Duration = Duration::from_secs(15);
const MAINTENANCE: Duration = Duration::from_secs(3600);
/// Batches the channel holds before samples are dropped from disk.
const QUEUE: usize = 4_096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS series (
    id       INTEGER PRIMARY KEY,
    resource TEXT NOT NULL,
    metric   TEXT NOT NULL,
    info     TEXT NOT NULL,
    UNIQUE (resource, metric)
);
CREATE TABLE IF NOT EXISTS chunks (
    series   INTEGER NOT NULL,
    tier     INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    samples  INTEGER NOT NULL,
    bytes    BLOB NOT NULL,
    PRIMARY KEY (series, tier, start_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_age ON chunks (tier, start_ms);
";

/// How long each tier is kept, and the size the file may grow to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_days: u32,
    pub minute_days: u32,
    pub hour_days: u32,
    pub max_bytes: u64,
}

impl Default for Retention {
    /// Sized so that 100 series fit in 512 MB with room to spare (see BENCHMARKS.md).
    fn default() -> Self {
        Retention {
            raw_days: 7,
            minute_days: 90,
            hour_days: 730,
            max_bytes: 512 << 20,
        }
    }
}

impl Retention {
    fn keep_ms(&self, tier: Tier) -> i64 {
        let days = match tier {
            Tier::Raw => self.raw_days,
            Tier::Minute => self.minute_days,
            Tier::Hour => self.hour_days,
        };
        i64::from(days) * 86_400_000
    }
}

enum Message {
    Tick(Arc<Tick>),
    Samples(Vec<(SeriesInfo, UnixMillis, f32)>),
    /// Write everything now and answer (shutdown, tests).
    Flush(std::sync::mpsc::Sender<()>),
}

/// The handle the monitor and readers share. Cheap to clone.
#[derive(Clone)]
pub struct HistoryStore {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    path: PathBuf,
    raw_step_ms: i64,
    tx: SyncSender<Message>,
    problem: Mutex<Option<String>>,
    dropped: std::sync::atomic::AtomicU64,
}

/// What the file held for the last day when perfpilot started: per series, its raw
/// samples of the last hour and its minutes of the last day.
pub struct Recent {
    pub info: SeriesInfo,
    pub raw: Vec<StoredPoint>,
    pub minutes: Vec<StoredPoint>,
}

impl HistoryStore {
    /// No history on disk (`--ephemeral`).
    pub fn disabled() -> HistoryStore {
        HistoryStore { inner: None }
    }

    /// Opens (or creates) `<dir>/history.db`, applies retention, starts the writer and
    /// reads back the recent past for the in-memory rings.
    pub fn open(
        dir: &Path,
        raw_step_ms: i64,
        retention: Retention,
        now: UnixMillis,
    ) -> anyhow::Result<(HistoryStore, Vec<Recent>)> {
        let (path, conn) = open_file(dir)?;
        let recent = read_recent(&conn, raw_step_ms, now)?;
        let (tx, rx) = sync_channel(QUEUE);
        let inner = Arc::new(Inner {
            path,
            raw_step_ms,
            tx,
            problem: Mutex::new(None),
            dropped: Default::default(),
        });
        let shared = inner.clone();
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || Writer::new(conn, raw_step_ms, retention, shared).run(rx))?;
        Ok((HistoryStore { inner: Some(inner) }, recent))
    }

    /// Hands a tick to the writer; never waits.
    pub fn tick(&self, tick: Arc<Tick>) {
        self.send(Message::Tick(tick));
    }

    /// Hands stored pushes to the writer; never waits.
    pub fn samples(&self, samples: Vec<(SeriesInfo, UnixMillis, f32)>) {
        if !samples.is_empty() {
            self.send(Message::Samples(samples));
        }
    }

    fn send(&self, message: Message) {
        let Some(inner) = &self.inner else { return };
        if let Err(TrySendError::Full(_)) = inner.tx.try_send(message) {
            inner
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes what is pending now and waits for it (at shutdown).
    pub fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (done, wait) = std::sync::mpsc::channel();
        if inner.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Why history is not being written, if it is not.
    pub fn problem(&self) -> Option<String> {
        let inner = self.inner.as_ref()?;
        lock(&inner.problem).clone()
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The points of each of `keys` in `tier` over `[from, to)`, oldest first, on one
    /// read-only connection (blocking: call it on the blocking pool).
    pub fn read(
        &self,
        keys: &[SeriesKey],
        tier: Tier,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<Vec<StoredPoint>>, String> {
        let Some(inner) = &self.inner else {
            return Ok(vec![Vec::new(); keys.len()]);
        };
        let conn = Connection::open_with_flags(&inner.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|err| format!("cannot read the history: {err}"))?;
        keys.iter()
            .map(|key| read_points(&conn, inner.raw_step_ms, key, tier, from, to))
            .collect()
    }
}

/// Opens (or creates) the file with its pragmas and tables.
fn open_file(dir: &Path) -> anyhow::Result<(PathBuf, Connection)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE);
    let conn = Connection::open(&path)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", path.display()))?;
    // auto_vacuum only takes effect on a new file, before the first table.
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    )?;
    conn.execute_batch(SCHEMA).map_err(|err| {
        anyhow::anyhow!("{} is not a perfpilot history file: {err}", path.display())
    })?;
    Ok((path, conn))
}

/// Writes `series` (each with its samples, oldest first) straight into `<dir>/history.db`
/// on the calling thread, flushing every `flush_every` samples as the writer would: for
/// benchmarks and for importing history.
pub fn import(
    dir: &Path,
    raw_step_ms: i64,
    series: &[(SeriesInfo, Vec<(UnixMillis, f32)>)],
    flush_every: usize,
) -> anyhow::Result<()> {
    let (path, conn) = open_file(dir)?;
    let (tx, _rx) = sync_channel(1);
    let shared = Arc::new(Inner {
        path,
        raw_step_ms,
        tx,
        problem: Mutex::new(None),
        dropped: Default::default(),
    });
    let mut writer = Writer::new(conn, raw_step_ms, Retention::default(), shared.clone());
    let longest = series.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (info, samples) in series {
            if let Some(&(t, v)) = samples.get(i) {
                writer.append(info, t, Some(v));
            }
        }
        if (i + 1) % flush_every.max(1) == 0 {
            writer.flush();
        }
    }
    writer.flush();
    let problem = lock(&shared.problem).clone();
    match problem {
        Some(problem) => anyhow::bail!(problem),
        None => Ok(()),
    }
}

fn read_points(
    conn: &Connection,
    raw_step_ms: i64,
    key: &SeriesKey,
    tier: Tier,
    from: UnixMillis,
    to: UnixMillis,
) -> Result<Vec<StoredPoint>, String> {
    let failed = |err: rusqlite::Error| format!("cannot read the history: {err}");
    let Some(id): Option<i64> = conn
        .query_row(
            "SELECT id FROM series WHERE resource = ?1 AND metric = ?2",
            params![key.resource, key.metric],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?
    else {
        return Ok(Vec::new());
    };
    let mut statement = conn
        .prepare_cached(
            "SELECT start_ms, bytes FROM chunks WHERE series = ?1 AND tier = ?2 AND start_ms < ?3 AND start_ms > ?4 ORDER BY start_ms",
        )
        .map_err(failed)?;
    let rows = statement
        .query_map(
            params![id, tier.code(), to, from - tier.chunk_ms()],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .map_err(failed)?;
    let mut chunks = Vec::new();
    for row in rows {
        let (start, bytes) = row.map_err(failed)?;
        match Chunk::decode(tier, start, raw_step_ms, &bytes) {
            Ok(chunk) => chunks.push(chunk),
            // Never served: a damaged chunk is a gap, and said in the log.
            Err(err) => {
                tracing::warn!(series = %key, tier = tier.as_str(), start, %err, "Skipping a damaged history chunk")
            }
        }
    }
    Ok(engine::history::tiers::points_in(&chunks, from, to))
}

/// The raw samples of the last hour and the minutes of the last day, per stored series.
fn read_recent(
    conn: &Connection,
    raw_step_ms: i64,
    now: UnixMillis,
) -> anyhow::Result<Vec<Recent>> {
    let mut statement = conn.prepare("SELECT resource, metric, info FROM series ORDER BY id")?;
    let series: Vec<(SeriesKey, String)> = statement
        .query_map([], |row| {
            Ok((
                SeriesKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                row.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut recent = Vec::new();
    for (key, info) in series {
        let Ok(info) = serde_json::from_str::<SeriesInfo>(&info) else {
            continue;
        };
        let minutes = read_points(conn, raw_step_ms, &key, Tier::Minute, now - 86_400_000, now)
            .map_err(anyhow::Error::msg)?;
        let raw = read_points(conn, raw_step_ms, &key, Tier::Raw, now - 3_600_000, now)
            .map_err(anyhow::Error::msg)?;
        if !raw.is_empty() || !minutes.is_empty() {
            recent.push(Recent { info, raw, minutes });
        }
    }
    Ok(recent)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    tiers: TierWriter,
    retention: Retention,
    shared: Arc<Inner>,
    ids: HashMap<SeriesKey, i64>,
    /// Series seen but not yet in the `series` table.
    new_series: Vec<SeriesInfo>,
    /// Finished chunks not stored yet (a failed flush keeps them here).
    finished: Vec<ToStore>,
}

impl Writer {
    fn new(conn: Connection, raw_step_ms: i64, retention: Retention, shared: Arc<Inner>) -> Writer {
        let ids = conn
            .prepare("SELECT resource, metric, id FROM series")
            .and_then(|mut s| {
                s.query_map([], |row| {
                    Ok((
                        SeriesKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect()
            })
            .unwrap_or_default();
        Writer {
            conn,
            tiers: TierWriter::new(raw_step_ms),
            retention,
            shared,
            ids,
            new_series: Vec::new(),
            finished: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Message>) {
        self.maintain();
        let mut next_flush = Instant::now() + FLUSH;
        let mut next_maintenance = Instant::now() + MAINTENANCE;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Message::Tick(tick)) => {
                    for (info, value) in tick.iter() {
                        self.append(info, tick.at, value);
                    }
                }
                Ok(Message::Samples(samples)) => {
                    for (info, t, value) in &samples {
                        self.append(info, *t, Some(*value));
                    }
                }
                Ok(Message::Flush(done)) => {
                    self.flush();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            if Instant::now() >= next_flush {
                self.flush();
                next_flush = Instant::now() + FLUSH;
            }
            if Instant::now() >= next_maintenance {
                self.maintain();
                next_maintenance = Instant::now() + MAINTENANCE;
            }
        }
    }

    fn append(&mut self, info: &SeriesInfo, t: UnixMillis, value: Option<f32>) {
        if !self.ids.contains_key(&info.key) && !self.new_series.iter().any(|s| s.key == info.key) {
            self.new_series.push(info.clone());
        }
        let conn = &self.conn;
        let ids = &self.ids;
        let raw_step_ms = self.tiers.raw_step_ms();
        // After a restart the chunk being continued is read back first.
        let mut load = |key: &SeriesKey, tier: Tier, start: i64| -> Option<Chunk> {
            let id = ids.get(key)?;
            let bytes: Vec<u8> = conn
                .query_row(
                    "SELECT bytes FROM chunks WHERE series = ?1 AND tier = ?2 AND start_ms = ?3",
                    params![id, tier.code(), start],
                    |row| row.get(0),
                )
                .optional()
                .ok()??;
            Chunk::decode(tier, start, raw_step_ms, &bytes).ok()
        };
        let finished = self.tiers.append(&info.key, t, value, &mut load);
        self.finished.extend(finished);
    }

    fn flush(&mut self) {
        let open = self.tiers.dirty();
        let mut all = std::mem::take(&mut self.finished);
        let finished_count = all.len();
        all.extend(open);
        if all.is_empty() && self.new_series.is_empty() {
            return;
        }
        match self.write(&all) {
            Ok(()) => {
                self.new_series.clear();
                *lock(&self.shared.problem) = None;
            }
            Err(err) => {
                let (finished, open) = all.split_at(finished_count);
                self.finished = finished.to_vec();
                self.tiers.unwritten(open);
                let why = format!(
                    "history is not being written to {}: {err}",
                    self.shared.path.display()
                );
                let mut problem = lock(&self.shared.problem);
                if problem.as_deref() != Some(why.as_str()) {
                    tracing::warn!(%why, "History write failed; retrying every {} s", FLUSH.as_secs());
                    *problem = Some(why);
                }
            }
        }
    }

    fn write(&mut self, chunks: &[ToStore]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for info in &self.new_series {
            let body = serde_json::to_string(info).expect("series info serializes");
            tx.execute(
                "INSERT INTO series (resource, metric, info) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (resource, metric) DO UPDATE SET info = excluded.info",
                params![info.key.resource, info.key.metric, body],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM series WHERE resource = ?1 AND metric = ?2",
                params![info.key.resource, info.key.metric],
                |row| row.get(0),
            )?;
            self.ids.insert(info.key.clone(), id);
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO chunks (series, tier, start_ms, samples, bytes) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (series, tier, start_ms) DO UPDATE SET samples = excluded.samples, bytes = excluded.bytes",
            )?;
            for item in chunks {
                let Some(id) = self.ids.get(&item.key) else {
                    continue;
                };
                upsert.execute(params![
                    id,
                    item.chunk.tier.code(),
                    item.chunk.start_ms,
                    item.chunk.samples() as i64,
                    item.chunk.encode()
                ])?;
            }
        }
        tx.commit()
    }

    /// Retention per tier, then the size cap (oldest chunks first), then the space back.
    fn maintain(&mut self) {
        let now = engine::time::unix_now_ms();
        let result = (|| -> rusqlite::Result<u64> {
            let mut removed = 0u64;
            for tier in Tier::ALL {
                removed += self.conn.execute(
                    "DELETE FROM chunks WHERE tier = ?1 AND start_ms + ?2 < ?3",
                    params![
                        tier.code(),
                        tier.chunk_ms(),
                        now - self.retention.keep_ms(tier)
                    ],
                )? as u64;
            }
            loop {
                let used: i64 = self.conn.query_row(
                    "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
                    [],
                    |row| row.get(0),
                )?;
                if used as u64 <= self.retention.max_bytes {
                    break;
                }
                let gone = self.conn.execute(
                    "DELETE FROM chunks WHERE (series, tier, start_ms) IN (SELECT series, tier, start_ms FROM chunks ORDER BY start_ms LIMIT 64)",
                    [],
                )?;
                if gone == 0 {
                    break;
                }
                removed += gone as u64;
                self.conn.execute_batch("PRAGMA incremental_vacuum")?;
            }
            self.conn.execute_batch("PRAGMA incremental_vacuum")?;
            Ok(removed)
        })();
        match result {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, "History past its retention or size cap removed")
            }
            Err(err) => tracing::warn!(%err, "History maintenance failed"),
        }
    }
}

/// Sizes per tier and per series, for `perfpilot history stats`.
pub struct Stats {
    pub file_bytes: u64,
    /// Per tier: chunks, stored bytes, samples.
    pub tiers: Vec<(Tier, u64, u64, u64)>,
    /// Per series (largest first): key, stored bytes, samples.
    pub series: Vec<(SeriesKey, u64, u64)>,
}

/// Reads the sizes of the history file in `dir` (read-only; perfpilot may be running).
pub fn stats(dir: &Path) -> anyhow::Result<Stats> {
    let path = dir.join(FILE);
    if !path.exists() {
        anyhow::bail!("no history file at {}", path.display());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let file_bytes = conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |row| row.get::<_, i64>(0),
    )? as u64;
    let mut tiers = Vec::new();
    for tier in Tier::ALL {
        let (chunks, bytes, samples): (i64, i64, i64) = conn.query_row(
            "SELECT count(*), coalesce(sum(length(bytes)), 0), coalesce(sum(samples), 0) FROM chunks WHERE tier = ?1",
            params![tier.code()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        tiers.push((tier, chunks as u64, bytes as u64, samples as u64));
    }
    let mut statement = conn.prepare(
        "SELECT s.resource, s.metric, coalesce(sum(length(c.bytes)), 0), coalesce(sum(c.samples), 0) \
         FROM series s LEFT JOIN chunks c ON c.series = s.id GROUP BY s.id ORDER BY 3 DESC",
    )?;
    let series = statement
        .query_map([], |row| {
            Ok((
                SeriesKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                row.get::<_, i64>(2)? as u64,
                row.get::<_, i64>(3)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(Stats {
        file_bytes,
        tiers,
        series,
    })
}
