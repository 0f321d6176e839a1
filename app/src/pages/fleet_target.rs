//! One level of a fleet's targets for one metric: a host (its chart from the store's
//! history, drag-to-edit and the same backtest as a local resource), a group or the whole
//! fleet (the group's spread as a band: lowest, mean and highest host; dragging asks the
//! server "breached on N of M hosts, X % of the time"). The page says where the effective
//! target comes from, and an override can be reset to what it inherits.

use engine::fleet::{FleetMetric, HostDetail, Origin, Scope};
use engine::model::Target;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::access::Allowed;
use crate::identity::Role;
use crate::pages::fleet::scope_href;
use crate::pages::resource_chart::ChartCanvas;
use crate::resource_data::{backtest_text, ChartRange, SeriesView};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeData {
    pub fleet_id: String,
    pub fleet_name: String,
    pub scope: Scope,
    pub metric: FleetMetric,
    pub metrics: Vec<String>,
    /// The target set at exactly this level.
    pub own: Option<Target>,
    /// What this level gets without a target of its own.
    pub inherited: Option<(Target, Origin)>,
    /// Hosts the level covers.
    pub hosts: usize,
    pub host: Option<HostDetail>,
    pub series: SeriesView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetTargetSaved {
    pub change: u64,
    pub snapshot: Option<u64>,
}

/// `scope=default|group|host` and `key` into a level.
#[cfg(feature = "ssr")]
fn parse_scope(scope: &str, key: &str) -> Result<Scope, crate::error::AppError> {
    use crate::error::AppError;
    match (scope, key) {
        ("default", _) | ("group", engine::fleet::ALL_HOSTS) => Ok(Scope::Default),
        ("group", k) if !k.is_empty() => Ok(Scope::Group(k.to_owned())),
        ("host", k) if !k.is_empty() => Ok(Scope::Host(k.to_owned())),
        ("group" | "host", _) => Err(AppError::invalid("key", "a group or host needs its key")),
        (other, _) => Err(AppError::invalid(
            "scope",
            format!("must be default, group or host, got {other:?}"),
        )),
    }
}

#[cfg(feature = "ssr")]
fn range_secs(range: ChartRange) -> u64 {
    (range.millis() / 1000) as u64
}

/// The fleet resource `id` and its fleet; 404 when there is none.
#[cfg(feature = "ssr")]
fn fleet_of(
    state: &engine::changes::State,
    id: &str,
) -> Result<
    (
        std::sync::Arc<engine::model::Resource>,
        engine::fleet::Fleet,
    ),
    crate::error::AppError,
> {
    engine::model::ResourceId::new(id)
        .ok()
        .and_then(|rid| state.resources.get(&rid).cloned())
        .and_then(|r| {
            let fleet = (**r.fleet.as_ref()?).clone();
            Some((r, fleet))
        })
        .ok_or_else(|| crate::error::AppError::new(404, format!("there is no fleet `{id}`")))
}

#[server(endpoint = "fleet_scope", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_fleet_scope(
    id: String,
    scope: String,
    #[server(default)] key: Option<String>,
    #[server(default)] metric: Option<String>,
    #[server(default)] range: Option<String>,
) -> Result<ScopeData, crate::error::AppError> {
    use crate::error::AppError;
    crate::backend::require(Role::Viewer)?;
    let fleets = crate::backend::fleets()?;
    let scope = parse_scope(&scope, key.as_deref().unwrap_or(""))?;
    // A host opens on its last hour (as a local resource does); a group on the last day,
    // the period its backtest answers for.
    let default_range = if matches!(scope, Scope::Host(_)) {
        "1h"
    } else {
        "24h"
    };
    let range = ChartRange::parse(range.as_deref().unwrap_or(default_range))
        .map_err(|rule| AppError::invalid("range", rule))?;
    let (resource, fleet) = fleet_of(&crate::backend::configuration()?.state(), &id)?;
    let metric = match metric.filter(|m| !m.is_empty()) {
        Some(m) => fleet.metric(&m).cloned().ok_or_else(|| {
            AppError::invalid("metric", format!("`{m}` is not a metric of this fleet"))
        })?,
        None => fleet.metrics[0].clone(),
    };
    let host = match &scope {
        Scope::Host(instance) => Some(fleets.fleet_host(&id, instance)?),
        _ => None,
    };
    let group = match (&scope, &host) {
        (Scope::Group(k), _) => k.clone(),
        (Scope::Host(_), Some(h)) => h.group.clone(),
        _ => engine::fleet::ALL_HOSTS.to_owned(),
    };
    let hosts = match &scope {
        Scope::Host(_) => 1,
        _ => fleets.fleet_members(&id, &group)?.len(),
    };
    let own = fleet.targets.get(&scope, &metric.name).cloned();
    let inherited = fleet.targets.inherited(&scope, &metric.name, &group);
    let effective = own.clone().or_else(|| inherited.clone().map(|(t, _)| t));
    let data = fleets
        .fleet_range(
            id.clone(),
            metric.name.clone(),
            scope.clone(),
            range_secs(range),
            720,
        )
        .await?;
    let (means, lows, highs) = match &scope {
        Scope::Host(instance) => (
            data.hosts
                .get(instance)
                .cloned()
                .unwrap_or_else(|| vec![None; data.points]),
            Vec::new(),
            Vec::new(),
        ),
        _ => spread(&data),
    };
    let series = SeriesView {
        resource_id: id.clone(),
        resource_name: resource.name.clone(),
        metric: metric.name.clone(),
        metrics: fleet.metrics.iter().map(|m| m.name.clone()).collect(),
        unit: metric.unit.clone(),
        kind: metric.kind,
        range,
        start_ms: data.start_secs * 1000,
        step_ms: data.step_secs as i64 * 1000,
        means,
        lows,
        highs,
        target: effective,
        // The fleet's rule (window, tolerance band, recovery): what its cells are judged with.
        rule: engine::backtest::Rule::of(&resource.settings),
        events: Vec::new(),
        overlays: Vec::new(),
        comparable: Vec::new(),
        crossing: None,
        band: engine::anomaly::Band::default(),
    };
    Ok(ScopeData {
        fleet_id: id,
        fleet_name: resource.name.clone(),
        scope,
        metrics: series.metrics.clone(),
        metric,
        own,
        inherited,
        hosts,
        host,
        series,
    })
}

/// Per point: the mean, lowest and highest of the hosts that have a value there.
#[cfg(feature = "ssr")]
#[allow(clippy::type_complexity)]
fn spread(
    data: &engine::fleet::RangeSeries,
) -> (Vec<Option<f32>>, Vec<Option<f32>>, Vec<Option<f32>>) {
    let mut means = Vec::with_capacity(data.points);
    let mut lows = Vec::with_capacity(data.points);
    let mut highs = Vec::with_capacity(data.points);
    for i in 0..data.points {
        let (mut n, mut sum, mut lo, mut hi) = (0u32, 0f64, f32::INFINITY, f32::NEG_INFINITY);
        for values in data.hosts.values() {
            if let Some(Some(v)) = values.get(i) {
                n += 1;
                sum += f64::from(*v);
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
        }
        let some = n > 0;
        means.push(some.then(|| (sum / f64::from(n)) as f32));
        lows.push(some.then_some(lo));
        highs.push(some.then_some(hi));
    }
    (means, lows, highs)
}

/// Sets the target of `metric` at one level; a level without a target of its own starts
/// from the shape of the one it inherits (statistic, direction).
#[server(endpoint = "set_fleet_target", output = crate::codec::Json)]
pub async fn set_fleet_target(
    id: String,
    scope: String,
    #[server(default)] key: Option<String>,
    metric: String,
    value: String,
    #[server(default)] for_secs: Option<u32>,
) -> Result<FleetTargetSaved, crate::error::AppError> {
    use crate::error::AppError;
    let actor = crate::backend::require(Role::Editor)?;
    let scope = parse_scope(&scope, key.as_deref().unwrap_or(""))?;
    let value: f64 = value.trim().parse().map_err(|_| {
        AppError::invalid("target.value", format!("must be a number, got {value:?}"))
    })?;
    let rid = engine::model::ResourceId::new(&id)?;
    let (_, fleet) = fleet_of(&crate::backend::configuration()?.state(), &id)?;
    // A new host override starts from what the host inherits: its group's shape.
    let group = match &scope {
        Scope::Group(k) => k.clone(),
        Scope::Host(instance) => crate::backend::fleets()?
            .fleet_host(&id, instance)
            .map(|h| h.group)
            .unwrap_or_else(|_| engine::fleet::ALL_HOSTS.to_owned()),
        Scope::Default => engine::fleet::ALL_HOSTS.to_owned(),
    };
    let target = fleet
        .targets
        .candidate(&scope, &metric, &group, value, for_secs);
    let record = crate::backend::apply(
        engine::changes::Mutation::SetFleetTarget {
            id: rid,
            scope,
            metric,
            target: Some(target),
        },
        &actor,
    )
    .await?;
    Ok(FleetTargetSaved {
        change: record.change,
        snapshot: record.snapshot.as_ref().map(|s| s.change),
    })
}

/// Removes the target set at one level, so it inherits again.
#[server(endpoint = "reset_fleet_target", output = crate::codec::Json)]
pub async fn reset_fleet_target(
    id: String,
    scope: String,
    #[server(default)] key: Option<String>,
    metric: String,
) -> Result<FleetTargetSaved, crate::error::AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    let scope = parse_scope(&scope, key.as_deref().unwrap_or(""))?;
    let record = crate::backend::apply(
        engine::changes::Mutation::SetFleetTarget {
            id: engine::model::ResourceId::new(&id)?,
            scope,
            metric,
            target: None,
        },
        &actor,
    )
    .await?;
    Ok(FleetTargetSaved {
        change: record.change,
        snapshot: record.snapshot.as_ref().map(|s| s.change),
    })
}

/// "Would have been breached on N of M hosts, X % of the time, in the last 24 h" for a
/// candidate target of a group (`*`: every host).
#[server(endpoint = "fleet_backtest", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn fleet_backtest(
    id: String,
    key: String,
    metric: String,
    value: f64,
    #[server(default)] for_secs: Option<u32>,
    #[server(default)] range: Option<String>,
) -> Result<String, crate::error::AppError> {
    use crate::error::AppError;
    crate::backend::require(Role::Viewer)?;
    let range = ChartRange::parse(range.as_deref().unwrap_or("24h"))
        .map_err(|rule| AppError::invalid("range", rule))?;
    let (_, fleet) = fleet_of(&crate::backend::configuration()?.state(), &id)?;
    let scope = if key == engine::fleet::ALL_HOSTS || key.is_empty() {
        Scope::Default
    } else {
        Scope::Group(key.clone())
    };
    let target = fleet
        .targets
        .candidate(&scope, &metric, &key, value, for_secs);
    target
        .validate(
            &fleet.target_metrics(),
            &engine::model::ResourceSettings::default(),
        )
        .map_err(AppError::from)?;
    let (result, step) = crate::backend::fleets()?
        .fleet_backtest(id, key, target, range_secs(range))
        .await?;
    Ok(format!(
        "{} (judged every {})",
        result.text(range.label()),
        crate::format::duration(step as i64)
    ))
}

/// Suggest for one level of a fleet: a host from its own series, a group (or the whole
/// fleet) from its band — the highest host at each step for a "stay under" target, the
/// lowest for "stay above", since a group's target holds for every host. Seven days when
/// the store has a quarter of them, else the last day.
#[server(endpoint = "suggest_fleet_target", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn suggest_fleet_target(
    id: String,
    scope: String,
    #[server(default)] key: Option<String>,
    metric: String,
) -> Result<crate::pages::resource_suggest::SuggestedTargets, crate::error::AppError> {
    use crate::error::AppError;
    use engine::model::Comparator;

    let mut last_error = None;
    for range in [ChartRange::SevenDays, ChartRange::OneDay] {
        let data = get_fleet_scope(
            id.clone(),
            scope.clone(),
            key.clone(),
            Some(metric.clone()),
            Some(range.as_str().to_owned()),
        )
        .await?;
        let series = &data.series;
        let shape = series
            .target
            .clone()
            .unwrap_or_else(|| crate::resource_data::default_target(&metric, 0.0));
        let step_ms = series.step_ms;
        let step_secs = u32::try_from((step_ms / 1000).max(1)).unwrap_or(u32::MAX);
        let (values, how) = match (&data.scope, shape.comparator) {
            (Scope::Host(_), _) => (&series.means, "the host's own values".to_owned()),
            (_, Comparator::Le) => (&series.highs, "the highest host at each step".to_owned()),
            (_, Comparator::Ge) => (&series.lows, "the lowest host at each step".to_owned()),
        };
        let filled = values.iter().flatten().count();
        if range == ChartRange::SevenDays && filled * 4 < values.len().max(1) {
            continue;
        }
        match engine::suggest::suggest(values, step_secs, &shape, &series.rule, series.kind) {
            Ok(choices) => {
                return Ok(crate::pages::resource_suggest::SuggestedTargets {
                    from: format!("the last {}", range.label()),
                    how: format!(
                        "{how}, every {}",
                        crate::format::duration(i64::from(step_secs))
                    ),
                    choices,
                })
            }
            Err(err) => last_error = Some(AppError::new(422, err.to_string())),
        }
    }
    Err(last_error.unwrap_or_else(|| AppError::new(422, "too little history to suggest a target")))
}

/// A host metric's standing in words: past the target but inside its tolerance band is
/// never shown as plainly within target.
pub(crate) fn standing_text(state: engine::fleet::CellState) -> &'static str {
    use engine::fleet::CellState;
    match state {
        CellState::Met => "met",
        CellState::Near => "within the tolerance band",
        CellState::Breached => "breached",
        CellState::NoTarget => "no target",
        CellState::NoData => "no data",
        CellState::Warming => "warming up (not judged yet)",
    }
}

fn scope_title(scope: &Scope) -> String {
    match scope {
        Scope::Default => "Every host (fleet default)".into(),
        Scope::Group(k) => format!("Group {k}"),
        Scope::Host(h) => format!("Host {h}"),
    }
}

fn origin_text(origin: Origin, scope: &Scope, host: Option<&HostDetail>) -> String {
    match origin {
        Origin::Host => "this host's override".into(),
        Origin::Group => match (scope, host) {
            (Scope::Host(_), Some(h)) => format!("the target of its group {}", h.group),
            _ => "this group's target".into(),
        },
        Origin::Default => "the fleet default".into(),
        Origin::BuiltIn => "perfpilot's built-in default".into(),
    }
}

#[component]
pub fn FleetTargetPage() -> impl IntoView {
    let query = use_query_map();
    let args = move || {
        let q = query.read();
        (
            q.get("id").unwrap_or_default(),
            q.get("scope").unwrap_or_else(|| "default".into()),
            q.get("key"),
            q.get("metric"),
            q.get("range"),
        )
    };
    // Bumped after a save or a reset, so the page is read again (the URL may not change).
    let reloads = RwSignal::new(0u32);
    // Owned here: the re-read rebuilds the editor, and the saved notice must outlive it.
    let notice = RwSignal::new(None::<String>);
    let data = Resource::new(
        move || (args(), reloads.get()),
        |((id, scope, key, metric, range), _)| get_fleet_scope(id, scope, key, metric, range),
    );
    view! {
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the store's history…"</p> }>
            {move || {
                data.get().map(|result| match result {
                    Ok(data) => view! { <ScopeEditor data reloads notice/> }.into_any(),
                    Err(err) => super::load_error(
                        "Fleet target",
                        "Could not load this target",
                        err.to_string(),
                        ("/fleet", "Back to the fleet"),
                    ),
                })
            }}
        </Transition>
    }
}

fn level_args(scope: &Scope) -> (String, Option<String>) {
    match scope {
        Scope::Default => ("default".into(), None),
        Scope::Group(k) => ("group".into(), Some(k.clone())),
        Scope::Host(k) => ("host".into(), Some(k.clone())),
    }
}

#[component]
fn ScopeEditor(
    data: ScopeData,
    reloads: RwSignal<u32>,
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    let series = RwSignal::new(data.series.clone());
    let effective = data
        .own
        .clone()
        .or_else(|| data.inherited.as_ref().map(|(t, _)| t.clone()));
    let saved_value = effective.as_ref().map(|t| t.value);
    let saved_for = effective.as_ref().map_or(300, |t| t.for_secs);
    let candidate = RwSignal::new(saved_value);
    let candidate_for = RwSignal::new(saved_for);
    let hover = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);

    let save = ServerAction::<SetFleetTarget>::new();
    let reset = ServerAction::<ResetFleetTarget>::new();
    let is_host = matches!(data.scope, Scope::Host(_));
    let group_key = match &data.scope {
        Scope::Group(k) => k.clone(),
        _ => engine::fleet::ALL_HOSTS.to_owned(),
    };

    // Saved or reset: the page is read again so the origin line and chart follow.
    for action_value in [save.value(), reset.value()] {
        Effect::new(move |_| {
            let Some(result) = action_value.get() else {
                return;
            };
            match result {
                Ok(saved) => {
                    error.set(None);
                    notice.set(Some(crate::resource_data::saved_notice(
                        saved.change,
                        saved.snapshot,
                    )));
                    reloads.update(|n| *n += 1);
                }
                Err(err) => {
                    notice.set(None);
                    error.set(Some(err.to_string()));
                }
            }
        });
    }

    // A group's backtest is the server's (it needs every host's history); asked for a
    // quarter second after the last drag, and only the newest answer is shown.
    let group_readout = RwSignal::new(String::new());
    let asked = StoredValue::new(0u32);
    if !is_host {
        let (id, key, metric, range) = (
            data.fleet_id.clone(),
            group_key.clone(),
            data.metric.name.clone(),
            data.series.range.as_str().to_owned(),
        );
        Effect::new(move |_| {
            let (Some(value), for_secs) = (candidate.get(), candidate_for.get()) else {
                return;
            };
            asked.update_value(|n| *n += 1);
            let ticket = asked.get_value();
            let (id, key, metric, range) = (id.clone(), key.clone(), metric.clone(), range.clone());
            set_timeout(
                move || {
                    if asked.get_value() != ticket {
                        return;
                    }
                    group_readout.set("Replaying over every host…".into());
                    leptos::task::spawn_local(async move {
                        let answer =
                            fleet_backtest(id, key, metric, value, Some(for_secs), Some(range))
                                .await;
                        if asked.get_value() == ticket {
                            group_readout.set(answer.unwrap_or_else(|e| e.to_string()));
                        }
                    });
                },
                std::time::Duration::from_millis(250),
            );
        });
    }
    let readout = move || {
        if is_host {
            candidate
                .get()
                .map(|c| backtest_text(&series.read(), c, candidate_for.get()))
                .unwrap_or_default()
        } else {
            group_readout.get()
        }
    };
    let dirty = move || {
        candidate.get().is_some()
            && (candidate.get() != saved_value || candidate_for.get() != saved_for)
    };

    // The fleet's tolerance band is part of every target this page shows.
    let tolerance = data.series.rule.tolerance_pct;
    let (level, key) = level_args(&data.scope);
    let submit = {
        let (id, level, key, metric) = (
            data.fleet_id.clone(),
            level.clone(),
            key.clone(),
            data.metric.name.clone(),
        );
        move || {
            save.dispatch(SetFleetTarget {
                id: id.clone(),
                scope: level.clone(),
                key: key.clone(),
                metric: metric.clone(),
                value: candidate
                    .get_untracked()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                for_secs: Some(candidate_for.get_untracked()),
            });
        }
    };
    let submit = StoredValue::new(submit);
    let reset_button = data.own.as_ref().map(|_| {
        let (id, level, key, metric) = (data.fleet_id.clone(), level.clone(), key.clone(), data.metric.name.clone());
        let to = data
            .inherited
            .as_ref()
            .map(|(t, o)| format!("{} ({})", t.describe_with_band(data.metric.kind, tolerance), o.label()))
            .unwrap_or_else(|| "no target".into());
        view! {
            <Allowed role=Role::Editor what="Resetting a target">
                <button type="button" class="btn btn-ghost" id="target-reset"
                    disabled=move || reset.pending().get()
                    on:click={
                        let (id, level, key, metric) = (id.clone(), level.clone(), key.clone(), metric.clone());
                        move |_| { reset.dispatch(ResetFleetTarget { id: id.clone(), scope: level.clone(), key: key.clone(), metric: metric.clone() }); }
                    }>
                    {format!("Reset to inherited: {to}")}
                </button>
            </Allowed>
        }
    });
    let origin = match (&data.own, &data.inherited) {
        (Some(t), _) => {
            let own_origin = match data.scope {
                Scope::Default => Origin::Default,
                Scope::Group(_) => Origin::Group,
                Scope::Host(_) => Origin::Host,
            };
            format!(
                "Effective target: {} — set here ({}).",
                t.describe_with_band(data.metric.kind, tolerance),
                origin_text(own_origin, &data.scope, data.host.as_ref())
            )
        }
        (None, Some((t, o))) => format!(
            "Effective target: {} — inherited from {}.",
            t.describe_with_band(data.metric.kind, tolerance),
            origin_text(*o, &data.scope, data.host.as_ref())
        ),
        (None, None) => "No target applies: set one here.".into(),
    };
    let metric_links = data
        .metrics
        .iter()
        .map(|m| {
            let href = scope_href(&data.fleet_id, &data.scope, m) + "&range=" + data.series.range.as_str();
            let current = *m == data.metric.name;
            view! { <a class="chip" class:chip-active=current aria-current=current.then_some("true") href=href>{m.clone()}</a> }
        })
        .collect_view();
    let range_links = [
        ChartRange::OneHour,
        ChartRange::OneDay,
        ChartRange::SevenDays,
        ChartRange::ThirtyDays,
    ]
        .into_iter()
        .map(|r| {
            let href = scope_href(&data.fleet_id, &data.scope, &data.metric.name) + "&range=" + r.as_str();
            let current = r == data.series.range;
            view! { <a class="chip" class:chip-active=current aria-current=current.then_some("true") href=href>{r.label()}</a> }
        })
        .collect_view();
    let host_table = data.host.as_ref().map(|h| {
        let rows = h
            .metrics
            .iter()
            .map(|m| {
                let target = m
                    .target
                    .as_ref()
                    .map(|(t, o)| format!("{} ({})", t.describe_with_band(m.metric.kind, tolerance), o.label()))
                    .unwrap_or_else(|| "none".into());
                let standing = standing_text(m.state);
                // A value warming up is shown muted, and its standing says so in words.
                let warming = m.state == engine::fleet::CellState::Warming;
                let value = m
                    .observed
                    .map(|v| crate::format::reading(v, &m.metric.unit))
                    .unwrap_or_else(|| "–".into());
                view! {
                    <tr data-metric=m.metric.name.clone() data-origin=m.target.as_ref().map(|(_, o)| o.as_str())>
                        <th scope="row">{m.metric.name.clone()}</th>
                        <td class="num" class:standing-warming=warming data-label="now">{value}</td>
                        <td data-label="standing">{standing}</td>
                        <td data-label="effective target">{target}</td>
                    </tr>
                }
            })
            .collect_view();
        let labels = h
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let group_href = scope_href(&data.fleet_id, &Scope::Group(h.group.clone()), &data.metric.name);
        view! {
            <section class="panel">
                <h2>"This host"</h2>
                <p class="muted">{labels}" · group "<a href=group_href>{h.group.clone()}</a>{(!h.up).then_some(" · down")}</p>
                <table class="table stack" id="host-metrics">
                    <thead><tr><th scope="col">"metric"</th><th scope="col" class="num">"now"</th><th scope="col">"standing"</th><th scope="col">"effective target"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </section>
        }
        .into_any()
    });
    let fleet_href = crate::base::href(&format!(
        "/fleet?id={}",
        crate::format::urlencode(&data.fleet_id)
    ));
    // The shown metric warming up on this host: its chart and backtest leave the warm-up
    // out (a gap), and the page says why.
    let warming_note = data
        .host
        .as_ref()
        .and_then(|h| h.metrics.iter().find(|m| m.metric.name == data.metric.name))
        .filter(|m| m.state == engine::fleet::CellState::Warming)
        .map(|_| {
            view! {
                <p class="muted" id="target-warming" role="status">
                    "Warming up: right after its series appeared, a rate is extrapolated from its first samples and reads off, so its first window is left out of the chart and the backtest and not judged yet."
                </p>
            }
        });
    let chart_hint = if is_host {
        "Point at the chart to read a sample. Drag the target's handle ⇕ (or press and hold on its line) to move the target."
    } else {
        "The band spans the lowest to the highest host, the line is their mean. Drag the target's handle ⇕ (or press and hold on its line) to move the target."
    };
    let bounds = move || {
        let top = series.read().chart_top(candidate.get());
        series.read().bounds(top)
    };
    let step = if data.metric.kind == engine::model::MetricKind::Utilization {
        "0.5"
    } else {
        "any"
    };
    let head = view! {
        <section class="page-head">
            <p class="crumbs"><a href=fleet_href>{data.fleet_name.clone()}</a>" / "{scope_title(&data.scope)}</p>
            <h1>{scope_title(&data.scope)}" — "{data.metric.name.clone()}</h1>
            <p class="muted" id="target-origin">{origin}</p>
            <p class="muted">{if is_host { String::new() } else { format!("{} hosts", data.hosts) }}</p>
            {warming_note}
        </section>
        <div class="toolbar">
            <nav class="chips" aria-label="Metric">{metric_links}</nav>
            <nav class="chips" aria-label="Range">{range_links}</nav>
        </div>
    }
    .into_any();
    let chart = view! {
        <section class="chart-card">
            <ChartCanvas series candidate hover/>
            <p class="readout" aria-live="polite">{move || hover.get().unwrap_or_else(|| chart_hint.into())}</p>
        </section>
    }
    .into_any();
    let suggest = {
        let (id, metric) = (data.fleet_id.clone(), data.metric.name.clone());
        let (level, key) = (level.clone(), key.clone());
        Action::new(move |_: &()| {
            suggest_fleet_target(id.clone(), level.clone(), key.clone(), metric.clone())
        })
    };
    let editor = view! {
        <section class="target-editor" aria-labelledby="target-heading">
            <h2 id="target-heading">"Target at this level"</h2>
            <div class="target-row">
                <input type="range" id="target-slider" aria-label="Target value"
                    min=move || bounds().0 max=move || bounds().1 step=step
                    prop:value=move || candidate.get().unwrap_or(0.0).to_string()
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f64>() { candidate.set(Some(v)); } }/>
                <label class="number-field">
                    <span class="sr-only">"Target value"</span>
                    <input type="number" id="target-value" step=step aria-describedby="target-error backtest"
                        prop:value=move || candidate.get().map(|v| v.to_string()).unwrap_or_default()
                        on:input=move |ev| { candidate.set(event_target_value(&ev).parse::<f64>().ok()); }
                        on:keydown=move |ev| { if ev.key() == "Enter" { submit.with_value(|s| s()); } }/>
                    <span class="unit">{data.metric.unit.clone()}</span>
                </label>
                <label class="for-field">"for "
                    <select id="target-for" on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<u32>() { candidate_for.set(v); } }>
                        {crate::resource_data::for_choices(saved_for).into_iter().map(|(secs, label)| view! { <option value=secs.to_string() selected=move || candidate_for.get() == secs>{label}</option> }).collect_view()}
                    </select>
                </label>
                <Allowed role=Role::Editor what="Saving a target">
                    <button id="target-save" class="btn" type="button"
                        disabled=move || save.pending().get() || !dirty()
                        on:click=move |_| submit.with_value(|s| s())>
                        {move || if save.pending().get() { "Saving…" } else { "Save target" }}
                    </button>
                </Allowed>
                {reset_button}
            </div>
            <crate::pages::resource_suggest::SuggestTargets
                ask=suggest
                unit=data.metric.unit.clone()
                comparator=effective.as_ref().map_or(engine::model::Comparator::Le, |t| t.comparator)
                candidate
            />
            <p id="backtest" class="backtest" aria-live="polite">{readout}</p>
            <p id="target-error" class="field-error" role="alert">{move || error.get()}</p>
            <p id="target-notice" class="notice" role="status">{move || notice.get()}</p>
        </section>
    }
    .into_any();
    view! { {head} {chart} {editor} {host_table} }
}
