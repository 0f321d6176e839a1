//! Adding and removing configured sources over HTTP (admins only): the UI's "Add
//! database" and scripts.
//!
//! `POST /api/v1/databases` with `{"name": "orders", "url": "postgresql://perf@db:5432/app",
//! "password": "…", "probe_query": "…", "group": "…"}` (and `"kind": "mysql"` with a
//! `mysql://` URL for MySQL/MariaDB; any database kind, PostgreSQL when none is named)
//! connects once with exactly these settings and refuses with the reason (unreachable,
//! authentication failed, database missing, role without `pg_monitor`) before anything
//! changes; then adds the resource `database:orders` as a counted change. A password sent here stays on the server: it is
//! written to `<data-dir>/secrets/` (readable by perfpilot's user only) and the source
//! names that file; it is never in an answer, a snapshot, the audit log or a log line.
//!
//! `POST /api/v1/caches` with `{"kind": "redis", "name": "sessions", "url":
//! "redis://cache:6379/0", "username": "…", "password": "…", "group": "…", "level": 2}`
//! (or `"kind": "memcached", "url": "host:11211"`) does the same for `cache:sessions`.
//!
//! `POST /api/v1/fleets` with `{"name": "prod", "url": "http://prometheus:9090", "selector":
//! "up{job=\"node\"}", "group_by": ["env", "role"], "bearer_token": "…"}` (or `"username"`
//! and `"password"`, or `*_file`/`*_env`, and any other `[[prometheus]]` setting) runs a
//! test query of the selector and of every metric and refuses with the store's reason
//! (unreachable, unauthorized, bad PromQL, no series match) before adding `fleet:prod`.
//!
//! `POST /api/v1/resources/{id}/invalidate` with `{"pattern": "session:*", "confirm":
//! false}` counts the keys of a Redis cache that match; with `"confirm": true` (editors
//! and admins) unlinks them, bounded in count and time, audited.
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

use super::error::{Admin, ApiError, Editor};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/databases", post(add_database))
        .route("/api/v1/caches", post(add_cache))
        .route("/api/v1/fleets", post(add_fleet))
        .route("/api/v1/resources/{id}/invalidate", post(invalidate))
        .route("/api/v1/resources/{id}", delete(remove_resource))
        .with_state(state)
}

/// The body of `POST /api/v1/databases`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDatabase {
    #[serde(default)]
    kind: Option<String>,
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
    one_password(&new.password, &new.password_file, &new.password_env)?;
    let added = state
        .monitor
        .add_database(
            app::databases::NewDatabase {
                kind: new.kind,
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
        "statements": added.statements,
    })))
}

/// The body of `POST /api/v1/caches`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCache {
    kind: String,
    name: String,
    url: String,
    #[serde(default)]
    tls_ca_file: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    level: Option<u8>,
}

async fn add_cache(
    caller: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: NewCache = super::parse_json(&body)?;
    one_password(&new.password, &new.password_file, &new.password_env)?;
    let added = state
        .monitor
        .add_cache(
            app::caches::NewCache {
                kind: new.kind,
                name: new.name,
                url: new.url,
                tls_ca_file: new.tls_ca_file,
                username: new.username,
                password: new.password,
                group: new.group,
                level: new.level,
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
        "tuning_unavailable": added.tuning_unavailable,
    })))
}

/// `POST /api/v1/fleets`: a `[[prometheus]]` entry as JSON, with the secret (bearer token
/// or basic-auth password) either inline (kept under `<data-dir>/secrets/`) or named by
/// its file or environment variable.
async fn add_fleet(
    caller: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use connectors::sources::prometheus::PrometheusSettings;
    let mut fields: serde_json::Map<String, Value> = super::parse_json(&body)?;
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err(AppError::invalid("name", "the fleet needs a name").into()),
    };
    let take_secret =
        |fields: &mut serde_json::Map<String, Value>, key: &str| match fields.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(AppError::invalid(key, "must be a string")),
        };
    let password = take_secret(&mut fields, "password")?;
    let token = take_secret(&mut fields, "bearer_token")?;
    if password.is_some() && token.is_some() {
        return Err(AppError::invalid(
            "bearer_token",
            "send a bearer token or a password, not both",
        )
        .into());
    }
    let settings: PrometheusSettings = serde_json::from_value(Value::Object(fields))
        .map_err(|err| ApiError::bad_request("body", err))?;
    if token.is_some() && settings.username.is_some() {
        return Err(AppError::invalid(
            "bearer_token",
            "a bearer token goes without a username; send the user's password instead",
        )
        .into());
    }
    if password.is_some() && settings.username.is_none() {
        return Err(
            AppError::invalid("username", "a password needs the user it belongs to").into(),
        );
    }
    let (change, id, checked) = state
        .monitor
        .add_configured(
            &name,
            connectors::sources::Configured::new(settings),
            password.or(token),
            caller.identity,
        )
        .await?;
    Ok(Json(json!({
        "change": change,
        "resource": id.as_str(),
        "store": checked.server_version,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    pattern: String,
    #[serde(default)]
    confirm: bool,
}

async fn invalidate(
    caller: Editor,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ask: Invalidate = super::parse_json(&body)?;
    let done = state
        .monitor
        .invalidate(&id, &ask.pattern, ask.confirm, &caller.identity)
        .await?;
    Ok(Json(json!({
        "keys": done.keys,
        "scanned": done.scanned,
        "complete": done.complete,
        "invalidated": done.done,
        "hook": done.hook,
        "message": done.describe(&ask.pattern),
    })))
}

/// A password is sent, or named by a file or a variable: not two of them.
fn one_password(
    password: &Option<String>,
    file: &Option<PathBuf>,
    env: &Option<String>,
) -> Result<(), ApiError> {
    if password.is_some() && (file.is_some() || env.is_some()) {
        return Err(AppError::invalid(
            "password",
            "give one of password, password_file or password_env",
        )
        .into());
    }
    Ok(())
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
