//! What every database kind (PostgreSQL, MySQL/MariaDB) shares: the resource a database
//! is, with the seed's default target and the guardrails any tuning of it runs under.

use engine::actuator::Guardrail;
use engine::model::{Resource, ResourceId, ResourceSettings, ResourceType, SourceSpec};

use super::MetricDef;
use crate::Refusal;

/// The resource `id` named `name`, read by `spec`, with `metrics` and `defaults` as its
/// settings.
pub(crate) fn resource(
    id: ResourceId,
    name: &str,
    metrics: &[MetricDef],
    spec: SourceSpec,
    defaults: &ResourceSettings,
) -> Result<Resource, Refusal> {
    let mut resource = Resource::new(id, ResourceType::Database, name);
    resource.metrics = MetricDef::metrics(metrics);
    resource.settings = defaults.clone();
    resource.settings.guardrails = guardrails();
    resource.source = Some(spec);
    resource
        .validate()
        .map_err(|err| Refusal::of_engine("resource", err))?;
    Ok(resource)
}

/// Any tuning of a database is rolled back at once if its probe latency doubles or the
/// host runs out of memory while the change is verified (connection limits and caches
/// cost memory).
fn guardrails() -> Vec<Guardrail> {
    vec![
        Guardrail {
            resource: None,
            metric: "latency_p95".into(),
            max: None,
            max_factor: Some(2.0),
            floor: None,
            hold: None,
        },
        Guardrail {
            resource: Some("memory".into()),
            metric: "used_pct".into(),
            max: Some(90.0),
            max_factor: None,
            floor: None,
            hold: None,
        },
    ]
}
