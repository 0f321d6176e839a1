//! perfpilot's user interface: the document shell, the router and the pages.
//!
//! Rendered on the server (feature `ssr`) and hydrated in the browser (feature
//! `hydrate`); the same components run in both places, so anything browser-only runs in
//! an `Effect` (effects never run during SSR).

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    lazy_route, path, Lazy, LazyRoute,
};

pub mod alerts;
pub mod audit;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod base;
pub mod caches;
pub mod changed;
#[cfg(feature = "hydrate")]
mod chart;
mod codec;
mod components;
pub mod databases;
pub mod error;
pub mod fleets;
pub mod format;
pub mod identity;
pub mod kinds;
pub mod live;
mod pages;
pub mod proof;
pub mod resource_data;
pub mod status;

use components::access::{provide_me, WhoAmI};
use components::theme::ThemeToggle;
use pages::{
    alerts::AlertsPage, audit::AuditPage, changes::ChangesPage, fleet::FleetPage,
    fleet_target::FleetTargetPage, not_found::NotFound, overview::OverviewPage, proof::ProofPage,
    reports::ReportsPage, resource::ResourcePage, settings::SettingsPage,
};

/// Names of the built browser assets, resolved by the server at start-up. The names carry
/// a content hash so `/pkg` can be cached forever.
#[derive(Clone, Debug, Default)]
pub struct SiteAssets {
    /// `href` of the stylesheet under the base path, e.g. `/perf/pkg/perfpilot-1a2b3c.css`.
    pub stylesheet: String,
    /// The path prefix everything is served under (`""` at the root).
    pub base: base::BasePath,
    /// `href`s of the chunk files each lazy page needs, by route key ([`PAGES`]).
    pub page_preloads: std::sync::Arc<std::collections::HashMap<String, Vec<String>>>,
    /// `href` of the wasm-split loader the main module imports.
    pub split_loader: String,
}

/// Every page's path and the key of its lazy route's chunks (the route type's name in
/// snake case, see `splitter`). Must list the same pages as the `<Routes>` in [`App`];
/// `server/tests/router.rs` checks every path renders and preloads its chunks.
pub const PAGES: [(&str, &str); 10] = [
    ("/", "overview_route"),
    ("/changes", "changes_route"),
    ("/audit", "audit_route"),
    ("/alerts", "alerts_route"),
    ("/reports", "reports_route"),
    ("/resource", "resource_route"),
    ("/before-after", "proof_route"),
    ("/settings", "settings_route"),
    ("/fleet", "fleet_route"),
    ("/fleet/target", "fleet_target_route"),
];

/// The chunk files the page being rendered needs, as preload `href`s (none in the
/// browser, which never renders the shell).
fn chunk_preloads(assets: &SiteAssets) -> Vec<String> {
    #[cfg(feature = "ssr")]
    let path = {
        let path = use_context::<http::request::Parts>()
            .map(|parts| parts.uri.path().to_owned())
            .unwrap_or_default();
        match path.strip_prefix(assets.base.0.as_str()) {
            Some("") => "/".to_owned(),
            Some(below) => below.to_owned(),
            None => path,
        }
    };
    #[cfg(not(feature = "ssr"))]
    let path = String::new();
    PAGES
        .iter()
        .find(|(page, _)| *page == path)
        .and_then(|(_, key)| assets.page_preloads.get(*key))
        .cloned()
        .unwrap_or_default()
}

/// The whole HTML document, rendered only on the server.
pub fn shell(options: LeptosOptions, assets: SiteAssets) -> impl IntoView {
    // The server chose this response's nonce and names it in the Content-Security-Policy
    // header (`server/src/guard.rs`); inline scripts without it would not run.
    let nonce = leptos::nonce::use_nonce();
    let root = assets.base.0.clone();
    // The page's code chunks download alongside the main module instead of after
    // hydration asks for them (one round trip less before the page is interactive).
    let preloads = chunk_preloads(&assets);
    let split_loader = (!preloads.is_empty()).then(|| assets.split_loader.clone());
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <meta name=base::META_NAME content=root.clone()/>
                <link rel="icon" type="image/svg+xml" href=assets.base.join("/favicon.svg")/>
                <link rel="stylesheet" href=assets.stylesheet/>
                // Applies the saved theme, or the system's dark preference, before first
                // paint so a dark-mode user never sees a white flash; the toggle component
                // owns the value after hydration.
                <script nonce=nonce>{components::theme::BOOT_SCRIPT}</script>
                <HydrationScripts options root/>
                {split_loader.map(|href| view! { <link rel="modulepreload" href=href/> })}
                {preloads
                    .into_iter()
                    .map(|href| {
                        // `crossorigin` so the preload matches the loader's `fetch()`.
                        view! {
                            <link
                                rel="preload"
                                href=href
                                r#as="fetch"
                                r#type="application/wasm"
                                crossorigin="anonymous"
                            />
                        }
                    })
                    .collect_view()}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let base = base::current();
    provide_context(base.clone());
    let live = live::provide_live_state(&base);
    // An empty base is what `<Router>` uses when none is given.
    let router_base = base.0.clone();
    provide_me();

    // True while a navigation waits, mostly for a page's code chunk on its first visit.
    let (is_routing, set_is_routing) = signal(false);

    view! {
        <Title text="perfpilot"/>
        <Router base=router_base set_is_routing>
            <Show when=move || is_routing.get()>
                <div class="route-progress" role="progressbar" aria-label="Loading page"></div>
            </Show>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="topbar">
                <a class="brand" href=base.join("/") aria-label="perfpilot home">
                    <span class="brand-mark" aria-hidden="true"></span>
                    "perfpilot"
                </a>
                <nav class="nav" aria-label="Main">
                    // `<A>` leaves absolute paths alone, so the base is joined here.
                    <A href=base.join("/") exact=true>"Overview"</A>
                    <A href=base.join("/fleet")>"Fleet"</A>
                    <A href=base.join("/before-after")>"Before / after"</A>
                    <A href=base.join("/changes")>"Changes"</A>
                    <A href=base.join("/alerts")>
                        "Alerts"
                        {move || {
                            let firing = live.overview.with(|o| o.as_ref().map_or(0, |o| o.alerts.firing));
                            (firing > 0).then(|| view! { <span class="nav-badge" id="nav-firing" aria-label=format!("{firing} firing")>{firing}</span> })
                        }}
                    </A>
                    <A href=base.join("/reports")>"Reports"</A>
                    <A href=base.join("/audit")>"Audit"</A>
                    <A href=base.join("/settings")>"Settings"</A>
                </nav>
                <div class="topbar-end">
                    {move || live.overview.with(|o| o.as_ref().and_then(|o| o.replica.clone())).map(|r| view! {
                        <span class="replica" class:replica-leads=r.leads id="replica" title=r.detail.clone() aria-label=r.detail>{r.text}</span>
                    })}
                    <WhoAmI/>
                    <ThemeToggle/>
                </div>
            </header>
            <Show when=move || matches!(live.connection.get(), live::Connection::Reconnecting { .. })>
                <div class="banner banner-warn" role="status" id="reconnect-banner">
                    "Live data interrupted — reconnecting…"
                </div>
            </Show>
            <main id="main" class="content">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view={Lazy::<OverviewRoute>::new()}/>
                    <Route path=path!("/changes") view={Lazy::<ChangesRoute>::new()}/>
                    <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()}/>
                    <Route path=path!("/alerts") view={Lazy::<AlertsRoute>::new()}/>
                    <Route path=path!("/reports") view={Lazy::<ReportsRoute>::new()}/>
                    <Route path=path!("/resource") view={Lazy::<ResourceRoute>::new()}/>
                    <Route path=path!("/before-after") view={Lazy::<ProofRoute>::new()}/>
                    <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()}/>
                    <Route path=path!("/fleet") view={Lazy::<FleetRoute>::new()}/>
                    <Route path=path!("/fleet/target") view={Lazy::<FleetTargetRoute>::new()}/>
                </Routes>
            </main>
        </Router>
    }
}

// Every page is its own lazily loaded piece of the browser bundle: `scripts/build.sh`
// splits the wasm at these points (wasm-split), so a visit downloads the shell (top bar,
// live connection, shared code) and the pages it shows, not all of them. The server
// renders a page the same way and lists the chunks it used as preloads in the document,
// so hydration does not wait on a second round trip. Pages load their own data, so
// `data()` has nothing to prepare.
/// Marks the document as interactive (`body[data-hydrated]`) for end-to-end tests and
/// curious users. Called from an effect of the page shown (effects run only in the
/// browser, after that part hydrated): a lazily loaded page hydrates after the shell.
pub fn mark_hydrated() {
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

macro_rules! lazy_page {
    ($($route:ident => $page:ident),* $(,)?) => {$(
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                // The page's own code arrives after the shell's: only its effect, which
                // runs once the page itself is hydrated, may say the page is interactive.
                Effect::new(move |_| mark_hydrated());
                view! { <$page/> }.into_any()
            }
        }
    )*};
}

lazy_page! {
    OverviewRoute => OverviewPage,
    ChangesRoute => ChangesPage,
    AuditRoute => AuditPage,
    AlertsRoute => AlertsPage,
    ReportsRoute => ReportsPage,
    ResourceRoute => ResourcePage,
    ProofRoute => ProofPage,
    SettingsRoute => SettingsPage,
    FleetRoute => FleetPage,
    FleetTargetRoute => FleetTargetPage,
}
