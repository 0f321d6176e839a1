//! The live wire protocol between the server's hub and the browser, and (in the browser)
//! the websocket client that keeps the page current.
//!
//! On connect the server sends a full [`LiveMessage::Overview`] (cards with their recent
//! history), then one small [`LiveMessage::Tick`] per collector tick. A reconnecting
//! client therefore back-fills its gap from the next overview without asking.

use serde::{Deserialize, Serialize};

use engine::model::{OptimizationStatus, OptimizerState, TargetState};

/// Samples of history a card's sparkline shows (at the collection step).
pub const SPARK_POINTS: usize = 120;

/// One resource as the overview shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    /// Stable type string (`cpu`, `custom:42`).
    pub resource_type: String,
    pub name: String,
    /// The metric the card shows: the target's, else the first utilization metric.
    pub metric: String,
    pub unit: String,
    pub value: Option<f32>,
    /// Oldest first, one per collection step; `None` is a gap.
    pub spark: Vec<Option<f32>>,
    pub target: Option<TargetLine>,
    pub status: OptimizationStatus,
    pub reason: String,
    /// Who is using the resource most ("rustc (pid 4242) 95.1 %"), for CPU and memory.
    #[serde(default)]
    pub top: Option<String>,
    /// False until the analyzer has judged the resource once.
    #[serde(default)]
    pub evaluated: bool,
    /// Breaching, but not yet for the target's `for` (the reason says how long).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// Where the target stands (`TargetState::of`), what the card's badge says.
    #[serde(default)]
    pub target_state: TargetState,
    /// The target's statistic the verdict judged (the status's `judged`): the card's big
    /// number when there is one. `f32` like `value`: the wire must read back exactly, and
    /// serde_json's default float parsing does not round-trip every `f64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<f32>,
    /// What `judged` is: "p95 over 1 m" (the target's statistic and the resource's
    /// window). Only in the overview: it follows the configuration, and every change
    /// publishes a fresh overview.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub judged_label: String,
    /// The recommendation while the judged statistic breaches the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// When the target's metric trends toward it: when it will cross it (the status's
    /// `forecast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<String>,
    /// The same crossing in numbers, for the resource chart's forecast line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing: Option<engine::forecast::Crossing>,
    /// How often the metric left its usual band in the last hour (the status's
    /// `anomalies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<engine::anomaly::Rate>,
    /// What the optimizer is doing or did lately; `None` when it has done nothing recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerState>,
}

/// The target as the UI draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetLine {
    pub value: f64,
    /// "p95 utilization ≤ 65 % for 5 m".
    pub text: String,
    /// True for "≤" targets: values above the line are bad.
    pub upper_bound: bool,
}

/// Everything the overview needs at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Overview {
    pub at_unix_ms: i64,
    pub cards: Vec<Card>,
    /// Accepted configuration changes so far.
    pub change: u64,
    /// Auto-save period N: a snapshot every N changes.
    pub autosave_every: u64,
    /// What is wrong with the server itself, in words (history not being written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    #[serde(default)]
    pub alerts: crate::alerts::AlertsPulse,
    /// Which replica of a shared store served this, and who leads (`None` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaLine>,
}

/// The top bar's "replica b · follows a".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLine {
    pub leads: bool,
    /// "a · leads", "b · follows a" (short: it shares the top bar with the menu).
    pub text: String,
    /// The longer sentence for the tooltip and screen readers.
    pub detail: String,
}

/// Per-tick update of one card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardTick {
    pub id: String,
    pub value: Option<f32>,
    pub status: OptimizationStatus,
    pub reason: String,
    #[serde(default)]
    pub top: Option<String>,
    #[serde(default)]
    pub evaluated: bool,
    /// Breaching, but not yet for the target's `for` (the reason says how long).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    #[serde(default)]
    pub target_state: TargetState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<String>,
    /// The same crossing in numbers, for the resource chart's forecast line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossing: Option<engine::forecast::Crossing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<engine::anomaly::Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerState>,
}

/// A frame on the websocket: `{"type":"overview",…}` or `{"type":"tick",…}`.
///
/// `Deserialize` is written by hand (see [`wire`]); `Serialize` is derived and writes the
/// tag first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    Overview(Overview),
    Tick {
        at_unix_ms: i64,
        cards: Vec<CardTick>,
        #[serde(default)]
        alerts: crate::alerts::AlertsPulse,
    },
}

/// The derived `Deserialize` of an internally tagged enum buffers every frame into serde's
/// generic `Content` tree before it knows the variant, which compiled a second
/// deserializer for every card type into the browser bundle (about 30 KB of wasm). The
/// server's derived `Serialize` always writes `"type"` first, so this one reads the tag,
/// then the variant's fields straight from the input. A frame whose first key is not
/// `"type"` is refused; no frame the server writes is.
mod wire {
    use std::fmt;

    use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use super::{CardTick, LiveMessage, Overview};
    use crate::alerts::AlertsPulse;

    const VARIANTS: &[&str] = &["overview", "tick"];

    impl<'de> Deserialize<'de> for LiveMessage {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(MessageVisitor)
        }
    }

    struct MessageVisitor;

    impl<'de> Visitor<'de> for MessageVisitor {
        type Value = LiveMessage;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a live message, an object whose first key is \"type\"")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LiveMessage, A::Error> {
            match map.next_key::<String>()?.as_deref() {
                Some("type") => {}
                Some(_) => return Err(de::Error::custom("`type` must be the first key")),
                None => return Err(de::Error::missing_field("type")),
            }
            let tag = map.next_value::<String>()?;
            match tag.as_str() {
                "overview" => Overview::deserialize(MapAccessDeserializer::new(map))
                    .map(LiveMessage::Overview),
                "tick" => {
                    let (mut at_unix_ms, mut cards, mut alerts) = (None, None, None);
                    while let Some(key) = map.next_key::<String>()? {
                        match key.as_str() {
                            "at_unix_ms" if at_unix_ms.is_some() => {
                                return Err(de::Error::duplicate_field("at_unix_ms"))
                            }
                            "at_unix_ms" => at_unix_ms = Some(map.next_value::<i64>()?),
                            "cards" if cards.is_some() => {
                                return Err(de::Error::duplicate_field("cards"))
                            }
                            "cards" => cards = Some(map.next_value::<Vec<CardTick>>()?),
                            "alerts" if alerts.is_some() => {
                                return Err(de::Error::duplicate_field("alerts"))
                            }
                            "alerts" => alerts = Some(map.next_value::<AlertsPulse>()?),
                            _ => {
                                map.next_value::<de::IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(LiveMessage::Tick {
                        at_unix_ms: at_unix_ms
                            .ok_or_else(|| de::Error::missing_field("at_unix_ms"))?,
                        cards: cards.ok_or_else(|| de::Error::missing_field("cards"))?,
                        alerts: alerts.unwrap_or_default(),
                    })
                }
                other => Err(de::Error::unknown_variant(other, VARIANTS)),
            }
        }
    }
}

impl Overview {
    /// Applies one tick: new values go to the end of each sparkline, which keeps its
    /// length. A card the tick does not mention gets a gap, as on the server.
    pub fn apply_tick(
        &mut self,
        at_unix_ms: i64,
        ticks: &[CardTick],
        alerts: crate::alerts::AlertsPulse,
    ) {
        self.at_unix_ms = at_unix_ms;
        self.alerts = alerts;
        for card in &mut self.cards {
            let update = ticks.iter().find(|t| t.id == card.id);
            let value = update.and_then(|t| t.value);
            card.value = value;
            card.spark.push(value);
            if card.spark.len() > SPARK_POINTS {
                let excess = card.spark.len() - SPARK_POINTS;
                card.spark.drain(..excess);
            }
            if let Some(t) = update {
                card.status = t.status;
                card.reason.clone_from(&t.reason);
                card.top.clone_from(&t.top);
                card.evaluated = t.evaluated;
                card.pending = t.pending;
                card.target_state = t.target_state;
                card.judged = t.judged;
                card.advice.clone_from(&t.advice);
                card.forecast.clone_from(&t.forecast);
                card.crossing = t.crossing;
                card.anomalies = t.anomalies;
                card.optimizer.clone_from(&t.optimizer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, spark: Vec<Option<f32>>) -> Card {
        Card {
            id: id.into(),
            resource_type: "cpu".into(),
            name: id.into(),
            metric: "utilization".into(),
            unit: "%".into(),
            value: spark.last().copied().flatten(),
            spark,
            target: None,
            status: OptimizationStatus::NotOptimized,
            reason: String::new(),
            top: None,
            evaluated: false,
            pending: false,
            target_state: TargetState::NoTarget,
            judged: None,
            judged_label: String::new(),
            advice: None,
            forecast: None,
            crossing: None,
            anomalies: None,
            optimizer: None,
        }
    }

    #[test]
    fn tick_appends_keeps_length_and_marks_missing_cards_as_gaps() {
        let mut overview = Overview {
            cards: vec![
                card("cpu", vec![Some(1.0); SPARK_POINTS]),
                card("memory", vec![Some(2.0)]),
            ],
            ..Overview::default()
        };
        let ticks = [CardTick {
            id: "cpu".into(),
            value: Some(9.0),
            status: OptimizationStatus::Optimized,
            reason: "ok".into(),
            top: Some("rustc (pid 1) 90.0 %".into()),
            evaluated: true,
            pending: false,
            target_state: TargetState::Breaching,
            judged: Some(72.5),
            advice: Some("find what is busy".into()),
            forecast: Some("breaches 80 % in ~3 h".into()),
            crossing: None,
            anomalies: None,
            optimizer: Some(OptimizerState {
                phase: engine::model::OptimizerPhase::Verifying,
                detail: "maxmemory 3mb → 64mb".into(),
                since_unix_ms: 1,
                until_unix_ms: Some(9),
            }),
        }];
        overview.apply_tick(5, &ticks, Default::default());
        // The tick carries the target's and the optimizer's state with the judged value.
        let cpu = &overview.cards[0];
        assert_eq!(
            (cpu.target_state, cpu.judged, cpu.advice.as_deref()),
            (
                TargetState::Breaching,
                Some(72.5),
                Some("find what is busy")
            )
        );
        assert_eq!(cpu.optimizer, ticks[0].optimizer);
        assert_eq!(overview.at_unix_ms, 5);
        assert_eq!(overview.cards[0].spark.len(), SPARK_POINTS);
        assert_eq!(overview.cards[0].spark.last(), Some(&Some(9.0)));
        assert_eq!(overview.cards[0].status, OptimizationStatus::Optimized);
        assert_eq!(
            overview.cards[0].top.as_deref(),
            Some("rustc (pid 1) 90.0 %")
        );
        assert_eq!(overview.cards[1].spark, vec![Some(2.0), None]);
        assert_eq!(overview.cards[1].value, None);
    }

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let msg = LiveMessage::Tick {
            at_unix_ms: 7,
            cards: vec![],
            alerts: crate::alerts::AlertsPulse {
                version: 3,
                firing: 1,
                pending: 0,
            },
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"tick","at_unix_ms":7,"cards":[],"alerts":{"version":3,"firing":1,"pending":0}}"#
        );
        assert_eq!(serde_json::from_str::<LiveMessage>(&json).unwrap(), msg);
    }

    #[test]
    fn frames_the_server_writes_read_back() {
        let overview = LiveMessage::Overview(Overview {
            at_unix_ms: 3,
            cards: vec![card("cpu", vec![Some(1.5), None])],
            change: 4,
            autosave_every: 5,
            notices: Vec::new(),
            alerts: Default::default(),
            replica: Some(ReplicaLine {
                leads: false,
                text: "b · follows a".into(),
                detail: "You are on replica b, which follows a".into(),
            }),
        });
        let tick = LiveMessage::Tick {
            at_unix_ms: 9,
            cards: vec![CardTick {
                id: "cpu".into(),
                value: None,
                status: OptimizationStatus::Optimized,
                reason: "ok".into(),
                top: None,
                evaluated: true,
                pending: false,
                target_state: TargetState::WithinTarget,
                judged: Some(12.5),
                advice: None,
                forecast: None,
                crossing: None,
                anomalies: None,
                optimizer: None,
            }],
            alerts: Default::default(),
        };
        for msg in [overview, tick] {
            let json = serde_json::to_string(&msg).unwrap();
            assert!(json.starts_with(r#"{"type":"#), "{json}");
            assert_eq!(serde_json::from_str::<LiveMessage>(&json).unwrap(), msg);
        }
        // Unknown keys are skipped, as by the derived form; `top` may be absent.
        let json = r#"{"type":"tick","extra":[1,{"a":2}],"cards":[{"id":"x","value":1.0,"status":"optimized","reason":""}],"at_unix_ms":1}"#;
        let LiveMessage::Tick {
            at_unix_ms, cards, ..
        } = serde_json::from_str(json).unwrap()
        else {
            panic!("not a tick");
        };
        assert_eq!(
            (at_unix_ms, cards.len(), cards[0].top.clone()),
            (1, 1, None)
        );
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"type":"tick","cards":[]}"#,
            r#"{"type":"tick","at_unix_ms":1,"at_unix_ms":2,"cards":[]}"#,
            r#"{"at_unix_ms":1,"type":"tick","cards":[]}"#,
            r#"{}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<LiveMessage>(bad).is_err(), "{bad}");
        }
    }
}

/// What the page knows about its live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// First connection attempt (also the server-rendered state).
    Connecting,
    Live,
    /// The connection dropped; `attempt` counts retries since it was last live.
    Reconnecting {
        attempt: u32,
    },
}

/// Live state shared by every page through context. The websocket client is its only
/// writer.
#[derive(Debug, Clone, Copy)]
pub struct LiveState {
    pub overview: leptos::prelude::RwSignal<Option<Overview>>,
    pub connection: leptos::prelude::RwSignal<Connection>,
}

/// Creates the live state, provides it as context and, in the browser, connects to
/// `{base}/ws/live`.
pub fn provide_live_state(base: &crate::base::BasePath) -> LiveState {
    use leptos::prelude::*;
    let state = LiveState {
        overview: RwSignal::new(None),
        connection: RwSignal::new(Connection::Connecting),
    };
    provide_context(state);
    #[cfg(feature = "hydrate")]
    {
        let url = client::url(base);
        Effect::new(move |_| client::connect(state, url.clone(), 0));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = base;
    state
}

/// The browser side: one websocket per tab, reconnecting with capped exponential backoff.
#[cfg(feature = "hydrate")]
mod client {
    use std::time::Duration;

    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::{Connection, LiveMessage, LiveState};

    const MAX_BACKOFF_MS: u64 = 10_000;

    /// The socket's absolute URL: the page's scheme (`https` → `wss`) and host, and the
    /// base path the server is served under.
    pub fn url(base: &crate::base::BasePath) -> String {
        let location = window().location();
        let scheme = match location.protocol().ok().as_deref() {
            Some("https:") => "wss:",
            _ => "ws:",
        };
        let host = location.host().unwrap_or_default();
        format!("{scheme}//{host}{}", base.join("/ws/live"))
    }

    pub fn connect(state: LiveState, url: String, attempt: u32) {
        let socket = match WebSocket::new(&url) {
            Ok(socket) => socket,
            Err(_) => return retry(state, url, attempt + 1),
        };

        // The closures live as long as the socket; leaking one set per connection attempt
        // is a few hundred bytes and spares a registry of handles.
        let on_open = Closure::<dyn FnMut()>::new(move || {
            state.connection.set(Connection::Live);
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();

        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<LiveMessage>(&text) {
                Ok(LiveMessage::Overview(overview)) => state.overview.set(Some(overview)),
                Ok(LiveMessage::Tick {
                    at_unix_ms,
                    cards,
                    alerts,
                }) => state.overview.update(|overview| {
                    if let Some(overview) = overview {
                        overview.apply_tick(at_unix_ms, &cards, alerts);
                    }
                }),
                Err(err) => leptos::logging::warn!("perfpilot: ignoring a live message: {err}"),
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();

        // `error` is always followed by `close`, so only `close` schedules the retry.
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            let url = url.clone();
            let next = match state.connection.get_untracked() {
                Connection::Live => 1,
                _ => attempt + 1,
            };
            state
                .connection
                .set(Connection::Reconnecting { attempt: next });
            retry(state, url, next);
        });
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();
    }

    fn retry(state: LiveState, url: String, attempt: u32) {
        // 0.5, 1, 2, 4, 8, 10 s: the first tries come soon, as a replica behind a load
        // balancer is usually taken over by the other within a couple of seconds.
        let base = 250u64
            .saturating_mul(1 << attempt.min(6))
            .min(MAX_BACKOFF_MS);
        // Jitter spreads a crowd of tabs reconnecting after a server restart.
        let jitter = (js_sys_random() * base as f64 * 0.2) as u64;
        set_timeout(
            move || connect(state, url, attempt),
            Duration::from_millis(base + jitter),
        );
    }

    fn js_sys_random() -> f64 {
        // `Math.random` through web-sys would need js-sys as a direct dependency; the
        // current time's sub-millisecond part is random enough for jitter.
        let now = window().performance().map(|p| p.now()).unwrap_or(0.0);
        now.fract()
    }
}
