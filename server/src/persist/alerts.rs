//! The alert store (`<data-dir>/alerts.db`): firing alerts (so "resolved" is sent after a
//! restart), their history, silences and acknowledgements, and the **outbox** of
//! notifications with their delivery state.
//!
//! Its own file and connection, apart from `perfpilot.db`: notifications are written by
//! the monitor on a transition and by the delivery task, never on the change path, so they
//! neither wait behind nor delay configuration changes. Writes are synchronous
//! (`synchronous = FULL`, WAL): a notification is on disk before anyone tries to send it,
//! and a transition's state and its notifications commit in one transaction, so a
//! `kill -9` loses neither. Delivery is at least once; every notification carries an
//! idempotency key, so a receiver can drop the one repeat a crash between its answer and
//! our bookkeeping can cause.
//!
//! With `--database-url` the same tables live in the shared PostgreSQL (created with the
//! rest of its schema, `persist::SCHEMA_POSTGRES`): replicas share one outbox, so a new
//! leader sends what has no delivery record and nothing that has one.

use std::path::Path;
use std::sync::Mutex;

use engine::alerts::Notification;
use engine::sync::lock;
use rusqlite::Connection;

use super::sql::{args, Dialect, Row, Sql, SqlError};

const FILE: &str = "alerts.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS firing (
    resource    TEXT PRIMARY KEY,
    started_ms  INTEGER NOT NULL,
    summary     TEXT NOT NULL,
    acked_by    TEXT,
    acked_ms    INTEGER,
    ack_comment TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS episodes (
    resource    TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    summary     TEXT NOT NULL,
    end_summary TEXT,
    PRIMARY KEY (resource, started_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS episodes_started ON episodes(started_ms);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL UNIQUE,
    channel    TEXT NOT NULL,
    stream     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    due_ms     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending',
    detail     TEXT,
    sent_ms    INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id);
CREATE INDEX IF NOT EXISTS outbox_stream ON outbox(stream, channel, kind);
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    matcher    TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    starts_ms  INTEGER NOT NULL,
    ends_ms    INTEGER NOT NULL,
    expired_by TEXT
);
";

/// A firing alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FiringRow {
    pub resource: String,
    pub started_ms: i64,
    pub summary: String,
    pub acked_by: Option<String>,
    pub acked_ms: Option<i64>,
    pub ack_comment: Option<String>,
}

impl FiringRow {
    /// The alert episode's identity in the outbox.
    pub fn stream(&self) -> String {
        stream(&self.resource, self.started_ms)
    }
}

pub fn stream(resource: &str, started_ms: i64) -> String {
    format!("{resource}@{started_ms}")
}

/// A notification to a channel, waiting or done.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    /// Deliveries of one stream (an alert episode) to one channel go in order.
    pub stream: String,
    pub notification: Notification,
    pub created_ms: i64,
    pub due_ms: i64,
    pub attempts: u32,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// The receiver's answer, or the last error.
    pub detail: Option<String>,
    pub sent_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub resource: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub summary: String,
    pub end_summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRow {
    pub id: i64,
    pub matcher: String,
    pub comment: String,
    pub created_by: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub expired_by: Option<String>,
}

impl SilenceRow {
    pub fn active(&self, now_ms: i64) -> bool {
        self.expired_by.is_none() && self.starts_ms <= now_ms && now_ms < self.ends_ms
    }
}

/// A channel's outbox in numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelCounts {
    pub channel: String,
    /// Not yet delivered (held, or being retried).
    pub waiting: u32,
    /// Given up.
    pub failed: u32,
    pub last_error: Option<String>,
}

/// An episode's firing notifications on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiringSent {
    pub count: u32,
    /// When the last one went (sent, or due when it never went), else was queued.
    pub last_ms: Option<i64>,
    /// Queued and not yet delivered nor given up.
    pub waiting: u32,
}

/// A notification to enqueue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub channel: String,
    pub stream: String,
    pub due_ms: i64,
    pub notification: Notification,
}

pub struct AlertDb {
    conn: Mutex<Box<dyn Sql>>,
    dialect: Dialect,
}

impl std::fmt::Debug for AlertDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertDb").finish_non_exhaustive()
    }
}

type DbResult<T> = Result<T, SqlError>;

const FIRING_COLUMNS: &str = "resource, started_ms, summary, acked_by, acked_ms, ack_comment";
const OUTBOX_COLUMNS: &str =
    "id, channel, stream, body, created_ms, due_ms, attempts, state, detail, sent_ms";
const SILENCE_COLUMNS: &str = "id, matcher, comment, created_by, starts_ms, ends_ms, expired_by";

impl AlertDb {
    /// `<dir>/alerts.db`, or an in-memory database (`--ephemeral`).
    pub fn open(dir: Option<&Path>) -> anyhow::Result<AlertDb> {
        let conn = match dir {
            None => Connection::open_in_memory()?,
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(FILE);
                let conn = Connection::open(&path)
                    .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", path.display()))?;
                conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
                conn.execute_batch("PRAGMA synchronous = FULL;")?;
                conn
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA).map_err(|err| {
            anyhow::anyhow!("the alert store cannot be used: {err}. Move alerts.db aside to start without alert history")
        })?;
        Ok(AlertDb {
            conn: Mutex::new(Box::new(super::sql::Sqlite(conn))),
            dialect: Dialect::Sqlite,
        })
    }

    /// The alert tables of the shared PostgreSQL (created with the rest of its schema).
    pub fn shared(
        settings: &connectors::sources::postgres::PostgresSettings,
    ) -> anyhow::Result<AlertDb> {
        let conn = super::sql::Postgres::connect(settings)
            .map_err(|err| anyhow::anyhow!("database.url: the alert store: {err}"))?;
        Ok(AlertDb {
            conn: Mutex::new(Box::new(conn)),
            dialect: Dialect::Postgres,
        })
    }

    /// Runs `work` in one transaction.
    fn tx<T>(&self, work: impl FnOnce(&mut dyn Sql) -> DbResult<T>) -> DbResult<T> {
        let mut conn = lock(&self.conn);
        conn.batch("BEGIN")?;
        match work(&mut **conn) {
            Ok(value) => {
                conn.batch("COMMIT")?;
                Ok(value)
            }
            Err(err) => {
                let _ = conn.batch("ROLLBACK");
                Err(err)
            }
        }
    }

    pub fn firing(&self) -> DbResult<Vec<FiringRow>> {
        lock(&self.conn)
            .query(
                &format!("SELECT {FIRING_COLUMNS} FROM firing ORDER BY started_ms"),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(FiringRow {
                    resource: r.text(0)?,
                    started_ms: r.int(1)?,
                    summary: r.text(2)?,
                    acked_by: r.opt_text(3)?,
                    acked_ms: r.opt_int(4)?,
                    ack_comment: r.opt_text(5)?,
                })
            })
            .collect()
    }

    /// An alert started firing: its state and its episode, in one transaction.
    pub fn fire(&self, resource: &str, started_ms: i64, summary: &str) -> DbResult<()> {
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO firing (resource, started_ms, summary) VALUES (?1, ?2, ?3)
                 ON CONFLICT(resource) DO UPDATE SET started_ms = excluded.started_ms,
                   summary = excluded.summary, acked_by = NULL, acked_ms = NULL,
                   ack_comment = NULL",
                args![resource, started_ms, summary],
            )?;
            tx.execute(
                "INSERT INTO episodes (resource, started_ms, summary) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                args![resource, started_ms, summary],
            )?;
            Ok(())
        })
    }

    /// An alert resolved: its state goes, its episode ends and its "resolved"
    /// notifications are queued, all in one transaction.
    pub fn resolve(
        &self,
        resource: &str,
        started_ms: i64,
        ended_ms: i64,
        summary: &str,
        outgoing: &[Outgoing],
        now_ms: i64,
    ) -> DbResult<()> {
        self.tx(|tx| {
            tx.execute(
                "DELETE FROM firing WHERE resource = ?1 AND started_ms = ?2",
                args![resource, started_ms],
            )?;
            tx.execute(
                "UPDATE episodes SET ended_ms = ?3, end_summary = ?4
                 WHERE resource = ?1 AND started_ms = ?2",
                args![resource, started_ms, ended_ms, summary],
            )?;
            insert_outgoing(tx, outgoing, now_ms)?;
            Ok(())
        })
    }

    /// Queues one notification and answers its row id.
    pub fn enqueue_one(&self, outgoing: &Outgoing, now_ms: i64) -> DbResult<i64> {
        self.tx(|tx| {
            insert_outgoing(tx, std::slice::from_ref(outgoing), now_ms)?;
            tx.query_one(
                "SELECT id FROM outbox WHERE key = ?1",
                args![outgoing.notification.key.clone()],
            )?
            .int(0)
        })
    }

    /// Queues notifications; one whose key is already queued is left as it is.
    pub fn enqueue(&self, outgoing: &[Outgoing], now_ms: i64) -> DbResult<usize> {
        self.tx(|tx| insert_outgoing(tx, outgoing, now_ms))
    }

    /// The firing notifications of `stream` queued for `channel`.
    pub fn firing_sent(&self, stream: &str, channel: &str) -> DbResult<FiringSent> {
        // The last one counts from when it went (or was due, if it never went): one held
        // by quiet hours or retried for a while is not followed by a repeat at once.
        let sql = format!(
            "SELECT COUNT(*), MAX({}), COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0)
             FROM outbox WHERE stream = ?1 AND channel = ?2 AND kind = 'firing'",
            self.dialect
                .greatest(&["created_ms", "due_ms", "COALESCE(sent_ms, due_ms)"])
        );
        let r = lock(&self.conn).query_one(&sql, args![stream, channel])?;
        Ok(FiringSent {
            count: r.int(0)? as u32,
            last_ms: r.opt_int(1)?,
            waiting: r.int(2)? as u32,
        })
    }

    /// Channels that were sent a firing notification of `stream`.
    pub fn channels_told(&self, stream: &str) -> DbResult<Vec<String>> {
        lock(&self.conn)
            .query(
                "SELECT DISTINCT channel FROM outbox WHERE stream = ?1 AND kind = 'firing'",
                args![stream],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Waiting notifications, oldest first.
    pub fn pending(&self) -> DbResult<Vec<OutboxRow>> {
        self.outbox_where("state = 'pending' ORDER BY id", 100_000)
    }

    /// The latest deliveries, newest first.
    pub fn recent(&self, limit: usize) -> DbResult<Vec<OutboxRow>> {
        self.outbox_where("1 = 1 ORDER BY id DESC", limit)
    }

    fn outbox_where(&self, clause: &str, limit: usize) -> DbResult<Vec<OutboxRow>> {
        lock(&self.conn)
            .query(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {clause} LIMIT {limit}"),
                &[],
            )?
            .iter()
            .map(|r| {
                let body = r.text(3)?;
                let notification = serde_json::from_str(&body)
                    .map_err(|err| SqlError(format!("outbox body: {err}")))?;
                Ok(OutboxRow {
                    id: r.int(0)?,
                    channel: r.text(1)?,
                    stream: r.text(2)?,
                    notification,
                    created_ms: r.int(4)?,
                    due_ms: r.int(5)?,
                    attempts: r.int(6)? as u32,
                    state: r.text(7)?,
                    detail: r.opt_text(8)?,
                    sent_ms: r.opt_int(9)?,
                })
            })
            .collect()
    }

    pub fn mark_sent(&self, id: i64, attempts: u32, now_ms: i64, detail: &str) -> DbResult<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET state = 'sent', attempts = ?2, sent_ms = ?3, detail = ?4 WHERE id = ?1",
            args![id, i64::from(attempts), now_ms, detail],
        )?;
        Ok(())
    }

    pub fn mark_retry(&self, id: i64, attempts: u32, due_ms: i64, error: &str) -> DbResult<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET attempts = ?2, due_ms = ?3, detail = ?4 WHERE id = ?1",
            args![id, i64::from(attempts), due_ms, error],
        )?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> DbResult<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET state = 'failed', attempts = ?2, detail = ?3 WHERE id = ?1",
            args![id, i64::from(attempts), error],
        )?;
        Ok(())
    }

    /// Per channel: notifications waiting, failed for good, and the last error.
    pub fn channel_stats(&self) -> DbResult<Vec<ChannelCounts>> {
        lock(&self.conn)
            .query(
                "SELECT channel,
                        SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END),
                        (SELECT detail FROM outbox o2 WHERE o2.channel = o.channel
                           AND (o2.state = 'failed' OR (o2.state = 'pending' AND o2.attempts > 0))
                           ORDER BY id DESC LIMIT 1)
                 FROM outbox o GROUP BY channel",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ChannelCounts {
                    channel: r.text(0)?,
                    waiting: r.int(1)? as u32,
                    failed: r.int(2)? as u32,
                    last_error: r.opt_text(3)?,
                })
            })
            .collect()
    }

    /// Acknowledges the firing alert of `resource` started at `started_ms` (any, if `None`).
    pub fn acknowledge(
        &self,
        resource: &str,
        started_ms: Option<i64>,
        by: &str,
        comment: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let changed = lock(&self.conn).execute(
            "UPDATE firing SET acked_by = ?2, acked_ms = ?3, ack_comment = ?4
             WHERE resource = ?1 AND (CAST(?5 AS BIGINT) IS NULL OR started_ms = ?5)",
            args![resource, by, now_ms, comment, started_ms],
        )?;
        Ok(changed > 0)
    }

    pub fn add_silence(
        &self,
        matcher: &str,
        comment: &str,
        by: &str,
        starts_ms: i64,
        ends_ms: i64,
    ) -> DbResult<i64> {
        lock(&self.conn)
            .query_one(
                "INSERT INTO silences (matcher, comment, created_by, starts_ms, ends_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                args![matcher, comment, by, starts_ms, ends_ms],
            )?
            .int(0)
    }

    /// Ends a silence now; `None` when there is no such silence still active.
    pub fn expire_silence(&self, id: i64, by: &str, now_ms: i64) -> DbResult<Option<SilenceRow>> {
        let mut conn = lock(&self.conn);
        let changed = conn.execute(
            &format!(
                "UPDATE silences SET expired_by = ?2, ends_ms = {}
                 WHERE id = ?1 AND expired_by IS NULL AND ends_ms > ?3",
                self.dialect.least(&["ends_ms", "?3"])
            ),
            args![id, by, now_ms],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        conn.query_opt(
            &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"),
            args![id],
        )?
        .map(|r| silence_row(&r))
        .transpose()
    }

    /// Every silence active now, then the latest 200 that ended in the last day; newest
    /// first in each part. Active ones are never cut: they decide what is sent.
    pub fn silences(&self, now_ms: i64) -> DbResult<Vec<SilenceRow>> {
        let mut conn = lock(&self.conn);
        let mut rows = conn
            .query(
                &format!(
                    "SELECT {SILENCE_COLUMNS} FROM silences
                     WHERE expired_by IS NULL AND ends_ms > ?1 ORDER BY id DESC"
                ),
                args![now_ms],
            )?
            .iter()
            .map(silence_row)
            .collect::<DbResult<Vec<_>>>()?;
        for r in conn.query(
            &format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_ms > ?1 - 86400000
                   AND NOT (expired_by IS NULL AND ends_ms > ?1)
                 ORDER BY id DESC LIMIT 200"
            ),
            args![now_ms],
        )? {
            rows.push(silence_row(&r)?);
        }
        Ok(rows)
    }

    /// Alert episodes that overlap `[from, to)`, newest first.
    pub fn episodes(&self, from_ms: i64, to_ms: i64, limit: usize) -> DbResult<Vec<Episode>> {
        lock(&self.conn)
            .query(
                "SELECT resource, started_ms, ended_ms, summary, end_summary FROM episodes
                 WHERE started_ms < ?2 AND (ended_ms IS NULL OR ended_ms >= ?1)
                 ORDER BY started_ms DESC LIMIT ?3",
                args![from_ms, to_ms, limit as i64],
            )?
            .iter()
            .map(|r| {
                Ok(Episode {
                    resource: r.text(0)?,
                    started_ms: r.int(1)?,
                    ended_ms: r.opt_int(2)?,
                    summary: r.text(3)?,
                    end_summary: r.opt_text(4)?,
                })
            })
            .collect()
    }

    /// Whether `holder` still holds the shared store's lease in `epoch`, unexpired: the
    /// last check before a round of deliveries, so a leader that was paused past its
    /// lease does not send what its successor sends. Always true for `alerts.db`.
    pub fn still_leads(&self, holder: &str, epoch: u64) -> DbResult<bool> {
        if self.dialect == Dialect::Sqlite {
            return Ok(true);
        }
        Ok(lock(&self.conn)
            .query_opt(
                "SELECT 1 FROM lease WHERE name = 'leader' AND holder = ?1 AND epoch = ?2 \
                 AND expires_at > now()",
                args![holder, epoch as i64],
            )?
            .is_some())
    }

    /// Forgets delivered notifications and ended silences older than `deliveries_ms`,
    /// and ended episodes older than `episodes_ms` (reports read them back further).
    pub fn prune(&self, deliveries_ms: i64, episodes_ms: i64) -> DbResult<usize> {
        let mut conn = lock(&self.conn);
        let mut removed = conn.execute(
            "DELETE FROM outbox WHERE state != 'pending' AND created_ms < ?1
               AND stream NOT IN (SELECT resource || '@' || started_ms FROM firing)",
            args![deliveries_ms],
        )?;
        removed += conn.execute(
            "DELETE FROM episodes WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
            args![episodes_ms],
        )?;
        removed += conn.execute(
            "DELETE FROM silences WHERE ends_ms < ?1",
            args![deliveries_ms],
        )?;
        Ok(removed as usize)
    }
}

fn silence_row(r: &Row) -> DbResult<SilenceRow> {
    Ok(SilenceRow {
        id: r.int(0)?,
        matcher: r.text(1)?,
        comment: r.text(2)?,
        created_by: r.text(3)?,
        starts_ms: r.int(4)?,
        ends_ms: r.int(5)?,
        expired_by: r.opt_text(6)?,
    })
}

fn insert_outgoing(tx: &mut dyn Sql, outgoing: &[Outgoing], now_ms: i64) -> DbResult<usize> {
    let mut added = 0;
    for out in outgoing {
        let body = serde_json::to_string(&out.notification).expect("a notification serializes");
        added += tx.execute(
            "INSERT INTO outbox (key, channel, stream, kind, body, created_ms, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            args![
                out.notification.key.clone(),
                out.channel.clone(),
                out.stream.clone(),
                out.notification.kind.as_str(),
                body,
                now_ms,
                out.due_ms
            ],
        )?;
    }
    Ok(added as usize)
}

/// The alert store's scenarios over a fresh store: `alerts.db` in memory as this crate's
/// unit tests, the shared PostgreSQL in `tests/replicas.rs`.
#[doc(hidden)]
pub mod conformance {
    use super::*;
    use engine::alerts::NotificationKind;

    fn outgoing(key: &str, kind: NotificationKind, stream: &str) -> Outgoing {
        Outgoing {
            channel: "ops".into(),
            stream: stream.into(),
            due_ms: 0,
            notification: Notification {
                key: key.into(),
                kind,
                resource: "cpu".into(),
                resource_name: "CPU".into(),
                resource_type: "cpu".into(),
                group: None,
                metric: "utilization".into(),
                summary: "mean 90 % > 65 %".into(),
                target: None,
                value: None,
                started_ms: Some(1000),
                ended_ms: None,
                url: None,
                at_ms: 1000,
            },
        }
    }

    pub fn a_waiting_firing_notification_is_counted_until_it_is_done(db: AlertDb) {
        db.fire("cpu", 1000, "breached").unwrap();
        let s = stream("cpu", 1000);
        let first = db
            .enqueue_one(&outgoing("a", NotificationKind::Firing, &s), 2000)
            .unwrap();
        let sent = db.firing_sent(&s, "ops").unwrap();
        assert_eq!((sent.count, sent.last_ms, sent.waiting), (1, Some(2000), 1));
        db.mark_sent(first, 1, 2500, "200 OK").unwrap();
        let sent = db.firing_sent(&s, "ops").unwrap();
        assert_eq!((sent.count, sent.waiting), (1, 0));
        assert_eq!(db.firing_sent(&s, "other").unwrap().last_ms, None);
        // The same key again is the same notification: not queued twice.
        assert_eq!(
            db.enqueue(&[outgoing("a", NotificationKind::Firing, &s)], 3000)
                .unwrap(),
            0
        );
    }

    pub fn an_acknowledgement_names_its_episode(db: AlertDb) {
        db.fire("cpu", 1000, "breached").unwrap();
        assert!(!db.acknowledge("cpu", Some(999), "ann", "", 5000).unwrap());
        assert!(db
            .acknowledge("cpu", Some(1000), "ann", "mine", 5000)
            .unwrap());
        assert!(db.acknowledge("cpu", None, "bob", "", 6000).unwrap());
        assert!(!db.acknowledge("disk", None, "bob", "", 6000).unwrap());
        assert_eq!(db.firing().unwrap()[0].acked_by.as_deref(), Some("bob"));
    }

    pub fn active_silences_are_never_cut_by_the_recent_list(db: AlertDb) {
        let now = 10 * 86_400_000;
        let old = db
            .add_silence("cpu", "long", "ann", 0, now + 3_600_000)
            .unwrap();
        for i in 0..250 {
            db.add_silence("disk", "short", "ann", now - 1000 - i, now - 500 - i)
                .unwrap();
        }
        let rows = db.silences(now).unwrap();
        assert_eq!(rows.len(), 201);
        assert_eq!(rows[0].id, old);
        assert!(rows[0].active(now));
        assert!(rows[1..].iter().all(|s| !s.active(now)));
    }

    pub fn resolving_ends_the_episode_and_queues_in_one_step(db: AlertDb) {
        db.fire("cpu", 1000, "breached").unwrap();
        let s = stream("cpu", 1000);
        db.enqueue_one(&outgoing("f", NotificationKind::Firing, &s), 1500)
            .unwrap();
        assert_eq!(db.channels_told(&s).unwrap(), vec!["ops".to_owned()]);
        db.resolve(
            "cpu",
            1000,
            9000,
            "back",
            &[outgoing("r", NotificationKind::Resolved, &s)],
            9000,
        )
        .unwrap();
        assert!(db.firing().unwrap().is_empty());
        let episodes = db.episodes(0, 10_000, 10).unwrap();
        assert_eq!(episodes[0].ended_ms, Some(9000));
        let pending: Vec<String> = db
            .pending()
            .unwrap()
            .into_iter()
            .map(|r| r.notification.key)
            .collect();
        assert_eq!(pending, ["f", "r"], "resolved goes after its firing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_firing_notification_is_counted_until_it_is_done() {
        conformance::a_waiting_firing_notification_is_counted_until_it_is_done(
            AlertDb::open(None).unwrap(),
        );
    }

    #[test]
    fn an_acknowledgement_names_its_episode() {
        conformance::an_acknowledgement_names_its_episode(AlertDb::open(None).unwrap());
    }

    #[test]
    fn active_silences_are_never_cut_by_the_recent_list() {
        conformance::active_silences_are_never_cut_by_the_recent_list(AlertDb::open(None).unwrap());
    }

    #[test]
    fn resolving_ends_the_episode_and_queues_in_one_step() {
        conformance::resolving_ends_the_episode_and_queues_in_one_step(
            AlertDb::open(None).unwrap(),
        );
    }
}
