//! `GET /api/v1/report` (viewers): the performance report of a period, as HTML (default)
//! or CSV (`format=csv`). The period is `period=24h|7d|30d` or `from`/`to` (unix ms or
//! UTC times); the last 24 h without either.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, Viewer};
use crate::report::{self, Period};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/report", get(report))
        .with_state(state)
}

async fn report(
    _: Viewer,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let get = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let csv = match get("format") {
        None | Some("html") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "format",
                format!("must be html or csv, got {other:?}"),
            ))
        }
    };
    let now = engine::time::unix_now_ms();
    let period = Period::from_query(get("period"), get("from"), get("to"), now)
        .map_err(|(field, rule)| ApiError::bad_request(field, rule))?;
    let (body, content_type, ext) = render(&state.monitor, period, csv).await?;
    let stem = format!(
        "perfpilot-report-{}-{}",
        &app::format::utc_iso(period.from_ms)[..16].replace(':', ""),
        &app::format::utc_iso(period.to_ms)[..16].replace(':', "")
    );
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let how = if csv { "attachment" } else { "inline" };
    if let Ok(value) = HeaderValue::from_str(&format!("{how}; filename=\"{stem}.{ext}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // A document of its own: inline styles and SVG only, nothing runs.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    Ok(response)
}

/// The report's body, content type and file extension (the schedule uses it too).
pub async fn render(
    monitor: &crate::state::Monitor,
    period: Period,
    csv: bool,
) -> Result<(String, &'static str, &'static str), ApiError> {
    let actions = monitor
        .persist
        .query_audit(report::actions_filter(period))
        .await
        .map_err(|err| ApiError::from(app::error::AppError::unavailable(err.to_string())))?;
    let monitor = monitor.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let data = report::gather(&monitor, period, actions);
        if csv {
            (report::csv(&data), "text/csv; charset=utf-8", "csv")
        } else {
            let state = monitor.store.state();
            let resources = state
                .resources
                .values()
                .map(|r| (r.id.to_string(), (**r).clone()))
                .collect();
            (
                report::html(&data, &resources),
                "text/html; charset=utf-8",
                "html",
            )
        }
    })
    .await
    .map_err(|err| {
        ApiError::from(app::error::AppError::unavailable(format!(
            "the report failed: {err}"
        )))
    })?;
    Ok(rendered)
}
