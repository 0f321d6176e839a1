//! `GET /api/audit`: the audit log as JSON, newest first, filtered by `user`, `resource`,
//! `kind`, `q` (free text), `since`/`until` (unix ms) and `limit` — the same filter, with
//! the same refusals, as the `/audit` page. Answers `{"total": N, "entries": [...]}`:
//! `total` counts every match, `entries` holds at most `limit`. Reading it needs the
//! viewer role.

use app::audit::AuditFilter;
use app::identity::{Identity, Role};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router(app: AppState) -> Router {
    Router::new().route("/api/audit", get(list)).with_state(app)
}

async fn list(
    State(app): State<AppState>,
    identity: Option<Extension<Identity>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    // The auth layer always sets one; without it the caller is an anonymous viewer, the
    // same default as the server functions'.
    let who = identity.map_or_else(|| Identity::anonymous(Role::Viewer, None), |e| e.0);
    if !who.may(Role::Viewer) {
        return refusal(
            StatusCode::FORBIDDEN,
            "role",
            app::backend::forbidden_message(&who, Role::Viewer),
        );
    }
    let filter = match AuditFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        Ok(filter) => filter,
        Err(err) => return refusal(StatusCode::BAD_REQUEST, &err.field, err.to_string()),
    };
    let persist = &app.monitor.persist;
    let answer = async {
        // `total` counts every match, so an export can tell it was cut by `limit`.
        let total = persist.count_audit(filter.clone()).await?;
        let entries = persist.query_audit(filter).await?;
        Ok::<_, crate::persist::PersistError>(json!({ "total": total, "entries": entries }))
    };
    match answer.await {
        Ok(body) => Json(body).into_response(),
        Err(err) => refusal(StatusCode::SERVICE_UNAVAILABLE, "database", err.to_string()),
    }
}

fn refusal(status: StatusCode, field: &str, message: String) -> Response {
    (status, Json(json!({ "error": message, "field": field }))).into_response()
}
