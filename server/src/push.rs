//! `POST /api/push`: custom metrics sent by the user's own programs into `custom:<id>`
//! resources.
//!
//! The order of the checks is the point of this module. Cheap refusals come first (rate
//! limit, then size), then the engine's validation of the whole body
//! ([`engine::push::parse_push`]), then the resources the samples name. Only when every
//! sample has passed is anything written: resources first (when the operator allowed it
//! with `--push-create-resources`), then all samples in one
//! [`History::append_pushed`](engine::history::History::append_pushed) call that is
//! itself all-or-nothing. A refused request changes neither the configuration (change
//! counter) nor the history.
//!
//! Errors are JSON: `{"error": "...", "errors": [{"field", "rule", "message"}]}` so a
//! client can show or act on each broken rule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use engine::changes::Mutation;
use engine::history::Appended;
use engine::model::{Metric, MetricKind, Resource, ResourceId};
use engine::push::{parse_push, PushRejected, PushedSample};
use serde_json::{json, Value};

use crate::limits::{client_ip, retry_after_secs, RateLimiter};
use crate::monitor::CommitError;
use crate::state::AppState;
use app::identity::Role;

/// Largest push body; a full batch of 1,000 samples is ≈ 90 KB of JSON only with long
/// names, so 64 KiB bounds the parse cost per request without cramping real batches.
pub const MAX_PUSH_BODY: usize = 64 * 1024;
/// Resources one push may create. Each is a counted, audited change: a single body must
/// not be able to flood the change log and the snapshot ring.
pub const MAX_CREATED_PER_PUSH: usize = 16;
/// The route, also named by the mutation limiter, which leaves pushes to this bucket.
pub const PUSH_PATH: &str = "/api/push";

/// Pushes carry no kind. A gauge with no upper bound (queue depth, connections) is more
/// common than a percentage, and `throughput` is the kind whose targets only require
/// `≥ 0`, so a target can later be set on any such value.
const PUSHED_METRIC_KIND: MetricKind = MetricKind::Throughput;

#[derive(Clone)]
struct Push {
    app: AppState,
    limiter: Arc<RateLimiter>,
}

/// The `/api/push` route with its own rate limiter (one per router).
pub fn router(app: AppState) -> Router {
    let limiter = Arc::new(RateLimiter::new(
        app.settings.push_rate,
        app.settings.push_burst,
    ));
    Router::new()
        .route(PUSH_PATH, post(push))
        .with_state(Push { app, limiter })
}

/// A refusal with its status and per-field errors.
struct Refusal {
    status: StatusCode,
    error: String,
    errors: Vec<Value>,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, field: &str, rule: &str, message: String) -> Refusal {
        Refusal {
            status,
            error: message.clone(),
            errors: vec![json!({"field": field, "rule": rule, "message": message})],
            retry_after: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.error, "errors": self.errors})),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn rejected(err: &PushRejected) -> Refusal {
    let errors = err
        .errors
        .iter()
        .map(|e| {
            // The engine's rule is a tagged enum; its tag is the stable machine name.
            let rule = serde_json::to_value(&e.rule)
                .ok()
                .and_then(|v| v.get("rule").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            json!({"field": e.field, "rule": rule, "message": e.to_string()})
        })
        .collect();
    Refusal {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        error: format!("push rejected, nothing was stored: {err}"),
        errors,
        retry_after: None,
    }
}

async fn push(State(push): State<Push>, request: Request) -> Response {
    match accept(&push, request).await {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn accept(push: &Push, request: Request) -> Result<Value, Refusal> {
    // Pushing writes series (and may create resources): an editor's job.
    // The auth layer always sets one; a router served without it acts for nobody.
    let who = app::backend::identity_in(request.extensions());
    if !who.may(Role::Editor) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "request",
            "forbidden",
            app::backend::forbidden_message(&who, Role::Editor),
        ));
    }
    let peer = client_ip(&request);
    if let Err(wait) = push.limiter.check(peer, Instant::now()) {
        let secs = retry_after_secs(wait);
        let mut refusal = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "request",
            "rate_limited",
            format!(
                "too many pushes from {peer}: at most {} requests/s with bursts of {}; retry in {secs} s",
                push.app.settings.push_rate, push.app.settings.push_burst
            ),
        );
        refusal.retry_after = Some(secs);
        return Err(refusal);
    }
    let actor = who;
    let body = read_body(request.into_body()).await?;
    let now = engine::collect::unix_now_ms();
    let samples = parse_push(&body, now).map_err(|e| rejected(&e))?;
    let (store, history) = (&push.app.monitor.store, &push.app.monitor.history);

    // Which resources exist, and which would have to be created (with which metrics).
    let state = store.state();
    let mut missing: BTreeMap<ResourceId, (usize, Vec<String>)> = BTreeMap::new();
    for (i, sample) in samples.iter().enumerate() {
        let id = ResourceId::new(&sample.resource_type().to_string())
            .expect("custom ids are valid resource ids");
        match state.resources.get(&id) {
            Some(resource) => {
                if resource.metric(&sample.metric).is_none() {
                    let known: Vec<&str> =
                        resource.metrics.iter().map(|m| m.name.as_str()).collect();
                    return Err(Refusal::new(
                        StatusCode::NOT_FOUND,
                        &format!("samples[{i}].metric"),
                        "unknown_metric",
                        format!(
                            "resource `{id}` has no metric `{}` (it has: {}); nothing was stored",
                            sample.metric,
                            known.join(", ")
                        ),
                    ));
                }
            }
            None => {
                let (_, metrics) = missing.entry(id).or_insert((i, Vec::new()));
                if !metrics.contains(&sample.metric) {
                    metrics.push(sample.metric.clone());
                }
            }
        }
    }
    let mut create = Vec::new();
    if let Some((id, (i, _))) = missing.iter().next() {
        if !push.app.settings.push_create_resources {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                &format!("samples[{i}].resource"),
                "unknown_resource",
                format!(
                    "resource `{id}` does not exist; add it first, or start perfpilot with \
                     --push-create-resources (PERFPILOT_PUSH_CREATE_RESOURCES=true) to create \
                     custom resources on first push; nothing was stored"
                ),
            ));
        }
        if missing.len() > MAX_CREATED_PER_PUSH {
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "samples",
                "too_many_new_resources",
                format!(
                    "may create at most {MAX_CREATED_PER_PUSH} new resources per push, got {}; nothing was stored",
                    missing.len()
                ),
            ));
        }
        for (id, (i, metrics)) in &missing {
            let resource = new_resource(id, &samples[*i], metrics);
            if let Err(err) = resource.validate() {
                return Err(Refusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("samples[{i}].resource"),
                    "invalid_new_resource",
                    format!("cannot create `{id}`: {err}; nothing was stored"),
                ));
            }
            create.push(resource);
        }
    }

    // Writes. Resources first, each committed before the next (a creation is a change
    // like any other: journaled and audited, acknowledged only once durable, so no lock
    // is held across it). Then the history lock is taken for the capacity check and the
    // append together, so the check still holds when the samples are stored (the monitor
    // registers collector series under the same lock).
    let series_needed = |history: &engine::history::History| {
        let new_series = samples
            .iter()
            .map(PushedSample::series_key)
            .filter(|k| history.id(k).is_none())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let max_series = history.config().max_series;
        (history.series().len() + new_series > max_series).then_some((new_series, max_series))
    };
    // Checked before anything is created so that a refusal leaves the configuration as it
    // was; checked again under the write lock below for pushes racing this one.
    if let Some((new_series, max_series)) =
        series_needed(&history.read().expect("history lock poisoned"))
    {
        return Err(Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "samples",
            "series_limit",
            format!(
                "storing these samples needs {new_series} new series but at most {max_series} series fit in history; nothing was stored"
            ),
        ));
    }
    let mut created = Vec::new();
    for resource in create {
        let id = resource.id.clone();
        match push
            .app
            .monitor
            .commit(Mutation::AddResource { resource }, actor.clone())
            .await
        {
            Ok(_) => created.push(id.as_str().to_owned()),
            Err(err) => {
                let already = if created.is_empty() {
                    String::new()
                } else {
                    format!(" (already created: {})", created.join(", "))
                };
                return Err(match err {
                    // Only a concurrent add of the same id gets here (everything else was
                    // validated above); earlier creations of this request stay, which is
                    // stated in the answer rather than hidden.
                    CommitError::Refused(err) => {
                        tracing::warn!(resource = %id, %err, "Push could not create a resource");
                        Refusal::new(
                            StatusCode::CONFLICT,
                            "samples",
                            "create_failed",
                            format!("cannot create `{id}`: {err}; no samples were stored{already}"),
                        )
                    }
                    CommitError::Unavailable(reason) => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "samples",
                        "not_durable",
                        format!("cannot create `{id}`: {reason}; no samples were stored{already}"),
                    ),
                });
            }
        }
    }
    let mut history = history.write().expect("history lock poisoned");
    if let Some((new_series, max_series)) = series_needed(&history) {
        return Err(Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "samples",
            "series_limit",
            format!(
                "storing these samples needs {new_series} new series but at most {max_series} series fit in history; no samples were stored{}",
                if created.is_empty() {
                    String::new()
                } else {
                    format!(" (resources created: {})", created.join(", "))
                }
            ),
        ));
    }
    let outcomes = history.append_pushed(&samples).map_err(|err| {
        Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "samples",
            "series_limit",
            format!("{err}; no samples were stored"),
        )
    })?;
    drop(history);
    let count = |what: Appended| outcomes.iter().filter(|o| **o == what).count();
    Ok(json!({
        "accepted": samples.len(),
        "stored": count(Appended::Stored),
        "filled": count(Appended::Filled),
        "duplicate": count(Appended::Duplicate),
        "too_old": count(Appended::TooOld),
        "created": created,
    }))
}

/// A custom resource as the first push describes it: the metrics it names, no target.
fn new_resource(id: &ResourceId, sample: &PushedSample, metrics: &[String]) -> Resource {
    let mut resource = Resource::new(
        id.clone(),
        sample.resource_type(),
        &sample.resource_type().label(),
    );
    resource.metrics = metrics
        .iter()
        .map(|m| Metric::new(m, PUSHED_METRIC_KIND))
        .collect();
    resource.target = None;
    resource
}

/// Reads at most [`MAX_PUSH_BODY`] bytes; a declared or actual larger body is 413.
async fn read_body(body: Body) -> Result<axum::body::Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            "too_large",
            format!(
                "push bodies are limited to {MAX_PUSH_BODY} bytes; split the batch; nothing was stored"
            ),
        )
    };
    match axum::body::to_bytes(body, MAX_PUSH_BODY).await {
        Ok(bytes) => Ok(bytes),
        Err(err) => {
            let source = std::error::Error::source(&err);
            let over = source.is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || err.to_string().contains("length limit");
            if over {
                Err(too_large())
            } else {
                Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "body",
                    "unreadable",
                    format!("cannot read the request body: {err}"),
                ))
            }
        }
    }
}
