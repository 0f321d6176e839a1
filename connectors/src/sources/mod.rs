//! Sources: one module per kind of thing perfpilot reads, each with its configuration next
//! to its code. Every one is an [`engine::source`] run by the engine's source runtime.

pub mod host;
pub mod postgres;
pub mod push;

/// Whether a source that declares `owns` (resource ids, or a prefix ending in `*` such as
/// `custom:*`) produces the samples of `resource`.
pub fn owns(owns: &[String], resource: &str) -> bool {
    owns.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    })
}

/// Checks a configured source's settings without connecting; the error names the field
/// and the rule.
pub fn validate(spec: &engine::model::SourceSpec) -> Result<(), String> {
    match spec.kind.as_str() {
        postgres::KIND => postgres::PostgresSettings::from_spec(spec)?
            .validate()
            .map(drop),
        other => Err(format!(
            "kind: unknown source kind {other:?} (known: postgres)"
        )),
    }
}
