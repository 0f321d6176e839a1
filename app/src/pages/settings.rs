//! Settings: how perfpilot itself is configured.

use leptos::prelude::*;

#[component]
pub fn SettingsPage() -> impl IntoView {
    view! {
        <section class="page-head">
            <h1>"Settings"</h1>
            <p class="muted">"How this perfpilot instance collects, evaluates and saves."</p>
        </section>
        <section class="empty-state">
            <h2>"Nothing to configure here yet"</h2>
            <p>"Settings are read from the command line and the optional TOML file given with --config; run perfpilot --help to see them."</p>
        </section>
    }
}
