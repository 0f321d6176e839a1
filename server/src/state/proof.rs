//! Before/after proof: every target edit, manual mark (and, once actions are wired, every
//! optimizer action) opens a comparison of a baseline window before the event with a
//! window after it — the seed's benchmark table, computed live.
//!
//! Owned by the monitor task: events are opened from request handlers through it, and it
//! completes them on the first tick after their after-window ends. Finished records are
//! kept in a bounded ring so memory stays flat.

use std::collections::VecDeque;

use engine::history::History;
use engine::model::{format_value, Resource, ResourceId, Target};
use engine::optimizer::{ActionVerdict, ComparisonRecord, EventKind, EventWindows};
use engine::series::SeriesKey;

use app::proof::{
    change_text, direction, evidence_line, reduce, threshold_text, ComparisonRow, KIND_ACTION,
    KIND_MARK, KIND_THRESHOLD, OUTCOME_KEPT, OUTCOME_ROLLED_BACK, OVERLAY_POINTS,
};

/// Finished comparisons kept for the page (and in the database).
pub(crate) const KEEP: usize = 200;
/// Events still measuring; more than this and the oldest is dropped with a warning.
const MAX_PENDING: usize = 1_000;

/// A comparison still measuring; kept in the database too (`key`), so a restart finishes
/// it from the history on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    key: String,
    resource: ResourceId,
    resource_name: String,
    unit: String,
    event: EventKind,
    windows: EventWindows,
    target: Target,
    /// An action's verdict, once the verifier has given it: an action's row waits for it
    /// (or for [`ACTION_GRACE_MS`] past its window) so the row is stored once, complete.
    #[serde(default)]
    action: Option<ActionVerdict>,
    /// A target edit's previous target, for the row's "threshold 80 → 50 ms".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Target>,
}

/// How long past its after-window an action's row waits for the verifier's verdict (the
/// verifier decides on the same tick in the normal case; a configuration change that ends
/// a verification early leaves the row to finish without one).
const ACTION_GRACE_MS: i64 = 60_000;

/// A finished comparison; serialized as is into the database so the page survives a
/// restart (history does not, so it could not be recomputed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Done {
    record: ComparisonRecord,
    resource_name: String,
    unit: String,
    before: Vec<Option<f32>>,
    after: Vec<Option<f32>>,
    /// A target edit's previous target (see [`Pending::previous`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Target>,
}

/// One sample per history step of `key` over `[from, to)`; gaps stay `None`.
pub fn window_samples(
    history: &History,
    key: &SeriesKey,
    (from, to): (i64, i64),
) -> Vec<Option<f32>> {
    let Some(id) = history.id(key) else {
        return Vec::new();
    };
    let step = history.config().step_ms;
    let points = ((to - from) / step).max(1) as usize;
    history
        .range(id, from, to, points)
        .map(|d| d.points.iter().map(|p| p.map(|p| p.mean)).collect())
        .unwrap_or_default()
}

#[derive(Default)]
pub struct Proof {
    /// Where comparisons still measuring are kept (none in tests).
    journal: Option<crate::persist::Persist>,
    /// Makes keys of comparisons opened in the same millisecond unique.
    opened: u64,
    /// Oldest first; a deque because a burst of edits evicts from the front once per edit.
    pending: VecDeque<Pending>,
    done: VecDeque<Done>,
    /// Comparisons evicted unfinished, so the warning is logged once per thousand rather
    /// than on every edit of a burst.
    evicted: u64,
}

impl Proof {
    /// Opens a comparison for an event on `resource` at `at_unix_ms`. Resources without a
    /// target have nothing to compare against and are refused.
    pub fn open(
        &mut self,
        resource: &Resource,
        event: EventKind,
        at_unix_ms: i64,
        unit: String,
    ) -> Result<(), String> {
        self.open_edit(resource, event, None, at_unix_ms, unit)
    }

    /// [`Proof::open`] for a target edit, with the target it replaced (`None` when the
    /// resource had none), so the row can say "threshold 80 → 50 ms".
    pub fn open_edit(
        &mut self,
        resource: &Resource,
        event: EventKind,
        previous: Option<Target>,
        at_unix_ms: i64,
        unit: String,
    ) -> Result<(), String> {
        let Some(target) = resource.target.clone() else {
            return Err(format!(
                "resource: {} has no target, so a before/after has nothing to compare against; set a target first",
                resource.id
            ));
        };
        if self.pending.len() >= MAX_PENDING {
            if self.evicted.is_multiple_of(1_000) {
                tracing::warn!(
                    evicted = self.evicted + 1,
                    "Too many before/after comparisons in flight; dropping the oldest"
                );
            }
            self.evicted += 1;
            if let (Some(dropped), Some(journal)) = (self.pending.pop_front(), &self.journal) {
                journal.save_pending(&dropped.key, None);
            }
        }
        self.opened += 1;
        let pending = Pending {
            key: format!("{at_unix_ms:016}-{}-{}", resource.id, self.opened),
            resource: resource.id.clone(),
            resource_name: resource.name.clone(),
            unit,
            event,
            windows: EventWindows::around(at_unix_ms, &resource.settings),
            target,
            action: None,
            previous,
        };
        if let Some(journal) = &self.journal {
            journal.save_pending(&pending.key, serde_json::to_value(&pending).ok());
        }
        self.pending.push_back(pending);
        Ok(())
    }

    /// Attaches the verifier's verdict to the action on `resource` applied at
    /// `started_ms`; a change ended early (a guardrail) ends its after-window then, so the
    /// row compares what the change was in effect for.
    pub fn settle_action(
        &mut self,
        resource: &ResourceId,
        started_ms: i64,
        verdict: ActionVerdict,
    ) {
        let Some(pending) = self.pending.iter_mut().find(|p| {
            &p.resource == resource
                && p.windows.before.1 == started_ms
                && matches!(p.event, EventKind::Action { .. })
        }) else {
            return;
        };
        let (from, to) = pending.windows.after;
        pending.windows.after.1 = verdict.at_unix_ms.clamp(from, to);
        // The row compares what the verdict compared: the after-window starts once the
        // settle period is over.
        if let Some(evidence) = &verdict.evidence {
            let judged_from = from + i64::from(evidence.settle_secs) * 1000;
            pending.windows.after.0 = judged_from.min(pending.windows.after.1);
        }
        pending.action = Some(verdict);
        if let Some(journal) = &self.journal {
            journal.save_pending(&pending.key, serde_json::to_value(&*pending).ok());
        }
    }

    /// Keeps comparisons still measuring in `journal` from now on, and puts back the ones
    /// that were measuring when perfpilot stopped (they finish from the restored history).
    pub fn keep_pending_in(
        &mut self,
        journal: crate::persist::Persist,
        measuring: impl IntoIterator<Item = serde_json::Value>,
    ) {
        for value in measuring {
            match serde_json::from_value::<Pending>(value) {
                Ok(pending) => self.pending.push_back(pending),
                Err(err) => {
                    tracing::warn!(%err, "A before/after still measuring no longer parses; skipped")
                }
            }
        }
        if !self.pending.is_empty() {
            tracing::info!(
                measuring = self.pending.len(),
                "Before/afters still measuring resume"
            );
        }
        self.journal = Some(journal);
    }

    /// Puts back comparisons finished before a restart (oldest first, as
    /// [`Proof::complete`] returned them); entries that no longer parse are skipped.
    pub fn restore(&mut self, finished: impl IntoIterator<Item = serde_json::Value>) {
        for value in finished {
            match serde_json::from_value::<Done>(value) {
                Ok(done) => {
                    if self.done.len() == KEEP {
                        self.done.pop_front();
                    }
                    self.done.push_back(done);
                }
                Err(err) => tracing::warn!(%err, "A stored before/after no longer parses; skipped"),
            }
        }
    }

    /// Completes every comparison whose after-window has ended by `now`, and returns
    /// them (resource, time, serialized entry) for the database.
    pub fn complete(
        &mut self,
        now: i64,
        history: &History,
    ) -> Vec<(String, i64, serde_json::Value)> {
        let (ready, waiting): (VecDeque<Pending>, VecDeque<Pending>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| {
                    let due = p.windows.complete_at();
                    match p.event {
                        EventKind::Action { .. } if p.action.is_none() => {
                            due + ACTION_GRACE_MS <= now
                        }
                        _ => due <= now,
                    }
                });
        self.pending = waiting;
        ready
            .into_iter()
            .filter_map(|p| self.finish(p, history, ""))
            .collect()
    }

    /// Completes every comparison still measuring with the part of its after-window
    /// measured by `now`, saying so in its reason: perfpilot is stopping, and the history
    /// the rest would need does not survive the restart.
    pub fn complete_early(
        &mut self,
        now: i64,
        history: &History,
    ) -> Vec<(String, i64, serde_json::Value)> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .filter_map(|mut p| {
                let (from, to) = p.windows.after;
                let cut = now.clamp(from, to);
                p.windows.after.1 = cut;
                let note = format!(
                    "cut short: perfpilot stopped {} s into the {} s after-window; ",
                    (cut - from) / 1_000,
                    (to - from) / 1_000,
                );
                self.finish(p, history, &note)
            })
            .collect()
    }

    /// Computes `p` over its windows, keeps it, and returns it as the database stores it;
    /// `note` goes before the result's reason.
    fn finish(
        &mut self,
        p: Pending,
        history: &History,
        note: &str,
    ) -> Option<(String, i64, serde_json::Value)> {
        if let Some(journal) = &self.journal {
            journal.save_pending(&p.key, None);
        }
        let key = SeriesKey::new(p.resource.as_str(), p.target.metric.as_str());
        let samples = |window: (i64, i64)| window_samples(history, &key, window);
        let (before, after) = (samples(p.windows.before), samples(p.windows.after));
        let mut record =
            ComparisonRecord::compute(p.resource, p.event, p.windows, &before, &after, &p.target);
        record.action = p.action;
        record.result.reason.insert_str(0, note);
        if self.done.len() == KEEP {
            self.done.pop_front();
        }
        let done = Done {
            record,
            resource_name: p.resource_name,
            unit: p.unit,
            before: reduce(&before, OVERLAY_POINTS),
            after: reduce(&after, OVERLAY_POINTS),
            previous: p.previous,
        };
        let stored = serde_json::to_value(&done).ok().map(|value| {
            (
                done.record.resource.as_str().to_owned(),
                done.record.at_unix_ms,
                value,
            )
        });
        self.done.push_back(done);
        stored
    }

    /// Newest first: measuring ones, then finished ones.
    ///
    /// Honest rows: an action's direction is its verdict's, and a rolled-back one says so;
    /// a target edit moved the line, not the system, so it has no improvement and no
    /// direction, only the threshold's old → new.
    pub fn rows(
        &self,
        kind_of: impl Fn(&ResourceId, &str) -> Option<engine::model::MetricKind>,
    ) -> Vec<ComparisonRow> {
        let describe = |target: &Target, resource: &ResourceId| {
            kind_of(resource, &target.metric)
                .map_or_else(|| target.value.to_string(), |k| target.describe(k))
        };
        let value = |v: Option<f64>, resource: &ResourceId, target: &Target| {
            v.map(|v| match kind_of(resource, &target.metric) {
                Some(kind) => format_value(v, kind),
                None => format!("{v:.1}"),
            })
        };
        let pending = self.pending.iter().rev().map(|p| ComparisonRow {
            resource_id: p.resource.as_str().to_owned(),
            resource_name: p.resource_name.clone(),
            event: event_label(&p.event),
            at_unix_ms: p.windows.before.1,
            ready_at_unix_ms: p.windows.complete_at(),
            pending: true,
            before: None,
            after: None,
            target: describe(&p.target, &p.resource),
            improvement_pct: None,
            target_met: None,
            reason: "measuring the window after the event".into(),
            unit: p.unit.clone(),
            target_value: p.target.value,
            before_series: Vec::new(),
            after_series: Vec::new(),
            kind: row_kind(&p.event).to_owned(),
            applied: p.action.as_ref().map(|a| a.applied.clone()),
            outcome: None,
            outcome_why: None,
            verdict: None,
            evidence: None,
            direction: String::new(),
            change_text: match p.event {
                EventKind::TargetEdit { .. } => {
                    threshold_text(p.previous.as_ref(), &p.target, &p.unit)
                }
                _ => String::new(),
            },
        });
        let done = self.done.iter().rev().map(|d| {
            let r = &d.record;
            let kind = row_kind(&r.event);
            let threshold = kind == KIND_THRESHOLD;
            let dry_run = matches!(r.event, EventKind::Action { dry_run: true, .. });
            let action = r.action.as_ref();
            let (dir, change) = if threshold {
                (
                    String::new(),
                    threshold_text(d.previous.as_ref(), &r.result.target, &d.unit),
                )
            } else {
                let moved = change_text(r.result.before_value, r.result.after_value, &d.unit);
                // A dry run applied nothing: whatever moved, it did not do it.
                let judged = if dry_run {
                    ""
                } else {
                    direction(r.result.improvement_pct, action.and_then(|a| a.verdict))
                };
                (judged.to_owned(), moved)
            };
            let outcome_why = match action {
                Some(a) => Some(a.why.clone()),
                None if dry_run => Some("a dry run applies nothing".to_owned()),
                None if kind == KIND_ACTION => {
                    Some("no verdict was recorded for this action".to_owned())
                }
                None => None,
            };
            let mut reason = without_improvement(&r.result.reason);
            if threshold {
                reason.push_str("; the target changed, not the system");
            }
            ComparisonRow {
                resource_id: r.resource.as_str().to_owned(),
                resource_name: d.resource_name.clone(),
                event: event_label(&r.event),
                at_unix_ms: r.at_unix_ms,
                ready_at_unix_ms: r.windows.complete_at(),
                pending: false,
                before: value(r.result.before_value, &r.resource, &r.result.target),
                after: value(r.result.after_value, &r.resource, &r.result.target),
                target: describe(&r.result.target, &r.resource),
                // Moving the line improves nothing.
                improvement_pct: if threshold {
                    None
                } else {
                    r.result.improvement_pct
                },
                target_met: Some(r.result.target_met),
                reason,
                unit: d.unit.clone(),
                target_value: r.result.target.value,
                before_series: d.before.clone(),
                after_series: d.after.clone(),
                kind: kind.to_owned(),
                applied: action.map(|a| a.applied.clone()),
                outcome: action.map(|a| {
                    if a.kept {
                        OUTCOME_KEPT
                    } else {
                        OUTCOME_ROLLED_BACK
                    }
                    .to_owned()
                }),
                outcome_why,
                verdict: action.and_then(|a| a.verdict).map(|v| v.word().to_owned()),
                evidence: action
                    .and_then(|a| a.evidence.as_ref())
                    .map(|e| evidence_line(e, &d.unit)),
                direction: dir,
                change_text: change,
            }
        });
        pending.chain(done).collect()
    }
}

/// [`ComparisonRow::kind`] of an event.
fn row_kind(event: &EventKind) -> &'static str {
    match event {
        EventKind::Action { .. } => KIND_ACTION,
        EventKind::TargetEdit { .. } => KIND_THRESHOLD,
        EventKind::Mark { .. } => KIND_MARK,
    }
}

/// The before/after's reason without its ", 23.5 % improvement" (the row's change and
/// direction say that, and say it honestly): "p95 65 ≤ target 90 after (was 85)".
fn without_improvement(reason: &str) -> String {
    match reason
        .strip_suffix(" % improvement)")
        .and_then(|head| head.rfind(", ").map(|i| &head[..i]))
    {
        Some(head) => format!("{head})"),
        None => reason.to_owned(),
    }
}

fn event_label(event: &EventKind) -> String {
    // Rows stored before actions were described carry only the action's kind word.
    let action_words = |action: &str| {
        engine::model::ActionConfig::kind_label(action)
            .map_or_else(|| action.to_owned(), str::to_owned)
    };
    match event {
        EventKind::Action {
            action,
            dry_run: true,
        } => format!("{} (dry run)", action_words(action)),
        EventKind::Action { action, .. } => action_words(action),
        EventKind::TargetEdit { change } => format!("target edit (change #{change})"),
        EventKind::Mark { label } => format!("mark: {label}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::history::HistoryConfig;
    use engine::model::{MetricKind, ResourceType};
    use engine::series::SeriesInfo;

    /// 20 s of CPU samples from `t0` (`value(second)`), and a CPU resource whose
    /// before/after windows are 10 s each.
    fn cpu_history(t0: i64, value: impl Fn(i64) -> f32) -> (History, Resource) {
        let mut history = History::new(HistoryConfig::default()).unwrap();
        let info = SeriesInfo::new(
            SeriesKey::new("cpu", "utilization"),
            ResourceType::Cpu,
            "CPU",
            Some(MetricKind::Utilization),
            "%",
        );
        let id = history.register(info).unwrap();
        let mut resource = Resource::new(ResourceId::new("cpu").unwrap(), ResourceType::Cpu, "CPU");
        resource.settings.baseline_secs = 10;
        resource.settings.verify_secs = 10;
        for s in 0..20 {
            history.append(id, t0 + s * 1000, Some(value(s))).unwrap();
        }
        (history, resource)
    }

    /// The seed's CPU row: 85 % before, 65 % after → 23.5 % improvement, target met.
    #[test]
    fn a_mark_compares_the_windows_around_it() {
        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |s| if s < 10 { 85.0 } else { 65.0 });
        let mut proof = Proof::default();
        let mark = EventKind::Mark {
            label: "deployed v2.3".into(),
        };
        proof
            .open(&resource, mark, t0 + 10_000, "%".into())
            .unwrap();
        let kind = |_: &ResourceId, _: &str| Some(MetricKind::Utilization);
        proof.complete(t0 + 19_000, &history);
        assert!(
            proof.rows(kind)[0].pending,
            "not complete before the after-window ends"
        );
        proof.complete(t0 + 20_000, &history);
        let row = &proof.rows(kind)[0];
        assert!(!row.pending);
        assert_eq!(row.event, "mark: deployed v2.3");
        assert_eq!(row.before.as_deref(), Some("85 %"));
        assert_eq!(row.after.as_deref(), Some("65 %"));
        assert_eq!(
            row.improvement_pct.map(|p| (p * 10.0).round() / 10.0),
            Some(23.5)
        );
        assert_eq!(row.target_met, Some(true));
        assert_eq!(row.before_series, vec![Some(85.0); 10]);
        assert_eq!(row.after_series, vec![Some(65.0); 10]);
    }

    #[test]
    fn finished_comparisons_survive_a_round_trip_through_their_stored_form() {
        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |_| 50.0);
        let mut proof = Proof::default();
        let mark = EventKind::Mark { label: "v1".into() };
        proof
            .open(&resource, mark, t0 + 10_000, "%".into())
            .unwrap();
        let finished = proof.complete(t0 + 20_000, &history);
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].0, "cpu");
        let kind = |_: &ResourceId, _: &str| Some(MetricKind::Utilization);
        let mut restored = Proof::default();
        restored.restore(finished.into_iter().map(|(_, _, v)| v));
        assert_eq!(restored.rows(kind), proof.rows(kind));
    }

    #[test]
    fn stopping_finishes_what_is_measuring_with_the_part_measured_and_says_so() {
        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |s| if s < 10 { 85.0 } else { 65.0 });
        let mut proof = Proof::default();
        let mark = EventKind::Mark { label: "v2".into() };
        proof
            .open(&resource, mark, t0 + 10_000, "%".into())
            .unwrap();
        // Stopping 4 s into the 10 s after-window.
        let finished = proof.complete_early(t0 + 14_000, &history);
        assert_eq!(finished.len(), 1);
        let kind = |_: &ResourceId, _: &str| Some(MetricKind::Utilization);
        let rows = proof.rows(kind);
        assert_eq!(rows.len(), 1, "nothing left measuring");
        let row = &rows[0];
        assert!(!row.pending);
        assert_eq!(row.after.as_deref(), Some("65 %"));
        assert_eq!(
            row.after_series,
            vec![Some(65.0); 4],
            "only the measured part"
        );
        assert!(
            row.reason
                .starts_with("cut short: perfpilot stopped 4 s into the 10 s after-window; "),
            "{}",
            row.reason
        );
        // What is stored is what the page shows after the restart.
        let mut restored = Proof::default();
        restored.restore(finished.into_iter().map(|(_, _, v)| v));
        assert_eq!(restored.rows(kind), rows);
    }

    fn utilization(_: &ResourceId, _: &str) -> Option<MetricKind> {
        Some(MetricKind::Utilization)
    }

    /// The verifier judged the action "no change" and rolled it back: the row says so,
    /// and its direction is the verdict's, though the statistic moved the good way.
    #[test]
    fn a_rolled_back_action_says_so_and_takes_its_direction_from_the_verdict() {
        use engine::model::Comparator;
        use engine::verdict::{judge, Verdict, VerdictRules};

        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |s| if s < 10 { 85.0 } else { 65.0 });
        let mut proof = Proof::default();
        let action = EventKind::Action {
            action: "webhook".into(),
            dry_run: false,
        };
        proof
            .open(&resource, action, t0 + 10_000, "%".into())
            .unwrap();
        let (_, evidence) = judge(
            &[85.0f64; 10],
            &[65.0f64; 10],
            Comparator::Le,
            &VerdictRules::default(),
        );
        let verdict = ActionVerdict {
            applied: "maxmemory 3mb → 64mb".into(),
            verdict: Some(Verdict::NoChange),
            evidence: Some(evidence),
            kept: false,
            why: "the hit ratio did not change".into(),
            at_unix_ms: t0 + 20_000,
        };
        proof.settle_action(&resource.id, t0 + 10_000, verdict);
        let pending = &proof.rows(utilization)[0];
        assert!(pending.pending);
        assert_eq!(pending.kind, "action");
        assert_eq!(pending.applied.as_deref(), Some("maxmemory 3mb → 64mb"));
        assert_eq!(pending.direction, "");

        proof.complete(t0 + 20_000, &history);
        let row = &proof.rows(utilization)[0];
        assert!(!row.pending);
        assert_eq!(row.kind, "action");
        // A kind word, as rows stored before actions were described carry, reads as words.
        assert_eq!(row.event, "Call a webhook");
        assert_eq!(row.applied.as_deref(), Some("maxmemory 3mb → 64mb"));
        assert_eq!(row.outcome.as_deref(), Some("rolled back"));
        assert_eq!(
            row.outcome_why.as_deref(),
            Some("the hit ratio did not change")
        );
        assert_eq!(row.verdict.as_deref(), Some("no change"));
        assert_eq!(row.direction, "same", "the verdict decides, not the sign");
        assert_eq!(row.change_text, "−20.0 points (−23.5 %)");
        let evidence = row.evidence.as_deref().unwrap_or_default();
        assert!(
            evidence.starts_with("10 vs 10 samples · median 85.0 → 65.0 % · p95 85.0 → 65.0 %"),
            "{evidence}"
        );
        assert!(!row.reason.contains("improvement"), "{}", row.reason);
    }

    /// Moving the line changes nothing in the system: no improvement, no direction, the
    /// threshold's old → new, and the observed values as context.
    #[test]
    fn a_target_edit_is_a_threshold_change_not_an_improvement() {
        let t0 = 1_700_000_000_000;
        let (history, mut resource) = cpu_history(t0, |s| if s < 10 { 85.0 } else { 65.0 });
        resource.target = Some(Target::default_for("utilization", 50.0));
        let previous = Some(Target::default_for("utilization", 80.0));
        let mut proof = Proof::default();
        let edit = EventKind::TargetEdit { change: 3 };
        proof
            .open_edit(&resource, edit, previous, t0 + 10_000, "%".into())
            .unwrap();
        assert_eq!(
            proof.rows(utilization)[0].change_text,
            "threshold 80 → 50 %"
        );
        let finished = proof.complete(t0 + 20_000, &history);
        let row = &proof.rows(utilization)[0];
        assert_eq!(row.kind, "threshold");
        assert_eq!(row.event, "target edit (change #3)");
        assert_eq!(row.change_text, "threshold 80 → 50 %");
        assert_eq!(row.direction, "");
        assert_eq!(row.improvement_pct, None);
        assert_eq!(row.outcome, None);
        assert_eq!(row.before.as_deref(), Some("85 %"));
        assert_eq!(row.after.as_deref(), Some("65 %"));
        assert!(!row.reason.contains("improvement"), "{}", row.reason);
        assert!(
            row.reason.ends_with("; the target changed, not the system"),
            "{}",
            row.reason
        );
        // The previous target is stored with the finished row.
        let mut restored = Proof::default();
        restored.restore(finished.into_iter().map(|(_, _, v)| v));
        assert_eq!(restored.rows(utilization), proof.rows(utilization));
    }

    /// A percentage moves by points, with the relative change beside them.
    #[test]
    fn a_percentage_changes_by_points_and_relatively() {
        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |s| if s < 10 { 85.0 } else { 65.0 });
        let mut proof = Proof::default();
        let mark = EventKind::Mark { label: "v2".into() };
        proof
            .open(&resource, mark, t0 + 10_000, "%".into())
            .unwrap();
        proof.complete(t0 + 20_000, &history);
        let row = &proof.rows(utilization)[0];
        assert_eq!(row.kind, "mark");
        assert_eq!(row.change_text, "−20.0 points (−23.5 %)");
        assert_eq!(row.direction, "better");
        assert_eq!(row.outcome, None);
        assert_eq!(row.outcome_why, None);
        assert_eq!(row.reason, "p95 65 ≤ target 65 after (was 85)");
    }

    /// A regression reads as one: the value's own movement and "worse".
    #[test]
    fn a_regression_reads_worse() {
        let t0 = 1_700_000_000_000;
        let (history, resource) = cpu_history(t0, |s| if s < 10 { 10.0 } else { 87.2 });
        let mut proof = Proof::default();
        let mark = EventKind::Mark { label: "v3".into() };
        proof
            .open(&resource, mark, t0 + 10_000, "ms".into())
            .unwrap();
        proof.complete(t0 + 20_000, &history);
        let row = &proof.rows(utilization)[0];
        assert_eq!(row.direction, "worse");
        assert_eq!(row.change_text, "+772 %");
        assert!(row.improvement_pct.is_some_and(|p| p < -700.0));
    }

    #[test]
    fn a_resource_without_target_is_refused_with_the_reason() {
        let mut resource = Resource::new(
            ResourceId::new("disk:/").unwrap(),
            ResourceType::Disk,
            "Disk /",
        );
        resource.target = None;
        let err = Proof::default()
            .open(
                &resource,
                EventKind::Mark { label: "x".into() },
                0,
                "%".into(),
            )
            .unwrap_err();
        assert!(err.starts_with("resource: disk:/ has no target"), "{err}");
    }
}
