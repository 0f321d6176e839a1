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

/// What running kinds share across their sources' restarts and with the server: the
/// load balancers' desired states and the fleets' handles. The server owns one (its
/// monitor) and hands it to every source it starts and to the actuators; nothing in
/// this crate keeps such state in a process-wide static.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// Every HAProxy pool's desired state (servers taken out, weights set).
    pub lb: sources::haproxy::DesiredStates,
    /// Every running Prometheus-compatible store's handle.
    pub fleets: sources::prometheus::FleetHandles,
}
