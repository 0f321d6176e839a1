//! Sources: one module per kind of thing perfpilot reads, each with its configuration next
//! to its code. Every one is an [`engine::source`] run by the engine's source runtime.

pub mod host;
pub mod push;

/// Whether a source that declares `owns` (resource ids, or a prefix ending in `*` such as
/// `custom:*`) produces the samples of `resource`.
pub fn owns(owns: &[String], resource: &str) -> bool {
    owns.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    })
}
