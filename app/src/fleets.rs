//! The wire type of adding a fleet (Settings page and server).

use serde::{Deserialize, Serialize};

/// A fleet as the Settings page adds it: the store and how to log in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFleet {
    /// The resource becomes `fleet:<name>`.
    pub name: String,
    pub url: String,
    pub selector: String,
    /// Comma-separated labels.
    pub group_by: String,
    #[serde(default)]
    pub username: Option<String>,
    /// The bearer token, or with a username its password; kept on the server.
    #[serde(default)]
    pub secret: Option<String>,
}
