//! Reports: pick a period, open the performance report (a self-contained HTML page that
//! prints cleanly to PDF) or download the same numbers as CSV. A plain GET form to
//! `/api/v1/report`, so it works before (and without) hydration.

use leptos::prelude::*;

#[component]
pub fn ReportsPage() -> impl IntoView {
    let action = crate::base::href("/api/v1/report");
    view! {
        <section class="page-head">
            <h1>"Reports"</h1>
            <p class="muted">"A performance report of a period: target compliance per resource (worst first), the before/after of every change, action and mark that completed in it, alerts, optimizer actions with their outcomes and rollbacks, charts, and the top processes and queries now. Open it and use the browser's “Save as PDF” for a document; the CSV has the same numbers."</p>
        </section>
        <section class="settings-panel" aria-labelledby="report-title">
            <h2 id="report-title">"New report"</h2>
            <form class="settings-form" id="report-form" method="get" action=action target="_blank">
                <label class="setting"><span>"Period"</span>
                    <select id="report-period" name="period">
                        <option value="24h" selected=true>"Last 24 hours"</option>
                        <option value="7d">"Last 7 days"</option>
                        <option value="30d">"Last 30 days"</option>
                        <option value="">"From – to (below)"</option>
                    </select>
                </label>
                <label class="setting"><span>"From (UTC)"</span>
                    <input id="report-from" name="from" type="datetime-local"/>
                </label>
                <label class="setting"><span>"To (UTC, empty: now)"</span>
                    <input id="report-to" name="to" type="datetime-local"/>
                </label>
                <fieldset class="setting">
                    <legend>"Format"</legend>
                    <label><input type="radio" name="format" value="html" checked=true/>" HTML (print to PDF)"</label>
                    <label><input type="radio" name="format" value="csv"/>" CSV"</label>
                </fieldset>
                <button class="btn" id="report-open" type="submit">"Open the report"</button>
            </form>
            <p class="muted">"From – to needs “From – to” as the period. Scripts: "<code>"GET /api/v1/report?period=7d&format=csv"</code>" or "<code>"?from=2026-11-29T08:00:00Z&to=2026-11-30T08:00:00Z"</code>"."</p>
        </section>
    }
}
