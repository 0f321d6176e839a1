//! What people do from the Alerts page and API: silences, acknowledgements, and the
//! "send test" button of a channel; each audited.

use std::sync::atomic::Ordering;

use app::alerts::{Acknowledgement, NewSilence};
use app::audit::AuditKind;
use app::error::AppError;
use app::identity::Identity;
use connectors::actuators::webhook::Attempt;
use engine::alerts::{Notification, NotificationKind};
use engine::sync::lock;

use super::{db_error, Alerting};
use crate::persist::actor_entry;
use crate::persist::alerts::Outgoing;

impl Alerting {
    /// The "send test" button: sends now, records the delivery, answers the receiver's
    /// answer or why it failed; audited. The send runs on its own task, so a caller that
    /// goes away mid-send leaves a finished delivery record, not a waiting one.
    pub async fn test(&self, channel: &str, actor: &Identity) -> Result<String, AppError> {
        if self.channel(channel).is_none() {
            return Err(AppError::not_found(format!(
                "no alert channel is named {channel:?}"
            )));
        }
        let this = self.clone();
        let (channel, actor) = (channel.to_owned(), actor.clone());
        tokio::spawn(async move { this.send_test(&channel, &actor).await })
            .await
            .map_err(|err| AppError::unavailable(format!("the test send stopped: {err}")))?
    }

    async fn send_test(&self, channel: &str, actor: &Identity) -> Result<String, AppError> {
        let target = self.channel(channel).expect("checked by the caller");
        let now = self.now_ms();
        let nonce = self.inner.tests.fetch_add(1, Ordering::Relaxed);
        let n = Notification {
            key: format!("test/{channel}/{now}/{nonce}"),
            kind: NotificationKind::Test,
            resource: "perfpilot".into(),
            resource_name: "perfpilot".into(),
            resource_type: String::new(),
            group: None,
            metric: String::new(),
            summary: format!("test notification from perfpilot, sent by {}", actor.user),
            target: None,
            value: None,
            started_ms: Some(now),
            ended_ms: None,
            url: self.inner.public_url.clone(),
            at_ms: now,
        };
        let row = Outgoing {
            channel: channel.to_owned(),
            stream: format!("test:{channel}"),
            // Sent below, not by the delivery task.
            due_ms: i64::MAX,
            notification: n.clone(),
        };
        let id = self.inner.db.enqueue_one(&row, now).map_err(db_error)?;
        let result = target.send(&n, now).await;
        let done = self.now_ms();
        self.bump();
        let (stored, answer) = match result {
            Attempt::Done(detail) => (
                self.inner.db.mark_sent(id, 1, done, &detail),
                Ok(format!(
                    "delivered to {} ({detail})",
                    target.entry.shown_url()
                )),
            ),
            Attempt::Fatal(error) | Attempt::Retry(error) => (
                self.inner.db.mark_failed(id, 1, &error),
                Err(AppError::new(
                    502,
                    format!("the channel did not accept it: {error}"),
                )),
            ),
        };
        let outcome = match &answer {
            Ok(text) => text.clone(),
            Err(err) => err.error.clone(),
        };
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::ChannelTest,
            None,
            now,
            format!("sent a test notification to {channel}: {outcome}"),
            serde_json::Value::Null,
            serde_json::json!({ "channel": channel, "delivered": answer.is_ok(), "result": outcome }),
        ));
        stored.map_err(db_error)?;
        answer
    }

    pub fn silence(&self, new: NewSilence, actor: &Identity) -> Result<i64, AppError> {
        let secs = new
            .validate()
            .map_err(|(field, rule)| AppError::invalid(field, rule))?;
        // Who: from a proxy's header or a token's name, stored with the silence.
        if let Some(rule) = engine::text::free_text_rule(&actor.user, false) {
            return Err(AppError::invalid("created_by", rule));
        }
        let now = self.now_ms();
        let ends = now + (secs as i64) * 1000;
        let (matcher, comment) = (new.matcher.trim(), new.comment.trim());
        let id = self
            .inner
            .db
            .add_silence(matcher, comment, &actor.user, now, ends)
            .map_err(db_error)?;
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Silence,
            None,
            now,
            format!(
                "silenced {matcher:?} for {}: {comment}",
                engine::model::format_duration(u32::try_from(secs).unwrap_or(u32::MAX))
            ),
            serde_json::Value::Null,
            serde_json::json!({ "id": id, "matcher": matcher, "ends_ms": ends, "comment": comment }),
        ));
        self.bump();
        Ok(id)
    }

    pub fn unsilence(&self, id: i64, actor: &Identity) -> Result<(), AppError> {
        let now = self.now_ms();
        let row = self
            .inner
            .db
            .expire_silence(id, &actor.user, now)
            .map_err(db_error)?
            .ok_or_else(|| AppError::not_found(format!("no active silence has the id {id}")))?;
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Unsilence,
            None,
            now,
            format!("ended the silence of {:?}", row.matcher),
            serde_json::json!({ "id": id, "matcher": row.matcher }),
            serde_json::Value::Null,
        ));
        self.bump();
        // Whatever it held back is owed now.
        self.inner.wake.notify_one();
        Ok(())
    }

    pub fn acknowledge(
        &self,
        resource: &str,
        ack: &Acknowledgement,
        actor: &Identity,
    ) -> Result<(), AppError> {
        let comment = ack.comment.trim();
        if comment.chars().count() > 500 {
            return Err(AppError::invalid(
                "comment",
                "must be at most 500 characters",
            ));
        }
        if let Some(rule) = engine::text::free_text_rule(comment, true) {
            return Err(AppError::invalid("comment", rule));
        }
        let now = self.now_ms();
        let changed = self
            .inner
            .db
            .acknowledge(resource, ack.started_ms, &actor.user, comment, now)
            .map_err(db_error)?;
        if !changed {
            let firing_since = lock(&self.inner.firing).get(resource).map(|r| r.started_ms);
            return Err(match (firing_since, ack.started_ms) {
                (Some(since), Some(asked)) if since != asked => AppError::new(
                    409,
                    format!(
                        "started_ms: the alert of {resource:?} you acknowledged has resolved, and it fired again at {}; look at it again",
                        app::format::utc_time(since)
                    ),
                ),
                _ => AppError::not_found(format!("no alert is firing for {resource:?}")),
            });
        }
        if let Some(row) = lock(&self.inner.firing).get_mut(resource) {
            row.acked_by = Some(actor.user.clone());
            row.acked_ms = Some(now);
            row.ack_comment = Some(comment.to_owned());
        }
        self.inner.persist.audit(actor_entry(
            actor,
            AuditKind::Acknowledge,
            Some(resource),
            now,
            format!(
                "{resource}: acknowledged the firing alert{}",
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(": {comment}")
                }
            ),
            serde_json::Value::Null,
            serde_json::json!({ "comment": comment }),
        ));
        self.bump();
        Ok(())
    }
}
