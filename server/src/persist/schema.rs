//! The schema, its version check, and the read-back of everything start-up needs.

use super::*;

/// Pragmas, schema, version check and the read-back of everything start-up needs.
pub(super) fn prepare(conn: &Connection, location: &Location) -> rusqlite::Result<Loaded> {
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
pub(super) fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(what.into())
}

pub(super) fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
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
    let pending = {
        let mut stmt = conn.prepare("SELECT key, body FROM pending_events ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut pending = Vec::new();
        for row in rows {
            let (key, body) = row?;
            match serde_json::from_str(&body) {
                Ok(value) => pending.push(value),
                Err(err) => {
                    tracing::warn!(%key, %err, "A before/after still measuring no longer parses; skipped")
                }
            }
        }
        pending
    };
    let Some(change) = meta("change")? else {
        return Ok(Loaded {
            state: None,
            events,
            pending,
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
        pending,
        audit_entries: audit_entries as u64,
    })
}
