//! Configuration changes: the change counter, auto-saved snapshots, diff and restore.

use leptos::prelude::*;

#[component]
pub fn ChangesPage() -> impl IntoView {
    view! {
        <section class="page-head">
            <h1>"Changes"</h1>
            <p class="muted">"Every accepted configuration change is counted; every 20th is auto-saved as a snapshot you can diff and restore."</p>
        </section>
        <section class="empty-state">
            <h2>"No changes yet"</h2>
            <p>"Nothing has been changed since perfpilot started, so there is no snapshot to show."</p>
        </section>
    }
}
