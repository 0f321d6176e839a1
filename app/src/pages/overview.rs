//! The overview answers "what is wrong" first: a summary strip (breaching, pending, the
//! optimizer acting, needing attention, no data, within target), then one card per
//! watched resource, grouped by kind and worst first — the target's state with its glyph,
//! the statistic its verdict judged as the big number (the live sample beside it), the
//! sparkline, the target, the reason and the next step.
//!
//! The server renders the cards from [`get_overview`]; after hydration the websocket's
//! frames replace that data, so the first client render matches the server's exactly.

use leptos::prelude::*;

use engine::model::{OptimizerPhase, TargetState};

use crate::live::{Card, LiveState, Overview};
use crate::status::{glyph, kind_of, optimizer_glyph, state_badge, Group};

/// The overview as of now, for the first render.
#[server(endpoint = "overview", output = crate::codec::Json)]
pub async fn get_overview() -> Result<Overview, crate::error::AppError> {
    Ok(crate::backend::live()?.overview())
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
                    Ok(overview) => {
                        let now_ms = overview.at_unix_ms;
                        let notices = overview
                            .notices
                            .iter()
                            .map(|notice| view! {
                                <p class="notice-warn" id="server-notice" role="alert">{notice.clone()}</p>
                            })
                            .collect_view();
                        let groups = arrange(overview.cards);
                        let summary = summary_strip(&groups);
                        let groups = groups
                            .into_iter()
                            .map(|(group, cards)| card_group(group, cards, now_ms))
                            .collect_view();
                        view! {
                            {notices}
                            {summary}
                            <div class="cards" data-updated=overview.at_unix_ms>{groups}</div>
                        }
                        .into_any()
                    }
                }
            }}
        </Transition>
    }
}

/// Where a card sorts: a resource whose optimizer needs a person first, then by its
/// target's state, worst first (`TargetState::rank`).
fn severity(card: &Card) -> u8 {
    let attention = card
        .optimizer
        .as_ref()
        .is_some_and(|o| o.phase == OptimizerPhase::NeedsAttention);
    if attention {
        0
    } else {
        1 + card.target_state.rank()
    }
}

/// The cards grouped by kind, in the order the page shows them.
///
/// The page answers "what is wrong" first, so a group with a worse card comes before one
/// without (a breaching database above four healthy host cards); groups equally bad keep
/// their fixed order (host, databases, caches, load balancers, fleets, custom). Inside a
/// group: worst first, then the kind's order (CPU, memory, disk, network), the name and
/// the id. Every key is a state or a configured property, never a live value, so a
/// card moves only when its state changes: cards in equal states keep their places tick
/// after tick.
fn arrange(cards: Vec<Card>) -> Vec<(Group, Vec<Card>)> {
    let mut keyed: Vec<((Group, usize), Card)> = cards
        .into_iter()
        .map(|card| (kind_of(&card.resource_type), card))
        .collect();
    keyed.sort_by(|((_, a_kind), a), ((_, b_kind), b)| {
        (severity(a), a_kind, &a.name, &a.id).cmp(&(severity(b), b_kind, &b.name, &b.id))
    });
    let mut groups: Vec<(Group, Vec<Card>)> = Vec::new();
    for ((group, _), card) in keyed {
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, cards)) => cards.push(card),
            None => groups.push((group, vec![card])),
        }
    }
    // Each group's first card is its worst (sorted above).
    groups.sort_by_key(|(group, cards)| (cards.first().map_or(u8::MAX, severity), *group));
    groups
}

/// One count of the summary strip: how many cards are in a state, linking to the first.
struct Count {
    key: &'static str,
    glyph: &'static str,
    word: &'static str,
    count: usize,
    first: Option<String>,
}

/// The counts that answer "what is wrong" at a glance, over the cards in page order (so
/// each links to the first card it counts).
fn counts(groups: &[(Group, Vec<Card>)]) -> Vec<Count> {
    let cards = || groups.iter().flat_map(|(_, cards)| cards.iter());
    let phase = |card: &Card| card.optimizer.as_ref().map(|o| o.phase);
    let count = |key, mark, word, is: &dyn Fn(&Card) -> bool| {
        let mut matching = cards().filter(|&c| is(c));
        let first = matching.next().map(|c| c.id.clone());
        Count {
            key,
            glyph: mark,
            word,
            count: usize::from(first.is_some()) + matching.count(),
            first,
        }
    };
    let state = |s: TargetState| move |c: &Card| c.target_state == s;
    vec![
        count(
            "breaching",
            glyph(TargetState::Breaching),
            "breaching",
            &state(TargetState::Breaching),
        ),
        count(
            "pending",
            glyph(TargetState::Pending),
            "pending",
            &state(TargetState::Pending),
        ),
        count(
            "acting",
            optimizer_glyph(OptimizerPhase::Acting),
            "optimizer acting",
            &|c: &Card| phase(c).is_some_and(OptimizerPhase::is_active),
        ),
        count(
            "attention",
            optimizer_glyph(OptimizerPhase::NeedsAttention),
            "need attention",
            &|c: &Card| phase(c) == Some(OptimizerPhase::NeedsAttention),
        ),
        count(
            "no-data",
            glyph(TargetState::NoData),
            "no data",
            &state(TargetState::NoData),
        ),
        count(
            "within",
            glyph(TargetState::WithinTarget),
            "within target",
            &state(TargetState::WithinTarget),
        ),
    ]
}

fn summary_strip(groups: &[(Group, Vec<Card>)]) -> AnyView {
    let items = counts(groups)
        .into_iter()
        .map(|c| {
            let href = c.first.map(|id| format!("#{}", card_anchor(&id)));
            let class = if c.count == 0 {
                format!("summary-item summary-{} summary-zero", c.key)
            } else {
                format!("summary-item summary-{}", c.key)
            };
            view! {
                <li>
                    <a class=class id=format!("summary-{}", c.key) href=href data-count=c.count>
                        <span class="summary-glyph" aria-hidden="true">{c.glyph}</span>
                        <span class="summary-count">{c.count}</span>
                        " "
                        <span class="summary-word">{c.word}</span>
                    </a>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="summary" id="summary" aria-label="Summary">{items}</ul> }.into_any()
}

/// The element id of a resource's card, what the summary links to.
fn card_anchor(id: &str) -> String {
    format!("card-{id}")
}

fn card_group(group: Group, cards: Vec<Card>, now_ms: i64) -> AnyView {
    let heading_id = format!("group-{}", group.as_str());
    let labelled_by = heading_id.clone();
    let count = cards.len();
    let cards = cards
        .into_iter()
        .map(|card| view! { <ResourceCard card now_ms/> })
        .collect_view();
    view! {
        <section class="card-group" data-group=group.as_str() aria-labelledby=labelled_by>
            <h2 class="group-title" id=heading_id>
                {group.heading()}
                " "
                <span class="group-count">{count}</span>
            </h2>
            <div class="card-grid">{cards}</div>
        </section>
    }
    .into_any()
}

#[component]
fn ResourceCard(card: Card, now_ms: i64) -> impl IntoView {
    let state = card.target_state;
    let reason = match state {
        TargetState::NoTarget => "Set a target on the resource page to evaluate it.".to_owned(),
        // Too little data yet: the status says how much ("not enough data yet (12 of 60
        // s)"), in the backtest's words.
        TargetState::Evaluating if !card.reason.starts_with("not enough data") => {
            "Collecting samples for the first evaluation.".to_owned()
        }
        // A held verdict whose window has since emptied: its reason is history now.
        TargetState::NoData
            if card.judged.is_none() && card.evaluated && !card.reason.starts_with("no data") =>
        {
            format!(
                "Too few samples to judge; the last verdict: {}",
                card.reason
            )
        }
        _ => card.reason.clone(),
    };
    let unit = card.unit.clone();
    let reading = move |v: f64| crate::format::reading(v, &unit);
    let live = card.value.map(|v| reading(f64::from(v)));
    let metric = engine::model::metric_label(&card.metric);
    // With a target, the big number is the statistic its verdict judged (the very value
    // the status computed), the live sample beside it; without one, the live sample.
    let judged = card.judged.filter(|_| card.target.is_some());
    let (big, what, now) = match judged {
        Some(j) => (
            reading(f64::from(j)),
            format!("{metric}, {}", card.judged_label),
            Some(format!("now {}", live.unwrap_or_else(|| "no data".into()))),
        ),
        None => (live.unwrap_or_else(|| "no data".into()), metric, None),
    };
    let target_text = card
        .target
        .as_ref()
        .map(|t| format!("Target: {}", t.text))
        .unwrap_or_else(|| "No target set".into());
    // The next step: what the optimizer is doing about it, else the recommendation.
    let next = match (&card.optimizer, &card.advice) {
        (Some(optimizer), _) => Some(view! {
            <p class="card-next">{crate::status::optimizer_line(optimizer, now_ms)}</p>
        }.into_any()),
        (None, Some(advice)) => Some(view! {
            <p class="card-next"><span class="card-next-label">"Next: "</span>{advice.clone()}</p>
        }.into_any()),
        (None, None) => None,
    };
    // Where the trend leads, while the target still holds ("breaches 80 % in ~3 h").
    let forecast = card.forecast.clone().map(|text| {
        view! {
            <p class="card-forecast" title="At the current trend (daily pattern removed)">
                <span class="card-next-label">"Trend: "</span>{text}
            </p>
        }
    });
    // Only news is shown: a quiet hour says nothing.
    let anomalies = card
        .anomalies
        .and_then(|rate| crate::format::anomaly_rate(&rate, "in the last hour"))
        .map(|text| {
            let chart = crate::base::href(&format!(
                "/resource?id={}&metric={}&range=1h",
                crate::pages::resource::urlencode(&card.id),
                crate::pages::resource::urlencode(&card.metric)
            ));
            view! {
                <p class="card-anomalies" title="Times the metric left its usual band (the resource chart shades it)">
                    <span class="card-next-label">"Unusual: "</span><a href=chart>{text}</a>
                </p>
            }
        });
    let kind = kind_of(&card.resource_type).0.kind();
    view! {
        <article
            class=format!("card state-{}", state.as_str())
            id=card_anchor(&card.id)
            data-resource=card.id.clone()
            data-state=state.as_str()
        >
            <header class="card-head">
                <div class="card-heading">
                    <h3 class="card-title" title=card.id.clone()>
                        <a href=crate::base::href(&format!("/resource?id={}", crate::pages::resource::urlencode(&card.id)))>{card.name.clone()}</a>
                    </h3>
                    <span class="card-kind">{kind}</span>
                </div>
                {state_badge(state, reason.clone())}
            </header>
            <p class="card-value">
                <span class="value" data-metric=card.metric.clone()>{big}</span>
                <span class="metric-name">{what}</span>
                {now.map(|now| view! { <span class="card-now">{now}</span> })}
            </p>
            <Sparkline card=card.clone()/>
            <p class="card-target">{target_text}</p>
            <p class="card-reason">{reason}</p>
            {forecast}
            {anomalies}
            {next}
            {card.top.clone().map(|top| view! { <p class="card-top" title="Top process by this resource">"Top: "{top}</p> })}
        </article>
    }
    .into_any()
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
    let label = format!(
        "Last {} samples of {}",
        card.spark.len(),
        engine::model::metric_label(&card.metric)
    );
    view! {
        <svg class="spark" viewBox=format!("0 0 {SPARK_W} {SPARK_H}") preserveAspectRatio="none" role="img" aria-label=label>
            {target_y.map(|ty| view! { <line class="spark-target" x1="0" x2=SPARK_W y1=ty y2=ty/> })}
            {segments.into_iter().map(|points| view! { <polyline class="spark-line" points=points/> }).collect_view()}
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use engine::model::{OptimizationStatus, OptimizerState};

    use super::*;

    fn card(id: &str, resource_type: &str, name: &str, state: TargetState) -> Card {
        Card {
            id: id.into(),
            resource_type: resource_type.into(),
            name: name.into(),
            metric: "utilization".into(),
            unit: "%".into(),
            value: Some(1.0),
            spark: Vec::new(),
            target: None,
            status: OptimizationStatus::Optimized,
            reason: String::new(),
            top: None,
            evaluated: true,
            pending: false,
            target_state: state,
            judged: None,
            judged_label: String::new(),
            advice: None,
            forecast: None,
            crossing: None,
            anomalies: None,
            optimizer: None,
        }
    }

    fn order(groups: &[(Group, Vec<Card>)]) -> Vec<(Group, Vec<&str>)> {
        groups
            .iter()
            .map(|(g, cards)| (*g, cards.iter().map(|c| c.id.as_str()).collect()))
            .collect()
    }

    #[test]
    fn groups_with_a_worse_card_come_first_and_cards_sort_worst_first() {
        use TargetState as S;
        let cards = vec![
            card("net:eth0", "network", "eth0", S::WithinTarget),
            card("cpu", "cpu", "CPU", S::WithinTarget),
            card("memory", "memory", "Memory", S::Pending),
            card("disk:/", "disk", "/", S::NoTarget),
            card("database:main", "database", "main", S::Breaching),
            card("custom:2", "custom:2", "queue", S::NoData),
            card("custom:1", "custom:1", "queue", S::NoData),
            card("lb:web", "lb", "web", S::WithinTarget),
            card("cache:s", "cache", "sessions", S::Evaluating),
        ];
        let arranged = arrange(cards.clone());
        assert_eq!(
            order(&arranged),
            vec![
                (Group::Databases, vec!["database:main"]),
                (Group::Host, vec!["memory", "cpu", "net:eth0", "disk:/"]),
                // Equal states and names: the id decides.
                (Group::Custom, vec!["custom:1", "custom:2"]),
                (Group::Caches, vec!["cache:s"]),
                (Group::LoadBalancers, vec!["lb:web"]),
            ]
        );
        // The input order (the server's id order, or a tick's) changes nothing.
        let mut reversed = cards;
        reversed.reverse();
        assert_eq!(order(&arrange(reversed)), order(&arranged));

        let counted: Vec<(&str, usize, Option<String>)> = counts(&arranged)
            .into_iter()
            .map(|c| (c.key, c.count, c.first))
            .collect();
        assert_eq!(
            counted,
            vec![
                ("breaching", 1, Some("database:main".into())),
                ("pending", 1, Some("memory".into())),
                ("acting", 0, None),
                ("attention", 0, None),
                ("no-data", 2, Some("custom:1".into())),
                ("within", 3, Some("cpu".into())),
            ]
        );
    }

    #[test]
    fn a_resource_that_needs_a_person_comes_before_every_breach() {
        let mut attention = card("cache:s", "cache", "sessions", TargetState::WithinTarget);
        attention.optimizer = Some(OptimizerState {
            phase: OptimizerPhase::NeedsAttention,
            detail: "3 changes in a row did not help".into(),
            since_unix_ms: 1,
            until_unix_ms: None,
        });
        let mut verifying = card("cpu", "cpu", "CPU", TargetState::Breaching);
        verifying.optimizer = Some(OptimizerState {
            phase: OptimizerPhase::Verifying,
            ..attention.optimizer.clone().unwrap()
        });
        let arranged = arrange(vec![
            card("database:main", "database", "main", TargetState::Breaching),
            verifying,
            attention,
        ]);
        assert_eq!(
            order(&arranged),
            vec![
                (Group::Caches, vec!["cache:s"]),
                (Group::Host, vec!["cpu"]),
                (Group::Databases, vec!["database:main"]),
            ]
        );
        let counted: Vec<(&str, usize)> = counts(&arranged)
            .into_iter()
            .map(|c| (c.key, c.count))
            .collect();
        assert_eq!(
            counted[..4],
            [
                ("breaching", 2),
                ("pending", 0),
                ("acting", 1),
                ("attention", 1)
            ]
        );
    }
}
