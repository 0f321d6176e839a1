//! One module per route.

pub mod alerts;
pub mod audit;
pub mod changes;
pub mod fleet;
pub mod fleet_target;
pub mod not_found;
pub mod overview;
pub mod proof;
pub mod reports;
pub mod resource;
pub mod resource_cache;
pub mod resource_chart;
pub mod resource_lb;
pub mod resource_queries;
pub mod resource_settings;
pub mod resource_suggest;
pub mod settings;

/// A counter that goes up every `period` in the browser (never on the server), for
/// panels whose data is re-read on a timer; the timer stops with the panel.
pub(crate) fn ticking(period: std::time::Duration) -> leptos::prelude::RwSignal<u32> {
    use leptos::prelude::*;
    let ticks = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(move || ticks.update(|n| *n += 1), period) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = period;
    ticks
}

/// A page whose data could not be loaded: its title, what failed and why, and a way back
/// (`back` is a path under the base and its link text).
pub(crate) fn load_error(
    title: &'static str,
    what: &'static str,
    why: String,
    back: (&'static str, &'static str),
) -> leptos::prelude::AnyView {
    use leptos::prelude::*;
    view! {
        <section class="page-head"><h1>{title}</h1></section>
        <section class="error-state" role="alert">
            <h2>{what}</h2>
            <p>{why}</p>
            <a href=crate::base::href(back.0)>{back.1}</a>
        </section>
    }
    .into_any()
}
