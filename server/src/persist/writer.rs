//! The writer thread: the only owner of the connection. Drains every pending job into
//! one transaction (group commit), commits, then answers and publishes durability.

use super::*;

/// The thread that owns the connection.
pub(super) struct Writer {
    pub(super) conn: Box<dyn Sql>,
    pub(super) durable: watch::Sender<Durable>,
    pub(super) failed: Arc<OnceLock<Arc<str>>>,
    pub(super) fence: Option<Arc<Fence>>,
    pub(super) diverged: Arc<std::sync::atomic::AtomicBool>,
}

/// Answers that may only be given once their batch has committed.
pub(super) enum Reply {
    Unit(oneshot::Sender<Result<(), PersistError>>),
    Token(oneshot::Sender<Result<TokenRow, PersistError>>, TokenRow),
    Flush(oneshot::Sender<()>),
}

impl Writer {
    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
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
            let highest = highest_change(&batch);
            if let Err(err) = self.commit(batch) {
                let reason: Arc<str> = err.to_string().into();
                if self.conn.dialect() == sql::Dialect::Postgres {
                    self.lost_batch(highest, reason);
                    continue;
                }
                tracing::error!(%reason, "The database failed; further changes are refused");
                let _ = self.failed.set(reason.clone());
                self.durable.send_modify(|d| d.failed = Some(reason));
            }
        }
    }

    /// A shared PostgreSQL store that failed a batch (restarted, unreachable, a statement
    /// refused) is not given up on: the batch's waiters are answered with the reason, as
    /// fenced writes are, the replica's configuration is marked diverged so it is read
    /// back from the store before the next edit, and the connection is made again on the
    /// next statement. A file that fails (disk full, corrupt) stops the store instead:
    /// nobody else holds the state to read it back from.
    fn lost_batch(&mut self, highest: Option<u64>, reason: Arc<str>) {
        tracing::error!(%reason, "A write to the shared database failed; it is refused and the connection will be made again");
        let _ = self.conn.batch("ROLLBACK");
        let why: Arc<str> = format!("the shared database failed this write: {reason}").into();
        refuse_changes(&self.diverged, &self.durable, highest, &why);
        // Not hammering a server that is away: the next batch waits a little.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    /// Writes a batch in one transaction, then answers. Reads are answered after the
    /// commit too, so they see the writes queued before them.
    fn commit(&mut self, batch: Vec<Job>) -> Result<(), SqlError> {
        let tx = &mut *self.conn;
        // A batch of reads only (a follower asking for the change number, a listing) needs
        // no transaction: on PostgreSQL that saves two round trips a time.
        let writes = batch.iter().any(Job::writes);
        if writes {
            tx.batch("BEGIN")?;
        }
        let mut pending = Batch {
            epoch: self.fence.as_ref().map_or(0, |f| f.epoch()),
            ..Batch::default()
        };
        let batch = match &self.fence {
            Some(fence) if batch.iter().any(Job::acts) => match fenced_out(tx, fence)? {
                None => batch,
                Some(why) => {
                    let (refused, kept): (Vec<Job>, Vec<Job>) =
                        batch.into_iter().partition(Job::acts);
                    tracing::warn!(writes = refused.len(), %why, "Writes refused by the lease fence");
                    let why: Arc<str> = why.into();
                    refuse_changes(
                        &self.diverged,
                        &self.durable,
                        highest_change(&refused),
                        &why,
                    );
                    refuse_all(refused, &why);
                    kept
                }
            },
            _ => batch,
        };
        let written = batch
            .into_iter()
            .try_for_each(|job| pending.write(tx, job))
            .and_then(|()| pending.finish(tx));
        let result = match written {
            Err(err) => {
                if writes {
                    let _ = tx.batch("ROLLBACK");
                }
                fail_replies(std::mem::take(&mut pending.replies), &err.to_string());
                Err(err)
            }
            Ok(()) if writes => tx.batch("COMMIT"),
            Ok(()) => Ok(()),
        };
        match result {
            Ok(()) => {
                if let Some(change) = pending.highest {
                    self.durable.send_modify(|d| d.upto = d.upto.max(change));
                }
                for reply in pending.replies {
                    match reply {
                        Reply::Unit(r) => drop(r.send(Ok(()))),
                        Reply::Token(r, row) => drop(r.send(Ok(row))),
                        Reply::Flush(r) => drop(r.send(())),
                    }
                }
            }
            Err(ref err) if !pending.replies.is_empty() => {
                fail_replies(pending.replies, &err.to_string())
            }
            Err(_) => {}
        }
        for read in pending.reads {
            read.answer(&mut *self.conn);
        }
        result
    }
}

/// What one batch has written so far and owes once it commits.
#[derive(Default)]
pub(super) struct Batch {
    replies: Vec<Reply>,
    reads: Vec<Read>,
    /// The highest change number written.
    highest: Option<u64>,
    /// The configuration as of that change.
    latest: Option<Arc<State>>,
    /// Resources the batch's changes touched (all of them after a restore).
    touched: std::collections::BTreeSet<engine::model::ResourceId>,
    everything: bool,
    events_added: bool,
    /// The lease epoch the batch writes under (0 for a single replica): journal entries
    /// record who wrote them.
    epoch: u64,
}

impl Batch {
    /// Writes one job into the transaction, or queues its answer for after the commit.
    fn write(&mut self, tx: &mut dyn Sql, job: Job) -> Result<(), SqlError> {
        match job {
            Job::Change {
                record,
                state,
                actor,
            } => {
                self.highest = Some(record.change);
                match (&record.kind, &record.resource) {
                    (MutationKind::Restore, _) | (_, None) => self.everything = true,
                    (_, Some(id)) => {
                        self.touched.insert(id.clone());
                    }
                }
                self.latest = Some(state);
                write_change(tx, &record, &actor)
            }
            Job::Audit(entry) => insert_audit(tx, &entry),
            Job::Pending { key, body } => match body {
                Some(body) => tx
                    .execute(
                        "INSERT INTO pending_events(key, body) VALUES (?1, ?2) \
                         ON CONFLICT(key) DO UPDATE SET body = excluded.body",
                        args![key, body.to_string()],
                    )
                    .map(drop),
                None => tx
                    .execute("DELETE FROM pending_events WHERE key = ?1", args![key])
                    .map(drop),
            },
            Job::Event {
                at_unix_ms,
                resource,
                body,
            } => {
                self.events_added = true;
                tx.execute(
                    "INSERT INTO events(at_unix_ms, resource, body) VALUES (?1, ?2, ?3)",
                    args![at_unix_ms, resource, body.to_string()],
                )
                .map(drop)
            }
            Job::SaveToken { row, by, reply } => match save_token(tx, &row, &by) {
                Ok(()) => {
                    self.replies.push(Reply::Unit(reply));
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
            } => match revoke_token(tx, &id, &by, at_unix_ms)? {
                Ok(row) => {
                    self.replies.push(Reply::Token(reply, row));
                    Ok(())
                }
                Err(refused) => {
                    let _ = reply.send(Err(refused));
                    Ok(())
                }
            },
            Job::Tokens(reply) => {
                self.reads.push(Read::Tokens(reply));
                Ok(())
            }
            Job::QueryAudit(filter, reply) => {
                self.reads.push(Read::Audit(filter, reply));
                Ok(())
            }
            Job::CountAudit(filter, reply) => {
                self.reads.push(Read::Count(filter, reply));
                Ok(())
            }
            Job::Flush(reply) => {
                self.replies.push(Reply::Flush(reply));
                Ok(())
            }
            Job::Baseline(state) => write_baseline(tx, &state),
            Job::PruneAudit(before_unix_ms, reply) => {
                self.reads.push(Read::Prune(before_unix_ms, reply));
                Ok(())
            }
            Job::Reload(reply) => {
                self.reads.push(Read::Reload(reply));
                Ok(())
            }
            Job::StoredChange(reply) => {
                self.reads.push(Read::StoredChange(reply));
                Ok(())
            }
            Job::OpenActions(reply) => {
                self.reads.push(Read::OpenActions(reply));
                Ok(())
            }
            Job::Meta { key, value } => write_meta(tx, key, value),
            Job::Journal {
                id,
                resource,
                state,
                body,
                at_unix_ms,
                reply,
            } => {
                write_journal(tx, self.epoch, (id, resource), state, body, at_unix_ms)?;
                if let Some(reply) = reply {
                    self.replies.push(Reply::Unit(reply));
                }
                Ok(())
            }
        }
    }

    /// What the batch writes once, after its jobs: pruned before/afters, the counter and
    /// the resources as of its last change.
    fn finish(&self, tx: &mut dyn Sql) -> Result<(), SqlError> {
        if self.events_added {
            // The page shows the newest `proof::KEEP` before/afters and nothing reads older
            // ones, so the table keeps only those: it would otherwise grow with every edit
            // and be read whole at every start.
            tx.execute(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?1",
                args![crate::state::proof::KEEP as i64],
            )?;
        }
        if let (Some(state), Some(change)) = (&self.latest, self.highest) {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('change', ?1) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                args![change.to_string()],
            )?;
            write_resources(tx, state, &self.touched, self.everything)?;
        }
        Ok(())
    }
}

pub(super) fn fail_replies(replies: Vec<Reply>, reason: &str) {
    let err = || PersistError::Unavailable(reason.into());
    for reply in replies {
        match reply {
            Reply::Unit(r) => drop(r.send(Err(err()))),
            Reply::Token(r, _) => drop(r.send(Err(err()))),
            Reply::Flush(r) => drop(r.send(())),
        }
    }
}

pub(super) fn refuse_all(batch: Vec<Job>, reason: &Arc<str>) {
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
            Job::Reload(reply) => drop(reply.send(Err(err()))),
            Job::StoredChange(reply) => drop(reply.send(Err(err()))),
            Job::OpenActions(reply) => drop(reply.send(Err(err()))),
            Job::Journal { reply, .. } => {
                if let Some(reply) = reply {
                    drop(reply.send(Err(err())));
                }
            }
            Job::Meta { .. }
            | Job::Change { .. }
            | Job::Audit(_)
            | Job::Event { .. }
            | Job::Pending { .. }
            | Job::Baseline(_) => {}
        }
    }
}

pub(super) enum Read {
    Tokens(oneshot::Sender<Result<Vec<TokenRow>, PersistError>>),
    Audit(
        AuditFilter,
        oneshot::Sender<Result<Vec<AuditRecord>, PersistError>>,
    ),
    Count(AuditFilter, oneshot::Sender<Result<u64, PersistError>>),
    /// Not a read, but answered the same way: after the batch's commit, in its own
    /// statement, so a long prune never holds back the batch's acknowledgements.
    Prune(i64, oneshot::Sender<Result<u64, PersistError>>),
    Reload(oneshot::Sender<Result<Loaded, PersistError>>),
    StoredChange(oneshot::Sender<Result<u64, PersistError>>),
    OpenActions(oneshot::Sender<Result<Vec<OpenAction>, PersistError>>),
}

impl Read {
    fn answer(self, conn: &mut dyn Sql) {
        let failed = |err: SqlError| PersistError::Unavailable(err.0.into());
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
            Read::Reload(reply) => drop(reply.send(load(conn).map_err(failed))),
            Read::OpenActions(reply) => drop(reply.send(open_actions(conn).map_err(failed))),
            Read::StoredChange(reply) => drop(
                reply.send(
                    conn.query_opt("SELECT value FROM meta WHERE key = 'change'", &[])
                        .and_then(|row| row.map(|r| r.text(0)).transpose())
                        .map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0))
                        .map_err(failed),
                ),
            ),
        }
    }
}

pub(super) fn write_change(
    tx: &mut dyn Sql,
    record: &ChangeRecord,
    actor: &Identity,
) -> Result<(), SqlError> {
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
        tx.execute(
            "INSERT INTO snapshots(change, hash, body) VALUES (?1, ?2, ?3) \
             ON CONFLICT(change) DO UPDATE SET hash = excluded.hash, body = excluded.body",
            args![snapshot.change as i64, snapshot.hash(), body],
        )?;
    }
    Ok(())
}

pub(super) fn write_baseline(tx: &mut dyn Sql, state: &PersistedState) -> Result<(), SqlError> {
    for (key, value) in [
        ("change", state.change.to_string()),
        ("autosave_every", state.autosave.every().to_string()),
        ("snapshot_capacity", state.autosave.capacity().to_string()),
    ] {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            args![key, value],
        )?;
    }
    tx.execute("DELETE FROM resources", &[])?;
    for r in &state.resources {
        let body =
            serde_json::to_string(r).map_err(|err| corrupt(format!("resource {}: {err}", r.id)))?;
        tx.execute(
            "INSERT INTO resources(id, body) VALUES (?1, ?2)",
            args![r.id.as_str(), body],
        )?;
    }
    Ok(())
}

/// Brings the `resources` table to `state` for the ids the batch touched (all of them
/// after a restore).
pub(super) fn write_resources(
    tx: &mut dyn Sql,
    state: &State,
    touched: &std::collections::BTreeSet<engine::model::ResourceId>,
    everything: bool,
) -> Result<(), SqlError> {
    let upsert = |tx: &mut dyn Sql, r: &Resource| -> Result<(), SqlError> {
        let body =
            serde_json::to_string(r).map_err(|err| corrupt(format!("resource {}: {err}", r.id)))?;
        tx.execute(
            "INSERT INTO resources(id, body) VALUES (?1, ?2) \
             ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            args![r.id.as_str(), body],
        )?;
        Ok(())
    };
    if everything {
        tx.execute("DELETE FROM resources", &[])?;
        for r in state.resources.values() {
            upsert(tx, r)?;
        }
        return Ok(());
    }
    for id in touched {
        match state.resources.get(id) {
            Some(r) => upsert(tx, r)?,
            None => {
                tx.execute("DELETE FROM resources WHERE id = ?1", args![id.as_str()])?;
            }
        }
    }
    Ok(())
}

impl Job {
    /// Whether the job writes anything (otherwise it is read or answered after the batch).
    fn writes(&self) -> bool {
        !matches!(
            self,
            Job::Tokens(_)
                | Job::QueryAudit(..)
                | Job::CountAudit(..)
                | Job::PruneAudit(..)
                | Job::Flush(_)
                | Job::Reload(_)
                | Job::StoredChange(_)
                | Job::OpenActions(_)
        )
    }

    /// Writes only the leader may make: the change journal and what follows from acting
    /// (audited actions and marks, before/afters, the baseline of the configuration).
    /// Tokens and reads are any replica's.
    fn acts(&self) -> bool {
        matches!(
            self,
            Job::Change { .. }
                | Job::Audit(_)
                | Job::Pending { .. }
                | Job::Event { .. }
                | Job::Baseline(_)
                | Job::Journal { .. }
                | Job::Meta { .. }
        )
    }
}

/// Why this replica may not make acting writes now, or `None` when it may. Locks the
/// lease row until the transaction ends, so no takeover commits in between.
fn fenced_out(tx: &mut dyn Sql, fence: &Fence) -> Result<Option<String>, SqlError> {
    let epoch = fence.epoch();
    if epoch == 0 {
        return Ok(Some(format!(
            "this replica ({}) does not lead; only the leader writes changes and actions",
            fence.holder
        )));
    }
    let row = tx.query_opt(
        "SELECT holder, epoch, CASE WHEN expires_at > now() THEN 1 ELSE 0 END \
         FROM lease WHERE name = 'leader' FOR SHARE",
        &[],
    )?;
    let Some(row) = row else {
        return Ok(Some("no replica holds the lease".into()));
    };
    let (holder, held, live) = (row.text(0)?, row.int(1)? as u64, row.int(2)? == 1);
    Ok(if holder != fence.holder || held != epoch {
        Some(format!(
            "this replica ({}) led in epoch {epoch}, but {holder} leads in epoch {held} now",
            fence.holder
        ))
    } else if !live {
        Some(format!(
            "this replica's lease (epoch {epoch}) expired before it could renew it"
        ))
    } else {
        None
    })
}

fn open_actions(conn: &mut dyn Sql) -> Result<Vec<OpenAction>, SqlError> {
    conn.query(
        "SELECT id, resource, state, body FROM action_journal \
         WHERE state IN ('applying', 'in_effect', 'rolling_back') ORDER BY updated_ms",
        &[],
    )?
    .into_iter()
    .map(|row| {
        let body = row.text(3)?;
        Ok(OpenAction {
            id: row.text(0)?,
            resource: row.text(1)?,
            state: row.text(2)?,
            body: serde_json::from_str(&body)
                .map_err(|err| corrupt(format!("action_journal body: {err}")))?,
        })
    })
    .collect()
}

/// An action's journal entry, as of `epoch`: the whole of it when `body` comes with it,
/// else its new state.
fn write_journal(
    tx: &mut dyn Sql,
    epoch: u64,
    (id, resource): (String, String),
    state: &str,
    body: Option<serde_json::Value>,
    at_unix_ms: i64,
) -> Result<(), SqlError> {
    let epoch = epoch as i64;
    match body {
        Some(body) => tx.execute(
            "INSERT INTO action_journal(id, resource, state, epoch, body, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET \
             state = excluded.state, epoch = excluded.epoch, body = excluded.body, \
             updated_ms = excluded.updated_ms",
            args![id, resource, state, epoch, body.to_string(), at_unix_ms],
        )?,
        None => tx.execute(
            "UPDATE action_journal SET state = ?2, epoch = ?3, updated_ms = ?4 WHERE id = ?1",
            args![id, state, epoch, at_unix_ms],
        )?,
    };
    Ok(())
}

fn write_meta(tx: &mut dyn Sql, key: &str, value: String) -> Result<(), SqlError> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )
    .map(drop)
}

/// The highest configuration change among `jobs`, if any.
fn highest_change(jobs: &[Job]) -> Option<u64> {
    jobs.iter()
        .filter_map(|job| match job {
            Job::Change { record, .. } => Some(record.change),
            _ => None,
        })
        .max()
}

/// Changes up to `highest` made in memory will never be stored: their waiters are answered
/// with `why` (without the store being marked failed) and the configuration is marked
/// `diverged`, to be read back from the store.
fn refuse_changes(
    diverged: &std::sync::atomic::AtomicBool,
    durable: &watch::Sender<Durable>,
    highest: Option<u64>,
    why: &Arc<str>,
) {
    let Some(highest) = highest else { return };
    diverged.store(true, std::sync::atomic::Ordering::SeqCst);
    durable.send_modify(|d| {
        let upto = d.fenced.as_ref().map_or(0, |(u, _)| *u).max(highest);
        d.fenced = Some((upto, why.clone()));
    });
}
