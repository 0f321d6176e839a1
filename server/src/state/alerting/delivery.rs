//! The delivery task: sends what the outbox holds when it is due, one at a time per
//! episode and channel, through the connectors' sinks; retries, gives up after a day,
//! and prunes what is old.

use std::collections::HashMap;
use std::time::Duration;

use connectors::actuators::webhook::Attempt;
use engine::alerts::retry_delay_ms;
use engine::sync::lock;

use super::{release_at, Alerting, KEEP_MS, MAX_REPORT_PERIOD_MS};
use crate::persist::alerts::OutboxRow;

/// A delivery still failing after this long is given up (and shown as failed).
const GIVE_UP_MS: i64 = 24 * 3600 * 1000;
/// The delivery task looks for repeats and ended silences at least this often.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// At most this many deliveries run at once.
const PARALLEL: usize = 16;

impl Alerting {
    /// Delivers due notifications until the runtime stops. Spawned once.
    pub async fn run(self) {
        let mut last_prune = 0;
        let mut standing = self.inner.leadership.subscribe();
        loop {
            if !self.inner.leadership.leads() {
                // A follower's outbox is not the leader's: it waits to lead.
                if standing
                    .wait_for(|_| self.inner.leadership.leads())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let now = self.now_ms();
            self.retry_unresolved();
            self.sweep(now);
            if now - last_prune > 3_600_000 {
                last_prune = now;
                let episodes = now - MAX_REPORT_PERIOD_MS - 86_400_000;
                if let Err(err) = self.inner.db.prune(now - KEEP_MS, episodes) {
                    tracing::warn!(%err, "Old notifications could not be pruned");
                }
            }
            let next_due = self.deliver_due(now).await;
            let wait = wait_until(next_due, self.now_ms());
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts sending every due head of line (one per episode and channel) whose line is
    /// not busy, each on its own task so a slow receiver delays only its own line; answers
    /// when the next waiting one is due. A finished send wakes the loop.
    pub(super) async fn deliver_due(&self, now_ms: i64) -> Option<i64> {
        let leadership = &self.inner.leadership;
        if let super::super::lease::Standing::Leader { epoch } = leadership.standing() {
            match self.inner.db.still_leads(leadership.replica(), epoch) {
                Ok(true) => {}
                Ok(false) => return Some(now_ms + 1_000),
                Err(err) => {
                    tracing::warn!(%err, "Cannot check the lease before delivering");
                    return Some(now_ms + 1_000);
                }
            }
        }
        let pending = match self.inner.db.pending() {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(%err, "The outbox could not be read");
                return Some(now_ms + 5000);
            }
        };
        let mut heads: HashMap<(String, String), OutboxRow> = HashMap::new();
        for row in pending {
            heads
                .entry((row.channel.clone(), row.stream.clone()))
                .or_insert(row);
        }
        let busy = lock(&self.inner.in_flight).clone();
        let (mut due, waiting): (Vec<OutboxRow>, Vec<OutboxRow>) = heads
            .into_values()
            .filter(|row| !busy.contains(&row.id))
            .partition(|row| row.due_ms <= now_ms);
        due.sort_by_key(|r| r.id);
        for row in due {
            {
                let mut in_flight = lock(&self.inner.in_flight);
                // The rest start when a send finishes (it wakes the loop).
                if in_flight.len() >= PARALLEL {
                    break;
                }
                in_flight.insert(row.id);
            }
            let this = self.clone();
            tokio::spawn(async move {
                this.deliver(&row).await;
                lock(&this.inner.in_flight).remove(&row.id);
                this.bump();
                this.inner.wake.notify_one();
            });
        }
        waiting.iter().map(|r| r.due_ms).min()
    }

    async fn deliver(&self, row: &OutboxRow) {
        let Some(channel) = self.channel(&row.channel) else {
            let _ = self.inner.db.mark_failed(
                row.id,
                row.attempts,
                &format!("the channel {:?} is no longer configured", row.channel),
            );
            return;
        };
        let attempts = row.attempts + 1;
        let now = self.now_ms();
        let result = channel.send(&row.notification, now).await;
        let done = self.now_ms();
        let stored = match result {
            Attempt::Done(detail) => self.inner.db.mark_sent(row.id, attempts, done, &detail),
            Attempt::Fatal(error) => {
                tracing::warn!(channel = %row.channel, %error, "A notification was refused");
                self.inner.db.mark_failed(row.id, attempts, &error)
            }
            Attempt::Retry(error) if done - row.created_ms >= GIVE_UP_MS => {
                let error = format!("gave up after {attempts} attempts over 24 h: {error}");
                tracing::warn!(channel = %row.channel, %error, "A notification was given up");
                self.inner.db.mark_failed(row.id, attempts, &error)
            }
            Attempt::Retry(error) => {
                tracing::info!(channel = %row.channel, attempts, %error, "A notification will be retried");
                let due = release_at(&channel.entry, done + retry_delay_ms(attempts));
                self.inner.db.mark_retry(row.id, attempts, due, &error)
            }
        };
        if let Err(err) = stored {
            tracing::error!(%err, "A delivery's result could not be stored");
        }
    }
}

/// How long the delivery task sleeps at `now_ms` when the next waiting notification is
/// due at `next_due`: until then, but at most [`SWEEP_EVERY`] (repeats and silences that
/// end are looked for that often).
pub(super) fn wait_until(next_due: Option<i64>, now_ms: i64) -> Duration {
    next_due
        .map(|due| Duration::from_millis((due - now_ms).max(0) as u64))
        .unwrap_or(SWEEP_EVERY)
        .min(SWEEP_EVERY)
}
