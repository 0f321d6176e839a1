//! What server functions reach on the server, as narrow capability handles. Each trait
//! below is what one area of the UI needs; each is provided as its own Leptos context and
//! fetched by its own accessor, so a server function depends on exactly the capabilities
//! it uses (the fleet page cannot invalidate a cache, the alerts page cannot read a
//! snapshot) and each trait stays small:
//!
//! - [`Configuration`] ([`configuration()`]): the configuration now, the change counter
//!   and the snapshots.
//! - [`Changes`] ([`changes()`]): the change path ([`apply`]), removing a configured
//!   resource, the audit log.
//! - [`Live`] ([`live()`]): the live overview, every source's status and latest report.
//! - [`History`] ([`history()`]): stored series, their units and charts.
//! - [`Fleets`] ([`fleets()`]): Prometheus-compatible fleets, their hosts, ranges and
//!   backtests.
//! - [`Databases`] ([`databases()`]): adding a database, its connection, group and
//!   indexes.
//! - [`Caches`] ([`caches()`]): adding a cache, its group, invalidation.
//! - [`Alerts`] ([`alerts()`]): the Alerts page, silences, acknowledgements, channel
//!   tests.
//! - [`Proof`] ([`proof()`]): before/after comparisons and manual marks.
//!
//! The server crate implements them (one state value may implement them all) and provides
//! them once per request through [`Capabilities`], so `app` never depends on the server
//! crate and never holds the engine's `ChangeStore` (whose own `apply` would bypass
//! durability) or a lock on history.
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

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The configuration and its snapshots: the engine's `ChangeStore`, read only. Every
/// server function that looks a resource up by id starts here.
pub trait Configuration: Send + Sync + 'static {
    /// The configuration now (a pointer load, never blocked by writers).
    fn state(&self) -> Arc<State>;
    fn stats(&self) -> StoreStats;
    /// Snapshots still in the ring, oldest first.
    fn snapshots(&self) -> Arc<VecDeque<Arc<Snapshot>>>;
    fn verify(&self, snapshot: u64) -> Result<(), AppError>;
    /// Differences from snapshot `snapshot` to the current configuration.
    fn diff_with_current(&self, snapshot: u64) -> Result<Vec<Difference>, AppError>;
}

/// Changing what is configured, and the record of it: the one change path (reached
/// through [`apply`]), removing a configured resource (a counted change), and the audit
/// log (the Changes and Audit pages).
pub trait Changes: Send + Sync + 'static {
    /// The change path: authorizes `actor` for `mutation`, applies it under the engine's
    /// lock, and resolves once its journal record is committed (the live side has been
    /// told by then).
    fn apply(
        &self,
        mutation: Mutation,
        actor: Identity,
    ) -> BoxFuture<Result<ChangeRecord, AppError>>;
    /// Removes a configured resource (a database) and what the server stored for it;
    /// answers the change number.
    fn remove_configured(
        &self,
        resource: String,
        actor: Identity,
    ) -> BoxFuture<Result<u64, AppError>>;
    /// Audit entries passing `filter`, newest first.
    fn audit(&self, filter: AuditFilter) -> BoxFuture<Result<Vec<AuditRecord>, AppError>>;
}

/// What the monitor sees now: the live overview, and every source's status and what it
/// last reported (the Overview, Settings' sources, the database, cache and load-balancer
/// panels).
pub trait Live: Send + Sync + 'static {
    fn overview(&self) -> Overview;
    /// Every running source's status by id (its health reason already redacted).
    fn sources(&self) -> Arc<BTreeMap<String, engine::source::SourceStatus>>;
    /// What the source of `resource` reported besides series (a database's top queries).
    fn source_details(&self, resource: &str) -> Option<Arc<serde_json::Value>>;
    /// Every configured source kind the server knows, in its registration order.
    fn source_kinds(&self) -> Vec<crate::kinds::SourceKind>;
}

/// Stored series: their units, and charts from memory or from the history on disk (the
/// resource page).
pub trait History: Send + Sync + 'static {
    /// The unit of every stored series of `resource`, by metric.
    fn units(&self, resource: &str) -> BTreeMap<String, String>;
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
    /// The series whose level moved the most around `at_unix_ms`, largest first (at
    /// most `top`), from the history in memory.
    fn what_changed(&self, at_unix_ms: i64, top: usize) -> Vec<crate::changed::Moved>;
    /// The daily or weekly pattern of `key` learned from its history on disk (empty
    /// until it is read, or with less than two days of it), for anomaly bands.
    fn seasonality(
        &self,
        key: &engine::series::SeriesKey,
    ) -> std::sync::Arc<engine::forecast::Seasonality>;
}

/// Prometheus-compatible fleets: adding one, its hosts judged now, one metric over a
/// range, backtests of a group's target (the fleet and fleet-target pages).
pub trait Fleets: Send + Sync + 'static {
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
}

/// Configured databases: adding one, its connection, its group and the indexes perfpilot
/// manages on it (Settings and a database's page).
pub trait Databases: Send + Sync + 'static {
    /// Adds a database after connecting to it once (admins only); refusals name the
    /// reason.
    fn add_database(
        &self,
        new: crate::databases::NewDatabase,
        actor: Identity,
    ) -> BoxFuture<Result<crate::databases::DatabaseAdded, AppError>>;
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
}

/// Configured Redis and memcached caches: adding one, its group's levels, invalidation
/// (Settings and a cache's page).
pub trait Caches: Send + Sync + 'static {
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
}

/// Alerting: what is firing, silences, acknowledgements and channel tests (the Alerts
/// page).
pub trait Alerts: Send + Sync + 'static {
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

/// Before/after: the comparisons measured after each edit, mark or action, and manual
/// marks (the Proof page, and the events on a resource's chart).
pub trait Proof: Send + Sync + 'static {
    /// Before/after rows, measuring ones first.
    fn comparisons(&self) -> Vec<crate::proof::ComparisonRow>;
    /// Opens a before/after for a manual mark (audited as `actor`'s).
    fn add_mark(
        &self,
        id: &engine::model::ResourceId,
        label: &str,
        actor: &Identity,
    ) -> Result<(), AppError>;
}

/// A server-side operation that may wait (e.g. for a durable commit).
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, AppError>> + Send + 'static>>;

/// Every capability as its own handle: the one way the server provides them. It builds
/// this once from its state ([`Capabilities::of`]) and calls [`Capabilities::provide`] in
/// the context of every render and server function.
#[derive(Clone)]
pub struct Capabilities {
    configuration: Arc<dyn Configuration>,
    changes: Arc<dyn Changes>,
    live: Arc<dyn Live>,
    history: Arc<dyn History>,
    fleets: Arc<dyn Fleets>,
    databases: Arc<dyn Databases>,
    caches: Arc<dyn Caches>,
    alerts: Arc<dyn Alerts>,
    proof: Arc<dyn Proof>,
}

impl Capabilities {
    /// Every capability served by one value (the server's state implements them all);
    /// each handle is still only the one trait.
    pub fn of<S>(server: S) -> Capabilities
    where
        S: Configuration + Changes + Live + History + Fleets + Databases + Caches + Alerts + Proof,
    {
        let server = Arc::new(server);
        Capabilities {
            configuration: server.clone(),
            changes: server.clone(),
            live: server.clone(),
            history: server.clone(),
            fleets: server.clone(),
            databases: server.clone(),
            caches: server.clone(),
            alerts: server.clone(),
            proof: server,
        }
    }

    /// Provides each capability as its own context, for the accessors below.
    pub fn provide(&self) {
        provide_context(Handle(self.configuration.clone()));
        provide_context(Handle(self.changes.clone()));
        provide_context(Handle(self.live.clone()));
        provide_context(Handle(self.history.clone()));
        provide_context(Handle(self.fleets.clone()));
        provide_context(Handle(self.databases.clone()));
        provide_context(Handle(self.caches.clone()));
        provide_context(Handle(self.alerts.clone()));
        provide_context(Handle(self.proof.clone()));
    }
}

/// The context one capability is provided as; only this module provides and reads it.
struct Handle<T: ?Sized>(Arc<T>);

impl<T: ?Sized> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle(Arc::clone(&self.0))
    }
}

/// The capability `T` from the context, or a 503 naming `what` is missing.
fn handle<T: ?Sized + 'static>(what: &str) -> Result<Arc<T>, AppError> {
    use_context::<Handle<T>>()
        .map(|handle| handle.0)
        .ok_or_else(|| AppError::unavailable(format!("{what} is not available")))
}

/// The [`Configuration`] capability: the configuration now and its snapshots.
pub fn configuration() -> Result<Arc<dyn Configuration>, AppError> {
    handle::<dyn Configuration>("the configuration")
}

/// The [`Changes`] capability; server functions change the configuration through
/// [`apply`].
pub fn changes() -> Result<Arc<dyn Changes>, AppError> {
    handle::<dyn Changes>("the change path")
}

/// The [`Live`] capability: the overview and the sources now.
pub fn live() -> Result<Arc<dyn Live>, AppError> {
    handle::<dyn Live>("the live monitor")
}

/// The [`History`] capability: stored series and their charts.
pub fn history() -> Result<Arc<dyn History>, AppError> {
    handle::<dyn History>("the history")
}

/// The [`Fleets`] capability.
pub fn fleets() -> Result<Arc<dyn Fleets>, AppError> {
    handle::<dyn Fleets>("fleets")
}

/// The [`Databases`] capability.
pub fn databases() -> Result<Arc<dyn Databases>, AppError> {
    handle::<dyn Databases>("database management")
}

/// The [`Caches`] capability.
pub fn caches() -> Result<Arc<dyn Caches>, AppError> {
    handle::<dyn Caches>("cache management")
}

/// The [`Alerts`] capability.
pub fn alerts() -> Result<Arc<dyn Alerts>, AppError> {
    handle::<dyn Alerts>("alerting")
}

/// The [`Proof`] capability: before/after comparisons and marks.
pub fn proof() -> Result<Arc<dyn Proof>, AppError> {
    handle::<dyn Proof>("before/after")
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
    changes()?.apply(mutation, actor.clone()).await
}
