//! The perfpilot server: configuration, the HTTP router and its middleware, static
//! assets, health endpoints and graceful shutdown. `main.rs` only wires these together so
//! that tests can build the same router in-process with [`router::app`].

// Leptos view types nest deeply; their layout exceeds the default query depth.
#![recursion_limit = "256"]

pub mod actuate;
pub mod api;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod config;
pub mod export;
pub mod guard;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod persist;
pub mod proof;
pub mod push;
pub mod router;
pub mod shutdown;
pub mod state;
