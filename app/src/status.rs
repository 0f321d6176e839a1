//! The status vocabulary as every screen shows it: a target's state and the optimizer's
//! phase, each with a glyph as well as a colour (breaching ▲ and pending ◔ differ in shape,
//! so nobody has to tell two colours apart), and the kinds of resources the overview
//! groups cards by. The words themselves are the engine's (`TargetState::label`,
//! `OptimizerPhase::label`), so the report and `/metrics` say the same.

use engine::model::{OptimizerPhase, OptimizerState, ResourceType, TargetState};
use leptos::prelude::*;

/// The glyph beside a target state's word.
pub fn glyph(state: TargetState) -> &'static str {
    match state {
        TargetState::Breaching => "▲",
        TargetState::Pending => "◔",
        TargetState::NoData => "○",
        TargetState::Evaluating => "◌",
        TargetState::WithinTarget => "✓",
        TargetState::NoTarget => "–",
    }
}

/// The glyph beside an optimizer phase's words.
pub fn optimizer_glyph(phase: OptimizerPhase) -> &'static str {
    match phase {
        OptimizerPhase::Acting => "►",
        OptimizerPhase::Verifying => "◑",
        OptimizerPhase::Kept => "✓",
        OptimizerPhase::RolledBack => "↺",
        OptimizerPhase::Failed => "✕",
        OptimizerPhase::NeedsAttention => "!",
    }
}

/// A target state's badge: its glyph (hidden from screen readers, which read the word)
/// and word; the class names the state (`badge-breaching`), `title` says why.
pub fn state_badge(state: TargetState, title: String) -> AnyView {
    view! {
        <span class=format!("badge badge-{}", state.as_str()) title=title>
            <span class="badge-glyph" aria-hidden="true">{glyph(state)}</span>
            <span class="badge-word">{state.label()}</span>
        </span>
    }
    .into_any()
}

/// The optimizer's line as of `now_ms` ("Verifying a change: maxmemory 3mb → 64mb, 40 s
/// left"), with its glyph; the class names the phase (`optimizer-verifying`).
pub fn optimizer_line(state: &OptimizerState, now_ms: i64) -> AnyView {
    // Before the first tick the overview has no time of its own: count from the start.
    let now = if now_ms > 0 {
        now_ms
    } else {
        state.since_unix_ms
    };
    view! {
        <span class=format!("optimizer optimizer-{}", state.phase.as_str())>
            <span class="optimizer-glyph" aria-hidden="true">{optimizer_glyph(state.phase)}</span>
            " "
            <span class="optimizer-text">{state.line(now)}</span>
        </span>
    }
    .into_any()
}

/// The overview's groups of resources, in their fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Host,
    Databases,
    Caches,
    LoadBalancers,
    Fleets,
    Custom,
}

impl Group {
    pub fn of(resource_type: ResourceType) -> Group {
        match resource_type {
            ResourceType::Cpu
            | ResourceType::Memory
            | ResourceType::Disk
            | ResourceType::Network => Group::Host,
            ResourceType::Database => Group::Databases,
            ResourceType::Cache => Group::Caches,
            ResourceType::LoadBalancer => Group::LoadBalancers,
            ResourceType::Fleet => Group::Fleets,
            ResourceType::Custom(_) => Group::Custom,
        }
    }

    /// Stable form for ids and `data-group` (`host`, `load_balancers`).
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Host => "host",
            Group::Databases => "databases",
            Group::Caches => "caches",
            Group::LoadBalancers => "load_balancers",
            Group::Fleets => "fleets",
            Group::Custom => "custom",
        }
    }

    /// The group's heading.
    pub fn heading(self) -> &'static str {
        match self {
            Group::Host => "Host",
            Group::Databases => "Databases",
            Group::Caches => "Caches",
            Group::LoadBalancers => "Load balancers",
            Group::Fleets => "Fleets",
            Group::Custom => "Custom metrics",
        }
    }

    /// What one resource of the group is, beside its name on a card.
    pub fn kind(self) -> &'static str {
        match self {
            Group::Host => "Host",
            Group::Databases => "Database",
            Group::Caches => "Cache",
            Group::LoadBalancers => "Load balancer",
            Group::Fleets => "Fleet",
            Group::Custom => "Custom metric",
        }
    }
}

/// A card's type string (`cpu`, `custom:42`) as its group and its kind's place in
/// [`ResourceType::BUILT_IN`] (custom resources after every built-in one); a type this
/// build does not know is a custom one.
pub fn kind_of(resource_type: &str) -> (Group, usize) {
    match resource_type.parse::<ResourceType>() {
        Ok(t) => {
            let order = ResourceType::BUILT_IN
                .iter()
                .position(|b| *b == t)
                .unwrap_or(ResourceType::BUILT_IN.len());
            (Group::of(t), order)
        }
        Err(_) => (Group::Custom, ResourceType::BUILT_IN.len()),
    }
}
