//! The change path: the one way configuration changes, whoever asks (server functions, the
//! JSON API, pushes that create resources, and next actuators and source management).
//!
//! authorize → validate → apply under the engine's writer lock → journal → await
//! durability → publish. Authorization and validation happen under the lock, against the
//! configuration the change applies to, so neither can be raced; the journal record is
//! queued under it too, so the journal holds changes in number order. The caller is
//! answered only once the record is committed, and the live side hears about it then.
//!
//! Configured sources' operations (adding a database, an index, a warm-up, …) are
//! prepared by [`ConfiguredSources`](super::sources::ConfiguredSources) and finished here:
//! their change applied on this path, their mark opening its before/after.

use std::path::PathBuf;

use app::caches::{CacheAdded, Invalidation, NewCache};
use app::databases::{DatabaseAdded, NewDatabase};
use app::error::AppError;
use app::identity::{Identity, Role};
use connectors::sources::{Checked, Configured};
use engine::changes::{ChangeRecord, Mutation, MutationKind, State};
use engine::error::EngineError;
use engine::model::{ResourceSettings, ResourceType};
use engine::optimizer::EventKind;

use super::monitor::{Control, Monitor};
use super::sources::{Mark, Prepared};

impl Monitor {
    /// Applies `mutation` on behalf of `actor` and resolves once it is durable. Refusals
    /// are 4xx naming the field and the rule (403 when the role does not suffice); a store
    /// that cannot commit is a 503 with its reason.
    pub async fn apply(
        &self,
        mutation: Mutation,
        actor: Identity,
    ) -> Result<ChangeRecord, AppError> {
        if let Some(why) = self.leadership.refuse_edit() {
            return Err(AppError::unavailable(why));
        }
        self.persist.check().map_err(unavailable)?;
        // A change the shared store refused (it restarted, or this replica lost the lead
        // mid-write) is still in memory: read the store's configuration back before
        // numbering the next one.
        if self.persist.is_diverged() {
            self.catch_up().await.map_err(|err| {
                AppError::unavailable(format!(
                    "the shared configuration cannot be read back yet ({err}); retry shortly"
                ))
            })?;
        }
        let persist = &self.persist;
        let record = self.store.apply_authorized(
            mutation,
            |state, mutation| authorize(&actor, state, mutation),
            |record, state| persist.enqueue_change(record, state, &actor),
        )?;
        self.persist
            .durable(record.change)
            .await
            .map_err(unavailable)?;
        self.changed(&record);
        Ok(record)
    }

    /// Tells the live side about an accepted, durable change: a target edit opens its
    /// before/after, the trackers it affects start over (an edited target must not inherit
    /// the old target's timers) and every dashboard gets a fresh overview.
    pub(crate) fn changed(&self, record: &ChangeRecord) {
        // A target edit opens a before/after of the resource's own target; for a fleet,
        // an edit at any level is judged by the share of its hosts breaching.
        if let (MutationKind::SetTarget | MutationKind::SetFleetTarget, Some(after)) =
            (record.kind, &record.after)
        {
            let event = EventKind::TargetEdit {
                change: record.change,
            };
            let unit = self.unit_of(after);
            // The target it replaced, so the row says "threshold 80 → 50 ms".
            let previous = record
                .before
                .as_ref()
                .and_then(|before| before.target.clone());
            // A fleet whose own target was cleared has nothing to compare against.
            let _ = self
                .proof()
                .open_edit(after, event, previous, record.at_unix_ms, unit);
        }
        if matches!(
            record.kind,
            MutationKind::AddResource
                | MutationKind::RemoveResource
                | MutationKind::SetSource
                | MutationKind::Restore
        ) {
            self.configured.reconcile_sources();
        }
        if matches!(
            record.kind,
            MutationKind::SetFleetTarget
                | MutationKind::SetSource
                | MutationKind::SetSettings
                | MutationKind::RemoveResource
                | MutationKind::Restore
        ) {
            self.configured.sync_fleets();
        }
        let scope = match (record.kind, &record.resource) {
            (MutationKind::Restore, _) | (_, None) => None,
            (_, Some(id)) => Some(id.clone()),
        };
        self.send(Control::Changed {
            scope,
            why: record.kind,
        });
    }

    /// Applies a change a configured source's operation prepared, and answers as it says.
    async fn apply_prepared<T>(
        &self,
        prepared: Prepared<T>,
        actor: Identity,
    ) -> Result<T, AppError> {
        let Prepared { mutation, answer } = prepared;
        let record = self.apply(mutation, actor).await?;
        Ok(answer(record.change))
    }

    /// An index made or dropped, keys invalidated: a mark on the resource (its
    /// before/after shows the effect) in the audit log as `actor`'s.
    fn mark_event(&self, mark: &Mark, actor: &Identity) {
        if let Err(err) = self.add_mark(&mark.resource, &mark.label, actor) {
            tracing::warn!(resource = %mark.resource, %err, "No before/after for the index change");
        }
    }
}

/// Configured sources' operations: checked and prepared by
/// [`ConfiguredSources`](super::sources::ConfiguredSources), applied here.
impl Monitor {
    /// Applies the databases and caches of the configuration file: one the configuration
    /// does not have yet is added, one whose settings differ is updated, each a counted
    /// change by `configuration`.
    pub async fn apply_configured(
        &self,
        entries: &[crate::config::ConfiguredEntry],
    ) -> anyhow::Result<()> {
        for entry in entries {
            let Some(mutation) = self.configured.configured_change(entry)? else {
                continue;
            };
            self.apply(mutation, Identity::configuration())
                .await
                .map_err(|err| anyhow::anyhow!("{}: {err}", super::sources::entry_label(entry)))?;
        }
        Ok(())
    }

    /// Adds a database or cache: checks the settings, connects once with exactly them
    /// (refusing with the reason: unreachable, authentication failed, …), keeps a
    /// password sent inline under `<data-dir>/secrets/` (mode 0600), then adds the
    /// resource as a counted change. Every kind, from the UI and the API, comes here.
    pub async fn add_configured(
        &self,
        name: &str,
        settings: Configured,
        password: Option<String>,
        actor: Identity,
    ) -> Result<(u64, engine::model::ResourceId, Checked), AppError> {
        let prepared = self
            .configured
            .prepare_add(name, settings, password)
            .await?;
        self.apply_prepared(prepared, actor).await
    }

    /// Adds a PostgreSQL database (refusing a role without `pg_monitor` too). Shared by
    /// `POST /api/v1/databases` and the UI.
    pub async fn add_database(
        &self,
        new: NewDatabase,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
        actor: Identity,
    ) -> Result<DatabaseAdded, AppError> {
        let prepared = self
            .configured
            .prepare_database(new, password_file, password_env)
            .await?;
        self.apply_prepared(prepared, actor).await
    }

    /// Adds a Redis or memcached cache. Shared by `POST /api/v1/caches` and the UI.
    pub async fn add_cache(
        &self,
        new: NewCache,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
        actor: Identity,
    ) -> Result<CacheAdded, AppError> {
        let prepared = self
            .configured
            .prepare_cache(new, password_file, password_env)
            .await?;
        self.apply_prepared(prepared, actor).await
    }

    /// Changes a database's URL, probe query or group (and, when one is given, its
    /// password) after connecting once with the new settings.
    pub async fn update_database(
        &self,
        resource: &str,
        edit: NewDatabase,
        actor: Identity,
    ) -> Result<u64, AppError> {
        let mutation = self
            .configured
            .prepare_database_update(resource, edit)
            .await?;
        Ok(self.apply(mutation, actor).await?.change)
    }

    /// Removes a configured resource (a database, a cache): a counted change; a password this
    /// server stored for it goes too. Built-in resources (the host's, pushes') are refused.
    pub async fn remove_configured(&self, id: &str, actor: Identity) -> Result<u64, AppError> {
        let id = self.configured.removable(id)?;
        let record = self
            .apply(Mutation::RemoveResource { id: id.clone() }, actor)
            .await?;
        self.configured.forget_secret(&id).await;
        Ok(record.change)
    }

    /// Counts (`confirm` false) or unlinks (`confirm` true) the keys of the Redis cache
    /// `resource` matching `pattern`, and hands the pattern to the cache's
    /// `invalidate_url` when it has one (memcached's only way). An invalidation is a mark
    /// on the resource (its before/after shows the effect) in the audit log as `actor`'s.
    pub async fn invalidate(
        &self,
        resource: &str,
        pattern: &str,
        confirm: bool,
        actor: &Identity,
    ) -> Result<Invalidation, AppError> {
        let (result, mark) = self
            .configured
            .invalidate(resource, pattern, confirm, actor)
            .await?;
        if let Some(mark) = mark {
            self.mark_event(&mark, actor);
        }
        Ok(result)
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
        let (name, mark) = self
            .configured
            .create_index(resource, table, columns)
            .await?;
        self.mark_event(&mark, actor);
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
        let mark = self.configured.drop_index(resource, table, name).await?;
        self.mark_event(&mark, actor);
        Ok(())
    }

    /// Runs the warm-up of a cache that came back cold (its `warm_url` or `warm_command`,
    /// on its own task), audits it, and marks it so the warm-up's before/after shows the
    /// hit ratio it brought back.
    pub(crate) fn warm_up(&self, resource: &str, actuators: connectors::actuators::Actuators) {
        let Some(warming) = self.configured.prepare_warm_up(resource, actuators) else {
            return;
        };
        let monitor = self.clone();
        tokio::spawn(async move {
            let Some(mark) = warming.await else {
                return;
            };
            if let Err(err) = monitor.add_mark(&mark.resource, &mark.label, &Identity::watcher()) {
                tracing::warn!(resource = %mark.resource, %err, "No before/after for the warm-up");
            }
        });
    }
}

/// The role `mutation` needs from its author, given the configuration it applies to.
///
/// Editors tune targets and evaluation; admins decide what the optimizer may do to
/// production (the action, dry-run, rollback and guardrails), restore snapshots and remove
/// resources. Pushes (an editor's job) may create `custom:` resources.
pub fn required_role(state: &State, mutation: &Mutation) -> Role {
    match mutation {
        Mutation::SetTarget { .. }
        | Mutation::EditTarget { .. }
        | Mutation::ClearTarget { .. }
        | Mutation::SetFleetTarget { .. }
        | Mutation::Rename { .. } => Role::Editor,
        Mutation::SetSettings { id, settings } => match state.resources.get(id) {
            Some(current) if touches_action(&current.settings, settings) => Role::Admin,
            // An unknown resource is refused by validation with its own message.
            _ => Role::Editor,
        },
        Mutation::AddResource { resource }
            if matches!(resource.resource_type, ResourceType::Custom(_))
                && resource.source.is_none() =>
        {
            Role::Editor
        }
        Mutation::AddResource { .. }
        | Mutation::RemoveResource { .. }
        | Mutation::SetSource { .. }
        | Mutation::Restore { .. } => Role::Admin,
    }
}

/// Whether new settings change what the optimizer does, rather than how it judges.
fn touches_action(current: &ResourceSettings, next: &ResourceSettings) -> bool {
    current.action != next.action
        || current.dry_run != next.dry_run
        || current.guardrails != next.guardrails
        || current.on_no_change != next.on_no_change
        || current.on_inconclusive != next.on_inconclusive
        || current.attention_after != next.attention_after
}

fn authorize(actor: &Identity, state: &State, mutation: &Mutation) -> Result<(), EngineError> {
    let needed = required_role(state, mutation);
    if !actor.may(needed) {
        return Err(EngineError::Forbidden {
            reason: app::backend::forbidden_message(actor, needed),
        });
    }
    check_names(mutation)?;
    // A configured source's settings are its connector's to judge (the engine does not
    // know the kinds).
    let spec = match mutation {
        Mutation::AddResource { resource } => resource.source.as_ref(),
        Mutation::SetSource { source, .. } => Some(source),
        _ => None,
    };
    if let Some(spec) = spec {
        // Refused on the source as a whole, the connector's field and rule in the message:
        // "source: url: must not contain a password".
        connectors::sources::validate(spec)
            .map_err(|refusal| EngineError::invalid("source", refusal.to_string()))?;
    }
    // An action that acts on the resource's own system (a database setting) is its
    // actuator's to judge, against the resource it is saved on.
    let (settings, source) = match mutation {
        Mutation::SetSettings { id, settings } => (
            Some(settings),
            state.resources.get(id).and_then(|r| r.source.as_ref()),
        ),
        Mutation::AddResource { resource } => (Some(&resource.settings), resource.source.as_ref()),
        _ => (None, None),
    };
    if let Some(settings) = settings {
        connectors::actuators::validate(&settings.action, source).map_err(EngineError::from)?;
    }
    Ok(())
}

/// Names and display labels, checked on the way in: a configured resource's name follows
/// the one rule of names (`engine::names`: it is the part of `database:<name>` after the
/// kind), and a display name (added or renamed) is one line of free text without control,
/// invisible formatting or bidirectional characters (`engine::text`). Only new changes
/// come here; stored configuration read back at start-up (`ChangeStore::from_persisted`)
/// and restored snapshots do not, so a name accepted before these rules keeps working.
fn check_names(mutation: &Mutation) -> Result<(), EngineError> {
    match mutation {
        Mutation::AddResource { resource } => {
            if resource.source.is_some() {
                let id = resource.id.as_str();
                let name = id.split_once(':').map_or(id, |(_, name)| name);
                if let Some(rule) = engine::names::resource_name_rule(name) {
                    return Err(EngineError::invalid("name", rule));
                }
            }
            if let Some(rule) = engine::text::free_text_rule(&resource.name, false) {
                return Err(EngineError::invalid("name", rule));
            }
        }
        Mutation::Rename { name, .. } => {
            if let Some(rule) = engine::text::free_text_rule(name, false) {
                return Err(EngineError::invalid("name", rule));
            }
        }
        _ => {}
    }
    Ok(())
}

fn unavailable(err: crate::persist::PersistError) -> AppError {
    AppError::unavailable(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::model::{ActionConfig, Resource, ResourceId};

    fn state_with_cpu() -> State {
        let cpu = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
        let mut state = State::default();
        state
            .resources
            .insert(cpu.id.clone(), std::sync::Arc::new(cpu));
        state
    }

    #[test]
    fn changing_what_the_optimizer_does_needs_an_admin() {
        let state = state_with_cpu();
        let id = ResourceId::new("cpu").unwrap();
        let current = state.resources[&id].settings.clone();
        let tuned = ResourceSettings {
            window_secs: 120,
            ..current.clone()
        };
        let edit = |settings| Mutation::SetSettings {
            id: id.clone(),
            settings,
        };
        assert_eq!(required_role(&state, &edit(tuned)), Role::Editor);
        let live = ResourceSettings {
            dry_run: false,
            ..current.clone()
        };
        assert_eq!(required_role(&state, &edit(live)), Role::Admin);
        let acting = ResourceSettings {
            action: ActionConfig::Command(engine::model::CommandAction {
                program: "/bin/true".into(),
                args: Vec::new(),
                timeout_ms: 1000,
                rollback: None,
            }),
            ..current
        };
        assert_eq!(required_role(&state, &edit(acting)), Role::Admin);
        assert_eq!(
            required_role(&state, &Mutation::Restore { snapshot: 20 }),
            Role::Admin
        );
    }

    #[test]
    fn a_refusal_by_role_names_the_role() {
        let state = state_with_cpu();
        let viewer = Identity::anonymous(Role::Viewer, None);
        let err = authorize(
            &viewer,
            &state,
            &Mutation::ClearTarget {
                id: ResourceId::new("cpu").unwrap(),
            },
        )
        .unwrap_err();
        assert!(err.is_forbidden());
        assert!(err.to_string().contains("needs the editor role"), "{err}");
    }

    #[test]
    fn new_names_follow_the_rule_and_labels_are_one_clean_line() {
        let state = state_with_cpu();
        let admin = Identity::anonymous(Role::Admin, None);
        let mut fleet = Resource::new(
            ResourceId::new("fleet:a/b").unwrap(),
            ResourceType::Fleet,
            "a/b",
        );
        fleet.source = Some(engine::model::SourceSpec {
            kind: "prometheus".into(),
            settings: serde_json::json!({}),
        });
        let err =
            authorize(&admin, &state, &Mutation::AddResource { resource: fleet }).unwrap_err();
        assert!(
            err.to_string().starts_with("name: must be 1–63 characters"),
            "{err}"
        );
        let rename = |name: &str| Mutation::Rename {
            id: ResourceId::new("cpu").unwrap(),
            name: name.to_owned(),
        };
        let err = authorize(&admin, &state, &rename("CPU\u{202e}")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("name: must not contain control"),
            "{err}"
        );
        assert!(authorize(&admin, &state, &rename("Host CPU")).is_ok());
    }
}
