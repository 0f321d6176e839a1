//! API tokens: rows hold the SHA-256 of the secret only; creation and revocation are
//! audited in the same transaction.

use super::*;

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

pub(super) fn save_token(
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
pub(super) fn token_json(row: &TokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_by": row.created_by,
        "created_at_unix_ms": row.created_at_unix_ms,
        "revoked_at_unix_ms": row.revoked_at_unix_ms,
    })
}

pub(super) fn revoke_token(
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

pub(super) fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
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

pub(super) fn read_tokens(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at_unix_ms, id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    rows.collect()
}
