//! Adding and removing configured sources over HTTP (admins only): the UI's "Add
//! database" and scripts.
//!
//! `POST /api/v1/databases` with `{"name": "orders", "url": "postgresql://perf@db:5432/app",
//! "password": "…", "probe_query": "…", "group": "…"}` connects once with exactly these
//! settings and refuses with the reason (unreachable, authentication failed, database
//! missing, role without `pg_monitor`) before anything changes; then adds the resource
//! `database:orders` as a counted change. A password sent here stays on the server: it is
//! written to `<data-dir>/secrets/` (readable by perfpilot's user only) and the source
//! names that file; it is never in an answer, a snapshot, the audit log or a log line.
//!
//! `DELETE /api/v1/resources/{id}` removes a configured resource (and its stored password).

use std::path::PathBuf;

use app::error::AppError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{Admin, ApiError};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/databases", post(add_database))
        .route("/api/v1/resources/{id}", delete(remove_resource))
        .with_state(state)
}

/// The body of `POST /api/v1/databases`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDatabase {
    name: String,
    url: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    probe_query: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

/// Role, parse, then the one path of adding a database (shared with the UI).
async fn add_database(
    caller: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: NewDatabase = super::parse_json(&body)?;
    if new.password.is_some() && (new.password_file.is_some() || new.password_env.is_some()) {
        return Err(AppError::invalid(
            "password",
            "give one of password, password_file or password_env",
        )
        .into());
    }
    let added = state
        .monitor
        .add_database(
            app::databases::NewDatabase {
                name: new.name,
                url: new.url,
                password: new.password,
                probe_query: new.probe_query,
                group: new.group,
            },
            new.password_file,
            new.password_env,
            caller.identity,
        )
        .await?;
    Ok(Json(json!({
        "change": added.change,
        "resource": added.resource,
        "server_version": added.server_version,
        "pg_stat_statements": added.statements,
    })))
}

async fn remove_resource(
    caller: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let change = state
        .monitor
        .remove_configured(&id, caller.identity)
        .await?;
    Ok(Json(json!({ "change": change, "removed": id })))
}
