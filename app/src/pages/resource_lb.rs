//! The panel of a load balancer's page: its backends with the balancer's state, what
//! perfpilot wants, the health check's verdict with its reason and phases, and the
//! failover and reconcile events.

use engine::lb::{BackendView, LbReport, Phases};
use leptos::prelude::*;

/// What the load-balancer source of `resource` last reported; `None` before its first.
#[server(endpoint = "lb_report", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_lb_report(resource: String) -> Result<Option<LbReport>, crate::error::AppError> {
    crate::backend::require(crate::identity::Role::Viewer)?;
    let Some(details) = crate::backend::live()?.source_details(&resource) else {
        return Ok(None);
    };
    Ok(serde_json::from_value((*details).clone()).ok())
}

fn phases_text(p: &Phases) -> String {
    let parts: Vec<String> = [
        ("DNS", p.dns_ms),
        ("connect", p.connect_ms),
        ("TLS", p.tls_ms),
        ("first byte", p.first_byte_ms),
        ("total", p.total_ms),
    ]
    .into_iter()
    .filter_map(|(name, ms)| ms.map(|ms| format!("{name} {ms:.1} ms")))
    .collect();
    if parts.is_empty() {
        "–".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// "up", "down: connection refused", "no check".
fn check_text(b: &BackendView) -> (String, &'static str) {
    match &b.check {
        None => ("not checked by perfpilot".to_owned(), "muted"),
        Some(c) if c.up && c.last.ok => ("passing".to_owned(), "lb-up"),
        Some(c) if c.up => (
            format!(
                "up, last check failed: {}",
                c.last.reason.as_deref().unwrap_or("?")
            ),
            "lb-warn",
        ),
        Some(c) => (
            format!(
                "down: {}",
                c.down_reason
                    .as_deref()
                    .or(c.last.reason.as_deref())
                    .unwrap_or("failed its checks")
            ),
            "lb-down",
        ),
    }
}

/// The backends table and events, refreshed every 2 s.
#[component]
pub fn LbPanel(resource_id: String) -> impl IntoView {
    let refresh = super::ticking(std::time::Duration::from_secs(2));
    let id = resource_id.clone();
    let report = Resource::new(move || refresh.get(), move |_| get_lb_report(id.clone()));
    view! {
        <section class="settings-panel queries-panel" aria-labelledby="lb-title">
            <h2 id="lb-title">"Backends"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading the backends…"</p> }>
                {move || report.get().map(|result| match result {
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                    Ok(None) => view! { <p class="muted" id="lb-state">"No report yet: the first one comes with the first reading of the balancer."</p> }.into_any(),
                    Ok(Some(report)) => {
                        let up = report.backends.iter().filter(|b| b.check.as_ref().is_none_or(|c| c.up)).count();
                        let process = match (&report.version, report.pid, report.uptime_s) {
                            (Some(v), Some(pid), Some(up)) => format!("{v}, process {pid}, up {}", engine::model::format_duration(u32::try_from(up).unwrap_or(u32::MAX))),
                            _ => "Checked by perfpilot".to_owned(),
                        };
                        let pool = if report.version.is_some() { "Backend" } else { "Pool" };
                        let reloads = match report.reloads {
                            0 => String::new(),
                            1 => "; 1 reload seen".to_owned(),
                            n => format!("; {n} reloads seen"),
                        };
                        view! {
                            {(!report.problems.is_empty()).then(|| view! {
                                <div class="advice" id="lb-problems" role="status">
                                    <h3>"Discovery"</h3>
                                    <ul>{report.problems.iter().map(|p| view! { <li>{p.clone()}</li> }).collect_view()}</ul>
                                </div>
                            })}
                            <p id="lb-summary">{format!("{process}{reloads}. {pool} “{}”: {up} of {} servers passing.", report.backend, report.backends.len())}</p>
                            {report.backends.is_empty().then(|| view! { <p class="muted" id="lb-empty">"This backend has no servers."</p> })}
                            {(!report.backends.is_empty()).then(|| view! {
                                <div class="table-wrap">
                                // Fixed layout with a share per column (style/main.css), so every
                                // column, Response too, fits its box; a long address is cut
                                // with an ellipsis and shown whole in its title.
                                <table class="queries lb-table stack" id="lb-backends">
                                    <thead><tr>
                                        <th scope="col" class="lb-col-server">"Server"</th><th scope="col" class="lb-col-address">"Address"</th><th scope="col" class="lb-col-status">"Balancer says"</th>
                                        <th scope="col" class="lb-col-check">"perfpilot's check"</th><th scope="col" class="lb-col-phases">"Check phases"</th><th scope="col" class="lb-col-num">"Availability"</th>
                                        <th scope="col" class="lb-col-num">"Weight"</th><th scope="col" class="lb-col-num">"Sessions"</th><th scope="col" class="lb-col-num">"Response"</th>
                                    </tr></thead>
                                    <tbody>
                                        {report.backends.iter().map(|b| {
                                            let (check, class) = check_text(b);
                                            let status = match b.desired {
                                                Some(d) => format!("{} (perfpilot: {})", b.status, d.as_str()),
                                                None => b.status.clone(),
                                            };
                                            view! {
                                                <tr data-server=b.name.clone()>
                                                    <th scope="row">{b.name.clone()}</th>
                                                    <td class="lb-address" data-label="Address"><code title=b.address.clone()>{b.address.clone()}</code></td>
                                                    <td class="lb-status" data-label="Balancer says">{status}</td>
                                                    <td class=format!("lb-check {class}") data-label="perfpilot's check">{check}</td>
                                                    <td class="muted" data-label="Check phases">{b.check.as_ref().map_or_else(|| "–".to_owned(), |c| phases_text(&c.last.phases))}</td>
                                                    <td class="num" data-label="Availability">{b.check.as_ref().map_or_else(|| "–".to_owned(), |c| format!("{:.1} %", c.availability_pct))}</td>
                                                    <td class="num" data-label="Weight">{b.weight.map_or_else(|| "–".to_owned(), |w| w.to_string())}</td>
                                                    <td class="num" data-label="Sessions">{b.sessions.map_or_else(|| "–".to_owned(), |s| s.to_string())}</td>
                                                    <td class="num" data-label="Response">{b.response_ms.map_or_else(|| "–".to_owned(), |r| format!("{r:.0} ms"))}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                            })}
                            {(!report.events.is_empty()).then(|| view! {
                                <div class="advice" id="lb-events">
                                    <h3>"Events"</h3>
                                    <ul>
                                        {report.events.iter().take(10).map(|e| view! {
                                            <li>{e.what.clone()}" "<span class="muted">{format!("at {}", crate::format::utc_time(e.at_ms))}</span></li>
                                        }).collect_view()}
                                    </ul>
                                </div>
                            })}
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}
