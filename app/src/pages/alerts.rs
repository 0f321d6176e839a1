//! Alerts: what is firing and pending now, silences (create, end), acknowledgements, the
//! channels with a "send test" button and their failed deliveries, and the history. Live:
//! the page re-reads when the live frames' alerts pulse moves (and every few seconds, so
//! pending countdowns move too).

use leptos::prelude::*;

use crate::alerts::{AlertsView, NewSilence};
use crate::components::access::Allowed;
use crate::error::AppError;
use crate::format::utc_time;
use crate::identity::Role;

#[server(endpoint = "alerts", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_alerts() -> Result<AlertsView, AppError> {
    crate::backend::require(Role::Viewer)?;
    crate::backend::alerts()?.alerts()
}

#[server(endpoint = "create_silence", output = crate::codec::Json)]
pub async fn create_silence(new: NewSilence) -> Result<i64, AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::alerts()?.silence(new, &actor)
}

#[server(endpoint = "end_silence", output = crate::codec::Json)]
pub async fn end_silence(id: i64) -> Result<(), AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::alerts()?.unsilence(id, &actor)
}

#[server(endpoint = "acknowledge_alert", output = crate::codec::Json)]
pub async fn acknowledge_alert(
    resource: String,
    comment: String,
    started_ms: Option<i64>,
) -> Result<(), AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    let ack = crate::alerts::Acknowledgement {
        comment,
        started_ms,
    };
    crate::backend::alerts()?.acknowledge(&resource, &ack, &actor)
}

#[server(endpoint = "test_channel", output = crate::codec::Json)]
pub async fn test_channel(name: String) -> Result<String, AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::alerts()?.test_channel(name, actor).await
}

fn resource_href(id: &str) -> String {
    crate::base::href(&format!("/resource?id={}", crate::format::urlencode(id)))
}

/// The latest answer, read inside each row, so a refresh updates text in place and keeps
/// the rows' DOM (and the keyboard focus on their buttons).
type Data = Signal<Option<AlertsView>>;

fn firing_state(alert: &crate::alerts::FiringAlert) -> String {
    match (&alert.silenced_by, &alert.acked_by) {
        (Some(id), _) => format!("silenced (#{id})"),
        (None, Some(by)) => match alert.ack_comment.as_deref() {
            Some(c) if !c.is_empty() => format!("acknowledged by {by}: {c}"),
            _ => format!("acknowledged by {by}"),
        },
        (None, None) => "notifying".to_owned(),
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let live = use_context::<crate::live::LiveState>();
    let version = Memo::new(move |_| {
        live.and_then(|l| l.overview.with(|o| o.as_ref().map(|o| o.alerts.version)))
    });
    let refresh = super::ticking(std::time::Duration::from_secs(5));
    let create = ServerAction::<CreateSilence>::new();
    let end = ServerAction::<EndSilence>::new();
    let ack = ServerAction::<AcknowledgeAlert>::new();
    let alerts = Resource::new(
        move || {
            (
                version.get(),
                refresh.get(),
                create.version().get(),
                end.version().get(),
                ack.version().get(),
            )
        },
        |_| get_alerts(),
    );
    let data: Data = Signal::derive(move || alerts.get().and_then(|r| r.ok()));
    let error = move || alerts.get().and_then(|r| r.err());

    view! {
        <section class="page-head">
            <h1>"Alerts"</h1>
            <p class="muted">"Every target is an alert rule: pending while it is breached for less than its “for”, firing after, resolved once the value is back past the target by the resolve margin. Notifications go through a durable outbox to the configured channels."</p>
        </section>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading alerts…"</p> }>
            {move || error().map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
            <Firing data ack/>
            <WhatChanged data/>
            <Pending data/>
            <Forecasts data/>
            <SilenceForm create/>
            <Silences data end/>
            <Channels data/>
            <History data/>
        </Transition>
    }
}

#[component]
fn Firing(data: Data, ack: ServerAction<AcknowledgeAlert>) -> impl IntoView {
    let rows = move || data.get().map(|v| v.firing).unwrap_or_default();
    let count = move || data.with(|v| v.as_ref().map_or(0, |v| v.firing.len()));
    view! {
        <section class="settings-panel" aria-labelledby="firing-title">
            // Firing is the alert's word for a target breaching (past its `for`): the
            // overview's word and glyph lead, so both pages name one state alike.
            <h2 id="firing-title">
                <span class="state-glyph state-breaching" aria-hidden="true">{crate::status::glyph(engine::model::TargetState::Breaching)}</span>
                " "
                {move || format!("Breaching, alert firing ({})", count())}
            </h2>
            <Show when=move || data.with(|v| v.as_ref().is_some_and(|v| v.firing.is_empty()))>
                <p class="muted" id="alerts-firing-empty">"No target is breaching: nothing is firing."</p>
            </Show>
            <Show when=move || { count() > 0 }>
                <table class="queries alerts-table stack" id="alerts-firing">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Why"</th><th scope="col">"Since"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        <For each=rows key=|a| (a.resource.clone(), a.started_ms) let:alert>
                            {
                                let resource = alert.resource.clone();
                                let current = {
                                    let resource = resource.clone();
                                    move || data.with(|v| v.as_ref().and_then(|v| v.firing.iter().find(|a| a.resource == resource).cloned()))
                                };
                                let state = {
                                    let current = current.clone();
                                    move || current().map(|a| firing_state(&a)).unwrap_or_default()
                                };
                                let acked = move || current().is_some_and(|a| a.acked_by.is_some());
                                let target = StoredValue::new(resource.clone());
                                let started_ms = alert.started_ms;
                                view! {
                                    <tr data-resource=alert.resource.clone()>
                                        <td data-label="Resource"><a href=resource_href(&alert.resource)>{alert.name}</a></td>
                                        <td data-label="Why">{alert.summary}</td>
                                        <td data-label="Since"><time datetime=crate::format::utc_iso(alert.started_ms)>{utc_time(alert.started_ms)}</time></td>
                                        <td class="alert-state" data-label="State">{state}</td>
                                        <td>
                                            <Show when=move || !acked()>
                                                <Allowed role=Role::Editor what="Acknowledging">
                                                    <button class="btn btn-small alert-ack" type="button" disabled=move || ack.pending().get()
                                                        on:click=move |_| { ack.dispatch(AcknowledgeAlert { resource: target.get_value(), comment: String::new(), started_ms: Some(started_ms) }); }>"Acknowledge"</button>
                                                </Allowed>
                                            </Show>
                                        </td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
            {move || ack.value().get().and_then(|r| r.err()).map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
        </section>
    }
}

/// Around the newest firing alert's start: the series that moved the most, each a link
/// to its chart.
#[component]
fn WhatChanged(data: Data) -> impl IntoView {
    let listed = move || {
        let found = data.with(|v| v.as_ref().and_then(|v| v.what_changed.clone()))?;
        let empty = found.moved.is_empty();
        let items = crate::changed::moved_list(found.moved);
        let intro = format!(
            "Around {} UTC, when the newest alert began: the series whose level moved the most against the half hour before.",
            utc_time(found.at_ms)
        );
        Some(view! {
            <section class="settings-panel" id="what-changed" aria-labelledby="what-changed-title">
                <h2 id="what-changed-title">"What changed"</h2>
                <p class="muted">{intro}</p>
                {(!empty).then_some(items)}
                {empty.then(|| view! { <p class="muted">"No series moved notably then."</p> })}
            </section>
        })
    };
    view! { {listed} }
}

#[component]
fn Pending(data: Data) -> impl IntoView {
    let rows = move || data.get().map(|v| v.pending).unwrap_or_default();
    let count = move || data.with(|v| v.as_ref().map_or(0, |v| v.pending.len()));
    view! {
        <section class="settings-panel" aria-labelledby="pending-title">
            <h2 id="pending-title">
                <span class="state-glyph state-pending" aria-hidden="true">{crate::status::glyph(engine::model::TargetState::Pending)}</span>
                " "
                {move || format!("Pending ({})", count())}
            </h2>
            <Show when=move || data.with(|v| v.as_ref().is_some_and(|v| v.pending.is_empty()))>
                <p class="muted" id="alerts-pending-empty">"No breach is pending."</p>
            </Show>
            <Show when=move || { count() > 0 }>
                <table class="queries alerts-table stack" id="alerts-pending">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Breaching"</th></tr></thead>
                    <tbody>
                        <For each=rows key=|p| (p.resource.clone(), p.since_ms) let:p>
                            {
                                let resource = p.resource.clone();
                                let text = move || data.with(|v| v.as_ref().and_then(|v| v.pending.iter().find(|x| x.resource == resource).map(|x| x.text.clone())).unwrap_or_default());
                                view! {
                                    <tr data-resource=p.resource.clone()>
                                        <td data-label="Resource"><a href=resource_href(&p.resource)>{p.name}</a></td>
                                        <td data-label="Breaching">{text}</td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
        </section>
    }
}

/// Forecast alerts: targets predicted to breach soon for long enough to be told. Shown
/// only while there is one.
#[component]
fn Forecasts(data: Data) -> impl IntoView {
    let listed = move || {
        let forecasts = data.with(|v| v.as_ref().map(|v| v.forecasts.clone()).unwrap_or_default());
        (!forecasts.is_empty()).then(|| {
            let count = forecasts.len();
            let rows = forecasts
                .into_iter()
                .map(|f| {
                    view! {
                        <tr data-resource=f.resource.clone()>
                            <td data-label="Resource"><a href=resource_href(&f.resource)>{f.name}</a></td>
                            <td data-label="Forecast">{f.summary}</td>
                            <td data-label="Predicted since"><time datetime=crate::format::utc_iso(f.since_ms)>{utc_time(f.since_ms)}</time></td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            view! {
                <section class="settings-panel" id="alerts-forecasts" aria-labelledby="forecasts-title">
                    <h2 id="forecasts-title">{format!("Predicted to breach ({count})")}</h2>
                    <p class="muted">"Each target's trend has said, at every refit, that it will cross the target soon. Channels with notify_forecasts are told once."</p>
                    <table class="queries alerts-table stack">
                        <thead><tr><th scope="col">"Resource"</th><th scope="col">"Forecast"</th><th scope="col">"Predicted since"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
        })
    };
    view! { {listed} }
}

#[component]
fn SilenceForm(create: ServerAction<CreateSilence>) -> impl IntoView {
    let matcher = RwSignal::new(String::new());
    let duration = RwSignal::new("2h".to_owned());
    let comment = RwSignal::new(String::new());
    view! {
        <section class="settings-panel" aria-labelledby="silence-title">
            <h2 id="silence-title">"New silence"</h2>
            <p class="muted">"A silence holds back notifications for the resources it matches (alerts keep their state and show on this page). When it ends, whatever still fires is notified."</p>
            <Allowed role=Role::Editor what="Creating silences">
                <form method="dialog" class="settings-form" id="silence-form" on:submit=move |ev| {
                    ev.prevent_default();
                    create.dispatch(CreateSilence { new: NewSilence {
                        matcher: matcher.get_untracked(),
                        duration: duration.get_untracked(),
                        comment: comment.get_untracked(),
                    }});
                }>
                    <label class="setting"><span>"Resources (id or glob)"</span>
                        <input id="silence-matcher" type="text" autocomplete="off" placeholder="cache:*" required=true
                            prop:value=move || matcher.get() on:input=move |ev| matcher.set(event_target_value(&ev))/>
                    </label>
                    <label class="setting"><span>"For"</span>
                        <input id="silence-duration" type="text" autocomplete="off" placeholder="2h" required=true
                            prop:value=move || duration.get() on:input=move |ev| duration.set(event_target_value(&ev))/>
                    </label>
                    <label class="setting setting-wide"><span>"Why"</span>
                        <input id="silence-comment" type="text" autocomplete="off" placeholder="planned maintenance" required=true
                            prop:value=move || comment.get() on:input=move |ev| comment.set(event_target_value(&ev))/>
                    </label>
                    <button class="btn" id="silence-create" type="submit" disabled=move || create.pending().get()>
                        {move || if create.pending().get() { "Silencing…" } else { "Silence" }}
                    </button>
                </form>
            </Allowed>
            {move || create.value().get().map(|result| match result {
                Ok(id) => view! { <p class="notice" id="silence-message" role="status">{format!("Silence #{id} created.")}</p> }.into_any(),
                Err(err) => view! { <p class="field-error" id="silence-message" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Silences(data: Data, end: ServerAction<EndSilence>) -> impl IntoView {
    let rows = move || data.get().map(|v| v.silences).unwrap_or_default();
    let any = move || data.with(|v| v.as_ref().is_some_and(|v| !v.silences.is_empty()));
    view! {
        <section class="settings-panel" aria-labelledby="silences-title">
            <h2 id="silences-title">"Silences"</h2>
            <Show when=move || !any()>
                <p class="muted" id="silences-empty">"No silences in the last day."</p>
            </Show>
            <Show when=any>
                <table class="queries alerts-table stack" id="silences">
                    <thead><tr><th scope="col">"#"</th><th scope="col">"Matches"</th><th scope="col">"Why"</th><th scope="col">"By"</th><th scope="col">"Until"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        <For each=rows key=|s| s.id let:s>
                            {
                                let id = s.id;
                                let current = move || data.with(|v| v.as_ref().and_then(|v| v.silences.iter().find(|x| x.id == id).cloned().map(|x| (x, v.now_ms))));
                                let state = move || current().map(|(s, now)| if s.active {
                                    format!("active, ends in {}", engine::model::format_duration(((s.ends_ms - now).max(0) / 1000) as u32))
                                } else if let Some(by) = &s.expired_by {
                                    format!("ended by {by}")
                                } else {
                                    "expired".to_owned()
                                }).unwrap_or_default();
                                let active = move || current().is_some_and(|(s, _)| s.active);
                                view! {
                                    <tr data-silence=id.to_string() class:inactive=move || !active()>
                                        <td data-label="#">{id}</td>
                                        <td data-label="Matches"><code>{s.matcher}</code></td>
                                        <td data-label="Why">{s.comment}</td>
                                        <td data-label="By">{s.created_by}</td>
                                        <td data-label="Until">{utc_time(s.ends_ms)}</td>
                                        <td class="silence-state" data-label="State">{state}</td>
                                        <td>
                                            <Show when=active>
                                                <Allowed role=Role::Editor what="Ending silences">
                                                    <button class="btn btn-small silence-end" type="button" disabled=move || end.pending().get()
                                                        on:click=move |_| { end.dispatch(EndSilence { id }); }>"End now"</button>
                                                </Allowed>
                                            </Show>
                                        </td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
            {move || end.value().get().and_then(|r| r.err()).map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
        </section>
    }
}

#[component]
fn Channels(data: Data) -> impl IntoView {
    let test = ServerAction::<TestChannel>::new();
    let tested = RwSignal::new(None::<String>);
    let rows = move || data.get().map(|v| v.channels).unwrap_or_default();
    let none = move || data.with(|v| v.as_ref().is_some_and(|v| v.channels.is_empty()));
    let deliveries = move || {
        data.get()
            .map(|v| {
                v.deliveries
                    .into_iter()
                    .map(|d| (d, v.now_ms))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    view! {
        <section class="settings-panel" aria-labelledby="channels-title">
            <h2 id="channels-title">"Channels"</h2>
            <Show when=none>
                <p class="muted" id="channels-empty">"No channel is configured: alerts show here only. Add [[alert_channel]] entries (webhook, slack, alertmanager) to the configuration file."</p>
            </Show>
            <Show when=move || !none()>
                <table class="queries alerts-table stack" id="alert-channels">
                    <thead><tr><th scope="col">"Channel"</th><th scope="col">"Receiver"</th><th scope="col">"Gets"</th><th scope="col">"Quiet hours"</th><th scope="col" class="num">"Waiting"</th><th scope="col" class="num">"Failed"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        <For each=rows key=|c| c.name.clone() let:c>
                            {
                                let name = c.name.clone();
                                let current = {
                                    let name = name.clone();
                                    move || data.with(|v| v.as_ref().and_then(|v| v.channels.iter().find(|x| x.name == name).cloned()))
                                };
                                let waiting = {
                                    let current = current.clone();
                                    move || current().map_or(0, |c| c.waiting)
                                };
                                let failed = {
                                    let current = current.clone();
                                    move || current().map_or(0, |c| c.failed)
                                };
                                let last_error = move || current().and_then(|c| c.last_error);
                                let failing = {
                                    let failed = failed.clone();
                                    move || failed() > 0
                                };
                                view! {
                                    <tr data-channel=c.name.clone()>
                                        <td data-label="Channel">{c.name.clone()}" "<span class="muted">{format!("({})", c.kind)}</span></td>
                                        <td data-label="Receiver"><code>{c.url}</code></td>
                                        <td data-label="Gets">{c.routes}</td>
                                        <td data-label="Quiet hours">{c.quiet_hours.unwrap_or_else(|| "none".into())}</td>
                                        <td class="channel-waiting num" data-label="Waiting">{waiting}</td>
                                        <td class="channel-failed num" class:bad=failing data-label="Failed">{failed}{move || last_error().map(|e| view! { <div class="muted channel-error">{e}</div> })}</td>
                                        <td>
                                            <Allowed role=Role::Editor what="Sending a test">
                                                <button class="btn btn-small channel-test" type="button" disabled=move || test.pending().get()
                                                    on:click={
                                                        let name = name.clone();
                                                        move |_| { tested.set(Some(name.clone())); test.dispatch(TestChannel { name: name.clone() }); }
                                                    }>
                                                    {move || if test.pending().get() { "Sending…" } else { "Send test" }}
                                                </button>
                                            </Allowed>
                                        </td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
            {move || test.value().get().map(|result| {
                let channel = tested.get().unwrap_or_default();
                match result {
                    Ok(answer) => view! { <p class="notice" id="channel-test-result" role="status">{format!("{channel}: {answer}")}</p> }.into_any(),
                    Err(err) => view! { <p class="field-error" id="channel-test-result" role="alert">{format!("{channel}: {err}")}</p> }.into_any(),
                }
            })}
            <Show when=move || data.with(|v| v.as_ref().is_some_and(|v| !v.deliveries.is_empty()))>
                <h3>"Latest deliveries"</h3>
                <table class="queries alerts-table stack" id="alert-deliveries">
                    <thead><tr><th scope="col">"When"</th><th scope="col">"Channel"</th><th scope="col">"What"</th><th scope="col">"State"</th><th scope="col" class="num">"Attempts"</th><th scope="col">"Answer or error"</th></tr></thead>
                    <tbody>
                        <For each=deliveries key=|(d, _)| (d.id, d.state.clone(), d.attempts) let:row>
                            {
                                let (d, now) = row;
                                let state = match (d.state.as_str(), d.due_ms > now && d.due_ms != i64::MAX) {
                                    ("pending", true) if d.attempts > 0 => format!("retrying at {}", utc_time(d.due_ms)),
                                    ("pending", true) => format!("held until {}", utc_time(d.due_ms)),
                                    (s, _) => s.to_owned(),
                                };
                                let failed = d.state == "failed";
                                view! {
                                    <tr data-delivery=d.id.to_string() data-state=d.state.clone()>
                                        <td data-label="When">{utc_time(d.sent_ms.unwrap_or(d.created_ms))}</td>
                                        <td data-label="Channel">{d.channel}</td>
                                        <td data-label="What">{format!("{} {}: {}", d.kind, d.resource, d.summary)}</td>
                                        <td class:bad=failed data-label="State">{state}</td>
                                        <td class="num" data-label="Attempts">{d.attempts}</td>
                                        <td class="delivery-detail" data-label="Answer or error">{d.detail.unwrap_or_default()}</td>
                                    </tr>
                                }
                            }
                        </For>
                    </tbody>
                </table>
            </Show>
        </section>
    }
}

#[component]
fn History(data: Data) -> impl IntoView {
    let rows = move || data.get().map(|v| v.history).unwrap_or_default();
    let any = move || data.with(|v| v.as_ref().is_some_and(|v| !v.history.is_empty()));
    view! {
        <section class="settings-panel" aria-labelledby="alert-history-title">
            <h2 id="alert-history-title">"History (7 days)"</h2>
            <Show when=move || !any()>
                <p class="muted">"No alert has fired in the last 7 days."</p>
            </Show>
            <Show when=any>
                <table class="queries alerts-table stack" id="alert-history">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Fired"</th><th scope="col">"Why"</th><th scope="col">"Resolved"</th><th scope="col">"Lasted"</th></tr></thead>
                    <tbody>
                        <For each=rows key=|e| (e.resource.clone(), e.started_ms, e.ended_ms) let:e>
                            <tr data-resource=e.resource.clone()>
                                <td data-label="Resource"><a href=resource_href(&e.resource)>{e.resource.clone()}</a></td>
                                <td data-label="Fired">{utc_time(e.started_ms)}</td>
                                <td data-label="Why">{e.summary.clone()}</td>
                                <td data-label="Resolved">{match (e.ended_ms, e.end_summary.clone()) {
                                    (Some(at), Some(why)) => format!("{} — {why}", utc_time(at)),
                                    (Some(at), None) => utc_time(at),
                                    (None, _) => "still firing".to_owned(),
                                }}</td>
                                <td data-label="Lasted">{e.ended_ms.map(|end| engine::model::format_duration(((end - e.started_ms).max(0) / 1000) as u32)).unwrap_or_default()}</td>
                            </tr>
                        </For>
                    </tbody>
                </table>
            </Show>
        </section>
    }
}
