//! Configuration changes: the change counter, its progress toward the next auto-save, the
//! auto-saved snapshots, a snapshot's differences from now, and restore.
//!
//! The engine's `ChangeStore` owns all of it; this page only reads it, and restores go
//! through [`crate::backend::apply`] so the monitor and every open dashboard hear about
//! them. The selected snapshot lives in the URL (`?snapshot=N`) so a comparison can be
//! linked and is rendered on the server. The page refetches when the live overview's
//! change counter moves, because the server rebroadcasts the overview after every change.

use engine::changes::Difference;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::access::Allowed;
use crate::identity::Role;
use crate::live::LiveState;

/// Characters of the content hash the table shows: enough to tell snapshots apart by eye.
#[cfg(feature = "ssr")]
const SHORT_HASH: usize = 12;

/// Why a snapshot's "who" can be missing.
const NO_IDENTITY: &str =
    "Not in the audit log (for example a change made before this data directory kept one)";

/// The change counter and the snapshots still in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangesSummary {
    /// Accepted configuration changes so far.
    pub change: u64,
    /// Auto-save period N: a snapshot at every change number divisible by N.
    pub autosave_every: u64,
    /// Changes left until the next auto-save (1 to N).
    pub until_autosave: u64,
    /// Snapshots taken since start-up, including those evicted from memory.
    pub snapshots_taken: u64,
    /// How many snapshots memory keeps; older ones are evicted.
    pub snapshot_capacity: usize,
    /// Newest first.
    pub snapshots: Vec<SnapshotRow>,
}

/// One auto-saved snapshot as the table lists it. Its id is its change number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub change: u64,
    pub wall_unix_ms: i64,
    /// The first characters of the hex content hash.
    pub short_hash: String,
    pub resources: usize,
    /// Why verification failed; `None` when the snapshot verifies.
    pub problem: Option<String>,
    /// Who made the change that triggered it, "user · role" (or "perfpilot (…)"), from
    /// the audit log.
    #[serde(default)]
    pub by: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    /// The snapshot restored.
    pub snapshot: u64,
    /// The change number the restore got.
    pub change: u64,
    /// What changed, from the configuration before the restore to the restored one.
    pub differences: Vec<Difference>,
    /// True when the restore was itself an Nth change and got auto-saved.
    pub autosaved: bool,
}

/// Changes left until the next auto-save, from 1 (the next change saves) to `every`.
pub fn until_autosave(change: u64, every: u64) -> u64 {
    let every = every.max(1);
    every - change % every
}

/// The counter, the auto-save period and the snapshots, newest first.
#[server(endpoint = "changes", output = crate::codec::Json)]
pub async fn list_changes() -> Result<ChangesSummary, crate::error::AppError> {
    let configuration = crate::backend::configuration()?;
    let stats = configuration.stats();
    let every = stats.autosave.every();
    let mut snapshots = configuration
        .snapshots()
        .iter()
        .rev()
        .map(|s| SnapshotRow {
            change: s.change,
            wall_unix_ms: s.wall_unix_ms,
            short_hash: s.hash().chars().take(SHORT_HASH).collect(),
            resources: s.resources.len(),
            problem: configuration.verify(s.change).err().map(|e| e.to_string()),
            by: None,
        })
        .collect::<Vec<_>>();
    // Who made each snapshot's change: one query for all of them. Entries past the audit
    // log's retention are gone, and the column then stays empty.
    if !snapshots.is_empty() {
        let filter = crate::audit::AuditFilter {
            changes: snapshots.iter().map(|row| row.change).collect(),
            limit: snapshots.len(),
            ..Default::default()
        };
        match crate::backend::changes()?.audit(filter).await {
            Ok(entries) => {
                for row in &mut snapshots {
                    row.by = entries
                        .iter()
                        .find(|e| e.change == Some(row.change))
                        .map(|e| crate::audit::actor_label(&e.user, &e.role, &e.source));
                }
            }
            // The list is still worth showing without its "By" column.
            Err(err) => leptos::logging::warn!("snapshot authors unavailable: {err}"),
        }
    }
    Ok(ChangesSummary {
        change: stats.change,
        autosave_every: every,
        until_autosave: until_autosave(stats.change, every),
        snapshots_taken: stats.snapshots_taken,
        snapshot_capacity: stats.autosave.capacity(),
        snapshots,
    })
}

/// Differences from snapshot `snapshot` to the current configuration: `before` is the
/// snapshot's value, `after` the current one.
#[server(endpoint = "snapshot_diff", output = crate::codec::Json)]
pub async fn snapshot_diff(snapshot: String) -> Result<Vec<Difference>, crate::error::AppError> {
    let id = parse_snapshot_id(&snapshot)?;
    crate::backend::configuration()?.diff_with_current(id)
}

/// Restores snapshot `snapshot`; a change like any other. A snapshot that fails
/// verification is refused rather than restored.
#[server(endpoint = "restore_snapshot", output = crate::codec::Json)]
pub async fn restore_snapshot(snapshot: String) -> Result<RestoreOutcome, crate::error::AppError> {
    use crate::backend::{apply, configuration, require};
    let actor = require(crate::identity::Role::Admin)?;
    let id = parse_snapshot_id(&snapshot)?;
    configuration()?.verify(id)?;
    let record = apply(engine::changes::Mutation::Restore { snapshot: id }, &actor).await?;
    Ok(RestoreOutcome {
        snapshot: id,
        change: record.change,
        differences: record.restored.map(|r| r.differences).unwrap_or_default(),
        autosaved: record.snapshot.is_some(),
    })
}

/// Ids arrive as text so a malformed one gets a 400 naming the rule instead of the
/// transport's generic decoding error.
#[cfg(feature = "ssr")]
fn parse_snapshot_id(text: &str) -> Result<u64, crate::error::AppError> {
    text.trim().parse().map_err(|_| {
        crate::error::AppError::bad_request(
            "snapshot",
            format!("must be a snapshot id, the whole change number it was taken at, got {text:?}"),
        )
    })
}

/// The server's own words, without the transport's prefix.

#[component]
pub fn ChangesPage() -> impl IntoView {
    let live = expect_context::<LiveState>();
    let query = use_query_map();
    let selected = Memo::new(move |_| query.read().get("snapshot"));
    let restore = ServerAction::<RestoreSnapshot>::new();
    // Bumped whenever the data on screen is known to be stale.
    let epoch = RwSignal::new(0u64);
    let summary = Resource::new(
        move || (epoch.get(), restore.version().get()),
        |_| list_changes(),
    );
    let live_change = Memo::new(move |_| live.overview.with(|o| o.as_ref().map(|o| o.change)));

    // Compared with the number on screen rather than the previous broadcast, so the first
    // broadcast after hydration (which repeats the server-rendered number) costs nothing.
    Effect::new(move |_| {
        let Some(change) = live_change.get() else {
            return;
        };
        let shown = summary
            .get_untracked()
            .and_then(Result::ok)
            .map(|s| s.change);
        if shown != Some(change) {
            epoch.update(|e| *e += 1);
        }
    });

    view! {
        <section class="page-head">
            <h1>"Changes"</h1>
            <p class="muted">"Every accepted configuration change is counted, and every Nth is auto-saved as a snapshot you can compare with now and restore."</p>
        </section>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading changes…"</p> }>
            {move || summary.get().map(|result| match result {
                Err(err) => view! {
                    <section class="error-state" role="alert">
                        <h2>"Could not load the changes"</h2>
                        <p>{err.to_string()}</p>
                    </section>
                }
                .into_any(),
                Ok(s) => {
                    let fallback = s.change;
                    let change = Signal::derive(move || live_change.get().unwrap_or(fallback));
                    view! { <AutoSaveProgress change every=s.autosave_every capacity=s.snapshot_capacity/> }.into_any()
                }
            })}
        </Transition>
        <div class="changes-layout">
            <section class="changes-list" aria-labelledby="snapshots-title">
                <h2 id="snapshots-title">"Snapshots"</h2>
                <Transition fallback=|| ()>
                    {move || summary.get().and_then(Result::ok).map(|s| view! { <SnapshotTable summary=s selected/> })}
                </Transition>
            </section>
            <SnapshotDetail selected epoch restore/>
        </div>
    }
    // Erased so the page's view type stays shallow enough for the wasm build's query depth.
    .into_any()
}

/// The counter and how far it is from the next auto-save.
#[component]
fn AutoSaveProgress(change: Signal<u64>, every: u64, capacity: usize) -> impl IntoView {
    let every = every.max(1);
    let left = move || until_autosave(change.get(), every);
    let done = move || every - left();
    let left_text = move || match left() {
        1 => "1 change until the next auto-save".to_owned(),
        k => format!("{k} changes until the next auto-save"),
    };
    view! {
        <section class="autosave" aria-label="Change counter">
            <p class="autosave-count">
                <span class="autosave-label">"Change"</span>
                <span class="autosave-number" id="change-counter">{move || change.get()}</span>
            </p>
            <div class="autosave-next">
                <label for="autosave-progress" id="autosave-left">{left_text}</label>
                <progress id="autosave-progress" max=every value=done>{move || format!("{} of {every}", done())}</progress>
                <p class="muted">
                    {format!("A snapshot is auto-saved every {every} changes; the newest {capacity} are kept.")}
                </p>
            </div>
        </section>
    }
}

#[component]
fn SnapshotTable(summary: ChangesSummary, selected: Memo<Option<String>>) -> impl IntoView {
    if summary.snapshots.is_empty() {
        let next = summary.change + summary.until_autosave;
        let lead = if summary.change == 0 {
            "Nothing has been changed since perfpilot started."
        } else {
            "No snapshot has been auto-saved yet."
        };
        return view! {
            <div class="empty-state" id="no-snapshots">
                <p>{format!("{lead} The first snapshot is auto-saved at change #{next}.")}</p>
            </div>
        }
        .into_any();
    }
    let evicted = summary.snapshots_taken - summary.snapshots.len() as u64;
    view! {
        <div class="table-scroll">
            <table class="snapshots stack" id="snapshots">
                <caption>
                    "Newest first. "
                    {(evicted > 0).then(|| format!("{evicted} older snapshots were evicted from memory. "))}
                    "“By” is who made the change that triggered the snapshot."
                </caption>
                <thead>
                    <tr>
                        <th scope="col">"Change"</th>
                        <th scope="col">"Saved (UTC)"</th>
                        <th scope="col" class="col-hash">"Hash"</th>
                        <th scope="col" class="num">"Resources"</th>
                        <th scope="col">"Verified"</th>
                        <th scope="col" class="col-who">"By"</th>
                        <th scope="col"><span class="visually-hidden">"Compare"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {summary.snapshots.into_iter().map(|row| view! { <SnapshotRowView row selected/> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn SnapshotRowView(row: SnapshotRow, selected: Memo<Option<String>>) -> impl IntoView {
    let id = row.change.to_string();
    let is_selected = Memo::new({
        let id = id.clone();
        move |_| selected.with(|s| s.as_deref() == Some(id.as_str()))
    });
    let verified = match row.problem {
        None => view! { <span class="verify verify-ok">"✓"<span class="verify-word">" verified"</span></span> }.into_any(),
        Some(problem) => {
            view! { <span class="verify verify-bad" title=problem>"✗"<span class="verify-word">" failed"</span></span> }.into_any()
        }
    };
    view! {
        <tr class:selected=is_selected data-snapshot=id.clone()>
            <th scope="row">{format!("#{}", row.change)}</th>
            <td class="col-time" data-label="Saved (UTC)"><time datetime=crate::format::utc_iso(row.wall_unix_ms) title="UTC">{crate::format::utc_time(row.wall_unix_ms)}</time></td>
            <td class="col-hash" data-label="Hash"><code>{row.short_hash}</code></td>
            <td class="num" data-label="Resources">{row.resources}</td>
            <td data-label="Verified">{verified}</td>
            <td class="col-who" data-label="By">
                {match row.by {
                    Some(by) => view! { <span>{by}</span> }.into_any(),
                    None => view! { <span title=NO_IDENTITY aria-label="unknown">"—"</span> }.into_any(),
                }}
            </td>
            <td>
                // A link, not a button: the selection is in the URL. `data-noscroll` keeps
                // the router from jumping to the top; focus moves to the comparison instead.
                <a
                    class="compare-link"
                    href=crate::base::href(&format!("/changes?snapshot={id}"))
                    data-noscroll=""
                    aria-current=move || is_selected.get().then_some("true")
                    aria-label=format!("Compare snapshot #{id} with now")
                >
                    "Compare"
                </a>
            </td>
        </tr>
    }
}

/// The selected snapshot against now, and restore.
#[component]
fn SnapshotDetail(
    selected: Memo<Option<String>>,
    epoch: RwSignal<u64>,
    restore: ServerAction<RestoreSnapshot>,
) -> impl IntoView {
    // Each result carries the id it is for, so Restore only ever targets a snapshot
    // whose comparison loaded.
    let diff = Resource::new(
        move || (selected.get(), epoch.get(), restore.version().get()),
        |(snapshot, _, _)| async move {
            match snapshot {
                Some(snapshot) => snapshot_diff(snapshot.clone())
                    .await
                    .map(|differences| Some((snapshot, differences))),
                None => Ok(None),
            }
        },
    );
    // Reference-counted, outside the reactive arena: the transition's setter runs while
    // the arena is read-locked, and a second read of it (an arena signal) waits behind a
    // writer on another thread forever (a server render of this page hung that way).
    // Reads use `try_get`: during a server render the setter may hold the write lock on
    // another thread, and a plain `get` then panics as if the signal were disposed.
    let pending = ArcRwSignal::new(false);
    let (busy_for_section, busy_for_setter, busy_for_show) =
        (pending.clone(), pending.clone(), pending);
    // Owned here, not by the Restore control, because a refetch rebuilds the control.
    let confirming = RwSignal::new(false);
    let heading = NodeRef::<leptos::html::H2>::new();
    // Choosing a snapshot moves focus to its comparison, which also scrolls it into view
    // where the layout stacks the table above it.
    Effect::watch(
        move || selected.get(),
        move |_, _, _| {
            confirming.set(false);
            if let Some(heading) = heading.get_untracked() {
                let _ = heading.focus();
            }
        },
        false,
    );
    let title = move || match selected.get() {
        Some(id) => format!("Snapshot #{id} compared with now"),
        None => "Compare with now".to_owned(),
    };

    view! {
        <section class="snapshot-detail" id="snapshot-detail" aria-labelledby="snapshot-detail-title" aria-busy=move || busy_for_section.try_get().unwrap_or(false).to_string()>
            <h2 id="snapshot-detail-title" tabindex="-1" node_ref=heading>{title}</h2>
            <Transition
                fallback=|| view! { <p class="loading" role="status">"Loading the differences…"</p> }
                // A server render can finish before the transition's last update; the
                // page's owner is gone by then, so the write must not panic.
                set_pending=SignalSetter::map(move |busy| {
                    let _ = busy_for_setter.try_set(busy);
                })
            >
                <Show when=move || busy_for_show.try_get().unwrap_or(false)>
                    <p class="diff-refreshing" role="status">"Loading the differences…"</p>
                </Show>
                {move || diff.get().map(|result| {
                    let restorable = result.as_ref().ok().flatten().map(|(id, _)| id.clone());
                    view! {
                        <DiffResult result=result.map(|loaded| loaded.map(|(_, d)| d))/>
                        {restorable.map(|id| view! {
                            <Allowed role=Role::Admin what="Restoring a snapshot">
                                <RestoreControl id=id.clone() restore confirming/>
                            </Allowed>
                        })}
                    }
                })}
            </Transition>
            <RestoreResult restore/>
        </section>
    }
    .into_any()
}

#[component]
fn DiffResult(result: Result<Option<Vec<Difference>>, crate::error::AppError>) -> impl IntoView {
    match result {
        Ok(None) => view! {
            <p class="muted" id="diff-hint">"Choose a snapshot to see how it differs from the current configuration, and to restore it."</p>
        }
        .into_any(),
        Ok(Some(differences)) if differences.is_empty() => view! {
            <p class="diff-same" id="diff-identical">"Identical to the current state."</p>
        }
        .into_any(),
        Ok(Some(differences)) => {
            let count = match differences.len() {
                1 => "1 difference".to_owned(),
                n => format!("{n} differences"),
            };
            view! {
                <p class="muted">{count}" — each line reads “resource: field: in the snapshot → now”."</p>
                <DiffLines differences id="diff"/>
            }
            .into_any()
        }
        Err(err) => view! {
            <div class="error-state" role="alert" id="diff-error">
                <h3>"Could not compare this snapshot"</h3>
                <p>{err.to_string()}</p>
            </div>
        }
        .into_any(),
    }
}

/// Differences as "resource: path: before → after" lines, the engine's `Display` form.
#[component]
fn DiffLines(differences: Vec<Difference>, id: &'static str) -> impl IntoView {
    let lines = differences
        .into_iter()
        .map(|d| {
            let resource = d.resource.to_string();
            let side = |v: Option<String>| v.unwrap_or_else(|| "(none)".into());
            match (d.path.is_empty(), d.before.is_some(), d.after.is_some()) {
                (true, false, true) => view! {
                    <li><span class="diff-resource">{resource}</span>": "<ins>"added"</ins></li>
                }
                .into_any(),
                (true, true, false) => view! {
                    <li><span class="diff-resource">{resource}</span>": "<del>"removed"</del></li>
                }
                .into_any(),
                _ => view! {
                    <li>
                        <span class="diff-resource">{resource}</span>": "
                        <span class="diff-path">{d.path}</span>": "
                        <del>{side(d.before)}</del>" → "<ins>{side(d.after)}</ins>
                    </li>
                }
                .into_any(),
            }
        })
        .collect_view();
    view! { <ul class="diff" id=id>{lines}</ul> }
}

/// Restore with a confirmation step. Focus follows the step, so a keyboard user never
/// lands on a button that just disappeared.
#[component]
fn RestoreControl(
    id: String,
    restore: ServerAction<RestoreSnapshot>,
    confirming: RwSignal<bool>,
) -> impl IntoView {
    let start = NodeRef::<leptos::html::Button>::new();
    let cancel = NodeRef::<leptos::html::Button>::new();
    // The buttons mount on the next render; a frame later they exist.
    let focus = move |button: NodeRef<leptos::html::Button>| {
        request_animation_frame(move || {
            if let Some(button) = button.get_untracked() {
                let _ = button.focus();
            }
        })
    };
    let ask = move |_| {
        confirming.set(true);
        focus(cancel);
    };
    let back = move || {
        confirming.set(false);
        focus(start);
    };
    let id = StoredValue::new(id);
    let confirm = move |_| {
        restore.dispatch(RestoreSnapshot {
            snapshot: id.get_value(),
        });
        back();
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            back();
        }
    };
    let busy = restore.pending();

    view! {
        <div class="restore">
            <Show
                when=move || confirming.get()
                fallback=move || view! {
                    <button type="button" class="btn" id="restore-start" node_ref=start on:click=ask disabled=move || busy.get()>
                        {move || if busy.get() { "Restoring…".to_owned() } else { id.with_value(|id| format!("Restore snapshot #{id}…")) }}
                    </button>
                }
            >
                <div class="restore-confirm" role="group" aria-labelledby="restore-question" on:keydown=on_keydown>
                    <p id="restore-question">
                        {id.with_value(|id| format!("Replace the current configuration of every resource with snapshot #{id}? The restore counts as one change."))}
                    </p>
                    <div class="restore-buttons">
                        <button type="button" class="btn btn-danger" id="restore-confirm" on:click=confirm>
                            {id.with_value(|id| format!("Yes, restore #{id}"))}
                        </button>
                        <button type="button" class="btn btn-ghost" id="restore-cancel" node_ref=cancel on:click=move |_| back()>
                            "Cancel"
                        </button>
                    </div>
                </div>
            </Show>
        </div>
    }
}

/// The last restore's outcome, in a live region so screen readers announce it. Focus
/// moves here when a restore finishes: the control that started it may have been
/// rebuilt by the refresh that follows.
#[component]
fn RestoreResult(restore: ServerAction<RestoreSnapshot>) -> impl IntoView {
    let region = NodeRef::<leptos::html::Div>::new();
    Effect::watch(
        move || restore.version().get(),
        move |_, _, _| {
            request_animation_frame(move || {
                if let Some(region) = region.get_untracked() {
                    let _ = region.focus();
                }
            })
        },
        false,
    );
    view! {
        <div class="restore-outcome" id="restore-outcome" aria-live="polite" tabindex="-1" node_ref=region>
            {move || restore.value().get().map(|result| match result {
                Ok(outcome) => view! {
                    <div class="restore-result" id="restore-result">
                        <p>
                            <strong>{format!("Restored snapshot #{}", outcome.snapshot)}</strong>
                            {format!(" as change #{}.", outcome.change)}
                            {outcome.autosaved.then(|| format!(" That change was auto-saved as snapshot #{}.", outcome.change))}
                        </p>
                        {if outcome.differences.is_empty() {
                            view! { <p class="muted">"It matched the current state, so only the counter moved."</p> }.into_any()
                        } else {
                            view! {
                                <p class="muted">"What it changed (before → after):"</p>
                                <DiffLines differences=outcome.differences id="restore-changes"/>
                            }
                            .into_any()
                        }}
                    </div>
                }
                .into_any(),
                Err(err) => view! {
                    <div class="error-state" role="alert" id="restore-error">
                        <h3>"Restore failed"</h3>
                        <p>{err.to_string()}</p>
                    </div>
                }
                .into_any(),
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_autosave_counts_down_from_the_period() {
        assert_eq!(until_autosave(0, 20), 20);
        assert_eq!(until_autosave(19, 20), 1);
        assert_eq!(until_autosave(20, 20), 20);
        assert_eq!(until_autosave(41, 20), 19);
        assert_eq!(until_autosave(7, 1), 1);
        assert_eq!(until_autosave(3, 0), 1);
    }
}
