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
    tx: &mut dyn Sql,
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
    let unavailable = |err: SqlError| PersistError::Unavailable(err.0.into());
    let exists = tx
        .query_opt(
            "SELECT 1 FROM tokens WHERE id = ?1 OR sha256_hex = ?2",
            args![row.id.clone(), row.sha256_hex.clone()],
        )
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
        args![
            row.id.clone(),
            row.name.clone(),
            row.role.as_str(),
            row.sha256_hex.clone(),
            row.created_by.clone(),
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
    tx: &mut dyn Sql,
    id: &str,
    by: &Identity,
    at_unix_ms: i64,
) -> Result<Result<TokenRow, PersistError>, SqlError> {
    let Some(before) = tx
        .query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
            args![id],
        )?
        .map(|row| token_row(&row))
        .transpose()?
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
        args![at_unix_ms, id],
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

pub(super) fn token_row(r: &sql::Row) -> Result<TokenRow, SqlError> {
    let role = r.text(2)?;
    Ok(TokenRow {
        id: r.text(0)?,
        name: r.text(1)?,
        role: Role::parse(&role)
            .ok_or_else(|| SqlError(format!("tokens.role {role:?} is not a role")))?,
        sha256_hex: r.text(3)?,
        created_by: r.text(4)?,
        created_at_unix_ms: r.int(5)?,
        revoked_at_unix_ms: r.opt_int(6)?,
    })
}

pub(super) fn read_tokens(conn: &mut dyn Sql) -> Result<Vec<TokenRow>, SqlError> {
    conn.query(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at_unix_ms, id"),
        &[],
    )?
    .iter()
    .map(token_row)
    .collect()
}
