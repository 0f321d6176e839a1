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
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

pub mod alerts;
mod audit;
pub mod history;
mod schema;
pub(crate) mod sql;
mod tokens;
mod writer;

use audit::*;
use schema::*;
use sql::{args, Sql, SqlError};
pub use tokens::TokenRow;
use tokens::*;
use writer::*;

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
-- Before/afters still measuring, so a restart (even kill -9) finishes them from the
-- history on disk instead of losing them.
CREATE TABLE IF NOT EXISTS pending_events (
    key  TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL,
    sha256_hex         TEXT NOT NULL UNIQUE,
    created_by         TEXT NOT NULL,
    created_at_unix_ms INTEGER NOT NULL,
    revoked_at_unix_ms INTEGER
);
-- The action journal: each apply and rollback written before it runs, then where the
-- change ended, so whoever runs next finds a change left half-done or unverified.
CREATE TABLE IF NOT EXISTS action_journal (
    id         TEXT PRIMARY KEY,
    resource   TEXT NOT NULL,
    state      TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    body       TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS action_journal_state ON action_journal(state);
";

/// The same tables in PostgreSQL (`--database-url`), plus the leader lease replicas share
/// (`crate::state::lease`). Numbers are `BIGINT` so they bind as `i64` like SQLite's
/// `INTEGER`; `user` is quoted because PostgreSQL reserves the word.
const SCHEMA_POSTGRES: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    change     BIGINT UNIQUE,
    at_unix_ms BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    resource   TEXT,
    "user"     TEXT NOT NULL,
    role       TEXT NOT NULL,
    source     TEXT NOT NULL,
    client_ip  TEXT,
    what       TEXT NOT NULL,
    before     TEXT NOT NULL,
    after      TEXT NOT NULL,
    snapshot   BIGINT
);
CREATE INDEX IF NOT EXISTS audit_user ON audit("user", id);
CREATE INDEX IF NOT EXISTS audit_resource ON audit(resource, id);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at_unix_ms);
CREATE TABLE IF NOT EXISTS snapshots (
    change BIGINT PRIMARY KEY,
    hash   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at_unix_ms BIGINT NOT NULL,
    resource   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_events (
    key  TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL,
    sha256_hex         TEXT NOT NULL UNIQUE,
    created_by         TEXT NOT NULL,
    created_at_unix_ms BIGINT NOT NULL,
    revoked_at_unix_ms BIGINT
);
CREATE TABLE IF NOT EXISTS action_journal (
    id         TEXT PRIMARY KEY,
    resource   TEXT NOT NULL,
    state      TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    body       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS action_journal_state ON action_journal(state);
-- The alert store (`persist::alerts`), shared by replicas: one outbox for all.
CREATE TABLE IF NOT EXISTS firing (
    resource    TEXT PRIMARY KEY,
    started_ms  BIGINT NOT NULL,
    summary     TEXT NOT NULL,
    acked_by    TEXT,
    acked_ms    BIGINT,
    ack_comment TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    resource    TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT,
    summary     TEXT NOT NULL,
    end_summary TEXT,
    PRIMARY KEY (resource, started_ms)
);
CREATE INDEX IF NOT EXISTS episodes_started ON episodes(started_ms);
CREATE TABLE IF NOT EXISTS outbox (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    channel    TEXT NOT NULL,
    stream     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    due_ms     BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending',
    detail     TEXT,
    sent_ms    BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id);
CREATE INDEX IF NOT EXISTS outbox_stream ON outbox(stream, channel, kind);
CREATE TABLE IF NOT EXISTS silences (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    matcher    TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    starts_ms  BIGINT NOT NULL,
    ends_ms    BIGINT NOT NULL,
    expired_by TEXT
);
-- One row: who leads, since which epoch, until when (on the database's clock).
CREATE TABLE IF NOT EXISTS lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    address    TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL
);
"#;

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
    /// Before/afters that were still measuring, oldest first.
    pub pending: Vec<serde_json::Value>,
    pub audit_entries: u64,
    /// The load balancers' desired states as last saved in a shared store (`meta`
    /// `lb_desired`; a single perfpilot keeps them in `lb-desired.json`).
    pub lb_desired: Option<String>,
    /// The key replicas of a shared store sign forwarded edits with (`meta`
    /// `replica_key`); `None` in a store of one.
    pub replica_key: Option<Vec<u8>>,
}

/// Where the durable change number stands, and whether the database has failed.
#[derive(Debug, Clone, Default)]
struct Durable {
    upto: u64,
    failed: Option<Arc<str>>,
    /// The highest change refused by the fence (this replica no longer leads), and why:
    /// its waiters are answered without the store being marked failed.
    fenced: Option<(u64, Arc<str>)>,
}

/// Who may write what acts, in a store replicas share: this replica's name in the lease
/// and the epoch it leads in (0 while it does not lead). Every batch holding such writes
/// checks, in its own transaction and with the lease row locked until its commit, that
/// the lease is still this replica's, unexpired, in this epoch; otherwise those writes
/// are refused. So a leader paused past its lease (SIGSTOP, a long GC-like stall) that
/// wakes up believing it leads cannot write over its successor.
#[derive(Debug)]
pub struct Fence {
    pub holder: String,
    pub epoch: std::sync::atomic::AtomicU64,
}

impl Fence {
    pub fn new(holder: &str) -> Fence {
        Fence {
            holder: holder.to_owned(),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set(&self, epoch: u64) {
        self.epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }
}

enum Job {
    Change {
        record: ChangeRecord,
        state: Arc<State>,
        actor: Identity,
    },
    Audit(Box<AuditRecord>),
    Pending {
        key: String,
        body: Option<serde_json::Value>,
    },
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
    /// An action's journal entry: `body` (what undoing it needs) with its first state,
    /// then only the state. Answered once committed (or refused by the fence).
    Journal {
        id: String,
        resource: String,
        state: &'static str,
        body: Option<serde_json::Value>,
        at_unix_ms: i64,
        reply: Option<oneshot::Sender<Result<(), PersistError>>>,
    },
    /// Actions whose journal says they may still be in effect unverified.
    OpenActions(oneshot::Sender<Result<Vec<OpenAction>, PersistError>>),
    /// A `meta` entry the leader keeps (the load balancers' desired states).
    Meta {
        key: &'static str,
        value: String,
    },
    /// Reads the state back, as at start-up (a follower catching up, a new leader).
    Reload(oneshot::Sender<Result<Loaded, PersistError>>),
    /// The change number the store holds (`meta.change`), to tell whether to reload.
    StoredChange(oneshot::Sender<Result<u64, PersistError>>),
}

/// The handle request handlers and the monitor share. Cheap to clone.
#[derive(Clone)]
pub struct Persist {
    jobs: mpsc::Sender<Job>,
    durable: watch::Receiver<Durable>,
    failed: Arc<OnceLock<Arc<str>>>,
    location: Arc<str>,
    /// Set by the writer when the fence refused changes this process had applied in
    /// memory: its configuration is not the store's, whatever the numbers say.
    diverged: Arc<std::sync::atomic::AtomicBool>,
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
    /// A PostgreSQL database (`--database-url`) that replicas share; tables are created
    /// (migrated) at start.
    Postgres(Box<connectors::sources::postgres::PostgresSettings>),
}

impl Location {
    /// Where the state lives, in words for logs and errors (never a password: the URL
    /// carries none).
    pub fn describe(&self) -> String {
        match self {
            Location::Dir(dir) => dir.join(DB_FILE).display().to_string(),
            Location::Memory => "memory (--ephemeral)".to_owned(),
            Location::Postgres(settings) => format!("PostgreSQL {}", settings.url),
        }
    }

    /// Opens the store's connection. PostgreSQL's blocks on a runtime of its own, so this
    /// runs on the writer thread, never on a runtime worker.
    fn connect(&self) -> anyhow::Result<Box<dyn Sql>> {
        Ok(match self {
            Location::Memory => Box::new(sql::Sqlite(Connection::open_in_memory()?)),
            Location::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|err| {
                    anyhow::anyhow!("data_dir: cannot create {}: {err}", dir.display())
                })?;
                let path = dir.join(DB_FILE);
                let conn = Connection::open(&path)
                    .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", path.display()))?;
                Box::new(sql::Sqlite(conn))
            }
            Location::Postgres(settings) => Box::new(
                sql::Postgres::connect(settings)
                    .map_err(|err| anyhow::anyhow!("database.url: {err}"))?,
            ),
        })
    }
}

impl Persist {
    /// Opens (or creates) the database, checks its schema and reads back what it holds;
    /// then starts the writer thread. Errors are for a person: they name the file and
    /// what is wrong with it.
    pub fn open(location: &Location) -> anyhow::Result<(Persist, Loaded)> {
        Self::open_fenced(location, None)
    }

    /// [`Persist::open`] for a replica: acting writes pass only while `fence` leads.
    pub fn open_fenced(
        location: &Location,
        fence: Option<Arc<Fence>>,
    ) -> anyhow::Result<(Persist, Loaded)> {
        let (opened_tx, opened) = mpsc::sync_channel(1);
        let (jobs, rx) = mpsc::channel();
        let (durable_tx, durable) = watch::channel(Durable::default());
        let failed = Arc::new(OnceLock::new());
        let thread_failed = failed.clone();
        let diverged = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread_diverged = diverged.clone();
        let thread_location = location.clone();
        std::thread::Builder::new()
            .name("perfpilot-persist".into())
            .spawn(move || {
                let location = thread_location;
                let opened = location.connect().and_then(|mut conn| {
                    let loaded = prepare(&mut *conn, &location).map_err(|err| match &location {
                        Location::Dir(dir) => anyhow::anyhow!(
                            "the database {} cannot be used: {err}. Move it aside to start with an empty state, \
                             or restore a backup",
                            dir.join(DB_FILE).display()
                        ),
                        Location::Memory => anyhow::anyhow!("the in-memory database failed: {err}"),
                        Location::Postgres(settings) => anyhow::anyhow!(
                            "the database {} cannot be used: {err}",
                            settings.url
                        ),
                    })?;
                    Ok((conn, loaded))
                });
                let conn = match opened {
                    Ok((conn, loaded)) => {
                        let upto = loaded.state.as_ref().map_or(0, |s| s.change);
                        durable_tx.send_modify(|d| d.upto = upto);
                        let _ = opened_tx.send(Ok(loaded));
                        conn
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                Writer {
                    conn,
                    durable: durable_tx,
                    failed: thread_failed,
                    fence,
                    diverged: thread_diverged,
                }
                .run(rx)
            })?;
        let loaded = opened
            .recv()
            .map_err(|_| anyhow::anyhow!("the database thread stopped while opening"))??;
        Ok((
            Persist {
                jobs,
                durable,
                failed,
                location: location.describe().into(),
                diverged,
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
            .wait_for(|d| {
                d.upto >= change
                    || d.failed.is_some()
                    || d.fenced.as_ref().is_some_and(|(upto, _)| *upto >= change)
            })
            .await
            .map_err(|_| PersistError::Unavailable("the database writer has stopped".into()))?;
        if seen.upto >= change {
            return Ok(());
        }
        if let Some((upto, why)) = &seen.fenced {
            if *upto >= change {
                return Err(PersistError::Unavailable(why.clone()));
            }
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

    /// Keeps a before/after still measuring (`body`), or forgets it (`None`) once finished.
    pub fn save_pending(&self, key: &str, body: Option<serde_json::Value>) {
        let _ = self.send(Job::Pending {
            key: key.to_owned(),
            body,
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

    /// Reads back what the store holds now, as [`Persist::open`] did.
    pub async fn reload(&self) -> Result<Loaded, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Reload(reply))?;
        answer(rx).await
    }

    /// Whether changes made in memory were refused (by the fence, or by a shared
    /// database that failed their batch) and not yet read back; [`Persist::take_diverged`]
    /// clears it.
    pub fn is_diverged(&self) -> bool {
        self.diverged.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether changes made in memory were refused by the fence since the last call: the
    /// configuration must be read back even if the change numbers agree.
    pub fn take_diverged(&self) -> bool {
        self.diverged
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// The change number the store holds.
    pub async fn stored_change(&self) -> Result<u64, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::StoredChange(reply))?;
        answer(rx).await
    }

    /// Writes that `id`'s action is about to `state` (`applying`, `rolling_back`) and
    /// waits until that is committed: the step runs only after. A replica that no longer
    /// leads is refused here, so it never touches the service.
    pub async fn journal_before(
        &self,
        id: &str,
        resource: &str,
        state: &'static str,
        body: Option<serde_json::Value>,
    ) -> Result<(), PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Journal {
            id: id.to_owned(),
            resource: resource.to_owned(),
            state,
            body,
            at_unix_ms: engine::time::unix_now_ms(),
            reply: Some(reply),
        })?;
        answer(rx).await
    }

    /// Keeps the load balancers' desired states in the store (replicas); durable with the
    /// next commit, refused by the fence on a replica that does not lead.
    pub fn save_lb_desired(&self, body: String) {
        let _ = self.send(Job::Meta {
            key: "lb_desired",
            value: body,
        });
    }

    /// Records where `id`'s action ended (`in_effect`, `kept`, `rolled_back`, `failed`);
    /// durable with the next commit.
    pub fn journal_state(&self, id: &str, resource: &str, state: &'static str) {
        let _ = self.send(Job::Journal {
            id: id.to_owned(),
            resource: resource.to_owned(),
            state,
            body: None,
            at_unix_ms: engine::time::unix_now_ms(),
            reply: None,
        });
    }

    /// Actions the journal leaves applying, in effect or rolling back: a process that
    /// stopped (or lost the lease) before it verified or undid them.
    pub async fn open_actions(&self) -> Result<Vec<OpenAction>, PersistError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::OpenActions(reply))?;
        answer(rx).await
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

/// An action the journal says may still be in effect without a verdict.
#[derive(Debug, Clone)]
pub struct OpenAction {
    pub id: String,
    pub resource: String,
    pub state: String,
    /// What undoing it needs: `request`, `action`, `source`, `captured`.
    pub body: serde_json::Value,
}

/// The journal's key of an action: its resource and when it was decided.
pub fn journal_id(resource: &str, at_unix_ms: i64) -> String {
    format!("{resource}@{at_unix_ms}")
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

const TOKEN_COLUMNS: &str =
    "id, name, role, sha256_hex, created_by, created_at_unix_ms, revoked_at_unix_ms";

/// Audit entries one prune statement removes at most.
const PRUNE_BATCH: u64 = 10_000;

/// Where a `--data-dir` database would be, for messages.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[doc(hidden)]
pub mod conformance;
#[cfg(test)]
mod tests;
