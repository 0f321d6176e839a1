//! Traffic shaping: a load balancer's server weights moved toward measured capacity
//! through the shared lifecycle. Capture reads every server's weight and its response
//! time (`show stat`: HAProxy's average over its last 1024 requests) and errors; apply
//! gives each server in the pool a share of the pool's total weight proportional to its
//! speed (1 / response time, times its success ratio), moving `step_pct` of the way;
//! read back is `get weight` per server; roll back sets the captured weights again.
//!
//! Weights perfpilot set are part of the pool's desired state
//! ([`crate::sources::haproxy::DesiredStates`]), so a reload of HAProxy gets them back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use engine::actions::ActionRequest;
use engine::actuator::{Actuator, Captured, Done, Expect, StepError};
use engine::model::LbWeightsAction;
use engine::source::BoxFuture;
use engine::sync::lock;
use serde::{Deserialize, Serialize};

use crate::sources::haproxy::runtime_api::{self, Endpoint};
use crate::sources::haproxy::{DesiredStates, HaproxySettings};

const TIMEOUT: Duration = Duration::from_secs(2);
/// Below this response time servers count as equally fast (timer resolution, noise).
const FLOOR_MS: f64 = 2.0;

/// One server as captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReading {
    pub weight: u32,
    /// The weight in HAProxy's configuration (`get weight` says `10 (initial 10)`).
    pub initial: u32,
    pub response_ms: Option<u64>,
    pub requests: u64,
    pub errors: u64,
    /// In the pool (not drained, not in maintenance, weight above 0).
    pub serving: bool,
}

/// The weights `step_pct` of the way toward each serving server's capacity share; the
/// pool's total weight stays what it was. `None` when nothing would move.
pub fn shifted(
    servers: &BTreeMap<String, ServerReading>,
    action: &LbWeightsAction,
) -> Option<BTreeMap<String, u32>> {
    let serving: Vec<(&String, &ServerReading)> =
        servers.iter().filter(|(_, s)| s.serving).collect();
    if serving.len() < 2 {
        return None;
    }
    let capacity = |s: &ServerReading| {
        let ms = s
            .response_ms
            .map_or(FLOOR_MS, |ms| (ms as f64).max(FLOOR_MS));
        let success = if s.requests > 0 {
            1.0 - (s.errors as f64 / s.requests as f64).min(0.99)
        } else {
            1.0
        };
        success / ms
    };
    let total_capacity: f64 = serving.iter().map(|(_, s)| capacity(s)).sum();
    let total_weight: f64 = serving.iter().map(|(_, s)| f64::from(s.weight)).sum();
    if total_capacity <= 0.0 || total_weight <= 0.0 {
        return None;
    }
    let step = f64::from(action.step_pct) / 100.0;
    let mut next = BTreeMap::new();
    for (name, s) in &serving {
        let goal = total_weight * capacity(s) / total_capacity;
        let moved = f64::from(s.weight) + step * (goal - f64::from(s.weight));
        let weight = (moved.round() as u32).clamp(action.min_weight, 256);
        if weight != s.weight {
            next.insert((*name).clone(), weight);
        }
    }
    (!next.is_empty()).then_some(next)
}

pub struct LbWeights {
    action: LbWeightsAction,
    pool: Result<HaproxySettings, String>,
    desired_states: DesiredStates,
    /// What the last apply set, for its read back.
    applied: Mutex<Option<BTreeMap<String, u32>>>,
}

impl LbWeights {
    pub fn new(
        action: LbWeightsAction,
        pool: Result<HaproxySettings, String>,
        desired_states: DesiredStates,
    ) -> LbWeights {
        LbWeights {
            action,
            pool,
            desired_states,
            applied: Mutex::new(None),
        }
    }

    fn pool(&self) -> Result<(&HaproxySettings, Endpoint), StepError> {
        let pool = self.pool.as_ref().map_err(|e| StepError::new(e.clone()))?;
        let endpoint = Endpoint::parse(&pool.socket).map_err(StepError::new)?;
        Ok((pool, endpoint))
    }

    async fn read(&self) -> Result<BTreeMap<String, ServerReading>, StepError> {
        let (pool, endpoint) = self.pool()?;
        let stat = runtime_api::command(
            &endpoint,
            &format!("show stat {} 4 -1", pool.backend),
            TIMEOUT,
        )
        .await
        .map_err(StepError::new)?;
        let rows = runtime_api::parse_stat(&stat, &pool.backend).map_err(StepError::new)?;
        let mut servers = BTreeMap::new();
        for row in rows.into_iter().filter(|r| r.name != "BACKEND") {
            let (weight, initial) = weights_of(&endpoint, &pool.backend, &row.name).await?;
            let out = ["MAINT", "DRAIN", "DOWN", "NOLB"]
                .iter()
                .any(|s| row.status.starts_with(s));
            servers.insert(
                row.name.clone(),
                ServerReading {
                    weight,
                    initial,
                    response_ms: row.rtime_ms,
                    requests: row.requests.unwrap_or(0),
                    errors: row.errors.unwrap_or(0),
                    serving: !out && weight > 0,
                },
            );
        }
        Ok(servers)
    }

    /// Sets `weights` and records them as desired (a weight back at its configured value
    /// is no longer perfpilot's to keep).
    async fn set(
        &self,
        resource: &str,
        weights: &BTreeMap<String, u32>,
        initial: &BTreeMap<String, u32>,
    ) -> Result<(), StepError> {
        let (pool, endpoint) = self.pool()?;
        let mut outcome = Ok(());
        for (server, weight) in weights {
            if let Err(err) =
                runtime_api::set_weight(&endpoint, &pool.backend, server, *weight, TIMEOUT).await
            {
                outcome = Err(StepError::new(format!(
                    "set weight {}/{server} {weight}: {err}",
                    pool.backend
                )));
                break;
            }
            let desired = self.desired_states.of(resource);
            let mut desired = lock(&desired);
            if initial.get(server) == Some(weight) {
                desired.weights.remove(server);
            } else {
                desired.weights.insert(server.clone(), *weight);
            }
        }
        // What was set is desired, even when a later server refused.
        self.desired_states.save();
        outcome
    }

    async fn check(&self, expected: &BTreeMap<String, u32>) -> Result<Done, StepError> {
        let (pool, endpoint) = self.pool()?;
        let mut seen = Vec::new();
        for (server, want) in expected {
            let (weight, _) = weights_of(&endpoint, &pool.backend, server).await?;
            if weight != *want {
                return Err(StepError::new(format!(
                    "get weight {}/{server} says {weight}, expected {want}",
                    pool.backend
                )));
            }
            seen.push(format!("{server} {weight}"));
        }
        Ok(Done {
            detail: format!("get weight: {}", seen.join(", ")),
            attempts: 1,
        })
    }
}

async fn weights_of(
    endpoint: &Endpoint,
    backend: &str,
    server: &str,
) -> Result<(u32, u32), StepError> {
    let answer = runtime_api::command(endpoint, &format!("get weight {backend}/{server}"), TIMEOUT)
        .await
        .map_err(StepError::new)?;
    // `10 (initial 10)`
    let mut numbers = answer
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(weight), Some(initial)) => Ok((weight, initial)),
        _ => Err(StepError::new(format!(
            "HAProxy refused `get weight {backend}/{server}`: {}",
            answer.trim()
        ))),
    }
}

fn listing(weights: impl Iterator<Item = (String, String)>) -> String {
    weights
        .map(|(name, w)| format!("{name} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Actuator for LbWeights {
    fn kind(&self) -> &'static str {
        "lb_weights"
    }

    fn describe(&self, request: &ActionRequest) -> String {
        format!(
            "shift the weights of {} {} % of the way toward each server's measured capacity (at least {} each)",
            request.resource, self.action.step_pct, self.action.min_weight
        )
    }

    fn capture<'a>(
        &'a self,
        _request: &'a ActionRequest,
    ) -> BoxFuture<'a, Result<Captured, StepError>> {
        Box::pin(async move {
            let servers = self.read().await?;
            let summary = format!(
                "weights {}",
                listing(servers.iter().map(|(n, s)| {
                    let ms = s
                        .response_ms
                        .map_or_else(|| "no response time".to_owned(), |ms| format!("{ms} ms"));
                    (n.clone(), format!("{} ({ms})", s.weight))
                }))
            );
            Ok(Captured {
                summary,
                state: serde_json::to_value(&servers).expect("readings serialize"),
            })
        })
    }

    fn apply<'a>(
        &'a self,
        request: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let servers: BTreeMap<String, ServerReading> =
                serde_json::from_value(captured.state.clone()).map_err(|err| {
                    StepError::new(format!("the captured weights cannot be read: {err}"))
                })?;
            let Some(next) = shifted(&servers, &self.action) else {
                return Err(StepError::new(
                    "nothing to shift: fewer than two servers serve, or the weights already follow their measured capacity",
                ));
            };
            let initial: BTreeMap<String, u32> = servers
                .iter()
                .map(|(n, s)| (n.clone(), s.initial))
                .collect();
            self.set(request.resource.as_str(), &next, &initial).await?;
            let detail = listing(
                next.iter()
                    .map(|(name, w)| (name.clone(), format!("{} → {w}", servers[name].weight))),
            );
            *lock(&self.applied) = Some(next);
            Ok(Done {
                detail: format!("set weight {detail}"),
                attempts: 1,
            })
        })
    }

    fn read_back<'a>(
        &'a self,
        _request: &'a ActionRequest,
        expect: Expect<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let expected: BTreeMap<String, u32> = match expect {
                Expect::Applied(_) => lock(&self.applied)
                    .clone()
                    .ok_or_else(|| StepError::new("nothing was applied"))?,
                Expect::Restored(captured) => {
                    let servers: BTreeMap<String, ServerReading> =
                        serde_json::from_value(captured.state.clone()).map_err(|err| {
                            StepError::new(format!("the captured weights cannot be read: {err}"))
                        })?;
                    servers.into_iter().map(|(n, s)| (n, s.weight)).collect()
                }
            };
            self.check(&expected).await
        })
    }

    fn can_roll_back(&self) -> bool {
        true
    }

    fn roll_back<'a>(
        &'a self,
        request: &'a ActionRequest,
        captured: &'a Captured,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let servers: BTreeMap<String, ServerReading> =
                serde_json::from_value(captured.state.clone()).map_err(|err| {
                    StepError::new(format!("the captured weights cannot be read: {err}"))
                })?;
            let weights: BTreeMap<String, u32> =
                servers.iter().map(|(n, s)| (n.clone(), s.weight)).collect();
            let initial: BTreeMap<String, u32> = servers
                .iter()
                .map(|(n, s)| (n.clone(), s.initial))
                .collect();
            self.set(request.resource.as_str(), &weights, &initial)
                .await?;
            Ok(Done {
                detail: format!(
                    "set weight {}",
                    listing(weights.iter().map(|(n, w)| (n.clone(), w.to_string())))
                ),
                attempts: 1,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(weight: u32, ms: u64) -> ServerReading {
        ServerReading {
            weight,
            initial: 10,
            response_ms: Some(ms),
            requests: 1000,
            errors: 0,
            serving: true,
        }
    }

    #[test]
    fn a_slow_server_gets_less_and_the_total_stays() {
        let servers = BTreeMap::from([
            ("a".to_owned(), reading(10, 5)),
            ("b".to_owned(), reading(10, 5)),
            ("c".to_owned(), reading(10, 200)),
        ]);
        let action = LbWeightsAction {
            step_pct: 100,
            min_weight: 1,
        };
        let next = shifted(&servers, &action).unwrap();
        assert_eq!(next["c"], 1, "{next:?}");
        assert!(next["a"] > 10 && next["a"] == next["b"], "{next:?}");
        let half = shifted(
            &servers,
            &LbWeightsAction {
                step_pct: 50,
                min_weight: 1,
            },
        )
        .unwrap();
        assert!(half["c"] > next["c"] && half["c"] < 10, "{half:?}");
    }

    #[test]
    fn errors_cost_capacity_and_servers_out_of_the_pool_are_left_alone() {
        let mut failing = reading(10, 5);
        failing.errors = 500;
        let mut out = reading(10, 500);
        out.serving = false;
        let servers = BTreeMap::from([
            ("a".to_owned(), reading(10, 5)),
            ("b".to_owned(), failing),
            ("c".to_owned(), out),
        ]);
        let next = shifted(
            &servers,
            &LbWeightsAction {
                step_pct: 100,
                min_weight: 2,
            },
        )
        .unwrap();
        assert!(next["b"] < 10 && next["b"] >= 2, "{next:?}");
        assert!(!next.contains_key("c"));
    }

    #[test]
    fn equal_servers_move_nothing() {
        let servers = BTreeMap::from([
            ("a".to_owned(), reading(10, 1)),
            ("b".to_owned(), reading(10, 2)),
        ]);
        assert_eq!(
            shifted(
                &servers,
                &LbWeightsAction {
                    step_pct: 50,
                    min_weight: 1
                }
            ),
            None
        );
        let one = BTreeMap::from([("a".to_owned(), reading(10, 50))]);
        assert_eq!(
            shifted(
                &one,
                &LbWeightsAction {
                    step_pct: 50,
                    min_weight: 1
                }
            ),
            None
        );
    }
}
