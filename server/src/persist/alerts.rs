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

use std::path::Path;
use std::sync::Mutex;

use engine::alerts::Notification;
use engine::sync::lock;
use rusqlite::{params, Connection, OptionalExtension};

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
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for AlertDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertDb").finish_non_exhaustive()
    }
}

type Sql<T> = rusqlite::Result<T>;

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
            conn: Mutex::new(conn),
        })
    }

    pub fn firing(&self) -> Sql<Vec<FiringRow>> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(
            "SELECT resource, started_ms, summary, acked_by, acked_ms, ack_comment
             FROM firing ORDER BY started_ms",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FiringRow {
                resource: r.get(0)?,
                started_ms: r.get(1)?,
                summary: r.get(2)?,
                acked_by: r.get(3)?,
                acked_ms: r.get(4)?,
                ack_comment: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    /// An alert started firing: its state and its episode, in one transaction.
    pub fn fire(&self, resource: &str, started_ms: i64, summary: &str) -> Sql<()> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO firing (resource, started_ms, summary) VALUES (?1, ?2, ?3)",
            params![resource, started_ms, summary],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO episodes (resource, started_ms, summary) VALUES (?1, ?2, ?3)",
            params![resource, started_ms, summary],
        )?;
        tx.commit()
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
    ) -> Sql<()> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM firing WHERE resource = ?1 AND started_ms = ?2",
            params![resource, started_ms],
        )?;
        tx.execute(
            "UPDATE episodes SET ended_ms = ?3, end_summary = ?4
             WHERE resource = ?1 AND started_ms = ?2",
            params![resource, started_ms, ended_ms, summary],
        )?;
        insert_outgoing(&tx, outgoing, now_ms)?;
        tx.commit()
    }

    /// Queues one notification and answers its row id.
    pub fn enqueue_one(&self, outgoing: &Outgoing, now_ms: i64) -> Sql<i64> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        insert_outgoing(&tx, std::slice::from_ref(outgoing), now_ms)?;
        let id = tx.query_row(
            "SELECT id FROM outbox WHERE key = ?1",
            [&outgoing.notification.key],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Queues notifications; one whose key is already queued is left as it is.
    pub fn enqueue(&self, outgoing: &[Outgoing], now_ms: i64) -> Sql<usize> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let added = insert_outgoing(&tx, outgoing, now_ms)?;
        tx.commit()?;
        Ok(added)
    }

    /// The firing notifications of `stream` queued for `channel`.
    pub fn firing_sent(&self, stream: &str, channel: &str) -> Sql<FiringSent> {
        lock(&self.conn).query_row(
            // The last one counts from when it went (or was due, if it never went): one
            // held by quiet hours or retried for a while is not followed by a repeat at
            // once.
            "SELECT COUNT(*), MAX(max(created_ms, due_ms, COALESCE(sent_ms, due_ms))),
                    COALESCE(SUM(state = 'pending'), 0) FROM outbox
             WHERE stream = ?1 AND channel = ?2 AND kind = 'firing'",
            params![stream, channel],
            |r| {
                Ok(FiringSent {
                    count: r.get(0)?,
                    last_ms: r.get(1)?,
                    waiting: r.get(2)?,
                })
            },
        )
    }

    /// Channels that were sent a firing notification of `stream`.
    pub fn channels_told(&self, stream: &str) -> Sql<Vec<String>> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare("SELECT DISTINCT channel FROM outbox WHERE stream = ?1 AND kind = 'firing'")?;
        let rows = stmt.query_map([stream], |r| r.get(0))?;
        rows.collect()
    }

    /// Waiting notifications, oldest first.
    pub fn pending(&self) -> Sql<Vec<OutboxRow>> {
        self.outbox_where("state = 'pending' ORDER BY id", 100_000)
    }

    /// The latest deliveries, newest first.
    pub fn recent(&self, limit: usize) -> Sql<Vec<OutboxRow>> {
        self.outbox_where("1 = 1 ORDER BY id DESC", limit)
    }

    fn outbox_where(&self, clause: &str, limit: usize) -> Sql<Vec<OutboxRow>> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!(
            "SELECT id, channel, stream, body, created_ms, due_ms, attempts, state, detail, sent_ms
             FROM outbox WHERE {clause} LIMIT {limit}"
        ))?;
        let rows = stmt.query_map([], |r| {
            let body: String = r.get(3)?;
            let notification = serde_json::from_str(&body).map_err(|err| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    err.into(),
                )
            })?;
            Ok(OutboxRow {
                id: r.get(0)?,
                channel: r.get(1)?,
                stream: r.get(2)?,
                notification,
                created_ms: r.get(4)?,
                due_ms: r.get(5)?,
                attempts: r.get(6)?,
                state: r.get(7)?,
                detail: r.get(8)?,
                sent_ms: r.get(9)?,
            })
        })?;
        rows.collect()
    }

    pub fn mark_sent(&self, id: i64, attempts: u32, now_ms: i64, detail: &str) -> Sql<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET state = 'sent', attempts = ?2, sent_ms = ?3, detail = ?4 WHERE id = ?1",
            params![id, attempts, now_ms, detail],
        )?;
        Ok(())
    }

    pub fn mark_retry(&self, id: i64, attempts: u32, due_ms: i64, error: &str) -> Sql<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET attempts = ?2, due_ms = ?3, detail = ?4 WHERE id = ?1",
            params![id, attempts, due_ms, error],
        )?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Sql<()> {
        lock(&self.conn).execute(
            "UPDATE outbox SET state = 'failed', attempts = ?2, detail = ?3 WHERE id = ?1",
            params![id, attempts, error],
        )?;
        Ok(())
    }

    /// Per channel: notifications waiting, failed for good, and the last error.
    pub fn channel_stats(&self) -> Sql<Vec<ChannelCounts>> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(
            "SELECT channel,
                    SUM(state = 'pending'),
                    SUM(state = 'failed'),
                    (SELECT detail FROM outbox o2 WHERE o2.channel = o.channel
                       AND (o2.state = 'failed' OR (o2.state = 'pending' AND o2.attempts > 0))
                       ORDER BY id DESC LIMIT 1)
             FROM outbox o GROUP BY channel",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ChannelCounts {
                channel: r.get(0)?,
                waiting: r.get(1)?,
                failed: r.get(2)?,
                last_error: r.get(3)?,
            })
        })?;
        rows.collect()
    }

    /// Acknowledges the firing alert of `resource` started at `started_ms` (any, if `None`).
    pub fn acknowledge(
        &self,
        resource: &str,
        started_ms: Option<i64>,
        by: &str,
        comment: &str,
        now_ms: i64,
    ) -> Sql<bool> {
        let changed = lock(&self.conn).execute(
            "UPDATE firing SET acked_by = ?2, acked_ms = ?3, ack_comment = ?4
             WHERE resource = ?1 AND (?5 IS NULL OR started_ms = ?5)",
            params![resource, by, now_ms, comment, started_ms],
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
    ) -> Sql<i64> {
        let conn = lock(&self.conn);
        conn.execute(
            "INSERT INTO silences (matcher, comment, created_by, starts_ms, ends_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![matcher, comment, by, starts_ms, ends_ms],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Ends a silence now; `None` when there is no such silence still active.
    pub fn expire_silence(&self, id: i64, by: &str, now_ms: i64) -> Sql<Option<SilenceRow>> {
        let conn = lock(&self.conn);
        let changed = conn.execute(
            "UPDATE silences SET expired_by = ?2, ends_ms = MIN(ends_ms, ?3)
             WHERE id = ?1 AND expired_by IS NULL AND ends_ms > ?3",
            params![id, by, now_ms],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        conn.query_row(
            "SELECT id, matcher, comment, created_by, starts_ms, ends_ms, expired_by
             FROM silences WHERE id = ?1",
            [id],
            silence_row,
        )
        .optional()
    }

    /// Every silence active now, then the latest 200 that ended in the last day; newest
    /// first in each part. Active ones are never cut: they decide what is sent.
    pub fn silences(&self, now_ms: i64) -> Sql<Vec<SilenceRow>> {
        let conn = lock(&self.conn);
        let mut active = conn.prepare_cached(
            "SELECT id, matcher, comment, created_by, starts_ms, ends_ms, expired_by
             FROM silences WHERE expired_by IS NULL AND ends_ms > ?1 ORDER BY id DESC",
        )?;
        let mut rows: Vec<SilenceRow> = active
            .query_map([now_ms], silence_row)?
            .collect::<Sql<_>>()?;
        let mut ended = conn.prepare_cached(
            "SELECT id, matcher, comment, created_by, starts_ms, ends_ms, expired_by
             FROM silences WHERE ends_ms > ?1 - 86400000
               AND NOT (expired_by IS NULL AND ends_ms > ?1)
             ORDER BY id DESC LIMIT 200",
        )?;
        for row in ended.query_map([now_ms], silence_row)? {
            rows.push(row?);
        }
        Ok(rows)
    }

    /// Alert episodes that overlap `[from, to)`, newest first.
    pub fn episodes(&self, from_ms: i64, to_ms: i64, limit: usize) -> Sql<Vec<Episode>> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(
            "SELECT resource, started_ms, ended_ms, summary, end_summary FROM episodes
             WHERE started_ms < ?2 AND (ended_ms IS NULL OR ended_ms >= ?1)
             ORDER BY started_ms DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![from_ms, to_ms, limit as i64], |r| {
            Ok(Episode {
                resource: r.get(0)?,
                started_ms: r.get(1)?,
                ended_ms: r.get(2)?,
                summary: r.get(3)?,
                end_summary: r.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// Forgets delivered notifications and ended silences older than `deliveries_ms`,
    /// and ended episodes older than `episodes_ms` (reports read them back further).
    pub fn prune(&self, deliveries_ms: i64, episodes_ms: i64) -> Sql<usize> {
        let conn = lock(&self.conn);
        let mut removed = conn.execute(
            "DELETE FROM outbox WHERE state != 'pending' AND created_ms < ?1
               AND stream NOT IN (SELECT resource || '@' || started_ms FROM firing)",
            [deliveries_ms],
        )?;
        removed += conn.execute(
            "DELETE FROM episodes WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
            [episodes_ms],
        )?;
        removed += conn.execute("DELETE FROM silences WHERE ends_ms < ?1", [deliveries_ms])?;
        Ok(removed)
    }
}

fn silence_row(r: &rusqlite::Row<'_>) -> Sql<SilenceRow> {
    Ok(SilenceRow {
        id: r.get(0)?,
        matcher: r.get(1)?,
        comment: r.get(2)?,
        created_by: r.get(3)?,
        starts_ms: r.get(4)?,
        ends_ms: r.get(5)?,
        expired_by: r.get(6)?,
    })
}

fn insert_outgoing(
    tx: &rusqlite::Transaction<'_>,
    outgoing: &[Outgoing],
    now_ms: i64,
) -> Sql<usize> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (key, channel, stream, kind, body, created_ms, due_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut added = 0;
    for out in outgoing {
        let body = serde_json::to_string(&out.notification).expect("a notification serializes");
        added += stmt.execute(params![
            out.notification.key,
            out.channel,
            out.stream,
            out.notification.kind.as_str(),
            body,
            now_ms,
            out.due_ms
        ])?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_waiting_firing_notification_is_counted_until_it_is_done() {
        let db = AlertDb::open(None).unwrap();
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

    #[test]
    fn an_acknowledgement_names_its_episode() {
        let db = AlertDb::open(None).unwrap();
        db.fire("cpu", 1000, "breached").unwrap();
        assert!(!db.acknowledge("cpu", Some(999), "ann", "", 5000).unwrap());
        assert!(db
            .acknowledge("cpu", Some(1000), "ann", "mine", 5000)
            .unwrap());
        assert!(db.acknowledge("cpu", None, "bob", "", 6000).unwrap());
        assert!(!db.acknowledge("disk", None, "bob", "", 6000).unwrap());
        assert_eq!(db.firing().unwrap()[0].acked_by.as_deref(), Some("bob"));
    }

    #[test]
    fn active_silences_are_never_cut_by_the_recent_list() {
        let db = AlertDb::open(None).unwrap();
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

    #[test]
    fn resolving_ends_the_episode_and_queues_in_one_step() {
        let db = AlertDb::open(None).unwrap();
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
