//! The audit log: inserting entries, the filter as SQL, counting, reading, pruning.

use super::sql::{Dialect, Value};
use super::*;

pub(super) fn insert_audit(tx: &mut dyn Sql, e: &AuditRecord) -> Result<(), SqlError> {
    tx.execute(
        "INSERT INTO audit(change, at_unix_ms, kind, resource, \"user\", role, source, client_ip, \
         what, before, after, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        args![
            e.change.map(|c| c as i64),
            e.at_unix_ms,
            e.kind.as_str(),
            e.resource.clone(),
            e.user.clone(),
            e.role.clone(),
            e.source.clone(),
            e.client_ip.clone(),
            e.what.clone(),
            e.before.to_string(),
            e.after.to_string(),
            e.snapshot.map(|s| s as i64),
        ],
    )?;
    Ok(())
}

/// The `WHERE` clause of `f` and its parameters (numbered), shared by the listing and
/// the count so they can never disagree.
pub(super) fn audit_where(f: &AuditFilter, dialect: Dialect) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut push = |column_test: &str, value: Value| {
        args.push(value);
        sql.push_str(&column_test.replace('?', &format!("?{}", args.len())));
    };
    if let Some(user) = &f.user {
        push(" AND \"user\" = ?", Value::Text(user.clone()));
    }
    if let Some(resource) = &f.resource {
        push(" AND resource = ?", Value::Text(resource.clone()));
    }
    if let Some(kind) = &f.kind {
        push(" AND kind = ?", Value::Text(kind.as_str().to_owned()));
    }
    if let Some(since) = f.since {
        push(" AND at_unix_ms >= ?", Value::Int(since));
    }
    if let Some(until) = f.until {
        push(" AND at_unix_ms < ?", Value::Int(until));
    }
    if let Some(text) = &f.text {
        // A position test on lower() instead of LIKE: no wildcard characters to escape,
        // and the same rule as `AuditFilter::matches` for ASCII. One parameter, used
        // three times.
        push(
            &format!(
                " AND ({} OR {} OR {})",
                dialect.contains("lower(what)", "?"),
                dialect.contains("lower(\"user\")", "?"),
                dialect.contains("lower(coalesce(resource, ''))", "?"),
            ),
            Value::Text(text.to_lowercase()),
        );
    }
    if !f.changes.is_empty() {
        // One JSON array parameter instead of one per number: SQLite caps the parameters
        // of a statement, and a long list would hit the cap.
        let list = serde_json::to_string(&f.changes).unwrap_or_else(|_| "[]".into());
        args.push(Value::Text(list));
        sql.push_str(&format!(
            " AND change IN ({})",
            dialect.json_integers(&format!("?{}", args.len()))
        ));
    }
    (sql, args)
}

/// Removes up to [`PRUNE_BATCH`] of the oldest entries from before `before`. Nothing is
/// removed unless an entry at or after `before` exists: a clock that jumped ahead must not
/// wipe the whole log (an idle log past its retention simply waits for the next entry).
pub(super) fn prune_audit(conn: &mut dyn Sql, before: i64) -> Result<u64, SqlError> {
    conn.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_unix_ms < ?1 \
         ORDER BY id LIMIT ?2) AND EXISTS (SELECT 1 FROM audit WHERE at_unix_ms >= ?1)",
        args![before, PRUNE_BATCH as i64],
    )
}

pub(super) fn count_audit(conn: &mut dyn Sql, f: &AuditFilter) -> Result<u64, SqlError> {
    let (filter, args) = audit_where(f, conn.dialect());
    let n = conn
        .query_one(&format!("SELECT count(*) FROM audit{filter}"), &args)?
        .int(0)?;
    Ok(n as u64)
}

pub(super) fn read_audit(
    conn: &mut dyn Sql,
    f: &AuditFilter,
) -> Result<Vec<AuditRecord>, SqlError> {
    let (filter, mut args) = audit_where(f, conn.dialect());
    args.push(Value::Int(f.limit as i64));
    let sql = format!(
        "SELECT id, change, at_unix_ms, kind, resource, \"user\", role, source, client_ip, what, \
         before, after, snapshot FROM audit{filter} ORDER BY id DESC LIMIT ?{}",
        args.len()
    );
    conn.query(&sql, &args)?
        .into_iter()
        .map(|r| {
            let json = |i: usize| -> Result<serde_json::Value, SqlError> {
                let text = r.text(i)?;
                Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
            };
            Ok(AuditRecord {
                id: r.int(0)?,
                change: r.opt_int(1)?.map(|c| c as u64),
                at_unix_ms: r.int(2)?,
                kind: {
                    let kind = r.text(3)?;
                    AuditKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("audit kind {kind:?}")))?
                },
                resource: r.opt_text(4)?,
                user: r.text(5)?,
                role: r.text(6)?,
                source: r.text(7)?,
                client_ip: r.opt_text(8)?,
                what: r.text(9)?,
                before: json(10)?,
                after: json(11)?,
                snapshot: r.opt_int(12)?.map(|s| s as u64),
            })
        })
        .collect()
}
