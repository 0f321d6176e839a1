//! The panels of a cache's page: the server and its memory, the busiest commands, cold
//! starts, the levels of its group with their combined hit ratio, and invalidation by
//! pattern (previewed, then confirmed).

use engine::cache::{CacheGroup, CacheReport};
use leptos::prelude::*;

/// What the cache source of `resource` last reported; `None` before its first report.
#[server(endpoint = "cache_report", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_cache_report(
    resource: String,
) -> Result<Option<CacheReport>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    let Some(details) = crate::backend::live()?.source_details(&resource) else {
        return Ok(None);
    };
    Ok(serde_json::from_value((*details).clone()).ok())
}

/// The levels of the cache group `resource` belongs to; `None` when it has no group.
#[server(endpoint = "cache_group", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_cache_group(
    resource: String,
) -> Result<Option<CacheGroup>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    Ok(crate::backend::caches()?.cache_group(&resource))
}

/// Counts the keys matching `pattern`, or with `confirm` unlinks them (audited). Both need
/// the editor role, as `POST /api/v1/resources/{id}/invalidate` does: the count only
/// prepares an invalidation, and it scans the production cache.
#[server(endpoint = "invalidate_keys", output = crate::codec::Json)]
pub async fn invalidate_keys(
    resource: String,
    pattern: String,
    #[server(default)] confirm: bool,
) -> Result<crate::caches::Invalidation, crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Editor)?;
    crate::backend::caches()?
        .invalidate(resource, pattern, confirm, actor)
        .await
}

fn bytes(b: u64) -> String {
    crate::format::reading(b as f64, "bytes")
}

/// The cache's server, memory, busiest commands and cold starts, refreshed every 5 s.
#[component]
pub fn CachePanel(resource_id: String) -> impl IntoView {
    let refresh = super::ticking(std::time::Duration::from_secs(5));
    let id = resource_id.clone();
    let resource = StoredValue::new(resource_id);
    let report = Resource::new(move || refresh.get(), move |_| get_cache_report(id.clone()));
    view! {
        <section class="settings-panel queries-panel" aria-labelledby="cache-title">
            <h2 id="cache-title">"Cache"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading the cache's report…"</p> }>
                {move || report.get().map(|result| match result {
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                    Ok(None) => view! { <p class="muted" id="cache-state">"No report yet: the first one comes with the first reading."</p> }.into_any(),
                    Ok(Some(report)) => {
                        let memory = &report.memory;
                        let limit = match (memory.limit_bytes, memory.host_bytes) {
                            (0, Some(host)) => format!("no limit set (host memory {})", bytes(host)),
                            (0, None) => "no limit set".to_owned(),
                            (limit, _) => format!("limit {}", bytes(limit)),
                        };
                        let policy = memory.policy.clone().map(|p| format!(", policy {p}")).unwrap_or_default();
                        view! {
                            <p id="cache-server">
                                {format!("{}: {} used, {limit}{policy}; {} keys.", report.server, bytes(memory.used_bytes), report.keys.unwrap_or(0))}
                            </p>
                            {report.tuning_unavailable.clone().map(|why| view! { <p class="muted" id="cache-tuning">{format!("Tuning {why}")}</p> })}
                            {(!report.cold.is_empty()).then(|| view! {
                                <div class="advice" id="cache-cold" role="status">
                                    <h3>"Cold starts"</h3>
                                    <ul>
                                        {report.cold.iter().map(|c| view! {
                                            <li>{c.label.clone()}" "<span class="muted">{format!("at {}", crate::format::utc_time(c.at_unix_ms))}</span></li>
                                        }).collect_view()}
                                    </ul>
                                </div>
                            })}
                            {(!report.commands.is_empty()).then(|| view! {
                                <p class="muted">"Busiest commands over the last second (perfpilot's own INFO and PING left out); percentiles are the server's since its statistics were reset."</p>
                                <table class="queries stack" id="cache-commands">
                                    <thead><tr><th scope="col">"Command"</th><th scope="col">"Calls/s"</th><th scope="col">"Server time/call"</th><th scope="col">"p50"</th><th scope="col">"p99"</th></tr></thead>
                                    <tbody>
                                        {report.commands.iter().map(|c| {
                                            let us = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} µs"));
                                            view! {
                                                <tr>
                                                    <td data-label="Command"><code>{c.command.clone()}</code></td>
                                                    <td data-label="Calls/s">{format!("{:.1}", c.calls_per_s)}</td>
                                                    <td data-label="Server time/call">{format!("{:.1} µs", c.usec_per_call)}</td>
                                                    <td data-label="p50">{us(c.p50_us)}</td>
                                                    <td data-label="p99">{us(c.p99_us)}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            })}
                            <InvalidatePanel resource_id=resource.get_value() unavailable=report.invalidation_unavailable.clone()/>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// The levels of the cache's group, nearest the application first, and how many requests
/// no level answered.
#[component]
pub fn CacheGroupPanel(resource_id: String) -> impl IntoView {
    let id = resource_id.clone();
    let group = Resource::new(|| (), move |_| get_cache_group(id.clone()));
    let number = |v: Option<f64>, unit: &'static str| {
        v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}{unit}"))
    };
    view! {
        <Transition fallback=|| ()>
            {move || group.get().and_then(|r| r.ok()).flatten().map(|group| {
                let last_misses = group.levels.last().and_then(|l| l.misses_per_s);
                view! {
                    <section class="settings-panel queries-panel" aria-labelledby="cache-group-title">
                        <h2 id="cache-group-title">{format!("Cache group “{}”", group.group)}</h2>
                        <p class="muted" id="cache-group-combined">{match group.combined_hit_ratio {
                            Some(ratio) => format!(
                                "{} levels answer {ratio:.1} % of requests together; {} reach the backend.",
                                group.levels.len(),
                                last_misses.map_or_else(|| "the rest".to_owned(), |m| format!("{m:.1}/s"))
                            ),
                            None => format!("{} levels; no traffic to combine yet.", group.levels.len()),
                        }}</p>
                        <table class="queries stack" id="cache-group-table">
                            <thead><tr><th scope="col">"Level"</th><th scope="col">"Cache"</th><th scope="col">"Hit ratio"</th><th scope="col">"Hits/s"</th><th scope="col">"Misses/s (fall through)"</th></tr></thead>
                            <tbody>
                                {group.levels.into_iter().map(|level| {
                                    let href = crate::base::href(&format!("/resource?id={}", level.resource.replace(':', "%3A")));
                                    view! {
                                        <tr>
                                            <td data-label="Level">{format!("L{}", level.level)}</td>
                                            <td data-label="Cache"><a href=href>{level.name}</a></td>
                                            <td data-label="Hit ratio">{number(level.hit_ratio, " %")}</td>
                                            <td data-label="Hits/s">{number(level.hits_per_s, "")}</td>
                                            <td data-label="Misses/s">{number(level.misses_per_s, "")}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }
            })}
        </Transition>
    }
}

/// Invalidation by pattern: preview ("N keys match"), then confirm; never a flush.
#[component]
fn InvalidatePanel(resource_id: String, unavailable: Option<String>) -> impl IntoView {
    let resource = StoredValue::new(resource_id);
    let pattern = RwSignal::new(String::new());
    let preview = ServerAction::<InvalidateKeys>::new();
    let apply = ServerAction::<InvalidateKeys>::new();
    // The pattern previewed last: what "Invalidate" removes.
    let previewed = RwSignal::new(None::<String>);
    if let Some(why) = unavailable {
        return view! {
            <div class="advice" id="invalidate"><h3>"Invalidate keys"</h3><p class="muted" id="invalidate-unavailable">{why}</p></div>
        }
        .into_any();
    }
    view! {
        <div class="advice" id="invalidate">
            <h3>"Invalidate keys"</h3>
            // Counting is the first step of an invalidation: off, with the reason, for a
            // role that may not invalidate.
            <crate::components::access::Allowed role=crate::identity::Role::Editor what="Invalidating keys">
                <form method="dialog" class="settings-form" on:submit=move |ev| {
                    ev.prevent_default();
                    previewed.set(Some(pattern.get_untracked()));
                    preview.dispatch(InvalidateKeys { resource: resource.get_value(), pattern: pattern.get_untracked(), confirm: false });
                }>
                    <label class="setting setting-wide"><span>"Keys matching (a glob, like session:*)"</span>
                        <input id="invalidate-pattern" type="text" autocomplete="off" placeholder="session:*" prop:value=move || pattern.get()
                            on:input=move |ev| { pattern.set(event_target_value(&ev)); previewed.set(None); }/>
                    </label>
                    <button class="btn" id="invalidate-preview" type="submit" disabled=move || preview.pending().get()>
                        {move || if preview.pending().get() { "Counting…" } else { "Preview" }}
                    </button>
                </form>
            </crate::components::access::Allowed>
            {move || preview.value().get().map(|result| match (result, previewed.get()) {
                (Err(err), _) => view! { <p class="field-error" id="invalidate-message" role="alert">{err.to_string()}</p> }.into_any(),
                (Ok(_), None) => ().into_any(),
                (Ok(found), Some(asked)) => view! {
                    <p id="invalidate-count" role="status">{found.describe(&asked)}</p>
                    {(found.keys > 0 || !found.counted).then(|| {
                        let asked = asked.clone();
                        view! {
                            <crate::components::access::Allowed role=crate::identity::Role::Editor what="Invalidating keys">
                                <button class="btn btn-danger" type="button" id="invalidate-confirm" disabled=move || apply.pending().get()
                                    on:click={
                                        let asked = asked.clone();
                                        move |_| { apply.dispatch(InvalidateKeys { resource: resource.get_value(), pattern: asked.clone(), confirm: true }); }
                                    }>
                                    {format!("Invalidate the keys matching {asked}")}
                                </button>
                            </crate::components::access::Allowed>
                        }
                    })}
                }.into_any(),
            })}
            {move || apply.value().get().map(|result| match result {
                Ok(done) => view! { <p class="notice" id="invalidate-message" role="status">{format!("{} Its before/after is measuring.", done.describe(&previewed.get_untracked().unwrap_or_default()))}</p> }.into_any(),
                Err(err) => view! { <p class="field-error" id="invalidate-message" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </div>
    }
    .into_any()
}
