//! The audit log: inserting entries, the filter as SQL, counting, reading, pruning.

use super::*;

pub(super) fn insert_audit(
    tx: &rusqlite::Transaction<'_>,
    e: &AuditRecord,
) -> rusqlite::Result<()> {
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

/// The `WHERE` clause of `f` and its parameters (numbered), shared by the listing and
/// the count so they can never disagree.
pub(super) fn audit_where(f: &AuditFilter) -> (String, Vec<rusqlite::types::Value>) {
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

/// Removes up to [`PRUNE_BATCH`] of the oldest entries from before `before`. Nothing is
/// removed unless an entry at or after `before` exists: a clock that jumped ahead must not
/// wipe the whole log (an idle log past its retention simply waits for the next entry).
pub(super) fn prune_audit(conn: &Connection, before: i64) -> rusqlite::Result<u64> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_unix_ms < ?1 \
             ORDER BY id LIMIT ?2) AND EXISTS (SELECT 1 FROM audit WHERE at_unix_ms >= ?1)",
        )?
        .execute(params![before, PRUNE_BATCH as i64])?;
    Ok(removed as u64)
}

pub(super) fn count_audit(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<u64> {
    let (filter, args) = audit_where(f);
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM audit{filter}"),
        rusqlite::params_from_iter(args),
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

pub(super) fn read_audit(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<Vec<AuditRecord>> {
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
