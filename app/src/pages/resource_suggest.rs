//! "Suggest" on the target editor: three values for the metric's target (tight, balanced,
//! loose) from its history on disk, each with its backtest over that history
//! ([`engine::suggest`]). Choosing one moves the candidate (the chart's handle, the live
//! backtest); saving it is the editor's Save, a counted and audited change like any edit.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What Suggest answers: the choices and the history they come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedTargets {
    /// "the last 30 days", "the last 7 days", "the last day".
    pub from: String,
    /// How the history was judged ("judged on hourly maxima, an upper bound of p95").
    pub how: String,
    pub choices: Vec<engine::suggest::Suggestion>,
}

/// Tight, balanced and loose values for `metric` of `resource` (its saved target's shape,
/// or the default one), judged the way its backtest judges, over the longest history there
/// is: 30 days from the hour tier, else 7 days from 10-minute slots, else the day in
/// memory.
#[server(endpoint = "suggest_target", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn suggest_target(
    resource: String,
    metric: String,
) -> Result<SuggestedTargets, crate::error::AppError> {
    use crate::error::AppError;
    use crate::resource_data::ChartRange;
    use engine::history::ChartRequest;
    use engine::series::SeriesKey;

    crate::backend::require(crate::identity::Role::Viewer)?;
    let state = crate::backend::configuration()?.state();
    let found = engine::model::ResourceId::new(&resource)
        .ok()
        .and_then(|id| state.resources.get(&id).cloned())
        .ok_or_else(|| {
            AppError::not_found(format!("resource: no resource with id {resource:?}"))
        })?;
    let kind = found.metric(&metric).map(|m| m.kind).ok_or_else(|| {
        AppError::bad_request(
            "metric",
            format!("{metric:?} is not a metric of {resource}"),
        )
    })?;
    let shape = found
        .target
        .clone()
        .filter(|t| t.metric == metric)
        .unwrap_or_else(|| crate::resource_data::default_target(&metric, 0.0));
    let rule = engine::backtest::Rule::of(&found.settings);
    let history = crate::backend::history()?;
    let key = || vec![SeriesKey::new(resource.as_str(), metric.as_str())];
    // The longest range that is at least a quarter full: a week of data is judged as a
    // week, not as a sliver of a month.
    for range in [ChartRange::ThirtyDays, ChartRange::SevenDays] {
        let Some(step_ms) = range.stored_step_ms() else {
            continue;
        };
        let chart = match history.stored_chart(key(), range.millis(), step_ms).await {
            Ok(chart) => chart,
            // No history on disk (`--ephemeral`): the day in memory is all there is.
            Err(err) if err.is_client_error() => break,
            Err(err) => return Err(err),
        };
        let series = chart.series.into_iter().next().unwrap_or_default();
        let filled = series.means.iter().flatten().count();
        if filled * 4 >= series.means.len().max(1) && filled >= engine::suggest::MIN_VALUES {
            return judged(&series, step_ms, &shape, &rule, kind, range);
        }
    }
    let day = history.chart(&ChartRequest {
        keys: key(),
        span_ms: ChartRange::OneDay.millis(),
        per_minute: true,
    });
    let step_ms = day.grid.step_ms;
    let series = day.series.into_iter().next().unwrap_or_default();
    judged(&series, step_ms, &shape, &rule, kind, ChartRange::OneDay)
}

#[cfg(feature = "ssr")]
pub(crate) fn judged(
    series: &engine::history::Sampled,
    step_ms: i64,
    shape: &engine::model::Target,
    rule: &engine::backtest::Rule,
    kind: engine::model::MetricKind,
    range: crate::resource_data::ChartRange,
) -> Result<SuggestedTargets, crate::error::AppError> {
    let step_secs = u32::try_from((step_ms / 1000).max(1)).unwrap_or(u32::MAX);
    let judged = engine::backtest::judged_series(
        &series.means,
        &series.lows,
        &series.highs,
        shape.statistic,
        shape.comparator,
        step_secs,
    );
    let choices = engine::suggest::suggest(judged.values, step_secs, shape, rule, kind)
        .map_err(|err| crate::error::AppError::new(422, err.to_string()))?;
    Ok(SuggestedTargets {
        from: format!("the last {}", range.label()),
        how: judged.how,
        choices,
    })
}

/// Asks the server for the three choices of one target editor (a resource's or a fleet
/// level's).
pub type AskSuggestions = Action<(), Result<SuggestedTargets, crate::error::AppError>>;

/// Suggest for a resource's metric.
pub fn ask_for_resource(resource: String, metric: String) -> AskSuggestions {
    Action::new(move |_: &()| suggest_target(resource.clone(), metric.clone()))
}

/// The Suggest button and, once asked, the three choices; choosing one sets `candidate`.
#[component]
pub fn SuggestTargets(
    ask: AskSuggestions,
    unit: String,
    comparator: engine::model::Comparator,
    candidate: RwSignal<Option<f64>>,
) -> impl IntoView {
    let unit = StoredValue::new(unit);
    let choices = move || {
        ask.value().get().map(|answer| match answer {
            Ok(found) => {
                let buttons = found
                    .choices
                    .into_iter()
                    .map(|choice| {
                        let value = choice.value;
                        let chosen = move || candidate.get() == Some(value);
                        let label = format!(
                            "{} {} {}",
                            capitalized(&choice.name),
                            comparator.symbol(),
                            unit.with_value(|unit| crate::resource_data::exact_reading(value, unit))
                        );
                        let fired = fired_words(&choice);
                        view! {
                            <li>
                                <button type="button" class="suggestion" class:suggestion-chosen=chosen
                                    aria-pressed=move || chosen().to_string()
                                    data-choice=choice.name.clone()
                                    on:click=move |_| candidate.set(Some(value))>
                                    <span class="suggestion-value">{label}</span>
                                    <span class="suggestion-fired">{fired}</span>
                                    <span class="suggestion-basis muted">{choice.basis.clone()}</span>
                                </button>
                            </li>
                        }
                    })
                    .collect_view();
                view! {
                    <p class="muted">{format!("From {} ({}). Choose one to try it on the chart, then save it.", found.from, found.how)}</p>
                    <ul class="suggestions" id="suggestions">{buttons}</ul>
                }
                .into_any()
            }
            Err(err) => view! { <p id="suggest-error" class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <div class="suggest" id="suggest">
            <button id="suggest-button" class="btn btn-ghost" type="button"
                disabled=move || ask.pending().get()
                on:click=move |_| {
                    ask.dispatch(());
                }>
                {move || if ask.pending().get() { "Reading the history…" } else { "Suggest a target" }}
            </button>
            <div aria-live="polite">{choices}</div>
        </div>
    }
}

/// "would have fired 3 times (2.1 a week), 1.4 % of the time" or "would never have fired".
fn fired_words(choice: &engine::suggest::Suggestion) -> String {
    let result = &choice.backtest;
    match result.breaches {
        0 => "would never have fired".to_owned(),
        1 => format!(
            "would have fired once, {} of the time",
            share(result.breach_fraction)
        ),
        n => format!(
            "would have fired {n} times ({:.1} a week), {} of the time",
            choice.breaches_per_week,
            share(result.breach_fraction)
        ),
    }
}

fn share(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
