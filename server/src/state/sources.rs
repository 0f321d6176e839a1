//! Configured sources follow the configuration. A database or cache is a resource whose
//! `source` spec says where its samples come from; adding, changing or removing one is a
//! counted change like any other, and after every such change (and at start-up) the
//! running sources are reconciled with the specs: new ones start, changed ones restart,
//! removed ones stop. The configured sources' entries of the configuration file
//! (`[[postgres]]`, `[[redis]]`, …) are applied at start-up as changes by `configuration`.
//! Every kind goes through one path (`ConfiguredSources::prepare_add`,
//! `ConfiguredSources::prepare_update`); [`connectors::sources::Configured`] delegates to
//! the kind, so nothing here names one (the PostgreSQL-only index and connection pages
//! aside).
//!
//! [`ConfiguredSources`] does everything but the change itself: it checks the settings,
//! connects once, stores a password and hands back the [`Mutation`] (or, for an index, an
//! invalidation or a warm-up, the `Mark` to make). The monitor's wrappers of the same
//! names ([`crate::state::Monitor::add_configured`] and the others, in `state::change`)
//! apply it on the change path and open the mark's before/after.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use app::caches::{CacheAdded, Invalidation, NewCache};
use app::databases::{DatabaseAdded, NewDatabase};
use app::error::AppError;
use app::identity::Identity;
use connectors::sources::postgres::{self, PostgresSettings};
use connectors::sources::{Checked, Configured, Keys, KindEntry};
use connectors::Refusal;
use engine::changes::{ChangeStore, Mutation};
use engine::history::History;
use engine::model::{Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::source::runtime::Sources;
use engine::source::SourceFamily;
use engine::sync::read;

use crate::persist::Persist;

/// The specs of the configured sources now running, by resource id; one reconcile at a
/// time.
pub type Running = Arc<tokio::sync::Mutex<BTreeMap<String, SourceSpec>>>;

/// Configured sources (databases, caches, fleets, load balancers): the running ones kept
/// matching the configuration, fleets' handles, database and cache groups, and the checks
/// that prepare each change to them. Cheap to clone: shared handles and a few settings.
#[derive(Clone)]
pub struct ConfiguredSources {
    pub(super) store: Arc<ChangeStore>,
    /// Read for the latest values of groups and warm-ups.
    pub(super) history: Arc<RwLock<History>>,
    pub(super) sources: Arc<Sources>,
    /// Warm-ups are audited.
    pub(super) persist: Persist,
    /// The configured sources running now.
    pub(super) running: Running,
    /// What the running kinds share (load balancers' desired states, fleets' handles).
    pub(super) registries: connectors::Registries,
    /// How often configured sources (databases, caches) are read.
    pub(super) interval: Duration,
    /// Settings of resources added from the configuration file.
    pub(super) resource_defaults: ResourceSettings,
    /// Where stored secrets go (`None` with `--ephemeral`).
    pub(super) data_dir: Option<PathBuf>,
    /// `[[cache_level]]`: resources counted as levels of cache groups.
    pub(super) cache_levels: Arc<[crate::config::CacheLevelEntry]>,
}

/// A configured source checked and ready to be added: the change that adds it, and the
/// answer once the change is applied (from its change number).
#[must_use = "nothing is added until the mutation is applied"]
pub(crate) struct Prepared<T> {
    pub(crate) mutation: Mutation,
    pub(crate) answer: Box<dyn FnOnce(u64) -> T + Send>,
}

impl<T: 'static> Prepared<T> {
    fn new(mutation: Mutation, answer: impl FnOnce(u64) -> T + Send + 'static) -> Prepared<T> {
        Prepared {
            mutation,
            answer: Box::new(answer),
        }
    }

    /// The same change, answered with `f` of this answer.
    fn map<U: 'static>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Prepared<U> {
        let answer = self.answer;
        Prepared::new(self.mutation, move |change| f(answer(change)))
    }
}

/// What an operation did to a resource (an index made or dropped, keys invalidated, a
/// warm-up): a mark on it, so its before/after shows the effect.
#[must_use = "the mark is made by the monitor (`Monitor::add_mark`)"]
pub(crate) struct Mark {
    pub(crate) resource: ResourceId,
    pub(crate) label: String,
}

impl ConfiguredSources {
    /// What the running kinds share (load balancers' desired states, fleets' handles).
    pub(crate) fn registries(&self) -> &connectors::Registries {
        &self.registries
    }

    /// Starts, restarts and stops configured sources until they match the configuration.
    pub(crate) fn reconcile_sources(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut running = this.running.lock().await;
            let state = this.store.state();
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
                this.sources.remove(&id).await;
                running.remove(&id);
                tracing::info!(source = %id, "Stopped a configured source");
            }
            for (id, resource) in desired {
                if running.contains_key(&id) {
                    continue;
                }
                let spec = resource.source.clone().expect("filtered above");
                // Built on the blocking pool: building reads the files its settings name
                // (a CA, a fleet's token), bounded and never a FIFO, but still file I/O.
                let built =
                    {
                        let (spec, resource, interval, registries) = (
                            spec.clone(),
                            resource.clone(),
                            this.interval,
                            this.registries.clone(),
                        );
                        tokio::task::spawn_blocking(move || {
                            Configured::from_spec(&spec).map_err(String::from).and_then(
                                |configured| configured.source(&resource, interval, &registries),
                            )
                        })
                        .await
                        .unwrap_or_else(|err| Err(format!("building the source failed: {err}")))
                    };
                match built {
                    Ok(source) => {
                        this.sources.add(source).await;
                        running.insert(id.clone(), spec);
                        tracing::info!(source = %id, "Started a configured source");
                    }
                    // Validated when it was applied; only a connector that changed its
                    // rules since the configuration was stored gets here.
                    Err(err) => {
                        let err = engine::redact::redact(&err);
                        tracing::error!(source = %id, %err, "Cannot start a configured source")
                    }
                }
            }
        });
    }

    /// Hands every running fleet its configuration as of now (targets at all levels,
    /// evaluation settings) and forgets fleets the configuration no longer has.
    pub(crate) fn sync_fleets(&self) {
        let state = self.store.state();
        self.registries.fleets.retain(|id| {
            engine::model::ResourceId::new(id)
                .ok()
                .is_some_and(|id| state.resources.contains_key(&id))
        });
        for handle in self.registries.fleets.all() {
            self.sync_fleet(&handle, &state);
        }
    }

    fn sync_fleet(
        &self,
        handle: &connectors::sources::prometheus::Fleet,
        state: &engine::changes::State,
    ) {
        let resource = engine::model::ResourceId::new(&handle.id)
            .ok()
            .and_then(|id| state.resources.get(&id).cloned());
        if let Some(resource) = resource {
            if let Some(fleet) = &resource.fleet {
                handle.set_fleet((**fleet).clone(), resource.settings.clone());
            }
        }
    }

    /// The running fleet `id`, with the configuration as of now.
    pub fn fleet(
        &self,
        id: &str,
    ) -> Result<std::sync::Arc<connectors::sources::prometheus::Fleet>, AppError> {
        let state = self.store.state();
        let resource = engine::model::ResourceId::new(id)
            .ok()
            .and_then(|rid| state.resources.get(&rid).cloned())
            .filter(|r| r.fleet.is_some())
            .ok_or_else(|| AppError::new(404, format!("there is no fleet `{id}`")))?;
        let handle = self.registries.fleets.get(id).ok_or_else(|| {
            let why = self
                .sources
                .statuses()
                .get(resource.id.as_str())
                .and_then(|s| s.health.problem())
                .unwrap_or_else(|| "its source is starting".into());
            AppError::new(503, format!("fleet `{id}` has not been read yet: {why}"))
        })?;
        self.sync_fleet(&handle, &state);
        Ok(handle)
    }

    /// The change that makes the configuration hold the file's database or cache `entry`:
    /// an addition when the configuration does not have it yet, a new source when its
    /// settings differ, `None` when it matches.
    pub(crate) fn configured_change(
        &self,
        entry: &crate::config::ConfiguredEntry,
    ) -> anyhow::Result<Option<Mutation>> {
        let resource = entry
            .settings
            .resource(&entry.name, &self.resource_defaults)
            .map_err(|err| anyhow::anyhow!("{}: {err}", entry_label(entry)))?;
        let current = self.store.state().resources.get(&resource.id).cloned();
        Ok(match current {
            None => Some(Mutation::AddResource { resource }),
            Some(current)
                if current.source.as_ref() != resource.source.as_ref()
                    || current.fleet.as_ref().map(|f| &f.metrics)
                        != resource.fleet.as_ref().map(|f| &f.metrics) =>
            {
                Some(Mutation::SetSource {
                    id: resource.id.clone(),
                    source: entry.settings.spec(),
                    fleet_metrics: entry.settings.fleet_metrics(),
                })
            }
            Some(_) => None,
        })
    }

    /// Prepares adding a database or cache: checks the settings, connects once with
    /// exactly them (refusing with the reason: unreachable, authentication failed, …) and
    /// keeps a password sent inline under `<data-dir>/secrets/` (mode 0600); adding the
    /// resource is then a counted change. Every kind, from the UI and the API, comes here.
    pub(crate) async fn prepare_add(
        &self,
        name: &str,
        mut settings: Configured,
        password: Option<String>,
    ) -> Result<Prepared<(u64, ResourceId, Checked)>, AppError> {
        // The one rule of names (`engine::names`), before anything else: a name is part
        // of the resource id, of URLs and of the stored password's file name.
        let id = settings.resource_id(name).map_err(invalid)?;
        if self.store.state().resources.contains_key(&id) {
            return Err(
                AppError::new(409, format!("resource `{id}` already exists")).with_field("name"),
            );
        }
        settings.validate().map_err(invalid)?;
        let (file, env) = settings.password_location();
        let inline = password.is_some() && file.is_none() && env.is_none();
        // Checked with the password as sent, before it is written anywhere. The file is
        // read, the server connected to and the password stored before the change path
        // takes its lock, each off the runtime's workers (the read and the write on the
        // blocking pool, the connection as its connector does it), so a slow or hostile
        // password file, CA or server delays only this request, which the request timeout
        // still ends.
        let password = match password {
            Some(password) => Some(password),
            None => settings
                .password()
                .await
                .map_err(|reason| unreadable_password(&settings, reason))?,
        };
        let checked = settings
            .check(password.clone())
            .await
            .map_err(|refusal| refused(&settings, &refusal))?;
        if let (true, Some(password)) = (inline, &password) {
            settings.keep_password_in(self.store_secret(&id, password).await?);
        }
        let resource = settings
            .resource(name, &self.resource_defaults)
            .map_err(invalid)?;
        Ok(Prepared::new(
            Mutation::AddResource { resource },
            move |change| (change, id, checked),
        ))
    }

    /// Prepares changing a configured source's settings (and, when one is given, its
    /// password) after connecting once with the new ones: the change restarts its source.
    /// Refusals say why and change nothing.
    pub(crate) async fn prepare_update(
        &self,
        id: ResourceId,
        mut settings: Configured,
        new_password: Option<String>,
    ) -> Result<Mutation, AppError> {
        settings.validate().map_err(invalid)?;
        let password = match &new_password {
            Some(password) => Some(password.clone()),
            None => settings
                .password()
                .await
                .map_err(|reason| unreadable_password(&settings, reason))?,
        };
        settings
            .check(password)
            .await
            .map_err(|refusal| refused(&settings, &refusal))?;
        if let Some(password) = &new_password {
            settings.keep_password_in(self.store_secret(&id, password).await?);
        }
        Ok(Mutation::SetSource {
            id,
            source: settings.spec(),
            fleet_metrics: settings.fleet_metrics(),
        })
    }
}

impl ConfiguredSources {
    /// Prepares adding a PostgreSQL database (refusing a role without `pg_monitor` too).
    /// Shared by `POST /api/v1/databases` and the UI.
    pub(crate) async fn prepare_database(
        &self,
        new: NewDatabase,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
    ) -> Result<Prepared<DatabaseAdded>, AppError> {
        let kind = database_kind(new.kind.as_deref())?;
        let fields = DatabaseFields {
            url: new.url.trim().to_owned(),
            password_file,
            password_env,
            probe_query: blank(new.probe_query),
            group: blank(new.group),
        };
        let settings = Configured::from_spec(&SourceSpec {
            kind: kind.kind.to_owned(),
            settings: serde_json::to_value(&fields)
                .map_err(|err| AppError::new(500, err.to_string()))?,
        })
        .map_err(invalid)?;
        let prepared = self
            .prepare_add(&new.name, settings, blank(new.password))
            .await?;
        Ok(prepared.map(|(change, id, checked)| DatabaseAdded {
            change,
            resource: id.to_string(),
            server_version: checked.server_version,
            statements: checked.statements.unwrap_or(false),
        }))
    }

    /// Prepares adding a Redis or memcached cache. Shared by `POST /api/v1/caches` and the
    /// UI.
    pub(crate) async fn prepare_cache(
        &self,
        new: NewCache,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
    ) -> Result<Prepared<CacheAdded>, AppError> {
        let settings =
            connectors::sources::cache::configured(connectors::sources::cache::NewCache {
                kind: new.kind,
                address: new.url.trim().to_owned(),
                tls_ca_file: blank(new.tls_ca_file).map(PathBuf::from),
                username: blank(new.username),
                password_file,
                password_env,
                group: blank(new.group),
                level: new.level.unwrap_or(2),
            })
            .map_err(invalid)?;
        let prepared = self
            .prepare_add(&new.name, settings, blank(new.password))
            .await?;
        Ok(prepared.map(|(change, id, checked)| CacheAdded {
            change,
            resource: id.to_string(),
            server_version: checked.server_version,
            tuning_unavailable: checked.tuning_unavailable,
        }))
    }

    /// The databases configured with the same group as `resource` (shards of one logical
    /// database), with their latest transactions/s, probe p95 and connections, and the
    /// load skew.
    pub fn database_group(&self, resource: &str) -> Option<engine::database::DatabaseGroup> {
        let (group, members) = self.group_of(resource)?;
        let shards: Vec<engine::database::Shard> = members
            .iter()
            .map(|r| engine::database::Shard {
                resource: r.id.to_string(),
                name: r.name.clone(),
                tps: self.latest(r.id.as_str(), "tps"),
                latency_p95: self.latest(r.id.as_str(), "latency_p95"),
                connections_pct: self.latest(r.id.as_str(), "connections_pct"),
            })
            .collect();
        let skew = engine::database::DatabaseGroup::skew_of(&shards);
        Some(engine::database::DatabaseGroup {
            group,
            shards,
            skew,
        })
    }

    /// The caches configured with the same group as `resource` (and the `[[cache_level]]`
    /// resources of that group): its levels, nearest the application first, with their
    /// latest hit ratio and the combined one.
    pub fn cache_group(&self, resource: &str) -> Option<engine::cache::CacheGroup> {
        let state = self.store.state();
        let extra_group = self
            .cache_levels
            .iter()
            .find(|l| l.resource == resource)
            .map(|l| l.group.clone());
        let (group, members) = match self.group_of(resource) {
            Some(found) => found,
            None => (extra_group?, Vec::new()),
        };
        let level_of = |r: &Resource| {
            r.source
                .as_ref()
                .and_then(|s| s.settings.get("level")?.as_u64())
                .map_or(2, |l| l.min(9) as u8)
        };
        let level = |id: &str, name: &str, level: u8| engine::cache::CacheLevel {
            resource: id.to_owned(),
            name: name.to_owned(),
            level,
            hit_ratio: self.latest(id, "hit_ratio"),
            hits_per_s: self.latest(id, "hits_per_s"),
            misses_per_s: self.latest(id, "misses_per_s"),
        };
        let mut levels: Vec<engine::cache::CacheLevel> = members
            .iter()
            .map(|r| level(r.id.as_str(), &r.name, level_of(r)))
            .collect();
        for extra in self.cache_levels.iter().filter(|l| l.group == group) {
            let name = state
                .resources
                .get(extra.resource.as_str())
                .map_or(extra.resource.as_str(), |r| r.name.as_str());
            levels.push(level(&extra.resource, name, extra.level));
        }
        Some(engine::cache::CacheGroup::of(group, levels))
    }

    /// The group of `resource` and every configured resource of the same kind in it.
    fn group_of(&self, resource: &str) -> Option<(String, Vec<Arc<Resource>>)> {
        let state = self.store.state();
        let this = state.resources.get(resource)?;
        let kind = this.resource_type;
        let group = Configured::from_spec(this.source.as_ref()?)
            .ok()?
            .group()?
            .to_owned();
        let members = state
            .resources
            .values()
            .filter(|r| r.resource_type == kind)
            .filter(|r| {
                r.source
                    .as_ref()
                    .and_then(|s| Configured::from_spec(s).ok())
                    .is_some_and(|c| c.group() == Some(group.as_str()))
            })
            .cloned()
            .collect();
        Some((group, members))
    }

    /// The latest value of a series while it is fresh (at most 15 s old).
    fn latest(&self, resource: &str, metric: &str) -> Option<f64> {
        let history = read(&self.history);
        let series = history.get(history.id(&engine::series::SeriesKey::new(resource, metric))?)?;
        let (at, value) = series.latest()?;
        (engine::time::unix_now_ms() - at <= 15_000).then_some(f64::from(value?))
    }

    /// The warm-up of a cache that came back cold (its `warm_url` or `warm_command`), for
    /// its caller to run on its own task: it runs it, audits it, and ends with the mark
    /// that makes the warm-up's before/after show the hit ratio it brought back (`None`
    /// when it did not succeed). `None` when the cache has no warm-up.
    pub(crate) fn prepare_warm_up(
        &self,
        resource: &str,
        actuators: connectors::actuators::Actuators,
    ) -> Option<impl Future<Output = Option<Mark>> + Send + 'static> {
        let state = self.store.state();
        let resource = state.resources.get(resource).cloned()?;
        let action = resource
            .source
            .as_ref()
            .and_then(|spec| Configured::from_spec(spec).ok())
            .and_then(|configured| configured.warm_action())?;
        let this = self.clone();
        Some(async move {
            let at = engine::time::unix_now_ms();
            let observed = this
                .latest(resource.id.as_str(), "hit_ratio")
                .unwrap_or(0.0);
            let Some(mut request) =
                engine::actions::ActionRequest::new(&resource, &[] as &[f64], observed, at)
            else {
                tracing::warn!(resource = %resource.id, "No warm-up: the cache has no target to report against");
                return None;
            };
            request.dry_run = false;
            request.recommendation.summary = "warm the cache up after a cold start".into();
            let execution = actuators
                .execute(&request, &action, resource.source.as_ref())
                .await;
            let event = execution.event;
            let result = match &event.outcome {
                engine::actions::ActionOutcome::Succeeded { detail } if detail.is_empty() => {
                    "succeeded".to_owned()
                }
                engine::actions::ActionOutcome::Succeeded { detail } => {
                    format!("succeeded: {detail}")
                }
                engine::actions::ActionOutcome::Failed { error, .. } => format!("failed: {error}"),
                other => other.label().to_owned(),
            };
            let succeeded = matches!(
                event.outcome,
                engine::actions::ActionOutcome::Succeeded { .. }
            );
            let id = resource.id.to_string();
            this.persist.audit(crate::persist::actor_entry(
                &Identity::watcher(),
                app::audit::AuditKind::Action,
                Some(&id),
                event.at_unix_ms,
                format!("{id}: warm-up {} {result}", action.kind()),
                serde_json::json!({ "observed": request.observed, "reason": "cold start" }),
                serde_json::json!({ "outcome": event.outcome, "duration_ms": event.duration_ms, "steps": event.steps }),
            ));
            if succeeded {
                Some(Mark {
                    resource: resource.id.clone(),
                    label: format!("warm-up ({}) done", action.kind()),
                })
            } else {
                tracing::warn!(resource = %id, %result, "Warm-up did not succeed");
                None
            }
        })
    }

    /// Counts (`confirm` false) or unlinks (`confirm` true) the keys of the Redis cache
    /// `resource` matching `pattern`, and hands the pattern to the cache's
    /// `invalidate_url` when it has one (memcached's only way), as `actor` asks. An
    /// invalidation done comes with its mark (`None` for a count).
    pub(crate) async fn invalidate(
        &self,
        resource: &str,
        pattern: &str,
        confirm: bool,
        actor: &Identity,
    ) -> Result<(Invalidation, Option<Mark>), AppError> {
        let state = self.store.state();
        let found = state.resources.get(resource).ok_or_else(|| {
            AppError::not_found(format!("resource: no resource with id {resource:?}"))
        })?;
        let configured = found
            .source
            .as_ref()
            .and_then(|spec| Configured::from_spec(spec).ok())
            .filter(|configured| configured.keys() != Keys::None)
            .ok_or_else(|| {
                AppError::invalid(
                    "resource",
                    format!("{resource} is not a cache whose keys can be invalidated"),
                )
            })?;
        let hook = configured.invalidate_url().map(str::to_owned);
        let listed = configured.keys() == Keys::Listed;
        if !listed && hook.is_none() {
            return Err(AppError::invalid(
                "resource",
                format!(
                    "{} cannot list its keys, so they cannot be invalidated by pattern; set invalidate_url to hand patterns to the application that owns them",
                    configured.kind()
                ),
            ));
        }
        let id = found.id.clone();
        drop(state);
        connectors::sources::redis::validate_pattern(pattern).map_err(invalid)?;
        let failed = |reason: String| AppError::new(422, format!("cannot invalidate: {reason}"));
        let matching = if listed {
            Some(
                configured
                    .scan_keys(pattern, confirm)
                    .await
                    .map_err(failed)?,
            )
        } else {
            None
        };
        let hook = match (hook, confirm) {
            (Some(url), true) => {
                let body = serde_json::json!({
                    "resource": id.as_str(),
                    "pattern": pattern,
                    "keys": matching.map(|m| m.keys),
                    "by": actor.user,
                });
                let client = connectors::actuators::webhook::client();
                let answer = connectors::actuators::webhook::post_json(
                    &client,
                    &url,
                    &body,
                    None,
                    std::time::Duration::from_secs(5),
                    3,
                )
                .await;
                Some(match answer {
                    Ok(done) => done.detail,
                    Err(err) => format!("failed: {}", err.error),
                })
            }
            _ => None,
        };
        let result = Invalidation {
            keys: matching.map_or(0, |m| m.keys),
            scanned: matching.map_or(0, |m| m.scanned),
            complete: matching.is_some_and(|m| m.complete),
            counted: matching.is_some(),
            done: confirm,
            hook,
        };
        let mark = confirm.then(|| Mark {
            resource: id,
            label: result.describe(pattern),
        });
        Ok((result, mark))
    }

    /// Creates an index the latest advice of `resource` recommends (only those: nothing
    /// else can be asked for): its name, and the mark that opens its before/after.
    pub(crate) async fn create_index(
        &self,
        resource: &str,
        table: &str,
        columns: &[String],
    ) -> Result<(String, Mark), AppError> {
        let (id, settings) = self.postgres_database(resource)?;
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
        let mark = Mark {
            resource: id,
            label: format!("index {name} created on {table} ({})", columns.join(", ")),
        };
        Ok((name, mark))
    }

    /// Drops an index perfpilot created (the rollback of
    /// [`ConfiguredSources::create_index`]): the mark that opens its before/after.
    pub(crate) async fn drop_index(
        &self,
        resource: &str,
        table: &str,
        name: &str,
    ) -> Result<Mark, AppError> {
        let (id, settings) = self.postgres_database(resource)?;
        postgres::drop_index(&settings, table, name)
            .await
            .map_err(|reason| AppError::new(422, format!("cannot drop the index: {reason}")))?;
        Ok(Mark {
            resource: id,
            label: format!("index {name} dropped"),
        })
    }

    /// A PostgreSQL database resource and its connection settings (its index advice is
    /// PostgreSQL's own).
    fn postgres_database(
        &self,
        resource: &str,
    ) -> Result<(engine::model::ResourceId, PostgresSettings), AppError> {
        let (id, spec) = self.database(resource)?;
        if spec.kind != postgres::KIND {
            return Err(AppError::invalid(
                "resource",
                format!("{resource} is not a PostgreSQL database: indexes are advised for PostgreSQL only"),
            ));
        }
        Ok((id, PostgresSettings::from_spec(&spec).map_err(invalid)?))
    }

    /// A database resource (of any database kind) and its source spec.
    fn database(
        &self,
        resource: &str,
    ) -> Result<(engine::model::ResourceId, SourceSpec), AppError> {
        let state = self.store.state();
        let found = state.resources.get(resource).ok_or_else(|| {
            AppError::not_found(format!("resource: no resource with id {resource:?}"))
        })?;
        let spec = found
            .source
            .as_ref()
            .filter(|spec| {
                connectors::sources::kind_named(&spec.kind)
                    .is_some_and(|kind| kind.family == SourceFamily::Database)
            })
            .ok_or_else(|| {
                AppError::invalid("resource", format!("{resource} is not a database"))
            })?;
        Ok((found.id.clone(), spec.clone()))
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

    /// A database's connection settings as its page shows them (never the password).
    pub fn database_connection(
        &self,
        resource: &str,
    ) -> Result<app::databases::DatabaseConnection, AppError> {
        let (_, spec) = self.database(resource)?;
        let settings = DatabaseFields::of(&spec)?;
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

    /// Prepares changing a database's URL, probe query or group (and, when one is given,
    /// its password) after connecting once with the new settings.
    pub(crate) async fn prepare_database_update(
        &self,
        resource: &str,
        edit: NewDatabase,
    ) -> Result<Mutation, AppError> {
        let (id, mut spec) = self.database(resource)?;
        let current = DatabaseFields::of(&spec)?;
        let edited = DatabaseFields {
            url: edit.url.trim().to_owned(),
            probe_query: blank(edit.probe_query),
            group: blank(edit.group),
            ..current
        };
        // The kind's other settings (its timeouts) stay as they are.
        if let (Some(settings), serde_json::Value::Object(fields)) = (
            spec.settings.as_object_mut(),
            serde_json::to_value(&edited).map_err(|err| AppError::new(500, err.to_string()))?,
        ) {
            for field in DatabaseFields::NAMES {
                match fields.get(field) {
                    Some(value) => settings.insert(field.to_owned(), value.clone()),
                    None => settings.remove(field),
                };
            }
        }
        let settings = Configured::from_spec(&spec).map_err(invalid)?;
        self.prepare_update(id, settings, blank(edit.password))
            .await
    }

    /// The configured resource (a database, a cache) `id` if it may be removed: built-in
    /// resources (the host's, pushes') are refused.
    pub(crate) fn removable(&self, id: &str) -> Result<ResourceId, AppError> {
        let id = ResourceId::new(id)?;
        let current = self.store.state().resources.get(&id).cloned();
        if current.as_ref().is_some_and(|r| r.source.is_none()) {
            return Err(AppError::new(
                409,
                format!("resource `{id}` belongs to a built-in source (the host or pushes) and cannot be removed"),
            ));
        }
        Ok(id)
    }

    /// Removes the password this server stored for `id`, if it did (its resource was
    /// removed).
    pub(crate) async fn forget_secret(&self, id: &ResourceId) {
        if let Some(dir) = self.secrets_dir() {
            let path = dir.join(secret_file(id));
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        }
    }

    /// Where passwords sent to this server are kept: `<data-dir>/secrets/`.
    pub fn secrets_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|dir| dir.join("secrets"))
    }

    /// Writes a password only perfpilot's user can read (on the blocking pool: the write
    /// ends with an fsync); the path is what the source's settings keep.
    async fn store_secret(
        &self,
        id: &engine::model::ResourceId,
        password: &str,
    ) -> Result<PathBuf, AppError> {
        let dir = self.secrets_dir().ok_or_else(|| {
            AppError::invalid(
                "password",
                "cannot be stored with --ephemeral (nothing is written); use password_file or password_env",
            )
        })?;
        let path = dir.join(secret_file(id));
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || write_secret(&dir, path, &password))
            .await
            .unwrap_or_else(|err| {
                Err(AppError::unavailable(format!(
                    "cannot store the password: {err}"
                )))
            })
    }
}

/// Writes `password` to `path` in `dir` (both created only perfpilot's user can read) and
/// syncs it. Blocking.
fn write_secret(dir: &Path, path: PathBuf, password: &str) -> Result<PathBuf, AppError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let failed = |err: std::io::Error| {
        AppError::unavailable(format!(
            "cannot store the password under {}: {err}",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
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

/// Where the password of `id` is kept under the secrets directory: `database-orders.password`.
fn secret_file(id: &engine::model::ResourceId) -> String {
    format!("{}.password", id.as_str().replace(':', "-"))
}

/// How an entry of the configuration file is named in its errors: `postgres "orders"`.
pub(crate) fn entry_label(entry: &crate::config::ConfiguredEntry) -> String {
    format!("{} {:?}", entry.table, entry.name)
}

fn blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The kind a database form names (one of the database kinds), or the first database
/// kind when it names none (`POST /api/v1/databases` predates the choice).
fn database_kind(kind: Option<&str>) -> Result<&'static KindEntry, AppError> {
    let kinds = || {
        connectors::sources::KINDS
            .iter()
            .filter(|kind| kind.family == SourceFamily::Database)
    };
    let found = match kind.map(str::trim).filter(|kind| !kind.is_empty()) {
        None => kinds().next(),
        Some(named) => kinds().find(|kind| kind.kind == named),
    };
    found.ok_or_else(|| {
        let known: Vec<&str> = kinds().map(|kind| kind.kind).collect();
        AppError::invalid(
            "kind",
            format!(
                "{:?} is not a database kind; one of: {}",
                kind.unwrap_or_default(),
                known.join(", ")
            ),
        )
    })
}

/// What every database kind's settings have ([`SourceFamily::Database`]): the fields its form
/// shows and edits. The kind's other settings keep their values (or defaults).
#[derive(serde::Serialize, serde::Deserialize)]
struct DatabaseFields {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
}

impl DatabaseFields {
    /// The fields a database form edits; the password's location changes only with a
    /// new password.
    const NAMES: [&'static str; 3] = ["url", "probe_query", "group"];

    fn of(spec: &SourceSpec) -> Result<DatabaseFields, AppError> {
        serde_json::from_value(spec.settings.clone()).map_err(|err| {
            AppError::new(
                500,
                format!("the database's settings cannot be read: {err}"),
            )
        })
    }
}

/// A server that could not be used with these settings: 422 on the field the connector
/// blamed, the reason without the field when that is the server's address
/// ("cannot use this database: connection refused at …") and with it otherwise
/// ("cannot use this database: password: must be at most 1024 bytes …").
fn refused(settings: &Configured, refusal: &Refusal) -> AppError {
    let reason = refusal.reason(settings.address_field());
    let what = settings.noun();
    AppError::new(422, format!("cannot use this {what}: {reason}")).with_field(&refusal.field)
}

/// A settings rule broken: 422 naming the connector's field.
fn invalid(refusal: Refusal) -> AppError {
    AppError::invalid(&refusal.field, refusal.rule)
}

/// A password that cannot be read from where the settings say: 422 on that setting.
fn unreadable_password(settings: &Configured, reason: String) -> AppError {
    let field = match settings.password_location() {
        (Some(_), _) => "password_file",
        _ => "password_env",
    };
    AppError::new(422, reason).with_field(field)
}
