//! "What changed" around a moment, as the server ranks it ([`engine::changed`]): the
//! series whose level moved the most, each with a link to its chart.

use serde::{Deserialize, Serialize};

/// One series that moved around the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub resource: String,
    pub resource_name: String,
    pub metric: String,
    pub unit: String,
    pub shift: engine::changed::Shift,
}

/// The series that moved the most around `at_ms`, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatChanged {
    pub at_ms: i64,
    pub moved: Vec<Moved>,
}

/// The series whose level moved the most around `at` (ms since the epoch), at most five:
/// the first places to look when an alert fires or after a change ([`engine::changed`]).
#[leptos::server(endpoint = "what_changed", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn moved_around(at: i64) -> Result<Vec<Moved>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    Ok(crate::backend::history()?.what_changed(at, 5))
}

/// The moved series as a list, each a link to its chart with its level before and after.
pub fn moved_list(moved: Vec<Moved>) -> impl leptos::IntoView {
    use leptos::prelude::*;
    let items = moved
        .into_iter()
        .map(|m| {
            let href = crate::base::href(&format!(
                "/resource?id={}&metric={}",
                crate::format::urlencode(&m.resource),
                crate::format::urlencode(&m.metric)
            ));
            let moved = format!(
                ": {} → {} ({:+.1} σ)",
                crate::format::reading(m.shift.before, &m.unit),
                crate::format::reading(m.shift.after, &m.unit),
                m.shift.score
            );
            view! {
                <li data-resource=m.resource.clone() data-metric=m.metric.clone()>
                    <a href=href>{format!("{} — {}", m.resource_name, engine::model::metric_label(&m.metric))}</a>
                    {moved}
                </li>
            }
        })
        .collect::<Vec<_>>();
    view! { <ul class="what-changed">{items}</ul> }
}
