//! The HTTP surface: [`app`] builds the whole router so `main` and the in-process tests
//! serve exactly the same thing.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, on, MethodFilter};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower::{ServiceBuilder, ServiceExt};
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
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    let base = settings.base_path().to_owned();
    let context = leptos_context(&state, &base);
    // Pages render with everything resolved (`Async`): out-of-order streaming would add
    // inline `<script>`s without the CSP nonce (tachys 0.2 leaves them unsigned), and the
    // pages' data comes from memory in microseconds, so streaming gains nothing.
    let page = {
        let handler =
            leptos_axum::render_app_async_with_context(context.clone(), shell(&state, &base));
        move |request: Request<Body>| handler(public_uri(request))
    };
    let favicon_svg = format!("{base}/favicon.svg");
    let metrics = settings
        .metrics_on_main_listener
        .then(|| crate::http::metrics::Exposition::new(state.monitor.clone()).router());
    let api = crate::http::push::router(state.clone())
        .merge(crate::http::export::router(state.clone()))
        .merge(crate::http::audit::router(state.clone()))
        .merge(crate::http::alerts::read_router(state.clone()))
        .merge(crate::http::report::router(state.clone()));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest_service("/pkg", pkg_service(&state))
        .route_service("/favicon.svg", favicon_service(&state))
        .route(
            "/favicon.ico",
            get(move || async move { Redirect::permanent(&favicon_svg) }),
        )
        .route("/ws/live", get(crate::http::live::live))
        // An unknown API path is a JSON 404, never a rendered page.
        .route(
            "/api/{*rest}",
            axum::routing::any(crate::http::refusal::api_not_found),
        )
        .leptos_routes_with_handler(generate_route_list(app::App), page.clone())
        .fallback(page)
        .with_state(state.clone())
        .merge(mutations(&state, context))
        .merge(api)
        .merge(metrics.unwrap_or_default());
    let router = if base.is_empty() {
        router
    } else {
        under_base(base, router, state.clone())
    };
    with_middleware(router, &state)
}

/// The document shell with the bundle's hashed names under the base path.
fn shell(
    state: &AppState,
    base: &str,
) -> impl Fn() -> leptos::prelude::AnyView + Clone + Send + 'static {
    let options = state.leptos_options.clone();
    let bundle = format!("{base}/{}", state.site.bundle_path);
    let assets = app::SiteAssets {
        stylesheet: format!("{base}{}", state.site.stylesheet_href()),
        base: app::base::BasePath(base.to_owned()),
        page_preloads: std::sync::Arc::new(
            state
                .site
                .page_chunks
                .iter()
                .map(|(page, files)| {
                    let hrefs = files.iter().map(|f| format!("{bundle}/{f}")).collect();
                    (page.clone(), hrefs)
                })
                .collect(),
        ),
        split_loader: format!("{bundle}/{}", crate::assets::SPLIT_LOADER),
    };
    move || {
        use leptos::prelude::IntoAny;
        app::shell(options.clone(), assets.clone()).into_any()
    }
}

/// What every render and server function gets as Leptos context: the capabilities server
/// functions reach (each its own handle, all served by the monitor), the base path, token
/// management and the response's CSP nonce.
fn leptos_context(state: &AppState, base: &str) -> impl Fn() + Clone + Send + Sync + 'static {
    let capabilities = app::backend::Capabilities::of(state.monitor.clone());
    let base = app::base::BasePath(base.to_owned());
    let tokens = app::identity::TokenAdminContext(state.tokens.clone());
    move || {
        use leptos::prelude::{provide_context, use_context};
        capabilities.provide();
        provide_context(base.clone());
        provide_context(tokens.clone());
        // Replaces the nonce leptos_axum made up with the one the CSP header names.
        let nonce = use_context::<http::request::Parts>().and_then(|parts| {
            parts
                .extensions
                .get::<crate::http::guard::CspNonce>()
                .cloned()
        });
        if let Some(crate::http::guard::CspNonce(nonce)) = nonce {
            provide_context(leptos::nonce::Nonce::from_value(nonce));
        }
    }
}

/// `/pkg`: the hashed bundle, precompressed. Only a file that exists may be cached
/// forever: a 404 cached for a year would break a page whose chunk is fetched during a
/// deploy (or from a server not yet upgraded).
fn pkg_service(
    state: &AppState,
) -> impl tower::Service<
    Request<Body>,
    Response = axum::http::Response<tower_http::services::fs::ServeFileSystemResponseBody>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            |response: &axum::http::Response<_>| {
                Some(if response.status().is_success() {
                    IMMUTABLE
                } else {
                    NO_STORE
                })
            },
        ))
        .service(
            ServeDir::new(state.site.root.join(PKG_DIR))
                .precompressed_br()
                .precompressed_gzip(),
        )
}

fn favicon_service(
    state: &AppState,
) -> impl tower::Service<
    Request<Body>,
    Response = axum::http::Response<tower_http::services::fs::ServeFileSystemResponseBody>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            ONE_DAY,
        ))
        .service(ServeFile::new(state.site.root.join("favicon.svg")))
}

/// Everything that changes configuration over HTTP: the server functions and the JSON
/// API, sharing one per-client bucket applied as a layer of exactly these routes (pushes
/// have their own bucket). Server functions are found by the path of the request, which
/// under a base path has been stripped to the `/api/…` they were registered with.
fn mutations(state: &AppState, context: impl Fn() + Clone + Send + Sync + 'static) -> Router {
    let settings = &state.settings;
    let limit = crate::http::limits::MutationLimit {
        limiter: std::sync::Arc::new(crate::http::limits::RateLimiter::new(
            settings.mutation_rate,
            settings.mutation_burst,
        )),
        rate: settings.mutation_rate,
        burst: settings.mutation_burst,
    };
    let mut routes = crate::http::api::router(state.clone())
        .merge(crate::http::sources::router(state.clone()))
        .merge(crate::http::alerts::router(state.clone()));
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        let context = context.clone();
        let handler = move |request: Request<Body>| {
            let context = context.clone();
            async move {
                let response = leptos_axum::handle_server_fns_with_context(context, request).await;
                status_from_error_body(response.into_response()).await
            }
        };
        let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::POST);
        routes = routes.route(path, on(filter, handler));
    }
    // Outermost: a follower passes the edit to the leader before anything here runs, and
    // the leader takes the identity (and so the client's address the limit counts) the
    // edit carries.
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            limit,
            crate::http::limits::mutations,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::forward::edits,
        ))
}

/// The middleware every request goes through. Outermost first: every request is traced,
/// even the ones refused below; a JSON route's refusal made by any layer below is JSON; the Origin check runs before any handler can change
/// state; the identity is known before any handler (and the mutation limit) runs.
fn with_middleware(router: Router, state: &AppState) -> Router {
    let settings = &state.settings;
    let guard =
        crate::http::guard::Guard::new(settings.public_url.as_ref().map(|p| p.origin.as_str()));
    let base: std::sync::Arc<str> = settings.base_path().into();
    router.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn_with_state(
                base,
                crate::http::refusal::json_refusals,
            ))
            .layer(axum::middleware::from_fn_with_state(
                guard,
                crate::http::guard::origin_and_headers,
            ))
            .layer(axum::middleware::from_fn(crate::http::guard::page_policy))
            .layer(axum::middleware::from_fn_with_state(
                state.auth.clone(),
                crate::http::auth::identify,
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

/// server_fn answers every failed server function with 500; the status the function
/// meant is in its error body (`app::error::AppError`: `{"status": 422, "error": …}`), so
/// it is put on the response: a refusal is a 4xx, a client's undecodable arguments a 400,
/// and only the server's own failures stay 5xx. Only failed answers are read, and they are
/// small.
async fn status_from_error_body(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server function failed\n",
        )
            .into_response();
    };
    if let Some(status) = serde_json::from_slice::<app::error::AppError>(&bytes)
        .ok()
        .and_then(|error| StatusCode::from_u16(error.status).ok())
        .filter(|status| status.is_client_error() || status.is_server_error())
    {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The URI the user asked for, before the base path was stripped: what the Leptos router
/// (which knows the base) must see to match the same route the browser will.
#[derive(Clone, Debug)]
struct PublicUri(Uri);

fn public_uri(mut request: Request<Body>) -> Request<Body> {
    if let Some(PublicUri(uri)) = request.extensions_mut().remove::<PublicUri>() {
        *request.uri_mut() = uri;
    }
    request
}

/// Serves `inner` (routed at `/`) under `base`: `/perf/changes` reaches the `/changes`
/// route, `/perf` redirects to `/perf/`, and anything outside the base is a plain 404
/// except the root health probes, which orchestrators call without knowing the base.
fn under_base(base: String, inner: Router, state: AppState) -> Router {
    let base_slash = format!("{base}/");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .fallback(move |mut request: Request<Body>| {
            let inner = inner.clone();
            let (base, base_slash) = (base.clone(), base_slash.clone());
            async move {
                let path = request.uri().path();
                if path == base {
                    return Redirect::permanent(&base_slash).into_response();
                }
                let Some(rest) = path.strip_prefix(&base).filter(|r| r.starts_with('/')) else {
                    let body = format!("not found: perfpilot is served under {base_slash}\n");
                    return (StatusCode::NOT_FOUND, body).into_response();
                };
                let stripped = match request.uri().query() {
                    Some(query) => format!("{rest}?{query}"),
                    None => rest.to_owned(),
                };
                let Ok(stripped) = stripped.parse::<Uri>() else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                let original = std::mem::replace(request.uri_mut(), stripped);
                request.extensions_mut().insert(PublicUri(original));
                match inner.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        })
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to serve users: the browser bundle exists, the monitor task is alive (it stops on
/// a panic too), the host source is not failing and the database takes changes.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    if let Some(problem) = &state.site.problem {
        problems.push(problem.clone());
    }
    if !state.monitor.is_running() {
        problems.push(
            "the monitor task has stopped: live data, statuses and actions are frozen".to_owned(),
        );
    }
    if let Some(host) = state
        .monitor
        .sources
        .statuses()
        .get(connectors::sources::host::SOURCE_ID)
    {
        if let engine::source::SourceHealth::Down { reason, .. } = &host.health {
            problems.push(format!("the host source is failing: {reason}"));
        }
    }
    if let Err(err) = state.monitor.persist.check() {
        problems.push(err.to_string());
    }
    // History not reaching the disk degrades perfpilot but does not stop it serving live
    // data and acting: ready, with the reason.
    let history = state.monitor.stored.problem();
    // A replica of a shared store says which it is: "ready (leader a in epoch 3)",
    // "ready (b, follower of a (http://…))". Both serve; a load balancer that must reach
    // the leader for edits checks for "(leader".
    let standing = state.monitor.leadership.describe();
    let ready = if standing.is_empty() {
        "ready".to_owned()
    } else {
        format!("ready ({standing})")
    };
    if problems.is_empty() {
        match history {
            Some(why) => (StatusCode::OK, format!("{ready}; warning: {why}\n")).into_response(),
            None => (StatusCode::OK, format!("{ready}\n")).into_response(),
        }
    } else {
        let body = format!("not ready: {}\n", problems.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
