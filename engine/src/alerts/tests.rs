use super::*;
use crate::model::{ResourceSettings, Statistic};
use crate::optimizer::Analyzer;

fn cpu_target(for_secs: u32) -> Target {
    Target {
        metric: "utilization".into(),
        comparator: Comparator::Le,
        value: 65.0,
        statistic: Statistic::Mean,
        for_secs,
    }
}

/// Feeds `values` one per second through the analyzer (window of one sample) and the
/// alert; returns every change with its time.
fn run(
    alert: &mut Alert,
    target: &Target,
    policy: &AlertPolicy,
    start_ms: i64,
    values: &[f64],
) -> Vec<(i64, AlertChange)> {
    let settings = ResourceSettings {
        window_secs: 1,
        step_secs: 1,
        ..ResourceSettings::default()
    };
    let mut analyzer = Analyzer::new();
    let mut changes = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let now = start_ms + i as i64 * 1000;
        let obs = analyzer.observe(&[Some(*v as f32)], target, &settings);
        if let Some(c) = alert.observe(
            now,
            obs.observed,
            obs.condition,
            target,
            MetricKind::Utilization,
            policy,
        ) {
            changes.push((now, c));
        }
    }
    changes
}

#[test]
fn fires_after_for_and_resolves_past_the_margin() {
    let target = cpu_target(5);
    let policy = AlertPolicy::default();
    let mut alert = Alert::new();
    // Breached (> 71.5 with the 10 % band) for 6 s: pending for 5, firing at the 6th.
    let changes = run(&mut alert, &target, &policy, 0, &[90.0; 6]);
    assert_eq!(changes.len(), 1);
    let (
        at,
        AlertChange::Fired {
            started_ms,
            summary,
            ..
        },
    ) = &changes[0]
    else {
        panic!("expected a firing change, got {changes:?}");
    };
    assert_eq!((*at, *started_ms), (5000, 5000));
    assert!(summary.contains("mean 90 % > target 65 %"), "{summary}");
    assert_eq!(alert.phase(), AlertPhase::Firing);
    // Back under the target but inside the 5 % margin (61.75): still firing.
    assert!(run(&mut alert, &target, &policy, 6000, &[63.0; 10]).is_empty());
    assert_eq!(alert.phase(), AlertPhase::Firing);
    let changes = run(&mut alert, &target, &policy, 16_000, &[50.0]);
    let [(
        _,
        AlertChange::Resolved {
            started_ms,
            ended_ms,
            summary,
        },
    )] = changes.as_slice()
    else {
        panic!("expected a resolution, got {changes:?}");
    };
    assert_eq!((*started_ms, *ended_ms), (5000, 16_000));
    assert!(
        summary.starts_with("resolved: mean 50 % ≤ target 65 %"),
        "{summary}"
    );
    assert_eq!(alert.phase(), AlertPhase::Ok);
}

#[test]
fn a_signal_wobbling_inside_the_band_sends_nothing() {
    let target = cpu_target(0);
    let policy = AlertPolicy::default();
    // Between the clear threshold (61.75) and the breach threshold (71.5), for an hour.
    let wobble: Vec<f64> = (0..3600)
        .map(|i| 62.0 + 9.0 * ((i as f64) * 0.7).sin().abs())
        .collect();
    let mut ok = Alert::new();
    assert!(run(&mut ok, &target, &policy, 0, &wobble).is_empty());
    assert_eq!(ok.phase(), AlertPhase::Ok);
    // The same wobble while firing keeps it firing: no resolve, no re-fire.
    let mut firing = Alert::new();
    assert_eq!(run(&mut firing, &target, &policy, 0, &[80.0]).len(), 1);
    assert!(run(&mut firing, &target, &policy, 1000, &wobble).is_empty());
    assert_eq!(firing.phase(), AlertPhase::Firing);
}

#[test]
fn a_breach_shorter_than_for_only_pends() {
    let target = cpu_target(300);
    let policy = AlertPolicy::default();
    let mut alert = Alert::new();
    // 3 minutes at 100 %, then back: pending the whole time, never firing.
    let mut values = vec![100.0; 180];
    values.extend([40.0; 10]);
    let mut seen_pending = None;
    for (i, v) in values.iter().enumerate() {
        run(&mut alert, &target, &policy, i as i64 * 1000, &[*v]);
        if i == 160 {
            seen_pending = alert.pending_for(i as i64 * 1000, &target);
        }
    }
    assert_eq!(
        seen_pending.as_deref(),
        Some("breaching for 2 m 40 s of 5 m")
    );
    assert_eq!(alert.phase(), AlertPhase::Ok);
}

#[test]
fn keep_firing_for_holds_a_resolution_and_a_relapse_restarts_it() {
    let target = cpu_target(0);
    let policy = AlertPolicy {
        resolve_margin_pct: 0.0,
        keep_firing_for_secs: 10,
        ..AlertPolicy::default()
    };
    let mut alert = Alert::new();
    run(&mut alert, &target, &policy, 0, &[90.0]);
    // Clear for 5 s, a relapse above the target, then clear for 10 s.
    let mut values = vec![30.0; 5];
    values.push(66.0);
    values.extend([30.0; 11]);
    let changes = run(&mut alert, &target, &policy, 1000, &values);
    assert_eq!(changes.len(), 1, "{changes:?}");
    // The relapse was at 6 s; clear since 7 s; resolved at 17 s.
    assert_eq!(changes[0].0, 17_000);
}

#[test]
fn gaps_hold_and_withdrawal_resolves_a_firing_alert() {
    let target = cpu_target(0);
    let policy = AlertPolicy::default();
    let mut alert = Alert::firing_since(42);
    assert_eq!(
        alert.observe(
            1,
            None,
            Condition::NoData,
            &target,
            MetricKind::Utilization,
            &policy
        ),
        None
    );
    assert_eq!(alert.phase(), AlertPhase::Firing);
    let change = alert.withdraw(2000, "the target was removed");
    assert_eq!(
        change,
        Some(AlertChange::Resolved {
            started_ms: 42,
            ended_ms: 2000,
            summary: "resolved: the target was removed".into()
        })
    );
    assert_eq!(Alert::new().withdraw(1, "x"), None);
}

#[test]
fn an_at_least_target_clears_above_the_margin() {
    let target = Target {
        metric: "hit_ratio".into(),
        comparator: Comparator::Ge,
        value: 90.0,
        statistic: Statistic::Mean,
        for_secs: 0,
    };
    let policy = AlertPolicy::default();
    let mut alert = Alert::new();
    assert_eq!(run(&mut alert, &target, &policy, 0, &[50.0]).len(), 1);
    assert!(run(&mut alert, &target, &policy, 1000, &[92.0]).is_empty());
    assert_eq!(run(&mut alert, &target, &policy, 2000, &[95.0]).len(), 1);
}

#[test]
fn globs() {
    assert!(glob_matches("*", "cpu"));
    assert!(glob_matches("cache:*", "cache:sessions"));
    assert!(!glob_matches("cache:*", "db:orders"));
    assert!(glob_matches("disk:*/var", "disk:/mnt/var"));
    assert!(glob_matches("cpu", "cpu"));
    assert!(!glob_matches("cpu", "cpu2"));
    assert!(glob_matches("*sess*", "cache:sessions"));
}

#[test]
fn quiet_hours_hold_until_their_end() {
    let at = |h: i64, m: i64| 3 * DAY_MS + (h * 60 + m) * 60_000;
    let night = QuietHours::parse("22:00-07:00").unwrap();
    assert_eq!(night.release_at(at(23, 30)), at(7, 0) + DAY_MS);
    assert_eq!(night.release_at(at(3, 0)), at(7, 0));
    assert_eq!(night.release_at(at(12, 0)), at(12, 0));
    assert_eq!(night.release_at(at(7, 0)), at(7, 0));
    let lunch = QuietHours::parse("12:00-13:30").unwrap();
    assert_eq!(lunch.release_at(at(12, 10)), at(13, 30));
    assert_eq!(lunch.release_at(at(13, 30)), at(13, 30));
    assert_eq!(lunch.to_string(), "12:00-13:30 UTC");
    for bad in ["", "22:00", "25:00-01:00", "10:00-10:00", "a-b"] {
        assert!(QuietHours::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn retries_back_off_to_five_minutes() {
    assert_eq!(retry_delay_ms(1), 1000);
    assert_eq!(retry_delay_ms(2), 2000);
    assert_eq!(retry_delay_ms(9), 256_000);
    assert_eq!(retry_delay_ms(50), 300_000);
}

#[test]
fn a_forecast_alert_fires_once_after_its_for_within_the_horizon_and_ends_quietly() {
    let policy = AlertPolicy {
        forecast_for_secs: 600,
        forecast_horizon_secs: 3600,
        ..AlertPolicy::default()
    };
    let minute = 60_000;
    let mut forecast = ForecastAlert::default();
    // Predicted, but beyond the horizon: nothing starts.
    assert_eq!(forecast.observe(0, Some(7200), &policy), None);
    // Within it from minute 1; fires at minute 11, once.
    for m in 1..11 {
        assert_eq!(
            forecast.observe(m * minute, Some(1800), &policy),
            None,
            "minute {m}"
        );
    }
    assert_eq!(
        forecast.observe(11 * minute, Some(1500), &policy),
        Some(ForecastChange::Fired { since_ms: minute })
    );
    assert_eq!(forecast.fired_since(), Some(minute));
    assert_eq!(forecast.observe(12 * minute, Some(1400), &policy), None);
    // No longer predicted: it ends, and a new prediction starts over.
    assert_eq!(
        forecast.observe(13 * minute, None, &policy),
        Some(ForecastChange::Ended)
    );
    assert_eq!(forecast.fired_since(), None);
    assert_eq!(forecast.observe(14 * minute, Some(100), &policy), None);
    // A flicker before its `for` never fires and ends without a word.
    assert_eq!(forecast.observe(15 * minute, None, &policy), None);
}

#[test]
fn forecast_settings_are_bounded() {
    let mut policy = AlertPolicy::default();
    assert_eq!(policy.validate(), Ok(()));
    policy.forecast_horizon_secs = 10;
    assert!(policy
        .validate()
        .unwrap_err()
        .contains("forecast_horizon_secs"));
    policy.forecast_horizon_secs = 3600;
    policy.forecast_for_secs = 100_000;
    assert!(policy.validate().unwrap_err().contains("forecast_for_secs"));
}
