//! Settings: how this instance is configured for you — your access, and (for admins) the
//! API tokens automation uses.

use leptos::prelude::*;

use crate::components::access::{Allowed, Me};
use crate::error::AppError;
use crate::identity::{MintedToken, Role, TokenInfo};

#[cfg(feature = "ssr")]
fn token_admin() -> Result<std::sync::Arc<dyn crate::identity::TokenAdmin>, AppError> {
    use_context::<crate::identity::TokenAdminContext>()
        .map(|context| context.0)
        .ok_or_else(|| AppError::unavailable("token management is not available"))
}

#[server(endpoint = "tokens", output = crate::codec::Json)]
pub async fn list_tokens() -> Result<Vec<TokenInfo>, AppError> {
    crate::backend::require(Role::Admin)?;
    Ok(token_admin()?.list())
}

/// Mints a token; the secret is in the answer and nowhere else, ever.
#[server(endpoint = "create_token", output = crate::codec::Json)]
pub async fn create_token(name: String, role: String) -> Result<MintedToken, AppError> {
    let by = crate::backend::require(Role::Admin)?;
    let role = Role::parse(&role).ok_or_else(|| {
        AppError::invalid(
            "role",
            format!("must be viewer, editor or admin, got {role:?}"),
        )
    })?;
    token_admin()?.mint(&name, role, &by).await
}

#[server(endpoint = "revoke_token", output = crate::codec::Json)]
pub async fn revoke_token(id: String) -> Result<TokenInfo, AppError> {
    let by = crate::backend::require(Role::Admin)?;
    token_admin()?.revoke(&id, &by).await
}

/// The kinds of database the server can add, in its order (the database form's choice).
#[server(endpoint = "database_kinds", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn database_kinds() -> Result<Vec<crate::kinds::SourceKind>, AppError> {
    crate::backend::require(Role::Viewer)?;
    let mut kinds = crate::backend::live()?.source_kinds();
    kinds.retain(|kind| kind.family == engine::source::SourceFamily::Database);
    Ok(kinds)
}

/// Adds a database of any database kind (the first when `kind` is empty) after
/// connecting to it once (admins only). The password stays on the server.
#[server(endpoint = "add_database", output = crate::codec::Json)]
pub async fn add_database(
    #[server(default)] kind: Option<String>,
    name: String,
    url: String,
    #[server(default)] password: Option<String>,
    #[server(default)] probe_query: Option<String>,
    #[server(default)] group: Option<String>,
) -> Result<crate::databases::DatabaseAdded, AppError> {
    let actor = crate::backend::require(Role::Admin)?;
    let new = crate::databases::NewDatabase {
        kind,
        name: name.trim().to_owned(),
        url,
        password,
        probe_query,
        group,
    };
    crate::backend::databases()?.add_database(new, actor).await
}

/// Adds a Redis or memcached cache after connecting to it once (admins only). The
/// password stays on the server.
#[server(endpoint = "add_cache", output = crate::codec::Json)]
pub async fn add_cache(
    new: crate::caches::NewCache,
) -> Result<crate::caches::CacheAdded, AppError> {
    let actor = crate::backend::require(Role::Admin)?;
    let new = crate::caches::NewCache {
        name: new.name.trim().to_owned(),
        ..new
    };
    crate::backend::caches()?.add_cache(new, actor).await
}

/// One source perfpilot reads, as Settings lists it. Never a secret: no URL, address or
/// credential, only its kind, name, health in words (redacted) and its page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRow {
    /// The source's id: `host`, `push`, `database:orders`.
    pub id: String,
    /// What it reads, in words: "Host", "PostgreSQL", "Prometheus fleet".
    pub kind: String,
    pub name: String,
    /// `ok`, `starting`, `down` or `stopped`: the row's class and mark.
    pub state: String,
    /// "ok", or why it is not: the source's own reason.
    pub health: String,
    /// Its resource's page (a path under the base), when it has one.
    pub href: Option<String>,
}

/// Every source perfpilot reads: the host collector, pushes, and each configured
/// database, cache, load balancer and fleet, with its health.
#[server(endpoint = "sources", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn list_sources() -> Result<Vec<SourceRow>, AppError> {
    crate::backend::require(Role::Viewer)?;
    let live = crate::backend::live()?;
    let state = crate::backend::configuration()?.state();
    Ok(source_rows(&live.sources(), &live.source_kinds(), &state))
}

/// The rows of [`list_sources`]: every running source whose resources still exist, and
/// every configured resource whose source is not running; host first, pushes last.
#[cfg(feature = "ssr")]
fn source_rows(
    statuses: &std::collections::BTreeMap<String, engine::source::SourceStatus>,
    kinds: &[crate::kinds::SourceKind],
    state: &engine::changes::State,
) -> Vec<SourceRow> {
    use engine::source::SourceHealth;
    let resource_href = |id: &str| {
        let page = if id.starts_with("fleet:") {
            "fleet"
        } else {
            "resource"
        };
        format!("/{page}?id={}", crate::format::urlencode(id))
    };
    let owned = |owns: &[String], id: &str| {
        owns.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => id.starts_with(prefix),
            None => pattern == id,
        })
    };
    let mut rows: Vec<(u8, SourceRow)> = Vec::new();
    for status in statuses.values() {
        let own: Vec<_> = state
            .resources
            .values()
            .filter(|r| owned(status.resources.as_slice(), r.id.as_str()))
            .collect();
        let (rank, kind, name, href) = match status.kind.as_str() {
            "host" => (
                0,
                "Host".to_owned(),
                "This host (CPU, memory, disks, network)".to_owned(),
                own.first().map(|r| resource_href(r.id.as_str())),
            ),
            "push" => (
                9,
                "Pushed metrics".to_owned(),
                match own.len() {
                    0 => "POST /api/push (no custom resource yet)".to_owned(),
                    1 => "1 custom resource".to_owned(),
                    n => format!("{n} custom resources"),
                },
                own.first().map(|r| resource_href(r.id.as_str())),
            ),
            other => {
                // A removed resource's source may linger as stopped: it is not configured.
                let Some(resource) = own.iter().find(|r| r.id.as_str() == status.id) else {
                    continue;
                };
                let (rank, kind) = crate::kinds::place_and_title(kinds, other);
                (
                    rank,
                    kind,
                    resource.name.clone(),
                    Some(resource_href(&status.id)),
                )
            }
        };
        let (state_word, health) = match &status.health {
            SourceHealth::Starting => ("starting", "starting: no reading yet".to_owned()),
            SourceHealth::Up { .. } => ("ok", "ok".to_owned()),
            SourceHealth::Down { reason, .. } => ("down", engine::redact::redact(reason)),
            SourceHealth::Stopped => ("stopped", "stopped".to_owned()),
        };
        rows.push((
            rank,
            SourceRow {
                id: status.id.clone(),
                kind,
                name,
                state: state_word.to_owned(),
                health,
                href,
            },
        ));
    }
    // Configured but not running: its settings could not be turned into a source.
    for resource in state.resources.values() {
        let Some(spec) = &resource.source else {
            continue;
        };
        if statuses.contains_key(resource.id.as_str()) {
            continue;
        }
        let (rank, kind) = crate::kinds::place_and_title(kinds, &spec.kind);
        rows.push((
            rank,
            SourceRow {
                id: resource.id.to_string(),
                kind,
                name: resource.name.clone(),
                state: "down".to_owned(),
                health: "not running: its settings could not be started (see the server log)"
                    .to_owned(),
                href: Some(resource_href(resource.id.as_str())),
            },
        ));
    }
    rows.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.name.cmp(&y.name)));
    rows.into_iter().map(|(_, row)| row).collect()
}

#[component]
fn Sources() -> impl IntoView {
    let refresh = super::ticking(std::time::Duration::from_secs(10));
    let sources = Resource::new(move || refresh.get(), |_| list_sources());
    view! {
        <section class="settings-section" aria-labelledby="sources-title">
            <h2 id="sources-title">"Sources"</h2>
            <p class="muted">"Everything perfpilot reads, and whether it is reading it now."</p>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading sources…"</p> }>
                {move || sources.get().map(|result| match result {
                    Ok(rows) => view! { <SourceTable rows/> }.into_any(),
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn SourceTable(rows: Vec<SourceRow>) -> impl IntoView {
    let configured = rows.iter().any(|r| r.id != "host" && r.id != "push");
    let body = rows
        .into_iter()
        .map(|row| {
            let mark = match row.state.as_str() {
                "ok" => "✓",
                "starting" => "…",
                _ => "✕",
            };
            let name = match row.href {
                Some(href) => view! { <a href=crate::base::href(&href)>{row.name}</a> }.into_any(),
                None => view! { <span>{row.name}</span> }.into_any(),
            };
            view! {
                <tr data-source=row.id class=format!("source-{}", row.state)>
                    <td data-label="Kind">{row.kind}</td>
                    <td data-label="Name">{name}</td>
                    <td data-label="Health" class="source-health">
                        <span aria-hidden="true">{mark}" "</span>{row.health}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-wrap">
            <table class="proof-table stack" id="sources">
                <thead>
                    <tr>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Health"</th>
                    </tr>
                </thead>
                <tbody>{body}</tbody>
            </table>
        </div>
        {(!configured).then(|| view! {
            <p class="empty-state" id="sources-empty">
                "Only the host is watched so far. Add a database, a cache or a fleet below, declare them in the configuration file, or push your own metrics to /api/push."
            </p>
        })}
    }
    .into_any()
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    view! {
        <section class="page-head">
            <h1>"Settings"</h1>
            <p class="muted">"How this perfpilot instance collects, evaluates and saves."</p>
        </section>
        <Sources/>
        <YourAccess/>
        <section class="settings-section" aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p class="muted">"For scripts and CI: send " <code>"Authorization: Bearer <token>"</code> " with each request. A token acts with the role it was given."</p>
            <Allowed role=Role::Admin what="Managing API tokens">
                <Tokens/>
            </Allowed>
        </section>
        <section class="settings-section" aria-labelledby="databases-title">
            <h2 id="databases-title">"Databases"</h2>
            <p class="muted">"Watch a database of any kind listed: probe latency (p50/p95/p99), throughput, cache hits and connections every second. perfpilot connects once before adding it and says what the user it logs in as lacks (on PostgreSQL, pg_monitor)."</p>
            <Allowed role=Role::Admin what="Adding databases">
                <AddDatabase/>
            </Allowed>
        </section>
        <section class="settings-section" aria-labelledby="caches-title">
            <h2 id="caches-title">"Caches"</h2>
            <p class="muted">"Watch a Redis or memcached cache: hit ratio, hits and misses, memory against its limit, evictions and a client-side latency probe every second; a restart or an emptied keyspace is marked as a cold start. perfpilot connects once before adding it."</p>
            <Allowed role=Role::Admin what="Adding caches">
                <AddCache/>
            </Allowed>
        </section>
        <section class="settings-section" aria-labelledby="fleets-title">
            <h2 id="fleets-title">"Fleets"</h2>
            <p class="muted">"Read every host of a Prometheus-compatible store (Prometheus, VictoriaMetrics, Thanos, Mimir) and judge them against targets set for all hosts, per group or per host. perfpilot runs a test query of the selector before adding it."</p>
            <Allowed role=Role::Admin what="Adding fleets">
                <AddFleet/>
            </Allowed>
        </section>
        <section class="settings-section">
            <h2>"Everything else"</h2>
            <p class="muted">"Settings are read from the command line and the optional TOML file given with --config; run perfpilot --help to see them."</p>
        </section>
    }
}

#[component]
fn YourAccess() -> impl IntoView {
    let me = expect_context::<Me>();
    view! {
        <section class="settings-section" aria-labelledby="access-title">
            <h2 id="access-title">"Your access"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Checking who you are…"</p> }>
                {move || me.0.get().map(|who| match who {
                    Ok(who) => {
                        let may = match who.role {
                            Role::Viewer => "You can see everything, and try targets on a chart without saving them.",
                            Role::Editor => "You can edit targets and settings and add marks.",
                            Role::Admin => "You can edit targets, restore snapshots and manage API tokens.",
                        };
                        view! {
                            <p id="access-summary">
                                "You are " <strong>{who.user.clone()}</strong> " with the " <strong>{who.role.as_str()}</strong> " role. " {may}
                            </p>
                        }
                        .into_any()
                    }
                    Err(err) => view! { <p class="field-error">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Tokens() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    // Shown disabled to other roles (see `Allowed`), which may not list tokens: their
    // list stays empty rather than showing a refusal.
    let me = expect_context::<Me>();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        move |_| async move {
            // Who is asking first, so a server render waits for both in order.
            if me.0.await.is_ok_and(|who| who.may(Role::Admin)) {
                list_tokens().await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let name = RwSignal::new(String::new());
    let role = RwSignal::new("editor".to_owned());

    view! {
        <form
            class="settings-form token-form"
            // Before hydration a submit does nothing (a GET would put the fields,
            // a password too, in the URL).
            method="dialog"
            on:submit=move |ev| {
                ev.prevent_default();
                create.dispatch(CreateToken { name: name.get_untracked(), role: role.get_untracked() });
            }
        >
            <label class="setting">
                <span>"Name"</span>
                <input
                    id="token-name"
                    type="text"
                    placeholder="ci-deploy"
                    maxlength="64"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                    aria-describedby="token-error"
                />
            </label>
            <label class="setting">
                <span>"Role"</span>
                <select id="token-role" on:change=move |ev| role.set(event_target_value(&ev))>
                    {Role::ALL
                        .into_iter()
                        .map(|r| view! { <option value=r.as_str() selected=move || role.get() == r.as_str()>{r.as_str()}</option> })
                        .collect_view()}
                </select>
            </label>
            <button id="token-create" class="btn" type="submit" disabled=move || create.pending().get()>
                {move || if create.pending().get() { "Creating…" } else { "Create token" }}
            </button>
        </form>
        {move || match create.value().get() {
            Some(Ok(minted)) => view! {
                <div class="notice token-secret" role="status">
                    <p>{format!("Token “{}” ({}) created. Copy it now — it is not stored and will not be shown again:", minted.info.name, minted.info.role)}</p>
                    <code id="token-secret">{minted.secret.clone()}</code>
                </div>
            }
            .into_any(),
            Some(Err(err)) => view! { <p id="token-error" class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
            None => view! { <p id="token-error" class="field-error" role="alert"></p> }.into_any(),
        }}
        {move || revoke.value().get().and_then(Result::err).map(|err| view! {
            <p class="field-error" role="alert">{err.to_string()}</p>
        })}
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading tokens…"</p> }>
            {move || tokens.get().map(|list| match list {
                Ok(_) if !me.may(Role::Admin) => ().into_any(),
                Ok(list) if list.is_empty() => view! {
                    <p class="empty-state" id="tokens-empty">"No API tokens yet."</p>
                }
                .into_any(),
                Ok(list) => view! { <TokenTable list revoke/> }.into_any(),
                Err(err) => view! { <p class="field-error">{err.to_string()}</p> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn TokenTable(list: Vec<TokenInfo>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="proof-table stack" id="tokens">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Created (UTC)"</th>
                        <th scope="col">"By"</th>
                        <th scope="col">"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|token| {
                            let id = token.id.clone();
                            let status = match token.revoked_at_unix_ms {
                                Some(at) => view! { <span class="muted">{format!("revoked {}", crate::format::utc_time(at))}</span> }.into_any(),
                                None => view! {
                                    <button
                                        type="button"
                                        class="btn btn-ghost"
                                        data-token=id.clone()
                                        aria-label=format!("Revoke token {}", token.name)
                                        disabled=move || revoke.pending().get()
                                        on:click=move |_| {
                                            revoke.dispatch(RevokeToken { id: id.clone() });
                                        }
                                    >
                                        "Revoke"
                                    </button>
                                }
                                .into_any(),
                            };
                            view! {
                                <tr>
                                    <td data-label="Name">{token.name.clone()}</td>
                                    <td data-label="Role">{token.role.as_str()}</td>
                                    <td data-label="Created (UTC)">{crate::format::utc_time(token.created_at_unix_ms)}</td>
                                    <td data-label="By">{token.created_by.clone()}</td>
                                    <td data-label="Status">{status}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AddDatabase() -> impl IntoView {
    let add = ServerAction::<AddDatabase>::new();
    let kinds = Resource::new(|| (), |_| database_kinds());
    // Empty until chosen: the server's first database kind.
    let kind = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let probe = RwSignal::new(String::new());
    let group = RwSignal::new(String::new());
    let optional =
        |signal: RwSignal<String>| Some(signal.get_untracked()).filter(|v| !v.trim().is_empty());
    let submit = move || {
        add.dispatch(AddDatabase {
            kind: optional(kind),
            name: name.get_untracked(),
            url: url.get_untracked(),
            password: optional(password),
            probe_query: optional(probe),
            group: optional(group),
        });
    };
    // The password field empties once the server has it: it is never shown again.
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) {
            password.set(String::new());
        }
    });
    view! {
        <form id="add-database" class="settings-form" method="dialog" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            <label class="setting setting-wide">
                <span>"Kind"</span>
                <Transition fallback=|| view! { <select id="database-kind" disabled=true><option>"Loading kinds…"</option></select> }>
                    {move || kinds.get().map(|found| {
                        let options = found.unwrap_or_default().into_iter().map(|known| {
                            let value = known.kind.clone();
                            let selected = move || kind.get() == value;
                            view! { <option value=known.kind.clone() selected=selected>{known.title}</option> }
                        }).collect_view();
                        view! { <select id="database-kind" on:change=move |ev| kind.set(event_target_value(&ev))>{options}</select> }
                    })}
                </Transition>
            </label>
            {field("Name (the resource becomes database:<name>)", "database-name", "text", "orders", name)}
            {field("Connection URL, without the password", "database-url", "text", "postgresql://perf@db.internal:5432/app or mysql://…", url)}
            {field("Password (kept on the server, never shown again)", "database-password", "password", "", password)}
            {field("Probe query (optional: timed every second)", "database-probe", "text", "SELECT count(*) FROM orders WHERE id = 1", probe)}
            {field("Group (optional: shards of one logical database)", "database-group", "text", "shop", group)}
            <button id="database-add" class="btn" type="submit" disabled=move || add.pending().get()>
                {move || if add.pending().get() { "Connecting…" } else { "Connect and add" }}
            </button>
            {move || add.value().get().map(|result| match result {
                Ok(added) => {
                    let href = crate::base::href(&format!("/resource?id={}", added.resource.replace(':', "%3A")));
                    view! {
                        <p id="database-message" class="notice" role="status">
                            "Added " <a href=href>{added.resource.clone()}</a>
                            {format!(" ({}, change #{}){}", added.server_version, added.change,
                                if added.statements { "" } else { "; the server keeps no statement statistics (pg_stat_statements, performance_schema), so the Queries panel stays empty" })}
                        </p>
                    }.into_any()
                }
                Err(err) => view! { <p id="database-message" class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </form>
    }
}

#[component]
fn AddCache() -> impl IntoView {
    let add = ServerAction::<AddCache>::new();
    let kind = RwSignal::new("redis".to_owned());
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let tls_ca_file = RwSignal::new(String::new());
    let group = RwSignal::new(String::new());
    let level = RwSignal::new(String::new());
    let optional =
        |signal: RwSignal<String>| Some(signal.get_untracked()).filter(|v| !v.trim().is_empty());
    let submit = move || {
        add.dispatch(AddCache {
            new: crate::caches::NewCache {
                kind: kind.get_untracked(),
                name: name.get_untracked(),
                url: url.get_untracked(),
                tls_ca_file: optional(tls_ca_file),
                username: optional(username),
                password: optional(password),
                group: optional(group),
                level: optional(level).and_then(|l| l.trim().parse().ok()),
            },
        });
    };
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) {
            password.set(String::new());
        }
    });
    let redis = move || kind.get() == "redis";
    view! {
        <form id="add-cache" class="settings-form" method="dialog" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            <label class="setting setting-wide">
                <span>"Kind"</span>
                <select id="cache-kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                    <option value="redis" selected=redis>"Redis"</option>
                    <option value="memcached" selected=move || !redis()>"memcached"</option>
                </select>
            </label>
            {field("Name (the resource becomes cache:<name>)", "cache-name", "text", "sessions", name)}
            <label class="setting setting-wide">
                <span>{move || if redis() { "URL, without the password" } else { "Address (host:port)" }}</span>
                <input id="cache-url" type="text" autocomplete="off"
                    placeholder=move || if redis() { "redis://cache.internal:6379/0 or rediss://… for TLS" } else { "cache.internal:11211" }
                    prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev))/>
            </label>
            <Show when=redis>
                {field("ACL user (optional)", "cache-username", "text", "perfpilot", username)}
                {field("Password (kept on the server, never shown again)", "cache-password", "password", "", password)}
                {field("CA certificate file on the server, for rediss:// with a private CA (optional)", "cache-tls-ca", "text", "/etc/perfpilot/redis-ca.pem", tls_ca_file)}
            </Show>
            {field("Group (optional: levels in front of one backend)", "cache-group", "text", "shop", group)}
            {field("Level in the group (1 is nearest the application; default 2)", "cache-level", "number", "2", level)}
            <button id="cache-add" class="btn" type="submit" disabled=move || add.pending().get()>
                {move || if add.pending().get() { "Connecting…" } else { "Connect and add" }}
            </button>
            {move || add.value().get().map(|result| match result {
                Ok(added) => {
                    let href = crate::base::href(&format!("/resource?id={}", added.resource.replace(':', "%3A")));
                    view! {
                        <p id="cache-message" class="notice" role="status">
                            "Added " <a href=href>{added.resource.clone()}</a>
                            {format!(" ({}, change #{}){}", added.server_version, added.change,
                                added.tuning_unavailable.as_ref().map(|why| format!("; tuning {why}")).unwrap_or_default())}
                        </p>
                    }.into_any()
                }
                Err(err) => view! { <p id="cache-message" class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </form>
    }
}

#[component]
fn AddFleet() -> impl IntoView {
    let add = ServerAction::<crate::pages::fleet::AddFleet>::new();
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let selector = RwSignal::new(String::new());
    let group_by = RwSignal::new(String::new());
    let username = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let optional =
        |signal: RwSignal<String>| Some(signal.get_untracked()).filter(|v| !v.trim().is_empty());
    let submit = move || {
        add.dispatch(crate::pages::fleet::AddFleet {
            new: crate::fleets::NewFleet {
                name: name.get_untracked(),
                url: url.get_untracked(),
                selector: selector.get_untracked(),
                group_by: group_by.get_untracked(),
                username: optional(username),
                secret: optional(secret),
            },
        });
    };
    Effect::new(move |_| {
        if matches!(add.value().get(), Some(Ok(_))) {
            secret.set(String::new());
        }
    });
    view! {
        <form id="add-fleet" class="settings-form" method="dialog" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            {field("Name (the resource becomes fleet:<name>)", "fleet-name", "text", "prod", name)}
            {field("Store URL (its base, without /api/v1)", "fleet-url", "text", "http://prometheus:9090", url)}
            {field("Selector listing the hosts (default up{job=\"node\"})", "fleet-selector", "text", "up{job=\"node\"}", selector)}
            {field("Group by labels, comma-separated (optional)", "fleet-group-by", "text", "env, role", group_by)}
            {field("User for basic auth (optional)", "fleet-username", "text", "perfpilot", username)}
            {field("Bearer token, or the user's password (kept on the server, never shown again)", "fleet-secret", "password", "", secret)}
            <button id="fleet-add" class="btn" type="submit" disabled=move || add.pending().get()>
                {move || if add.pending().get() { "Querying the store…" } else { "Test and add" }}
            </button>
            {move || add.value().get().map(|result| match result {
                Ok((change, resource, store)) => {
                    let href = crate::base::href(&format!("/fleet?id={}", resource.replace(':', "%3A")));
                    view! {
                        <p id="fleet-message" class="notice" role="status">
                            "Added " <a href=href>{resource.clone()}</a>{format!(" ({store}, change #{change})")}
                        </p>
                    }.into_any()
                }
                Err(err) => view! { <p id="fleet-message" class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </form>
    }
}

/// One labelled text input of a settings form, bound to `signal`.
fn field(
    label: &'static str,
    id: &'static str,
    kind: &'static str,
    placeholder: &'static str,
    signal: RwSignal<String>,
) -> impl IntoView {
    view! {
        <label class="setting setting-wide">
            <span>{label}</span>
            <input id=id type=kind placeholder=placeholder autocomplete="off" prop:value=move || signal.get() on:input=move |ev| signal.set(event_target_value(&ev))/>
        </label>
    }
}
