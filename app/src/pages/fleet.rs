//! The fleet page: every host of a Prometheus-compatible store, worst-first, grouped by
//! the store's labels, as a heatmap (one square per host) and a table, with breach counts
//! per group. It re-reads the fleet on the store's scrape interval, never faster; a store
//! that stopped answering leaves the last data on the page, marked stale with the reason.

use engine::fleet::{CellState, Counts, FleetView, HostRow, Scope};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::format::urlencode;

/// Rows the table shows before "show all".
const TABLE_ROWS: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPageData {
    /// Every fleet configured: `(id, name)`.
    pub fleets: Vec<(String, String)>,
    /// The one shown (the first when none is named), or why it cannot be.
    pub view: Option<Result<FleetView, String>>,
    /// The shown fleet's tolerance band, in % of a target's value: a host past its target
    /// but inside the band is not breaching, and the page says so.
    #[serde(default)]
    pub tolerance_pct: f64,
}

#[server(endpoint = "fleet", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_fleet(
    #[server(default)] id: Option<String>,
) -> Result<FleetPageData, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    let state = crate::backend::configuration()?.state();
    let fleets: Vec<(String, String)> = state
        .resources
        .values()
        .filter(|r| r.fleet.is_some())
        .map(|r| (r.id.to_string(), r.name.clone()))
        .collect();
    let shown = id
        .filter(|id| !id.is_empty())
        .or_else(|| fleets.first().map(|(id, _)| id.clone()));
    let tolerance_pct = shown
        .as_deref()
        .and_then(|id| engine::model::ResourceId::new(id).ok())
        .and_then(|rid| state.resources.get(&rid).map(|r| r.settings.tolerance_pct))
        .unwrap_or(0.0);
    let view = match shown {
        None => None,
        Some(id) => match crate::backend::fleets()?.fleet_view(&id) {
            Ok(view) => Some(Ok(view)),
            Err(err) if err.status == 404 => return Err(err),
            Err(err) => Some(Err(err.error)),
        },
    };
    Ok(FleetPageData {
        fleets,
        view,
        tolerance_pct,
    })
}

/// Adds a fleet after one test query (admins only).
#[server(endpoint = "add_fleet", output = crate::codec::Json)]
pub async fn add_fleet(
    new: crate::fleets::NewFleet,
) -> Result<(u64, String, String), crate::error::AppError> {
    let actor = crate::backend::require(crate::identity::Role::Admin)?;
    crate::backend::fleets()?.add_fleet(new, actor).await
}

/// `/fleet/target?…` for a scope of a fleet.
pub fn scope_href(id: &str, scope: &Scope, metric: &str) -> String {
    let (level, key) = match scope {
        Scope::Default => ("default", ""),
        Scope::Group(k) => ("group", k.as_str()),
        Scope::Host(k) => ("host", k.as_str()),
    };
    crate::base::href(&format!(
        "/fleet/target?id={}&scope={level}&key={}&metric={}",
        urlencode(id),
        urlencode(key),
        urlencode(metric)
    ))
}

#[component]
pub fn FleetPage() -> impl IntoView {
    let query = use_query_map();
    let id = move || query.read().get("id");
    // Bumped while the store has not answered yet, so the page finds it once it does.
    let retries = RwSignal::new(0u32);
    let data = Resource::new(move || (id(), retries.get()), |(id, _)| get_fleet(id));
    view! {
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the fleet…"</p> }>
            {move || {
                data.get().map(|result| match result {
                    Ok(data) => view! { <FleetBody data retries/> }.into_any(),
                    Err(err) => super::load_error(
                        "Fleet",
                        "Could not load this fleet",
                        err.to_string(),
                        ("/fleet", "All fleets"),
                    ),
                })
            }}
        </Transition>
    }
}

#[component]
fn FleetBody(data: FleetPageData, retries: RwSignal<u32>) -> impl IntoView {
    let picker = (data.fleets.len() > 1).then(|| {
        let shown = data
            .view
            .as_ref()
            .and_then(|v| v.as_ref().ok())
            .map(|v| v.id.clone());
        let chips = data
            .fleets
            .iter()
            .map(|(id, name)| {
                let current = shown.as_deref() == Some(id.as_str());
                let href = crate::base::href(&format!("/fleet?id={}", urlencode(id)));
                view! { <a class="chip" class:chip-active=current aria-current=current.then_some("true") href=href>{name.clone()}</a> }
            })
            .collect_view();
        view! { <nav class="chips" aria-label="Fleet">{chips}</nav> }
    });
    let tolerance_pct = data.tolerance_pct;
    let body = match data.view {
        None => view! {
            <section class="page-head"><h1>"Fleet"</h1></section>
            <section class="empty-state" id="fleet-empty">
                <h2>"No fleet yet"</h2>
                <p>"A fleet is every host of a Prometheus-compatible store (Prometheus, VictoriaMetrics, Thanos, Mimir), judged against targets you set once for all hosts, per group or per host."</p>
                <p>"Add one with a "<code>"[[prometheus]]"</code>" entry in the configuration file (url, selector, group_by) or with "<code>"POST /api/v1/fleets"</code>"; see the README."</p>
            </section>
        }
        .into_any(),
        Some(Err(why)) => {
            // Asked again every few seconds until the store answers.
            let ticks = super::ticking(std::time::Duration::from_secs(3));
            Effect::new(move |_| {
                if ticks.get() > 0 {
                    retries.update(|n| *n += 1);
                }
            });
            view! {
                <section class="page-head"><h1>"Fleet"</h1></section>
                <section class="error-state" role="status" id="fleet-waiting">
                    <h2>"This fleet has not been read yet"</h2>
                    <p>{why}</p>
                    <p class="muted">"Trying again every few seconds…"</p>
                </section>
            }
            .into_any()
        }
        Some(Ok(view)) => view! { <FleetLive initial=view tolerance_pct/> }.into_any(),
    };
    view! { {picker} {body} }
}

/// The fleet, re-read on the store's interval.
#[component]
fn FleetLive(initial: FleetView, tolerance_pct: f64) -> impl IntoView {
    let id = initial.id.clone();
    let interval = std::time::Duration::from_secs(initial.interval_secs.max(1).into());
    let fleet = RwSignal::new(initial);
    let ticks = super::ticking(interval);
    let refresh_error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if ticks.get() == 0 {
            return;
        }
        let id = id.clone();
        leptos::task::spawn_local(async move {
            match get_fleet(Some(id)).await {
                Ok(FleetPageData {
                    view: Some(Ok(view)),
                    ..
                }) => {
                    fleet.set(view);
                    refresh_error.set(None);
                }
                Ok(FleetPageData {
                    view: Some(Err(why)),
                    ..
                }) => refresh_error.set(Some(why)),
                Ok(_) => {}
                Err(err) => refresh_error.set(Some(err.to_string())),
            }
        });
    });
    let show_all = RwSignal::new(false);
    move || {
        let view = fleet.get();
        view! { <FleetContent view show_all refresh_error tolerance_pct/> }
    }
}

/// What a "near" square means: past the target as written, inside its tolerance band,
/// so not counted as breaching (a steady 70 % against "≤ 65 %" with a 10 % band).
fn near_legend(tolerance_pct: f64) -> String {
    format!(" past the target, within its {tolerance_pct} % tolerance band (not breaching) ")
}

fn cell_class(state: CellState) -> &'static str {
    match state {
        CellState::Met => "fc fc-met",
        CellState::Near => "fc fc-near",
        CellState::Breached => "fc fc-breached",
        CellState::NoTarget => "fc fc-none",
        CellState::NoData => "fc fc-nodata",
        CellState::Warming => "fc fc-warming",
    }
}

/// A table cell's class: its standing as the text's colour. Never the squares' `fc`
/// classes, which make a box of the element (a cell made a box leaves its column).
fn cell_text_class(state: CellState) -> &'static str {
    match state {
        CellState::Met => "num standing-met",
        CellState::Near => "num standing-near",
        CellState::Breached => "num standing-breached",
        CellState::NoTarget => "num standing-none",
        CellState::NoData => "num standing-nodata",
        CellState::Warming => "num standing-warming",
    }
}

/// A host's square: coloured by its worst standing.
fn host_state(h: &HostRow) -> CellState {
    if !h.up {
        CellState::NoData
    } else if h.breaching() {
        CellState::Breached
    } else if h.warming() {
        // Not judged yet on every metric: muted, whatever the others say.
        CellState::Warming
    } else if h.cells.iter().any(|c| c.state == CellState::Near) {
        CellState::Near
    } else if h.cells.iter().any(|c| c.state == CellState::Met) {
        CellState::Met
    } else {
        CellState::NoTarget
    }
}

fn cell_text(view: &FleetView, i: usize, h: &HostRow) -> String {
    let metric = &view.metrics[i];
    match h.cells[i].value {
        // Said in words, not by the muted colour alone.
        Some(v) if h.cells[i].state == CellState::Warming => format!(
            "{} (warming up)",
            crate::format::reading(f64::from(v), &metric.unit)
        ),
        Some(v) => crate::format::reading(f64::from(v), &metric.unit),
        None if !h.up => "down".into(),
        None => "–".into(),
    }
}

#[component]
fn FleetContent(
    view: FleetView,
    show_all: RwSignal<bool>,
    refresh_error: RwSignal<Option<String>>,
    tolerance_pct: f64,
) -> impl IntoView {
    let Counts {
        hosts,
        breaching,
        warming,
        down,
    } = Counts::of(&view.hosts);
    let refreshed = view
        .refreshed_unix_ms
        .map(|ms| format!("read at {} UTC", crate::format::utc_time(ms)))
        .unwrap_or_default();
    // Counted apart: a value warming up is neither a breach nor within target yet.
    let warming = match warming {
        0 => String::new(),
        1 => " · 1 host warming up (not judged yet)".to_owned(),
        n => format!(" · {n} hosts warming up (not judged yet)"),
    };
    let summary = format!(
        "{hosts} hosts · {breaching} breaching{warming} · {down} down · {refreshed} · every {} s · {:.0} queries in the last minute (budget {}/min)",
        view.interval_secs,
        view.queries_per_min,
        view.query_budget_per_min
    );
    let stale = view.stale.clone().map(|why| {
        view! {
            <div class="banner banner-warn" role="status" id="fleet-stale">
                "Stale: "{why}
            </div>
        }
    });
    let id = view.id.clone();
    let defaults = view
        .metrics
        .iter()
        .map(|m| {
            let href = scope_href(&id, &Scope::Default, &m.name);
            view! { <a class="chip" href=href data-default=m.name.clone()>{m.name.clone()}</a> }
        })
        .collect_view();
    let groups = view
        .groups
        .iter()
        .map(|g| {
            let href = scope_href(&id, &Scope::Group(g.key.clone()), &view.metrics[0].name);
            view! {
                <tr data-group=g.key.clone()>
                    <th scope="row"><a href=href>{g.key.replace(',', ",\u{200B}")}</a></th>
                    <td class="num" data-label="hosts">{g.hosts}</td>
                    <td class="num" class:fleet-bad={g.breaching > 0} data-label="breaching">{g.breaching}</td>
                    <td class="num" data-label="down">{g.down}</td>
                </tr>
            }
            .into_any()
        })
        .collect_view()
        .into_any();
    // The heatmap: one square per host, grouped, worst-first inside each group.
    let heatmap = view
        .groups
        .iter()
        .map(|g| {
            let squares = view
                .hosts
                .iter()
                .filter(|h| h.group == g.key)
                .map(|h| {
                    let title = format!(
                        "{} — {}",
                        h.instance,
                        (0..view.metrics.len())
                            .map(|i| format!("{} {}", view.metrics[i].name, cell_text(&view, i, h)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let href = scope_href(&id, &Scope::Host(h.instance.clone()), &view.metrics[0].name);
                    // Out of the tab order: the table below has the same links, so a keyboard
                    // does not walk a thousand squares to reach it.
                    view! { <a class=cell_class(host_state(h)) href=href tabindex="-1" title=title.clone() aria-label=title></a> }
                })
                .collect_view();
            view! {
                <div class="heat-group">
                    <h3>{g.key.clone()}" "<span class="muted">{
                        if g.warming > 0 {
                            format!("{} of {} breaching, {} warming up", g.breaching, g.hosts, g.warming)
                        } else {
                            format!("{} of {} breaching", g.breaching, g.hosts)
                        }
                    }</span></h3>
                    <div class="heat">{squares}</div>
                </div>
            }
            .into_any()
        })
        .collect_view()
        .into_any();
    let total = view.hosts.len();
    let metric_heads = view
        .metrics
        .iter()
        .map(|m| view! { <th scope="col" class="num">{m.name.clone()}</th> })
        .collect_view();
    let view_for_rows = view.clone();
    let rows = move || {
        let v = &view_for_rows;
        let limit = if show_all.get() {
            usize::MAX
        } else {
            TABLE_ROWS
        };
        v.hosts
            .iter()
            .take(limit)
            .map(|h| {
                let href = scope_href(&v.id, &Scope::Host(h.instance.clone()), &v.metrics[0].name);
                let cells = (0..v.metrics.len())
                    .map(|i| view! { <td class=cell_text_class(h.cells[i].state) data-label=v.metrics[i].name.clone()>{cell_text(v, i, h)}</td> })
                    .collect_view();
                view! {
                    <tr data-host=h.instance.clone()>
                        <th scope="row"><a href=href>{h.instance.clone()}</a></th>
                        <td data-label="group">{h.group.clone()}</td>
                        {cells}
                    </tr>
                }
                .into_any()
            })
            .collect_view()
            .into_any()
    };
    let head = view! {
        <section class="page-head">
            <p class="crumbs"><a href=crate::base::href("/fleet")>"Fleets"</a>" / "{view.id.clone()}</p>
            <h1>{view.name.clone()}</h1>
            <p class="muted" id="fleet-summary" role="status">{summary}</p>
        </section>
        {stale}
        {move || refresh_error.get().map(|why| view! { <div class="banner banner-warn" role="status">"Could not refresh: "{why}</div> })}
        <div class="toolbar">
            <nav class="chips" aria-label="Fleet default targets">
                <span class="muted chips-label">"Targets for every host:"</span>
                {defaults}
            </nav>
        </div>
    }
    .into_any();
    let group_head = if view.group_by.is_empty() {
        "Group".to_owned()
    } else {
        view.group_by.join(", ")
    };
    let panels = view! {
        <section class="fleet-grid">
            <div class="panel">
                <h2>"Groups"</h2>
                <div class="table-scroll">
                    <table class="table stack" id="fleet-groups">
                        <thead><tr><th scope="col">{group_head}</th><th scope="col" class="num">"hosts"</th><th scope="col" class="num">"breaching"</th><th scope="col" class="num">"down"</th></tr></thead>
                        <tbody>{groups}</tbody>
                    </table>
                </div>
            </div>
            <div class="panel">
                <h2>"Hosts"</h2>
                <p class="muted legend">
                    <span class="fc fc-breached"></span>" breaching "
                    <span class="fc fc-near"></span>{near_legend(tolerance_pct)}
                    <span class="fc fc-met"></span>" met "
                    <span class="fc fc-warming"></span>" warming up (a rate's first window after its series appeared: shown, not judged yet) "
                    <span class="fc fc-nodata"></span>" down / no data"
                </p>
                <div id="fleet-heatmap">{heatmap}</div>
            </div>
        </section>
    }
    .into_any();
    let more = (total > TABLE_ROWS).then(|| {
        view! {
            <button type="button" class="btn btn-ghost" id="fleet-show-all" on:click=move |_| show_all.update(|s| *s = !*s)>
                {move || if show_all.get() { format!("Show the worst {TABLE_ROWS}") } else { format!("Show all {total} hosts") }}
            </button>
        }
        .into_any()
    });
    let table = view! {
        <section class="panel">
            <h2>"Worst first"</h2>
            <div class="table-scroll">
                <table class="table stack" id="fleet-hosts">
                    <thead><tr><th scope="col">"host"</th><th scope="col">"group"</th>{metric_heads}</tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            {more}
        </section>
    }
    .into_any();
    view! { {head} {panels} {table} }
}
