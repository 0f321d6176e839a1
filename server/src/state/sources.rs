//! Configured sources follow the configuration. A database (cache, …) is a resource whose
//! `source` spec says where its samples come from; adding, changing or removing one is a
//! counted change like any other, and after every such change (and at start-up) the
//! running sources are reconciled with the specs: new ones start, changed ones restart,
//! removed ones stop. The `[[postgres]]` entries of the configuration file are applied at
//! start-up as changes by `configuration`.

use std::collections::BTreeMap;
use std::sync::Arc;

use app::identity::Identity;
use connectors::sources::postgres::{self, PostgresEntry};
use engine::changes::Mutation;
use engine::model::{Resource, SourceSpec};
use engine::source::runtime::Source;

use super::monitor::Monitor;

/// The specs of the configured sources now running, by resource id; one reconcile at a
/// time.
pub type Running = Arc<tokio::sync::Mutex<BTreeMap<String, SourceSpec>>>;

impl Monitor {
    /// Starts, restarts and stops configured sources until they match the configuration.
    pub(crate) fn reconcile_sources(&self) {
        let monitor = self.clone();
        tokio::spawn(async move {
            let mut running = monitor.configured.lock().await;
            let state = monitor.store.state();
            let desired: BTreeMap<String, &Resource> = state
                .resources
                .values()
                .filter(|r| r.source.is_some())
                .map(|r| (r.id.to_string(), r.as_ref()))
                .collect();
            let stale: Vec<String> = running
                .iter()
                .filter(|(id, spec)| desired.get(*id).and_then(|r| r.source.as_ref()) != Some(spec))
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                monitor.sources.remove(&id).await;
                running.remove(&id);
                tracing::info!(source = %id, "Stopped a configured source");
            }
            for (id, resource) in desired {
                if running.contains_key(&id) {
                    continue;
                }
                let spec = resource.source.clone().expect("filtered above");
                match build(resource, monitor.interval) {
                    Ok(source) => {
                        monitor.sources.add(source).await;
                        running.insert(id.clone(), spec);
                        tracing::info!(source = %id, "Started a configured source");
                    }
                    // Validated when it was applied; only a connector that changed its
                    // rules since the configuration was stored gets here.
                    Err(err) => {
                        tracing::error!(source = %id, %err, "Cannot start a configured source")
                    }
                }
            }
        });
    }

    /// Applies the `[[postgres]]` entries of the configuration file: a database the
    /// configuration does not have yet is added, one whose settings differ is updated, each
    /// a counted change by `configuration`.
    pub async fn apply_configured(&self, entries: &[PostgresEntry]) -> anyhow::Result<()> {
        let defaults = self.resource_defaults.clone();
        for entry in entries {
            let settings = entry.settings();
            let resource = postgres::resource(&entry.name, &settings, &defaults)
                .map_err(|err| anyhow::anyhow!("postgres {:?}: {err}", entry.name))?;
            let current = self.store.state().resources.get(&resource.id).cloned();
            let mutation = match current {
                None => Mutation::AddResource { resource },
                Some(current) if current.source.as_ref() != resource.source.as_ref() => {
                    Mutation::SetSource {
                        id: resource.id.clone(),
                        source: settings.spec(),
                    }
                }
                Some(_) => continue,
            };
            self.apply(mutation, Identity::configuration())
                .await
                .map_err(|err| anyhow::anyhow!("postgres {:?}: {err}", entry.name))?;
        }
        Ok(())
    }
}

/// The running source a resource's spec describes.
fn build(resource: &Resource, interval: std::time::Duration) -> Result<Box<dyn Source>, String> {
    let spec = resource.source.as_ref().ok_or("no source")?;
    match spec.kind.as_str() {
        postgres::KIND => {
            let settings = postgres::PostgresSettings::from_spec(spec)?;
            settings.validate()?;
            Ok(Box::new(postgres::source(resource, settings, interval)))
        }
        other => Err(format!("unknown source kind {other:?}")),
    }
}
