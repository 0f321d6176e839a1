//! Alertmanager API v2: `POST /api/v2/alerts` with a one-alert array. A firing alert's
//! `endsAt` is a few minutes ahead and it is re-sent every minute (as Prometheus does), so
//! Alertmanager never resolves it by timeout while it fires, and does so by itself if
//! perfpilot goes away; "resolved" sets `endsAt` to the moment it resolved.

use engine::alerts::{Notification, NotificationKind};
use engine::model::utc_iso;

/// How often a firing alert is re-sent.
pub const REFRESH_MS: i64 = 60_000;
/// How far ahead a firing alert's `endsAt` is (several refreshes).
const ENDS_AHEAD_MS: i64 = 5 * REFRESH_MS;

/// The alerts endpoint under the configured base URL (which may already be it).
pub fn alerts_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v2/alerts") {
        base.to_owned()
    } else {
        format!("{base}/api/v2/alerts")
    }
}

pub fn body(n: &Notification, now_ms: i64) -> serde_json::Value {
    let alertname = match n.kind {
        NotificationKind::Test => "PerfpilotTest",
        _ => "PerfpilotTargetBreached",
    };
    let labels = serde_json::json!({
        "alertname": alertname,
        "resource": n.resource,
        "resource_type": n.type_word(),
        // Always set (Alertmanager drops empty labels): an ungrouped resource is a group
        // of one, named by its id.
        "group": n.group_or_resource(),
        "metric": n.metric,
        "severity": "warning",
        "source": "perfpilot",
    });
    let mut annotations = serde_json::json!({ "summary": n.summary });
    if let Some(target) = &n.target {
        annotations["target"] = target.as_str().into();
    }
    let starts = n.started_ms.unwrap_or(n.at_ms);
    let ends = match n.kind {
        NotificationKind::Resolved => n.ended_ms.unwrap_or(now_ms),
        NotificationKind::Test => now_ms + REFRESH_MS,
        _ => now_ms + ENDS_AHEAD_MS,
    };
    let mut alert = serde_json::json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": utc_iso(starts),
        "endsAt": utc_iso(ends),
    });
    if let Some(url) = &n.url {
        alert["generatorURL"] = url.as_str().into();
    }
    serde_json::json!([alert])
}
