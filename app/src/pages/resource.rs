//! Resource detail: a large chart of one metric over 5 min / 1 h / 24 h, the target line
//! and shaded breaches, and visual target editing — drag the line, or use the slider or
//! number field — with a live backtest of the candidate before it is saved.

use leptos::prelude::*;

use crate::components::access::Allowed;
use crate::identity::Role;
use leptos_router::hooks::use_query_map;

use crate::live::LiveState;
use crate::pages::resource_chart::ChartCanvas;
pub use crate::resource_data::TargetSaved;
use crate::resource_data::{backtest_text, ChartRange, SeriesView};

/// One metric of one resource over a range. A GET, so the data URL is shareable and
/// cacheable like the page URL.
#[server(endpoint = "series", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
#[allow(clippy::too_many_lines)] // 151 lines today; split before it grows
pub async fn get_series(
    resource: String,
    metric: Option<String>,
    #[server(default)] range: String,
    #[server(default)] compare: Option<String>,
) -> Result<SeriesView, crate::error::AppError> {
    use crate::error::AppError;
    use engine::history::ChartRequest;
    use engine::series::SeriesKey;

    // No range in the URL: one that fits the history there is (decided below).
    let named_range = if range.trim().is_empty() {
        None
    } else {
        Some(ChartRange::parse(&range).map_err(|message| AppError::new(400, message))?)
    };
    let history = crate::backend::history()?;
    let state = crate::backend::configuration()?.state();
    let found = engine::model::ResourceId::new(&resource)
        .ok()
        .and_then(|id| state.resources.get(&id).cloned());
    let Some(found) = found else {
        return Err(AppError::not_found(format!(
            "resource: no resource with id {resource:?}"
        )));
    };
    let metric = match metric.filter(|m| !m.is_empty()) {
        Some(m) => m,
        None => found
            .target
            .as_ref()
            .map(|t| t.metric.clone())
            .or_else(|| found.metrics.first().map(|m| m.name.clone()))
            .unwrap_or_default(),
    };
    let Some(kind) = found.metric(&metric).map(|m| m.kind) else {
        let known: Vec<&str> = found.metrics.iter().map(|m| m.name.as_str()).collect();
        return Err(AppError::bad_request(
            "metric",
            format!(
                "{metric:?} is not a metric of {resource} (known: {})",
                known.join(", ")
            ),
        ));
    };

    let stored_units = history.units(&resource);
    let unit_of = |name: &str| {
        stored_units
            .get(name)
            .cloned()
            .or_else(|| found.metric(name).map(|m| m.kind.unit().to_owned()))
    };
    let unit = unit_of(&metric).unwrap_or_else(|| kind.unit().to_owned());
    let comparable: Vec<String> = found
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .filter(|name| *name != metric && unit_of(name).as_deref() == Some(unit.as_str()))
        .collect();
    let mut overlay_metrics: Vec<String> = Vec::new();
    for other in compare
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        if overlay_metrics.len() == crate::resource_data::MAX_OVERLAYS {
            return Err(AppError::bad_request(
                "compare",
                format!(
                    "at most {} other metrics can share a chart",
                    crate::resource_data::MAX_OVERLAYS
                ),
            ));
        }
        if !comparable.iter().any(|m| m == other) {
            return Err(AppError::bad_request(
                "compare",
                format!(
                    "{other:?} cannot be drawn with {metric} of {resource}: it must be another metric of the same resource in the same unit ({})",
                    if comparable.is_empty() { "none here".to_owned() } else { comparable.join(", ") }
                ),
            ));
        }
        if !overlay_metrics.iter().any(|m| m == other) {
            overlay_metrics.push(other.to_owned());
        }
    }
    let range = match named_range {
        Some(range) => range,
        None => ChartRange::fitting(history_ms(
            history.as_ref(),
            SeriesKey::new(resource.as_str(), metric.as_str()),
        )),
    };
    let per_minute = range.per_minute();
    let keys: Vec<SeriesKey> = std::iter::once(&metric)
        .chain(&overlay_metrics)
        .map(|m| SeriesKey::new(resource.as_str(), m.as_str()))
        .collect();
    let chart = match range.stored_step_ms() {
        Some(step_ms) => history.stored_chart(keys, range.millis(), step_ms).await?,
        None => history.chart(&ChartRequest {
            keys,
            span_ms: range.millis(),
            per_minute,
        }),
    };
    let grid = chart.grid;
    let mut series = chart.series.into_iter();
    let main = series.next().unwrap_or_default();
    let overlays = overlay_metrics
        .into_iter()
        .zip(series)
        .map(|(metric, sampled)| crate::resource_data::Overlay {
            metric,
            means: sampled.means,
        })
        .collect();
    let (lows, highs) = if per_minute {
        (main.lows, main.highs)
    } else {
        (Vec::new(), Vec::new())
    };
    let range_end = grid.end_ms();
    let events = crate::backend::proof()?
        .comparisons()
        .into_iter()
        .filter(|row| {
            row.resource_id == resource && (grid.start_ms..range_end).contains(&row.at_unix_ms)
        })
        .map(|row| crate::resource_data::ChartEvent {
            at_unix_ms: row.at_unix_ms,
            label: row.event,
        })
        .collect();
    // Where the metric usually sits and when it left, over what is loaded.
    // The same band as the overview card's count for the last hour.
    let seasonality = history.seasonality(&SeriesKey::new(resource.as_str(), metric.as_str()));
    let band = engine::anomaly::seasonal_band(
        &main.means,
        grid.start_ms,
        grid.step_ms,
        &seasonality,
        &engine::anomaly::BandSettings::default(),
    );
    Ok(SeriesView {
        events,
        resource_id: resource,
        resource_name: found.name.clone(),
        metrics: found.metrics.iter().map(|m| m.name.clone()).collect(),
        target: found.target.clone().filter(|t| t.metric == metric),
        rule: engine::backtest::Rule::of(&found.settings),
        metric,
        unit,
        kind,
        range,
        start_ms: grid.start_ms,
        step_ms: grid.step_ms,
        means: main.means,
        lows,
        highs,
        overlays,
        comparable,
        crossing: None,
        band,
    })
}

/// How much history `key` has within the last day, to the minute: from its oldest minute
/// with data to the newest (0 without any), so a page opened without a range fits it.
#[cfg(feature = "ssr")]
fn history_ms(history: &dyn crate::backend::History, key: engine::series::SeriesKey) -> i64 {
    let day = history.chart(&engine::history::ChartRequest {
        keys: vec![key],
        span_ms: ChartRange::OneDay.millis(),
        per_minute: true,
    });
    let first = day
        .series
        .first()
        .and_then(|s| s.means.iter().position(Option::is_some));
    first.map_or(0, |i| {
        day.grid.end_ms() - (day.grid.start_ms + i as i64 * day.grid.step_ms)
    })
}

/// Sets the target value (and optionally its `for` duration) of a resource metric. A
/// metric without a target gets the default shape (≤, p95, for 5 m). `value` is text so
/// that a non-number gets a clear message instead of a decoding error.
#[server(endpoint = "set_target", output = crate::codec::Json)]
pub async fn set_target(
    resource: String,
    metric: String,
    value: String,
    #[server(default)] for_secs: Option<u32>,
) -> Result<TargetSaved, crate::error::AppError> {
    use crate::backend::{apply, require};
    use crate::error::AppError;
    use engine::changes::Mutation;
    use engine::model::{ResourceId, TargetEdit};

    let actor = require(crate::identity::Role::Editor)?;
    let value: f64 = value.trim().parse().map_err(|_| {
        AppError::invalid("target.value", format!("must be a number, got {value:?}"))
    })?;
    let id = ResourceId::new(&resource)?;
    let edit = TargetEdit {
        metric,
        value: Some(value),
        for_secs,
    };
    let record = apply(Mutation::EditTarget { id, edit }, &actor).await?;
    TargetSaved::of(&record).ok_or_else(|| AppError::new(500, "the target edit left no target"))
}

#[component]
pub fn ResourcePage() -> impl IntoView {
    let query = use_query_map();
    let id = move || query.read().get("id").unwrap_or_default();
    let metric = move || query.read().get("metric");
    // Empty: the server picks the range that fits the history there is.
    let range = move || query.read().get("range").unwrap_or_default();
    let compare = move || query.read().get("compare").filter(|c| !c.is_empty());
    let data = Resource::new(
        move || (id(), metric(), range(), compare()),
        |(id, metric, range, compare)| get_series(id, metric, range, compare),
    );

    view! {
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the chart…"</p> }>
            {move || {
                data.get()
                    .map(|result| match result {
                        Ok(view) => view! { <SeriesEditor view/> }.into_any(),
                        Err(err) => super::load_error(
                            "Resource",
                            "Could not load this resource",
                            err.to_string(),
                            ("/", "Back to the overview"),
                        ),
                    })
            }}
        </Transition>
    }
}

fn page_href(id: &str, metric: &str, range: ChartRange, compare: &[String]) -> String {
    let mut href = format!(
        "/resource?id={}&metric={}&range={}",
        urlencode(id),
        urlencode(metric),
        range.as_str()
    );
    if !compare.is_empty() {
        href.push_str("&compare=");
        href.push_str(&urlencode(&compare.join(",")));
    }
    crate::base::href(&href)
}

pub use crate::format::urlencode;

#[component]
fn SeriesEditor(view: SeriesView) -> impl IntoView {
    let live = expect_context::<LiveState>();
    let series = RwSignal::new(view.clone());
    let saved_value = RwSignal::new(view.target.as_ref().map(|t| t.value));
    let candidate = RwSignal::new(view.target.as_ref().map(|t| t.value));
    let saved_for = RwSignal::new(view.target.as_ref().map_or(300, |t| t.for_secs));
    let candidate_for = RwSignal::new(saved_for.get_untracked());
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let hover = RwSignal::new(None::<String>);
    let save = ServerAction::<SetTarget>::new();

    // Live samples of this metric slide the raw ranges forward.
    Effect::new(move |_| {
        let Some(overview) = live.overview.get() else {
            return;
        };
        let series_now = series.get_untracked();
        let card = overview
            .cards
            .iter()
            .find(|c| c.id == series_now.resource_id && c.metric == series_now.metric);
        if let Some(card) = card {
            let (value, crossing) = (card.value, card.crossing);
            series.update(|s| {
                s.push_live(overview.at_unix_ms, value);
                // The card's crossing is its target's: drawn on that metric's chart only.
                s.crossing = crossing.filter(|_| s.target.is_some());
            });
        }
    });

    Effect::new(move |_| {
        let Some(result) = save.value().get() else {
            return;
        };
        match result {
            Ok(saved) => {
                saved_value.set(Some(saved.target.value));
                saved_for.set(saved.target.for_secs);
                series.update(|s| {
                    s.target = Some(saved.target.clone());
                    s.events.push(crate::resource_data::ChartEvent {
                        at_unix_ms: saved.at_unix_ms,
                        label: format!("target edit (change #{})", saved.change),
                    });
                });
                error.set(None);
                notice.set(Some(crate::resource_data::saved_notice(
                    saved.change,
                    saved.snapshot,
                )));
            }
            Err(err) => {
                notice.set(None);
                error.set(Some(err.to_string()));
            }
        }
    });

    let chart_top = move || series.read().chart_top(candidate.get());
    let bounds = move || series.read().bounds(chart_top());
    let step = if view.kind == engine::model::MetricKind::Utilization {
        "0.5"
    } else {
        "any"
    };
    let backtest = move || {
        candidate
            .get()
            .map(|c| backtest_text(&series.read(), c, candidate_for.get()))
            .unwrap_or_default()
    };
    let dirty = move || {
        candidate.get().is_some()
            && (candidate.get() != saved_value.get() || candidate_for.get() != saved_for.get())
    };
    // The sticky readout's first words: the candidate being dragged or typed, never the
    // sample under the pointer.
    let readout_value = move || {
        let s = series.read();
        match candidate.get() {
            Some(v) => format!(
                "Target {} {}{}",
                s.comparator().symbol(),
                crate::resource_data::exact_reading(v, &s.unit),
                if dirty() { " (not saved)" } else { "" }
            ),
            None => "No target value".to_owned(),
        }
    };
    // The saved `for` is offered even when it is no preset, so the control shows it.
    let for_options = crate::resource_data::for_choices(saved_for.get_untracked());

    let id = view.resource_id.clone();
    let metric = view.metric.clone();
    let submit = {
        let (id, metric) = (id.clone(), metric.clone());
        move || {
            let value = candidate
                .get_untracked()
                .map(|v| v.to_string())
                .unwrap_or_default();
            save.dispatch(SetTarget {
                resource: id.clone(),
                metric: metric.clone(),
                value,
                for_secs: Some(candidate_for.get_untracked()),
            });
        }
    };
    let submit_on_enter = submit.clone();
    let submit = StoredValue::new(submit);

    let compared: Vec<String> = view.overlays.iter().map(|o| o.metric.clone()).collect();
    let ranges = ChartRange::ALL
        .into_iter()
        .map(|r| {
            let href = page_href(&view.resource_id, &view.metric, r, &compared);
            let current = r == view.range;
            view! {
                <a class="chip" class:chip-active=current aria-current=current.then_some("true") href=href>{r.label()}</a>
            }
        })
        .collect_view();
    let metric_links = view
        .metrics
        .iter()
        .map(|m| {
            // Another metric may have another unit: its page starts without overlays.
            let href = page_href(&view.resource_id, m, view.range, &[]);
            let current = *m == view.metric;
            view! {
                <a class="chip" class:chip-active=current aria-current=current.then_some("true") href=href>{engine::model::metric_label(m)}</a>
            }
        })
        .collect_view();
    // Toggling a chip adds or removes that metric from the overlays (at most three).
    let compare_links = view
        .comparable
        .iter()
        .map(|m| {
            let on = compared.contains(m);
            let next: Vec<String> = if on {
                compared.iter().filter(|c| *c != m).cloned().collect()
            } else {
                compared.iter().cloned().chain([m.clone()]).collect()
            };
            let full = !on && compared.len() >= crate::resource_data::MAX_OVERLAYS;
            let href = page_href(&view.resource_id, &view.metric, view.range, &next);
            let label = engine::model::metric_label(m);
            if full {
                view! {
                    <span class="chip chip-disabled" title="At most three metrics can be compared at once">{label}</span>
                }
                .into_any()
            } else {
                view! {
                    <a class="chip" class:chip-active=on aria-pressed=on.to_string() href=href data-compare=m.clone()>{label}</a>
                }
                .into_any()
            }
        })
        .collect_view();
    let has_comparable = !view.comparable.is_empty();
    let legend = (!view.overlays.is_empty()).then(|| {
        let items = std::iter::once(view.metric.clone())
            .chain(compared.iter().cloned())
            .enumerate()
            .map(|(i, m)| view! { <li class=format!("legend-item series-{i}")>{engine::model::metric_label(&m)}</li> })
            .collect_view();
        view! { <ul class="chart-legend" id="chart-legend" aria-label="Lines on the chart">{items}</ul> }
    });
    let export_base = crate::base::href(&format!(
        "/api/export/{}/{}",
        urlencode(&view.resource_id),
        urlencode(&view.metric)
    ));
    let range_param = view.range.as_str();
    // The resource's standing, live: its card's status and reason (a pending breach says
    // for how long). Only after hydration, so the first client render matches the server's.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let resource_for_status = view.resource_id.clone();
    let status_line = move || {
        if !hydrated.get() {
            return None;
        }
        let overview = live.overview.get()?;
        let card = overview
            .cards
            .iter()
            .find(|c| c.id == resource_for_status)?;
        // The target's state in the overview's words and glyph, then what the optimizer
        // is doing about it, if anything.
        let state = card.target_state;
        let words = match state {
            engine::model::TargetState::NoTarget => "nothing is evaluated.".to_owned(),
            // Too little data yet: the status says how much, as the backtest does.
            engine::model::TargetState::Evaluating
                if !card.reason.starts_with("not enough data") =>
            {
                "collecting samples for the first evaluation.".to_owned()
            }
            _ => card.reason.clone(),
        };
        let optimizer = card.optimizer.as_ref().map(|o| {
            view! { " · "{crate::status::optimizer_line(o, overview.at_unix_ms)} }
        });
        // When the metric trends toward its target: the card's time-to-breach.
        let trend = card.forecast.clone().map(
            |forecast| view! { <span class="resource-forecast">" · Trend: "{forecast}</span> },
        );
        Some(
            view! {
                <span class=format!("state state-{}", state.as_str())>
                    <span class="state-glyph" aria-hidden="true">{crate::status::glyph(state)}</span>
                    " "
                    <span class="state-word">{state.label()}</span>
                </span>
                ": "
                {words}
                {optimizer}
                {trend}
            }
            .into_any(),
        )
    };

    // The chart, the sticky readout (the candidate, its backtest and Save) and the fields
    // share one box: between the chart and the fields, the readout stays in view at the
    // bottom of the window while the chart is, and never covers the fields.
    let workspace = view! {
        <div class="target-workspace">
        <section class="chart-card">
            <ChartCanvas series candidate hover/>
            {legend}
            <p id="anomalies" class="muted chart-note">{move || series.read().anomaly_text()}</p>
            <ol class="chart-events" aria-label="Events in this range, numbered as on the chart">
                {move || {
                    let s = series.read();
                    let items: Vec<_> = s
                        .events_in_order()
                        .into_iter()
                        .enumerate()
                        .map(|(k, e)| view! {
                            <li>
                                <span class="event-n">{(k + 1).to_string()}</span>
                                " "{crate::format::utc_time(e.at_unix_ms)}" UTC — "{e.label.clone()}
                            </li>
                        })
                        .collect();
                    items
                }}
            </ol>
            <p class="readout" aria-live="polite">{move || hover.get().unwrap_or_else(|| "Point at the chart to read a sample. Drag the target's handle ⇕ (or press and hold on its line) to move the target.".into())}</p>
        </section>
        <div class="target-sticky" id="target-readout" role="group" aria-label="The target being edited">
            <p class="target-sticky-value" id="target-readout-value">{readout_value}</p>
            <p id="backtest" class="backtest" aria-live="polite">{backtest}</p>
            <Allowed role=Role::Editor what="Saving a target">
                <button
                    id="target-save"
                    class="btn"
                    type="button"
                    disabled=move || save.pending().get() || !dirty()
                    on:click=move |_| submit.with_value(|submit| submit())
                >
                    {move || if save.pending().get() { "Saving…" } else { "Save target" }}
                </button>
            </Allowed>
            <p id="target-error" class="field-error" role="alert">{move || error.get()}</p>
            <p id="target-notice" class="notice" role="status">{move || notice.get()}</p>
        </div>
        <section class="target-editor" aria-labelledby="target-heading">
            <h2 id="target-heading">"Target"</h2>
            <p class="muted">
                {move || {
                    let s = series.read();
                    s.target
                        .as_ref()
                        .map(|t| format!("Saved: {}", t.describe_with_band(s.kind, s.rule.tolerance_pct)))
                        .unwrap_or_else(|| "No target saved for this metric yet.".into())
                }}
            </p>
            <div class="target-row">
                <input
                    type="range"
                    id="target-slider"
                    aria-label="Target value"
                    min=move || bounds().0
                    max=move || bounds().1
                    step=step
                    prop:value=move || candidate.get().unwrap_or(0.0).to_string()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            candidate.set(Some(v));
                        }
                    }
                />
                <label class="number-field">
                    <span class="sr-only">"Target value"</span>
                    <input
                        type="number"
                        id="target-value"
                        // Any value the engine accepts, 0.01 % too: the slider's half
                        // steps are for dragging, not a rule on what is typed.
                        step="any"
                        aria-describedby="target-error backtest"
                        aria-invalid=move || error.get().is_some().then_some("true")
                        prop:value=move || candidate.get().map(|v| v.to_string()).unwrap_or_default()
                        on:input=move |ev| {
                            match event_target_value(&ev).parse::<f64>() {
                                Ok(v) => candidate.set(Some(v)),
                                Err(_) => candidate.set(None),
                            }
                        }
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" {
                                submit_on_enter();
                            }
                        }
                    />
                    <span class="unit">{view.unit.clone()}</span>
                </label>
                <label class="for-field">
                    "for "
                    <select
                        id="target-for"
                        on:change=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<u32>() {
                                candidate_for.set(v);
                            }
                        }
                    >
                        {for_options
                            .into_iter()
                            .map(|(secs, label)| {
                                view! {
                                    <option value=secs.to_string() selected=move || candidate_for.get() == secs>
                                        {label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <crate::pages::resource_suggest::SuggestTargets
                ask=crate::pages::resource_suggest::ask_for_resource(view.resource_id.clone(), view.metric.clone())
                unit=view.unit.clone()
                comparator=view.target.as_ref().map_or(engine::model::Comparator::Le, |t| t.comparator)
                candidate
            />
        </section>
        </div>
    }
    .into_any();

    view! {
        <section class="page-head">
            <p class="crumbs"><a href=crate::base::href("/")>"Overview"</a>" / "{view.resource_id.clone()}</p>
            <h1>{view.resource_name.clone()}" — "{engine::model::metric_label(&view.metric)}</h1>
            <p id="resource-status" class="muted" role="status" aria-live="polite">{status_line}</p>
        </section>
        <div class="toolbar">
            <nav class="chips" aria-label="Metric">{metric_links}</nav>
            <nav class="chips" aria-label="Range">{ranges}</nav>
        </div>
        {has_comparable.then(|| view! {
            <div class="toolbar">
                <span class="muted">"Compare with "</span>
                <nav class="chips" aria-label="Compare with">{compare_links}</nav>
            </div>
        })}
        {workspace}
        <KindPanels resource_id=view.resource_id.clone()/>
        <crate::pages::resource_settings::ResourceSettingsPanel resource_id=view.resource_id.clone()/>
        <KindRemoval resource_id=view.resource_id.clone()/>
        <p class="exports">
            "Export: "
            <a href=format!("{export_base}.csv?range={range_param}") download="">"CSV"</a>
            " · "
            <a href=format!("{export_base}.svg?range={range_param}") download="">"SVG"</a>
        </p>
    }
}

/// The panels of the resource's kind (a database's queries, a cache's report, a load
/// balancer's backends), type-erased: one view type whatever the kind, which keeps the
/// page's render shallow.
#[component]
fn KindPanels(resource_id: String) -> impl IntoView {
    use crate::pages::{resource_cache, resource_lb, resource_queries};
    let kind = resource_id.split(':').next().unwrap_or_default().to_owned();
    match kind.as_str() {
        "database" => view! {
            <resource_queries::GroupPanel resource_id=resource_id.clone()/>
            <resource_queries::QueriesPanel resource_id=resource_id/>
        }
        .into_any(),
        "custom" => view! { <resource_cache::CacheGroupPanel resource_id=resource_id/> }.into_any(),
        "cache" => view! {
            <resource_cache::CacheGroupPanel resource_id=resource_id.clone()/>
            <resource_cache::CachePanel resource_id=resource_id/>
        }
        .into_any(),
        "lb" => view! { <resource_lb::LbPanel resource_id=resource_id/> }.into_any(),
        "fleet" => {
            let href = crate::base::href(&format!("/fleet?id={}", urlencode(&resource_id)));
            view! {
                <section class="panel" id="fleet-link">
                    <h2>"Hosts"</h2>
                    <p>"This is the share of the fleet's hosts past their targets. The hosts, their groups and their targets (default, group, host) are on the "<a href=href>"Fleet page"</a>"."</p>
                </section>
            }
            .into_any()
        }
        _ => ().into_any(),
    }
}

/// "Stop watching" for configured resources, and a database's connection panel.
#[component]
fn KindRemoval(resource_id: String) -> impl IntoView {
    use crate::pages::resource_queries::{DatabaseConnectionPanel, RemoveDatabase};
    let kind = resource_id.split(':').next().unwrap_or_default().to_owned();
    match kind.as_str() {
        "database" => view! {
            <DatabaseConnectionPanel resource_id=resource_id.clone()/>
            <RemoveDatabase resource_id=resource_id what="database"/>
        }
        .into_any(),
        "cache" => view! { <RemoveDatabase resource_id=resource_id what="cache"/> }.into_any(),
        "lb" => view! { <RemoveDatabase resource_id=resource_id what="load balancer"/> }.into_any(),
        _ => ().into_any(),
    }
}
