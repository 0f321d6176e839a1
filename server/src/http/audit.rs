//! `GET /api/audit`: the audit log as JSON, newest first, filtered by `user`, `resource`,
//! `kind`, `q` (free text), `since`/`until` (unix ms) and `limit` — the same filter, with
//! the same refusals, as the `/audit` page. Answers `{"total": N, "entries": [...]}`:
//! `total` counts every match, `entries` holds at most `limit`. Reading it needs the
//! viewer role.

use app::audit::AuditFilter;
use app::error::AppError;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, Viewer};
use crate::state::AppState;

pub fn router(app: AppState) -> Router {
    Router::new().route("/api/audit", get(list)).with_state(app)
}

async fn list(
    _caller: Viewer,
    State(app): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let filter = AuditFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|err| AppError::new(400, err.to_string()).with_field(&err.field))?;
    let persist = &app.monitor.persist;
    let unavailable = |err: crate::persist::PersistError| AppError::unavailable(err.to_string());
    // `total` counts every match, so an export can tell it was cut by `limit`.
    let total = persist
        .count_audit(filter.clone())
        .await
        .map_err(unavailable)?;
    let entries = persist.query_audit(filter).await.map_err(unavailable)?;
    Ok(Json(json!({ "total": total, "entries": entries })))
}
