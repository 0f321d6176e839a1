//! `POST /api/push`: custom metrics sent by the user's own programs into `custom:<id>`
//! resources.
//!
//! The order of the checks is the point of this module. Cheap refusals come first (rate
//! limit, then size), then the engine's validation of the whole body
//! ([`engine::push::parse_push`]), then the resources the samples name. Only when every
//! sample has passed is anything written: resources first (when the operator allowed it
//! with `--push-create-resources`), then all samples through the push source, which the
//! monitor stores in one all-or-nothing
//! [`History::append_pushed`](engine::history::History::append_pushed). A refused request changes neither the configuration (change
//! counter) nor the history.
//!
//! Errors are JSON: `{"error": "...", "field": "...", "errors": [{"field", "rule",
//! "message"}]}` so a client can show or act on each broken rule. A body that is not JSON
//! is a 400; one that breaks a rule a 422 (the rule of every JSON route).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use app::error::{AppError, FieldRule};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use engine::changes::Mutation;
use engine::history::Appended;
use engine::model::{Metric, MetricKind, Resource, ResourceId};
use engine::push::{parse_push, PushRejected, PushRule, PushedSample};
use engine::source::runtime::NotStored;
use serde_json::{json, Value};

use super::error::{ApiError, Editor};
use super::limits::{client_ip, retry_after_secs, RateLimiter};
use crate::state::AppState;

/// Largest push body; a full batch of 1,000 samples is ≈ 90 KB of JSON only with long
/// names, so 64 KiB bounds the parse cost per request without cramping real batches.
pub const MAX_PUSH_BODY: usize = 64 * 1024;
/// Resources one push may create. Each is a counted, audited change: a single body must
/// not be able to flood the change log and the snapshot ring.
pub const MAX_CREATED_PER_PUSH: usize = 16;
/// The route.
pub const PUSH_PATH: &str = "/api/push";

/// Pushes carry no kind and no unit, so a pushed metric is a plain number (a queue depth
/// is not a rate): shown bare, never as "/s", and any finite value may be its target.
/// A resource created with its own metric kinds keeps them.
const PUSHED_METRIC_KIND: MetricKind = MetricKind::Number;

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

/// A refusal of one rule, as the push API has always answered: the message, and the
/// field and rule in `errors`.
fn refusal(status: StatusCode, field: &str, rule: &str, message: String) -> ApiError {
    let mut error = AppError::new(status.as_u16(), message.clone()).with_field(field);
    error.errors = vec![FieldRule {
        field: field.to_owned(),
        rule: rule.to_owned(),
        message,
    }];
    error.into()
}

/// The engine's verdict on a body: a body that is not JSON is a 400 (malformed, like every
/// JSON route); one that breaks a rule is a 422 listing every broken rule.
fn rejected(err: &PushRejected) -> ApiError {
    let errors: Vec<FieldRule> = err
        .errors
        .iter()
        .map(|e| FieldRule {
            field: e.field.clone(),
            // The engine's rule is a tagged enum; its tag is the stable machine name.
            rule: serde_json::to_value(&e.rule)
                .ok()
                .and_then(|v| v.get("rule").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default(),
            message: e.to_string(),
        })
        .collect();
    let malformed = err
        .errors
        .iter()
        .any(|e| matches!(e.rule, PushRule::InvalidJson { .. }));
    let mut error = AppError::new(
        if malformed { 400 } else { 422 },
        format!("push rejected, nothing was stored: {err}"),
    );
    error.field = errors.first().map(|e| e.field.clone());
    error.errors = errors;
    error.into()
}

async fn push(caller: Editor, State(push): State<Push>, request: Request) -> Response {
    match accept(&push, caller, request).await {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn accept(push: &Push, caller: Editor, request: Request) -> Result<Value, ApiError> {
    let peer = client_ip(&request);
    if let Err(wait) = push.limiter.check(peer, Instant::now()) {
        let secs = retry_after_secs(wait);
        return Err(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "request",
            "rate_limited",
            format!(
                "too many pushes from {peer}: at most {} requests/s with bursts of {}; retry in {secs} s",
                push.app.settings.push_rate, push.app.settings.push_burst
            ),
        )
        .retry_after(secs));
    }
    let actor = caller.identity;
    let body = read_body(request.into_body()).await?;
    let now = engine::time::unix_now_ms();
    let samples = parse_push(&body, now).map_err(|e| rejected(&e))?;
    let monitor = &push.app.monitor;
    let create = resources_to_create(push, &samples)?;

    // Checked before anything is created so that a refusal leaves the configuration as it
    // was; history checks again, all or nothing, when the samples are stored.
    if let Some((new_series, max_series)) = series_needed(&monitor.history(), &samples) {
        return Err(refusal(
            StatusCode::INSUFFICIENT_STORAGE,
            "samples",
            "series_limit",
            format!(
                "storing these samples needs {new_series} new series but at most {max_series} series fit in history; nothing was stored"
            ),
        ));
    }
    // Resources first, each committed before the next (a creation is a change like any
    // other: journaled and audited, acknowledged only once durable).
    let mut created = Vec::new();
    for resource in create {
        let id = resource.id.clone();
        if let Err(err) = monitor
            .apply(Mutation::AddResource { resource }, actor.clone())
            .await
        {
            let already = if created.is_empty() {
                String::new()
            } else {
                format!(" (already created: {})", created.join(", "))
            };
            // Only a concurrent add of the same id or an unavailable database gets here
            // (everything else was validated above); earlier creations of this request
            // stay, which is stated in the answer rather than hidden.
            tracing::warn!(resource = %id, %err, "Push could not create a resource");
            let (status, rule) = if err.status == 503 {
                (StatusCode::SERVICE_UNAVAILABLE, "not_durable")
            } else {
                (StatusCode::CONFLICT, "create_failed")
            };
            return Err(refusal(
                status,
                "samples",
                rule,
                format!("cannot create `{id}`: {err}; no samples were stored{already}"),
            ));
        }
        created.push(id.as_str().to_owned());
    }
    let count = samples.len();
    let outcomes = monitor.push.store(samples, now).await.map_err(|err| {
        let created = if created.is_empty() {
            String::new()
        } else {
            format!(" (resources created: {})", created.join(", "))
        };
        match err {
            NotStored::Refused(err) => refusal(
                StatusCode::INSUFFICIENT_STORAGE,
                "samples",
                "series_limit",
                format!("{err}; no samples were stored{created}"),
            ),
            NotStored::Stopped => refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "samples",
                "not_running",
                format!("{err}; no samples were stored{created}"),
            ),
        }
    })?;
    let tally = |what: Appended| outcomes.iter().filter(|o| **o == what).count();
    Ok(json!({
        "accepted": count,
        "stored": tally(Appended::Stored),
        "filled": tally(Appended::Filled),
        "duplicate": tally(Appended::Duplicate),
        "too_old": tally(Appended::TooOld),
        "created": created,
    }))
}

/// The resources the samples name that do not exist yet (refused unless the operator
/// allowed creating them), each with the metrics it is pushed.
fn resources_to_create(push: &Push, samples: &[PushedSample]) -> Result<Vec<Resource>, ApiError> {
    let state = push.app.monitor.store.state();
    let mut missing: BTreeMap<ResourceId, (usize, Vec<String>)> = BTreeMap::new();
    for (i, sample) in samples.iter().enumerate() {
        let id = ResourceId::new(&sample.resource_type().to_string())
            .expect("custom ids are valid resource ids");
        match state.resources.get(&id) {
            Some(resource) => {
                if resource.metric(&sample.metric).is_none() {
                    let known: Vec<&str> =
                        resource.metrics.iter().map(|m| m.name.as_str()).collect();
                    return Err(refusal(
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
    let Some((id, (i, _))) = missing.iter().next() else {
        return Ok(Vec::new());
    };
    if !push.app.settings.push_create_resources {
        return Err(refusal(
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
        return Err(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "samples",
            "too_many_new_resources",
            format!(
                "may create at most {MAX_CREATED_PER_PUSH} new resources per push, got {}; nothing was stored",
                missing.len()
            ),
        ));
    }
    let mut create = Vec::new();
    for (id, (i, metrics)) in &missing {
        let resource = new_resource(id, &samples[*i], metrics);
        if let Err(err) = resource.validate() {
            return Err(refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("samples[{i}].resource"),
                "invalid_new_resource",
                format!("cannot create `{id}`: {err}; nothing was stored"),
            ));
        }
        create.push(resource);
    }
    Ok(create)
}

/// How many new series storing `samples` needs, when that is more than history can hold.
fn series_needed(
    history: &engine::history::History,
    samples: &[PushedSample],
) -> Option<(usize, usize)> {
    let new_series = samples
        .iter()
        .map(PushedSample::series_key)
        .filter(|k| history.id(k).is_none())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let max_series = history.config().max_series;
    (history.series().len() + new_series > max_series).then_some((new_series, max_series))
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
async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        refusal(
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
                Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "body",
                    "unreadable",
                    format!("cannot read the request body: {err}"),
                ))
            }
        }
    }
}
