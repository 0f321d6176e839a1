//! Shared, read-mostly state handed to every request handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use app::error::AppError;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::monitor::Monitor;
use crate::assets::Site;
use crate::config::Settings;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub site: Arc<Site>,
    pub settings: Arc<Settings>,
    pub monitor: Monitor,
    pub auth: Arc<crate::http::auth::Auth>,
    pub tokens: Arc<TokenService>,
    /// Live websockets open now, against `--max-websockets`.
    pub sockets: Arc<crate::http::limits::SocketLimit>,
    /// The client a follower passes edits to the leader with (`crate::http::forward`);
    /// `None` alone.
    pub forwarder: Option<connectors::actuators::webhook::Client>,
}

impl AppState {
    pub fn new(settings: Settings, monitor: Monitor) -> AppState {
        let site = Site::discover(&settings.site_root);
        let leptos_options = LeptosOptions::builder()
            .output_name(site.output_name.clone())
            .site_root(site.root.to_string_lossy().into_owned())
            .site_pkg_dir(site.bundle_path.clone())
            .site_addr(settings.listen)
            .build();
        let auth = Arc::new(crate::http::auth::Auth::new(
            settings.auth.clone(),
            settings.listen,
            crate::http::auth::Tokens::default(),
        ));
        let tokens = Arc::new(TokenService {
            auth: auth.clone(),
            persist: monitor.persist.clone(),
        });
        let sockets = crate::http::limits::SocketLimit::new(settings.max_websockets);
        let forwarder = monitor
            .leadership
            .is_replicated()
            .then(connectors::actuators::webhook::client);
        AppState {
            sockets,
            forwarder,
            leptos_options,
            site: Arc::new(site),
            settings: Arc::new(settings),
            monitor,
            auth,
            tokens,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl app::backend::Configuration for Monitor {
    fn state(&self) -> Arc<engine::changes::State> {
        self.store.state()
    }

    fn stats(&self) -> engine::changes::StoreStats {
        self.store.stats()
    }

    fn snapshots(&self) -> Arc<std::collections::VecDeque<Arc<engine::changes::Snapshot>>> {
        self.store.snapshots()
    }

    fn verify(&self, snapshot: u64) -> Result<(), AppError> {
        Ok(self.store.verify(snapshot)?)
    }

    fn diff_with_current(
        &self,
        snapshot: u64,
    ) -> Result<Vec<engine::changes::Difference>, AppError> {
        Ok(self.store.diff_with_current(snapshot)?)
    }
}

impl app::backend::Changes for Monitor {
    fn apply(
        &self,
        mutation: engine::changes::Mutation,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<engine::changes::ChangeRecord, AppError>> {
        let monitor = self.clone();
        Box::pin(async move { Monitor::apply(&monitor, mutation, actor).await })
    }

    fn remove_configured(
        &self,
        resource: String,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<u64, AppError>> {
        let monitor = self.clone();
        Box::pin(async move { monitor.remove_configured(&resource, actor).await })
    }

    fn audit(
        &self,
        filter: app::audit::AuditFilter,
    ) -> app::backend::BoxFuture<Result<Vec<app::audit::AuditRecord>, AppError>> {
        let persist = self.persist.clone();
        Box::pin(async move {
            persist
                .query_audit(filter)
                .await
                .map_err(|err| AppError::unavailable(err.to_string()))
        })
    }
}

impl app::backend::Live for Monitor {
    fn overview(&self) -> app::live::Overview {
        Monitor::overview(self)
    }

    fn sources(&self) -> Arc<BTreeMap<String, engine::source::SourceStatus>> {
        self.sources.statuses()
    }

    fn source_details(&self, resource: &str) -> Option<Arc<serde_json::Value>> {
        self.configured.source_details(resource)
    }

    fn source_kinds(&self) -> Vec<app::kinds::SourceKind> {
        connectors::sources::KINDS
            .iter()
            .map(|kind| app::kinds::SourceKind {
                kind: kind.kind.to_owned(),
                title: kind.title.to_owned(),
                family: kind.family,
            })
            .collect()
    }
}

impl app::backend::History for Monitor {
    fn units(&self, resource: &str) -> BTreeMap<String, String> {
        self.history()
            .series()
            .iter()
            .filter(|info| info.key.resource == resource)
            .map(|info| (info.key.metric.clone(), info.unit.clone()))
            .collect()
    }

    fn chart(&self, request: &engine::history::ChartRequest) -> engine::history::ChartSamples {
        self.history().chart(request, engine::time::unix_now_ms())
    }

    fn stored_chart(
        &self,
        keys: Vec<engine::series::SeriesKey>,
        span_ms: i64,
        step_ms: i64,
    ) -> app::backend::BoxFuture<Result<engine::history::ChartSamples, AppError>> {
        let monitor = self.clone();
        Box::pin(async move {
            let now = engine::time::unix_now_ms();
            tokio::task::spawn_blocking(move || monitor.stored_chart(&keys, span_ms, step_ms, now))
                .await
                .map_err(|err| AppError::unavailable(format!("history read failed: {err}")))?
                .map_err(|why| AppError::new(422, why).with_field("range"))
        })
    }

    fn seasonality(&self, key: &engine::series::SeriesKey) -> Arc<engine::forecast::Seasonality> {
        self.older
            .seasonality(key, self, engine::time::unix_now_ms())
    }

    fn what_changed(&self, at_unix_ms: i64, top: usize) -> Vec<app::changed::Moved> {
        use engine::changed::{AFTER_MS, BEFORE_MS, LEAD_MS};
        let history = self.history();
        let split = at_unix_ms - LEAD_MS;
        let shifts = history.series().iter().filter_map(|info| {
            let series = history.get(history.id(&info.key)?)?;
            let (mut before, mut after) = (Vec::new(), Vec::new());
            series.visit(split - BEFORE_MS, split, |_, _, _, mean| {
                before.push(f64::from(mean));
            });
            series.visit(split, split + AFTER_MS, |_, _, _, mean| {
                after.push(f64::from(mean));
            });
            Some((info, engine::changed::shift(&before, &after)?))
        });
        engine::changed::ranked(shifts, top)
            .into_iter()
            .map(|(info, shift)| app::changed::Moved {
                resource: info.key.resource.clone(),
                resource_name: info.resource_name.clone(),
                metric: info.key.metric.clone(),
                unit: info.unit.clone(),
                shift,
            })
            .collect()
    }
}

impl app::backend::Fleets for Monitor {
    fn fleet_view(&self, id: &str) -> Result<engine::fleet::FleetView, AppError> {
        Ok(self.configured.fleet(id)?.view())
    }

    fn add_fleet(
        &self,
        new: app::fleets::NewFleet,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<(u64, String, String), AppError>> {
        let monitor = self.clone();
        Box::pin(async move {
            let blank =
                |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
            let username = blank(new.username);
            let group_by: Vec<String> = new
                .group_by
                .split(',')
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            let settings: connectors::sources::prometheus::PrometheusSettings =
                serde_json::from_value(serde_json::json!({
                    "url": new.url.trim(),
                    "selector": if new.selector.trim().is_empty() { "up{job=\"node\"}" } else { new.selector.trim() },
                    "group_by": group_by,
                    "username": username,
                }))
                .map_err(|err| AppError::invalid("url", err.to_string()))?;
            let (change, id, checked) = monitor
                .add_configured(
                    new.name.trim(),
                    connectors::sources::Configured::new(settings),
                    blank(new.secret),
                    actor,
                )
                .await?;
            Ok((change, id.to_string(), checked.server_version))
        })
    }

    fn fleet_host(&self, id: &str, instance: &str) -> Result<engine::fleet::HostDetail, AppError> {
        self.configured.fleet(id)?.host(instance).ok_or_else(|| {
            AppError::new(
                404,
                format!(
                    "fleet `{id}` has no host `{instance}` (the selector does not list it now)"
                ),
            )
            .with_field("instance")
        })
    }

    fn fleet_members(&self, id: &str, group: &str) -> Result<Vec<String>, AppError> {
        Ok(self.configured.fleet(id)?.members(group))
    }

    fn fleet_range(
        &self,
        id: String,
        metric: String,
        scope: engine::fleet::Scope,
        range_secs: u64,
        points: u64,
    ) -> app::backend::BoxFuture<Result<Arc<engine::fleet::RangeSeries>, AppError>> {
        let fleet = self.configured.fleet(&id);
        Box::pin(async move {
            fleet?
                .range(&metric, &scope, range_secs, points)
                .await
                .map_err(store_refusal)
        })
    }

    fn fleet_backtest(
        &self,
        id: String,
        group: String,
        target: engine::model::Target,
        range_secs: u64,
    ) -> app::backend::BoxFuture<Result<(engine::fleet::GroupBacktest, u64), AppError>> {
        let fleet = self.configured.fleet(&id);
        // The fleet's own rule (window, tolerance band, recovery): the one its hosts'
        // cells are judged with, so the backtest says what the page would have said.
        let rule = engine::model::ResourceId::new(&id)
            .ok()
            .and_then(|rid| {
                self.store
                    .state()
                    .resources
                    .get(&rid)
                    .map(|r| engine::backtest::Rule::of(&r.settings))
            })
            .unwrap_or_default();
        Box::pin(async move {
            let fleet = fleet?;
            let scope = if group == engine::fleet::ALL_HOSTS {
                engine::fleet::Scope::Default
            } else {
                engine::fleet::Scope::Group(group)
            };
            let series = fleet
                .range(&target.metric, &scope, range_secs, 1_440)
                .await
                .map_err(store_refusal)?;
            let hosts: Vec<Vec<Option<f32>>> = series.hosts.values().cloned().collect();
            let step_secs = u32::try_from(series.step_secs).unwrap_or(u32::MAX);
            let result = engine::fleet::group_replay(&hosts, step_secs, &target, &rule)?;
            Ok((result, series.step_secs))
        })
    }
}

impl app::backend::Databases for Monitor {
    fn add_database(
        &self,
        new: app::databases::NewDatabase,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<app::databases::DatabaseAdded, AppError>> {
        let monitor = self.clone();
        Box::pin(async move { monitor.add_database(new, None, None, actor).await })
    }

    fn database_group(&self, resource: &str) -> Option<engine::database::DatabaseGroup> {
        self.configured.database_group(resource)
    }

    fn create_index(
        &self,
        resource: String,
        table: String,
        columns: Vec<String>,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<String, AppError>> {
        let monitor = self.clone();
        Box::pin(async move {
            monitor
                .create_index(&resource, &table, &columns, &actor)
                .await
        })
    }

    fn drop_index(
        &self,
        resource: String,
        table: String,
        name: String,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<(), AppError>> {
        let monitor = self.clone();
        Box::pin(async move { monitor.drop_index(&resource, &table, &name, &actor).await })
    }

    fn database_connection(
        &self,
        resource: &str,
    ) -> Result<app::databases::DatabaseConnection, AppError> {
        self.configured.database_connection(resource)
    }

    fn update_database(
        &self,
        resource: String,
        edit: app::databases::NewDatabase,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<u64, AppError>> {
        let monitor = self.clone();
        Box::pin(async move { monitor.update_database(&resource, edit, actor).await })
    }
}

impl app::backend::Caches for Monitor {
    fn add_cache(
        &self,
        new: app::caches::NewCache,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<app::caches::CacheAdded, AppError>> {
        let monitor = self.clone();
        Box::pin(async move { monitor.add_cache(new, None, None, actor).await })
    }

    fn cache_group(&self, resource: &str) -> Option<engine::cache::CacheGroup> {
        self.configured.cache_group(resource)
    }

    fn invalidate(
        &self,
        resource: String,
        pattern: String,
        confirm: bool,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<app::caches::Invalidation, AppError>> {
        let monitor = self.clone();
        Box::pin(async move {
            monitor
                .invalidate(&resource, &pattern, confirm, &actor)
                .await
        })
    }
}

impl app::backend::Alerts for Monitor {
    fn alerts(&self) -> Result<app::alerts::AlertsView, AppError> {
        use app::backend::History as _;
        let mut view = self.alerting.view()?;
        // Where to look first: read with the view, so the page needs no second request.
        view.what_changed = view
            .firing
            .iter()
            .map(|alert| alert.started_ms)
            .max()
            .map(|at_ms| app::changed::WhatChanged {
                at_ms,
                moved: self.what_changed(at_ms, 5),
            });
        Ok(view)
    }

    fn silence(
        &self,
        new: app::alerts::NewSilence,
        actor: &app::identity::Identity,
    ) -> Result<i64, AppError> {
        self.alerting.silence(new, actor)
    }

    fn unsilence(&self, id: i64, actor: &app::identity::Identity) -> Result<(), AppError> {
        self.alerting.unsilence(id, actor)
    }

    fn acknowledge(
        &self,
        resource: &str,
        ack: &app::alerts::Acknowledgement,
        actor: &app::identity::Identity,
    ) -> Result<(), AppError> {
        self.acknowledge_alert(resource, ack, actor)
    }

    fn test_channel(
        &self,
        name: String,
        actor: app::identity::Identity,
    ) -> app::backend::BoxFuture<Result<String, AppError>> {
        let alerting = self.alerting.clone();
        Box::pin(async move { alerting.test(&name, &actor).await })
    }
}

impl app::backend::Proof for Monitor {
    fn comparisons(&self) -> Vec<app::proof::ComparisonRow> {
        Monitor::comparisons(self)
    }

    fn add_mark(
        &self,
        id: &engine::model::ResourceId,
        label: &str,
        actor: &app::identity::Identity,
    ) -> Result<(), AppError> {
        Monitor::add_mark(self, id, label, actor)
    }
}

/// Token management: the durable record first, then the in-memory verifier, so a token
/// works only once it would survive a restart and a revocation is never lost.
pub struct TokenService {
    pub auth: Arc<crate::http::auth::Auth>,
    pub persist: crate::persist::Persist,
}

impl TokenService {
    /// Loads the stored tokens into the verifier (start-up).
    pub async fn load(&self) -> anyhow::Result<()> {
        let rows = self
            .persist
            .tokens()
            .await
            .map_err(|err| anyhow::anyhow!("cannot read the API tokens: {err}"))?;
        self.auth
            .tokens
            .replace_all(rows.into_iter().map(|row| crate::http::auth::StoredToken {
                info: app::identity::TokenInfo {
                    id: row.id,
                    name: row.name,
                    role: row.role,
                    created_by: row.created_by,
                    created_at_unix_ms: row.created_at_unix_ms,
                    revoked_at_unix_ms: row.revoked_at_unix_ms,
                },
                hash_hex: row.sha256_hex,
            }));
        Ok(())
    }

    /// A replica of a shared store: tokens are minted and revoked by the leader, so each
    /// replica reads them back while it follows (once a second, so a revocation holds
    /// everywhere within that) and once more when it starts to lead. While leading it
    /// makes every change itself and reads nothing back, so a reload never races a mint.
    pub async fn keep_current(self: Arc<Self>, leadership: super::lease::Leadership) {
        let mut standing = leadership.subscribe();
        let mut led = leadership.leads();
        loop {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), standing.changed()).await;
            let leads = leadership.leads();
            if !(leads && led) {
                if let Err(err) = self.load().await {
                    tracing::warn!(%err, "Cannot read the API tokens back");
                }
            }
            led = leads;
        }
    }
}

impl app::identity::TokenAdmin for TokenService {
    fn list(&self) -> Vec<app::identity::TokenInfo> {
        self.auth.tokens.list()
    }

    fn mint(
        &self,
        name: &str,
        role: app::identity::Role,
        by: &app::identity::Identity,
    ) -> app::backend::Pending<app::identity::MintedToken> {
        let minted = self
            .auth
            .tokens
            .mint(name, role, by, crate::http::auth::now_unix_ms());
        let (auth, persist, by) = (self.auth.clone(), self.persist.clone(), by.clone());
        Box::pin(async move {
            let (token, secret) = minted.map_err(|rule| AppError::new(422, rule))?;
            let row = crate::persist::TokenRow {
                id: token.info.id.clone(),
                name: token.info.name.clone(),
                role: token.info.role,
                sha256_hex: token.hash_hex.clone(),
                created_by: token.info.created_by.clone(),
                created_at_unix_ms: token.info.created_at_unix_ms,
                revoked_at_unix_ms: None,
            };
            persist
                .save_token(row, &by)
                .await
                .map_err(|err| AppError::unavailable(err.to_string()))?;
            let info = token.info.clone();
            auth.tokens.insert(token);
            Ok(app::identity::MintedToken { info, secret })
        })
    }

    fn revoke(
        &self,
        id: &str,
        by: &app::identity::Identity,
    ) -> app::backend::Pending<app::identity::TokenInfo> {
        let checked = self.auth.tokens.check_revocable(id);
        let (auth, persist, by, id) = (
            self.auth.clone(),
            self.persist.clone(),
            by.clone(),
            id.to_owned(),
        );
        Box::pin(async move {
            checked.map_err(|rule| AppError::new(422, rule))?;
            let row = persist
                .revoke_token(&id, &by)
                .await
                .map_err(|err| AppError::unavailable(err.to_string()))?;
            let revoked_at = row
                .revoked_at_unix_ms
                .unwrap_or_else(crate::http::auth::now_unix_ms);
            auth.tokens
                .revoke(&id, revoked_at)
                .map(|token| token.info)
                .map_err(|rule| AppError::new(422, rule))
        })
    }
}

/// A store that could not answer a fleet query: the budget spent is 429, a metric that
/// does not exist 422, anything else the store's own reason as 502.
fn store_refusal(reason: String) -> AppError {
    if reason.contains("query budget") {
        AppError::new(429, reason)
    } else if reason.starts_with("metric:") {
        AppError::new(422, reason).with_field("metric")
    } else if reason.starts_with("key:") {
        AppError::new(422, reason).with_field("key")
    } else {
        AppError::new(502, format!("the store could not answer: {reason}"))
    }
}
