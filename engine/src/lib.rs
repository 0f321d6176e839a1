//! perfpilot's engine: the domain of the Performance Architecture (AIR-008) and its runtime.
//!
//! Everything here is free of web types so it can be unit-tested quickly and, with
//! default features off, compiled to wasm32 for the browser (backtest, statistics, history
//! downsampling). Server-only parts sit behind the `runtime` feature.

pub mod actions;
pub mod backtest;
pub mod changes;
#[cfg(feature = "runtime")]
pub mod collect;
pub mod error;
pub mod history;
pub mod model;
pub mod optimizer;
pub mod push;
pub mod series;
pub mod stats;
