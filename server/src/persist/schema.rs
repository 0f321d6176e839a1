//! The schema, its version check, and the read-back of everything start-up needs.

use super::*;

/// Keys the migration of a shared PostgreSQL database: two replicas starting together
/// create the tables one after the other instead of racing on the catalog.
const MIGRATION_LOCK: i64 = 0x7065_7266_7069_6c6f; // "perfpilo"

/// Pragmas, schema, version check and the read-back of everything start-up needs.
pub(super) fn prepare(conn: &mut dyn Sql, location: &Location) -> Result<Loaded, SqlError> {
    match location {
        Location::Dir(_) => {
            let mode = conn.query_one("PRAGMA journal_mode = WAL", &[])?.text(0)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(corrupt(format!(
                    "cannot switch to write-ahead logging (journal mode stays {mode})"
                )));
            }
            conn.batch("PRAGMA synchronous = FULL; PRAGMA locking_mode = EXCLUSIVE;")?;
        }
        Location::Memory => {}
        Location::Postgres(_) => {
            conn.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); {SCHEMA_POSTGRES} COMMIT;"
            ))?;
        }
    }
    if conn.dialect() == sql::Dialect::Sqlite {
        // The first write takes the exclusive lock; a second process stops here with "locked".
        conn.batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(|err| {
                if err.0.contains("locked") || err.0.contains("busy") {
                    corrupt(format!(
                        "{err} (is another perfpilot using this data directory?)"
                    ))
                } else {
                    err
                }
            })?;
    }
    let version = conn
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?
        .map(|row| row.text(0))
        .transpose()?;
    match version.as_deref().map(str::parse::<i64>) {
        None => {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1) \
                 ON CONFLICT(key) DO NOTHING",
                args![SCHEMA_VERSION.to_string()],
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
    if matches!(location, Location::Postgres(_)) {
        // The key replicas sign the edits they pass to the leader with: whoever can read it
        // can already write the configuration itself. The first replica makes it.
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|err| corrupt(format!("no randomness: {err}")))?;
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('replica_key', ?1) ON CONFLICT(key) DO NOTHING",
            args![hex::encode(key)],
        )?;
        // Read here, once: a follower's read-backs (`load`) have no use for it.
        let replica_key = conn
            .query_opt("SELECT value FROM meta WHERE key = 'replica_key'", &[])?
            .map(|row| row.text(0))
            .transpose()?
            .and_then(|key| hex::decode(key).ok());
        return Ok(Loaded {
            replica_key,
            ..load(conn)?
        });
    }
    load(conn)
}

/// A problem with what the database holds (rather than with the store itself), carried
/// as a [`SqlError`] so one `?` chain covers both.
pub(super) fn corrupt(what: String) -> SqlError {
    SqlError(what)
}

/// Reads back the configuration, counter, snapshots and before/afters the store holds.
pub(crate) fn load(conn: &mut dyn Sql) -> Result<Loaded, SqlError> {
    let meta = |conn: &mut dyn Sql, key: &str| -> Result<Option<u64>, SqlError> {
        let value = conn
            .query_opt("SELECT value FROM meta WHERE key = ?1", args![key])?
            .map(|row| row.text(0))
            .transpose()?;
        value
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| corrupt(format!("meta.{key} is {v:?}, not a whole number")))
            })
            .transpose()
    };
    let audit_entries = conn.query_one("SELECT count(*) FROM audit", &[])?.int(0)?;
    let events = {
        // Only what the page can show: a database from before pruning may hold more.
        let rows = conn.query(
            "SELECT id, body FROM (SELECT id, body FROM events ORDER BY id DESC LIMIT ?1) \
             AS newest ORDER BY id",
            args![crate::state::proof::KEEP as i64],
        )?;
        let mut events = Vec::new();
        for row in rows {
            let (id, body) = (row.int(0)?, row.text(1)?);
            events.push(
                serde_json::from_str(&body)
                    .map_err(|err| corrupt(format!("events row {id}: {err}")))?,
            );
        }
        events
    };
    let pending = {
        let rows = conn.query("SELECT key, body FROM pending_events ORDER BY key", &[])?;
        let mut pending = Vec::new();
        for row in rows {
            let (key, body) = (row.text(0)?, row.text(1)?);
            match serde_json::from_str(&body) {
                Ok(value) => pending.push(value),
                Err(err) => {
                    tracing::warn!(%key, %err, "A before/after still measuring no longer parses; skipped")
                }
            }
        }
        pending
    };
    let lb_desired = conn
        .query_opt("SELECT value FROM meta WHERE key = 'lb_desired'", &[])?
        .map(|row| row.text(0))
        .transpose()?;
    let Some(change) = meta(conn, "change")? else {
        return Ok(Loaded {
            state: None,
            events,
            pending,
            audit_entries: audit_entries as u64,
            lb_desired,
            replica_key: None,
        });
    };
    let every = meta(conn, "autosave_every")?.unwrap_or(engine::changes::DEFAULT_AUTOSAVE_EVERY);
    let capacity = meta(conn, "snapshot_capacity")?
        .map_or(engine::changes::DEFAULT_SNAPSHOT_CAPACITY, |c| c as usize);
    let autosave = AutoSave::new(every, capacity)
        .map_err(|err| corrupt(format!("meta: auto-save settings: {err}")))?;
    let mut resources = Vec::new();
    for row in conn.query("SELECT id, body FROM resources ORDER BY id", &[])? {
        let (id, body) = (row.text(0)?, row.text(1)?);
        let resource: Resource = serde_json::from_str(&body)
            .map_err(|err| corrupt(format!("resources row {id:?}: {err}")))?;
        resources.push(resource);
    }
    let mut snapshots = Vec::new();
    // Only what the ring keeps: older snapshots stay in the store for the record.
    for row in conn.query(
        "SELECT change, hash, body FROM snapshots ORDER BY change DESC LIMIT ?1",
        args![capacity as i64],
    )? {
        let (change, hash, body) = (row.int(0)?, row.text(1)?, row.text(2)?);
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
    // Every snapshot ever taken stays in the store (the ring holds the newest), so its
    // count is the "snapshots taken" of the Changes page across restarts.
    let snapshots_taken = conn
        .query_one("SELECT count(*) FROM snapshots", &[])?
        .int(0)?;
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
        lb_desired,
        replica_key: None,
    })
}
