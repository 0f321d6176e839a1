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
    let Some(details) = crate::backend::live()?.source_details(&resource) else {
        return Ok(None);
    };
    // A source that is not a database reports something else: nothing to show here.
    Ok(serde_json::from_value((*details).clone()).ok())
}

/// A database's connection settings, without its password.
#[server(endpoint = "database_connection", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_database_connection(
    resource: String,
) -> Result<crate::databases::DatabaseConnection, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    crate::backend::databases()?.database_connection(&resource)
}

/// Changes a database's connection (admins only) after connecting once with it; an empty
/// password keeps the current one.
#[server(endpoint = "update_database", output = crate::codec::Json)]
pub async fn update_database(
    resource: String,
    url: String,
    #[server(default)] password: Option<String>,
    #[server(default)] probe_query: Option<String>,
    #[server(default)] group: Option<String>,
) -> Result<u64, crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Admin)?;
    let edit = crate::databases::NewDatabase {
        kind: None,
        name: String::new(),
        url,
        password,
        probe_query,
        group,
    };
    crate::backend::databases()?
        .update_database(resource, edit, actor)
        .await
}

/// The connection of a database: what perfpilot connects to and probes, editable by
/// admins (checked by connecting before it is saved).
#[component]
pub fn DatabaseConnectionPanel(resource_id: String) -> impl IntoView {
    let save = ServerAction::<UpdateDatabase>::new();
    let id = resource_id.clone();
    let current = Resource::new(
        move || save.version().get(),
        move |_| get_database_connection(id.clone()),
    );
    let resource = StoredValue::new(resource_id);
    let me = expect_context::<crate::components::access::Me>();
    let not_admin = move || !me.may(crate::identity::Role::Admin);
    view! {
        <details class="settings-panel" id="database-connection">
            <summary>"Connection"</summary>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading the connection…"</p> }>
                {move || current.get().map(|result| match result {
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                    Ok(connection) => {
                        let url = RwSignal::new(connection.url.clone());
                        let probe = RwSignal::new(connection.probe_query.clone().unwrap_or_default());
                        let group = RwSignal::new(connection.group.clone().unwrap_or_default());
                        let password = RwSignal::new(String::new());
                        let optional = |s: RwSignal<String>| Some(s.get_untracked()).filter(|v| !v.trim().is_empty());
                        let input = move |label: String, id: &'static str, kind: &'static str, signal: RwSignal<String>| view! {
                            <label class="setting setting-wide"><span>{label}</span>
                                <input id=id type=kind autocomplete="off" prop:value=move || signal.get() on:input=move |ev| signal.set(event_target_value(&ev))/>
                            </label>
                        };
                        view! {
                            <form method="dialog" class="settings-form" on:submit=move |ev| {
                                ev.prevent_default();
                                save.dispatch(UpdateDatabase {
                                    resource: resource.get_value(),
                                    url: url.get_untracked(),
                                    password: optional(password),
                                    probe_query: optional(probe),
                                    group: optional(group),
                                });
                            }>
                                <fieldset disabled=not_admin>
                                    {input("Connection URL, without the password".into(), "connection-url", "text", url)}
                                    {input(format!("New password (leave empty to keep it: {})", connection.password), "connection-password", "password", password)}
                                    {input("Probe query".into(), "connection-probe", "text", probe)}
                                    {input("Group".into(), "connection-group", "text", group)}
                                </fieldset>
                                <crate::components::access::Allowed role=crate::identity::Role::Admin what="Changing the connection">
                                    <button class="btn" id="connection-save" type="submit" disabled=move || save.pending().get()>
                                        {move || if save.pending().get() { "Connecting…" } else { "Check and save" }}
                                    </button>
                                </crate::components::access::Allowed>
                            </form>
                        }.into_any()
                    }
                })}
            </Transition>
            {move || save.value().get().map(|result| match result {
                Ok(change) => view! { <p class="notice" id="connection-message" role="status">{format!("Saved as change #{change}; the database is read with the new settings.")}</p> }.into_any(),
                Err(err) => view! { <p class="field-error" id="connection-message" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </details>
    }
}

/// Removes a database (admins only): a counted change; perfpilot stops watching it.
#[server(endpoint = "remove_database", output = crate::codec::Json)]
pub async fn remove_database(resource: String) -> Result<u64, crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Admin)?;
    crate::backend::changes()?
        .remove_configured(resource, actor)
        .await
}

/// "Stop watching this database" (or cache: `what`), with a confirmation step.
#[component]
pub fn RemoveDatabase(resource_id: String, what: &'static str) -> impl IntoView {
    let remove = ServerAction::<RemoveDatabase>::new();
    let confirming = RwSignal::new(false);
    let resource = StoredValue::new(resource_id);
    view! {
        <section class="settings-panel" aria-labelledby="remove-title">
            <h2 id="remove-title">"Stop watching"</h2>
            <crate::components::access::Allowed role=crate::identity::Role::Admin what=match what { "cache" => "Removing a cache", "load balancer" => "Removing a load balancer", _ => "Removing a database" }>
                {move || match (confirming.get(), remove.value().get()) {
                    (_, Some(Ok(change))) => view! {
                        <p class="notice" id="remove-message" role="status">
                            {format!("Removed as change #{change}; it stays in the snapshots, so a restore brings it back. ")}
                            <a href=crate::base::href("/")>"Back to the overview"</a>
                        </p>
                    }.into_any(),
                    (false, _) => view! {
                        <button class="btn btn-danger" type="button" id="remove-database" on:click=move |_| confirming.set(true)>
                            {format!("Remove this {what}…")}
                        </button>
                    }.into_any(),
                    (true, result) => view! {
                        <p>{format!("perfpilot stops watching {} and forgets its stored password. Its history stays until it ages out.", resource.get_value())}</p>
                        <button class="btn btn-danger" type="button" id="remove-confirm" disabled=move || remove.pending().get()
                            on:click=move |_| { remove.dispatch(RemoveDatabase { resource: resource.get_value() }); }>
                            "Remove"
                        </button>
                        " "
                        <button class="btn" type="button" on:click=move |_| confirming.set(false)>"Cancel"</button>
                        {result.and_then(|r| r.err()).map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
                    }.into_any(),
                }}
            </crate::components::access::Allowed>
        </section>
    }
}

/// The group `resource` belongs to, with every shard's latest load; `None` when it has no
/// group.
#[server(endpoint = "database_group", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_database_group(
    resource: String,
) -> Result<Option<engine::database::DatabaseGroup>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    Ok(crate::backend::databases()?.database_group(&resource))
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
                    <table class="queries stack" id="group-table">
                        <thead><tr><th scope="col">"Shard"</th><th scope="col">"Transactions/s"</th><th scope="col">"Probe p95"</th><th scope="col">"Connections"</th></tr></thead>
                        <tbody>
                            {group.shards.into_iter().map(|shard| {
                                let href = crate::base::href(&format!("/resource?id={}", shard.resource.replace(':', "%3A")));
                                view! {
                                    <tr>
                                        <td data-label="Shard"><a href=href>{shard.name}</a></td>
                                        <td data-label="Transactions/s">{number(shard.tps, "")}</td>
                                        <td data-label="Probe p95">{number(shard.latency_p95, " ms")}</td>
                                        <td data-label="Connections">{number(shard.connections_pct, " %")}</td>
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
    let refresh = super::ticking(std::time::Duration::from_secs(10));
    let id = resource_id.clone();
    let resource_id = StoredValue::new(resource_id);
    let actions = IndexActions::new();
    let queries = Resource::new(move || refresh.get(), move |_| get_top_queries(id.clone()));
    view! {
        <section class="settings-panel queries-panel" aria-labelledby="queries-title">
            <h2 id="queries-title">"Queries"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading queries…"</p> }>
                {move || queries.get().map(|result| match result {
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                    Ok(None) => view! { <p class="muted" id="queries-state">"No report yet: the first one comes after about 10 s."</p> }.into_any(),
                    Ok(Some(report)) => view! {
                        <Advice advice=report.advice.clone()/>
                        {report.indexes.clone().map(|advice| view! { <Indexes resource_id=resource_id.get_value() advice actions/> })}
                        {match report.unavailable {
                        Some(why) => view! { <p class="muted" id="queries-state">{why}</p> }.into_any(),
                        None if report.top.is_empty() => view! {
                            <p class="muted" id="queries-state">
                                {if report.window_s > 0.0 { "No query ran in the last interval (perfpilot's own are left out)." } else { "Measuring: the first interval ends in about 10 s." }}
                            </p>
                        }.into_any(),
                        None => view! {
                            <p class="muted">{format!("Time spent over the last {:.0} s, most first; perfpilot's own queries are left out.", report.window_s)}</p>
                            <table class="queries stack" id="queries-table">
                                <thead><tr><th scope="col">"Query"</th><th scope="col">"Calls/s"</th><th scope="col">"Mean"</th><th scope="col">"Share"</th></tr></thead>
                                <tbody>
                                    {report.top.into_iter().map(|q| view! {
                                        <tr>
                                            <td data-label="Query"><code>{q.query}</code></td>
                                            <td data-label="Calls/s">{format!("{:.1}", q.calls_per_s)}</td>
                                            <td data-label="Mean">{format!("{:.2} ms", q.mean_ms)}</td>
                                            <td data-label="Share">{format!("{:.0} %", q.share_pct)}</td>
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

/// Creates an index the database's latest advice recommends (admins only);
/// `columns` are comma-separated.
#[server(endpoint = "create_index", output = crate::codec::Json)]
pub async fn create_index(
    resource: String,
    table: String,
    columns: String,
) -> Result<String, crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Admin)?;
    let columns = columns.split(',').map(|c| c.trim().to_owned()).collect();
    crate::backend::databases()?
        .create_index(resource, table, columns, actor)
        .await
}

/// Drops an index perfpilot created (admins only): the rollback of [`create_index`].
#[server(endpoint = "drop_index", output = crate::codec::Json)]
pub async fn drop_index(
    resource: String,
    table: String,
    name: String,
) -> Result<(), crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Admin)?;
    crate::backend::databases()?
        .drop_index(resource, table, name, actor)
        .await
}

/// The index actions of a database's page; they outlive the panel's refreshes, so what
/// was created stays on screen with its "Drop it again".
#[derive(Clone, Copy)]
struct IndexActions {
    create: ServerAction<CreateIndex>,
    drop: ServerAction<DropIndex>,
    /// The table and name of the index created last.
    created: RwSignal<Option<(String, String)>>,
    /// The table of the creation asked for last (an action's input is gone once it ends).
    table: RwSignal<String>,
}

impl IndexActions {
    fn new() -> IndexActions {
        let actions = IndexActions {
            create: ServerAction::<CreateIndex>::new(),
            drop: ServerAction::<DropIndex>::new(),
            created: RwSignal::new(None),
            table: RwSignal::new(String::new()),
        };
        Effect::new(move |_| {
            if let Some(Ok(name)) = actions.create.value().get() {
                actions
                    .created
                    .set(Some((actions.table.get_untracked(), name)));
            }
        });
        actions
    }
}

/// Index advice with its evidence; an admin applies a recommendation with one click and
/// can drop what was created.
#[component]
fn Indexes(
    resource_id: String,
    advice: engine::database::IndexAdvice,
    actions: IndexActions,
) -> impl IntoView {
    let IndexActions {
        create,
        drop,
        created,
        table: asked,
    } = actions;
    let resource = StoredValue::new(resource_id);
    let bytes = |b: u64| crate::format::reading(b as f64, "bytes");
    let skipped = advice.skipped;
    view! {
        <div class="advice" id="index-advice">
            <h3>"Indexes"</h3>
            {advice.missing.is_empty().then(|| view! { <p class="muted">"No missing index found for the probe and the slowest queries."</p> })}
            <ul>
                {advice.missing.into_iter().map(|c| {
                    let (table, columns) = (c.table.clone(), c.columns.join(", "));
                    view! {
                        <li class="index-candidate">
                            <strong>{format!("Create an index on {} ({})", c.table, columns)}</strong><br/>
                            <span class="muted">{format!("The planner's cost for “{}” drops from {:.0} to {:.0} (−{:.0} %) with it (measured on a hypothetical index).", c.query, c.cost_before, c.cost_after, c.drop_pct)}</span><br/>
                            <crate::components::access::Allowed role=crate::identity::Role::Admin what="Creating indexes">
                                <button class="btn create-index" type="button" disabled=move || create.pending().get()
                                    on:click={
                                        let (table, columns) = (table.clone(), columns.clone());
                                        move |_| {
                                            asked.set(table.clone());
                                            create.dispatch(CreateIndex { resource: resource.get_value(), table: table.clone(), columns: columns.clone() });
                                        }
                                    }>
                                    {move || if create.pending().get() { "Creating (CONCURRENTLY)…" } else { "Create index" }}
                                </button>
                            </crate::components::access::Allowed>
                        </li>
                    }
                }).collect_view()}
                {advice.unused.into_iter().chain(advice.duplicate).map(|u| view! {
                    <li>
                        <strong>{match &u.duplicate_of {
                            Some(keep) => format!("Duplicate: {} on {} does what {keep} does", u.index, u.table),
                            None => format!("Unused: {} on {} has not been scanned", u.index, u.table),
                        }}</strong><br/>
                        <span class="muted">{format!("{} of disk and a cost on every write; drop it yourself if nothing else needs it.", bytes(u.bytes))}</span>
                    </li>
                }).collect_view()}
            </ul>
            {advice.unavailable.into_iter().map(|why| view! { <p class="muted">{why}</p> }).collect_view()}
            {(!skipped.is_empty()).then(|| view! {
                <details class="muted" id="index-skipped">
                    <summary>{format!("Not examined for missing indexes: {} statement(s) (only plain SELECTs from tables are)", skipped.len())}</summary>
                    <ul>
                        {skipped.into_iter().map(|why| view! { <li>{why}</li> }).collect_view()}
                    </ul>
                </details>
            })}
            {move || create.value().get().and_then(|r| r.err()).map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
            {move || created.get().map(|(table, name)| view! {
                <p class="notice" id="index-created" role="status">
                    {format!("Created {name}. Its before/after is measuring. ")}
                    <button class="btn btn-danger" type="button" id="drop-index" disabled=move || drop.pending().get()
                        on:click={
                            let (table, name) = (table.clone(), name.clone());
                            move |_| { drop.dispatch(DropIndex { resource: resource.get_value(), table: table.clone(), name: name.clone() }); }
                        }>
                        "Drop it again"
                    </button>
                    {move || drop.value().get().map(|r| match r {
                        Ok(()) => " Dropped.".to_owned(),
                        Err(err) => format!(" {err}"),
                    })}
                </p>
            })}
        </div>
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
