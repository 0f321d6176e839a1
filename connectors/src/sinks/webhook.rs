//! The generic webhook channel: the notification as JSON, with the channel's name and a
//! format version, signed like action webhooks when the channel names a secret.
//! `resource` is the resource's id, `resource_type` its type's word (`custom`, not
//! `custom:42`), `group` always present (the resource's id when it has no group).

use engine::alerts::Notification;

pub fn body(channel: &str, notification: &Notification) -> serde_json::Value {
    let mut body = serde_json::to_value(notification).expect("a notification always serializes");
    body["resource_type"] = notification.type_word().into();
    body["group"] = notification.group_or_resource().into();
    body["channel"] = channel.into();
    body["version"] = 1.into();
    body
}
