//! perfpilot's engine: the domain of the Performance Architecture (AIR-008) and its runtime.
//!
//! Everything here is free of web types and client libraries so it can be unit-tested
//! quickly and, with default features off, compiled to wasm32 for the browser (backtest,
//! statistics, history downsampling). It defines the ports: [`source`] (where samples come
//! from) and [`actuator`] (how the optimizer acts, with rollback); their adapters live in
//! the `connectors` crate. Server-only parts sit behind the `runtime` feature.

pub mod actions;
pub mod actuator;
pub mod alerts;
pub mod anomaly;
pub mod backtest;
pub mod cache;
pub mod changed;
pub mod changes;
pub mod database;
pub mod error;
pub mod fleet;
pub mod forecast;
pub mod history;
pub mod lb;
pub mod model;
pub mod names;
pub mod optimizer;
pub mod push;
pub mod redact;
pub mod series;
pub mod source;
pub mod stats;
pub mod suggest;
pub mod sync;
#[cfg(test)]
mod test_rng;
pub mod text;
#[cfg(feature = "runtime")]
pub mod time;
pub mod verdict;
