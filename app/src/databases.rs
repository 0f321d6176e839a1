//! Adding a database from the UI: what the form sends and what the server answers. The
//! server connects once with exactly these settings before anything changes, and keeps a
//! password sent here to itself (it is written under the data directory and never comes
//! back in any answer).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDatabase {
    /// Which database kind (`postgres`, `mysql`: the server's list of database kinds);
    /// none for the first of them.
    #[serde(default)]
    pub kind: Option<String>,
    /// The resource becomes `database:<name>`.
    pub name: String,
    /// `postgresql://user@host:port/db` (`mysql://…`), without a password.
    pub url: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub probe_query: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseAdded {
    pub change: u64,
    pub resource: String,
    pub server_version: String,
    /// `pg_stat_statements` is installed (the Queries panel needs it).
    pub statements: bool,
}

/// A database's connection as its page shows it: never the password, only where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseConnection {
    pub url: String,
    pub probe_query: Option<String>,
    pub group: Option<String>,
    /// "stored on the server", "read from /etc/…", "read from $VAR", or "none".
    pub password: String,
}
