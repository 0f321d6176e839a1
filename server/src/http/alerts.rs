//! Alerts over HTTP.
//!
//! - `GET /api/v1/alerts` (viewers): firing, pending, silences, history, channels and the
//!   latest deliveries, as the Alerts page shows them.
//! - `POST /api/v1/silences` (editors) with `{"matcher": "cache:*", "duration": "2h",
//!   "comment": "…"}`; `DELETE /api/v1/silences/{id}` ends one now.
//! - `POST /api/v1/alerts/{resource}/ack` (editors) with `{"comment": "…", "started_ms":
//!   …}`: no more repeats of this firing alert (`started_ms`, optional, names the episode:
//!   409 when that one has resolved and the alert fired again since).
//! - `POST /api/v1/alert-channels/{name}/test` (editors): sends a test notification now
//!   and answers what the receiver said.
//!
//! Silences, acknowledgements and tests are audited. None is a configuration change: they
//! are operations on what is happening now, not on what perfpilot aims for.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, Editor, Viewer};
use crate::state::AppState;

/// Read-only: outside the mutation limit.
pub fn read_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(view))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/silences", post(silence))
        .route("/api/v1/silences/{id}", delete(unsilence))
        .route("/api/v1/alerts/{resource}/ack", post(acknowledge))
        .route("/api/v1/alert-channels/{name}/test", post(test))
        .with_state(state)
}

async fn view(_: Viewer, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let view = state.monitor.alerting.view()?;
    Ok(Json(
        serde_json::to_value(view).expect("the alerts view serializes"),
    ))
}

async fn silence(
    caller: Editor,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: app::alerts::NewSilence = super::parse_json(&body)?;
    let id = state.monitor.alerting.silence(new, &caller.identity)?;
    Ok(Json(json!({ "id": id })))
}

async fn unsilence(
    caller: Editor,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("id", "must be a silence's number"))?;
    state.monitor.alerting.unsilence(id, &caller.identity)?;
    Ok(Json(json!({ "id": id, "ended": true })))
}

async fn acknowledge(
    caller: Editor,
    State(state): State<AppState>,
    Path(resource): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ack: app::alerts::Acknowledgement = if body.is_empty() {
        app::alerts::Acknowledgement {
            comment: String::new(),
            started_ms: None,
        }
    } else {
        super::parse_json(&body)?
    };
    state
        .monitor
        .acknowledge_alert(&resource, &ack, &caller.identity)?;
    Ok(Json(json!({ "resource": resource, "acknowledged": true })))
}

async fn test(
    caller: Editor,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let answer = state.monitor.alerting.test(&name, &caller.identity).await?;
    Ok(Json(json!({ "channel": name, "result": answer })))
}
