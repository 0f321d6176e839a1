//! The HTTP surface: [`app`] builds the whole router so `main` and the in-process tests
//! serve exactly the same thing.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::assets::PKG_DIR;
use crate::state::AppState;

/// `/pkg` files are named after their content hash, so they never change under a name.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// The favicon has a stable name: let caches keep it a day.
const ONE_DAY: HeaderValue = HeaderValue::from_static("public, max-age=86400");

pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let render = {
        let options = state.leptos_options.clone();
        let assets = app::SiteAssets {
            stylesheet: state.site.stylesheet_href(),
        };
        move || app::shell(options.clone(), assets.clone())
    };
    let context = {
        let live = app::backend::BackendContext(std::sync::Arc::new(state.monitor.clone()));
        let tokens = app::identity::TokenAdminContext(state.tokens.clone());
        move || {
            leptos::prelude::provide_context(live.clone());
            leptos::prelude::provide_context(tokens.clone());
        }
    };
    let not_found = {
        let handler =
            leptos_axum::render_app_to_stream_with_context(context.clone(), render.clone());
        move |req: Request<Body>| handler(req)
    };

    let pkg = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            IMMUTABLE,
        ))
        .service(
            ServeDir::new(state.site.root.join(PKG_DIR))
                .precompressed_br()
                .precompressed_gzip(),
        );
    let favicon = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            ONE_DAY,
        ))
        .service(ServeFile::new(state.site.root.join("favicon.svg")));

    let settings = state.settings.clone();
    let auth = state.auth.clone();
    let metrics = settings
        .metrics_on_main_listener
        .then(|| crate::metrics::Exposition::new(state.monitor.clone()).router());
    let api = crate::push::router(state.clone())
        .merge(crate::export::router(state.clone()))
        .merge(crate::audit::router(state.clone()))
        .merge(crate::api::router(state.clone()));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest_service("/pkg", pkg)
        .route_service("/favicon.svg", favicon)
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/favicon.svg") }),
        )
        .route("/ws/live", get(crate::hub::live))
        .leptos_routes_with_context(&state, routes, context, render)
        .fallback(not_found)
        .with_state(state);
    router.merge(api).merge(metrics.unwrap_or_default()).layer(
        // Outermost first: every request is traced, even the ones refused below; the
        // Origin check runs before any handler can change state.
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn(crate::guard::origin_and_headers))
            .layer(axum::middleware::from_fn_with_state(
                auth,
                crate::auth::identify,
            ))
            .layer(CompressionLayer::new())
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                settings.request_timeout,
            )),
    )
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to serve users: the browser bundle exists, the collector is running and the
/// database takes changes.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    if let Some(problem) = &state.site.problem {
        problems.push(problem.clone());
    }
    if !state.monitor.is_running() {
        problems.push("the host collector has stopped".to_owned());
    }
    if let Err(err) = state.monitor.persist.check() {
        problems.push(err.to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready: {}\n", problems.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
