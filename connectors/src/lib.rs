//! perfpilot's adapters to the outside world, laid out the way Vector lays out its
//! `sources/` and `sinks/`: one module per kind, its configuration next to its code.
//!
//! - [`sources`]: where samples come from (the host, pushes; next PostgreSQL, Redis,
//!   memcached, health probes, HAProxy, Prometheus). Each implements
//!   [`engine::source::Poll`] or [`engine::source::runtime::Source`].
//! - [`actuators`]: how the optimizer acts (webhook, command; next database settings,
//!   cache memory, load-balancer weights). Each implements [`engine::actuator::Actuator`].
//!
//! The engine defines the ports and knows no client library; the heavy client crates are
//! compiled here only. Settings a connector will not take come back as a [`Refusal`]
//! (field and rule).

pub mod actuators;
pub mod files;
mod refusal;
pub mod sinks;
pub mod sources;

pub use refusal::Refusal;
