//! Durable state: one embedded SQLite database (`<data-dir>/perfpilot.db`) holding the
//! current resources, the change counter, the auto-save snapshots, the audit log (which
//! also records every change, and is pruned to `--audit-retention-days`: the current state
//! lives in `resources`/`meta`, never replayed from the log), finished before/after
//! comparisons and API tokens.
//!
//! Shape, and why:
//! - One thread owns the `Connection`. Every write and every read goes through its
//!   channel, so there is no lock between connections, no `SQLITE_BUSY`, and in-memory
//!   mode (`--ephemeral`, an in-memory database) runs exactly the same code.
//! - The change path only enqueues: [`Persist::enqueue_change`] is called by
//!   `ChangeStore::apply_with` under the engine's writer lock, so the channel holds
//!   changes in number order. The thread drains everything pending into one transaction
//!   (group commit: one fsync for a whole burst), commits, then publishes the highest
//!   durable change number. A writer's request is answered only when that number reaches
//!   its change ([`Persist::durable`]): acknowledged means committed.
//! - Snapshots are taken in memory by the engine on the change path; their hash and rows
//!   are computed here, in the transaction of the change that took them.
//! - Durability: WAL with `synchronous = FULL`, so a commit is on stable storage (the WAL
//!   is fsynced) before it is acknowledged. That survives `kill -9` and, as far as the
//!   disk honours fsync, power loss. `NORMAL` would survive `kill -9` only.
//! - `locking_mode = EXCLUSIVE`: a second perfpilot on the same data directory fails at
//!   start-up instead of interleaving its own change numbers.
//! - If a write fails, the database is marked failed: every waiter and every later
//!   mutation gets 503 with the reason. Changes accepted in memory in that batch are not
//!   acknowledged; nothing pretends they are durable.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use app::audit::{AuditFilter, AuditKind, AuditRecord};
use app::identity::{AuthSource, Identity, Role};
use engine::changes::{AutoSave, ChangeRecord, MutationKind, PersistedState, Snapshot, State};
use engine::model::Resource;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

/// Bumped when the tables change incompatibly; an older binary refuses a newer database.
const SCHEMA_VERSION: i64 = 1;
const DB_FILE: &str = "perfpilot.db";
/// Jobs one transaction takes at most: bounds the latency of the first job of a burst.
const MAX_BATCH: usize = 8_192;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resources (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
-- The change journal and the audit log in one table: configuration changes carry their
-- change number, other audited events (tokens, marks, actions) have none.
CREATE TABLE IF NOT EXISTS audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    change     INTEGER UNIQUE,
    at_unix_ms INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    resource   TEXT,
    user       TEXT NOT NULL,
    role       TEXT NOT NULL,
    source     TEXT NOT NULL,
    client_ip  TEXT,
    what       TEXT NOT NULL,
    before     TEXT NOT NULL,
    after      TEXT NOT NULL,
    snapshot   INTEGER
);
CREATE INDEX IF NOT EXISTS audit_user ON audit(user, id);
CREATE INDEX IF NOT EXISTS audit_resource ON audit(resource, id);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at_unix_ms);
CREATE TABLE IF NOT EXISTS snapshots (
    change INTEGER PRIMARY KEY,
    hash   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_unix_ms INTEGER NOT NULL,
    resource   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL,
    sha256_hex         TEXT NOT NULL UNIQUE,
    created_by         TEXT NOT NULL,
    created_at_unix_ms INTEGER NOT NULL,
    revoked_at_unix_ms INTEGER
);
";

/// An API token as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256_hex: String,
    pub created_by: String,
    pub created_at_unix_ms: i64,
    pub revoked_at_unix_ms: Option<i64>,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    /// The database failed earlier (or now); nothing more is written.
    #[error("the database is unavailable, so changes cannot be made durable: {0}")]
    Unavailable(Arc<str>),
    #[error("{0}")]
    Refused(String),
}

/// What the database held at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `None` for a fresh database.
    pub state: Option<PersistedState>,
    /// Finished before/after comparisons, oldest first, as the proof ring stores them.
    pub events: Vec<serde_json::Value>,
    pub audit_entries: u64,
}

/// Where the durable change number stands, and whether the database has failed.
#[derive(Debug, Clone, Default)]
struct Durable {
    upto: u64,
    failed: Option<Arc<str>>,
}

enum Job {
    Change {
        record: ChangeRecord,
        state: Arc<State>,
        actor: Identity,
    },
    Audit(Box<AuditRecord>),
    Event {
        at_unix_ms: i64,
        resource: String,
        body: serde_json::Value,
    },
    SaveToken {
        row: TokenRow,
        by: Identity,
        reply: oneshot::Sender<Result<(), PersistError>>,
    },
    RevokeToken {
        id: String,
        by: Identity,
        at_unix_ms: i64,
        reply: oneshot::Sender<Result<TokenRow, PersistError>>,
    },
    Tokens(oneshot::Sender<Result<Vec<TokenRow>, PersistError>>),
    QueryAudit(
        AuditFilter,
        oneshot::Sender<Result<Vec<AuditRecord>, PersistError>>,
    ),
    CountAudit(AuditFilter, oneshot::Sender<Result<u64, PersistError>>),
    /// What the store holds at start-up (host resources added, the configured auto-save
    /// period), written without counting a change.
    Baseline(Box<PersistedState>),
    /// Removes up to [`PRUNE_BATCH`] audit entries older than this time
    /// (`--audit-retention-days`), after the batch's commit; answers how many.
    PruneAudit(i64, oneshot::Sender<Result<u64, PersistError>>),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// The handle request handlers and the monitor share. Cheap to clone.
#[derive(Clone)]
pub struct Persist {
    jobs: mpsc::Sender<Job>,
    durable: watch::Receiver<Durable>,
    failed: Arc<OnceLock<Arc<str>>>,
    location: Arc<str>,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// `<dir>/perfpilot.db`, created with the directory if missing.
    Dir(PathBuf),
    /// An in-memory database: nothing touches the file system.
    Memory,
}

impl Persist {
    /// Opens (or creates) the database, checks its schema and reads back what it holds;
    /// then starts the writer thread. Errors are for a person: they name the file and
    /// what is wrong with it.
    pub fn open(location: &Location) -> anyhow::Result<(Persist, Loaded)> {
        let (conn, described) = match location {
            Location::Memory => (
                Connection::open_in_memory()?,
                "memory (--ephemeral)".to_owned(),
            ),
            Location::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|err| {
                    anyhow::anyhow!("data_dir: cannot create {}: {err}", dir.display())
                })?;
                let path = dir.join(DB_FILE);
                let conn = Connection::open(&path)
                    .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", path.display()))?;
                (conn, path.display().to_string())
            }
        };
        let loaded = prepare(&conn, location).map_err(|err| match location {
            Location::Dir(dir) => anyhow::anyhow!(
                "the database {} cannot be used: {err}. Move it aside to start with an empty state, \
                 or restore a backup",
                dir.join(DB_FILE).display()
            ),
            Location::Memory => anyhow::anyhow!("the in-memory database failed: {err}"),
        })?;
        let (jobs, rx) = mpsc::channel();
        let upto = loaded.state.as_ref().map_or(0, |s| s.change);
        let (durable_tx, durable) = watch::channel(Durable { upto, failed: None });
        let failed = Arc::new(OnceLock::new());
        let writer = Writer {
            conn,
            durable: durable_tx,
            failed: failed.clone(),
        };
        std::thread::Builder::new()
            .name("perfpilot-persist".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Persist {
                jobs,
                durable,
                failed,
                location: described.into(),
            },
            loaded,
        ))
    }

    /// Where the state lives, for the start-up log.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Refuses early when the database has failed, before a change takes a number.
    pub fn check(&self) -> Result<(), PersistError> {
        match self.failed.get() {
            Some(reason) => Err(PersistError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    fn send(&self, job: Job) -> Result<(), PersistError> {
        self.jobs
            .send(job)
            .map_err(|_| PersistError::Unavailable("the database writer has stopped".into()))
    }

    /// Queues an accepted change for the journal. Call it from `ChangeStore::apply_with`'s
    /// closure, under the writer lock, so the queue is in change-number order.
    pub fn enqueue_change(&self, record: &ChangeRecord, state: &Arc<State>, actor: &Identity) {
        // A send fails only once the writer is gone; `durable` then reports it.
        let _ = self.send(Job::Change {
            record: record.clone(),
            state: state.clone(),
            actor: actor.clone(),
        });
    }

    /// Resolves once change `change` is committed, or with the reason it never will be.
    pub async fn durable(&self, change: u64) -> Result<(), PersistError> {
        let mut rx = self.durable.clone();
        let seen = rx
            .wait_for(|d| d.upto >= change || d.failed.is_some())
            .await
            .map_err(|_| PersistError::Unavailable("the database writer has stopped".into()))?;
        if seen.upto >= change {
            return Ok(());
        }
        Err(PersistError::Unavailable(
            seen.failed.clone().unwrap_or_else(|| "unknown".into()),
        ))
    }

    /// Records an audited event that is not a configuration change (a mark, an action).
    /// Durable with the next commit; not awaited.
    pub fn audit(&self, entry: AuditRecord) {
        let _ = self.send(Job::Audit(Box::new(entry)));
    }

    /// Records a manual mark in the audit log.
    pub fn audit_mark(&self, resource: &str, label: &str, by: &Identity, at_unix_ms: i64) {
        self.audit(actor_entry(
            by,
            AuditKind::Mark,
            Some(resource),
            at_unix_ms,
            format!("{resource}: mark {label:?}"),
            serde_json::Value::Null,
            serde_json::json!({ "label": label }),
        ));
    }

    /// Removes the audit entries from before `before_unix_ms`, a batch at a time so
    /// changes queued meanwhile wait for one batch at most; answers how many went.
    pub async fn prune_audit(&self, before_unix_ms: i64) -> Result<u64, PersistError> {
        let mut removed = 0;
        loop {
            let (reply, rx) = oneshot::channel();
            self.send(Job::PruneAudit(before_unix_ms, reply))?;
            let batch = answer(rx).await?;
            removed += batch;
            if batch < PRUNE_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Applies `--audit-retention-days` now and then every hour, for as long as the
    /// runtime runs; `days == 0` keeps everything.
    pub fn keep_audit_for(&self, days: u32) {
        if days == 0 {
            return;
        }
        let persist = self.clone();
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3_600));
            loop {
                hourly.tick().await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                match persist
                    .prune_audit(now - i64::from(days) * 86_400_000)
                    .await
                {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(
                        removed,
                        days,
                        "Audit entries older than --audit-retention-days removed"
                    ),
                    Err(err) => tracing::warn!(%err, "Applying the audit retention failed"),
                }
            }
        });
    }

    /// Stores a finished before/after comparison (the proof ring's serialized entry).
    pub fn save_event(&self, at_unix_ms: i64, resource: &str, body: serde_json::Value) {
        let _ = self.send(Job::Event {
            at_unix_ms,
            resource: resource.to_owned(),
            body,
        });
    }

    /// Stores a new API token and audits who created it; resolves once committed.
    pub async fn save_token(&self, row: TokenRow, by: &Identity) -> Result<(), PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::SaveToken {
            row,
            by: by.clone(),
            reply,
        })?;
        answer(rx).await
    }

    /// Revokes token `id` (now) and audits who did it; resolves with the revoked row once
    /// committed. Unknown or already revoked ids are refused.
    pub async fn revoke_token(&self, id: &str, by: &Identity) -> Result<TokenRow, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::RevokeToken {
            id: id.to_owned(),
            by: by.clone(),
            at_unix_ms: engine::time::unix_now_ms(),
            reply,
        })?;
        answer(rx).await
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Tokens(reply))?;
        answer(rx).await
    }

    /// Audit entries passing `filter`, newest first, at most `filter.limit`.
    pub async fn query_audit(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::QueryAudit(filter, reply))?;
        answer(rx).await
    }

    /// How many entries pass `filter`, ignoring its limit.
    pub async fn count_audit(&self, filter: AuditFilter) -> Result<u64, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::CountAudit(filter, reply))?;
        answer(rx).await
    }

    /// Records the store as it starts (not a change): resources discovered on this host
    /// and the auto-save settings, so a restart finds them even before the first edit.
    /// Durable when [`Persist::flush`] returns.
    pub fn baseline(&self, state: PersistedState) {
        let _ = self.send(Job::Baseline(Box::new(state)));
    }

    /// Waits until everything queued so far is committed (shutdown, tests).
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Job::Flush(reply)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn answer<T>(rx: oneshot::Receiver<Result<T, PersistError>>) -> Result<T, PersistError> {
    rx.await
        .map_err(|_| PersistError::Unavailable("the database writer has stopped".into()))?
}

/// An audit entry for `by` without a change number.
pub fn actor_entry(
    by: &Identity,
    kind: AuditKind,
    resource: Option<&str>,
    at_unix_ms: i64,
    what: String,
    before: serde_json::Value,
    after: serde_json::Value,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        change: None,
        at_unix_ms,
        kind,
        resource: resource.map(str::to_owned),
        user: by.user.clone(),
        role: by.role.as_str().to_owned(),
        source: source_name(by.source).to_owned(),
        client_ip: by.client_ip.map(|ip| ip.to_string()),
        what,
        before,
        after,
        snapshot: None,
    }
}

fn source_name(source: AuthSource) -> &'static str {
    match source {
        AuthSource::Anonymous => "anonymous",
        AuthSource::Proxy => "proxy",
        AuthSource::Token => "token",
        AuthSource::System => "system",
    }
}

/// Pragmas, schema, version check and the read-back of everything start-up needs.
fn prepare(conn: &Connection, location: &Location) -> rusqlite::Result<Loaded> {
    if let Location::Dir(_) = location {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt(format!(
                "cannot switch to write-ahead logging (journal mode stays {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA locking_mode = EXCLUSIVE;")?;
    }
    // The first write takes the exclusive lock; a second process stops here with "locked".
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
        .map_err(|err| match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                corrupt(format!(
                    "{err} (is another perfpilot using this data directory?)"
                ))
            }
            _ => err,
        })?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version.as_deref().map(str::parse::<i64>) {
        None => {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(Ok(SCHEMA_VERSION)) => {}
        Some(other) => {
            return Err(corrupt(format!(
                "schema version {other:?} is not the {SCHEMA_VERSION} this perfpilot understands \
                 (was it written by a newer release?)"
            )))
        }
    }
    load(conn)
}

/// A problem with what the database holds (rather than with SQLite itself), carried as a
/// rusqlite error so one `?` chain covers both; it displays as its message.
fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(what.into())
}

fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let meta = |key: &str| -> rusqlite::Result<Option<u64>> {
        let value: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        value
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| corrupt(format!("meta.{key} is {v:?}, not a whole number")))
            })
            .transpose()
    };
    let audit_entries: i64 = conn.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
    let events = {
        // Only what the page can show: a database from before pruning may hold more.
        let mut stmt = conn.prepare(
            "SELECT id, body FROM (SELECT id, body FROM events ORDER BY id DESC LIMIT ?1) \
             ORDER BY id",
        )?;
        let rows = stmt.query_map([crate::state::proof::KEEP as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (id, body) = row?;
            events.push(
                serde_json::from_str(&body)
                    .map_err(|err| corrupt(format!("events row {id}: {err}")))?,
            );
        }
        events
    };
    let Some(change) = meta("change")? else {
        return Ok(Loaded {
            state: None,
            events,
            audit_entries: audit_entries as u64,
        });
    };
    let every = meta("autosave_every")?.unwrap_or(engine::changes::DEFAULT_AUTOSAVE_EVERY);
    let capacity = meta("snapshot_capacity")?
        .map_or(engine::changes::DEFAULT_SNAPSHOT_CAPACITY, |c| c as usize);
    let autosave = AutoSave::new(every, capacity)
        .map_err(|err| corrupt(format!("meta: auto-save settings: {err}")))?;
    let mut resources = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT id, body FROM resources ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, body) = row?;
            let resource: Resource = serde_json::from_str(&body)
                .map_err(|err| corrupt(format!("resources row {id:?}: {err}")))?;
            resources.push(resource);
        }
    }
    let mut snapshots = Vec::new();
    {
        // Only what the ring keeps: older snapshots stay in the file for the record.
        let mut stmt =
            conn.prepare("SELECT change, hash, body FROM snapshots ORDER BY change DESC LIMIT ?1")?;
        let rows = stmt.query_map([capacity as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (change, hash, body) = row?;
            let snapshot: Snapshot = serde_json::from_str(&body)
                .map_err(|err| corrupt(format!("snapshots row {change}: {err}")))?;
            if snapshot.hash() != hash || snapshot.change != change as u64 {
                return Err(corrupt(format!(
                    "snapshots row {change}: its body does not match its key or hash column"
                )));
            }
            snapshots.push(snapshot);
        }
        snapshots.reverse();
    }
    // Every snapshot ever taken stays in the file (the ring holds the newest), so its
    // count is the "snapshots taken" of the Changes page across restarts.
    let snapshots_taken: i64 =
        conn.query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))?;
    Ok(Loaded {
        state: Some(PersistedState {
            change,
            autosave,
            resources,
            snapshots,
            snapshots_taken: snapshots_taken as u64,
        }),
        events,
        audit_entries: audit_entries as u64,
    })
}

/// The thread that owns the connection.
struct Writer {
    conn: Connection,
    durable: watch::Sender<Durable>,
    failed: Arc<OnceLock<Arc<str>>>,
}

/// Answers that may only be given once their batch has committed.
enum Reply {
    Unit(oneshot::Sender<Result<(), PersistError>>),
    Token(oneshot::Sender<Result<TokenRow, PersistError>>, TokenRow),
    Flush(oneshot::Sender<()>),
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if let Some(reason) = self.failed.get().cloned() {
                refuse_all(batch, &reason);
                continue;
            }
            if let Err(err) = self.commit(batch) {
                let reason: Arc<str> = err.to_string().into();
                tracing::error!(%reason, "The database failed; further changes are refused");
                let _ = self.failed.set(reason.clone());
                self.durable.send_modify(|d| d.failed = Some(reason));
            }
        }
    }

    /// Writes a batch in one transaction, then answers. Reads are answered after the
    /// commit too, so they see the writes queued before them.
    fn commit(&mut self, batch: Vec<Job>) -> rusqlite::Result<()> {
        let mut replies = Vec::new();
        let mut reads = Vec::new();
        let mut highest = None;
        let mut failure: Option<(Vec<Reply>, rusqlite::Error)> = None;
        let tx = self.conn.transaction()?;
        let mut latest: Option<Arc<State>> = None;
        let mut touched = std::collections::BTreeSet::new();
        let mut everything = false;
        let mut events_added = false;
        for job in batch {
            let step = match job {
                Job::Change {
                    record,
                    state,
                    actor,
                } => {
                    highest = Some(record.change);
                    match (&record.kind, &record.resource) {
                        (MutationKind::Restore, _) | (_, None) => everything = true,
                        (_, Some(id)) => {
                            touched.insert(id.clone());
                        }
                    }
                    latest = Some(state);
                    write_change(&tx, &record, &actor)
                }
                Job::Audit(entry) => insert_audit(&tx, &entry),
                Job::Event {
                    at_unix_ms,
                    resource,
                    body,
                } => {
                    events_added = true;
                    tx.prepare_cached(
                        "INSERT INTO events(at_unix_ms, resource, body) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![at_unix_ms, resource, body.to_string()]))
                    .map(drop)
                }
                Job::SaveToken { row, by, reply } => match save_token(&tx, &row, &by) {
                    Ok(()) => {
                        replies.push(Reply::Unit(reply));
                        Ok(())
                    }
                    Err(PersistError::Refused(message)) => {
                        let _ = reply.send(Err(PersistError::Refused(message)));
                        Ok(())
                    }
                    Err(other) => {
                        let _ = reply.send(Err(other.clone()));
                        Err(corrupt(other.to_string()))
                    }
                },
                Job::RevokeToken {
                    id,
                    by,
                    at_unix_ms,
                    reply,
                } => match revoke_token(&tx, &id, &by, at_unix_ms) {
                    Ok(Ok(row)) => {
                        replies.push(Reply::Token(reply, row));
                        Ok(())
                    }
                    Ok(Err(refused)) => {
                        let _ = reply.send(Err(refused));
                        Ok(())
                    }
                    Err(err) => Err(err),
                },
                Job::Tokens(reply) => {
                    reads.push(Read::Tokens(reply));
                    Ok(())
                }
                Job::QueryAudit(filter, reply) => {
                    reads.push(Read::Audit(filter, reply));
                    Ok(())
                }
                Job::CountAudit(filter, reply) => {
                    reads.push(Read::Count(filter, reply));
                    Ok(())
                }
                Job::Flush(reply) => {
                    replies.push(Reply::Flush(reply));
                    Ok(())
                }
                Job::Baseline(state) => write_baseline(&tx, &state),
                Job::PruneAudit(before_unix_ms, reply) => {
                    reads.push(Read::Prune(before_unix_ms, reply));
                    Ok(())
                }
            };
            if let Err(err) = step {
                failure = Some((std::mem::take(&mut replies), err));
                break;
            }
        }
        if failure.is_none() && events_added {
            // The page shows the newest `proof::KEEP` before/afters and nothing reads older
            // ones, so the table keeps only those: it would otherwise grow with every edit
            // and be read whole at every start.
            let pruned = tx
                .prepare_cached("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?1")
                .and_then(|mut s| s.execute([crate::state::proof::KEEP as i64]));
            if let Err(err) = pruned {
                failure = Some((std::mem::take(&mut replies), err));
            }
        }
        if failure.is_none() {
            if let (Some(state), Some(change)) = (&latest, highest) {
                // Once per batch: the counter and the resources as of its last change.
                let written = tx
                    .prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('change', ?1)")
                    .and_then(|mut s| s.execute([change.to_string()]))
                    .and_then(|_| write_resources(&tx, state, &touched, everything));
                if let Err(err) = written {
                    failure = Some((std::mem::take(&mut replies), err));
                }
            }
        }
        let result = match failure {
            Some((pending, err)) => {
                drop(tx);
                fail_replies(pending, &err.to_string());
                Err(err)
            }
            None => tx.commit(),
        };
        match result {
            Ok(()) => {
                if let Some(change) = highest {
                    self.durable.send_modify(|d| d.upto = d.upto.max(change));
                }
                for reply in replies {
                    match reply {
                        Reply::Unit(r) => drop(r.send(Ok(()))),
                        Reply::Token(r, row) => drop(r.send(Ok(row))),
                        Reply::Flush(r) => drop(r.send(())),
                    }
                }
            }
            Err(ref err) if !replies.is_empty() => fail_replies(replies, &err.to_string()),
            Err(_) => {}
        }
        for read in reads {
            read.answer(&self.conn);
        }
        result
    }
}

fn fail_replies(replies: Vec<Reply>, reason: &str) {
    let err = || PersistError::Unavailable(reason.into());
    for reply in replies {
        match reply {
            Reply::Unit(r) => drop(r.send(Err(err()))),
            Reply::Token(r, _) => drop(r.send(Err(err()))),
            Reply::Flush(r) => drop(r.send(())),
        }
    }
}

fn refuse_all(batch: Vec<Job>, reason: &Arc<str>) {
    let err = || PersistError::Unavailable(reason.clone());
    for job in batch {
        match job {
            Job::SaveToken { reply, .. } => drop(reply.send(Err(err()))),
            Job::RevokeToken { reply, .. } => drop(reply.send(Err(err()))),
            Job::Tokens(reply) => drop(reply.send(Err(err()))),
            Job::QueryAudit(_, reply) => drop(reply.send(Err(err()))),
            Job::CountAudit(_, reply) => drop(reply.send(Err(err()))),
            Job::PruneAudit(_, reply) => drop(reply.send(Err(err()))),
            Job::Flush(reply) => drop(reply.send(())),
            Job::Change { .. } | Job::Audit(_) | Job::Event { .. } | Job::Baseline(_) => {}
        }
    }
}

enum Read {
    Tokens(oneshot::Sender<Result<Vec<TokenRow>, PersistError>>),
    Audit(
        AuditFilter,
        oneshot::Sender<Result<Vec<AuditRecord>, PersistError>>,
    ),
    Count(AuditFilter, oneshot::Sender<Result<u64, PersistError>>),
    /// Not a read, but answered the same way: after the batch's commit, in its own
    /// statement, so a long prune never holds back the batch's acknowledgements.
    Prune(i64, oneshot::Sender<Result<u64, PersistError>>),
}

impl Read {
    fn answer(self, conn: &Connection) {
        let failed = |err: rusqlite::Error| PersistError::Unavailable(err.to_string().into());
        match self {
            Read::Tokens(reply) => drop(reply.send(read_tokens(conn).map_err(failed))),
            Read::Audit(filter, reply) => {
                drop(reply.send(read_audit(conn, &filter).map_err(failed)))
            }
            Read::Count(filter, reply) => {
                drop(reply.send(count_audit(conn, &filter).map_err(failed)))
            }
            Read::Prune(before, reply) => {
                drop(reply.send(prune_audit(conn, before).map_err(failed)))
            }
        }
    }
}

fn write_change(
    tx: &rusqlite::Transaction<'_>,
    record: &ChangeRecord,
    actor: &Identity,
) -> rusqlite::Result<()> {
    let entry = record.audit();
    let mut audit = actor_entry(
        actor,
        AuditKind::of(entry.kind),
        entry.resource.as_ref().map(|r| r.as_str()),
        entry.at_unix_ms,
        entry.what,
        entry.before,
        entry.after,
    );
    audit.change = Some(entry.change);
    audit.snapshot = entry.snapshot.as_ref().map(|s| s.change);
    insert_audit(tx, &audit)?;
    if let Some(snapshot) = &record.snapshot {
        let body = serde_json::to_string(&**snapshot)
            .map_err(|err| corrupt(format!("snapshot {}: {err}", snapshot.change)))?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO snapshots(change, hash, body) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![snapshot.change as i64, snapshot.hash(), body])?;
    }
    Ok(())
}

fn write_baseline(tx: &rusqlite::Transaction<'_>, state: &PersistedState) -> rusqlite::Result<()> {
    let mut meta = tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
    meta.execute(["change", &state.change.to_string()])?;
    meta.execute(["autosave_every", &state.autosave.every().to_string()])?;
    meta.execute(["snapshot_capacity", &state.autosave.capacity().to_string()])?;
    tx.execute("DELETE FROM resources", [])?;
    for r in &state.resources {
        let body =
            serde_json::to_string(r).map_err(|err| corrupt(format!("resource {}: {err}", r.id)))?;
        tx.prepare_cached("INSERT INTO resources(id, body) VALUES (?1, ?2)")?
            .execute(params![r.id.as_str(), body])?;
    }
    Ok(())
}

fn insert_audit(tx: &rusqlite::Transaction<'_>, e: &AuditRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO audit(change, at_unix_ms, kind, resource, user, role, source, client_ip, \
         what, before, after, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        e.change.map(|c| c as i64),
        e.at_unix_ms,
        e.kind.as_str(),
        e.resource,
        e.user,
        e.role,
        e.source,
        e.client_ip,
        e.what,
        e.before.to_string(),
        e.after.to_string(),
        e.snapshot.map(|s| s as i64),
    ])?;
    Ok(())
}

/// Brings the `resources` table to `state` for the ids the batch touched (all of them
/// after a restore).
fn write_resources(
    tx: &rusqlite::Transaction<'_>,
    state: &State,
    touched: &std::collections::BTreeSet<engine::model::ResourceId>,
    everything: bool,
) -> rusqlite::Result<()> {
    let upsert = |r: &Resource| -> rusqlite::Result<()> {
        let body =
            serde_json::to_string(r).map_err(|err| corrupt(format!("resource {}: {err}", r.id)))?;
        tx.prepare_cached("INSERT OR REPLACE INTO resources(id, body) VALUES (?1, ?2)")?
            .execute(params![r.id.as_str(), body])?;
        Ok(())
    };
    if everything {
        tx.execute("DELETE FROM resources", [])?;
        for r in state.resources.values() {
            upsert(r)?;
        }
        return Ok(());
    }
    for id in touched {
        match state.resources.get(id) {
            Some(r) => upsert(r)?,
            None => {
                tx.prepare_cached("DELETE FROM resources WHERE id = ?1")?
                    .execute([id.as_str()])?;
            }
        }
    }
    Ok(())
}

fn save_token(
    tx: &rusqlite::Transaction<'_>,
    row: &TokenRow,
    by: &Identity,
) -> Result<(), PersistError> {
    let hex_ok = row.sha256_hex.len() == 64
        && row
            .sha256_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_ok {
        return Err(PersistError::Refused(
            "sha256_hex: must be 64 lower-case hex digits (the SHA-256 of the secret)".into(),
        ));
    }
    let unavailable = |err: rusqlite::Error| PersistError::Unavailable(err.to_string().into());
    let exists: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM tokens WHERE id = ?1 OR sha256_hex = ?2",
            params![row.id, row.sha256_hex],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    if exists.is_some() {
        return Err(PersistError::Refused(format!(
            "id: a token with id {:?} or the same secret already exists",
            row.id
        )));
    }
    tx.execute(
        "INSERT INTO tokens(id, name, role, sha256_hex, created_by, created_at_unix_ms, \
         revoked_at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            row.id,
            row.name,
            row.role.as_str(),
            row.sha256_hex,
            row.created_by,
            row.created_at_unix_ms,
            row.revoked_at_unix_ms
        ],
    )
    .map_err(unavailable)?;
    insert_audit(
        tx,
        &actor_entry(
            by,
            AuditKind::TokenCreate,
            None,
            row.created_at_unix_ms,
            format!(
                "token {:?} ({}) created with role {}",
                row.name, row.id, row.role
            ),
            serde_json::Value::Null,
            token_json(row),
        ),
    )
    .map_err(unavailable)
}

/// The audit view of a token: everything but the hash of its secret.
fn token_json(row: &TokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_by": row.created_by,
        "created_at_unix_ms": row.created_at_unix_ms,
        "revoked_at_unix_ms": row.revoked_at_unix_ms,
    })
}

fn revoke_token(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    by: &Identity,
    at_unix_ms: i64,
) -> rusqlite::Result<Result<TokenRow, PersistError>> {
    let Some(before) = tx
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
            [id],
            token_row,
        )
        .optional()?
    else {
        return Ok(Err(PersistError::Refused(format!(
            "id: no token with id {id:?}"
        ))));
    };
    if before.revoked_at_unix_ms.is_some() {
        return Ok(Err(PersistError::Refused(format!(
            "id: token {id:?} is already revoked"
        ))));
    }
    tx.execute(
        "UPDATE tokens SET revoked_at_unix_ms = ?1 WHERE id = ?2",
        params![at_unix_ms, id],
    )?;
    let after = TokenRow {
        revoked_at_unix_ms: Some(at_unix_ms),
        ..before.clone()
    };
    insert_audit(
        tx,
        &actor_entry(
            by,
            AuditKind::TokenRevoke,
            None,
            at_unix_ms,
            format!("token {:?} ({id}) revoked", before.name),
            token_json(&before),
            token_json(&after),
        ),
    )?;
    Ok(Ok(after))
}

const TOKEN_COLUMNS: &str =
    "id, name, role, sha256_hex, created_by, created_at_unix_ms, revoked_at_unix_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let role: String = r.get(2)?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("tokens.role {role:?} is not a role").into(),
            )
        })?,
        sha256_hex: r.get(3)?,
        created_by: r.get(4)?,
        created_at_unix_ms: r.get(5)?,
        revoked_at_unix_ms: r.get(6)?,
    })
}

fn read_tokens(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at_unix_ms, id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    rows.collect()
}

/// The `WHERE` clause of `f` and its parameters (numbered), shared by the listing and
/// the count so they can never disagree.
fn audit_where(f: &AuditFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut push = |column_test: &str, value: Value| {
        args.push(value);
        sql.push_str(&column_test.replace('?', &format!("?{}", args.len())));
    };
    if let Some(user) = &f.user {
        push(" AND user = ?", Value::Text(user.clone()));
    }
    if let Some(resource) = &f.resource {
        push(" AND resource = ?", Value::Text(resource.clone()));
    }
    if let Some(kind) = &f.kind {
        push(" AND kind = ?", Value::Text(kind.as_str().to_owned()));
    }
    if let Some(since) = f.since {
        push(" AND at_unix_ms >= ?", Value::Integer(since));
    }
    if let Some(until) = f.until {
        push(" AND at_unix_ms < ?", Value::Integer(until));
    }
    if let Some(text) = &f.text {
        // instr on lower() instead of LIKE: no wildcard characters to escape, and the same
        // rule as `AuditFilter::matches` for ASCII. One parameter, used three times.
        push(
            " AND (instr(lower(what), ?) > 0 OR instr(lower(user), ?) > 0 \
             OR instr(lower(coalesce(resource, '')), ?) > 0)",
            Value::Text(text.to_lowercase()),
        );
    }
    if !f.changes.is_empty() {
        // One JSON array parameter instead of one per number: SQLite caps the parameters
        // of a statement, and a long list would hit the cap.
        let list = serde_json::to_string(&f.changes).unwrap_or_else(|_| "[]".into());
        args.push(Value::Text(list));
        sql.push_str(&format!(
            " AND change IN (SELECT value FROM json_each(?{}))",
            args.len()
        ));
    }
    (sql, args)
}

/// Audit entries one prune statement removes at most.
const PRUNE_BATCH: u64 = 10_000;

/// Removes up to [`PRUNE_BATCH`] of the oldest entries from before `before`. Nothing is
/// removed unless an entry at or after `before` exists: a clock that jumped ahead must not
/// wipe the whole log (an idle log past its retention simply waits for the next entry).
fn prune_audit(conn: &Connection, before: i64) -> rusqlite::Result<u64> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_unix_ms < ?1 \
             ORDER BY id LIMIT ?2) AND EXISTS (SELECT 1 FROM audit WHERE at_unix_ms >= ?1)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    Ok(removed as u64)
}

fn count_audit(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<u64> {
    let (filter, args) = audit_where(f);
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM audit{filter}"),
        rusqlite::params_from_iter(args),
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

fn read_audit(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<Vec<AuditRecord>> {
    let (filter, mut args) = audit_where(f);
    args.push(rusqlite::types::Value::Integer(f.limit as i64));
    let sql = format!(
        "SELECT id, change, at_unix_ms, kind, resource, user, role, source, client_ip, what, \
         before, after, snapshot FROM audit{filter} ORDER BY id DESC LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
            let text: String = r.get(i)?;
            Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
        };
        Ok(AuditRecord {
            id: r.get(0)?,
            change: r.get::<_, Option<i64>>(1)?.map(|c| c as u64),
            at_unix_ms: r.get(2)?,
            kind: {
                let kind: String = r.get(3)?;
                AuditKind::parse(&kind).ok_or_else(|| corrupt(format!("audit kind {kind:?}")))?
            },
            resource: r.get(4)?,
            user: r.get(5)?,
            role: r.get(6)?,
            source: r.get(7)?,
            client_ip: r.get(8)?,
            what: r.get(9)?,
            before: json(10)?,
            after: json(11)?,
            snapshot: r.get::<_, Option<i64>>(12)?.map(|s| s as u64),
        })
    })?;
    rows.collect()
}

/// Where a `--data-dir` database would be, for messages.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::changes::{ChangeStore, Mutation, StoreOptions};
    use engine::model::{ResourceId, ResourceType};

    fn admin() -> Identity {
        Identity {
            user: "alice".into(),
            role: Role::Admin,
            source: AuthSource::Proxy,
            client_ip: Some("10.0.0.7".parse().unwrap()),
        }
    }

    fn token(id: &str, secret_hash_digit: char) -> TokenRow {
        TokenRow {
            id: id.into(),
            name: format!("ci {id}"),
            role: Role::Editor,
            sha256_hex: secret_hash_digit.to_string().repeat(64),
            created_by: "alice".into(),
            created_at_unix_ms: 1_000,
            revoked_at_unix_ms: None,
        }
    }

    /// A store holding one resource, `cpu`.
    fn cpu_store(options: StoreOptions) -> ChangeStore {
        let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
        ChangeStore::with_resources(vec![cpu], options).unwrap()
    }

    /// Sets the `cpu` resource's target to each value in turn, each change durable.
    async fn set_cpu_target(store: &ChangeStore, persist: &Persist, values: &[f64]) {
        let cpu = ResourceId::new("cpu").unwrap();
        for &value in values {
            let mut target = store.state().resources[&cpu].target.clone().unwrap();
            target.value = value;
            let mutation = Mutation::SetTarget {
                id: cpu.clone(),
                target,
            };
            let record = store
                .apply_with(mutation, |r, s| persist.enqueue_change(r, s, &admin()))
                .unwrap();
            persist.durable(record.change).await.unwrap();
        }
    }

    /// Opens `location` again once the previous handle's writer thread has let go of the
    /// exclusive lock (its channel closed when the handle was dropped).
    async fn reopen(location: &Location) -> (Persist, Loaded) {
        loop {
            match Persist::open(location) {
                Ok(opened) => return opened,
                Err(err) if err.to_string().contains("locked") => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(err) => panic!("{err:#}"),
            }
        }
    }

    #[tokio::test]
    async fn tokens_are_saved_revoked_listed_and_audited() {
        let (persist, _) = Persist::open(&Location::Memory).unwrap();
        persist
            .save_token(token("t1", 'a'), &admin())
            .await
            .unwrap();
        let duplicate = persist.save_token(token("t2", 'a'), &admin()).await;
        assert!(
            matches!(duplicate, Err(PersistError::Refused(_))),
            "{duplicate:?}"
        );
        let bad_hash = TokenRow {
            sha256_hex: "XYZ".into(),
            ..token("t3", 'b')
        };
        let err = persist.save_token(bad_hash, &admin()).await.unwrap_err();
        assert!(
            err.to_string().starts_with("sha256_hex: must be 64"),
            "{err}"
        );

        let revoked = persist.revoke_token("t1", &admin()).await.unwrap();
        assert!(revoked.revoked_at_unix_ms.is_some());
        let again = persist.revoke_token("t1", &admin()).await.unwrap_err();
        assert_eq!(again.to_string(), "id: token \"t1\" is already revoked");
        assert_eq!(persist.tokens().await.unwrap(), vec![revoked]);

        let entries = persist.query_audit(AuditFilter::default()).await.unwrap();
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, vec!["token_revoke", "token_create"]);
        assert!(entries.iter().all(|e| e.change.is_none()
            && e.user == "alice"
            && e.client_ip.as_deref() == Some("10.0.0.7")));
        // The secret's hash never reaches the audit log.
        assert!(!entries[1].after.to_string().contains(&"a".repeat(64)));
    }

    /// A write that fails (here a journal record whose change number is already taken,
    /// standing in for a full disk) fails its waiters and every later change with the
    /// reason, instead of acknowledging anything it did not store.
    #[tokio::test]
    async fn a_failed_write_is_reported_and_refuses_everything_after_it() {
        let (persist, _) = Persist::open(&Location::Memory).unwrap();
        let cpu = ResourceId::new("cpu").unwrap();
        let store = cpu_store(StoreOptions::default());
        let record = store
            .apply_with(Mutation::ClearTarget { id: cpu.clone() }, |r, s| {
                persist.enqueue_change(r, s, &admin())
            })
            .unwrap();
        persist.durable(record.change).await.unwrap();
        assert!(persist.check().is_ok());

        persist.enqueue_change(&record, &store.state(), &admin());
        let next = store
            .apply_with(Mutation::ClearTarget { id: cpu }, |r, s| {
                persist.enqueue_change(r, s, &admin())
            })
            .unwrap();
        let err = persist.durable(next.change).await.unwrap_err();
        assert!(matches!(err, PersistError::Unavailable(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("UNIQUE constraint failed: audit.change"),
            "{err}"
        );
        assert!(
            persist.check().is_err(),
            "later changes are refused up front"
        );
        assert!(persist.tokens().await.is_err(), "and so is everything else");
    }

    #[tokio::test]
    async fn only_the_newest_before_afters_are_kept_and_loaded() {
        let dir = std::env::temp_dir().join(format!("perfpilot-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let location = Location::Dir(dir.clone());
        {
            let (persist, _) = Persist::open(&location).unwrap();
            for n in 0..crate::state::proof::KEEP + 5 {
                persist.save_event(n as i64, "cpu", serde_json::json!({ "n": n }));
            }
            persist.flush().await;
        }
        let (_persist, loaded) = reopen(&location).await;
        let kept: Vec<u64> = loaded
            .events
            .iter()
            .map(|e| e["n"].as_u64().unwrap())
            .collect();
        assert_eq!(kept.len(), crate::state::proof::KEEP);
        assert_eq!(kept.first(), Some(&5), "the oldest five were pruned");
        assert_eq!(kept.last(), Some(&(crate::state::proof::KEEP as u64 + 4)));
        drop(_persist);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn pruning_removes_only_audit_entries_older_than_the_cut() {
        let (persist, _) = Persist::open(&Location::Memory).unwrap();
        for at in [1_000, 2_000, 3_000, 4_000] {
            persist.audit_mark("cpu", &format!("at {at}"), &admin(), at);
        }
        // A cut after the newest entry (a clock gone wrong) removes nothing.
        assert_eq!(persist.prune_audit(10_000).await.unwrap(), 0);
        assert_eq!(persist.prune_audit(3_000).await.unwrap(), 2);
        let left: Vec<i64> = persist
            .query_audit(AuditFilter::default())
            .await
            .unwrap()
            .iter()
            .map(|e| e.at_unix_ms)
            .collect();
        assert_eq!(left, vec![4_000, 3_000]);
    }

    #[tokio::test]
    async fn pruning_more_than_a_batch_takes_several_statements_and_removes_all() {
        let (persist, _) = Persist::open(&Location::Memory).unwrap();
        let old = PRUNE_BATCH as i64 + 5;
        for at in 1..=old {
            persist.audit_mark("cpu", "old", &admin(), at);
        }
        persist.audit_mark("cpu", "new", &admin(), old + 1_000);
        assert_eq!(persist.prune_audit(old + 1).await.unwrap(), old as u64);
        let left = persist.count_audit(AuditFilter::default()).await.unwrap();
        assert_eq!(left, 1);
    }

    #[tokio::test]
    async fn the_audit_query_selects_exactly_the_asked_change_numbers() {
        let (persist, _) = Persist::open(&Location::Memory).unwrap();
        let store = cpu_store(StoreOptions::default());
        persist.baseline(store.persisted());
        set_cpu_target(&store, &persist, &[10.0, 20.0, 30.0, 40.0, 50.0]).await;
        persist.audit_mark("cpu", "deploy", &admin(), 5_000);
        persist.flush().await;

        let filter = AuditFilter {
            changes: vec![2, 4, 99],
            ..AuditFilter::default()
        };
        let entries = persist.query_audit(filter.clone()).await.unwrap();
        let changes: Vec<Option<u64>> = entries.iter().map(|e| e.change).collect();
        assert_eq!(changes, vec![Some(4), Some(2)], "newest first, no mark");
        assert_eq!(persist.count_audit(filter.clone()).await.unwrap(), 2);
        // The in-memory rule agrees with the query on every entry.
        let everything = persist.query_audit(AuditFilter::default()).await.unwrap();
        assert_eq!(everything.len(), 6);
        let matching: Vec<&AuditRecord> = everything.iter().filter(|e| filter.matches(e)).collect();
        assert_eq!(matching.len(), 2);
    }

    #[tokio::test]
    async fn changes_are_durable_in_order_and_reload_into_the_same_store() {
        let dir = std::env::temp_dir().join(format!("perfpilot-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let location = Location::Dir(dir.clone());
        let every = 3;
        let options = || StoreOptions {
            autosave: AutoSave::new(every, 100).unwrap(),
            ..StoreOptions::default()
        };
        let cpu = ResourceId::new("cpu").unwrap();
        let expected = {
            let (persist, loaded) = Persist::open(&location).unwrap();
            assert!(loaded.state.is_none(), "a fresh directory holds nothing");
            let store = cpu_store(options());
            persist.baseline(store.persisted());
            set_cpu_target(&store, &persist, &[10.0, 20.0, 30.0, 40.0]).await;
            persist.flush().await;
            store.persisted()
        };
        let (_persist, loaded) = reopen(&location).await;
        let state = loaded.state.expect("the stored state");
        assert_eq!(state, expected);
        assert_eq!(state.change, 4);
        assert_eq!(state.snapshots.len(), 1);
        assert_eq!(loaded.audit_entries, 4);
        let store = ChangeStore::from_persisted(state, options()).unwrap();
        assert_eq!(
            store.state().resources[&cpu].target.as_ref().unwrap().value,
            40.0
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The Changes page's "snapshots taken" goes on counting after a restart, even when
    /// the ring kept fewer snapshots than were taken (it read 0 after every restart).
    #[tokio::test]
    async fn snapshots_taken_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("perfpilot-taken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let location = Location::Dir(dir.clone());
        // Every 2nd change, a ring of 2: 8 changes take 4 snapshots and keep 2.
        let options = || StoreOptions {
            autosave: AutoSave::new(2, 2).unwrap(),
            ..StoreOptions::default()
        };
        {
            let (persist, _) = Persist::open(&location).unwrap();
            let store = cpu_store(options());
            persist.baseline(store.persisted());
            set_cpu_target(&store, &persist, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).await;
            persist.flush().await;
            assert_eq!(store.stats().snapshots_taken, 4);
        }
        let (_persist, loaded) = reopen(&location).await;
        let store = ChangeStore::from_persisted(loaded.state.unwrap(), options()).unwrap();
        let stats = store.stats();
        assert_eq!((stats.snapshots_taken, stats.snapshots_kept), (4, 2));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
