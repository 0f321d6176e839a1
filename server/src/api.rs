//! A lean JSON API for automation: the same edits as the UI's server functions, as plain
//! axum handlers (no per-request Leptos context), for scripts and CI that edit at high
//! rates. Roles, the Origin check, rate limits and durability apply exactly as for the UI.
//!
//! `POST /api/v1/resources/{id}/target` with `{"metric": "utilization", "value": 70,
//! "for_secs": 300}` (`for_secs` optional) answers `{"change", "at_unix_ms", "target",
//! "snapshot"}` once the change is durable.

use app::backend::CommitError;
use app::identity::Role;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use engine::changes::Mutation;
use engine::error::EngineError;
use engine::model::ResourceId;
use serde::Deserialize;
use serde_json::json;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/resources/{id}/target", post(set_target))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEdit {
    metric: String,
    value: f64,
    #[serde(default)]
    for_secs: Option<u32>,
}

fn refusal(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn engine_refusal(err: EngineError) -> Response {
    refusal(app::backend::refusal_status(&err), err.to_string())
}

async fn set_target(
    State(state): State<AppState>,
    Path(id): Path<String>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let who = app::backend::identity_in(&extensions);
    if !who.may(Role::Editor) {
        return refusal(
            StatusCode::FORBIDDEN,
            app::backend::forbidden_message(&who, Role::Editor),
        );
    }
    let edit: TargetEdit = match serde_json::from_slice(&body) {
        Ok(edit) => edit,
        Err(err) => return refusal(StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    let id = match ResourceId::new(&id) {
        Ok(id) => id,
        Err(err) => return engine_refusal(err),
    };
    let current = state.monitor.store.state().resources.get(&id).cloned();
    let Some(current) = current else {
        return engine_refusal(EngineError::UnknownResource { id });
    };
    let target = app::resource_data::edited_target(
        current.target.as_ref(),
        &edit.metric,
        edit.value,
        edit.for_secs,
    );
    match state
        .monitor
        .commit(
            Mutation::SetTarget {
                id,
                target: target.clone(),
            },
            who,
        )
        .await
    {
        Ok(record) => Json(json!({
            "change": record.change,
            "at_unix_ms": record.at_unix_ms,
            "target": target,
            "snapshot": record.snapshot.as_ref().map(|s| s.change),
        }))
        .into_response(),
        Err(CommitError::Refused(err)) => engine_refusal(err),
        Err(CommitError::Unavailable(reason)) => refusal(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
