//! The audit log's wire types and its filter, shared by `GET /api/audit`, the `/audit`
//! page's server function and the server's store, so every entry point accepts the same
//! filters and refuses bad ones with the same words.

use serde::{Deserialize, Serialize};

/// What an audit entry records. Configuration changes carry the engine's mutation kind;
/// the others are marks, optimizer actions and API-token events. On the wire and in the
/// database it is its snake_case name (`set_target`, `mark`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    SetTarget,
    ClearTarget,
    SetSettings,
    Rename,
    SetSource,
    SetFleetTarget,
    AddResource,
    RemoveResource,
    Restore,
    Mark,
    Action,
    TokenCreate,
    TokenRevoke,
    Silence,
    Unsilence,
    Acknowledge,
    ChannelTest,
}

impl AuditKind {
    /// Every kind, in the order the filter lists them.
    pub const ALL: [AuditKind; 17] = [
        AuditKind::SetTarget,
        AuditKind::ClearTarget,
        AuditKind::SetSettings,
        AuditKind::Rename,
        AuditKind::SetSource,
        AuditKind::SetFleetTarget,
        AuditKind::AddResource,
        AuditKind::RemoveResource,
        AuditKind::Restore,
        AuditKind::Mark,
        AuditKind::Action,
        AuditKind::TokenCreate,
        AuditKind::TokenRevoke,
        AuditKind::Silence,
        AuditKind::Unsilence,
        AuditKind::Acknowledge,
        AuditKind::ChannelTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SetTarget => "set_target",
            AuditKind::ClearTarget => "clear_target",
            AuditKind::SetSettings => "set_settings",
            AuditKind::Rename => "rename",
            AuditKind::SetSource => "set_source",
            AuditKind::SetFleetTarget => "set_fleet_target",
            AuditKind::AddResource => "add_resource",
            AuditKind::RemoveResource => "remove_resource",
            AuditKind::Restore => "restore",
            AuditKind::Mark => "mark",
            AuditKind::Action => "action",
            AuditKind::TokenCreate => "token_create",
            AuditKind::TokenRevoke => "token_revoke",
            AuditKind::Silence => "silence",
            AuditKind::Unsilence => "unsilence",
            AuditKind::Acknowledge => "acknowledge",
            AuditKind::ChannelTest => "channel_test",
        }
    }

    pub fn parse(text: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of a configuration change.
    pub fn of(kind: engine::changes::MutationKind) -> AuditKind {
        use engine::changes::MutationKind as M;
        match kind {
            M::AddResource => AuditKind::AddResource,
            M::RemoveResource => AuditKind::RemoveResource,
            M::SetTarget => AuditKind::SetTarget,
            M::ClearTarget => AuditKind::ClearTarget,
            M::SetSettings => AuditKind::SetSettings,
            M::Rename => AuditKind::Rename,
            M::SetSource => AuditKind::SetSource,
            M::SetFleetTarget => AuditKind::SetFleetTarget,
            M::Restore => AuditKind::Restore,
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        AuditKind::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown audit kind {text:?}")))
    }
}

/// Every kind's name, in the order the filter lists them.
pub fn kind_names() -> impl Iterator<Item = &'static str> {
    AuditKind::ALL.into_iter().map(AuditKind::as_str)
}

impl AuditKind {
    /// The kind in words, as the audit page and its filter show it.
    pub fn label(self) -> &'static str {
        match self {
            AuditKind::SetTarget => "Target set",
            AuditKind::ClearTarget => "Target cleared",
            AuditKind::SetSettings => "Settings changed",
            AuditKind::Rename => "Renamed",
            AuditKind::SetSource => "Source changed",
            AuditKind::SetFleetTarget => "Fleet target set",
            AuditKind::AddResource => "Resource added",
            AuditKind::RemoveResource => "Resource removed",
            AuditKind::Restore => "Snapshot restored",
            AuditKind::Mark => "Mark",
            AuditKind::Action => "Optimizer action",
            AuditKind::TokenCreate => "Token created",
            AuditKind::TokenRevoke => "Token revoked",
            AuditKind::Silence => "Silence created",
            AuditKind::Unsilence => "Silence ended",
            AuditKind::Acknowledge => "Alert acknowledged",
            AuditKind::ChannelTest => "Channel tested",
        }
    }
}

/// Who did something, in words: a person (or token) as "alice · editor"; perfpilot itself
/// (`source` `system`) as "perfpilot (optimizer)", "perfpilot (configuration file)" or
/// "perfpilot (automatic)" for what it noticed on its own, never with a role: no one's
/// permissions were involved.
pub fn actor_label(user: &str, role: &str, source: &str) -> String {
    if source == "system" {
        let what = match user {
            "optimizer" => "optimizer",
            "configuration" => "configuration file",
            _ => "automatic",
        };
        return format!("perfpilot ({what})");
    }
    format!("{user} · {role}")
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;
const MAX_TEXT: usize = 200;

/// One audited event: who, from where, when, what, and before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log; increases with time.
    pub id: i64,
    /// The change number, for configuration changes only.
    pub change: Option<u64>,
    pub at_unix_ms: i64,
    pub kind: AuditKind,
    pub resource: Option<String>,
    pub user: String,
    pub role: String,
    /// `anonymous`, `proxy`, `token` or `system` (the optimizer).
    pub source: String,
    pub client_ip: Option<String>,
    /// Human summary, e.g. "cpu: target utilization ≤ 65 % → ≤ 70 %".
    pub what: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// The snapshot this change triggered, if it was an Nth change.
    pub snapshot: Option<u64>,
}

/// Which entries to return, newest first. Empty fields do not filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Exact user name.
    pub user: Option<String>,
    /// Exact resource id.
    pub resource: Option<String>,
    pub kind: Option<AuditKind>,
    /// Case-insensitive substring of the summary, the user or the resource.
    pub text: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    /// Only entries of these change numbers (the Changes page asks for its snapshots'
    /// authors in one query). Not a URL filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<u64>,
    pub limit: usize,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            user: None,
            resource: None,
            kind: None,
            text: None,
            since: None,
            until: None,
            changes: Vec::new(),
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A filter value that breaks its rule; `Display` names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: String,
    pub rule: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for FilterError {}

fn bad(field: &str, rule: String) -> FilterError {
    FilterError {
        field: field.to_owned(),
        rule,
    }
}

impl AuditFilter {
    /// Builds a filter from query pairs (`user`, `resource`, `kind`, `q`, `since`,
    /// `until`, `limit`). Unknown names are refused rather than ignored: a misspelt filter
    /// would otherwise return everything and look like an answer.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<AuditFilter, FilterError> {
        let mut filter = AuditFilter::default();
        for (name, value) in pairs {
            let value = value.trim();
            match name {
                "user" => filter.user = text_field("user", value)?,
                "resource" => filter.resource = text_field("resource", value)?,
                "q" => filter.text = text_field("q", value)?,
                "kind" => filter.kind = kind_field(value)?,
                "since" => filter.since = time_field("since", value)?,
                "until" => filter.until = time_field("until", value)?,
                "limit" => filter.limit = limit_field(value)?,
                other => {
                    return Err(bad(
                        other,
                        "is not a filter; use user, resource, kind, q, since, until or limit"
                            .into(),
                    ))
                }
            }
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            if until <= since {
                return Err(bad(
                    "until",
                    format!("must be after since ({since}), got {until}"),
                ));
            }
        }
        Ok(filter)
    }

    /// Whether `record` passes this filter: what the store's query selects, for callers
    /// that filter in memory and for tests that check the query.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let text_hit = |needle: &str| {
            let needle = needle.to_lowercase();
            [
                Some(record.what.as_str()),
                Some(record.user.as_str()),
                record.resource.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|hay| hay.to_lowercase().contains(&needle))
        };
        self.user.as_ref().is_none_or(|u| *u == record.user)
            && self
                .resource
                .as_ref()
                .is_none_or(|r| Some(r.as_str()) == record.resource.as_deref())
            && self.kind.is_none_or(|k| k == record.kind)
            && self.text.as_deref().is_none_or(text_hit)
            && self.since.is_none_or(|s| record.at_unix_ms >= s)
            && self.until.is_none_or(|u| record.at_unix_ms < u)
            && (self.changes.is_empty() || record.change.is_some_and(|c| self.changes.contains(&c)))
    }
}

fn text_field(field: &str, value: &str) -> Result<Option<String>, FilterError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_TEXT {
        return Err(bad(
            field,
            format!(
                "must be at most {MAX_TEXT} characters, got {}",
                value.chars().count()
            ),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn kind_field(value: &str) -> Result<Option<AuditKind>, FilterError> {
    if value.is_empty() {
        return Ok(None);
    }
    match AuditKind::parse(value) {
        Some(kind) => Ok(Some(kind)),
        None => Err(bad(
            "kind",
            format!(
                "must be one of {}, got {value:?}",
                kind_names().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn time_field(field: &str, value: &str) -> Result<Option<i64>, FilterError> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(Some(ms)),
        _ => Err(bad(
            field,
            format!("must be a time in unix milliseconds (a whole number ≥ 0), got {value:?}"),
        )),
    }
}

fn limit_field(value: &str) -> Result<usize, FilterError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}, got {value:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfpilot_itself_is_named_without_a_role() {
        assert_eq!(
            actor_label("optimizer", "admin", "system"),
            "perfpilot (optimizer)"
        );
        assert_eq!(
            actor_label("perfpilot", "viewer", "system"),
            "perfpilot (automatic)"
        );
        assert_eq!(
            actor_label("configuration", "admin", "system"),
            "perfpilot (configuration file)"
        );
        assert_eq!(actor_label("alice", "editor", "proxy"), "alice · editor");
        let labels: std::collections::BTreeSet<&str> =
            AuditKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), AuditKind::ALL.len());
    }

    fn record(user: &str, resource: Option<&str>, kind: &str, what: &str, at: i64) -> AuditRecord {
        AuditRecord {
            id: 1,
            change: Some(1),
            at_unix_ms: at,
            kind: AuditKind::parse(kind).unwrap(),
            resource: resource.map(str::to_owned),
            user: user.into(),
            role: "editor".into(),
            source: "proxy".into(),
            client_ip: None,
            what: what.into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            snapshot: None,
        }
    }

    #[test]
    fn pairs_build_a_filter_and_bad_values_name_field_and_rule() {
        let f = AuditFilter::from_pairs([
            ("user", "alice"),
            ("kind", "set_target"),
            ("since", "10"),
            ("until", "20"),
            ("limit", "5"),
            ("resource", ""),
        ])
        .unwrap();
        assert_eq!(f.user.as_deref(), Some("alice"));
        assert_eq!(f.resource, None);
        assert_eq!((f.since, f.until, f.limit), (Some(10), Some(20), 5));

        let err = |pairs: &[(&str, &str)]| {
            AuditFilter::from_pairs(pairs.iter().copied())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[("limit", "0")]),
            "limit: must be a whole number from 1 to 1000, got \"0\""
        );
        assert_eq!(
            err(&[("since", "yesterday")]),
            "since: must be a time in unix milliseconds (a whole number ≥ 0), got \"yesterday\""
        );
        assert!(err(&[("kind", "delete")]).starts_with("kind: must be one of set_target"));
        assert_eq!(
            err(&[("since", "20"), ("until", "20")]),
            "until: must be after since (20), got 20"
        );
        assert!(err(&[("usr", "bob")]).starts_with("usr: is not a filter"));
    }

    #[test]
    fn matches_applies_every_field() {
        let r = record(
            "alice",
            Some("cpu"),
            "set_target",
            "cpu: target ≤ 65 % → ≤ 70 %",
            15,
        );
        assert!(AuditFilter::default().matches(&r));
        let with = |pairs: &[(&str, &str)]| {
            AuditFilter::from_pairs(pairs.iter().copied())
                .unwrap()
                .matches(&r)
        };
        assert!(with(&[("user", "alice"), ("resource", "cpu")]));
        assert!(!with(&[("user", "bob")]));
        assert!(!with(&[("resource", "memory")]));
        assert!(with(&[("q", "TARGET")]));
        assert!(!with(&[("q", "restored")]));
        assert!(!with(&[("kind", "restore")]));
        assert!(with(&[("since", "15"), ("until", "16")]));
        assert!(!with(&[("until", "15")]));
    }
}
