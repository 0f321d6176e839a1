//! Before / after: the seed's benchmark table, live. One row per target edit, manual mark
//! or optimizer action — resource, before, after, target, change (better, worse or no
//! change; for an action its verdict's), outcome (kept or rolled back, and why) —
//! computed once the window after the event has been measured.

use leptos::prelude::*;

use crate::components::access::Allowed;
use crate::identity::Role;
use crate::live::LiveState;
use crate::proof::ComparisonRow;

#[server(endpoint = "comparisons", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn list_comparisons() -> Result<Vec<ComparisonRow>, crate::error::AppError> {
    Ok(crate::backend::proof()?.comparisons())
}

const MAX_LABEL: usize = 120;

/// Adds a manual mark ("deployed v2.3") that opens a before/after on a resource.
#[server(endpoint = "add_mark", output = crate::codec::Json)]
pub async fn add_mark(resource: String, label: String) -> Result<(), crate::error::AppError> {
    use crate::backend::{configuration, proof, require};
    use crate::error::AppError;
    use engine::error::EngineError;

    let actor = require(crate::identity::Role::Editor)?;
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL {
        return Err(AppError::invalid(
            "label",
            format!(
                "must be 1–{MAX_LABEL} characters and not blank, got {} characters",
                label.chars().count()
            ),
        ));
    }
    // It reaches the audit log, the report's HTML and CSV and the page: nothing invisible.
    if let Err(message) = engine::text::check_free_text("label", label) {
        return Err(AppError::new(422, message).with_field("label"));
    }
    let id = engine::model::ResourceId::new(&resource)?;
    if !configuration()?.state().resources.contains_key(&id) {
        return Err(EngineError::UnknownResource { id }.into());
    }
    proof()?.add_mark(&id, label, &actor)
}

#[component]
#[allow(clippy::too_many_lines)] // 134 lines today; split before it grows
pub fn ProofPage() -> impl IntoView {
    let live = expect_context::<LiveState>();
    let refresh = RwSignal::new(0u32);
    let rows = Resource::new(move || refresh.get(), |_| list_comparisons());
    let mark = ServerAction::<AddMark>::new();
    let mark_error = RwSignal::new(None::<String>);
    let mark_notice = RwSignal::new(None::<String>);
    let resource = RwSignal::new(String::from("cpu"));
    let label = RwSignal::new(String::new());

    // Pending rows finish on their own: re-read every few seconds while any is measuring.
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                let measuring = rows
                    .get_untracked()
                    .and_then(|r| r.ok())
                    .is_some_and(|rows| rows.iter().any(|r| r.pending));
                if measuring {
                    refresh.update(|n| *n += 1);
                }
            },
            std::time::Duration::from_secs(3),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    }

    Effect::new(move |_| {
        let Some(result) = mark.value().get() else {
            return;
        };
        match result {
            Ok(()) => {
                mark_error.set(None);
                mark_notice.set(Some(
                    "Mark added; its before/after appears when the window after it is measured."
                        .into(),
                ));
                label.set(String::new());
                refresh.update(|n| *n += 1);
            }
            Err(err) => {
                mark_notice.set(None);
                mark_error.set(Some(err.to_string()));
            }
        }
    });

    // The live overview may arrive before this page's code does (it is a lazily loaded
    // chunk); rendering its resources during hydration would not match the server's
    // markup and stop the page. The list switches to the live one right after.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let resource_options = move || {
        live.overview
            .get()
            .filter(|_| hydrated.get())
            .map(|o| {
                o.cards
                    .into_iter()
                    .filter(|c| c.target.is_some())
                    .map(|c| (c.id, c.name))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| {
                vec![
                    ("cpu".into(), "CPU".into()),
                    ("memory".into(), "Memory".into()),
                ]
            })
    };

    view! {
        <section class="page-head">
            <h1>"Before / after"</h1>
            <p class="muted">"Every optimizer action and mark is judged by the window after it against the baseline before it; an action shows its verdict and whether it was kept or rolled back. A target edit moves the threshold, not the system: it shows the threshold's change, with the values around it."</p>
        </section>
        <Allowed role=Role::Editor what="Adding a mark">
        <form
            class="settings-form mark-form"
            // Before hydration a submit does nothing (a GET would put the fields,
            // a password too, in the URL).
            method="dialog"
            on:submit=move |ev| {
                ev.prevent_default();
                mark.dispatch(AddMark { resource: resource.get_untracked(), label: label.get_untracked() });
            }
        >
            <label class="setting">
                <span>"Resource"</span>
                <select id="mark-resource" on:change=move |ev| resource.set(event_target_value(&ev))>
                    {move || {
                        resource_options()
                            .into_iter()
                            .map(|(id, name)| {
                                let selected = id == resource.get_untracked();
                                view! { <option value=id selected=selected>{name}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label class="setting">
                <span>"Mark"</span>
                <input
                    id="mark-label"
                    type="text"
                    placeholder="deployed v2.3"
                    maxlength=MAX_LABEL.to_string()
                    prop:value=move || label.get()
                    on:input=move |ev| label.set(event_target_value(&ev))
                    aria-describedby="mark-error"
                />
            </label>
            <button id="mark-add" class="btn" type="submit" disabled=move || mark.pending().get()>"Add mark"</button>
        </form>
        </Allowed>
        <p id="mark-error" class="field-error" role="alert">{move || mark_error.get()}</p>
        <p id="mark-notice" class="notice" role="status">{move || mark_notice.get()}</p>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading comparisons…"</p> }>
            {move || {
                rows.get()
                    .map(|result| match result {
                        Err(err) => view! {
                            <section class="error-state" role="alert">
                                <h2>"Could not load the comparisons"</h2>
                                <p>{err.to_string()}</p>
                            </section>
                        }
                        .into_any(),
                        Ok(rows) if rows.is_empty() => view! {
                            <section class="empty-state">
                                <h2>"Nothing to compare yet"</h2>
                                <p>"Edit a target on a resource page, or add a mark above (for example after a deploy); its before/after appears here."</p>
                            </section>
                        }
                        .into_any(),
                        Ok(rows) => view! { <ComparisonTable rows/> }.into_any(),
                    })
            }}
        </Transition>
    }
}

#[component]
fn ComparisonTable(rows: Vec<ComparisonRow>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="proof-table stack">
                <thead>
                    <tr>
                        <th scope="col">"Resource"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Before"</th>
                        <th scope="col">"After"</th>
                        <th scope="col">"Target"</th>
                        <th scope="col">"Change"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"Before vs after"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|row| view! { <ComparisonRowView row/> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// The row's `data-state`: "pending", "rolled-back" (never "met": the change is gone),
/// "met" or "missed".
fn row_state(row: &ComparisonRow) -> &'static str {
    if row.pending {
        "pending"
    } else if row.outcome.as_deref() == Some(crate::proof::OUTCOME_ROLLED_BACK) {
        "rolled-back"
    } else {
        match row.target_met {
            None => "pending",
            Some(true) => "met",
            Some(false) => "missed",
        }
    }
}

/// One comparison. Each cell carries its column's name (`data-label`), shown above the
/// value when a narrow screen stacks the cells.
#[component]
fn ComparisonRowView(row: ComparisonRow) -> AnyView {
    use crate::proof::{direction_label, KIND_ACTION, KIND_THRESHOLD, OUTCOME_KEPT};

    let state = row_state(&row);
    let (symbol, word) = direction_label(&row.direction);
    let change_class = if row.direction.is_empty() || row.pending {
        "num".to_owned()
    } else {
        format!("num dir-{}", row.direction)
    };
    let change = if row.pending {
        format!(
            "measuring until {} UTC",
            crate::format::utc_time(row.ready_at_unix_ms)
        )
    } else if row.change_text.is_empty() {
        "n/a".to_owned()
    } else {
        row.change_text.clone()
    };
    let judged = (!row.pending && !word.is_empty()).then(|| {
        view! {
            <br/>
            <span class="dir-word"><span aria-hidden="true">{symbol}" "</span>{word}</span>
        }
    });
    let applied = row
        .applied
        .clone()
        .map(|applied| view! { <br/><span class="applied">{applied}</span> });
    let outcome = if row.pending {
        view! { <span class="muted">"—"</span> }.into_any()
    } else if row.kind == KIND_ACTION {
        let headline = match row.outcome.as_deref() {
            Some(OUTCOME_KEPT) => OUTCOME_KEPT.to_owned(),
            Some(outcome) => match row.outcome_why.as_deref() {
                Some(why) if !why.is_empty() => format!("{outcome}: {why}"),
                _ => outcome.to_owned(),
            },
            None => row
                .outcome_why
                .clone()
                .unwrap_or_else(|| "no verdict recorded".to_owned()),
        };
        let headline_class = match row.outcome.as_deref() {
            Some(OUTCOME_KEPT) => "outcome outcome-kept",
            Some(_) => "outcome outcome-rolled-back",
            None => "outcome muted",
        };
        let kept_why = match row.outcome.as_deref() {
            Some(OUTCOME_KEPT) => row.outcome_why.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let verdict = row
            .verdict
            .clone()
            .map(|verdict| view! { <span class="verdict">"verdict: "{verdict}</span> });
        let evidence = row
            .evidence
            .clone()
            .map(|evidence| view! { <br/><span class="evidence">{evidence}</span> });
        view! {
            <strong class=headline_class title=kept_why>{headline}</strong>
            <small class="muted">{verdict}{evidence}</small>
        }
        .into_any()
    } else if row.kind == KIND_THRESHOLD {
        view! { <span>"threshold change"</span> }.into_any()
    } else {
        view! { <span class="muted">"—"</span> }.into_any()
    };
    view! {
        <tr class=format!("proof-{state}") data-state=state data-kind=row.kind.clone() title=row.reason.clone()>
            <td data-label="Resource">{row.resource_name.clone()}</td>
            <td data-label="Event">
                {row.event.clone()}
                {applied}
                <br/><small class="muted">{crate::format::utc_time(row.at_unix_ms)}" UTC"</small>
            </td>
            <td class="num" data-label="Before">{row.before.clone().unwrap_or_else(|| "—".into())}</td>
            <td class="num" data-label="After">{row.after.clone().unwrap_or_else(|| "—".into())}</td>
            <td data-label="Target">{row.target.clone()}<br/><small class="muted">{row.reason.clone()}</small></td>
            <td class=change_class data-label="Change">{change}{judged}</td>
            <td class="outcome-cell" data-label="Outcome">{outcome}</td>
            <td data-label="Before vs after">
                <Overlay row=row.clone()/>
                {(!row.pending).then(|| view! { <WhatElseMoved at_ms=row.at_unix_ms/> })}
            </td>
        </tr>
    }
    // Type-erased: the row's full view type is too deep for the compiler to lay out.
    .into_any()
}

/// Which series moved most around the event (the event's own included), asked for when
/// the row's disclosure is first opened: the page stays one request however many rows.
#[component]
fn WhatElseMoved(at_ms: i64) -> impl IntoView {
    let ask = Action::new(|at: &i64| crate::changed::moved_around(*at));
    let opened = move |_| {
        if ask.version().get_untracked() == 0 && !ask.pending().get_untracked() {
            ask.dispatch(at_ms);
        }
    };
    let answer = move || {
        match ask.value().get() {
        None => view! { <p class="muted" role="status">"Looking…"</p> }.into_any(),
        Some(Err(err)) => {
            view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any()
        }
        Some(Ok(moved)) if moved.is_empty() => view! {
            <p class="muted">"No series moved notably around it (in the last day's history in memory)."</p>
        }
        .into_any(),
        Some(Ok(moved)) => crate::changed::moved_list(moved).into_any(),
    }
    };
    view! {
        <details class="row-changed" on:toggle=opened>
            <summary>"What moved around it"</summary>
            {answer}
        </details>
    }
}

const OVERLAY_W: f64 = 160.0;
const OVERLAY_H: f64 = 44.0;

/// The before window (muted) and the after window (accent) drawn over each other on the
/// same scale, with the target as a dashed line: the benchmark row as a picture.
#[component]
fn Overlay(row: ComparisonRow) -> impl IntoView {
    if row.pending {
        return view! { <span class="muted">"—"</span> }.into_any();
    }
    let top = if row.unit == "%" {
        100.0
    } else {
        row.before_series
            .iter()
            .chain(row.after_series.iter())
            .flatten()
            .fold(row.target_value, |m, v| m.max(f64::from(*v)))
            * 1.15
    }
    .max(1e-9);
    let y = move |v: f64| OVERLAY_H - (v / top).clamp(0.0, 1.0) * OVERLAY_H;
    let line = move |series: &[Option<f32>]| -> String {
        let n = (series.len().max(2) - 1) as f64;
        series
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| format!("{:.1},{:.1}", i as f64 / n * OVERLAY_W, y(f64::from(v))))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (before, after) = (line(&row.before_series), line(&row.after_series));
    let target_y = y(row.target_value);
    let label = format!(
        "Before (grey) and after (coloured) windows of {}; dashed line: target",
        row.resource_name
    );
    view! {
        <svg class="overlay" viewBox=format!("0 0 {OVERLAY_W} {OVERLAY_H}") preserveAspectRatio="none" role="img" aria-label=label>
            <line class="spark-target" x1="0" x2=OVERLAY_W y1=target_y y2=target_y/>
            <polyline class="overlay-before" points=before/>
            <polyline class="overlay-after" points=after/>
        </svg>
    }
    .into_any()
}
