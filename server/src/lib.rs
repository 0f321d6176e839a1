//! The perfpilot server: the HTTP surface, the runtime state and the durable store around
//! the engine. `main.rs` only wires these together, so tests can build the same router
//! in-process with [`http::router::app`].
//!
//! - [`http`]: input and output ports over HTTP (pages, server functions, the JSON API,
//!   push, exports, `/metrics`, the live websocket) and their middleware.
//! - [`state`]: what runs: the change path, the monitor task (sources → history → analyze
//!   → act → verify), the hub that serializes live frames, before/afters.
//! - [`persist`]: the SQLite journal, audit log, snapshots and tokens; alerts and history.
//! - [`report`]: performance reports (HTML with inline SVG, CSV) of a period.
//! - [`svg`]: charts drawn on the server with plotters' SVG backend, for exports and
//!   reports.

// Leptos view types nest deeply; their layout exceeds the default query depth.
#![recursion_limit = "256"]

pub mod assets;
pub mod config;
pub mod http;
pub mod persist;
pub mod report;
pub mod shutdown;
pub mod state;
pub mod svg;
