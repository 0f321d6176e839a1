//! The overview: one card per watched resource — live value, sparkline, target and
//! status with its reason.
//!
//! The server renders the cards from [`get_overview`]; after hydration the websocket's
//! frames replace that data, so the first client render matches the server's exactly.

use leptos::prelude::*;

use crate::live::{Card, LiveState, Overview};

/// The overview as of now, for the first render.
#[server(endpoint = "overview", output = crate::codec::Json)]
pub async fn get_overview() -> Result<Overview, crate::error::AppError> {
    Ok(crate::backend::backend()?.overview())
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let live = expect_context::<LiveState>();
    let initial = Resource::new(|| (), |_| get_overview());
    // The live overview often arrives before this page's code does (the page is a lazily
    // loaded chunk). Hydrating with it instead of the server's data would build a different
    // DOM (a card that gained its "Top:" line meanwhile, say) and stop the page; live data
    // takes over right after hydration.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <section class="page-head">
            <h1>"Overview"</h1>
            <p class="muted">"Every watched resource of this host against its target."</p>
        </section>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading resources…"</p> }>
            {move || {
                let data = match live.overview.get().filter(|_| hydrated.get()) {
                    Some(overview) => Ok(overview),
                    None => initial.get().unwrap_or_else(|| Ok(Overview::default())),
                };
                match data {
                    Err(err) => view! {
                        <section class="error-state" role="alert">
                            <h2>"Could not load the resources"</h2>
                            <p>{err.to_string()}</p>
                        </section>
                    }
                    .into_any(),
                    Ok(overview) if overview.cards.is_empty() => view! {
                        <section class="empty-state">
                            <h2>"No resources yet"</h2>
                            <p>"The host collector has not reported any resource. Cards for CPU, memory, disks and network appear here once it does."</p>
                        </section>
                    }
                    .into_any(),
                    Ok(overview) => view! {
                        {overview.notices.iter().map(|notice| view! {
                            <p class="notice-warn" id="server-notice" role="alert">{notice.clone()}</p>
                        }).collect_view()}
                        <div class="cards" data-updated=overview.at_unix_ms>
                            {overview.cards.into_iter().map(|card| view! { <ResourceCard card/> }).collect_view()}
                        </div>
                    }
                    .into_any(),
                }
            }}
        </Transition>
    }
}

#[component]
fn ResourceCard(card: Card) -> impl IntoView {
    // Before the first verdict the seed's initial NotOptimized would read as an alarm; say
    // what is really going on instead.
    let (status, badge, reason) = match (&card.target, card.evaluated) {
        (None, _) => (
            "none",
            "No target",
            "Set a target on the resource page to evaluate it.".to_owned(),
        ),
        // Breaching, not yet for long enough to count: say so, and for how long (also
        // before the first verdict, which a breach in progress holds back).
        (Some(_), _) if card.pending => ("pending", "Breaching…", card.reason.clone()),
        // Too little data yet: the status says how much ("not enough data yet (12 of 60
        // s)"), in the backtest's words.
        (Some(_), false) if card.reason.starts_with("not enough data") => {
            ("evaluating", "Evaluating…", card.reason.clone())
        }
        (Some(_), false) => (
            "evaluating",
            "Evaluating…",
            "Collecting samples for the first evaluation.".to_owned(),
        ),
        (Some(_), true) => (
            card.status.as_str(),
            card.status.label(),
            card.reason.clone(),
        ),
    };
    let value = card
        .value
        .map(|v| crate::format::reading(f64::from(v), &card.unit))
        .unwrap_or_else(|| "no data".into());
    let target_text = card
        .target
        .as_ref()
        .map(|t| format!("Target: {}", t.text))
        .unwrap_or_else(|| "No target set".into());
    view! {
        <article class=format!("card status-{status}") data-resource=card.id.clone()>
            <header class="card-head">
                <h2 class="card-title" title=card.id.clone()>
                    <a href=crate::base::href(&format!("/resource?id={}", crate::pages::resource::urlencode(&card.id)))>{card.name.clone()}</a>
                </h2>
                <span class=format!("badge badge-{status}") title=reason.clone()>{badge}</span>
            </header>
            <p class="card-value">
                <span class="value" data-metric=card.metric.clone()>{value}</span>
                <span class="metric-name">{card.metric.replace('_', " ")}</span>
            </p>
            <Sparkline card=card.clone()/>
            <p class="card-target">{target_text}</p>
            <p class="card-reason">{reason}</p>
            {card.top.clone().map(|top| view! { <p class="card-top" title="Top process by this resource">"Top: "{top}</p> })}
        </article>
    }
}

const SPARK_W: f64 = 240.0;
const SPARK_H: f64 = 48.0;

/// A dependency-free SVG sparkline: gaps break the line, the target is a dashed line.
#[component]
fn Sparkline(card: Card) -> impl IntoView {
    let present = card.spark.iter().flatten().map(|v| f64::from(*v));
    let data_max = present.fold(0.0f64, f64::max);
    let top = if card.unit == "%" {
        100.0
    } else {
        let target = card.target.as_ref().map_or(0.0, |t| t.value);
        (data_max.max(target) * 1.15).max(1.0)
    };
    let n = card.spark.len().max(2) as f64 - 1.0;
    let x = |i: usize| i as f64 / n * SPARK_W;
    let y = |v: f64| SPARK_H - (v / top).clamp(0.0, 1.0) * SPARK_H;
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, value) in card.spark.iter().enumerate() {
        match value {
            Some(v) => current.push_str(&format!("{:.1},{:.1} ", x(i), y(f64::from(*v)))),
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    let target_y = card.target.as_ref().map(|t| y(t.value));
    let label = format!("Last {} samples of {}", card.spark.len(), card.metric);
    view! {
        <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none" role="img" aria-label=label>
            {target_y.map(|ty| view! { <line class="spark-target" x1="0" x2=SPARK_W y1=ty y2=ty/> })}
            {segments.into_iter().map(|points| view! { <polyline class="spark-line" points=points/> }).collect_view()}
        </svg>
    }
}
