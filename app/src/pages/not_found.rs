//! The page for unknown URLs. On the server it also sets the HTTP status to 404 so
//! proxies, crawlers and scripts see the truth, not a 200 with an error message.

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }

    Effect::new(move |_| crate::mark_hydrated());
    view! {
        <section class="empty-state" aria-labelledby="nf-title">
            <p class="empty-code">"404"</p>
            <h1 id="nf-title">"Page not found"</h1>
            <p>"There is nothing at this address. It may have moved, or the link is mistyped."</p>
            <a class="btn" href=crate::base::href("/")>"Back to the overview"</a>
        </section>
    }
}
