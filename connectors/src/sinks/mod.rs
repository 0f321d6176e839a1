//! Alert channels: where notifications go. One module per kind (webhook, Slack-compatible
//! incoming webhook, Alertmanager API v2), each rendering an [`engine::alerts::Notification`]
//! its own way. Delivery bookkeeping (the outbox, retries, routing) is the server's; a
//! channel only renders and POSTs once.

pub mod alertmanager;
pub mod email;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use engine::alerts::{glob_matches, Notification, NotificationKind, QuietHours};
use engine::model::ResourceType;
use serde::{Deserialize, Serialize};

use crate::actuators::webhook::{Attempt, Client};

/// Header carrying the notification's idempotency key on every channel.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Slack,
    Alertmanager,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Alertmanager => "alertmanager",
            ChannelKind::Email => "email",
        }
    }
}

fn yes() -> bool {
    true
}

fn default_repeat() -> u64 {
    4 * 3600
}

fn default_timeout() -> u64 {
    5000
}

/// `[[alert_channel]]`: a channel and what it routes.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    /// Unique, shown on the Alerts page and in audit entries.
    pub name: String,
    pub kind: ChannelKind,
    /// The receiver. Treated as a secret (a Slack URL carries its token): pages, logs and
    /// errors show only its scheme and host. Email: `smtps://host[:port]`,
    /// `smtp+starttls://host[:port]` or `smtp://host[:port]`.
    pub url: String,
    /// Email: the sender and the recipients.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: the SMTP user, and where its password is kept (never inline).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// A name in `[actions.secrets]`: webhook bodies are signed with it
    /// (`X-Perfpilot-Signature: sha256=<HMAC>`), as action webhooks are.
    #[serde(default)]
    pub secret: Option<String>,
    /// Resource-id globs this channel gets (`cache:*`); empty means every resource.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Resource types: `cpu`, `memory`, `disk`, `network`, `database`, `cache`, `lb`,
    /// `fleet`, `custom` (every custom resource; one is `resources = ["custom:42"]`);
    /// empty means every type. Anything else is refused.
    #[serde(default)]
    pub types: Vec<String>,
    /// Groups, as notifications name them: a database's or cache's `group`, else the
    /// resource's own id (a group of one); empty means any.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A firing alert not yet resolved nor acknowledged is sent again this often
    /// (Alertmanager channels are refreshed every minute instead: it forgets alerts that
    /// are not re-sent).
    #[serde(default = "default_repeat")]
    pub repeat_interval_secs: u64,
    /// `22:00-07:00` (UTC): notifications are held and released at the end.
    #[serde(default)]
    pub quiet_hours: Option<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Also tell this channel what the optimizer did (applied, verified, rolled back).
    #[serde(default)]
    pub notify_outcomes: bool,
    /// Also tell this channel when a target is predicted to breach soon (a forecast
    /// alert: `[alerts] forecast_horizon_secs`, held `forecast_for_secs`).
    #[serde(default)]
    pub notify_forecasts: bool,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// The URL carries a token for Slack and may carry userinfo: a debug print shows only
/// what a page does.
impl std::fmt::Debug for ChannelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelEntry")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown_url())
            .field("resources", &self.resources)
            .field("types", &self.types)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// What a channel's routes look at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The resource's id (`custom:42`).
    pub resource: &'a str,
    /// Its type's word ([`ResourceType::kind`]: `custom`).
    pub resource_type: &'a str,
    pub group: Option<&'a str>,
}

impl ChannelEntry {
    /// The first rule broken, naming the field.
    pub fn validate(&self, secrets: &BTreeMap<String, String>) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "name: must be 1–64 characters of letters, digits, `-`, `_` or `.`, got {:?}",
                self.name
            ));
        }
        if self.kind == ChannelKind::Email {
            email::validate(self)?;
        } else {
            let uri: http::Uri = self
                .url
                .parse()
                .map_err(|_| "url: must be an http:// or https:// URL".to_owned())?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err("url: must be an http:// or https:// URL".into());
            }
            let email_only = [
                ("from", self.from.is_some()),
                ("to", !self.to.is_empty()),
                ("username", self.username.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_env", self.password_env.is_some()),
            ];
            if let Some((field, _)) = email_only.iter().find(|(_, set)| *set) {
                return Err(format!("{field}: only email channels take it"));
            }
        }
        for t in &self.types {
            if ResourceType::KINDS.contains(&t.as_str()) {
                continue;
            }
            if t.parse::<ResourceType>().is_ok() {
                return Err(format!(
                    "types: {t:?} is a resource id, not a type (one of {}); \
                     route that resource with resources = [{t:?}]",
                    ResourceType::KINDS.join(", ")
                ));
            }
            return Err(format!(
                "types: unknown resource type {t:?} (one of {})",
                ResourceType::KINDS.join(", ")
            ));
        }
        if let Some(secret) = &self.secret {
            if !secrets.contains_key(secret) {
                return Err(format!(
                    "secret: {secret:?} is not a name in [actions.secrets]"
                ));
            }
        }
        if let Some(quiet) = &self.quiet_hours {
            if self.kind == ChannelKind::Alertmanager {
                // Holding its refreshes would let Alertmanager resolve the alert by itself;
                // Alertmanager has its own mute timings for this.
                return Err(
                    "quiet_hours: not for alertmanager channels (use Alertmanager's mute_time_intervals)"
                        .into(),
                );
            }
            QuietHours::parse(quiet).map_err(|rule| format!("quiet_hours: {rule}"))?;
        }
        if !(10..=7 * 86_400).contains(&self.repeat_interval_secs) {
            return Err("repeat_interval_secs: must be between 10 and 604800 (7 days)".into());
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err("timeout_ms: must be between 100 and 60000".into());
        }
        Ok(())
    }

    /// `https://hooks.slack.com/…`: the URL as pages, logs and errors show it.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }

    pub fn quiet(&self) -> Option<QuietHours> {
        self.quiet_hours
            .as_deref()
            .and_then(|q| QuietHours::parse(q).ok())
    }

    /// Whether this channel gets notifications about `subject`. A resource without a
    /// group is its own group (named by its id), as notifications say.
    pub fn routes(&self, subject: Subject<'_>) -> bool {
        let group = subject
            .group
            .filter(|g| !g.is_empty())
            .unwrap_or(subject.resource);
        (self.resources.is_empty()
            || self
                .resources
                .iter()
                .any(|glob| glob_matches(glob, subject.resource)))
            && (self.types.is_empty() || self.types.iter().any(|t| t == subject.resource_type))
            && (self.groups.is_empty() || self.groups.iter().any(|want| want == group))
    }

    /// Whether a notification of this kind is for this channel at all.
    pub fn wants(&self, kind: NotificationKind) -> bool {
        match kind {
            NotificationKind::Firing | NotificationKind::Test => true,
            NotificationKind::Resolved => self.send_resolved,
            NotificationKind::Outcome => {
                self.notify_outcomes && self.kind != ChannelKind::Alertmanager
            }
            NotificationKind::Report => self.kind != ChannelKind::Alertmanager,
            // Alertmanager has no "predicted" alert: it would page as if it breached.
            NotificationKind::Forecast => {
                self.notify_forecasts && self.kind != ChannelKind::Alertmanager
            }
        }
    }

    /// How often a firing alert is sent again on this channel.
    pub fn repeat_every_ms(&self) -> i64 {
        match self.kind {
            ChannelKind::Alertmanager => alertmanager::REFRESH_MS,
            _ => (self.repeat_interval_secs * 1000) as i64,
        }
    }
}

/// Scheme, host and port of a URL, then `/…` when it has a path or query.
pub fn shown_url(url: &str) -> String {
    if let Ok((_, host, port)) = email::parse_url(url) {
        let scheme = url.split_once("://").map_or("smtp", |(s, _)| s);
        return format!("{scheme}://{host}:{port}");
    }
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.host().is_some() => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            // Userinfo (`user:pass@`) is part of the authority: keep only host and port.
            let host = authority.rsplit('@').next().unwrap_or_default();
            let rest = match uri.path_and_query().map(|p| p.as_str()) {
                None | Some("") | Some("/") => "",
                Some(_) => "/…",
            };
            format!("{scheme}://{host}{rest}")
        }
        _ => "(an invalid URL)".to_owned(),
    }
}

/// A configured channel, ready to send.
pub struct Channel {
    pub entry: ChannelEntry,
    secret: Option<String>,
    client: Client,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.entry.name)
            .field("kind", &self.entry.kind)
            .field("url", &self.entry.shown_url())
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub fn new(entry: ChannelEntry, secrets: &BTreeMap<String, String>, client: Client) -> Channel {
        let secret = entry.secret.as_ref().and_then(|s| secrets.get(s).cloned());
        Channel {
            entry,
            secret,
            client,
        }
    }

    /// Renders and POSTs `notification` once; the outbox decides about retries.
    pub async fn send(&self, notification: &Notification, now_ms: i64) -> Attempt {
        if self.entry.kind == ChannelKind::Email {
            return email::send(&self.entry, notification, &self.entry.shown_url()).await;
        }
        let (url, body) = match self.entry.kind {
            ChannelKind::Webhook => (
                self.entry.url.clone(),
                webhook::body(&self.entry.name, notification),
            ),
            ChannelKind::Slack => (self.entry.url.clone(), slack::body(notification)),
            ChannelKind::Alertmanager => (
                alertmanager::alerts_url(&self.entry.url),
                alertmanager::body(notification, now_ms),
            ),
            ChannelKind::Email => unreachable!("sent above"),
        };
        let body = bytes::Bytes::from(body.to_string());
        let mut headers = vec![(IDEMPOTENCY_HEADER, notification.key.clone())];
        if let Some(secret) = &self.secret {
            let signature = crate::actuators::webhook::sign(secret.as_bytes(), &body);
            headers.push((
                crate::actuators::webhook::SIGNATURE_HEADER,
                format!("sha256={signature}"),
            ));
        }
        crate::actuators::webhook::post_once(
            &self.client,
            &url,
            &self.entry.shown_url(),
            body,
            &headers,
            Duration::from_millis(self.entry.timeout_ms),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
