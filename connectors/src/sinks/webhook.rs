//! The generic webhook channel: the notification as JSON, with the channel's name and a
//! format version, signed like action webhooks when the channel names a secret.

use engine::alerts::Notification;

pub fn body(channel: &str, notification: &Notification) -> serde_json::Value {
    let mut body = serde_json::to_value(notification).expect("a notification always serializes");
    body["channel"] = channel.into();
    body["version"] = 1.into();
    body
}
