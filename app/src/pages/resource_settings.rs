//! A resource's evaluation and action settings, under its chart. Editors tune how the
//! target is judged (window, tolerance, stabilization, cooldown, before/after windows);
//! only admins change what the optimizer *does* (the action and dry-run), because an action
//! runs webhooks or programs on a breach.

use engine::actuator::Guardrail;
use engine::model::{
    ActionConfig, CacheSettingAction, CommandAction, DatabaseSettingAction, ResourceSettings,
    RollbackCommand, WebhookAction,
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::access::{role_reason, Allowed, Me};
use crate::identity::Role;

#[server(endpoint = "resource_settings", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn get_resource_settings(
    resource: String,
) -> Result<ResourceSettings, crate::error::AppError> {
    use crate::backend::configuration;
    use engine::error::EngineError;
    let id = engine::model::ResourceId::new(&resource)?;
    let state = configuration()?.state();
    state
        .resources
        .get(&id)
        .map(|r| r.settings.clone())
        .ok_or_else(|| EngineError::UnknownResource { id }.into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsSaved {
    pub change: u64,
    pub what: String,
}

/// Replaces a resource's settings (`settings` is their JSON). Changing the action or
/// dry-run needs the admin role; everything else the editor role.
#[server(endpoint = "set_resource_settings", output = crate::codec::Json)]
pub async fn set_resource_settings(
    resource: String,
    settings: String,
) -> Result<SettingsSaved, crate::error::AppError> {
    use crate::backend::{apply, require};
    use crate::error::AppError;
    use engine::changes::Mutation;

    // Changing the action, dry-run or guardrails needs the admin role; the change path
    // decides that against the settings current when the change is applied.
    let actor = require(Role::Editor)?;
    let settings: ResourceSettings =
        serde_json::from_str(&settings).map_err(|err| AppError::invalid("settings", err))?;
    let id = engine::model::ResourceId::new(&resource)?;
    let record = apply(Mutation::SetSettings { id, settings }, &actor).await?;
    Ok(SettingsSaved {
        change: record.change,
        what: record.what(),
    })
}

/// The form's text fields; numbers are parsed on save so a typo gets a message naming
/// the field instead of silently becoming 0.
#[derive(Clone, Copy)]
struct Fields {
    window_secs: RwSignal<String>,
    tolerance_pct: RwSignal<String>,
    stabilization_secs: RwSignal<String>,
    cooldown_secs: RwSignal<String>,
    baseline_secs: RwSignal<String>,
    verify_secs: RwSignal<String>,
    action: RwSignal<String>,
    target: RwSignal<String>,
    args: RwSignal<String>,
    secret: RwSignal<String>,
    /// A webhook's rollback URL, or a command's rollback program and arguments.
    rollback: RwSignal<String>,
    /// One guardrail per line (`memory/utilization > 90`, `p95_ms > 2x baseline`).
    guardrails: RwSignal<String>,
    dry_run: RwSignal<bool>,
}

impl Fields {
    fn new(s: &ResourceSettings) -> Fields {
        let text = |v: String| RwSignal::new(v);
        let (target, args, secret, rollback) = match &s.action {
            ActionConfig::Recommend => (String::new(), String::new(), String::new(), String::new()),
            ActionConfig::Webhook(w) => (
                w.url.clone(),
                String::new(),
                w.secret.clone().unwrap_or_default(),
                w.rollback_url.clone().unwrap_or_default(),
            ),
            // The parameter in the target field, its value in the arguments field.
            ActionConfig::DatabaseSetting(d) => (
                d.parameter.clone(),
                d.value.clone(),
                String::new(),
                String::new(),
            ),
            ActionConfig::CacheSetting(c) => (
                c.parameter.clone(),
                c.value.clone(),
                String::new(),
                String::new(),
            ),
            // The step in the target field, the least weight in the arguments field.
            ActionConfig::LbWeights(w) => (
                w.step_pct.to_string(),
                w.min_weight.to_string(),
                String::new(),
                String::new(),
            ),
            ActionConfig::Command(c) => (
                c.program.clone(),
                c.args.join(" "),
                String::new(),
                c.rollback
                    .as_ref()
                    .map(|r| {
                        std::iter::once(r.program.as_str())
                            .chain(r.args.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            ),
        };
        let guardrails: Vec<String> = s.guardrails.iter().map(Guardrail::to_line).collect();
        Fields {
            window_secs: text(s.window_secs.to_string()),
            tolerance_pct: text(s.tolerance_pct.to_string()),
            stabilization_secs: text(s.stabilization_secs.to_string()),
            cooldown_secs: text(s.cooldown_secs.to_string()),
            baseline_secs: text(s.baseline_secs.to_string()),
            verify_secs: text(s.verify_secs.to_string()),
            action: text(s.action.kind().to_owned()),
            target: text(target),
            args: text(args),
            secret: text(secret),
            rollback: text(rollback),
            guardrails: text(guardrails.join("\n")),
            dry_run: RwSignal::new(s.dry_run),
        }
    }

    /// The settings the form describes, keeping what it does not show from `base`.
    fn read(&self, base: &ResourceSettings) -> Result<ResourceSettings, String> {
        let secs = |field: &str, text: RwSignal<String>| {
            text.get_untracked().trim().parse::<u32>().map_err(|_| {
                format!(
                    "settings.{field}: must be a whole number of seconds, got {:?}",
                    text.get_untracked()
                )
            })
        };
        let mut s = base.clone();
        s.window_secs = secs("window_secs", self.window_secs)?;
        s.stabilization_secs = secs("stabilization_secs", self.stabilization_secs)?;
        s.cooldown_secs = secs("cooldown_secs", self.cooldown_secs)?;
        s.baseline_secs = secs("baseline_secs", self.baseline_secs)?;
        s.verify_secs = secs("verify_secs", self.verify_secs)?;
        s.tolerance_pct = self
            .tolerance_pct
            .get_untracked()
            .trim()
            .parse::<f64>()
            .map_err(|_| {
                format!(
                    "settings.tolerance_pct: must be a number, got {:?}",
                    self.tolerance_pct.get_untracked()
                )
            })?;
        s.dry_run = self.dry_run.get_untracked();
        s.guardrails = Guardrail::parse_lines(&self.guardrails.get_untracked())?;
        let target = self.target.get_untracked().trim().to_owned();
        let rollback = self.rollback.get_untracked().trim().to_owned();
        s.action = match self.action.get_untracked().as_str() {
            "webhook" => ActionConfig::Webhook(WebhookAction {
                url: target,
                timeout_ms: match &base.action {
                    ActionConfig::Webhook(w) => w.timeout_ms,
                    _ => 5_000,
                },
                max_retries: match &base.action {
                    ActionConfig::Webhook(w) => w.max_retries,
                    _ => 2,
                },
                secret: Some(self.secret.get_untracked().trim().to_owned())
                    .filter(|s| !s.is_empty()),
                rollback_url: Some(rollback).filter(|r| !r.is_empty()),
            }),
            "command" => ActionConfig::Command(CommandAction {
                program: target,
                args: self
                    .args
                    .get_untracked()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                timeout_ms: match &base.action {
                    ActionConfig::Command(c) => c.timeout_ms,
                    _ => 5_000,
                },
                rollback: {
                    let mut words = rollback.split_whitespace().map(str::to_owned);
                    words.next().map(|program| RollbackCommand {
                        program,
                        args: words.collect(),
                    })
                },
            }),
            "database_setting" => ActionConfig::DatabaseSetting(DatabaseSettingAction {
                parameter: target,
                value: self.args.get_untracked().trim().to_owned(),
            }),
            "cache_setting" => ActionConfig::CacheSetting(CacheSettingAction {
                parameter: target,
                value: self.args.get_untracked().trim().to_owned(),
            }),
            "lb_weights" => {
                let args = self.args.get_untracked();
                let number = |field: &str, text: &str, default: u32| -> Result<u32, String> {
                    if text.trim().is_empty() {
                        return Ok(default);
                    }
                    text.trim().parse().map_err(|_| {
                        format!("settings.action.{field}: must be a whole number, got {text:?}")
                    })
                };
                ActionConfig::LbWeights(engine::model::LbWeightsAction {
                    step_pct: u8::try_from(number("step_pct", &target, 50)?).map_err(|_| {
                        "settings.action.step_pct: must be within 1–100 %".to_owned()
                    })?,
                    min_weight: number("min_weight", &args, 1)?,
                })
            }
            _ => ActionConfig::Recommend,
        };
        Ok(s)
    }
}

#[component]
pub fn ResourceSettingsPanel(resource_id: String) -> impl IntoView {
    let save = ServerAction::<SetResourceSettings>::new();
    let id = resource_id.clone();
    let loaded = Resource::new(
        move || save.version().get(),
        move |_| get_resource_settings(id.clone()),
    );
    view! {
        <details class="settings-panel" id="resource-settings">
            <summary>"Evaluation and action settings"</summary>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading settings…"</p> }>
                {move || loaded.get().map(|result| match result {
                    Ok(settings) => view! { <SettingsForm resource_id=resource_id.clone() settings save/> }.into_any(),
                    Err(err) => view! { <p class="field-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </details>
    }
}

#[component]
fn SettingsForm(
    resource_id: String,
    settings: ResourceSettings,
    save: ServerAction<SetResourceSettings>,
) -> impl IntoView {
    let me = expect_context::<Me>();
    let fields = Fields::new(&settings);
    let base = StoredValue::new(settings);
    let local_error = RwSignal::new(None::<String>);
    let resource_id = StoredValue::new(resource_id);
    let submit = move || match fields.read(&base.get_value()) {
        Ok(next) => {
            local_error.set(None);
            let json = serde_json::to_string(&next).unwrap_or_default();
            save.dispatch(SetResourceSettings {
                resource: resource_id.get_value(),
                settings: json,
            });
        }
        Err(message) => local_error.set(Some(message)),
    };
    let message = move || {
        if let Some(err) = local_error.get() {
            return Some((true, err));
        }
        match save.value().get()? {
            Ok(saved) => Some((
                false,
                format!("Saved as change #{}: {}", saved.change, saved.what),
            )),
            Err(err) => Some((true, err.to_string())),
        }
    };
    let number = move |label: &'static str,
                       id: &'static str,
                       field: RwSignal<String>,
                       unit: &'static str| {
        view! {
            <label class="setting">
                <span>{label}</span>
                <span class="setting-input">
                    <input id=id type="text" inputmode="decimal" prop:value=move || field.get() on:input=move |ev| field.set(event_target_value(&ev))/>
                    <span class="unit">{unit}</span>
                </span>
            </label>
        }
    };
    let not_admin = move || !me.may(Role::Admin);
    let not_editor = move || !me.may(Role::Editor);
    let admin_reason = move || {
        let have = me.0.get().and_then(Result::ok).map(|who| who.role);
        role_reason(
            "Changing the action, its rollback or guardrails",
            Role::Admin,
            have,
        )
    };
    // Every guardrail on its own line in view (a cache starts with three), never fewer
    // than three lines.
    let guardrail_rows = move || {
        fields
            .guardrails
            .with(|text| text.lines().count())
            .max(3)
            .to_string()
    };
    view! {
        <form method="dialog" class="settings-form" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            // Fields nobody may save are off; Save says why ("Changing settings needs…").
            <fieldset disabled=not_editor>
                <legend>"How the target is judged"</legend>
                {number("Window", "setting-window", fields.window_secs, "s")}
                {number("Tolerance band", "setting-tolerance", fields.tolerance_pct, "%")}
                {number("Stable for before Optimized", "setting-stabilization", fields.stabilization_secs, "s")}
                {number("Cooldown between actions", "setting-cooldown", fields.cooldown_secs, "s")}
                {number("Before/after baseline", "setting-baseline", fields.baseline_secs, "s")}
                {number("Before/after verify window", "setting-verify", fields.verify_secs, "s")}
            </fieldset>
            <fieldset disabled=not_admin>
                <legend>"What the optimizer does on a breach"</legend>
                <Show when=not_admin>
                    <p class="muted needs-role" data-needs-role="admin">{admin_reason}</p>
                </Show>
                <label class="setting">
                    <span>"Action"</span>
                    <select id="setting-action" on:change=move |ev| fields.action.set(event_target_value(&ev))>
                        {[("recommend", "Recommend only"), ("webhook", "Call a webhook"), ("command", "Run a command"), ("database_setting", "Tune a database setting"), ("cache_setting", "Tune a cache's memory"), ("lb_weights", "Shift load-balancer weights")]
                            .into_iter()
                            .map(|(value, label)| view! { <option value=value selected=move || fields.action.get() == value>{label}</option> })
                            .collect_view()}
                    </select>
                </label>
                <ActionFields fields=fields/>
                <label class="setting setting-wide"><span>"Guardrails: roll back at once if, while verifying…"</span>
                    <textarea id="setting-guardrails" rows=guardrail_rows aria-describedby="setting-guardrails-help" placeholder="memory/utilization > 90" prop:value=move || fields.guardrails.get() on:input=move |ev| fields.guardrails.set(event_target_value(&ev))></textarea>
                    <span class="field-help" id="setting-guardrails-help">"One per line: a bound (memory/utilization > 90) or a multiple of the value before the change (utilization > 2x baseline)."</span>
                </label>
                <label class="setting setting-check">
                    <input id="setting-dry-run" type="checkbox" prop:checked=move || fields.dry_run.get() on:change=move |ev| fields.dry_run.set(event_target_checked(&ev))/>
                    <span>"Dry run: describe the action, never execute it"</span>
                </label>
            </fieldset>
            <Allowed role=Role::Editor what="Changing settings">
                <button id="settings-save" class="btn" type="submit" disabled=move || save.pending().get()>
                    {move || if save.pending().get() { "Saving…" } else { "Save settings" }}
                </button>
            </Allowed>
            {move || message().map(|(is_error, text)| if is_error {
                view! { <p id="settings-message" class="field-error" role="alert">{text}</p> }.into_any()
            } else {
                view! { <p id="settings-message" class="notice" role="status">{text}</p> }.into_any()
            })}
        </form>
    }
}

/// The fields of the chosen action: its own component, so the settings form's view stays
/// shallow enough to render on a worker thread's stack in debug builds.
#[component]
fn ActionFields(fields: Fields) -> impl IntoView {
    view! {
        <Show when=move || fields.action.get() == "webhook">
            <label class="setting"><span>"URL (http://)"</span>
                <input id="setting-url" type="url" placeholder="http://alertmanager:9093/hook" prop:value=move || fields.target.get() on:input=move |ev| fields.target.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"Signing secret name"</span>
                <input id="setting-secret" type="text" placeholder="(none)" prop:value=move || fields.secret.get() on:input=move |ev| fields.secret.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"Rollback URL (optional)"</span>
                <input id="setting-rollback" type="url" placeholder="http://deployer:8080/undo" prop:value=move || fields.rollback.get() on:input=move |ev| fields.rollback.set(event_target_value(&ev))/>
            </label>
        </Show>
        <Show when=move || fields.action.get() == "command">
            <label class="setting"><span>"Program"</span>
                <input id="setting-program" type="text" placeholder="/usr/local/bin/scale-up" prop:value=move || fields.target.get() on:input=move |ev| fields.target.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"Arguments"</span>
                <input id="setting-args" type="text" prop:value=move || fields.args.get() on:input=move |ev| fields.args.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"Rollback command (optional)"</span>
                <input id="setting-rollback" type="text" placeholder="/usr/local/bin/scale-down 1" prop:value=move || fields.rollback.get() on:input=move |ev| fields.rollback.set(event_target_value(&ev))/>
            </label>
        </Show>
        <Show when=move || fields.action.get() == "database_setting">
            <label class="setting"><span>"Parameter"</span>
                <input id="setting-parameter" type="text" placeholder="work_mem" prop:value=move || fields.target.get() on:input=move |ev| fields.target.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"New value"</span>
                <input id="setting-value" type="text" placeholder="64MB" prop:value=move || fields.args.get() on:input=move |ev| fields.args.set(event_target_value(&ev))/>
            </label>
            <p class="muted">"Applied with ALTER SYSTEM and a reload; the value before is captured and restored if the change does not help."</p>
        </Show>
        <Show when=move || fields.action.get() == "cache_setting">
            <label class="setting"><span>"Setting"</span>
                <input id="setting-parameter" type="text" placeholder="maxmemory, maxmemory-policy or cache_memlimit" prop:value=move || fields.target.get() on:input=move |ev| fields.target.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"New value"</span>
                <input id="setting-value" type="text" placeholder="256mb or allkeys-lru" prop:value=move || fields.args.get() on:input=move |ev| fields.args.set(event_target_value(&ev))/>
            </label>
            <p class="muted">"Redis: CONFIG SET (at most the cache's share of its host's memory); memcached: cache_memlimit. The value before is captured and restored if the change does not help or a guardrail trips."</p>
        </Show>
        <Show when=move || fields.action.get() == "lb_weights">
            <label class="setting"><span>"Step (% of the way to capacity)"</span>
                <input id="setting-step" type="number" min="1" max="100" placeholder="50" prop:value=move || fields.target.get() on:input=move |ev| fields.target.set(event_target_value(&ev))/>
            </label>
            <label class="setting"><span>"Least weight of a server"</span>
                <input id="setting-min-weight" type="number" min="1" max="256" placeholder="1" prop:value=move || fields.args.get() on:input=move |ev| fields.args.set(event_target_value(&ev))/>
            </label>
            <p class="muted">"Each server's weight moves toward its share of the pool's measured capacity (faster and error-free servers get more), through HAProxy's runtime API. The weights before are captured and set again if the change does not help or a guardrail trips; a reload of HAProxy gets perfpilot's weights back."</p>
        </Show>
    }
}
