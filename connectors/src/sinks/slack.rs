//! Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): one `text` in
//! mrkdwn, with a link to the resource page.

use engine::alerts::{Notification, NotificationKind};

pub fn body(n: &Notification) -> serde_json::Value {
    let (icon, title) = match n.kind {
        NotificationKind::Firing => (":rotating_light:", "FIRING"),
        NotificationKind::Resolved => (":white_check_mark:", "RESOLVED"),
        NotificationKind::Outcome => (":gear:", "OPTIMIZER"),
        NotificationKind::Test => (":wave:", "TEST"),
        NotificationKind::Report => (":bar_chart:", "REPORT"),
        NotificationKind::Forecast => (":crystal_ball:", "FORECAST"),
    };
    let name = if n.resource_name.is_empty() || n.resource_name == n.resource {
        n.resource.clone()
    } else {
        format!("{} ({})", n.resource_name, n.resource)
    };
    let mut text = format!("{icon} *{title}* {}: {}", escape(&name), escape(&n.summary));
    if let Some(target) = &n.target {
        text.push_str(&format!("\nTarget: {}", escape(target)));
    }
    if let Some(url) = &n.url {
        text.push_str(&format!("\n<{url}|Open in perfpilot>"));
    }
    serde_json::json!({ "text": text })
}

/// Slack's three control characters in mrkdwn.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
