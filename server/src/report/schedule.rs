//! Scheduled reports (`[report]`): at each send time, the period that just ended goes to
//! the configured channels as a summary line and a link to the full report.

use super::gather::{actions_filter, gather};
use super::period::Period;
use crate::state::Monitor;

/// Sends the scheduled reports (`[report]`) until the runtime stops: at each send time,
/// the report of the period that just ended goes to the configured channels (a summary
/// line and a link to the full report). A send time missed by more than 10 minutes
/// (perfpilot was down) is skipped rather than sent late.
pub async fn run_schedule(monitor: Monitor, schedule: crate::config::ReportSchedule) {
    // The send time already handled: the loop wakes more than once per period.
    let mut handled = i64::MIN;
    loop {
        let now = engine::time::unix_now_ms();
        // Only the leader sends; a follower that takes over sends what is then due.
        let period =
            scheduled_period(&schedule, now, handled).filter(|_| monitor.leadership.leads());
        if let Some(period) = period {
            handled = period.to_ms;
            match send_scheduled(&monitor, &schedule, period).await {
                Ok(()) => {}
                Err(err) => tracing::warn!(%err, "The scheduled report could not be made"),
            }
        }
        let next = schedule.due_at_or_before(now) + schedule.every_ms;
        let wait = (next - engine::time::unix_now_ms()).clamp(1000, 60_000);
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
    }
}

/// The period whose report goes out at `now_ms`: the one that ended at the latest send
/// time, unless that send time is `handled` already or was missed by more than 10 minutes.
/// At start-up (nothing handled) the latest send time is caught up within those minutes.
fn scheduled_period(
    schedule: &crate::config::ReportSchedule,
    now_ms: i64,
    handled: i64,
) -> Option<Period> {
    const GRACE_MS: i64 = 600_000;
    let due = schedule.due_at_or_before(now_ms);
    if due == handled || now_ms - due > GRACE_MS {
        return None;
    }
    Some(Period {
        from_ms: due - schedule.every_ms,
        to_ms: due,
    })
}

async fn send_scheduled(
    monitor: &Monitor,
    schedule: &crate::config::ReportSchedule,
    period: Period,
) -> Result<(), String> {
    let actions = monitor
        .persist
        .query_audit(actions_filter(period))
        .await
        .map_err(|err| err.to_string())?;
    let reader = monitor.clone();
    let summary = tokio::task::spawn_blocking(move || gather(&reader, period, actions).summary())
        .await
        .map_err(|err| err.to_string())?;
    let url = monitor.alerting.public_url().map(|base| {
        format!(
            "{base}api/v1/report?from={}&to={}",
            period.from_ms, period.to_ms
        )
    });
    monitor
        .alerting
        .report(&schedule.channels, period.to_ms, &summary, url);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_report_goes_out_once_per_send_time_and_is_caught_up_for_ten_minutes() {
        // 2026-01-01 00:00 UTC, a send time of both schedules.
        let t = 1_767_225_600_000;
        let every_minute = crate::config::ReportSchedule {
            every_ms: 60_000,
            offset_ms: 0,
            channels: vec!["hook".into()],
        };
        let minute_before = Some(Period {
            from_ms: t - 60_000,
            to_ms: t,
        });
        assert_eq!(scheduled_period(&every_minute, t, i64::MIN), minute_before);
        // At start-up, the send time that just passed is caught up.
        assert_eq!(
            scheduled_period(&every_minute, t + 5_000, i64::MIN),
            minute_before
        );
        // Once per send time, however often the loop wakes.
        assert_eq!(scheduled_period(&every_minute, t + 59_999, t), None);
        assert_eq!(
            scheduled_period(&every_minute, t + 60_000, t),
            Some(Period {
                from_ms: t,
                to_ms: t + 60_000,
            })
        );
        // Missed by more than 10 minutes (perfpilot was down): skipped, not sent late.
        let daily = crate::config::ReportSchedule {
            every_ms: 86_400_000,
            offset_ms: 0,
            channels: vec!["hook".into()],
        };
        let yesterday = Some(Period {
            from_ms: t - 86_400_000,
            to_ms: t,
        });
        assert_eq!(scheduled_period(&daily, t + 600_000, i64::MIN), yesterday);
        assert_eq!(scheduled_period(&daily, t + 600_001, i64::MIN), None);
    }
}
