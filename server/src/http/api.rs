//! A lean JSON API for automation: the same edits as the UI's server functions, as plain
//! axum handlers (no per-request Leptos context), for scripts and CI that edit at high
//! rates. Roles, the Origin check, rate limits and durability apply exactly as for the UI:
//! both go through the one change path.
//!
//! `POST /api/v1/resources/{id}/target` with `{"metric": "utilization", "value": 70,
//! "for_secs": 300}` (`value` and `for_secs` each optional; a metric without a target
//! needs a value) answers `{"change", "at_unix_ms", "target", "snapshot"}` once the change
//! is durable.

use app::resource_data::TargetSaved;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use engine::changes::Mutation;
use engine::model::{ResourceId, TargetEdit};

use super::error::{ApiError, Editor};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/resources/{id}/target", post(set_target))
        .with_state(state)
}

/// Role, parse, apply.
async fn set_target(
    caller: Editor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TargetSaved>, ApiError> {
    let edit: TargetEdit = super::parse_json(&body)?;
    let id = ResourceId::new(&id)?;
    let record = state
        .monitor
        .apply(Mutation::EditTarget { id, edit }, caller.identity)
        .await?;
    TargetSaved::of(&record).map(Json).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the target edit left no target",
        )
    })
}
