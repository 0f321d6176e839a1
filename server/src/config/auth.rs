//! The `[auth]` table and the auth flags, resolved into the [`AuthSettings`] the
//! authentication middleware (`http::auth`) enforces: who users are (`none` or `proxy`),
//! which proxies are trusted, which headers name a user and their groups, and which
//! groups get which role.

use std::collections::HashMap;
use std::net::IpAddr;

use app::identity::Role;
use axum::http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    None,
    Proxy,
}

impl AuthMode {
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(AuthMode::None),
            "proxy" => Some(AuthMode::Proxy),
            _ => None,
        }
    }
}

/// The `[auth]` table of the TOML file. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub mode: Option<String>,
    pub allow_anonymous_edit: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub user_headers: Option<Vec<String>>,
    pub groups_headers: Option<Vec<String>>,
    pub email_headers: Option<Vec<String>>,
    pub default_role: Option<String>,
    /// Role → groups, e.g. `admin = ["perf-admins"]`.
    pub roles: Option<HashMap<String, Vec<String>>>,
}

/// Effective authentication settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub allow_anonymous_edit: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub user_headers: Vec<HeaderName>,
    pub groups_headers: Vec<HeaderName>,
    pub email_headers: Vec<HeaderName>,
    /// Role of a proxy-authenticated user none of whose groups is mapped.
    pub default_role: Role,
    /// Group → role; a user gets the highest role of their groups.
    pub group_roles: HashMap<String, Role>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            mode: AuthMode::None,
            allow_anonymous_edit: false,
            trusted_proxies: default_trusted_proxies(),
            user_headers: headers(&["Remote-User", "X-Forwarded-User"]),
            groups_headers: headers(&["Remote-Groups", "X-Forwarded-Groups"]),
            email_headers: headers(&["X-Forwarded-Email", "Remote-Email"]),
            default_role: Role::Viewer,
            group_roles: HashMap::new(),
        }
    }
}

fn headers(names: &[&str]) -> Vec<HeaderName> {
    names
        .iter()
        .map(|name| HeaderName::from_bytes(name.as_bytes()).expect("valid header name"))
        .collect()
}

/// A reverse proxy on the same host is the common deployment.
pub fn default_trusted_proxies() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("valid CIDR"),
        "::1/128".parse().expect("valid CIDR"),
    ]
}

/// A field's value broke a rule; the parent module turns it into its own error type.
#[derive(Debug)]
pub struct Invalid {
    pub field: &'static str,
    pub rule: String,
}

impl AuthSettings {
    /// Merges flags over the `[auth]` table over defaults.
    pub fn resolve(flags: &super::Cli, file: Option<AuthFile>) -> Result<AuthSettings, Invalid> {
        let file = file.unwrap_or_default();
        let mut settings = AuthSettings::default();
        if let Some(mode) = flags.auth.as_deref().or(file.mode.as_deref()) {
            settings.mode = AuthMode::parse(mode).ok_or_else(|| Invalid {
                field: "auth.mode",
                rule: format!("must be `none` or `proxy`, got {mode:?}"),
            })?;
        }
        settings.allow_anonymous_edit =
            flags.allow_anonymous_edit || file.allow_anonymous_edit.unwrap_or(false);
        let proxies = match &flags.trusted_proxies {
            Some(list) => Some(split_list(list)),
            None => file.trusted_proxies,
        };
        if let Some(proxies) = proxies {
            settings.trusted_proxies = proxies
                .iter()
                .map(|text| parse_cidr(text))
                .collect::<Result<_, _>>()?;
        }
        for (field, names, target) in [
            (
                "auth.user_headers",
                file.user_headers,
                &mut settings.user_headers,
            ),
            (
                "auth.groups_headers",
                file.groups_headers,
                &mut settings.groups_headers,
            ),
            (
                "auth.email_headers",
                file.email_headers,
                &mut settings.email_headers,
            ),
        ] {
            if let Some(names) = names {
                *target = names
                    .iter()
                    .map(|name| {
                        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| Invalid {
                            field,
                            rule: format!("{name:?} is not a valid HTTP header name"),
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
        }
        if let Some(role) = flags
            .default_role
            .as_deref()
            .or(file.default_role.as_deref())
        {
            settings.default_role = parse_role("auth.default_role", role)?;
        }
        let mut mapping: Vec<(Role, Vec<String>)> = Vec::new();
        for (role, groups) in file.roles.unwrap_or_default() {
            mapping.push((parse_role("auth.roles", &role)?, groups));
        }
        for (role, flag) in [
            (Role::Editor, &flags.editor_groups),
            (Role::Admin, &flags.admin_groups),
        ] {
            if let Some(list) = flag {
                mapping.retain(|(r, _)| *r != role);
                mapping.push((role, split_list(list)));
            }
        }
        for (role, groups) in mapping {
            for group in groups {
                let group = group.trim().to_owned();
                if group.is_empty() {
                    return Err(Invalid {
                        field: "auth.roles",
                        rule: format!("a group name for {role} is empty"),
                    });
                }
                let entry = settings.group_roles.entry(group).or_insert(role);
                *entry = (*entry).max(role);
            }
        }
        Ok(settings)
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_cidr(text: &str) -> Result<IpNet, Invalid> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| Invalid {
            field: "auth.trusted_proxies",
            rule: format!("must be IP addresses or CIDRs like 10.0.0.0/8, got {text:?}"),
        })
}

fn parse_role(field: &'static str, text: &str) -> Result<Role, Invalid> {
    Role::parse(text).ok_or_else(|| Invalid {
        field,
        rule: format!("must be viewer, editor or admin, got {text:?}"),
    })
}
