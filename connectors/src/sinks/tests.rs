use super::*;

fn entry(kind: ChannelKind) -> ChannelEntry {
    ChannelEntry {
        name: "ops".into(),
        kind,
        url: "https://hooks.example.com/services/T000/B000/XXXXSECRET".into(),
        from: None,
        to: vec![],
        username: None,
        password_file: None,
        password_env: None,
        secret: None,
        resources: vec![],
        types: vec![],
        groups: vec![],
        repeat_interval_secs: default_repeat(),
        quiet_hours: None,
        send_resolved: true,
        notify_outcomes: false,
        notify_forecasts: false,
        timeout_ms: default_timeout(),
    }
}

fn firing() -> Notification {
    Notification {
        key: "cpu@1000/ops/firing/0".into(),
        kind: NotificationKind::Firing,
        resource: "cpu".into(),
        resource_name: "CPU".into(),
        resource_type: "cpu".into(),
        group: None,
        metric: "utilization".into(),
        summary: "mean 90 % > target 65 % for 5 m".into(),
        target: Some("mean utilization ≤ 65 % for 5 m".into()),
        value: Some(90.0),
        started_ms: Some(1_764_460_800_000),
        ended_ms: None,
        url: Some("https://perf.example.com/resources/cpu".into()),
        at_ms: 1_764_460_800_000,
    }
}

#[test]
fn urls_are_shown_without_their_secrets() {
    let e = entry(ChannelKind::Slack);
    assert_eq!(e.shown_url(), "https://hooks.example.com/…");
    assert_eq!(
        shown_url("http://user:pw@127.0.0.1:9093"),
        "http://127.0.0.1:9093"
    );
    assert!(!format!("{e:?}").contains("SECRET"));
}

#[test]
fn validation_names_the_field() {
    let secrets = BTreeMap::from([("hook".to_owned(), "0123456789abcdef".to_owned())]);
    let mut e = entry(ChannelKind::Webhook);
    assert_eq!(e.validate(&secrets), Ok(()));
    e.url = "ftp://x".into();
    assert!(e.validate(&secrets).unwrap_err().starts_with("url:"));
    e = entry(ChannelKind::Webhook);
    e.secret = Some("nope".into());
    assert!(e.validate(&secrets).unwrap_err().starts_with("secret:"));
    e = entry(ChannelKind::Webhook);
    e.quiet_hours = Some("late".into());
    assert!(e
        .validate(&secrets)
        .unwrap_err()
        .starts_with("quiet_hours:"));
    e = entry(ChannelKind::Alertmanager);
    e.quiet_hours = Some("22:00-07:00".into());
    assert!(e
        .validate(&secrets)
        .unwrap_err()
        .starts_with("quiet_hours: not for alertmanager"));
    e = entry(ChannelKind::Webhook);
    e.name = "a b".into();
    assert!(e.validate(&secrets).unwrap_err().starts_with("name:"));
    e = entry(ChannelKind::Webhook);
    e.repeat_interval_secs = 5;
    assert!(e
        .validate(&secrets)
        .unwrap_err()
        .starts_with("repeat_interval_secs:"));
}

#[test]
fn routes_by_resource_type_and_group() {
    let mut e = entry(ChannelKind::Webhook);
    let cpu = Subject {
        resource: "cpu",
        resource_type: "cpu",
        group: None,
    };
    let cache = Subject {
        resource: "cache:sessions",
        resource_type: "cache",
        group: Some("web"),
    };
    assert!(e.routes(cpu) && e.routes(cache));
    e.resources = vec!["cache:*".into()];
    assert!(!e.routes(cpu) && e.routes(cache));
    e.resources.clear();
    e.types = vec!["cpu".into()];
    assert!(e.routes(cpu) && !e.routes(cache));
    e.types.clear();
    e.groups = vec!["web".into()];
    assert!(!e.routes(cpu) && e.routes(cache));
}

#[test]
fn alertmanager_gets_labels_times_and_the_generator_url() {
    let n = firing();
    let now = n.at_ms + 30_000;
    let body = alertmanager::body(&n, now);
    let alert = &body[0];
    assert_eq!(alert["labels"]["alertname"], "PerfpilotTargetBreached");
    assert_eq!(alert["labels"]["resource"], "cpu");
    assert_eq!(alert["startsAt"], "2025-11-30T00:00:00Z");
    assert_eq!(alert["endsAt"], utc_iso_for(now + 300_000));
    assert_eq!(
        alert["generatorURL"],
        "https://perf.example.com/resources/cpu"
    );
    let resolved = Notification {
        kind: NotificationKind::Resolved,
        ended_ms: Some(n.at_ms + 60_000),
        ..n
    };
    assert_eq!(
        alertmanager::body(&resolved, now + 99_000)[0]["endsAt"],
        "2025-11-30T00:01:00Z"
    );
    assert_eq!(
        alertmanager::alerts_url("http://a:9093/"),
        "http://a:9093/api/v2/alerts"
    );
    assert_eq!(
        alertmanager::alerts_url("http://a:9093/api/v2/alerts"),
        "http://a:9093/api/v2/alerts"
    );
}

/// A custom resource's alert, ungrouped: as the server builds it.
fn custom_firing() -> Notification {
    Notification {
        key: "custom:22@1000/ops/firing/0".into(),
        resource: "custom:22".into(),
        resource_name: "Checkout latency".into(),
        resource_type: "custom".into(),
        metric: "latency".into(),
        url: Some("http://127.0.0.1:3000/resource?id=custom%3A22".into()),
        ..firing()
    }
}

#[test]
fn resource_type_is_the_type_word_and_group_is_always_there() {
    let n = custom_firing();
    let am = alertmanager::body(&n, n.at_ms);
    let labels = &am[0]["labels"];
    assert_eq!(labels["resource"], "custom:22", "{am}");
    assert_eq!(labels["resource_type"], "custom", "{am}");
    assert_eq!(labels["group"], "custom:22", "a group of one: {am}");
    let hook = webhook::body("ops", &n);
    assert_eq!(hook["resource"], "custom:22", "{hook}");
    assert_eq!(hook["resource_type"], "custom", "{hook}");
    assert_eq!(hook["group"], "custom:22", "{hook}");
    assert_eq!(
        hook["url"], "http://127.0.0.1:3000/resource?id=custom%3A22",
        "{hook}"
    );
    // A grouped resource is labelled with its group.
    let grouped = Notification {
        group: Some("shop".into()),
        ..custom_firing()
    };
    assert_eq!(
        alertmanager::body(&grouped, n.at_ms)[0]["labels"]["group"],
        "shop"
    );
    assert_eq!(webhook::body("ops", &grouped)["group"], "shop");
    // A notification stored in the outbox before types were words is sent with the word.
    let stored = Notification {
        resource_type: "custom:22".into(),
        ..custom_firing()
    };
    assert_eq!(stored.type_word(), "custom");
    assert_eq!(
        alertmanager::body(&stored, n.at_ms)[0]["labels"]["resource_type"],
        "custom"
    );
    assert_eq!(webhook::body("ops", &stored)["resource_type"], "custom");
}

#[test]
fn a_channel_for_type_custom_gets_every_custom_resource() {
    let mut e = entry(ChannelKind::Webhook);
    e.types = vec!["custom".into()];
    let custom = Subject {
        resource: "custom:22",
        resource_type: "custom",
        group: None,
    };
    let cpu = Subject {
        resource: "cpu",
        resource_type: "cpu",
        group: None,
    };
    assert!(e.routes(custom) && !e.routes(cpu));
    // An ungrouped resource is its own group, as its notifications say.
    e.types.clear();
    e.groups = vec!["custom:22".into()];
    assert!(e.routes(custom) && !e.routes(cpu));
}

#[test]
fn unknown_types_are_refused_naming_the_field() {
    let secrets = BTreeMap::new();
    let mut e = entry(ChannelKind::Webhook);
    e.types = ResourceType::KINDS.iter().map(|t| t.to_string()).collect();
    assert_eq!(e.validate(&secrets), Ok(()));
    e.types = vec!["cpu".into(), "nosuchtype".into()];
    let err = e.validate(&secrets).unwrap_err();
    assert!(
        err.starts_with("types: unknown resource type \"nosuchtype\" (one of cpu, memory,"),
        "{err}"
    );
    assert!(err.ends_with("fleet, custom)"), "{err}");
    e.types = vec!["custom:22".into()];
    let err = e.validate(&secrets).unwrap_err();
    assert!(
        err.starts_with("types: \"custom:22\" is a resource id, not a type")
            && err.contains("resources = [\"custom:22\"]"),
        "{err}"
    );
}

fn utc_iso_for(ms: i64) -> String {
    engine::model::utc_iso(ms)
}

#[test]
fn slack_text_escapes_and_links() {
    let mut n = firing();
    n.summary = "p95 <script> & more".into();
    let text = slack::body(&n)["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with(":rotating_light: *FIRING* CPU (cpu): p95 &lt;script&gt; &amp; more"),
        "{text}"
    );
    assert!(
        text.ends_with("<https://perf.example.com/resources/cpu|Open in perfpilot>"),
        "{text}"
    );
}

#[test]
fn webhook_body_is_the_notification_with_its_channel() {
    let body = webhook::body("ops", &firing());
    assert_eq!(body["channel"], "ops");
    assert_eq!(body["kind"], "firing");
    assert_eq!(body["key"], "cpu@1000/ops/firing/0");
    assert_eq!(body["version"], 1);
}

#[test]
fn outcomes_and_reports_skip_alertmanager() {
    let am = entry(ChannelKind::Alertmanager);
    assert!(!am.wants(NotificationKind::Outcome) && !am.wants(NotificationKind::Report));
    assert_eq!(am.repeat_every_ms(), 60_000);
    let mut hook = entry(ChannelKind::Webhook);
    assert!(!hook.wants(NotificationKind::Outcome));
    hook.notify_outcomes = true;
    assert!(hook.wants(NotificationKind::Outcome));
    // Forecasts only when asked for, and never to Alertmanager.
    assert!(!hook.wants(NotificationKind::Forecast));
    hook.notify_forecasts = true;
    assert!(hook.wants(NotificationKind::Forecast));
    let mut am_forecasts = am.clone();
    am_forecasts.notify_forecasts = true;
    assert!(!am_forecasts.wants(NotificationKind::Forecast));
    hook.send_resolved = false;
    assert!(!hook.wants(NotificationKind::Resolved));
}

#[test]
fn email_channels_check_their_addresses_and_url() {
    let secrets = BTreeMap::new();
    let mut e = entry(ChannelKind::Email);
    e.url = "smtps://smtp.example.com".into();
    assert!(e.validate(&secrets).unwrap_err().starts_with("from:"));
    e.from = Some("perfpilot <perf@example.com>".into());
    assert!(e.validate(&secrets).unwrap_err().starts_with("to:"));
    e.to = vec!["not an address".into()];
    assert!(e.validate(&secrets).unwrap_err().starts_with("to:"));
    e.to = vec!["ops@example.com".into()];
    assert_eq!(e.validate(&secrets), Ok(()));
    assert_eq!(e.shown_url(), "smtps://smtp.example.com:465");
    e.password_env = Some("SMTP_PASSWORD".into());
    assert!(e.validate(&secrets).unwrap_err().starts_with("username:"));
    e.url = "smtp://user:pw@relay".into();
    assert!(e.validate(&secrets).unwrap_err().starts_with("url:"));
    assert_eq!(
        email::parse_url("smtp+starttls://mail.example.com:2587"),
        Ok((email::Security::StartTls, "mail.example.com".into(), 2587))
    );
    // Email fields on a webhook are a mistake worth saying.
    let mut hook = entry(ChannelKind::Webhook);
    hook.to = vec!["ops@example.com".into()];
    assert!(hook.validate(&secrets).unwrap_err().starts_with("to:"));
}

#[test]
fn emails_say_what_happened_in_the_subject_and_keep_one_id_per_key() {
    let n = firing();
    assert_eq!(
        email::subject(&n),
        "[perfpilot] FIRING cpu: mean 90 % > target 65 % for 5 m"
    );
    let body = email::body(&n);
    assert!(
        body.contains("Resource: CPU (cpu)")
            && body.contains("https://perf.example.com/resources/cpu"),
        "{body}"
    );
    assert_eq!(email::message_id(&n.key), email::message_id(&n.key.clone()));
    assert_ne!(email::message_id(&n.key), email::message_id("other"));
}
