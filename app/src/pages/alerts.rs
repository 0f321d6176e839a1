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
    crate::backend::backend()?.alerts()
}

#[server(endpoint = "create_silence", output = crate::codec::Json)]
pub async fn create_silence(new: NewSilence) -> Result<i64, AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::backend()?.silence(new, &actor)
}

#[server(endpoint = "end_silence", output = crate::codec::Json)]
pub async fn end_silence(id: i64) -> Result<(), AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::backend()?.unsilence(id, &actor)
}

#[server(endpoint = "acknowledge_alert", output = crate::codec::Json)]
pub async fn acknowledge_alert(resource: String, comment: String) -> Result<(), AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::backend()?.acknowledge(&resource, &comment, &actor)
}

#[server(endpoint = "test_channel", output = crate::codec::Json)]
pub async fn test_channel(name: String) -> Result<String, AppError> {
    let actor = crate::backend::require(Role::Editor)?;
    crate::backend::backend()?.test_channel(name, actor).await
}

fn resource_href(id: &str) -> String {
    crate::base::href(&format!("/resource?id={}", crate::format::urlencode(id)))
}

/// "12 min ago" style, from the server's clock in the view.
fn ago(now_ms: i64, at_ms: i64) -> String {
    let secs = ((now_ms - at_ms).max(0) / 1000) as u32;
    format!("{} ago", engine::model::format_duration(secs.max(1)))
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

    view! {
        <section class="page-head">
            <h1>"Alerts"</h1>
            <p class="muted">"Every target is an alert rule: pending while it is breached for less than its “for”, firing after, resolved once the value is back past the target by the resolve margin. Notifications go through a durable outbox to the configured channels."</p>
        </section>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading alerts…"</p> }>
            {move || alerts.get().map(|result| match result {
                Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                Ok(view) => view! { <AlertsBody view ack/> }.into_any(),
            })}
        </Transition>
        <SilenceForm create/>
        <Transition fallback=|| ()>
            {move || alerts.get().and_then(|r| r.ok()).map(|view| view! {
                <Silences view=view.clone() end/>
                <Channels view=view.clone()/>
                <History view/>
            })}
        </Transition>
    }
}

#[component]
fn AlertsBody(view: AlertsView, ack: ServerAction<AcknowledgeAlert>) -> impl IntoView {
    let now = view.now_ms;
    let firing_empty = view.firing.is_empty();
    let pending_empty = view.pending.is_empty();
    view! {
        <section class="settings-panel" aria-labelledby="firing-title">
            <h2 id="firing-title">{format!("Firing ({})", view.firing.len())}</h2>
            {firing_empty.then(|| view! { <p class="muted" id="alerts-firing-empty">"Nothing is firing."</p> })}
            {(!firing_empty).then(|| view! {
                <table class="queries" id="alerts-firing">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Why"</th><th scope="col">"Since"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        {view.firing.into_iter().map(|alert| {
                            let resource = alert.resource.clone();
                            let state = match (&alert.silenced_by, &alert.acked_by) {
                                (Some(id), _) => format!("silenced (#{id})"),
                                (None, Some(by)) => match alert.ack_comment.as_deref() {
                                    Some(c) if !c.is_empty() => format!("acknowledged by {by}: {c}"),
                                    _ => format!("acknowledged by {by}"),
                                },
                                (None, None) => "notifying".to_owned(),
                            };
                            let acked = alert.acked_by.is_some();
                            view! {
                                <tr data-resource=alert.resource.clone()>
                                    <td><a href=resource_href(&alert.resource)>{alert.name}</a></td>
                                    <td>{alert.summary}</td>
                                    <td><time datetime=crate::format::utc_iso(alert.started_ms) title=utc_time(alert.started_ms)>{ago(now, alert.started_ms)}</time></td>
                                    <td class="alert-state">{state}</td>
                                    <td>
                                        {(!acked).then(|| view! {
                                            <Allowed role=Role::Editor what="Acknowledging">
                                                <button class="btn btn-small alert-ack" type="button" disabled=move || ack.pending().get()
                                                    on:click={
                                                        let resource = resource.clone();
                                                        move |_| { ack.dispatch(AcknowledgeAlert { resource: resource.clone(), comment: String::new() }); }
                                                    }>"Acknowledge"</button>
                                            </Allowed>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {move || ack.value().get().and_then(|r| r.err()).map(|err| view! { <p class="field-error" role="alert">{err.to_string()}</p> })}
        </section>
        <section class="settings-panel" aria-labelledby="pending-title">
            <h2 id="pending-title">{format!("Pending ({})", view.pending.len())}</h2>
            {pending_empty.then(|| view! { <p class="muted" id="alerts-pending-empty">"No target is breached right now."</p> })}
            {(!pending_empty).then(|| view! {
                <table class="queries" id="alerts-pending">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Breaching"</th></tr></thead>
                    <tbody>
                        {view.pending.into_iter().map(|p| view! {
                            <tr data-resource=p.resource.clone()>
                                <td><a href=resource_href(&p.resource)>{p.name}</a></td>
                                <td>{p.text}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
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
                <form class="settings-form" id="silence-form" on:submit=move |ev| {
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
fn Silences(view: AlertsView, end: ServerAction<EndSilence>) -> impl IntoView {
    let now = view.now_ms;
    if view.silences.is_empty() {
        return view! { <p class="muted" id="silences-empty">"No silences in the last day."</p> }
            .into_any();
    }
    view! {
        <section class="settings-panel" aria-labelledby="silences-title">
            <h2 id="silences-title">"Silences"</h2>
            <table class="queries" id="silences">
                <thead><tr><th scope="col">"#"</th><th scope="col">"Matches"</th><th scope="col">"Why"</th><th scope="col">"By"</th><th scope="col">"Until"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                <tbody>
                    {view.silences.into_iter().map(|s| {
                        let id = s.id;
                        let state = if s.active {
                            format!("active, ends in {}", engine::model::format_duration(((s.ends_ms - now).max(0) / 1000) as u32))
                        } else if let Some(by) = &s.expired_by {
                            format!("ended by {by}")
                        } else {
                            "expired".to_owned()
                        };
                        view! {
                            <tr data-silence=id.to_string() class:inactive=!s.active>
                                <td>{id}</td>
                                <td><code>{s.matcher}</code></td>
                                <td>{s.comment}</td>
                                <td>{s.created_by}</td>
                                <td>{utc_time(s.ends_ms)}</td>
                                <td class="silence-state">{state}</td>
                                <td>{s.active.then(|| view! {
                                    <Allowed role=Role::Editor what="Ending silences">
                                        <button class="btn btn-small silence-end" type="button" disabled=move || end.pending().get()
                                            on:click=move |_| { end.dispatch(EndSilence { id }); }>"End now"</button>
                                    </Allowed>
                                })}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}

#[component]
fn Channels(view: AlertsView) -> impl IntoView {
    let test = ServerAction::<TestChannel>::new();
    let tested = RwSignal::new(None::<String>);
    let channels_empty = view.channels.is_empty();
    view! {
        <section class="settings-panel" aria-labelledby="channels-title">
            <h2 id="channels-title">"Channels"</h2>
            {channels_empty.then(|| view! { <p class="muted" id="channels-empty">"No channel is configured: alerts show here only. Add [[alert_channel]] entries (webhook, slack, alertmanager) to the configuration file."</p> })}
            {(!channels_empty).then(|| view! {
                <table class="queries" id="alert-channels">
                    <thead><tr><th scope="col">"Channel"</th><th scope="col">"Receiver"</th><th scope="col">"Gets"</th><th scope="col">"Quiet hours"</th><th scope="col">"Waiting"</th><th scope="col">"Failed"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody>
                        {view.channels.into_iter().map(|c| {
                            let name = c.name.clone();
                            let failing = c.failed > 0;
                            view! {
                                <tr data-channel=c.name.clone()>
                                    <td>{c.name.clone()}" "<span class="muted">{format!("({})", c.kind)}</span></td>
                                    <td><code>{c.url}</code></td>
                                    <td>{c.routes}</td>
                                    <td>{c.quiet_hours.unwrap_or_else(|| "none".into())}</td>
                                    <td>{c.waiting}</td>
                                    <td class:bad=failing>{c.failed}{c.last_error.map(|e| view! { <div class="muted channel-error">{e}</div> })}</td>
                                    <td>
                                        <Allowed role=Role::Editor what="Sending a test">
                                            <button class="btn btn-small channel-test" type="button" disabled=move || test.pending().get()
                                                on:click={
                                                    let name = name.clone();
                                                    move |_| { tested.set(Some(name.clone())); test.dispatch(TestChannel { name: name.clone() }); }
                                                }>"Send test"</button>
                                        </Allowed>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {move || test.value().get().map(|result| {
                let channel = tested.get().unwrap_or_default();
                match result {
                    Ok(answer) => view! { <p class="notice" id="channel-test-result" role="status">{format!("{channel}: {answer}")}</p> }.into_any(),
                    Err(err) => view! { <p class="field-error" id="channel-test-result" role="alert">{format!("{channel}: {err}")}</p> }.into_any(),
                }
            })}
            {(!view.deliveries.is_empty()).then(|| view! {
                <h3>"Latest deliveries"</h3>
                <table class="queries" id="alert-deliveries">
                    <thead><tr><th scope="col">"When"</th><th scope="col">"Channel"</th><th scope="col">"What"</th><th scope="col">"State"</th><th scope="col">"Attempts"</th><th scope="col">"Answer or error"</th></tr></thead>
                    <tbody>
                        {view.deliveries.into_iter().map(|d| {
                            let state = match (d.state.as_str(), d.due_ms > view.now_ms && d.due_ms != i64::MAX) {
                                ("pending", true) => format!("held until {}", utc_time(d.due_ms)),
                                (s, _) => s.to_owned(),
                            };
                            let failed = d.state == "failed";
                            view! {
                                <tr data-delivery=d.id.to_string() data-state=d.state.clone()>
                                    <td>{utc_time(d.sent_ms.unwrap_or(d.created_ms))}</td>
                                    <td>{d.channel}</td>
                                    <td>{format!("{} {}: {}", d.kind, d.resource, d.summary)}</td>
                                    <td class:bad=failed>{state}</td>
                                    <td>{d.attempts}</td>
                                    <td class="delivery-detail">{d.detail.unwrap_or_default()}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}

#[component]
fn History(view: AlertsView) -> impl IntoView {
    view! {
        <section class="settings-panel" aria-labelledby="alert-history-title">
            <h2 id="alert-history-title">"History (7 days)"</h2>
            {view.history.is_empty().then(|| view! { <p class="muted">"No alert has fired in the last 7 days."</p> })}
            {(!view.history.is_empty()).then(|| view! {
                <table class="queries" id="alert-history">
                    <thead><tr><th scope="col">"Resource"</th><th scope="col">"Fired"</th><th scope="col">"Why"</th><th scope="col">"Resolved"</th><th scope="col">"Lasted"</th></tr></thead>
                    <tbody>
                        {view.history.into_iter().map(|e| view! {
                            <tr data-resource=e.resource.clone()>
                                <td><a href=resource_href(&e.resource)>{e.resource.clone()}</a></td>
                                <td>{utc_time(e.started_ms)}</td>
                                <td>{e.summary}</td>
                                <td>{match (e.ended_ms, e.end_summary) {
                                    (Some(at), Some(why)) => format!("{} — {why}", utc_time(at)),
                                    (Some(at), None) => utc_time(at),
                                    (None, _) => "still firing".to_owned(),
                                }}</td>
                                <td>{e.ended_ms.map(|end| engine::model::format_duration(((end - e.started_ms).max(0) / 1000) as u32)).unwrap_or_default()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}
