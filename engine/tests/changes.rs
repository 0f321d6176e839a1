//! The change store's contract: numbering, auto-save, validation, diff, restore, persistence.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use engine::changes::{
    AutoSave, ChangeStore, Clock, Mutation, MutationKind, PersistedState, StoreOptions,
};
use engine::error::EngineError;
use engine::model::*;
use proptest::prelude::*;

/// A clock that advances 1 ms / 1 µs per reading so order checks are meaningful.
#[derive(Default)]
struct TickClock {
    wall: AtomicI64,
    mono: AtomicU64,
}

impl Clock for TickClock {
    fn wall_unix_ms(&self) -> i64 {
        1_700_000_000_000 + self.wall.fetch_add(1, Ordering::Relaxed)
    }
    fn mono_ns(&self) -> u64 {
        self.mono.fetch_add(1_000, Ordering::Relaxed)
    }
}

fn opts(every: u64, capacity: usize) -> StoreOptions {
    StoreOptions {
        autosave: AutoSave::new(every, capacity).unwrap(),
        clock: Arc::new(TickClock::default()),
        ..Default::default()
    }
}

fn id(s: &str) -> ResourceId {
    ResourceId::new(s).unwrap()
}

fn cpu() -> Resource {
    Resource::new(id("cpu"), ResourceType::Cpu, "CPU")
}

fn host_store(every: u64) -> ChangeStore {
    let resources = vec![
        cpu(),
        Resource::new(id("memory"), ResourceType::Memory, "Memory"),
        Resource::new(id("db:main"), ResourceType::Database, "Main DB"),
    ];
    ChangeStore::with_resources(resources, opts(every, 100)).unwrap()
}

fn set_cpu(value: f64) -> Mutation {
    Mutation::SetTarget {
        id: id("cpu"),
        target: Target {
            metric: "utilization".into(),
            comparator: Comparator::Le,
            value,
            statistic: Statistic::P95,
            for_secs: 300,
        },
    }
}

#[test]
fn seeding_is_not_a_change_and_defaults_follow_the_seed_table() {
    let store = host_store(20);
    let st = store.state();
    assert_eq!(st.change, 0);
    let t = |k: &str| st.resources[k].target.clone().unwrap();
    assert_eq!(
        (t("cpu").comparator, t("cpu").value),
        (Comparator::Le, 65.0)
    );
    assert_eq!(t("memory").value, 60.0);
    assert_eq!(
        (t("db:main").metric.as_str(), t("db:main").value),
        ("latency", 80.0)
    );
    let net = Resource::new(id("net:eth0"), ResourceType::Network, "eth0");
    assert_eq!(net.target.unwrap().value, 50.0);
    assert!(Resource::new(id("disk:/"), ResourceType::Disk, "/")
        .target
        .is_none());
}

#[test]
fn every_nth_accepted_change_takes_exactly_one_snapshot() {
    let store = host_store(3);
    let mut records = Vec::new();
    for i in 0..10 {
        records.push(store.apply(set_cpu(50.0 + f64::from(i))).unwrap());
    }
    let changes: Vec<u64> = records.iter().map(|r| r.change).collect();
    assert_eq!(changes, (1..=10).collect::<Vec<_>>());
    let snapped: Vec<u64> = records
        .iter()
        .filter_map(|r| r.snapshot.as_ref().map(|s| s.change))
        .collect();
    assert_eq!(snapped, vec![3, 6, 9]);
    let ring: Vec<u64> = store.snapshots().iter().map(|s| s.change).collect();
    assert_eq!(ring, vec![3, 6, 9]);
    for s in store.snapshots().iter() {
        store.verify(s.change).unwrap();
    }
    // Snapshot #6 holds the state as of change 6 (the 6th edit set 55).
    assert_eq!(
        store.snapshot(6).unwrap().resources["cpu"]
            .target
            .as_ref()
            .unwrap()
            .value,
        55.0
    );
}

#[test]
fn rejected_mutations_change_nothing_and_consume_no_number() {
    let store = host_store(2);
    store.apply(set_cpu(60.0)).unwrap();
    let before = store.state();
    let bad = [
        set_cpu(140.0),
        set_cpu(f64::NAN),
        set_cpu(f64::INFINITY),
        set_cpu(-1.0),
        Mutation::ClearTarget { id: id("gpu") },
        Mutation::AddResource { resource: cpu() },
        Mutation::Restore { snapshot: 2 },
    ];
    for m in bad {
        assert!(store.apply(m).is_err());
    }
    assert!(Arc::ptr_eq(&before, &store.state()));
    assert_eq!(store.stats().snapshots_taken, 0);
    let r = store.apply(set_cpu(61.0)).unwrap();
    assert_eq!(r.change, 2);
    assert_eq!(r.snapshot.unwrap().change, 2);
}

#[test]
fn error_messages_name_the_field_and_the_rule() {
    let store = host_store(20);
    let msg = |m: Mutation| store.apply(m).unwrap_err().to_string();
    assert_eq!(
        msg(set_cpu(140.0)),
        "target.value: utilization must be within 0–100 %, got 140"
    );
    assert_eq!(
        msg(set_cpu(f64::NAN)),
        "target.value: must be a finite number, got NaN"
    );
    let latency = Mutation::SetTarget {
        id: id("db:main"),
        target: Target {
            metric: "latency".into(),
            comparator: Comparator::Le,
            value: -5.0,
            statistic: Statistic::P95,
            for_secs: 0,
        },
    };
    assert_eq!(
        msg(latency),
        "target.value: latency must not be negative, got -5"
    );
    let unknown_metric = Mutation::SetTarget {
        id: id("cpu"),
        target: Target {
            metric: "temp".into(),
            comparator: Comparator::Le,
            value: 5.0,
            statistic: Statistic::Mean,
            for_secs: 0,
        },
    };
    assert!(
        msg(unknown_metric).starts_with("target.metric: `temp` is not a metric of this resource")
    );
    assert_eq!(
        msg(Mutation::RemoveResource { id: id("gpu") }),
        "resource `gpu` does not exist"
    );

    let short_window = ResourceSettings {
        step_secs: 10,
        window_secs: 5,
        ..Default::default()
    };
    assert_eq!(
        msg(Mutation::SetSettings { id: id("cpu"), settings: short_window }),
        "settings.window_secs: window must not be shorter than the sample interval of 10 s, got 5 s"
    );
    let bad_tol = ResourceSettings {
        tolerance_pct: f64::NAN,
        ..Default::default()
    };
    assert!(msg(Mutation::SetSettings {
        id: id("cpu"),
        settings: bad_tol
    })
    .starts_with("settings.tolerance_pct:"));
    let https = ResourceSettings {
        action: ActionConfig::Webhook(WebhookAction {
            url: "https://x".into(),
            timeout_ms: 1000,
            max_retries: 1,
            secret: None,
            rollback_url: None,
        }),
        ..Default::default()
    };
    assert!(msg(Mutation::SetSettings {
        id: id("cpu"),
        settings: https
    })
    .starts_with("settings.action.url: must start with http://"));
    assert!(msg(Mutation::Rename {
        id: id("cpu"),
        name: "  ".into()
    })
    .starts_with("name:"));

    let c1 = Resource::new(id("custom:1"), ResourceType::Custom(7), "Queue depth");
    store.apply(Mutation::AddResource { resource: c1 }).unwrap();
    let c2 = Resource::new(id("queue-b"), ResourceType::Custom(7), "Other queue");
    let err = store
        .apply(Mutation::AddResource { resource: c2 })
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(
        err.to_string(),
        "resource_type: custom:7 is already used by resource `custom:1`; custom ids must be unique"
    );

    assert_eq!(
        ResourceId::new("").unwrap_err().to_string(),
        "id: must not be empty"
    );
    assert!(ResourceId::new("disk:/ home").is_err());
    assert_eq!(store.state().change, 1);
}

#[test]
fn autosave_period_must_be_sane() {
    assert_eq!(
        AutoSave::new(0, 100).unwrap_err().to_string(),
        "autosave.every: must be within 1–1000000 changes, got 0"
    );
    assert!(AutoSave::new(1_000_001, 100).is_err());
    assert!(AutoSave::new(1, 0).is_err());
    assert!(AutoSave::new(1_000_000, 1).is_ok());
    let store = host_store(20);
    assert!(store.set_autosave_every(0).is_err());
    store.set_autosave_every(1).unwrap();
    assert!(store.apply(set_cpu(50.0)).unwrap().snapshot.is_some());
}

#[test]
fn command_programs_outside_the_allow_list_are_rejected_up_front() {
    let store = ChangeStore::with_resources(
        vec![cpu()],
        StoreOptions {
            allowed_programs: Some(Arc::new(BTreeSet::from(
                ["/usr/local/bin/scale".to_owned()],
            ))),
            ..opts(20, 10)
        },
    )
    .unwrap();
    let with = |program: &str| ResourceSettings {
        action: ActionConfig::Command(CommandAction {
            program: program.into(),
            args: vec![],
            timeout_ms: 1000,
            rollback: None,
        }),
        ..Default::default()
    };
    let err = store
        .apply(Mutation::SetSettings {
            id: id("cpu"),
            settings: with("/bin/sh"),
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "settings.action.program: `/bin/sh` is not in the command allow-list (allowed: /usr/local/bin/scale)");
    store
        .apply(Mutation::SetSettings {
            id: id("cpu"),
            settings: with("/usr/local/bin/scale"),
        })
        .unwrap();
}

#[test]
fn ring_is_bounded_and_keeps_the_newest() {
    let store = host_store(1);
    let small = ChangeStore::with_resources(vec![cpu()], opts(1, 3)).unwrap();
    for i in 0..10 {
        small.apply(set_cpu(f64::from(i))).unwrap();
        store.apply(set_cpu(f64::from(i))).unwrap();
    }
    let ring: Vec<u64> = small.snapshots().iter().map(|s| s.change).collect();
    assert_eq!(ring, vec![8, 9, 10]);
    assert_eq!(small.stats().snapshots_taken, 10);
    assert!(matches!(
        small.snapshot(2),
        Err(EngineError::UnknownSnapshot { id: 2 })
    ));
}

#[test]
fn verify_detects_tampering_and_disorder() {
    let store = host_store(1);
    store.apply(set_cpu(50.0)).unwrap();
    store.apply(set_cpu(51.0)).unwrap();
    let mut p = store.persisted();
    let mut tampered = p.clone();
    Arc::make_mut(tampered.snapshots[1].resources.get_mut("cpu").unwrap()).name = "evil".into();
    let err = ChangeStore::from_persisted(tampered, opts(1, 100)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("snapshot #2 failed verification: content hash is"),
        "{err}"
    );
    p.snapshots.swap(0, 1);
    let err = ChangeStore::from_persisted(p, opts(1, 100)).unwrap_err();
    assert!(err.to_string().contains("does not follow"), "{err}");
}

#[test]
fn diff_is_structured_and_readable() {
    let store = host_store(1);
    store.apply(set_cpu(65.0)).unwrap();
    store.apply(set_cpu(70.0)).unwrap();
    store
        .apply(Mutation::RemoveResource { id: id("memory") })
        .unwrap();
    let d = store.diff_snapshots(1, 3).unwrap();
    let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec!["cpu: target.value: 65.0 → 70.0", "memory: removed"]
    );
    assert!(store.diff_snapshots(1, 1).unwrap().is_empty());
    assert!(store.diff_with_current(3).unwrap().is_empty());
}

#[test]
fn restore_is_a_change_and_reproduces_the_snapshot() {
    let store = host_store(2);
    store.apply(set_cpu(40.0)).unwrap();
    store.apply(set_cpu(41.0)).unwrap(); // snapshot #2
    store
        .apply(Mutation::RemoveResource { id: id("memory") })
        .unwrap();
    let r = store.restore(2).unwrap();
    assert_eq!(r.change, 4);
    assert_eq!(r.kind, MutationKind::Restore);
    assert!(
        r.snapshot.is_some(),
        "the restore is the 4th change, so it snapshots"
    );
    assert_eq!(r.restored.as_ref().unwrap().differences.len(), 1);
    assert_eq!(
        store.state().resources,
        store.snapshot(2).unwrap().resources
    );
    assert_eq!(
        store.snapshot(4).unwrap().hash(),
        store.snapshot(2).unwrap().hash()
    );
    assert_eq!(r.audit().what, "restored snapshot #2 (1 differences)");
}

#[test]
fn records_carry_before_and_after_for_the_audit_log() {
    let store = host_store(20);
    let r = store.apply(set_cpu(70.0)).unwrap();
    let a = r.audit();
    assert_eq!(a.change, 1);
    assert_eq!(
        a.what,
        "cpu: target p95 utilization ≤ 65 % for 5 m → p95 utilization ≤ 70 % for 5 m"
    );
    assert_eq!(a.before["value"], 65.0);
    assert_eq!(a.after["value"], 70.0);
    let s = ResourceSettings {
        cooldown_secs: 600,
        ..Default::default()
    };
    let a = store
        .apply(Mutation::SetSettings {
            id: id("cpu"),
            settings: s,
        })
        .unwrap()
        .audit();
    assert_eq!(a.what, "cpu: settings.cooldown_secs: 300 → 600");
    assert_eq!(a.after["cooldown_secs"], 600);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(
        serde_json::from_str::<engine::changes::AuditEntry>(&json).unwrap(),
        a
    );
}

#[test]
fn a_restarted_store_continues_the_counter_and_snapshots() {
    // One clock for both lives: wall time keeps running across a restart.
    let clock = Arc::new(TickClock::default());
    let with_clock = |every| StoreOptions {
        clock: clock.clone(),
        ..opts(every, 100)
    };
    let store = ChangeStore::with_resources(vec![cpu()], with_clock(5)).unwrap();
    for i in 0..12 {
        store.apply(set_cpu(f64::from(i))).unwrap();
    }
    let json = serde_json::to_string(&store.persisted()).unwrap();
    let persisted: PersistedState = serde_json::from_str(&json).unwrap();
    let again = ChangeStore::from_persisted(persisted, with_clock(999)).unwrap();
    assert_eq!(again.stats().autosave.every(), 5, "persisted autosave wins");
    assert_eq!(*again.state(), *store.state());
    let r = (0..3)
        .map(|i| again.apply(set_cpu(f64::from(i))).unwrap())
        .last()
        .unwrap();
    assert_eq!(r.change, 15);
    let ring: Vec<u64> = again.snapshots().iter().map(|s| s.change).collect();
    assert_eq!(ring, vec![5, 10, 15]);
    again.verify(15).unwrap();
    again.restore(5).unwrap();
}

#[test]
fn statuses_are_published_without_counting_as_changes() {
    let store = host_store(1);
    let report = StatusReport {
        status: OptimizationStatus::Optimized,
        reason: "p95 50 % ≤ target 65 %".into(),
        since_unix_ms: 1,
        evaluated: true,
        pending: false,
        judged: Some(50.0),
        optimizer: None,
        advice: None,
        forecast: None,
        crossing: None,
        anomalies: None,
    };
    store.publish_statuses([(id("cpu"), report.clone()), (id("gone"), report.clone())]);
    assert_eq!(store.stats().change, 0);
    assert_eq!(store.status(&id("cpu")), report);
    let views = store.views();
    assert_eq!(views.len(), 3);
    assert_eq!(
        views
            .iter()
            .find(|v| v.resource.id == id("cpu"))
            .unwrap()
            .status,
        report
    );
    let json = serde_json::to_value(&views[0]).unwrap();
    assert!(
        json.get("id").is_some() && json.get("status").is_some(),
        "{json}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Target(f64),
    Tolerance(f64),
    Add(u32),
    Remove(u32),
    Restore(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-20.0f64..130.0).prop_map(Op::Target),
        2 => (-10.0f64..120.0).prop_map(Op::Tolerance),
        2 => (0u32..6).prop_map(Op::Add),
        2 => (0u32..6).prop_map(Op::Remove),
        1 => (0u64..40).prop_map(Op::Restore),
    ]
}

fn to_mutation(op: &Op) -> Mutation {
    match *op {
        Op::Target(v) => set_cpu(v),
        Op::Tolerance(t) => Mutation::SetSettings {
            id: id("cpu"),
            settings: ResourceSettings {
                tolerance_pct: t,
                ..Default::default()
            },
        },
        Op::Add(n) => Mutation::AddResource {
            resource: Resource::new(id(&format!("custom:{n}")), ResourceType::Custom(n), "c"),
        },
        Op::Remove(n) => Mutation::RemoveResource {
            id: id(&format!("custom:{n}")),
        },
        Op::Restore(s) => Mutation::Restore { snapshot: s },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_mutation_sequences_keep_the_autosave_contract(every in 1u64..6, ops in prop::collection::vec(op(), 0..80)) {
        let store = ChangeStore::with_resources(vec![cpu()], opts(every, 10_000)).unwrap();
        let mut accepted = 0u64;
        for op in &ops {
            let before = store.state();
            match store.apply(to_mutation(op)) {
                Ok(r) => {
                    accepted += 1;
                    prop_assert_eq!(r.change, accepted);
                    prop_assert_eq!(r.snapshot.is_some(), accepted.is_multiple_of(every));
                }
                Err(_) => prop_assert!(Arc::ptr_eq(&before, &store.state())),
            }
        }
        let stats = store.stats();
        prop_assert_eq!(stats.change, accepted);
        prop_assert_eq!(stats.snapshots_taken, accepted / every);
        let ring = store.snapshots();
        prop_assert_eq!(ring.len() as u64, accepted / every);
        for (i, s) in ring.iter().enumerate() {
            prop_assert_eq!(s.change, (i as u64 + 1) * every);
            prop_assert!(store.verify(s.change).is_ok());
        }
        if let Some(s) = ring.iter().next() {
            store.restore(s.change).unwrap();
            prop_assert_eq!(&store.state().resources, &s.resources);
            prop_assert_eq!(engine::changes::content_hash(&store.state().resources), s.hash().to_owned());
        }
    }
}

fn fleet_store() -> ChangeStore {
    let store = ChangeStore::new(opts(20, 8));
    let mut fleet = Resource::new(id("fleet:prod"), ResourceType::Fleet, "prod");
    fleet.target = None;
    fleet.source = Some(SourceSpec {
        kind: "prometheus".into(),
        settings: serde_json::json!({"url": "http://127.0.0.1:9090"}),
    });
    fleet.fleet = Some(Box::new(engine::fleet::Fleet {
        metrics: vec![engine::fleet::FleetMetric {
            name: "cpu".into(),
            kind: MetricKind::Utilization,
            unit: "%".into(),
        }],
        targets: Default::default(),
    }));
    store
        .apply(Mutation::AddResource { resource: fleet })
        .unwrap();
    store
}

#[test]
fn settings_a_fleet_target_could_not_keep_are_refused_and_change_nothing() {
    let store = fleet_store();
    let group = engine::fleet::Scope::Group("env=prod".into());
    let target = Target {
        for_secs: 30,
        ..Target::default_for("cpu", 70.0)
    };
    store
        .apply(Mutation::SetFleetTarget {
            id: id("fleet:prod"),
            scope: group.clone(),
            metric: "cpu".into(),
            target: Some(target.clone()),
        })
        .unwrap();
    let before = store.state();
    // A 60 s sample interval cannot judge a group target that must last 30 s.
    let settings = ResourceSettings {
        step_secs: 60,
        window_secs: 300,
        verify_secs: 300,
        baseline_secs: 300,
        ..ResourceSettings::default()
    };
    let err = store
        .apply(Mutation::SetSettings {
            id: id("fleet:prod"),
            settings,
        })
        .unwrap_err();
    assert!(err.to_string().contains("target.for_secs"), "{err}");
    assert_eq!(store.state().change, before.change);
    let kept = store.state().resources[&id("fleet:prod")].clone();
    assert_eq!(
        kept.fleet.as_ref().unwrap().targets.get(&group, "cpu"),
        Some(&target)
    );
}

/// A replica catching up adopts what another wrote: configuration, counter and
/// snapshots, and its next change continues the shared numbering. A bad state changes
/// nothing.
#[test]
fn a_store_adopts_another_writers_state_whole_or_not_at_all() {
    let leader = host_store(2);
    for v in [10.0, 20.0, 30.0] {
        leader.apply(set_cpu(v)).unwrap();
    }
    let follower = host_store(2);
    follower.adopt(leader.persisted()).unwrap();
    assert_eq!(follower.persisted(), leader.persisted());
    let next = follower.apply(set_cpu(40.0)).unwrap();
    assert_eq!(next.change, 4, "the counter continues the leader's");
    assert_eq!(follower.snapshots().len(), 2, "snapshots at 2 and 4");

    let mut tampered = leader.persisted();
    tampered.snapshots[0].change = 99;
    let before = follower.persisted();
    assert!(follower.adopt(tampered).is_err());
    assert_eq!(follower.persisted(), before, "nothing half-adopted");
}
