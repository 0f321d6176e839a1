//! Configured sources follow the configuration. A database (cache, …) is a resource whose
//! `source` spec says where its samples come from; adding, changing or removing one is a
//! counted change like any other, and after every such change (and at start-up) the
//! running sources are reconciled with the specs: new ones start, changed ones restart,
//! removed ones stop. The `[[postgres]]` entries of the configuration file are applied at
//! start-up as changes by `configuration`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use app::databases::{DatabaseAdded, NewDatabase};
use app::error::AppError;
use app::identity::Identity;
use connectors::sources::postgres::{self, PostgresEntry, PostgresSettings};
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

impl Monitor {
    /// Adds a PostgreSQL database: checks the settings, connects once with exactly them
    /// (refusing with the reason: unreachable, authentication failed, database missing, a
    /// role without `pg_monitor`), keeps a password sent inline under
    /// `<data-dir>/secrets/` (mode 0600), then adds the resource as a counted change.
    /// Shared by `POST /api/v1/databases` and the UI.
    pub async fn add_database(
        &self,
        new: NewDatabase,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
        actor: Identity,
    ) -> Result<DatabaseAdded, AppError> {
        let id =
            postgres::resource_id(&new.name).map_err(|rule| AppError::invalid("name", rule))?;
        if self.store.state().resources.contains_key(&id) {
            return Err(
                AppError::new(409, format!("resource `{id}` already exists")).with_field("name"),
            );
        }
        let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let mut settings = PostgresSettings {
            url: new.url.trim().to_owned(),
            password_file,
            password_env,
            probe_query: blank(new.probe_query),
            group: blank(new.group),
            statement_timeout_ms: 2_000,
            idle_in_transaction_limit_s: 60,
        };
        settings.validate().map_err(invalid)?;
        // Checked with the password as sent, before it is written anywhere.
        let password = match blank(new.password) {
            Some(password) => Some(password),
            None => settings.password().map_err(invalid)?,
        };
        let inline = password.is_some()
            && settings.password_file.is_none()
            && settings.password_env.is_none();
        let report = postgres::check_with(&settings, password.clone())
            .await
            .map_err(|reason| {
                AppError::new(422, format!("cannot use this database: {reason}")).with_field("url")
            })?;
        if let (true, Some(password)) = (inline, &password) {
            settings.password_file = Some(self.store_secret(&new.name, password)?);
        }
        let resource =
            postgres::resource(&new.name, &settings, &self.resource_defaults).map_err(invalid)?;
        let record = self
            .apply(Mutation::AddResource { resource }, actor)
            .await?;
        Ok(DatabaseAdded {
            change: record.change,
            resource: id.to_string(),
            server_version: report.server_version,
            statements: report.statements,
        })
    }

    /// The databases configured with the same group as `resource` (shards of one logical
    /// database), with their latest transactions/s, probe p95 and connections, and the
    /// load skew.
    pub fn database_group(&self, resource: &str) -> Option<engine::database::DatabaseGroup> {
        let group_of = |r: &Resource| {
            r.source
                .as_ref()?
                .settings
                .get("group")?
                .as_str()
                .map(str::to_owned)
        };
        let state = self.store.state();
        let group = group_of(state.resources.get(resource)?)?;
        let history = self.history();
        let now = engine::time::unix_now_ms();
        let latest = |id: &str, metric: &str| {
            let series = history.get(history.id(&engine::series::SeriesKey::new(id, metric))?)?;
            let (at, value) = series.latest()?;
            (now - at <= 15_000).then_some(f64::from(value?))
        };
        let shards: Vec<engine::database::Shard> = state
            .resources
            .values()
            .filter(|r| group_of(r).as_deref() == Some(group.as_str()))
            .map(|r| engine::database::Shard {
                resource: r.id.to_string(),
                name: r.name.clone(),
                tps: latest(r.id.as_str(), "tps"),
                latency_p95: latest(r.id.as_str(), "latency_p95"),
                connections_pct: latest(r.id.as_str(), "connections_pct"),
            })
            .collect();
        let skew = engine::database::DatabaseGroup::skew_of(&shards);
        Some(engine::database::DatabaseGroup {
            group,
            shards,
            skew,
        })
    }

    /// Creates an index the latest advice of `resource` recommends (only those: nothing
    /// else can be asked for), audits it as `actor`'s and opens its before/after.
    pub async fn create_index(
        &self,
        resource: &str,
        table: &str,
        columns: &[String],
        actor: &Identity,
    ) -> Result<String, AppError> {
        let (id, settings) = self.database(resource)?;
        let advised = self
            .advice_of(resource)
            .and_then(|a| a.indexes)
            .is_some_and(|a| {
                a.missing
                    .iter()
                    .any(|c| c.table == table && c.columns == columns)
            });
        if !advised {
            return Err(AppError::invalid(
                "index",
                format!(
                    "{table} ({}) is not an index the advice recommends now",
                    columns.join(", ")
                ),
            ));
        }
        let name = postgres::create_index(&settings, table, columns)
            .await
            .map_err(|reason| AppError::new(422, format!("cannot create the index: {reason}")))?;
        self.index_event(
            &id,
            format!("index {name} created on {table} ({})", columns.join(", ")),
            actor,
        );
        Ok(name)
    }

    /// Drops an index perfpilot created (the rollback of [`Monitor::create_index`]).
    pub async fn drop_index(
        &self,
        resource: &str,
        table: &str,
        name: &str,
        actor: &Identity,
    ) -> Result<(), AppError> {
        let (id, settings) = self.database(resource)?;
        postgres::drop_index(&settings, table, name)
            .await
            .map_err(|reason| AppError::new(422, format!("cannot drop the index: {reason}")))?;
        self.index_event(&id, format!("index {name} dropped"), actor);
        Ok(())
    }

    /// A database resource and its connection settings.
    fn database(
        &self,
        resource: &str,
    ) -> Result<(engine::model::ResourceId, PostgresSettings), AppError> {
        let state = self.store.state();
        let found = state.resources.get(resource).ok_or_else(|| {
            AppError::not_found(format!("resource: no resource with id {resource:?}"))
        })?;
        let settings = found
            .source
            .as_ref()
            .filter(|s| s.kind == postgres::KIND)
            .ok_or_else(|| {
                AppError::invalid(
                    "resource",
                    format!("{resource} is not a PostgreSQL database"),
                )
            })
            .and_then(|spec| PostgresSettings::from_spec(spec).map_err(invalid))?;
        Ok((found.id.clone(), settings))
    }

    /// What the source of `resource` last reported besides series.
    pub fn source_details(&self, resource: &str) -> Option<Arc<serde_json::Value>> {
        self.sources
            .statuses()
            .values()
            .find(|status| connectors::sources::owns(&status.resources, resource))
            .and_then(|status| status.details.clone())
    }

    fn advice_of(&self, resource: &str) -> Option<engine::database::TopQueries> {
        serde_json::from_value((*self.source_details(resource)?).clone()).ok()
    }

    /// An index made or dropped: a mark on the resource (its before/after shows the
    /// effect) in the audit log as `actor`'s.
    fn index_event(&self, id: &engine::model::ResourceId, label: String, actor: &Identity) {
        if let Err(err) = self.add_mark(id, &label, actor) {
            tracing::warn!(resource = %id, %err, "No before/after for the index change");
        }
    }

    /// A database's connection settings as its page shows them (never the password).
    pub fn database_connection(
        &self,
        resource: &str,
    ) -> Result<app::databases::DatabaseConnection, AppError> {
        let (_, settings) = self.database(resource)?;
        let secrets = self.secrets_dir();
        let password = match (&settings.password_file, &settings.password_env) {
            (Some(path), _) if secrets.as_ref().is_some_and(|dir| path.starts_with(dir)) => {
                "stored on the server".to_owned()
            }
            (Some(path), _) => format!("read from {}", path.display()),
            (None, Some(env)) => format!("read from ${env}"),
            (None, None) => "none".to_owned(),
        };
        Ok(app::databases::DatabaseConnection {
            url: settings.url,
            probe_query: settings.probe_query,
            group: settings.group,
            password,
        })
    }

    /// Changes a database's URL, probe query or group (and, when one is given, its
    /// password) after connecting once with the new settings: a counted change that
    /// restarts its source. Refusals say why and change nothing.
    pub async fn update_database(
        &self,
        resource: &str,
        edit: NewDatabase,
        actor: Identity,
    ) -> Result<u64, AppError> {
        let (id, current) = self.database(resource)?;
        let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let mut settings = PostgresSettings {
            url: edit.url.trim().to_owned(),
            probe_query: blank(edit.probe_query),
            group: blank(edit.group),
            ..current
        };
        settings.validate().map_err(invalid)?;
        let new_password = blank(edit.password);
        let password = match &new_password {
            Some(password) => Some(password.clone()),
            None => settings.password().map_err(invalid)?,
        };
        postgres::check_with(&settings, password)
            .await
            .map_err(|reason| {
                AppError::new(422, format!("cannot use this database: {reason}")).with_field("url")
            })?;
        if let Some(password) = &new_password {
            let name = id.as_str().strip_prefix("database:").unwrap_or(id.as_str());
            settings.password_file = Some(self.store_secret(name, password)?);
            settings.password_env = None;
        }
        let record = self
            .apply(
                Mutation::SetSource {
                    id,
                    source: settings.spec(),
                },
                actor,
            )
            .await?;
        Ok(record.change)
    }

    /// Removes a configured resource (a database): a counted change; a password this
    /// server stored for it goes too. Built-in resources (the host's, pushes') are refused.
    pub async fn remove_configured(&self, id: &str, actor: Identity) -> Result<u64, AppError> {
        let id = engine::model::ResourceId::new(id)?;
        let current = self.store.state().resources.get(&id).cloned();
        if current.as_ref().is_some_and(|r| r.source.is_none()) {
            return Err(AppError::new(
                409,
                format!("resource `{id}` belongs to a built-in source (the host or pushes) and cannot be removed"),
            ));
        }
        let record = self
            .apply(Mutation::RemoveResource { id: id.clone() }, actor)
            .await?;
        if let (Some(dir), Some(name)) = (self.secrets_dir(), id.as_str().strip_prefix("database:"))
        {
            let _ = std::fs::remove_file(dir.join(format!("database-{name}.password")));
        }
        Ok(record.change)
    }

    /// Where passwords sent to this server are kept: `<data-dir>/secrets/`.
    pub fn secrets_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.join("secrets"))
    }

    /// Writes a password only perfpilot's user can read; the path is what the source's
    /// settings keep.
    fn store_secret(&self, name: &str, password: &str) -> Result<PathBuf, AppError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.secrets_dir().ok_or_else(|| {
            AppError::invalid(
                "password",
                "cannot be stored with --ephemeral (nothing is written); use password_file or password_env",
            )
        })?;
        let failed = |err: std::io::Error| {
            AppError::unavailable(format!(
                "cannot store the password under {}: {err}",
                dir.display()
            ))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(failed)?;
        let path = dir.join(format!("database-{name}.password"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(failed)?;
        file.write_all(password.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed)?;
        Ok(path)
    }
}

/// A settings rule broken: 422 naming the field (the rule's text starts with it).
fn invalid(rule: String) -> AppError {
    let field = rule.split(':').next().unwrap_or("body").to_owned();
    AppError::new(422, rule).with_field(&field)
}

/// The running source a resource's spec describes.
fn build(resource: &Resource, interval: std::time::Duration) -> Result<Box<dyn Source>, String> {
    let spec = resource.source.as_ref().ok_or("no source")?;
    match spec.kind.as_str() {
        postgres::KIND => {
            let settings = postgres::PostgresSettings::from_spec(spec)?;
            Ok(Box::new(postgres::source(resource, settings, interval)?))
        }
        other => Err(format!("unknown source kind {other:?}")),
    }
}
