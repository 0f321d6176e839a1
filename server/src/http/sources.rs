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
use connectors::sources::postgres::{self, PostgresSettings};
use engine::changes::Mutation;
use engine::model::ResourceId;
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

fn secrets_dir(state: &AppState) -> Option<PathBuf> {
    state
        .settings
        .data_dir
        .as_ref()
        .map(|dir| dir.join("secrets"))
}

/// Writes `password` where only perfpilot's user can read it; the path is what the
/// source's settings keep.
fn store_password(state: &AppState, name: &str, password: &str) -> Result<PathBuf, AppError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = secrets_dir(state).ok_or_else(|| {
        AppError::invalid(
            "password",
            "cannot be stored with --ephemeral (nothing is written); use password_file or password_env",
        )
    })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|err| AppError::unavailable(format!("cannot create {}: {err}", dir.display())))?;
    let path = dir.join(format!("database-{name}.password"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|err| AppError::unavailable(format!("cannot write {}: {err}", path.display())))?;
    file.write_all(password.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| AppError::unavailable(format!("cannot write {}: {err}", path.display())))?;
    Ok(path)
}

/// Role, parse, connect once, apply.
async fn add_database(
    caller: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: NewDatabase = super::parse_json(&body)?;
    let id = postgres::resource_id(&new.name).map_err(|rule| AppError::invalid("name", rule))?;
    if state.monitor.store.state().resources.contains_key(&id) {
        return Err(
            AppError::new(409, format!("resource `{id}` already exists"))
                .with_field("name")
                .into(),
        );
    }
    if new.password.is_some() && (new.password_file.is_some() || new.password_env.is_some()) {
        return Err(AppError::invalid(
            "password",
            "give one of password, password_file or password_env",
        )
        .into());
    }
    let mut settings = PostgresSettings {
        url: new.url,
        password_file: new.password_file,
        password_env: new.password_env,
        probe_query: new.probe_query,
        group: new.group,
        statement_timeout_ms: 2_000,
    };
    settings.validate().map_err(invalid)?;
    // Checked with the password as sent, before it is written anywhere.
    let password = match &new.password {
        Some(password) => Some(password.clone()),
        None => settings.password().map_err(invalid)?,
    };
    let report = postgres::check_with(&settings, password)
        .await
        .map_err(unreachable)?;
    if let Some(password) = &new.password {
        settings.password_file = Some(store_password(&state, &new.name, password)?);
    }
    let resource = postgres::resource(&new.name, &settings, &state.settings.resource_defaults)
        .map_err(invalid)?;
    let record = state
        .monitor
        .apply(Mutation::AddResource { resource }, caller.identity)
        .await?;
    Ok(Json(json!({
        "change": record.change,
        "resource": id.as_str(),
        "server_version": report.server_version,
        "pg_stat_statements": report.statements,
    })))
}

fn invalid(rule: String) -> ApiError {
    let field = rule.split(':').next().unwrap_or("body").to_owned();
    AppError::new(422, rule).with_field(&field).into()
}

/// A database perfpilot cannot use as given: the reason, as a 422 about the connection.
fn unreachable(reason: String) -> ApiError {
    AppError::new(422, format!("cannot use this database: {reason}"))
        .with_field("url")
        .into()
}

async fn remove_resource(
    caller: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ResourceId::new(&id)?;
    let current = state.monitor.store.state().resources.get(&id).cloned();
    if current.as_ref().is_some_and(|r| r.source.is_none()) {
        return Err(AppError::new(
            409,
            format!("resource `{id}` belongs to a built-in source (the host or pushes) and cannot be removed"),
        )
        .into());
    }
    let record = state
        .monitor
        .apply(Mutation::RemoveResource { id: id.clone() }, caller.identity)
        .await?;
    // A password this server stored for it goes too.
    if let (Some(dir), Some(name)) = (secrets_dir(&state), id.as_str().strip_prefix("database:")) {
        let _ = std::fs::remove_file(dir.join(format!("database-{name}.password")));
    }
    Ok(Json(
        json!({ "change": record.change, "removed": id.as_str() }),
    ))
}
