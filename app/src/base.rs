//! The path prefix perfpilot is served under (`/perf` for `--public-url
//! https://host/perf/`; empty at the root). Every URL the UI writes — links, the
//! stylesheet, the bundle, server functions, the websocket, exports — starts with it, so
//! a reverse proxy can forward the prefix unchanged.
//!
//! The server provides it as context; the browser reads the `<meta name=perfpilot-base>`
//! the server wrote into the document, so both render the same links.

use leptos::prelude::*;

/// Name of the `<meta>` that carries the base path to the browser.
pub const META_NAME: &str = "perfpilot-base";

/// The prefix without a trailing slash: `""` or `"/perf"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BasePath(pub String);

impl BasePath {
    /// `path` (starting with `/`) under the base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// The base path of this render: the server's context, or the browser's document.
pub fn current() -> BasePath {
    if let Some(base) = use_context::<BasePath>() {
        return base;
    }
    #[cfg(feature = "hydrate")]
    {
        from_document()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        BasePath::default()
    }
}

/// `path` under the current base path.
pub fn href(path: &str) -> String {
    current().join(path)
}

#[cfg(feature = "hydrate")]
fn from_document() -> BasePath {
    let content = document()
        .query_selector(&format!("meta[name='{META_NAME}']"))
        .ok()
        .flatten()
        .and_then(|meta| meta.get_attribute("content"))
        .unwrap_or_default();
    BasePath(content)
}

/// Points the browser's server-function calls at `{base}/api/…`. Runs once, before
/// hydration: server_fn keeps the prefix in a process-wide cell.
#[cfg(feature = "hydrate")]
pub fn init_browser() {
    let base = from_document();
    if !base.0.is_empty() {
        let prefix: &'static str = Box::leak(base.0.into_boxed_str());
        let _ = leptos::server_fn::client::try_set_server_url(prefix);
    }
}
