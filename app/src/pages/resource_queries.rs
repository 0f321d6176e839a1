//! The Queries panel of a database's page: the queries that took the most time over the
//! last interval, from `pg_stat_statements` deltas, refreshed every 10 s; or why there are
//! none ("unavailable: …").

use engine::database::TopQueries;
use leptos::prelude::*;

/// The top queries the database source of `resource` last reported; `None` before its
/// first report.
#[server(endpoint = "top_queries", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_top_queries(
    resource: String,
) -> Result<Option<TopQueries>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    let Some(details) = crate::backend::backend()?.source_details(&resource) else {
        return Ok(None);
    };
    // A source that is not a database reports something else: nothing to show here.
    Ok(serde_json::from_value((*details).clone()).ok())
}

/// The group `resource` belongs to, with every shard's latest load; `None` when it has no
/// group.
#[server(endpoint = "database_group", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_database_group(
    resource: String,
) -> Result<Option<engine::database::DatabaseGroup>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    Ok(crate::backend::backend()?.database_group(&resource))
}

/// A sharded database's other shards: one row each, and how uneven the load is.
#[component]
pub fn GroupPanel(resource_id: String) -> impl IntoView {
    let id = resource_id.clone();
    let group = Resource::new(|| (), move |_| get_database_group(id.clone()));
    let number = |v: Option<f64>, unit: &'static str| {
        v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}{unit}"))
    };
    view! {
        <Transition fallback=|| ()>
            {move || group.get().and_then(|r| r.ok()).flatten().map(|group| view! {
                <section class="settings-panel queries-panel" aria-labelledby="group-title">
                    <h2 id="group-title">{format!("Group “{}”", group.group)}</h2>
                    <p class="muted" id="group-skew">{match group.skew {
                        Some(skew) => format!("{} shards; load skew {skew:.2} (busiest shard's transactions/s over the mean; 1 is even).", group.shards.len()),
                        None => format!("{} shards; no load to compare yet.", group.shards.len()),
                    }}</p>
                    <table class="queries" id="group-table">
                        <thead><tr><th scope="col">"Shard"</th><th scope="col">"Transactions/s"</th><th scope="col">"Probe p95"</th><th scope="col">"Connections"</th></tr></thead>
                        <tbody>
                            {group.shards.into_iter().map(|shard| {
                                let href = crate::base::href(&format!("/resource?id={}", shard.resource.replace(':', "%3A")));
                                view! {
                                    <tr>
                                        <td><a href=href>{shard.name}</a></td>
                                        <td>{number(shard.tps, "")}</td>
                                        <td>{number(shard.latency_p95, " ms")}</td>
                                        <td>{number(shard.connections_pct, " %")}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
            })}
        </Transition>
    }
}

#[component]
pub fn QueriesPanel(resource_id: String) -> impl IntoView {
    let refresh = RwSignal::new(0u32);
    let id = resource_id.clone();
    let queries = Resource::new(move || refresh.get(), move |_| get_top_queries(id.clone()));
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || refresh.update(|n| *n += 1),
            std::time::Duration::from_secs(10),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }
    view! {
        <section class="settings-panel queries-panel" aria-labelledby="queries-title">
            <h2 id="queries-title">"Queries"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading queries…"</p> }>
                {move || queries.get().map(|result| match result {
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                    Ok(None) => view! { <p class="muted" id="queries-state">"No report yet: the first one comes after about 10 s."</p> }.into_any(),
                    Ok(Some(report)) => view! {
                        <Advice advice=report.advice.clone()/>
                        {match report.unavailable {
                        Some(why) => view! { <p class="muted" id="queries-state">{why}</p> }.into_any(),
                        None if report.top.is_empty() => view! {
                            <p class="muted" id="queries-state">
                                {if report.window_s > 0.0 { "No query ran in the last interval (perfpilot's own are left out)." } else { "Measuring: the first interval ends in about 10 s." }}
                            </p>
                        }.into_any(),
                        None => view! {
                            <p class="muted">{format!("Time spent over the last {:.0} s, most first; perfpilot's own queries are left out.", report.window_s)}</p>
                            <table class="queries" id="queries-table">
                                <thead><tr><th scope="col">"Query"</th><th scope="col">"Calls/s"</th><th scope="col">"Mean"</th><th scope="col">"Share"</th></tr></thead>
                                <tbody>
                                    {report.top.into_iter().map(|q| view! {
                                        <tr>
                                            <td><code>{q.query}</code></td>
                                            <td>{format!("{:.1}", q.calls_per_s)}</td>
                                            <td>{format!("{:.2} ms", q.mean_ms)}</td>
                                            <td>{format!("{:.0} %", q.share_pct)}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }}
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// Recommendations about transactions and pooling, each with its numbers.
#[component]
fn Advice(advice: Vec<engine::database::Advice>) -> impl IntoView {
    (!advice.is_empty()).then(|| view! {
        <div class="advice" id="database-advice" role="status">
            <h3>"Recommendations"</h3>
            <ul>
                {advice.into_iter().map(|a| view! {
                    <li><strong>{a.title}</strong><br/><span class="muted">{a.evidence}</span></li>
                }).collect_view()}
            </ul>
        </div>
    })
}
