//! The audit log: who changed what, when and from where, newest first, filterable by
//! user, resource, kind and free text. The filter lives in the URL (`/audit?user=alice`)
//! so a view can be linked and is rendered on the server; the form is a plain GET, so it
//! works before (and without) hydration.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::audit::{kind_names, AuditRecord};

/// Entries the page shows at most; the API (`GET /api/audit?limit=`) exports up to 1,000.
#[cfg(feature = "ssr")]
const PAGE_LIMIT: &str = "200";

/// Audit entries passing the filter, newest first. Needs the viewer role; a bad filter
/// value is a 400 naming the field and the rule.
#[server(endpoint = "audit_log", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn audit_log(
    user: String,
    resource: String,
    kind: String,
    q: String,
) -> Result<Vec<AuditRecord>, crate::error::AppError> {
    use crate::backend::{changes, require};
    use crate::error::AppError;
    require(crate::identity::Role::Viewer)?;
    let parsed = crate::audit::AuditFilter::from_pairs([
        ("user", user.as_str()),
        ("resource", resource.as_str()),
        ("kind", kind.as_str()),
        ("q", q.as_str()),
        ("limit", PAGE_LIMIT),
    ]);
    let filter = parsed.map_err(|err| AppError::new(400, err.to_string()))?;
    changes()?.audit(filter).await
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &'static str| move || query.read().get(name).unwrap_or_default();
    let (user, resource, kind, text) =
        (param("user"), param("resource"), param("kind"), param("q"));
    let entries = Resource::new(
        move || (user(), resource(), kind(), text()),
        |(user, resource, kind, q)| audit_log(user, resource, kind, q),
    );
    let filtered = move || {
        !(user().is_empty() && resource().is_empty() && kind().is_empty() && text().is_empty())
    };

    view! {
        <section class="page-head">
            <h1>"Audit log"</h1>
            <p class="muted">"Every accepted configuration change, mark, optimizer action and API-token event: who, from where, when, what, and before → after. Newest first."</p>
        </section>
        <form class="audit-filters" method="get" action="/audit" role="search" aria-label="Filter the audit log">
            <label>
                <span>"User"</span>
                <input id="audit-user" name="user" type="text" autocomplete="off" prop:value=user/>
            </label>
            <label>
                <span>"Resource"</span>
                <input id="audit-resource" name="resource" type="text" autocomplete="off" placeholder="cpu" prop:value=resource/>
            </label>
            <label>
                <span>"Kind"</span>
                <select id="audit-kind" name="kind">
                    <option value="" selected=move || kind().is_empty()>"Any"</option>
                    {kind_names()
                        .map(|k| view! { <option value=k selected=move || kind() == k>{crate::audit::AuditKind::parse(k).map_or(k, |kind| kind.label())}</option> })
                        .collect_view()}
                </select>
            </label>
            <label class="audit-text">
                <span>"Text"</span>
                <input id="audit-q" name="q" type="search" placeholder="target, restored, 10.0.0.7…" prop:value=text/>
            </label>
            <div class="audit-buttons">
                <button type="submit" class="btn" id="audit-apply">"Filter"</button>
                <a href="/audit" class="audit-clear">"Clear"</a>
            </div>
        </form>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the audit log…"</p> }>
            {move || entries.get().map(|result| match result {
                Err(err) => view! {
                    <section class="error-state" role="alert" id="audit-error">
                        <h2>"Could not load the audit log"</h2>
                        <p>{err.to_string()}</p>
                    </section>
                }
                .into_any(),
                Ok(rows) if rows.is_empty() => view! {
                    <div class="empty-state" id="audit-empty">
                        <p>{if filtered() {
                            "No entry matches this filter."
                        } else {
                            "Nothing has been audited yet: entries appear with the first configuration change."
                        }}</p>
                    </div>
                }
                .into_any(),
                Ok(rows) => view! { <AuditTable rows/> }.into_any(),
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn AuditTable(rows: Vec<AuditRecord>) -> impl IntoView {
    let count = rows.len();
    view! {
        <div class="table-scroll">
            <table class="audit stack" id="audit">
                <caption>{format!("{count} entries, newest first.")}</caption>
                <thead>
                    <tr>
                        <th scope="col">"When (UTC)"</th>
                        <th scope="col">"Change"</th>
                        <th scope="col">"Who"</th>
                        <th scope="col">"From"</th>
                        <th scope="col">"What"</th>
                        <th scope="col">"Before → after"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! { <AuditRow row/> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AuditRow(row: AuditRecord) -> impl IntoView {
    let compact = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    };
    let (before, after) = (compact(&row.before), compact(&row.after));
    let (data_kind, data_user) = (row.kind.as_str(), row.user.clone());
    let data_resource = row.resource.clone().unwrap_or_default();
    let who = crate::audit::actor_label(&row.user, &row.role, &row.source);
    let how = match row.source.as_str() {
        "system" => "perfpilot itself",
        "token" => "with an API token",
        "proxy" => "signed in through the proxy",
        _ => "not signed in",
    };
    view! {
        <tr data-kind=data_kind data-user=data_user data-resource=data_resource>
            <td class="col-time" data-label="When (UTC)"><time datetime=crate::format::utc_iso(row.at_unix_ms)>{crate::format::utc_time(row.at_unix_ms)}</time></td>
            <td data-label="Change">{row.change.map(|c| format!("#{c}")).unwrap_or_else(|| "—".into())}</td>
            <td class="audit-who" data-label="Who">
                <span class="audit-user" title=how>{who}</span>
            </td>
            <td data-label="From"><code>{row.client_ip.unwrap_or_else(|| "—".into())}</code></td>
            <td class="audit-what" data-label="What">
                <span class="audit-kind">{row.kind.label()}</span>
                " "
                {row.what}
                {row.snapshot.map(|s| view! { <span class="muted">{format!(" (auto-saved snapshot #{s})")}</span> })}
            </td>
            <td class="audit-diff" data-label="Before → after">
                <details>
                    <summary>"Show"</summary>
                    <p><strong>"Before "</strong><code>{before}</code></p>
                    <p><strong>"After "</strong><code>{after}</code></p>
                </details>
            </td>
        </tr>
    }
}
