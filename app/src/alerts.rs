//! Alerts wire types: the Alerts page, silences, acknowledgements and the live pulse.

use serde::{Deserialize, Serialize};

/// Sent with every live frame: the page refetches when `version` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertsPulse {
    pub version: u64,
    pub firing: u32,
    pub pending: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AlertsView {
    pub now_ms: i64,
    pub firing: Vec<FiringAlert>,
    pub pending: Vec<PendingAlert>,
    /// Forecast alerts that fired and have not ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<ForecastAlertView>,
    pub silences: Vec<SilenceView>,
    pub history: Vec<EpisodeView>,
    pub channels: Vec<ChannelView>,
    pub deliveries: Vec<DeliveryView>,
    /// Around the newest firing alert's start: the series that moved the most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_changed: Option<crate::changed::WhatChanged>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringAlert {
    pub resource: String,
    pub name: String,
    pub summary: String,
    pub started_ms: i64,
    /// The silence that holds its notifications back.
    pub silenced_by: Option<i64>,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
}

/// A target predicted to breach soon, held long enough to be told (a forecast alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastAlertView {
    pub resource: String,
    pub name: String,
    /// "breaches 80 % in ~3 h 10 m (2 h 40 m – 4 h 5 m)"
    pub summary: String,
    /// Since when every refit has predicted it.
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAlert {
    pub resource: String,
    pub name: String,
    /// "breaching for 2 m 40 s of 5 m"
    pub text: String,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceView {
    pub id: i64,
    pub matcher: String,
    pub comment: String,
    pub created_by: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub active: bool,
    pub expired_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeView {
    pub resource: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub summary: String,
    pub end_summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelView {
    pub name: String,
    pub kind: String,
    /// Scheme and host only: the rest may be a token.
    pub url: String,
    /// "every resource", "cache:* · type cpu · group web"
    pub routes: String,
    pub quiet_hours: Option<String>,
    pub waiting: u32,
    pub failed: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub resource: String,
    pub summary: String,
    /// `pending`, `sent`, `failed`
    pub state: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub due_ms: i64,
    pub sent_ms: Option<i64>,
    pub detail: Option<String>,
}

/// `POST /api/v1/silences` and the page's form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// A resource-id glob: `cpu`, `cache:*`, `*`.
    pub matcher: String,
    /// `30m`, `2h`, `1d`, `1h30m`.
    pub duration: String,
    pub comment: String,
}

/// The longest silence: past a week it is a target to change, not a silence.
pub const MAX_SILENCE_SECS: u64 = 7 * 86_400;

impl NewSilence {
    /// The duration in seconds, or the first rule broken as `(field, rule)`.
    pub fn validate(&self) -> Result<u64, (&'static str, String)> {
        let matcher = self.matcher.trim();
        if matcher.is_empty()
            || matcher.len() > 128
            || matcher.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err((
                "matcher",
                "must be a resource id or a glob such as `cache:*` (1–128 characters, no spaces)"
                    .into(),
            ));
        }
        let secs = parse_duration(&self.duration).ok_or((
            "duration",
            format!(
                "must be a duration such as `30m`, `2h` or `1d`, got {:?}",
                self.duration
            ),
        ))?;
        if !(60..=MAX_SILENCE_SECS).contains(&secs) {
            return Err(("duration", "must be between 1 minute and 7 days".into()));
        }
        let comment = self.comment.trim();
        if comment.is_empty() || comment.chars().count() > 500 {
            return Err((
                "comment",
                "say why (1–500 characters): whoever sees the silence will ask".into(),
            ));
        }
        // Shown on the page, in the audit log and in reports: nothing invisible.
        if let Some(rule) = engine::text::free_text_rule(comment, true) {
            return Err(("comment", rule));
        }
        Ok(secs)
    }
}

/// `1h30m`, `90s`, `2d`: a sum of numbers with units s, m, h, d.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        number.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !number.is_empty() {
        return None;
    }
    Some(total)
}

/// `POST /api/v1/alerts/{resource}/ack`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    #[serde(default)]
    pub comment: String,
    /// When the firing alert the person looked at started: an acknowledgement is for that
    /// episode, not for one that resolved and fired again while they read the page.
    #[serde(default)]
    pub started_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("45s"), Some(45));
        for bad in ["", "30", "m", "1x", "1h 30m", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn silences_are_checked_field_by_field() {
        let ok = NewSilence {
            matcher: "cache:*".into(),
            duration: "2h".into(),
            comment: "maintenance".into(),
        };
        assert_eq!(ok.validate(), Ok(7200));
        let field = |s: NewSilence| s.validate().unwrap_err().0;
        assert_eq!(
            field(NewSilence {
                matcher: " ".into(),
                ..ok.clone()
            }),
            "matcher"
        );
        assert_eq!(
            field(NewSilence {
                duration: "10s".into(),
                ..ok.clone()
            }),
            "duration"
        );
        assert_eq!(
            field(NewSilence {
                duration: "8d".into(),
                ..ok.clone()
            }),
            "duration"
        );
        assert_eq!(
            field(NewSilence {
                comment: "".into(),
                ..ok.clone()
            }),
            "comment"
        );
        // Nothing invisible reaches the page, the audit log or a report; lines may break.
        for bad in ["db\0restart", "esc \u{1b}[2J", "tricky\u{202E}gnp.exe"] {
            let (field, rule) = NewSilence {
                comment: bad.into(),
                ..ok.clone()
            }
            .validate()
            .unwrap_err();
            assert_eq!(field, "comment", "{bad:?}");
            assert!(
                rule.starts_with("must not contain control characters"),
                "{rule}"
            );
        }
        assert_eq!(
            NewSilence {
                comment: "planned\r\nmaintenance".into(),
                ..ok
            }
            .validate(),
            Ok(7200)
        );
    }
}
