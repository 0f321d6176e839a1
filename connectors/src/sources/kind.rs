//! What a configured kind is (databases, caches, load balancers, fleets): the settings a
//! resource's source spec holds implement [`ConfiguredKind`] in the kind's own module, and
//! the kind is one entry of [`super::KINDS`] (a [`KindEntry`], declared by the module as
//! its `ENTRY`): its name in specs, its table in the configuration file and how both are
//! read. The server and the configuration file name no kind, so adding one is its module
//! and one line (ARCHITECTURE.md, "Adding a source or an actuator").

use std::any::Any;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::actuator::Actuator;
use engine::fleet::FleetMetric;
use engine::model::{ActionConfig, Resource, ResourceId, ResourceSettings, SourceSpec};
use engine::source::runtime::Source;
use engine::source::BoxFuture;
use engine::verdict::Settle;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::cache::Matching;
use super::{Checked, Configured};
use crate::{Refusal, Registries};

/// The settings of one configured kind. Required: what every kind has (its names, spec,
/// rules, resource, connect-once check, running source, group); everything else has a
/// default that fits a kind without it (no password, no warm-up, no keys, no fleet).
///
/// Object safe: a [`Configured`] holds one as `Box<dyn ConfiguredKind>`. `Clone` settings
/// get [`KindBox`] (cloning and downcasting the box) for free.
pub trait ConfiguredKind: KindBox + std::fmt::Debug + Send + Sync + 'static {
    /// The kind's name in a resource's source spec (`postgres`).
    fn kind(&self) -> &'static str;

    /// What one is called in a refusal: "cannot use this database: …".
    fn noun(&self) -> &'static str;

    /// The settings as a resource's source spec (never a secret).
    fn spec(&self) -> SourceSpec;

    /// The kind's own rules, checked without connecting.
    fn validate(&self) -> Result<(), Refusal>;

    /// The resource id `name` gets (`database:<name>`); `name` already follows the one
    /// rule of names.
    fn resource_id(&self, name: &str) -> Result<ResourceId, Refusal>;

    /// The resource `name` is with these settings: its metrics, default target and
    /// guardrails, `defaults` as its settings and these settings as its source.
    fn resource(&self, name: &str, defaults: &ResourceSettings) -> Result<Resource, Refusal>;

    /// The settings' group key (shards of one database, levels of one cache).
    fn group(&self) -> Option<&str>;

    /// Connects once with `password` (not the stored one: a new password is checked
    /// before it is kept). The refusal is on the field to blame (`password`, `backend`,
    /// `selector`, a file's setting such as `tls_ca_file`), else on the server's address
    /// ([`ConfiguredKind::address_field`]), with the reason in a person's words as its
    /// rule.
    fn check(&self, password: Option<String>) -> BoxFuture<'_, Result<Checked, Refusal>>;

    /// The running source of `resource` (whose spec holds these settings), polled every
    /// `interval`, with what kinds share across restarts in `registries`. Called on the
    /// blocking pool: it may read the files the settings name.
    fn source(
        &self,
        resource: &Resource,
        interval: Duration,
        registries: &Registries,
    ) -> Result<Box<dyn Source>, String>;

    /// The field a connection failure is shown on: where the server's address is.
    fn address_field(&self) -> &'static str {
        "url"
    }

    /// Whether this kind can log in with a password at all.
    fn takes_password(&self) -> bool {
        false
    }

    /// Where the password (or token) is kept: a file, an environment variable.
    fn password_location(&self) -> (Option<&PathBuf>, Option<&String>) {
        (None, None)
    }

    /// The password, read now from where the settings say it is (off the async runtime:
    /// see [`super::secret::read`]).
    fn password(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        let (file, env) = self.password_location();
        let (file, env) = (file.cloned(), env.cloned());
        Box::pin(async move { super::secret::read(&file, &env).await })
    }

    /// Keeps the password in `path` from now on (a password sent to the server).
    fn keep_password_in(&mut self, path: PathBuf) {
        let _ = path;
    }

    /// What to run when this cache comes back cold (its `warm_url` or `warm_command`).
    fn warm_action(&self) -> Option<ActionConfig> {
        None
    }

    /// Whether keys of this kind can be invalidated by pattern, and how.
    fn keys(&self) -> Keys {
        Keys::None
    }

    /// Where invalidations are handed to the application (a cache's `invalidate_url`).
    fn invalidate_url(&self) -> Option<&str> {
        None
    }

    /// Counts (`unlink` false) or unlinks the keys matching `pattern`, bounded; only
    /// kinds whose [`ConfiguredKind::keys`] are [`Keys::Listed`] can.
    fn scan_keys<'a>(
        &'a self,
        pattern: &'a str,
        unlink: bool,
    ) -> BoxFuture<'a, Result<Matching, String>> {
        let _ = (pattern, unlink);
        let kind = self.kind();
        Box::pin(async move { Err(format!("{kind} cannot list its keys")) })
    }

    /// A fleet's host metrics as these settings define them (fleets only).
    fn fleet_metrics(&self) -> Option<Vec<FleetMetric>> {
        None
    }

    /// The actuator of `action` when it acts on this kind's own service (a database
    /// setting on a database, weights on a pool), refused when the kind's rules forbid it
    /// (a setting off its allow-list); `None` when this kind does not take such actions.
    /// Actions that act elsewhere (a webhook, a command) are not asked here.
    fn actuator(
        &self,
        action: &ActionConfig,
        registries: &Registries,
    ) -> Option<Result<Arc<dyn Actuator>, Refusal>> {
        let _ = (action, registries);
        None
    }
}

/// What every [`ConfiguredKind`] can do with its box, implemented for every `Clone` kind.
pub trait KindBox {
    fn clone_box(&self) -> Box<dyn ConfiguredKind>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: ConfiguredKind + Clone> KindBox for T {
    fn clone_box(&self) -> Box<dyn ConfiguredKind> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// How a kind's keys are invalidated by pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Not a cache: there is nothing to invalidate.
    None,
    /// A cache that cannot list its keys (memcached): patterns go only to the
    /// application that owns them, through `invalidate_url`.
    Unlisted,
    /// A cache that counts and unlinks its keys itself ([`ConfiguredKind::scan_keys`]).
    Listed,
}

/// One entry of a kind's table in the configuration file (`[[postgres]]`): a name and
/// the settings, written out field by field rather than flattened, so an unknown key is
/// still an error naming its line.
pub trait TableEntry: DeserializeOwned {
    type Settings: ConfiguredKind + Clone;

    fn name(&self) -> &str;

    fn settings(&self) -> Self::Settings;
}

/// A kind's configuration-file entries: each a name and its settings (not yet checked).
pub type TomlEntries = Result<Vec<(String, Configured)>, toml::de::Error>;

/// A configured kind: the one place perfpilot learns it exists (see [`super::KINDS`]).
#[derive(Clone, Copy)]
pub struct KindEntry {
    /// Its name in a resource's source spec.
    pub kind: &'static str,
    /// Its name in words, as lists show it ("PostgreSQL").
    pub title: &'static str,
    /// What it is, which orders lists and picks the form that adds one.
    pub family: engine::source::SourceFamily,
    /// How long after a change its samples reflect it.
    pub settle: Settle,
    /// Its table in the configuration file: `postgres` for `[[postgres]]`.
    pub toml_table: &'static str,
    /// Its settings from a source spec ([`decode`] for serde settings).
    pub from_spec: fn(&SourceSpec) -> Result<Box<dyn ConfiguredKind>, Refusal>,
    /// Its entries from the configuration file's text and its table's name ([`table`]).
    pub from_toml: fn(&str, &'static str) -> TomlEntries,
}

impl KindEntry {
    /// The entries of this kind's table in the configuration file `text`, in order, each
    /// a name and its settings (not yet checked). An error carries the span of what is
    /// wrong, so the message names the line.
    pub fn entries(&self, text: &str) -> TomlEntries {
        (self.from_toml)(text, self.toml_table)
    }
}

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindEntry")
            .field("kind", &self.kind)
            .field("title", &self.title)
            .field("family", &self.family)
            .field("settle", &self.settle)
            .field("toml_table", &self.toml_table)
            .finish()
    }
}

/// [`KindEntry::from_spec`] for settings that are a spec's JSON as is.
pub fn decode<S: ConfiguredKind + Clone + DeserializeOwned>(
    spec: &SourceSpec,
) -> Result<Box<dyn ConfiguredKind>, Refusal> {
    Ok(Box::new(super::settings_of::<S>(spec)?))
}

/// [`KindEntry::from_toml`] for a table of `E` entries: the configuration file read once
/// more, keeping only `toml_table` (the server refuses keys no setting or kind owns).
pub fn table<E: TableEntry>(
    text: &str,
    toml_table: &'static str,
) -> Result<Vec<(String, Configured)>, toml::de::Error> {
    let entries = OneTable::<E> {
        name: toml_table,
        entry: PhantomData,
    }
    .deserialize(toml::Deserializer::new(text))?;
    Ok(entries
        .iter()
        .map(|entry| (entry.name().to_owned(), Configured::new(entry.settings())))
        .collect())
}

/// The array of tables `name` of a document, every other key skipped.
struct OneTable<E> {
    name: &'static str,
    entry: PhantomData<E>,
}

impl<'de, E: DeserializeOwned> DeserializeSeed<'de> for OneTable<E> {
    type Value = Vec<E>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<E>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, E: DeserializeOwned> Visitor<'de> for OneTable<E> {
    type Value = Vec<E>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a configuration file")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<E>, A::Error> {
        let mut found = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == self.name {
                found = map.next_value::<Vec<E>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
