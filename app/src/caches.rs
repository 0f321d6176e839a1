//! Caches from the UI: adding one (the server connects once with exactly these settings
//! before anything changes, and keeps a password sent here to itself), and invalidating
//! keys by pattern (previewed, then confirmed).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCache {
    /// `redis` or `memcached`.
    pub kind: String,
    /// The resource becomes `cache:<name>`.
    pub name: String,
    /// Redis: `redis://host:port/db` without a password; memcached: `host:port`.
    pub url: String,
    /// For `rediss://` with a private CA: a PEM file on the server.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Caches with the same group are levels in front of one backend.
    #[serde(default)]
    pub group: Option<String>,
    /// Its level in the group: 1 is nearest the application (default 2).
    #[serde(default)]
    pub level: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheAdded {
    pub change: u64,
    pub resource: String,
    pub server_version: String,
    /// Why tuning will be unavailable (`CONFIG` disabled, …).
    pub tuning_unavailable: Option<String>,
}

/// What a preview of an invalidation found, or what an invalidation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Keys matching (preview) or unlinked (done).
    pub keys: u64,
    /// About how many keys were looked at.
    pub scanned: u64,
    /// The whole keyspace was scanned; otherwise a bound stopped it.
    pub complete: bool,
    /// Whether the cache itself could count (Redis); memcached cannot list its keys.
    pub counted: bool,
    /// Whether keys were removed (false for a preview).
    pub done: bool,
    /// What the application's invalidation hook answered ("HTTP 200", "failed: …").
    #[serde(default)]
    pub hook: Option<String>,
}

impl Invalidation {
    /// The sentence the page shows.
    pub fn describe(&self, pattern: &str) -> String {
        let partial = if self.complete {
            String::new()
        } else {
            format!(" (stopped after about {} keys scanned)", self.scanned)
        };
        let hook = match &self.hook {
            Some(answer) if answer.starts_with("failed") => {
                format!(" The application's invalidation hook {answer}.")
            }
            Some(answer) => format!(" The application's invalidation hook answered {answer}."),
            None => String::new(),
        };
        match (self.counted, self.done) {
            (true, false) => format!("{} keys match {pattern}{partial}.", self.keys),
            (true, true) => format!(
                "Invalidated {} keys matching {pattern}{partial}.{hook}",
                self.keys
            ),
            (false, false) => format!(
                "This cache cannot count its keys; confirming hands {pattern} to the application's invalidation hook."
            ),
            (false, true) => format!("Handed {pattern} to the application.{hook}"),
        }
    }
}
