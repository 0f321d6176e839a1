//! Shared, read-mostly state handed to every request handler.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::assets::Site;
use crate::config::Settings;
use crate::monitor::Monitor;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub site: Arc<Site>,
    pub settings: Arc<Settings>,
    pub monitor: Monitor,
    pub auth: Arc<crate::auth::Auth>,
}

impl AppState {
    pub fn new(settings: Settings, monitor: Monitor) -> AppState {
        let site = Site::discover(&settings.site_root);
        let leptos_options = LeptosOptions::builder()
            .output_name(site.output_name.clone())
            .site_root(site.root.to_string_lossy().into_owned())
            .site_pkg_dir(crate::assets::PKG_DIR)
            .site_addr(settings.listen)
            .build();
        let auth = Arc::new(crate::auth::Auth::new(
            settings.auth.clone(),
            settings.listen,
            crate::auth::Tokens::default(),
        ));
        AppState {
            leptos_options,
            site: Arc::new(site),
            settings: Arc::new(settings),
            monitor,
            auth,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl app::backend::Backend for Monitor {
    fn overview(&self) -> app::live::Overview {
        Monitor::overview(self)
    }

    fn store(&self) -> Arc<engine::changes::ChangeStore> {
        self.store.clone()
    }

    fn history(&self) -> Arc<std::sync::RwLock<engine::history::History>> {
        self.history.clone()
    }

    fn changed(&self, record: &engine::changes::ChangeRecord) {
        Monitor::changed(self, record);
    }

    fn comparisons(&self) -> Vec<app::proof::ComparisonRow> {
        Monitor::comparisons(self)
    }

    fn add_mark(&self, id: &engine::model::ResourceId, label: &str) -> Result<(), String> {
        Monitor::add_mark(self, id, label)
    }
}

impl app::identity::TokenAdmin for crate::auth::Auth {
    fn list(&self) -> Vec<app::identity::TokenInfo> {
        self.tokens.list()
    }

    fn mint(
        &self,
        name: &str,
        role: app::identity::Role,
        by: &app::identity::Identity,
    ) -> app::backend::Pending<app::identity::MintedToken> {
        let minted = self
            .tokens
            .mint(name, role, by, crate::auth::now_unix_ms())
            .map(|(token, secret)| app::identity::MintedToken {
                info: token.info,
                secret,
            });
        Box::pin(async move { minted })
    }

    fn revoke(
        &self,
        id: &str,
        _by: &app::identity::Identity,
    ) -> app::backend::Pending<app::identity::TokenInfo> {
        let revoked = self
            .tokens
            .revoke(id, crate::auth::now_unix_ms())
            .map(|token| token.info);
        Box::pin(async move { revoked })
    }
}
