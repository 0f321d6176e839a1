//! Who is asking. The server decides (`server/src/auth.rs` puts an [`Identity`] into every
//! request's extensions); server functions enforce roles with `backend::require`; the UI
//! uses the same types to show who you are and hide what your role may not do.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Ordered: a higher role may do everything a lower one may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also edits targets and settings, adds marks, pushes metrics.
    Editor,
    /// Also restores snapshots, manages actions and API tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the identity was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSource {
    /// No credentials: the role follows the listener and `--allow-anonymous-edit`.
    Anonymous,
    /// Identity headers from a peer inside the trusted-proxy allow-list.
    Proxy,
    /// An API token (`Authorization: Bearer …`).
    Token,
    /// perfpilot itself: the optimizer acting on a confirmed breach.
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// "anonymous" when nobody is signed in.
    pub user: String,
    pub role: Role,
    pub source: AuthSource,
    /// The client: the TCP peer, or the `X-Forwarded-For` client when the peer is a
    /// trusted proxy. `None` only for in-process calls.
    pub client_ip: Option<IpAddr>,
}

impl Identity {
    pub const ANONYMOUS: &'static str = "anonymous";

    pub fn anonymous(role: Role, client_ip: Option<IpAddr>) -> Identity {
        Identity {
            user: Identity::ANONYMOUS.to_owned(),
            role,
            source: AuthSource::Anonymous,
            client_ip,
        }
    }

    /// The optimizer, as the audit log names it when an action runs.
    pub fn optimizer() -> Identity {
        Identity {
            user: "optimizer".to_owned(),
            role: Role::Admin,
            source: AuthSource::System,
            client_ip: None,
        }
    }

    /// perfpilot itself noticing something on a resource (a cache restarted cold), as the
    /// audit log names the marks it sets: with the role a mark needs (a viewer could not
    /// set one), though pages name a system actor without a role.
    pub fn watcher() -> Identity {
        Identity {
            user: "perfpilot".to_owned(),
            role: Role::Editor,
            source: AuthSource::System,
            client_ip: None,
        }
    }

    /// The configuration file, as the audit log names the changes it makes at start-up
    /// (databases and caches declared there).
    pub fn configuration() -> Identity {
        Identity {
            user: "configuration".to_owned(),
            role: Role::Admin,
            source: AuthSource::System,
            client_ip: None,
        }
    }

    pub fn may(&self, needed: Role) -> bool {
        self.role.allows(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_their_names() {
        assert!(Role::Admin.allows(Role::Editor));
        assert!(Role::Editor.allows(Role::Editor));
        assert!(!Role::Viewer.allows(Role::Editor));
        assert!(!Role::Editor.allows(Role::Admin));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse(" Admin "), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }
}

/// An API token as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public id, used to revoke and in the audit log.
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at_unix_ms: i64,
    pub revoked_at_unix_ms: Option<i64>,
}

/// A freshly minted token: `secret` is shown once and never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintedToken {
    pub info: TokenInfo,
    pub secret: String,
}

/// What the token server functions reach on the server, provided as context.
#[cfg(feature = "ssr")]
pub trait TokenAdmin: Send + Sync + 'static {
    fn list(&self) -> Vec<TokenInfo>;
    fn mint(&self, name: &str, role: Role, by: &Identity) -> crate::backend::Pending<MintedToken>;
    fn revoke(&self, id: &str, by: &Identity) -> crate::backend::Pending<TokenInfo>;
}

#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct TokenAdminContext(pub std::sync::Arc<dyn TokenAdmin>);
