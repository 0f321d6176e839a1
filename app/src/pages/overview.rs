//! The overview: one card per watched resource.

use leptos::prelude::*;

#[component]
pub fn OverviewPage() -> impl IntoView {
    view! {
        <section class="page-head">
            <h1>"Overview"</h1>
            <p class="muted">"Every watched resource of this host against its target."</p>
        </section>
        <section class="empty-state">
            <h2>"No resources yet"</h2>
            <p>"The host collector has not reported any resource. Cards for CPU, memory, disks and network appear here once it does."</p>
        </section>
    }
}
