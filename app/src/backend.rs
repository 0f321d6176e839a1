//! What server functions reach on the server: the read operations the pages need and the
//! one change path. The server crate implements [`Backend`] and provides it as context, so
//! `app` never depends on the server crate and never holds the engine's `ChangeStore` (whose
//! own `apply` would bypass durability) or a lock on history.
//!
//! A server function is "role, parse, apply": [`require`] the role the action needs at
//! least, parse its arguments into a mutation, and hand it to [`apply`]. The server decides
//! the final authorization (some edits need more than the minimum, decided against the
//! configuration current under the engine's lock), validates, journals, waits for
//! durability and tells the live side; every refusal comes back as an [`AppError`] with its
//! status.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use engine::changes::{ChangeRecord, Difference, Mutation, Snapshot, State, StoreStats};
use engine::history::{ChartRequest, ChartSamples};
use leptos::prelude::*;

pub use crate::error::AppError;

use crate::audit::{AuditFilter, AuditRecord};
use crate::identity::{Identity, Role};
use crate::live::Overview;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub trait Backend: Send + Sync + 'static {
    /// The fleet `id` as its page shows it: every host judged now, worst-first (404 for
    /// no such fleet, 503 before its store first answered).
    fn fleet_view(&self, id: &str) -> Result<engine::fleet::FleetView, AppError>;
    /// Adds a fleet after one test query of its store (admins only); refusals name the
    /// field and the store's reason. Answers the change and the resource id.
    fn add_fleet(
        &self,
        new: crate::fleets::NewFleet,
        actor: Identity,
    ) -> BoxFuture<Result<(u64, String, String), AppError>>;
    /// One host of the fleet `id` with its effective targets and where they come from.
    fn fleet_host(&self, id: &str, instance: &str) -> Result<engine::fleet::HostDetail, AppError>;
    /// The hosts of a group of the fleet `id` (`*`: all of them).
    fn fleet_members(&self, id: &str, group: &str) -> Result<Vec<String>, AppError>;
    /// One metric of `scope`'s hosts over the last `range_secs` from the store (cached per
    /// step, within the store's query budget).
    fn fleet_range(
        &self,
        id: String,
        metric: String,
        scope: engine::fleet::Scope,
        range_secs: u64,
        points: u64,
    ) -> BoxFuture<Result<Arc<engine::fleet::RangeSeries>, AppError>>;
    /// `target` replayed over every host of `group` for the last `range_secs`; answers
    /// the result and the step it was judged at.
    fn fleet_backtest(
        &self,
        id: String,
        group: String,
        target: engine::model::Target,
        range_secs: u64,
    ) -> BoxFuture<Result<(engine::fleet::GroupBacktest, u64), AppError>>;
    fn overview(&self) -> Overview;
    /// The configuration now (a pointer load, never blocked by writers).
    fn state(&self) -> Arc<State>;
    fn stats(&self) -> StoreStats;
    /// Snapshots still in the ring, oldest first.
    fn snapshots(&self) -> Arc<VecDeque<Arc<Snapshot>>>;
    fn verify(&self, snapshot: u64) -> Result<(), AppError>;
    /// Differences from snapshot `snapshot` to the current configuration.
    fn diff_with_current(&self, snapshot: u64) -> Result<Vec<Difference>, AppError>;
    /// The unit of every stored series of `resource`, by metric.
    fn units(&self, resource: &str) -> BTreeMap<String, String>;
    /// Every running source's status by id (its health reason already redacted).
    fn sources(&self) -> Arc<BTreeMap<String, engine::source::SourceStatus>>;
    /// Series sampled on one grid for a chart.
    fn chart(&self, request: &ChartRequest) -> ChartSamples;
    /// `keys` over the last `span_ms`, one slot per `step_ms`, read from the history on
    /// disk (the 7- and 30-day ranges).
    fn stored_chart(
        &self,
        keys: Vec<engine::series::SeriesKey>,
        span_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<Result<ChartSamples, AppError>>;
    /// The change path: authorizes `actor` for `mutation`, applies it under the engine's
    /// lock, and resolves once its journal record is committed (the live side has been
    /// told by then).
    fn apply(
        &self,
        mutation: Mutation,
        actor: Identity,
    ) -> BoxFuture<Result<ChangeRecord, AppError>>;
    /// Adds a database after connecting to it once (admins only); refusals name the
    /// reason.
    fn add_database(
        &self,
        new: crate::databases::NewDatabase,
        actor: Identity,
    ) -> BoxFuture<Result<crate::databases::DatabaseAdded, AppError>>;
    /// Adds a Redis or memcached cache after connecting to it once (admins only).
    fn add_cache(
        &self,
        new: crate::caches::NewCache,
        actor: Identity,
    ) -> BoxFuture<Result<crate::caches::CacheAdded, AppError>>;
    /// The caches configured with the same group as `resource`, as levels, combined.
    fn cache_group(&self, resource: &str) -> Option<engine::cache::CacheGroup>;
    /// Counts (`confirm` false) or unlinks (`confirm` true, audited) the keys of the cache
    /// `resource` that match `pattern`, bounded in count and time.
    fn invalidate(
        &self,
        resource: String,
        pattern: String,
        confirm: bool,
        actor: Identity,
    ) -> BoxFuture<Result<crate::caches::Invalidation, AppError>>;
    /// What the source of `resource` reported besides series (a database's top queries).
    fn source_details(&self, resource: &str) -> Option<Arc<serde_json::Value>>;
    /// The databases configured with the same group as `resource`, with their latest load.
    fn database_group(&self, resource: &str) -> Option<engine::database::DatabaseGroup>;
    /// Creates an index the latest advice of the database `resource` recommends.
    fn create_index(
        &self,
        resource: String,
        table: String,
        columns: Vec<String>,
        actor: Identity,
    ) -> BoxFuture<Result<String, AppError>>;
    /// Drops an index perfpilot created on the database `resource`.
    fn drop_index(
        &self,
        resource: String,
        table: String,
        name: String,
        actor: Identity,
    ) -> BoxFuture<Result<(), AppError>>;
    /// Removes a configured resource (a database) and what the server stored for it;
    /// answers the change number.
    fn remove_configured(
        &self,
        resource: String,
        actor: Identity,
    ) -> BoxFuture<Result<u64, AppError>>;
    /// A database's connection settings, without its password.
    fn database_connection(
        &self,
        resource: &str,
    ) -> Result<crate::databases::DatabaseConnection, AppError>;
    /// Changes a database's connection after connecting with the new settings once (a
    /// counted change); a password left empty keeps the current one. Answers the change.
    fn update_database(
        &self,
        resource: String,
        edit: crate::databases::NewDatabase,
        actor: Identity,
    ) -> BoxFuture<Result<u64, AppError>>;
    /// Audit entries passing `filter`, newest first.
    fn audit(&self, filter: AuditFilter) -> BoxFuture<Result<Vec<AuditRecord>, AppError>>;
    /// Before/after rows, measuring ones first.
    fn comparisons(&self) -> Vec<crate::proof::ComparisonRow>;
    /// Opens a before/after for a manual mark (audited as `actor`'s).
    fn add_mark(
        &self,
        id: &engine::model::ResourceId,
        label: &str,
        actor: &Identity,
    ) -> Result<(), AppError>;
    /// Everything the Alerts page shows.
    fn alerts(&self) -> Result<crate::alerts::AlertsView, AppError>;
    fn silence(&self, new: crate::alerts::NewSilence, actor: &Identity) -> Result<i64, AppError>;
    fn unsilence(&self, id: i64, actor: &Identity) -> Result<(), AppError>;
    fn acknowledge(
        &self,
        resource: &str,
        ack: &crate::alerts::Acknowledgement,
        actor: &Identity,
    ) -> Result<(), AppError>;
    /// Sends a test notification on a channel now; answers what its receiver said.
    fn test_channel(&self, name: String, actor: Identity) -> BoxFuture<Result<String, AppError>>;
}

/// A server-side operation that may wait (e.g. for a durable commit).
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, AppError>> + Send + 'static>>;

#[derive(Clone)]
pub struct BackendContext(pub Arc<dyn Backend>);

pub fn backend() -> Result<Arc<dyn Backend>, AppError> {
    use_context::<BackendContext>()
        .map(|context| context.0)
        .ok_or_else(|| AppError::unavailable("the perfpilot backend is not available"))
}

/// Who is calling: the [`Identity`] the server's auth layer put into the request. Without
/// one (an in-process call that bypassed the layer) the caller is an anonymous viewer.
pub fn caller() -> Identity {
    use_context::<http::request::Parts>()
        .map(|parts| identity_in(&parts.extensions))
        .unwrap_or_else(|| Identity::anonymous(Role::Viewer, None))
}

/// The identity the auth layer put into a request's extensions; an anonymous viewer when
/// there is none (a router served without the layer acts for nobody).
pub fn identity_in(extensions: &http::Extensions) -> Identity {
    extensions
        .get::<Identity>()
        .cloned()
        .unwrap_or_else(|| Identity::anonymous(Role::Viewer, None))
}

/// The caller, if their role allows `needed`; otherwise a 403 that says what is missing.
pub fn require(needed: Role) -> Result<Identity, AppError> {
    let who = caller();
    if who.may(needed) {
        return Ok(who);
    }
    Err(AppError::forbidden(forbidden_message(&who, needed)))
}

/// The one wording of a refusal by role, shared with the non-Leptos routes.
pub fn forbidden_message(who: &Identity, needed: Role) -> String {
    format!(
        "this needs the {needed} role; you are {} ({})",
        who.user, who.role
    )
}

/// Hands one mutation to the change path on behalf of `actor`; resolves once it is
/// durable.
pub async fn apply(mutation: Mutation, actor: &Identity) -> Result<ChangeRecord, AppError> {
    backend()?.apply(mutation, actor.clone()).await
}
